"""The small-problem CPU path (``xconvt.backends.cpu.small``) against the reference.

The path is forced on each column grid ("flat" and "exact") over random small
geometries, and reached through the public function where ``auto``
takes it (unbatched input, zero batch).  Its planner is exercised through a
local stand-in for the planner interface's ``Problem`` (issue 10).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings

import xconvt
from xconvt._params import ConvParams
from xconvt import _select
from xconvt.backends.cpu import small as cpu_small

from .helpers import assert_close, random_array
from .reference import conv_transpose3d_ref
from .strategies import configs, seeds

GRIDS = cpu_small.GRIDS


@dataclass(frozen=True)
class Device:
    """Stand-in for the planner interface's ``Device`` (only what plans read)."""

    kind: str = "cpu"
    name: str = "cpu"


@dataclass(frozen=True)
class Problem:
    """Stand-in for the planner interface's ``Problem``."""

    op: str
    params: object
    dtype: str
    device: Device = Device()
    precision: str = "float32"
    budget: int = 256 << 20


def _params(x, w, b, **kw):
    return ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape, **kw)


def _forced(grid, x, w, b, **kw):
    """The small path on ``grid``, whatever its estimate (batched input)."""
    params = _params(x, w, b, **kw)
    return cpu_small.run(cpu_small.tables(params, grid), x, w, b)


# ----------------------------------------------------------- property tests
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("grid", GRIDS)
@settings(max_examples=60)
@given(cfg=configs(batches=(1, 2), max_spatial=6), seed=seeds)
def test_forced_matches_reference(grid, dtype, cfg, seed):
    x, w, b = cfg.arrays(seed, dtype)
    out = _forced(grid, x, w, b, **cfg.kwargs)
    assert out.dtype == np.dtype(dtype) and out.flags.c_contiguous
    assert_close(out, cfg.reference(x, w, b), dtype)


@pytest.mark.parametrize("dtype", ["float16", "complex64", "complex128"])
@pytest.mark.parametrize("grid", GRIDS)
@settings(max_examples=20)
@given(cfg=configs(batches=(1, 2)), seed=seeds)
def test_forced_other_dtypes(grid, dtype, cfg, seed):
    """float16 is computed in float32 and rounded once; complex uses complex BLAS."""
    x, w, b = cfg.arrays(seed, dtype)
    out = _forced(grid, x, w, b, **cfg.kwargs)
    assert out.dtype == np.dtype(dtype)
    assert_close(out, cfg.reference(x, w, b), dtype)


@settings(max_examples=30)
@given(cfg=configs(batches=(None, 0, 1, 2), max_spatial=4, max_kernel=3), seed=seeds)
def test_public_function(cfg, seed):
    """Through ``xconvt.conv_transpose3d``: unbatched and zero-batch inputs too
    (small geometries, where ``auto`` takes this path when it is cheaper)."""
    x, w, b = cfg.arrays(seed, "float32")
    out = xconvt.conv_transpose3d(x, w, b, **cfg.kwargs, algorithm="direct")
    assert out.shape == cfg.output_shape and out.dtype == np.float32
    assert_close(out, cfg.reference(x, w, b), "float32")


def test_public_function_takes_the_path_unbatched():
    """An unbatched call of a small layer runs this path and matches the reference."""
    rng = np.random.default_rng(0)
    x = random_array(rng, (6, 8, 8, 8), "float32")
    w = random_array(rng, (6, 3, 3, 3, 3), "float32")
    b = random_array(rng, (3,), "float32")
    kw = dict(stride=2, padding=1, output_padding=1)
    params = ConvParams.from_shapes(x.shape, w.shape, b.shape, **kw)
    plan = _select.plan_for("conv_transpose3d", "numpy", params, "float32", "float32",
                            xconvt.get_memory_budget(), "auto", (x[None], w, b))
    assert plan.name == "cpu.small"
    out = xconvt.conv_transpose3d(x, w, b, **kw)
    assert out.shape == (3, 16, 16, 16)
    assert_close(out, conv_transpose3d_ref(x, w, b, **kw), "float32")


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("size", [(1, 1, 1), (1, 7, 2), (3, 1, 5), (7, 5, 3)])
def test_odd_sizes(grid, size):
    """Odd and degenerate extents, with stride 3 and dilation 2 on different axes."""
    rng = np.random.default_rng(1)
    x = random_array(rng, (2, 3) + size, "float64")
    w = random_array(rng, (3, 2, 2, 3, 4), "float64")
    kw = dict(stride=(3, 1, 2), padding=(1, 2, 0), output_padding=(2, 0, 1),
              dilation=(1, 2, 1))
    assert_close(_forced(grid, x, w, None, **kw), conv_transpose3d_ref(x, w, **kw),
                 "float64")


def test_chunked_gemm_and_in_place_output():
    """Many columns: the GEMM runs as several BLAS calls under OpenBLAS's
    threading threshold; stride 1 and one batch element on the exact grid:
    the GEMM writes the output itself."""
    rng = np.random.default_rng(2)
    x = random_array(rng, (1, 16, 6, 6, 6), "float32")
    w = random_array(rng, (16, 16, 3, 3, 3), "float32")
    kw = dict(stride=2, padding=1, output_padding=1)
    t = cpu_small.tables(_params(x, w, None, **kw), "flat")
    assert t.nchunks > 1
    assert_close(cpu_small.run(t, x, w, None), conv_transpose3d_ref(x, w, **kw), "float32")
    x1 = random_array(rng, (1, 2, 5, 4, 3), "float64")
    w1 = random_array(rng, (2, 3, 3, 2, 3), "float64")
    b1 = random_array(rng, (3,), "float64")
    t1 = cpu_small.tables(_params(x1, w1, b1, padding=1), "exact")
    assert t1.in_place
    assert_close(cpu_small.run(t1, x1, w1, b1), conv_transpose3d_ref(x1, w1, b1, padding=1),
                 "float64")


# --------------------------------------------------------- non-finite values
def _same_nonfinite(out, ref):
    """Equal NaN pattern, equal infinities, finite values close."""
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    inf = np.isinf(ref)
    assert np.array_equal(np.isinf(out), inf)
    assert np.array_equal(out[inf], ref[inf])
    fin = np.isfinite(ref)
    assert_close(out[fin], ref[fin], "float64")


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("where", ["input_nan", "input_inf", "weight_inf", "weight_nan",
                                   "bias_inf", "both"])
def test_non_finite_as_pytorch(grid, where):
    """PyTorch multiplies only existing inputs by taps: an inf weight whose
    products land in the padding, or an inf input under a window slot that no
    tap reaches, leaves the outputs finite here too."""
    rng = np.random.default_rng(3)
    x = random_array(rng, (2, 2, 5, 4, 6), "float64")
    w = random_array(rng, (2, 3, 3, 3, 2), "float64")
    b = random_array(rng, (3,), "float64")
    if where in ("input_nan", "both"):
        x[0, 1, 0, 0, 0] = np.nan
    if where in ("input_inf", "both"):
        x[1, 0, 4, 3, 5] = np.inf
    if where in ("weight_inf", "both"):
        w[1, 2, 2, 0, 1] = -np.inf
    if where == "weight_nan":
        w[0, 0, 0, 2, 0] = np.nan
    if where == "bias_inf":
        b[1] = np.inf
    kw = dict(stride=2, padding=1, output_padding=1)
    with np.errstate(invalid="ignore"):
        ref = conv_transpose3d_ref(x, w, b, **kw)
    assert np.isfinite(ref).any() and not np.isfinite(ref).all()
    with np.errstate(all="raise"):  # no floating-point warnings escape
        out = _forced(grid, x, w, b, **kw)
    _same_nonfinite(out, ref)


# ------------------------------------------------------------- tables, state
def test_tables_cached_and_bounded():
    rng = np.random.default_rng(4)
    x = random_array(rng, (1, 2, 3, 3, 3), "float32")
    w = random_array(rng, (2, 2, 2, 2, 2), "float32")
    params = _params(x, w, None, stride=2)
    t = cpu_small.tables(params, "flat")
    assert cpu_small.tables(params, "flat") is t
    assert cpu_small.tables(params, "exact") is not t
    for n in range(cpu_small._TABLES_MAX + 5):
        cpu_small.tables(ConvParams.from_shapes((1, 1, n + 1, 2, 2), (1, 1, 2, 2, 2)), "flat")
    assert len(cpu_small._TABLES) <= cpu_small._TABLES_MAX


def test_workspace_reuse_keeps_padding_zero_and_results_independent():
    """Buffers are kept per thread: a second call with other data (and an
    input whose edges would leak into the padding if it were written) gives
    its own answer, and results never alias the buffers."""
    rng = np.random.default_rng(5)
    w = random_array(rng, (3, 2, 3, 3, 3), "float64")
    kw = dict(stride=2, padding=2, dilation=2)
    t = cpu_small.tables(_params(np.empty((2, 3, 4, 5, 6)), w, None, **kw), "flat")
    first = None
    for scale in (1e6, 1.0):
        x = random_array(rng, (2, 3, 4, 5, 6), "float64") * scale
        out = cpu_small.run(t, x, w, None)
        assert_close(out, conv_transpose3d_ref(x, w, **kw), "float64")
        if first is None:
            first = out
            kept = first.copy()
    assert np.array_equal(first, kept)  # the second call did not write into the first result


def test_threads_have_their_own_workspace():
    rng = np.random.default_rng(6)
    w = random_array(rng, (4, 3, 3, 3, 3), "float32")
    xs = [random_array(rng, (1, 4, 6, 6, 6), "float32") for _ in range(8)]
    kw = dict(stride=2, padding=1, output_padding=1)
    t = cpu_small.tables(_params(xs[0], w, None, **kw), "flat")
    refs = [conv_transpose3d_ref(x, w, **kw) for x in xs]
    errors = []

    def work(i):
        for _ in range(20):
            out = cpu_small.run(t, xs[i], w, None)
            if not np.allclose(out, refs[i], rtol=1e-4, atol=1e-4):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


# ------------------------------------------------------------------- planner
def test_plan_applies_to_small_problems():
    params = ConvParams.from_shapes((1, 6, 8, 8, 8), (6, 3, 3, 3, 3), (3,), 2, 1, 1)
    plan = cpu_small.plan(Problem("conv_transpose3d", params, "float32"))
    assert isinstance(plan, cpu_small.SmallPlan)
    assert plan.name == "cpu.small" and plan.algorithm == "direct"
    assert 1e-6 < plan.estimate < 1e-2 and plan.workspace > 0
    rng = np.random.default_rng(7)
    x = random_array(rng, (1, 6, 8, 8, 8), "float32")
    w = random_array(rng, (6, 3, 3, 3, 3), "float32")
    b = random_array(rng, (3,), "float32")
    assert_close(plan(x, w, b), conv_transpose3d_ref(x, w, b, stride=2, padding=1,
                                                     output_padding=1), "float32")


@pytest.mark.parametrize("change, words", [
    (dict(op="conv3d"), "conv_transpose3d only"),
    (dict(device=Device("cuda")), "on the CPU"),
    (dict(dtype="bfloat16"), "dtype bfloat16"),
    (dict(budget=1024), "workspace"),
    (dict(params=ConvParams.from_shapes((1, 64, 32, 32, 32), (64, 32, 3, 3, 3), None, 2, 1,
                                        1)), "exceeds"),
    (dict(params=ConvParams.from_shapes((0, 2, 4, 4, 4), (2, 2, 3, 3, 3))), "non-empty batch"),
])
def test_plan_reasons(change, words):
    """Every rejection is a reason string naming the limit."""
    base = dict(op="conv_transpose3d",
                params=ConvParams.from_shapes((1, 2, 4, 4, 4), (2, 2, 3, 3, 3)),
                dtype="float32")
    base.update(change)
    why = cpu_small.plan(Problem(**base))
    assert isinstance(why, str) and words in why, why


def test_estimate_grows_with_work():
    small = ConvParams.from_shapes((1, 2, 4, 4, 4), (2, 2, 3, 3, 3))
    larger = ConvParams.from_shapes((1, 8, 8, 8, 8), (8, 8, 3, 3, 3), None, 2, 1, 1)
    e = [cpu_small.plan(Problem("conv_transpose3d", p, d)).estimate
         for p, d in ((small, "float32"), (larger, "float32"), (larger, "complex128"))]
    assert e[0] < e[1] < e[2]


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("kw", [dict(stride=2, dilation=2, padding=1, output_padding=1),
                                dict(stride=(3, 1, 4), padding=(0, 1, 1),
                                     output_padding=(2, 0, 3))],
                         ids=["dilation-shares-stride", "stride-above-kernel"])
def test_phases_without_taps_get_the_bias(grid, kw):
    """Outputs that no tap reaches hold the bias alone (one shared block of GEMM rows)."""
    rng = np.random.default_rng(8)
    x = random_array(rng, (2, 4, 3, 4, 5), "float64")
    w = random_array(rng, (4, 3, 2, 3, 2), "float64")
    b = random_array(rng, (6,), "float64")
    t = cpu_small.tables(_params(x, w, b, groups=2, **kw), grid)
    assert t.extra == 1 and t.R == (t.S + 1) * t.Cog
    out = cpu_small.run(t, x, w, b)
    assert_close(out, conv_transpose3d_ref(x, w, b, groups=2, **kw), "float64")


@pytest.mark.parametrize("grid", GRIDS)
def test_strided_and_float16_operands(grid):
    """Operands of any strides (views), float16 weight and bias cast on the way in."""
    rng = np.random.default_rng(9)
    xb = random_array(rng, (2, 6, 9, 5, 8), "float16")
    wb = random_array(rng, (6, 4, 3, 2, 3), "float16")
    x = xb[:, ::2, ::-2].transpose(0, 1, 2, 4, 3)     # (2, 3, 5, 8, 5), negative strides
    w = wb[::2, :, :, :, ::-1].transpose(0, 1, 2, 4, 3)  # (3, 4, 3, 3, 2)
    b = random_array(rng, (8,), "float16")[::2]
    kw = dict(stride=(1, 2, 2), padding=(1, 0, 1), output_padding=(0, 1, 0))
    out = _forced(grid, x, w, b, **kw)
    assert out.dtype == np.float16
    assert_close(out, conv_transpose3d_ref(x, w, b, **kw), "float16")


def test_bias_on_tables_built_without_one():
    """A plan made for a bias-free geometry still adds a bias it is given."""
    rng = np.random.default_rng(11)
    x = random_array(rng, (1, 2, 4, 4, 4), "float64")
    w = random_array(rng, (2, 3, 3, 3, 3), "float64")
    b = random_array(rng, (3,), "float64")
    t = cpu_small.tables(_params(x, w, None, stride=2), "exact")
    assert_close(cpu_small.run(t, x, w, b), conv_transpose3d_ref(x, w, b, stride=2), "float64")


def test_float16_overflow_is_silent():
    """A float32 result beyond float16's range rounds to inf without a warning
    (PyTorch's float16 does the same); the rounding runs with errors ignored."""
    import warnings

    x = np.full((1, 1, 2, 2, 2), 300, np.float16)
    w = np.full((1, 1, 2, 2, 2), 300, np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = xconvt.conv_transpose3d(x, w)
    assert out.dtype == np.float16 and np.isinf(out).any()
    ref = conv_transpose3d_ref(x.astype(np.float64), w.astype(np.float64))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, ref.astype(np.float16))
