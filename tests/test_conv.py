"""Every registered algorithm against the independent reference (NumPy arrays).

Property tests draw random valid configurations (tests/strategies.py); the
explicit cases (tests/cases.py) pin down geometries that have broken
transposed convolutions before (stride phases, output_padding past the
written region, dilation sharing a factor with the stride, kernels larger
than the input, pure upsampling).  Also: non-contiguous and read-only
inputs, ``output_size``, zero batch, the memory budget, NaN locality.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import xconvt

from .cases import CASES, case_arrays
from .helpers import ALL_DTYPES, assert_close
from .helpers import algorithms as registered_algorithms
from .reference import conv_transpose3d_ref, out_size_ref, triple
from .strategies import Config, configs, seeds

ALGORITHMS = registered_algorithms("numpy")


def _snapshot(*arrays):
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def _unchanged(before, *arrays):
    for old, new in zip(before, arrays):
        if old is not None:
            assert np.array_equal(old, new), "an argument was modified in place"


def check_result(out, ref, dtype, *inputs):
    """The contract on a NumPy result: a new ndarray of the input's dtype, right values."""
    assert type(out) is np.ndarray, type(out)
    assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    for a in inputs:
        if a is not None:
            assert not np.shares_memory(out, a), "result shares memory with an argument"
    assert_close(out, ref, dtype)


# ----------------------------------------------------------- property tests
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(cfg=configs(), seed=seeds)
def test_matches_reference(algorithm, dtype, cfg, seed):
    x, w, b = cfg.arrays(seed, dtype)
    before = _snapshot(x, w, b)
    out = xconvt.conv_transpose3d(x, w, b, **cfg.kwargs, algorithm=algorithm)
    ref = cfg.reference(x, w, b)
    assert ref.shape == cfg.output_shape
    check_result(out, ref, dtype, x, w, b)
    _unchanged(before, x, w, b)


@given(cfg=configs())
@settings(max_examples=300)
def test_output_shape_matches_formula(cfg):
    assert xconvt.output_shape(cfg.input_shape, cfg.weight_shape, **cfg.kwargs) \
        == cfg.output_shape


def _relayout(a, how):
    """The same values (or a view derived from them) in an unusual memory layout."""
    if a is None:
        return None
    if how == "contiguous":
        return a
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "transposed":  # C-contiguous in a permuted order, transposed back
        perm = tuple(reversed(range(a.ndim)))
        inv = tuple(np.argsort(perm))
        return np.ascontiguousarray(a.transpose(perm)).transpose(inv)
    if how == "negative":  # x[..., ::-1]: negative last-axis stride (new values order)
        return a[..., ::-1]
    if how == "flipped_all":  # every axis reversed
        return a[(slice(None, None, -1),) * a.ndim]
    if how == "sliced":  # every other element of a larger buffer, offset start
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), a.dtype)
        view = big[(slice(1, None, 2),) * a.ndim]
        view[...] = a
        return view
    if how == "broadcast":  # zero strides along the last axis, read-only
        return np.broadcast_to(a[..., :1], a.shape)
    raise AssertionError(how)


LAYOUTS = ("fortran", "transposed", "negative", "flipped_all", "sliced", "broadcast")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds,
       x_layout=st.sampled_from(("contiguous",) + LAYOUTS),
       w_layout=st.sampled_from(("contiguous",) + LAYOUTS),
       b_layout=st.sampled_from(("contiguous", "negative", "sliced", "broadcast")))
def test_noncontiguous_inputs(algorithm, dtype, cfg, seed, x_layout, w_layout, b_layout):
    x, w, b = cfg.arrays(seed, dtype)
    x, w, b = _relayout(x, x_layout), _relayout(w, w_layout), _relayout(b, b_layout)
    before = _snapshot(x, w, b)
    out = xconvt.conv_transpose3d(x, w, b, **cfg.kwargs, algorithm=algorithm)
    check_result(out, cfg.reference(x, w, b), dtype, x, w, b)
    _unchanged(before, x, w, b)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(cfg=configs(), seed=seeds, data=st.data())
def test_output_size(algorithm, cfg, seed, data):
    """``output_size=`` picks output_padding like PyTorch's module, overriding the argument."""
    stride = triple(cfg.stride)
    min_size = out_size_ref(cfg.in_size, cfg.kernel, stride, cfg.padding, 0, cfg.dilation)
    extra = tuple(data.draw(st.integers(0, s - 1), label="extra") for s in stride)
    sizes = tuple(m + e for m, e in zip(min_size, extra))
    assume(min(sizes) >= 1)
    form = data.draw(st.sampled_from(["spatial", "spatial_list", "full", "numpy"]),
                     label="form")
    lead = cfg.output_shape[:-3]
    output_size = {
        "spatial": sizes,
        "spatial_list": list(sizes),
        "full": lead + sizes,  # 5 values batched, 4 unbatched
        "numpy": np.array(lead + sizes, dtype=np.int64),
    }[form]
    x, w, b = cfg.arrays(seed, "float64")
    out = xconvt.conv_transpose3d(x, w, b, **cfg.kwargs, output_size=output_size,
                                  algorithm=algorithm)
    ref = cfg.reference(x, w, b, output_padding=extra)
    assert out.shape == lead + sizes
    check_result(out, ref, "float64", x, w, b)


# ----------------------------------------------------------- explicit cases
# (the geometries live in tests/cases.py, shared with the GPU tests)
@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_explicit_cases(xp, algorithms, name, dtype):
    """Every algorithm of the array library ``xp`` (NumPy; CuPy on a GPU machine)."""
    x, w, b, kw = case_arrays(name, dtype)
    xd, wd = xp.asarray(x), xp.asarray(w)
    bd = None if b is None else xp.asarray(b)
    ref = conv_transpose3d_ref(x, w, b, **kw)
    for algorithm in algorithms(xp.__name__):
        out = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
        assert type(out) is type(xd), (algorithm, type(out))
        assert out.dtype == xd.dtype and out.shape == ref.shape
        assert_close(out, ref, dtype, what=algorithm)
        if xp is np:
            check_result(out, ref, dtype, x, w, b)


def test_seed_example_shape():
    x, w, b, kw = case_arrays("seed_example", "float32")
    assert xconvt.output_shape(x.shape, w.shape, **kw) == (2, 33, 11, 6, 9)
    assert xconvt.conv_transpose3d(x, w, b, **kw).shape == (2, 33, 11, 6, 9)


@pytest.mark.parametrize("algorithm", ["auto", "measure"])
@pytest.mark.parametrize("name", ["seed_example", "unet_upsample_k2s2",
                                  "large_kernel_fft_regime", "asymmetric_everything"])
def test_auto_and_measure(algorithm, name):
    x, w, b, kw = case_arrays(name, "float32")
    out = xconvt.conv_transpose3d(x, w, b, **kw, algorithm=algorithm)
    check_result(out, conv_transpose3d_ref(x, w, b, **kw), "float32", x, w, b)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("unbatched", [False, True])
def test_default_algorithm_every_dtype(dtype, unbatched):
    x, w, b, kw = case_arrays("dilation_shares_stride_factor", dtype)
    if unbatched:
        x = x[0]
    out = xconvt.conv_transpose3d(x, w, b, **kw)
    check_result(out, conv_transpose3d_ref(x, w, b, **kw), dtype, x, w, b)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_zero_batch(algorithm, dtype):
    x = np.zeros((0, 4, 3, 2, 5), dtype)
    w = np.ones((4, 3, 2, 3, 2), dtype)
    b = np.ones(6, dtype)
    out = xconvt.conv_transpose3d(x, w, b, stride=2, groups=2, padding=(0, 1, 0),
                                  algorithm=algorithm)
    assert type(out) is np.ndarray and out.dtype == np.dtype(dtype)
    assert out.shape == (0, 6, 6, 3, 10)


@pytest.mark.parametrize("name,budget", [
    ("depthwise_groups4", 1), ("large_kernel_fft_regime", 1), ("asymmetric_everything", 1),
    ("depthwise_groups4", 4096), ("large_kernel_fft_regime", 4096),
    ("realistic_decoder", 2**14), ("realistic_decoder", 2**16), ("seed_example", 2**16),
])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tiny_memory_budget(algorithm, name, budget):
    """Backends chunk to the budget; answers must not change, however small it is."""
    x, w, b, kw = case_arrays(name, "float64")
    with xconvt.memory_budget(budget):
        out = xconvt.conv_transpose3d(x, w, b, **kw, algorithm=algorithm)
        assert xconvt.get_memory_budget() == budget
    check_result(out, conv_transpose3d_ref(x, w, b, **kw), "float64", x, w, b)


# Workspace the NumPy backends may hold beyond the result: the budget, with
# room for one indivisible piece and bookkeeping.  Measured with tracemalloc,
# which sees every NumPy allocation (not BLAS/pocketfft internals).
BUDGET_CASES = {
    "decoder": ((4, 16, 16, 16, 16), (16, 16, 3, 3, 3),
                dict(stride=2, padding=1, output_padding=1)),
    "large_kernel": ((2, 8, 12, 12, 12), (8, 8, 7, 7, 7), dict(padding=3)),
    "unet": ((2, 16, 16, 16, 16), (16, 8, 2, 2, 2), dict(stride=2)),
    "groups": ((2, 16, 12, 12, 12), (16, 4, 3, 3, 3), dict(groups=4, padding=1)),
}


@pytest.mark.parametrize("budget", [2**20, 2**22])
@pytest.mark.parametrize("name", sorted(BUDGET_CASES))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_memory_budget_bounds_workspace(algorithm, name, budget):
    import tracemalloc

    xs, ws, kw = BUDGET_CASES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    out_bytes = 4 * int(np.prod(xconvt.output_shape(xs, ws, **kw)))
    with xconvt.memory_budget(budget):
        tracemalloc.start()
        try:
            out = xconvt.conv_transpose3d(x, w, **kw, algorithm=algorithm)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert out.nbytes == out_bytes
    extra = peak - out_bytes
    allowed = 2 * budget + 2**20
    assert extra <= allowed, (
        f"{algorithm} held {extra / 2**20:.2f} MiB of workspace beyond the "
        f"{out_bytes / 2**20:.2f} MiB result under a {budget / 2**20:.0f} MiB budget"
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_byte_order(algorithm):
    """Non-native byte order: computed correctly, or a TypeError that says why."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 3, 3, 3))
    w = rng.standard_normal((2, 2, 2, 2, 2))
    ref = conv_transpose3d_ref(x, w, stride=2)
    swapped = w.astype(w.dtype.newbyteorder())
    out = xconvt.conv_transpose3d(x.astype(x.dtype.newbyteorder()), swapped, stride=2,
                                  algorithm=algorithm)
    assert_close(out, ref, "float64")
    try:
        out = xconvt.conv_transpose3d(x, swapped, stride=2, algorithm=algorithm)
    except TypeError as exc:
        msg = str(exc)
        assert "byte order" in msg or swapped.dtype.str in msg, (
            f"the message does not say how the dtypes differ: {msg!r}")
    else:
        assert_close(out, ref, "float64")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_int_list_tuple_numpy_int_arguments(algorithm):
    """Every accepted spelling of the int arguments gives the reference's answer."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 3, 4, 2))
    w = rng.standard_normal((4, 3, 3, 2, 2))
    ref = conv_transpose3d_ref(x, w, stride=(2, 2, 2), padding=(1, 1, 1),
                               output_padding=(1, 1, 1), groups=2, dilation=(1, 1, 1))
    for spell in (lambda v: v, lambda v: (v,) * 3, lambda v: [v] * 3, np.int64,
                  lambda v: (np.int32(v),) * 3):
        out = xconvt.conv_transpose3d(x, w, None, spell(2), spell(1), spell(1),
                                      np.int64(2), spell(1), algorithm=algorithm)
        check_result(out, ref, "float64", x, w)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_stays_local(algorithm):
    """Like PyTorch, a NaN in the input reaches only the outputs it scatters to."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 5, 5, 5))
    w = rng.standard_normal((2, 2, 3, 3, 3))
    kw = dict(stride=2, padding=1)
    x_nan = x.copy()
    x_nan[0, 1, 2, 2, 2] = np.nan
    spot = np.zeros_like(x)
    spot[0, 1, 2, 2, 2] = 1.0
    reached = conv_transpose3d_ref(spot, np.ones_like(w), **kw) != 0
    out = xconvt.conv_transpose3d(x_nan, w, **kw, algorithm=algorithm)
    assert np.isnan(out[reached]).all()
    x_zero = x.copy()
    x_zero[0, 1, 2, 2, 2] = 0.0
    ref = conv_transpose3d_ref(x_zero, w, **kw)
    assert np.isfinite(out[~reached]).all(), "NaN leaked to outputs it does not reach"
    assert_close(out[~reached], ref[~reached], "float64")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_float32_is_not_computed_in_reduced_precision(algorithm):
    """float32 inputs give float32 results accurate to float32 (no float16/TF32 path):
    a case where large and small terms mix, so a bf16/tf32 shortcut would show."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((1, 8, 4, 4, 4)) * 1e3).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3, 3)).astype(np.float32)
    out = xconvt.conv_transpose3d(x, w, stride=1, padding=1, algorithm=algorithm)
    check_result(out, conv_transpose3d_ref(x, w, padding=1), "float32", x, w)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_result_is_writeable_and_independent(algorithm):
    x, w, b, kw = case_arrays("unet_upsample_k2s2", "float32")
    out = xconvt.conv_transpose3d(x, w, b, **kw, algorithm=algorithm)
    assert out.flags.writeable
    ref = conv_transpose3d_ref(x, w, b, **kw)
    out[...] = 0  # must not touch the inputs
    again = xconvt.conv_transpose3d(x, w, b, **kw, algorithm=algorithm)
    assert_close(again, ref, "float32")


def test_config_strategy_covers_the_brief():
    """Sanity check of the strategy itself: it yields valid, varied configurations."""
    seen = set()

    @given(configs())
    @settings(max_examples=200)
    def collect(cfg):
        assert min(cfg.out_size) >= 1
        assert isinstance(cfg, Config)
        seen.add((cfg.batch, cfg.groups, cfg.kernel == (1, 1, 1), cfg.bias))

    collect()
    assert {b for b, *_ in seen} == {None, 0, 1, 2}
    assert {g for _, g, *_ in seen} == {1, 2, 3}
    assert any(k for _, _, k, _ in seen)
