"""CuPy arrays on a CUDA device: every GPU algorithm against the float64 reference.

Marked ``gpu``; the whole module is skipped, with a reason, where CuPy or a
CUDA device is missing.  ``slow`` marks the > 2**31-element test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from .cases import CASES, case_arrays
from .helpers import algorithms, assert_close, cuda_device_count, run_planner, tolerance
from .reference import conv_transpose3d_ref
from .strategies import configs, seeds

cupy = pytest.importorskip("cupy", reason="needs CuPy and a CUDA device")
if cuda_device_count() == 0:
    pytest.skip("needs CuPy and a CUDA device", allow_module_level=True)

import xconvt  # noqa: E402

pytestmark = pytest.mark.gpu

GPU_ALGORITHMS = algorithms("cupy")
GPU_DTYPES = ("float64", "float32", "float16")


def _dev(*arrays):
    return [None if a is None else cupy.asarray(a) for a in arrays]


def _check(out, ref, dtype, like):
    """A CuPy result on ``like``'s device with ``dtype`` and the reference's values."""
    assert isinstance(out, cupy.ndarray), type(out)
    assert out.device == like.device, (out.device, like.device)
    assert out.dtype == np.dtype(dtype)
    assert out.shape == ref.shape
    assert_close(out.get(), ref, dtype)


# ----------------------------------------------------------- property tests
@pytest.mark.parametrize("dtype", GPU_DTYPES)
@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
@given(cfg=configs(), seed=seeds)
def test_matches_reference(algorithm, dtype, cfg, seed):
    x, w, b = cfg.arrays(seed, dtype)
    xd, wd, bd = _dev(x, w, b)
    out = xconvt.conv_transpose3d(xd, wd, bd, **cfg.kwargs, algorithm=algorithm)
    _check(out, cfg.reference(x, w, b), dtype, xd)
    assert cupy.array_equal(xd, cupy.asarray(x)), "input modified"


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds)
def test_matches_reference_complex(algorithm, dtype, cfg, seed):
    x, w, b = cfg.arrays(seed, dtype)
    xd, wd, bd = _dev(x, w, b)
    out = xconvt.conv_transpose3d(xd, wd, bd, **cfg.kwargs, algorithm=algorithm)
    _check(out, cfg.reference(x, w, b), dtype, xd)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds,
       layout=st.sampled_from(["negative", "transposed", "sliced", "flipped_all"]))
def test_noncontiguous(algorithm, dtype, cfg, seed, layout):
    x, w, b = cfg.arrays(seed, dtype)
    xd, wd, bd = _dev(x, w, b)
    if layout == "negative":
        xd, wd = xd[..., ::-1], wd[..., ::-1]
    elif layout == "flipped_all":
        xd = xd[(slice(None, None, -1),) * xd.ndim]
    elif layout == "transposed":
        perm = tuple(reversed(range(xd.ndim)))
        xd = cupy.ascontiguousarray(xd.transpose(perm)).transpose(perm)
    elif layout == "sliced":
        big = cupy.zeros(tuple(2 * n + 1 for n in xd.shape), xd.dtype)
        big[(slice(1, None, 2),) * xd.ndim] = xd
        xd = big[(slice(1, None, 2),) * xd.ndim]
    ref = cfg.reference(xd.get(), wd.get(), b)
    out = xconvt.conv_transpose3d(xd, wd, bd, **cfg.kwargs, algorithm=algorithm)
    _check(out, ref, dtype, xd)


# (the explicit cases run on CuPy through the ``xp`` fixture in test_conv.py)


@pytest.mark.parametrize("algorithm", ("auto", "measure") + GPU_ALGORITHMS)
def test_zero_batch_and_auto(algorithm):
    xd = cupy.zeros((0, 4, 3, 2, 5), cupy.float32)
    wd = cupy.ones((4, 3, 2, 3, 2), cupy.float32)
    out = xconvt.conv_transpose3d(xd, wd, stride=2, groups=2, algorithm=algorithm)
    assert isinstance(out, cupy.ndarray) and out.shape == (0, 6, 6, 5, 10)
    assert out.dtype == cupy.float32
    x, w, b, kw = case_arrays("seed_example", "float32")
    xd, wd, bd = _dev(x, w, b)
    out = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
    _check(out, conv_transpose3d_ref(x, w, b, **kw), "float32", xd)


@pytest.mark.parametrize("budget", [1, 2**16])
@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
def test_tiny_memory_budget(algorithm, budget):
    x, w, b, kw = case_arrays("large_kernel_fft_regime", "float64")
    xd, wd, bd = _dev(x, w, b)
    with xconvt.memory_budget(budget):
        out = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
    _check(out, conv_transpose3d_ref(x, w, b, **kw), "float64", xd)


# ------------------------------------------------------------ vs torch CUDA
@pytest.fixture
def torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False  # our float32 is true float32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield torch
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
def test_against_torch_cuda(torch_cuda, algorithm, name, dtype):
    torch = torch_cuda
    x, w, b, kw = case_arrays(name, dtype)
    xd, wd, bd = _dev(x, w, b)
    tx, tw = torch.from_dlpack(xd), torch.from_dlpack(wd)
    tb = None if bd is None else torch.from_dlpack(bd)
    expected = torch.nn.functional.conv_transpose3d(tx, tw, tb, **kw).cpu().numpy()
    out = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
    assert out.shape == expected.shape
    assert_close(out.get(), expected, tol={"float64": 1e-10, "float32": 1e-5}[dtype])


# --------------------------------------------------------- streams, devices
@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
def test_non_default_stream(algorithm):
    x, w, b, kw = case_arrays("realistic_decoder", "float32")
    ref = conv_transpose3d_ref(x, w, b, **kw)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        xd, wd, bd = _dev(x, w, b)
        out = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
        host = out.get(stream=stream)  # waits for `stream` only
    stream.synchronize()
    assert isinstance(out, cupy.ndarray)
    assert_close(host, ref, "float32")
    # and again from a second, concurrent stream
    other = cupy.cuda.Stream(non_blocking=True)
    with other:
        out2 = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
        host2 = out2.get(stream=other)
    assert_close(host2, ref, "float32")


@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
def test_input_on_device_1(algorithm):
    if cuda_device_count() < 2:
        pytest.skip("needs 2 CUDA devices")
    x, w, b, kw = case_arrays("asymmetric_everything", "float64")
    ref = conv_transpose3d_ref(x, w, b, **kw)
    with cupy.cuda.Device(1):
        xd, wd, bd = _dev(x, w, b)
    assert xd.device.id == 1
    # called while device 0 is current: the result lives with the input
    with cupy.cuda.Device(0):
        out = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
    assert out.device.id == 1
    _check(out, ref, "float64", xd)
    with cupy.cuda.Device(1):
        out = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
    _check(out, ref, "float64", xd)


def test_arrays_on_different_devices_rejected():
    if cuda_device_count() < 2:
        pytest.skip("needs 2 CUDA devices")
    with cupy.cuda.Device(0):
        xd = cupy.ones((1, 2, 3, 3, 3))
    with cupy.cuda.Device(1):
        wd = cupy.ones((2, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="device"):
        xconvt.conv_transpose3d(xd, wd)


def test_mixed_numpy_and_cupy_rejected():
    x, w, b, kw = case_arrays("seed_example", "float32")
    with pytest.raises(TypeError, match="weight"):
        xconvt.conv_transpose3d(cupy.asarray(x), w)
    with pytest.raises(TypeError, match="weight"):
        xconvt.conv_transpose3d(x, cupy.asarray(w))
    with pytest.raises(TypeError, match="bias"):
        xconvt.conv_transpose3d(cupy.asarray(x), cupy.asarray(w), b)


@pytest.mark.parametrize("dtype", ["int32", "bool"])
def test_integer_cupy_arrays_rejected(dtype):
    xd = cupy.ones((1, 2, 3, 3, 3), dtype)
    wd = cupy.ones((2, 2, 2, 2, 2), dtype)
    with pytest.raises(TypeError, match=f"dtype {dtype}"):
        xconvt.conv_transpose3d(xd, wd)


@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
def test_repeatable_bits(algorithm):
    x, w, b, kw = case_arrays("realistic_decoder", "float32")
    xd, wd, bd = _dev(x, w, b)
    first = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
    for _ in range(3):
        again = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm)
        assert cupy.array_equal(first, again)


# -------------------------------------------------------------------- layer
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_layer_on_cuda(device):
    m = xconvt.ConvTranspose3d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2,
                               device=device, rng=0)
    assert isinstance(m.weight, cupy.ndarray) and isinstance(m.bias, cupy.ndarray)
    assert m.weight.device.id == 0 and m.weight.dtype == cupy.float32
    assert m.device == "cuda:0"
    for arr in m.state_dict().values():
        assert isinstance(arr, cupy.ndarray)
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3, 3)).astype(np.float32)
    ref = conv_transpose3d_ref(x, m.weight.get(), m.bias.get(), stride=2, padding=1,
                               output_padding=1, groups=2)
    xd = cupy.asarray(x)
    _check(m(xd), ref, "float32", xd)
    with pytest.raises(ValueError, match="matching device="):
        m(x)  # NumPy input against CuPy weights: the parameters never move
    # same rng seed on the CPU draws the same weights
    cpu = xconvt.ConvTranspose3d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                 groups=2, rng=0)
    np.testing.assert_array_equal(cpu.weight, m.weight.get())
    # a NumPy state dict loads onto the device
    m.load_state_dict(cpu.state_dict())
    assert isinstance(m.weight, cupy.ndarray)


def test_layer_on_cuda_1():
    if cuda_device_count() < 2:
        pytest.skip("needs 2 CUDA devices")
    m = xconvt.ConvTranspose3d(2, 3, 2, device="cuda:1", dtype="float64", rng=0)
    assert m.weight.device.id == 1
    with cupy.cuda.Device(1):
        xd = cupy.asarray(np.random.default_rng(0).standard_normal((1, 2, 3, 3, 3)))
    out = m(xd)
    assert out.device.id == 1
    _check(out, conv_transpose3d_ref(xd.get(), m.weight.get(), m.bias.get()), "float64", xd)


# ------------------------------------------------------- > 2**31 elements
def _expected_at(x_host_gather, w, idx, in_size, stride, padding, dilation):
    """out[0, 0, idx] from the definition: sum over taps that land on each index."""
    total = np.zeros(len(idx), np.float64)
    kernel = w.shape[2:]
    for k in itertools.product(*(range(n) for n in kernel)):
        src = np.empty_like(idx)
        valid = np.ones(len(idx), bool)
        for a in range(3):
            t = idx[:, a] + padding - k[a] * dilation
            valid &= (t % stride == 0)
            src[:, a] = t // stride
            valid &= (src[:, a] >= 0) & (src[:, a] < in_size[a])
        if valid.any():
            vals = x_host_gather(src[valid])
            total[valid] += vals * float(w[(0, 0) + k])
    return total


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("geometry", ["k2s2", "k3s2p1op1"])
@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
def test_output_past_2_31_elements(algorithm, geometry, dtype):
    """(1, 1, 520, 512, 1024) -> (1, 1, 1040, 1024, 2048): 2.18e9 > 2**31 outputs."""
    in_size = (520, 512, 1024)
    kernel, kw = {"k2s2": (2, dict(stride=2)),
                  "k3s2p1op1": (3, dict(stride=2, padding=1, output_padding=1))}[geometry]
    itemsize = np.dtype(dtype).itemsize
    need = 9 * np.prod(in_size) * itemsize + 2**30  # input + output (8x) + slack
    if cupy.cuda.runtime.memGetInfo()[0] < need:
        pytest.skip(f"needs {need / 2**30:.1f} GiB of free device memory")
    rs = cupy.random.RandomState(0)
    xd = rs.standard_normal((1, 1) + in_size, dtype=np.float32).astype(dtype)
    w = np.random.default_rng(0).uniform(0.5, 1.5, (1, 1) + (kernel,) * 3).astype(dtype)
    out = xconvt.conv_transpose3d(xd, cupy.asarray(w), **kw, algorithm=algorithm)
    out_size = (1040, 1024, 2048)
    assert out.shape == (1, 1) + out_size and out.dtype == np.dtype(dtype)
    assert out.size > 2**31

    total = int(np.prod(out_size))
    rng = np.random.default_rng(1)
    flat = np.concatenate([
        np.arange(0, 64), np.arange(2**31 - 64, 2**31 + 64),
        np.arange(total - 64, total), rng.integers(0, total, 2000),
        rng.integers(2**31, total, 2000),
    ])
    idx = np.stack(np.unravel_index(flat, out_size), axis=1).astype(np.int64)

    def gather(src):
        s = cupy.asarray(src)
        return xd[0, 0, s[:, 0], s[:, 1], s[:, 2]].get().astype(np.float64)

    expected = _expected_at(gather, w.astype(np.float64), idx, in_size, 2,
                            kw.get("padding", 0), 1)
    d = cupy.asarray(idx)
    got = out[0, 0, d[:, 0], d[:, 1], d[:, 2]].get().astype(np.float64)
    tol = tolerance(dtype) * 10
    assert np.all(np.abs(got - expected) <= tol * (np.abs(expected) + 1)), \
        np.max(np.abs(got - expected))
    # and whole planes at the far end, against the reference on the input's tail
    tail_in = xd[:, :, -3:, -3:, -3:].get()
    tail_ref = conv_transpose3d_ref(tail_in, w, **kw)
    n_ok = 2  # trailing output planes that only depend on the last 3 input planes
    got_tail = out[:, :, -n_ok:, -n_ok:, -n_ok:].get().astype(np.float64)
    assert_close(got_tail, tail_ref[:, :, -n_ok:, -n_ok:, -n_ok:], tol=tol)


@pytest.mark.parametrize("algorithm", GPU_ALGORITHMS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_values(algorithm, dtype):
    """inf and NaN: the FFT path puts them exactly where PyTorch's CPU does.

    The direct kernels, like cuDNN, also multiply non-finite weights by the
    zero padding around the input (0 * inf = NaN), so they may mark more
    outputs NaN; they never lose a non-finite output, and agree elsewhere.
    """
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 5, 6, 5)).astype(dtype)
    w = rng.standard_normal((2, 3, 3, 3, 2)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    x[0, 1, 2, 2, 2] = np.nan
    x[1, 0, 4, 0, 1] = np.inf
    w[1, 2, 0, 1, 1] = -np.inf
    kw = dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1))
    with np.errstate(invalid="ignore"):
        ref = conv_transpose3d_ref(x, w, b, **kw)
    xd, wd, bd = _dev(x, w, b)
    out = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm=algorithm).get()
    fin = np.isfinite(ref)
    assert fin.any() and not fin.all()
    if algorithm == "fft":
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
        np.testing.assert_array_equal(np.isposinf(out), np.isposinf(ref))
        np.testing.assert_array_equal(np.isneginf(out), np.isneginf(ref))
    else:
        assert not np.isfinite(out[~fin]).any()
        assert np.isnan(out[np.isnan(ref)]).all()
        fin &= np.isfinite(out)
    assert_close(out[fin], ref[fin], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fft_one_pass_and_chunked_paths_agree(dtype):
    """The one-pass FFT (default budget) and the chunked FFT (small budget)."""
    x, w, b, kw = case_arrays("large_kernel_fft_regime", dtype)
    xd, wd, bd = _dev(x, w, b)
    one = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm="fft")
    with xconvt.memory_budget(2**16):
        chunked = xconvt.conv_transpose3d(xd, wd, bd, **kw, algorithm="fft")
    ref = conv_transpose3d_ref(x, w, b, **kw)
    _check(one, ref, dtype, xd)
    _check(chunked, ref, dtype, xd)


@pytest.mark.parametrize("variant", ["fused", "gemm"])
@pytest.mark.parametrize("budget", [None, 1, 40_000])
@given(cfg=configs(batches=(1, 2, 3)), seed=seeds)
def test_direct_variants(variant, budget, cfg, seed):
    """Both direct variants, on a non-default stream, the GEMM one also in
    many column chunks."""
    from xconvt._params import ConvParams

    x, w, b = cfg.arrays(seed, "float64")
    xd, wd, bd = _dev(x, w, b)
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    **cfg.kwargs)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream, xconvt.memory_budget(budget or xconvt.get_memory_budget()):
        out = run_planner("cuda." + variant, params, xd, wd, bd)
    stream.synchronize()
    _check(out, cfg.reference(x, w, b), "float64", xd)


@pytest.mark.parametrize("dtype", GPU_DTYPES)
@given(cfg=configs(batches=(1, 2, 3), kernel=(1, 1, 1), max_channels=11), seed=seeds)
def test_pointwise_variant(dtype, cfg, seed):
    """The pointwise kernel (1x1x1 kernels: any stride, padding, output
    padding, dilation and groups; output-channel chunks of 1 to 8) against the
    reference."""
    from xconvt._params import ConvParams

    x, w, b = cfg.arrays(seed, dtype)
    xd, wd, bd = _dev(x, w, b)
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    **cfg.kwargs)
    out = run_planner("cuda.pointwise", params, xd, wd, bd)
    ref = cfg.reference(x.astype(np.float64), w.astype(np.float64),
                        None if b is None else b.astype(np.float64))
    _check(out, ref, dtype, xd)


@pytest.mark.parametrize("dtype", GPU_DTYPES)
@pytest.mark.parametrize("rg", [1, 4, 8])
@given(cfg=configs(batches=(1, 2, 3), max_dilation=1, max_channels=5), seed=seeds)
def test_gather_variant(rg, dtype, cfg, seed):
    """The gather kernel (no dilation; any stride, padding, groups, W taps up to
    8 per phase; 1, 4 or 8 outputs per thread) against the reference."""
    from xconvt._params import ConvParams

    x, w, b = cfg.arrays(seed, dtype)
    xd, wd, bd = _dev(x, w, b)
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    **cfg.kwargs)
    out = cupy.empty(params.batched_output_shape, dtype)
    from xconvt.backends.cuda.gather import _Launcher as Gather

    Gather(params, dtype, rg=rg)(xd, wd, bd, out)
    ref = cfg.reference(x.astype(np.float64), w.astype(np.float64),
                        None if b is None else b.astype(np.float64))
    _check(out, ref, dtype, xd)


@pytest.mark.parametrize("dtype", GPU_DTYPES)
@given(cfg=configs(batches=(1, 2, 3), max_dilation=1, max_channels=9), seed=seeds)
def test_tile_variant(dtype, cfg, seed):
    """The tile kernel (no dilation, up to 4 W taps per phase, 4 or 8 output
    channels per thread) against the reference."""
    from xconvt._params import ConvParams

    from xconvt.backends.cuda.tile import tile_config

    x, w, b = cfg.arrays(seed, dtype)
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    **cfg.kwargs)
    assume(tile_config(params, 8 if dtype == "float64" else 4) is not None)
    xd, wd, bd = _dev(x, w, b)
    out = run_planner("cuda.tile", params, xd, wd, bd)
    ref = cfg.reference(x.astype(np.float64), w.astype(np.float64),
                        None if b is None else b.astype(np.float64))
    _check(out, ref, dtype, xd)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(3))
def test_tile_variant_wide(case, dtype):
    """The tile kernel with 2 and 4 groups of output channels per block,
    partial channel groups and unequal strides."""
    from xconvt._params import ConvParams

    from .test_cuda_geometry import TILE_WIDE

    xs, ws, kw = TILE_WIDE[case]
    rng = np.random.default_rng(case)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[1] * kw.get("groups", 1)).astype(dtype)
    params = ConvParams.from_shapes(xs, ws, b.shape, **kw)
    out = run_planner("cuda.tile", params, *_dev(x, w, b))
    _check(out, conv_transpose3d_ref(x.astype(np.float64), w.astype(np.float64),
                                     b.astype(np.float64), **kw), dtype, out)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_chooses_a_variant_for_the_dtype(dtype):
    """16 -> 16 channels, k3 s2: the tile kernel in float32; in float64 its
    shared memory would not fit, so the call must take another variant."""
    rng = np.random.default_rng(0)
    kw = dict(stride=2, padding=1, output_padding=1)
    x = rng.standard_normal((1, 16, 2, 4, 32)).astype(dtype)
    w = rng.standard_normal((16, 16, 3, 3, 3)).astype(dtype)
    out = xconvt.conv_transpose3d(*_dev(x, w), **kw, algorithm="direct")
    _check(out, conv_transpose3d_ref(x.astype(np.float64), w.astype(np.float64), None, **kw),
           dtype, out)


def test_shared_memory_limit_is_only_raised():
    """Two tile plans of one kernel needing different shared memory (92 KB,
    then 69 KB): the first still launches after the second was made."""
    from xconvt._params import ConvParams
    from xconvt.backends.cuda.tile import _Launcher as TileLauncher
    from xconvt.backends.cuda.tile import tile_config

    rng = np.random.default_rng(0)
    kw = dict(stride=2, padding=1, output_padding=1)
    cases = []
    for cin in (16, 12):
        x = rng.standard_normal((1, cin, 2, 4, 32)).astype(np.float32)
        w = rng.standard_normal((cin, cin, 3, 3, 3)).astype(np.float32)
        params = ConvParams.from_shapes(x.shape, w.shape, None, **kw)
        assert tile_config(params, 4).smem > 48 * 1024
        cases.append((params, x, w, TileLauncher(params, "float32")))
    for params, x, w, plan in cases:
        out = cupy.empty(params.batched_output_shape, np.float32)
        plan(*_dev(x, w), None, out)
        _check(out, conv_transpose3d_ref(x.astype(np.float64), w.astype(np.float64), None,
                                         **kw), "float32", out)


def test_variants_reject_geometries_they_do_not_cover():
    from xconvt._params import ConvParams

    x, w = cupy.ones((1, 2, 3, 3, 3), cupy.float32), cupy.ones((2, 2, 1, 1, 2), cupy.float32)
    params = ConvParams.from_shapes(x.shape, w.shape, None)
    with pytest.raises(ValueError, match="cuda.pointwise does not apply: needs a 1x1x1"):
        run_planner("cuda.pointwise", params, x, w, None)
    dilated = ConvParams.from_shapes(x.shape, w.shape, None, dilation=2)
    with pytest.raises(ValueError, match="cuda.gather does not apply: no dilation"):
        run_planner("cuda.gather", dilated, x, w, None)
    with pytest.raises(ValueError, match="cuda.tile does not apply: no dilation"):
        run_planner("cuda.tile", dilated, x, w, None)


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("dtype", GPU_DTYPES)
@given(cfg=configs(batches=(1, 2)), seed=seeds)
def test_fused_weight_layouts(packed, dtype, cfg, seed):
    """The fused kernel reading a packed weight copy and reading the weights
    in place (chosen per geometry by ``fused._pack_weights``) agree with the
    reference."""
    from xconvt._params import ConvParams

    x, w, b = cfg.arrays(seed, dtype)
    xd, wd, bd = _dev(x, w, b)
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    **cfg.kwargs)
    from xconvt.backends.cuda.fused import _Launcher as Fused
    from xconvt.backends.cuda.fused import fused_config
    from xconvt._plan import cuda_device

    out = cupy.empty(params.batched_output_shape, dtype)
    work = "float64" if dtype == "float64" else "float32"
    Fused(params, dtype, fused_config(params, work, cuda_device()), packed=packed)(
        xd if xd.ndim == 5 else xd[None], wd, bd, out)
    ref = cfg.reference(x.astype(np.float64), w.astype(np.float64),
                        None if b is None else b.astype(np.float64))
    _check(out, ref if ref.ndim == 5 else ref[None], dtype, xd)


@pytest.mark.parametrize("algorithm", ["auto", "measure"])
@pytest.mark.parametrize(("cin", "k"), [(64, 21), (32, 27)])
def test_large_kernels_run_where_the_fused_kernel_does_not_fit(algorithm, cin, k):
    """Issue 10's calls: the fused kernel's blocks would need more shared
    memory than the device gives, so auto and measure must pick a plan that
    runs (the FFT) instead of raising."""
    from xconvt._params import ConvParams
    from xconvt._plan import cuda_device
    from xconvt.backends.cuda.fused import fused_config

    rng = np.random.default_rng(k)
    x = rng.standard_normal((1, cin, 6, 6, 6)).astype(np.float32)
    w = (rng.standard_normal((cin, cin, k, k, k)) / np.sqrt(cin * k**3)).astype(np.float32)
    params = ConvParams.from_shapes(x.shape, w.shape, None, padding=k // 2)
    assert fused_config(params, "float32", cuda_device()).smem > cuda_device().smem_per_block
    out = xconvt.conv_transpose3d(*_dev(x, w), padding=k // 2, algorithm=algorithm)
    ref = conv_transpose3d_ref(x.astype(np.float64), w.astype(np.float64), None, padding=k // 2)
    _check(out, ref, "float32", out)
