"""Tests of the FFT algorithm (``algorithm="fft"``).

The oracle is a float64 (complex128) scatter-add written here from the
definition ``out[n, g*Cog + o, i*s - p + k*d] += x[n, g*Cig + c, i] *
w[g*Cig + c, o, k]``; it shares no code with xconvt.  Beyond the general
property tests in ``test_conv.py`` these cover what only the FFT path has:
stride phases with unequal sub-kernels, chunking and overlap-add tiles forced
by small memory budgets (checked against the unchunked result), float16 via
float32, and float32 accuracy for 31^3 kernels.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import xconvt
from xconvt._params import ConvParams
from xconvt.backends import fft as fftmod
from xconvt.backends.fft import make_plan

TOL = {"float16": 1e-2, "float32": 1e-5, "complex64": 1e-5,
       "float64": 1e-12, "complex128": 1e-12}


# ------------------------------------------------------------------ reference
def reference(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
              dilation=1):
    """Transposed convolution from its definition, in float64/complex128.

    Loops over kernel taps (or over input voxels when there are fewer of
    them) and scatter-adds whole slabs; no FFT, no phases.
    """
    def t3(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * 3

    s, p, op, d = t3(stride), t3(padding), t3(output_padding), t3(dilation)
    wide = np.complex128 if np.iscomplexobj(x) else np.float64
    x = np.asarray(x, dtype=wide)
    w = np.asarray(w, dtype=wide)
    unbatched = x.ndim == 4
    if unbatched:
        x = x[None]
    n, cin = x.shape[:2]
    size, kern = x.shape[2:], w.shape[2:]
    cig, cog = cin // groups, w.shape[1]
    full = [(size[a] - 1) * s[a] + d[a] * (kern[a] - 1) + 1 for a in range(3)]
    out_n = [full[a] - 2 * p[a] + op[a] for a in range(3)]
    acc = np.zeros((n, groups * cog) + tuple(full[a] + op[a] for a in range(3)), wide)
    for g in range(groups):
        xg = x[:, g * cig:(g + 1) * cig]
        wg = w[g * cig:(g + 1) * cig]
        og = slice(g * cog, (g + 1) * cog)
        if np.prod(kern) <= np.prod(size):
            for k in np.ndindex(*kern):
                dst = tuple(slice(k[a] * d[a], k[a] * d[a] + (size[a] - 1) * s[a] + 1, s[a])
                            for a in range(3))
                acc[(slice(None), og) + dst] += np.einsum(
                    "ncdhw,co->nodhw", xg, wg[(slice(None), slice(None)) + k])
        else:
            for i in np.ndindex(*size):
                dst = tuple(slice(i[a] * s[a], i[a] * s[a] + d[a] * (kern[a] - 1) + 1, d[a])
                            for a in range(3))
                acc[(slice(None), og) + dst] += np.einsum(
                    "nc,cokpq->nokpq", xg[(slice(None), slice(None)) + i], wg)
    out = acc[(slice(None), slice(None))
              + tuple(slice(p[a], p[a] + out_n[a]) for a in range(3))]
    if b is not None:
        out = out + np.asarray(b, dtype=wide)[:, None, None, None]
    return out[0] if unbatched else out


def to_host(a):
    return a.get() if type(a).__module__.startswith("cupy") else np.asarray(a)


def rel_err(out, ref):
    out = to_host(out).astype(ref.dtype)
    den = np.linalg.norm(ref.ravel())
    diff = np.linalg.norm((out - ref).ravel())
    return diff / den if den > 0 else diff


def data(rng, shape, dtype):
    dtype = np.dtype(dtype)
    a = rng.standard_normal(shape)
    if dtype.kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def check(out, ref, dtype):
    host = to_host(out)
    assert host.shape == ref.shape
    assert host.dtype == np.dtype(dtype)
    if ref.size:
        err = rel_err(host, ref)
        assert err <= TOL[np.dtype(dtype).name], f"relative L2 error {err:.3e}"


def test_reference_matches_hand_computed_case():
    # 1-D along W: x = [1, 2], w = [1, 10, 100], stride 2, padding 1.
    x = np.array([1.0, 2.0]).reshape(1, 1, 1, 1, 2)
    w = np.array([1.0, 10.0, 100.0]).reshape(1, 1, 1, 1, 3)
    # full: [1, 10, 100 + 2, 20, 200]; crop 1 each side.
    out = reference(x, w, stride=(1, 1, 2), padding=(0, 0, 1))
    np.testing.assert_array_equal(out.ravel(), [10.0, 102.0, 20.0])


# ------------------------------------------------------------ property tests
@st.composite
def configs(draw):
    groups = draw(st.integers(1, 3))
    cin_g, cout_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch = draw(st.sampled_from([None, 1, 2]))
    size = tuple(draw(st.integers(1, 5)) for _ in range(3))
    kern = tuple(draw(st.integers(1, 5)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(3))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(3))
    pad = tuple(draw(st.integers(0, 4)) for _ in range(3))
    opad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dil))
    out = [(i - 1) * s - 2 * p + d * (k - 1) + op + 1
           for i, k, s, p, d, op in zip(size, kern, stride, pad, dil, opad)]
    assume(min(out) >= 1)
    lead = (groups * cin_g,) if batch is None else (batch, groups * cin_g)
    return dict(
        x_shape=lead + size, w_shape=(groups * cin_g, cout_g) + kern,
        bias=draw(st.booleans()), cout=groups * cout_g,
        kw=dict(stride=stride, padding=pad, output_padding=opad, groups=groups,
                dilation=dil),
    )


@settings(max_examples=60, deadline=None)
@given(cfg=configs(), dtype=st.sampled_from(["float64", "complex128", "float32"]),
       seed=st.integers(0, 2**32 - 1))
def test_fft_matches_reference(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    x = data(rng, cfg["x_shape"], dtype)
    w = data(rng, cfg["w_shape"], dtype)
    b = data(rng, (cfg["cout"],), dtype) if cfg["bias"] else None
    out = xconvt.conv_transpose3d(x, w, b, algorithm="fft", **cfg["kw"])
    check(out, reference(x, w, b, **cfg["kw"]), dtype)
    assert out.flags.c_contiguous


@settings(max_examples=25, deadline=None)
@given(cfg=configs(), seed=st.integers(0, 2**32 - 1),
       budget=st.sampled_from([1, 600, 4000, 30000]))
def test_small_budgets_match_unchunked(cfg, seed, budget):
    """Chunked and tiled runs equal the one-piece run (and the reference)."""
    rng = np.random.default_rng(seed)
    x = data(rng, cfg["x_shape"], "float64")
    w = data(rng, cfg["w_shape"], "float64")
    b = data(rng, (cfg["cout"],), "float64") if cfg["bias"] else None
    whole = xconvt.conv_transpose3d(x, w, b, algorithm="fft", **cfg["kw"])
    with xconvt.memory_budget(budget):
        parts = xconvt.conv_transpose3d(x, w, b, algorithm="fft", **cfg["kw"])
    np.testing.assert_allclose(parts, whole, rtol=1e-10, atol=1e-10 * np.abs(whole).max())
    check(parts, reference(x, w, b, **cfg["kw"]), "float64")


@settings(max_examples=30, deadline=None)
@given(cfg=configs(), seed=st.integers(0, 2**32 - 1), chan_last=st.booleans(),
       budget=st.sampled_from([None, 3000, 30000]),
       dtype=st.sampled_from(["float64", "complex128"]))
def test_both_contraction_layouts(cfg, seed, chan_last, budget, dtype):
    """Channels-first multiply-add and channels-last matmul, forced either way."""
    rng = np.random.default_rng(seed)
    x = data(rng, cfg["x_shape"], dtype)
    w = data(rng, cfg["w_shape"], dtype)
    b = data(rng, (cfg["cout"],), dtype) if cfg["bias"] else None
    from xconvt import _select
    from xconvt.backends.fft import chunked

    with mock.patch.object(chunked, "use_matmul", lambda kind, cw, co: chan_last), \
            mock.patch.object(_select, "_PLANS", {}), \
            xconvt.memory_budget(budget or xconvt.get_memory_budget()):
        params = ConvParams.from_shapes(x.shape, w.shape, None, **cfg["kw"])
        assert make_plan(params, "numpy", x.dtype).chan_last == chan_last
        out = xconvt.conv_transpose3d(x, w, b, algorithm="fft", **cfg["kw"])
    check(out, reference(x, w, b, **cfg["kw"]), dtype)


def test_float16_is_float32_rounded_once():
    rng = np.random.default_rng(0)
    x = data(rng, (2, 4, 5, 6, 7), "float16")
    w = data(rng, (4, 3, 3, 4, 2), "float16")
    b = data(rng, (6,), "float16")
    kw = dict(stride=(2, 1, 3), padding=(1, 0, 1), groups=2, dilation=(1, 2, 1))
    out = xconvt.conv_transpose3d(x, w, b, algorithm="fft", **kw)
    assert out.dtype == np.float16
    via32 = xconvt.conv_transpose3d(x.astype(np.float32), w.astype(np.float32),
                                    b.astype(np.float32), algorithm="fft", **kw)
    np.testing.assert_array_equal(out, via32.astype(np.float16))
    check(out, reference(x, w, b, **kw), "float16")


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_with_all_features(dtype):
    rng = np.random.default_rng(1)
    x = data(rng, (3, 4, 4, 3), dtype)  # unbatched
    w = data(rng, (3, 2, 3, 2, 3), dtype)
    b = data(rng, (6,), dtype)
    kw = dict(stride=(2, 3, 1), padding=(1, 1, 0), output_padding=(1, 0, 1),
              groups=3, dilation=(1, 1, 2))
    out = xconvt.conv_transpose3d(x, w, b, algorithm="fft", **kw)
    check(out, reference(x, w, b, **kw), dtype)


def test_zero_batch_and_bias_only_phases():
    x = np.zeros((0, 2, 3, 3, 3))
    w = np.ones((2, 2, 2, 2, 2))
    out = xconvt.conv_transpose3d(x, w, algorithm="fft", stride=3)
    assert out.shape == (0, 2, 8, 8, 8)
    # stride 3 with k=1: two of three phases per axis get only the bias.
    rng = np.random.default_rng(2)
    x = data(rng, (1, 2, 3, 3, 3), "float64")
    w = data(rng, (2, 3, 1, 1, 1), "float64")
    b = np.array([1.0, 2.0, 3.0])
    out = xconvt.conv_transpose3d(x, w, b, algorithm="fft", stride=3, output_padding=2)
    check(out, reference(x, w, b, stride=3, output_padding=2), "float64")
    assert np.all(out[0, 1, 1] == 2.0)


def test_strided_input_views_and_fresh_output():
    rng = np.random.default_rng(3)
    base = data(rng, (2, 6, 9, 8, 10), "float64")
    x = base[:, ::2, 1::2, :, ::-2]  # non-contiguous, negative strides
    w = data(rng, (3, 2, 4, 3, 5), "float64")[:, :, ::-1]
    out = xconvt.conv_transpose3d(x, w, algorithm="fft", stride=2, padding=1)
    check(out, reference(x, w, stride=2, padding=1), "float64")
    assert out.flags.c_contiguous and out.flags.owndata


# -------------------------------------------------------------- non-finite
NON_FINITE = {
    "nan-in-x": dict(x=[(0, 1, 2, 2, 2, np.nan)]),
    "inf-in-x-meets-zero-taps": dict(x=[(0, 0, 1, 3, 2, np.inf)], zero_w=True),
    "-inf-in-w": dict(w=[(1, 0, 1, 2, 0, -np.inf)]),
    "inf-meets-minus-inf": dict(x=[(0, 0, 2, 2, 2, np.inf), (0, 0, 2, 2, 3, -np.inf)]),
    "x-and-w": dict(x=[(0, 1, 0, 0, 0, np.inf)], w=[(0, 1, 0, 1, 1, np.inf),
                                                   (1, 0, 2, 0, 1, np.nan)]),
    "inf-bias": dict(x=[(0, 0, 4, 4, 4, -np.inf)], bias=[(1, np.inf)]),
}


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
@pytest.mark.parametrize("case", list(NON_FINITE), ids=list(NON_FINITE))
def test_non_finite_values_stay_local(case, dtype):
    """inf and NaN reach exactly the outputs they scatter to, as in PyTorch."""
    spec = NON_FINITE[case]
    rng = np.random.default_rng(11)
    x = data(rng, (1, 2, 5, 5, 5), dtype)
    w = data(rng, (2, 2, 3, 3, 2), dtype)
    b = data(rng, (2,), dtype)
    if spec.get("zero_w"):
        w[0, :, 1] = 0
    for idx in spec.get("x", []):
        x[idx[:-1]] = idx[-1]
    for idx in spec.get("w", []):
        w[idx[:-1]] = idx[-1]
    for idx in spec.get("bias", []):
        b[idx[0]] = idx[1]
    kw = dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1))
    with np.errstate(invalid="ignore"):
        ref = reference(x, w, b, **kw)
        out = xconvt.conv_transpose3d(x, w, b, algorithm="fft", **kw)
    if np.iscomplexobj(ref):
        bad = ~np.isfinite(ref)
        assert np.array_equal(~np.isfinite(out), bad)
        np.testing.assert_allclose(out[~bad], ref[~bad], rtol=1e-10, atol=1e-10)
    else:
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
        np.testing.assert_array_equal(np.isposinf(out), np.isposinf(ref))
        np.testing.assert_array_equal(np.isneginf(out), np.isneginf(ref))
        fin = np.isfinite(ref)
        check(out[fin], ref[fin], dtype)
    assert (~np.isfinite(ref)).any()


# ------------------------------------------------------- forced chunk paths
def _plan(x, w, budget, **kw):
    params = ConvParams.from_shapes(x.shape, w.shape, None, **kw)
    return make_plan(params, "numpy", x.dtype, budget)


@pytest.mark.parametrize(
    ("budget", "expect"),
    [
        (2**30, "whole"),
        (400_000, "channels"),  # output-channel / group / batch chunks
        (60_000, "weights"),    # weight spectra in input-channel pieces
        (30_000, "tiles"),      # overlap-add over spatial tiles
        (3_000, "inputs"),      # input spectra chunked (recomputed) and tiles
    ],
)
def test_budget_paths(budget, expect):
    rng = np.random.default_rng(4)
    x = data(rng, (3, 8, 7, 6, 9), "float64")
    w = data(rng, (8, 5, 3, 4, 3), "float64")
    b = data(rng, (10,), "float64")
    kw = dict(stride=(2, 1, 2), padding=(1, 2, 0), output_padding=(1, 0, 0), groups=2,
              dilation=(1, 1, 2))
    plan = _plan(x, w, budget, **kw)
    chunked = (plan.nb, plan.gc, plan.co) != (3, 2, 5)
    shape = (chunked, plan.ci < 4, plan.cw < 4, plan.n_tiles > 1)
    assert shape == {
        "whole": (False, False, False, False),
        "channels": (True, False, False, False),
        "weights": (True, False, True, False),
        "tiles": (True, False, True, True),
        "inputs": (True, True, True, True),
    }[expect]
    assert plan.workspace <= budget
    whole = xconvt.conv_transpose3d(x, w, b, algorithm="fft", **kw)
    with xconvt.memory_budget(budget):
        parts = xconvt.conv_transpose3d(x, w, b, algorithm="fft", **kw)
    np.testing.assert_allclose(parts, whole, rtol=1e-11, atol=1e-11)
    check(parts, reference(x, w, b, **kw), "float64")


def test_weight_spectra_cached_across_batch_chunks():
    rng = np.random.default_rng(5)
    x = data(rng, (16, 2, 6, 6, 6), "float32")
    w = data(rng, (2, 2, 3, 3, 3), "float32")
    plan = _plan(x, w, 100_000, stride=2)
    assert plan.nb < 16 and plan.cache_weights
    with xconvt.memory_budget(100_000):
        out = xconvt.conv_transpose3d(x, w, algorithm="fft", stride=2)
    check(out, reference(x, w, stride=2), "float32")


def test_overlap_add_large_kernel_float32():
    rng = np.random.default_rng(6)
    x = data(rng, (1, 1, 20, 18, 16), "float32")
    w = data(rng, (1, 1, 9, 7, 11), "float32")
    kw = dict(padding=(4, 3, 5), stride=(1, 2, 1))
    plan = _plan(x, w, 50_000, **kw)
    assert plan.n_tiles > 4 and plan.workspace <= 50_000
    with xconvt.memory_budget(50_000):
        out = xconvt.conv_transpose3d(x, w, algorithm="fft", **kw)
    check(out, reference(x, w, **kw), "float32")


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kw", "budget"),
    [
        ((1, 1, 40, 40, 40), (1, 1, 15, 15, 15), dict(padding=7), 2_000_000),
        ((2, 8, 16, 16, 16), (8, 8, 5, 5, 5), dict(stride=2), 1_000_000),
        ((1, 16, 24, 24, 24), (16, 16, 9, 9, 9), dict(padding=4), 1_500_000),
    ],
    ids=["tiles", "batch-phases", "channels"],
)
def test_workspace_stays_within_budget(x_shape, w_shape, kw, budget):
    """NumPy allocations (traced by tracemalloc) beyond the result stay under
    the budget, and the plan's estimate is not below what was allocated."""
    import tracemalloc

    rng = np.random.default_rng(10)
    x = data(rng, x_shape, "float32")
    w = data(rng, w_shape, "float32")
    plan = _plan(x, w, budget, **kw)
    with xconvt.memory_budget(budget):
        xconvt.conv_transpose3d(x, w, algorithm="fft", **kw)  # warm caches
        tracemalloc.start()
        try:
            out = xconvt.conv_transpose3d(x, w, algorithm="fft", **kw)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    used = peak - out.nbytes
    assert used <= plan.workspace <= budget, (used, plan.workspace, budget)


# ---------------------------------------------------------------- accuracy
@pytest.mark.parametrize(
    "kw", [dict(), dict(padding=15), dict(stride=2, padding=(3, 0, 7), dilation=(1, 2, 1))],
    ids=["full", "same", "strided"])
def test_float32_accuracy_31_kernel(kw, record_property):
    rng = np.random.default_rng(7)
    x = data(rng, (1, 2, 6, 5, 6), "float64")
    w = data(rng, (2, 2, 31, 31, 31), "float64")
    ref = reference(x, w, **kw)
    out = xconvt.conv_transpose3d(x.astype(np.float32), w.astype(np.float32),
                                  algorithm="fft", **kw)
    err = rel_err(out, ref)
    max_abs = float(np.abs(out.astype(np.float64) - ref).max())
    record_property("rel_l2", err)
    record_property("max_abs", max_abs)
    print(f"float32 31^3 {kw}: rel L2 {err:.2e}, max abs {max_abs:.2e}, "
          f"max |ref| {np.abs(ref).max():.2e}")
    assert err <= 1e-5
    out64 = xconvt.conv_transpose3d(x, w, algorithm="fft", **kw)
    assert rel_err(out64, ref) <= 1e-12


# -------------------------------------------------------- both libraries
CASES = [
    dict(x=(2, 4, 5, 6, 4), w=(4, 3, 3, 2, 4),
         kw=dict(stride=(2, 1, 3), padding=(1, 0, 2), output_padding=(1, 0, 2),
                 groups=2, dilation=(1, 2, 1)), budget=None),
    dict(x=(1, 2, 9, 7, 8), w=(2, 2, 5, 5, 5), kw=dict(padding=2), budget=5_000),
    dict(x=(3, 1, 6, 6, 6), w=(1, 1, 7, 7, 7), kw=dict(stride=2), budget=20_000),
]


@pytest.mark.parametrize("case", CASES, ids=["phases", "tiled", "strided-tiled"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64"])
def test_fft_on_each_library(xp, case, dtype):
    rng = np.random.default_rng(8)
    x = data(rng, case["x"], dtype)
    w = data(rng, case["w"], dtype)
    b = data(rng, (case["w"][1] * case["kw"].get("groups", 1),), dtype)
    budget = case["budget"] or xconvt.get_memory_budget()
    with xconvt.memory_budget(budget):
        out = xconvt.conv_transpose3d(xp.asarray(x), xp.asarray(w), xp.asarray(b),
                                      algorithm="fft", **case["kw"])
    assert type(out) is type(xp.asarray(x))
    check(out, reference(x, w, b, **case["kw"]), dtype)


# ------------------------------------------------------------- big volume
@pytest.mark.slow
def test_cpu_one_channel_256_cubed_with_31_kernel():
    """The default budget tiles this instead of exhausting memory."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 1, 256, 256, 256), dtype=np.float32)
    w = rng.standard_normal((1, 1, 31, 31, 31), dtype=np.float32)
    plan = _plan(x, w, xconvt.get_memory_budget(), padding=15)
    assert plan.n_tiles > 1 and plan.workspace <= xconvt.get_memory_budget()
    out = xconvt.conv_transpose3d(x, w, algorithm="fft", padding=15)
    assert out.shape == (1, 1, 256, 256, 256)
    # Spot checks against the definition (a 31^3 dot product per voxel).
    x64, w64 = x[0, 0].astype(np.float64), w[0, 0].astype(np.float64)
    xp_ = np.pad(x64, 30)
    for o in [(0, 0, 0), (255, 255, 255), (128, 7, 200), (15, 240, 31), (100, 100, 100)]:
        # out[o] = sum_k x[o + 15 - k] w[k]
        win = xp_[tuple(slice(o[a] + 15 + 30 - 30, o[a] + 15 + 30 + 1) for a in range(3))]
        want = np.sum(win[::-1, ::-1, ::-1] * w64)
        assert abs(out[0, 0][o] - want) <= 1e-4 * np.sqrt(np.sum(w64**2)) * 4


def test_cuda_fast_lengths_without_cupy():
    """The 7-smooth sizes used to plan ``kind="cupy"`` where CuPy is absent."""
    from xconvt.backends.fft.sizes import smooth7_len as _smooth7_len

    def smooth(n):
        for p in (2, 3, 5, 7):
            while n % p == 0:
                n //= p
        return n == 1

    for target in range(1, 1200):
        n = _smooth7_len(target)
        assert n >= target and smooth(n)
        assert not any(smooth(m) for m in range(target, n))


# ------------------------------------------------- CuPy one-pass plan tables
def _one_pass_numpy(params, x, w, b):
    """The one-pass CuPy FFT (``xconvt_fft_*`` kernels) replayed in NumPy from
    the plan's tables, so their geometry is checked where no GPU exists."""
    import scipy.fft as sfft

    plan = fftmod.OnePassPlan(params, "float64", fast_len=sfft.next_fast_len)
    fd, fh, fw = fs = plan.fft_shape
    nd, nh, nw = plan.counts
    n, g = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    xpad = np.zeros((n * g * cig,) + fs)
    isz = params.in_size
    xpad[:, :isz[0], :isz[1], :isz[2]] = x.reshape((n * g * cig,) + isz)
    wtab = np.asarray(plan.wtab)
    off = plan.offsets
    tabs = [wtab[off[0]:off[0] + nd * fd].reshape(nd, fd),
            wtab[off[1]:off[1] + nh * fh].reshape(nh, fh),
            wtab[off[2]:off[2] + nw * fw].reshape(nw, fw)]
    wq = w.reshape((g * cig * cog,) + params.kernel)
    wpad = np.zeros((nd, nh, nw, g * cig * cog) + fs)
    for pd, ph, pw in np.ndindex(nd, nh, nw):
        kd, kh, kw = tabs[0][pd], tabs[1][ph], tabs[2][pw]
        ok = (kd[:, None, None] >= 0) & (kh[None, :, None] >= 0) & (kw[None, None, :] >= 0)
        vals = wq[:, np.maximum(kd, 0)[:, None, None], np.maximum(kh, 0)[None, :, None],
                  np.maximum(kw, 0)[None, None, :]]
        wpad[pd, ph, pw] = np.where(ok, vals, 0.0)
    p = plan.n_phases
    xs = sfft.rfftn(xpad, axes=(-3, -2, -1)).reshape(n, g, cig, -1)
    ws = sfft.rfftn(wpad, axes=(-3, -2, -1)).reshape(p, g, cig, cog, -1)
    assert xs.shape[-1] == plan.spec
    ys = np.einsum("ngcf,pgcof->pngof", xs, ws)
    yr = sfft.irfftn(ys.reshape((p * n * g * cog, fd, fh, fw // 2 + 1)), s=fs,
                     axes=(-3, -2, -1)).reshape((nd, nh, nw, n, g * cog) + fs)
    otab = np.asarray(plan.otab).reshape(-1, 2)
    od, oh, ow = params.out_size
    td, th, tw = otab[:od], otab[od:od + oh], otab[od + oh:]
    ok = ((td[:, 1] >= 0)[:, None, None] & (th[:, 1] >= 0)[None, :, None]
          & (tw[:, 1] >= 0)[None, None, :])
    c = np.maximum
    got = yr[c(td[:, 0], 0)[:, None, None], c(th[:, 0], 0)[None, :, None],
             c(tw[:, 0], 0)[None, None, :], :, :,
             c(td[:, 1], 0)[:, None, None], c(th[:, 1], 0)[None, :, None],
             c(tw[:, 1], 0)[None, None, :]]  # (OD, OH, OW, N, C)
    out = np.where(ok[..., None, None], got, 0.0).transpose(3, 4, 0, 1, 2)
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1, 1)
    return out


@settings(max_examples=80, deadline=None)
@given(cfg=configs(), seed=st.integers(0, 2**32 - 1))
def test_one_pass_plan_tables(cfg, seed):
    """The CuPy one-pass path's tables give the reference's answer."""
    rng = np.random.default_rng(seed)
    x = data(rng, cfg["x_shape"], "float64")
    w = data(rng, cfg["w_shape"], "float64")
    b = data(rng, (cfg["cout"],), "float64") if cfg["bias"] else None
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    **cfg["kw"])
    xb = x if x.ndim == 5 else x[None]
    ref = reference(xb, w, b, **cfg["kw"])
    if not any(all(ph.taps for ph in t) for t in params.phases()):
        assert fftmod.one_pass_plan(params, "float64", 2**40) is None  # bias only
        return
    check(_one_pass_numpy(params, xb, w, b), ref, "float64")


def test_one_pass_plan_budget_and_dtypes():
    params = ConvParams.from_shapes((2, 4, 16, 16, 16), (4, 4, 7, 7, 7), padding=3)
    plan = fftmod.one_pass_plan(params, "float32", 2**40)
    assert plan is not None and plan.n_phases == 1
    assert plan.workspace > 0 and plan.macs == 2 * 4 * 4 * plan.spec
    assert fftmod.one_pass_plan(params, "float32", plan.workspace - 1) is None
    assert fftmod.one_pass_plan(params, "complex64", 2**40) is None
    assert fftmod.one_pass_plan(params, "float64", 2**40).workspace > plan.workspace
    # One non-trivial transform axis: cuFFT's real N-D plans refuse it.
    line = ConvParams.from_shapes((1, 1, 1, 1, 9), (1, 1, 1, 1, 3))
    assert fftmod.one_pass_plan(line, "float32", 2**40) is None
