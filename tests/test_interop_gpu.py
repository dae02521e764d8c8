"""PyTorch CUDA tensors and JAX GPU arrays through the public API (marked ``gpu``).

Every result is compared with the float64 reference; zero-copy is checked by
device pointers.  The stream tests make the input's producer slow (a chain of
large matmuls queued before the write of the input) and never synchronize the
host before calling xconvt: a kernel on any stream not ordered after the
producer reads the input's old contents (NaN) and fails the check.  A control
runs the same sequence on an unordered stream and must see the NaN, which shows
the test can fail.

Run with ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` so that JAX leaves GPU memory to
CuPy and PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import Spy, assert_close, cuda_device_count, random_array
from .reference import conv_transpose3d_ref

cupy = pytest.importorskip("cupy", reason="needs CuPy and a CUDA device")
if cuda_device_count() == 0:
    pytest.skip("needs CuPy and a CUDA device", allow_module_level=True)

import xconvt  # noqa: E402
import xconvt.jax  # noqa: E402
from xconvt import _interop  # noqa: E402

pytestmark = pytest.mark.gpu

CONFIG = dict(stride=(2, 1, 2), padding=(1, 0, 1), output_padding=(1, 0, 0), groups=2,
              dilation=(1, 2, 1))
X_SHAPE, W_SHAPE, B_SHAPE = (2, 4, 6, 8, 10), (4, 3, 3, 2, 3), (6,)


def _problem(seed=0, dtype="float32", batch=2):
    rng = np.random.default_rng(seed)
    x = random_array(rng, (batch,) + X_SHAPE[1:], dtype)
    return x, random_array(rng, W_SHAPE, dtype), random_array(rng, B_SHAPE, dtype)


def _ref(x, w, b, **kw):
    return conv_transpose3d_ref(x, w, b, **{**CONFIG, **kw})


# ============================================================================ PyTorch
@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    return torch


def _cuda(torch, *arrays):
    return [None if a is None else torch.from_numpy(a).cuda() for a in arrays]


@pytest.mark.parametrize("how", ["dlpack", "cai", "export"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "complex64"])
def test_torch_cuda_current_stream(torch, monkeypatch, how, dtype):
    monkeypatch.setattr(_interop, "TORCH_OUTPUT", how)
    x, w, b = _problem(dtype=dtype)
    tx, tw, tb = _cuda(torch, x, w, b)
    spy = Spy()
    out = _interop.call(spy, tx, tw, tb, **CONFIG)
    assert type(out) is torch.Tensor and out.is_cuda and out.device == tx.device
    assert str(out.dtype) == f"torch.{dtype}" and out.is_contiguous()
    for t, a in zip((tx, tw, tb), spy.seen):
        assert type(a) is cupy.ndarray and a.data.ptr == t.data_ptr()
    assert out.data_ptr() == spy.result.data.ptr
    assert_close(out.cpu().numpy(), _ref(x, w, b), dtype)
    out = xconvt.conv_transpose3d(tx, tw, tb, **CONFIG)  # the public path
    assert_close(out.cpu().numpy(), _ref(x, w, b), dtype)


def test_torch_cuda_strided_unbatched_zero_batch(torch):
    x, w, b = _problem(dtype="float64")
    tx, tw, tb = _cuda(torch, x, w, b)
    xs = tx.permute(0, 1, 2, 4, 3).contiguous().permute(0, 1, 2, 4, 3)  # strided view
    assert not xs.is_contiguous()
    out = xconvt.conv_transpose3d(xs, tw, tb, **CONFIG)
    assert_close(out.cpu().numpy(), _ref(x, w, b), "float64")
    out = xconvt.conv_transpose3d(tx[1], tw, tb, **CONFIG)
    assert out.ndim == 4 and out.is_cuda
    assert_close(out.cpu().numpy(), _ref(x[1:], w, b)[0], "float64")
    out = xconvt.conv_transpose3d(tx[:0], tw, tb, **CONFIG)
    assert out.is_cuda and out.shape == (0,) + _ref(x, w, b).shape[1:]


def test_torch_cuda_mixed_devices_raise(torch):
    x, w, b = _problem()
    tx, tw, _ = _cuda(torch, x, w, None)
    with pytest.raises(ValueError, match="input is on cuda:0 but weight is on cpu"):
        xconvt.conv_transpose3d(tx, torch.from_numpy(w))
    # bfloat16 tensors go through (the tensor-core kernels take them)
    out = xconvt.conv_transpose3d(tx.bfloat16(), tw.bfloat16())
    assert out.dtype == torch.bfloat16 and out.is_cuda


def _slow_producer(torch, n=8192, rounds=6):
    """Queue ~100 ms of matmuls on the current stream."""
    a = torch.full((n, n), 1e-4, device="cuda")
    for _ in range(rounds):
        a = a @ a
    return a


def _stale_input(torch, x):
    """A CUDA tensor holding NaN now, and a device copy of ``x`` to write into it later."""
    stale = torch.full(x.shape, float("nan"), device="cuda")
    good = torch.from_numpy(x).cuda()
    torch.cuda.synchronize()
    return stale, good


def test_torch_cuda_side_stream(torch):
    x, w, b = _problem()
    ref = _ref(x, w, b)
    tw, tb = _cuda(torch, w, b)
    xconvt.conv_transpose3d(torch.from_numpy(x).cuda(), tw, tb, **CONFIG)  # compile first
    stale, good = _stale_input(torch, x)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        _slow_producer(torch)
        stale.copy_(good)  # the input is written on s, after the matmuls
        out = xconvt.conv_transpose3d(stale, tw, tb, **CONFIG)
        done = out * 1.0  # consumed on s
    s.synchronize()
    assert_close(out.cpu().numpy(), ref, "float32")
    assert_close(done.cpu().numpy(), ref, "float32")


def test_torch_cuda_side_stream_control(torch):
    """The same sequence with the kernels on CuPy's own stream races and sees NaN."""
    x, w, b = _problem()
    tw, tb = _cuda(torch, w, b)
    cw, cb = cupy.asarray(w), cupy.asarray(b)
    xconvt.conv_transpose3d(cupy.asarray(x), cw, cb, **CONFIG)  # compile first
    stale, good = _stale_input(torch, x)
    s = torch.cuda.Stream()  # PyTorch's pool streams do not wait for the legacy stream
    with torch.cuda.stream(s):
        _slow_producer(torch)
        stale.copy_(good)
        view = _interop.cupy_view(stale.data_ptr(), tuple(stale.shape), np.dtype("float32"),
                                  None, stale, 0)
        with cupy.cuda.Stream(non_blocking=True):
            raced = xconvt.conv_transpose3d(view, cw, cb, **CONFIG).get()
    s.synchronize()
    assert np.isnan(raced).any(), "the stream test cannot detect a wrong stream"


def test_torch_cuda_layer(torch):
    x, _, _ = _problem()
    m = xconvt.ConvTranspose3d(4, 6, (3, 2, 3), **CONFIG, device=torch.device("cuda"), rng=0)
    assert m.weight.is_cuda
    out = m(torch.from_numpy(x).cuda())
    assert type(out) is torch.Tensor and out.is_cuda
    ref = _ref(x, m.weight.cpu().numpy(), m.bias.cpu().numpy())
    assert_close(out.cpu().numpy(), ref, "float32")
    g = xconvt.ConvTranspose3d(4, 6, (3, 2, 3), **CONFIG, device="cuda", rng=0)
    out = g(torch.from_numpy(x).cuda())  # CuPy parameters follow the tensor
    assert type(out) is torch.Tensor
    assert_close(out.cpu().numpy(), ref, "float32")
    with pytest.raises(ValueError, match="parameters are cupy arrays"):
        g(torch.from_numpy(x))


# ---------------------------------------------------- PyTorch CUDA fast path (_Torch.fast)
def _torch_lib():
    return _interop._named(_interop._Torch, "torch")


def _no_general_path(monkeypatch):
    def refuse(fn, call):
        raise AssertionError("the general path ran")

    monkeypatch.setattr(_torch_lib(), "call", refuse)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "complex64", "bfloat16"])
def test_torch_cuda_fast_path(torch, monkeypatch, dtype):
    """The public call on CUDA tensors takes the fast path (no general path), on
    views of the tensors' memory, and returns a CUDA tensor of the input's dtype."""
    x, w, b = _problem(dtype="float32" if dtype == "bfloat16" else dtype)
    tx, tw, tb = _cuda(torch, x, w, b)
    if dtype == "bfloat16":
        tx, tw, tb = tx.bfloat16(), tw.bfloat16(), tb.bfloat16()
        x, w, b = (t.float().cpu().numpy() for t in (tx, tw, tb))  # the rounded operands
    xconvt.conv_transpose3d(tx, tw, tb, **CONFIG)  # registers the types, compiles
    _no_general_path(monkeypatch)
    out = xconvt.conv_transpose3d(tx, tw, tb, **CONFIG)
    assert type(out) is torch.Tensor and out.is_cuda and out.device == tx.device
    assert out.dtype == tx.dtype and out.is_contiguous()
    if dtype == "bfloat16":
        assert_close(out.float().cpu().numpy(), _ref(x, w, b), tol=2e-2)
    else:
        assert_close(out.cpu().numpy(), _ref(x, w, b), dtype)
    lib = _torch_lib()
    assert lib._input_view(tx, lib.cuda_dtypes[tx.dtype], 0).data.ptr == tx.data_ptr()
    assert lib.parameter(tw).data.ptr == tw.data_ptr()
    assert lib.parameter(tb).data.ptr == tb.data_ptr()


def test_torch_cuda_fast_parameter_updated_in_place(torch, monkeypatch):
    """Weight and bias written in place between calls (``_version`` changes) are
    read afresh: the cached views are views of their memory."""
    x, w, b = _problem()
    tx, tw, tb = _cuda(torch, x, w, b)
    xconvt.conv_transpose3d(tx, tw, tb, **CONFIG)
    _no_general_path(monkeypatch)
    view = _torch_lib().views[id(tw)][2]
    version = tw._version
    with torch.no_grad():
        tw.mul_(2.0)
        tb.add_(1.0)
    assert tw._version != version
    out = xconvt.conv_transpose3d(tx, tw, tb, **CONFIG)  # queued after the updates
    assert_close(out.cpu().numpy(), _ref(x, 2 * w, b + 1), "float32")
    assert _torch_lib().views[id(tw)][2] is view


def test_torch_cuda_fast_parameter_replaced_or_reallocated(torch, monkeypatch):
    """``.data`` replaced, a dtype view of the same memory, and a new tensor at a
    freed tensor's address: each call reads the tensor it is given."""
    x, w, b = _problem()
    tx, tw, tb = _cuda(torch, x, w, b)
    xconvt.conv_transpose3d(tx, tw, tb, **CONFIG)
    _no_general_path(monkeypatch)
    tw.data = torch.from_numpy(3 * w).cuda()
    out = xconvt.conv_transpose3d(tx, tw, tb, **CONFIG)
    assert_close(out.cpu().numpy(), _ref(x, 3 * w, b), "float32")
    # complex64 memory seen as float64 (same address, shape and strides)
    xd, wd, bd = _problem(dtype="float64")
    tc = torch.from_numpy(wd).cuda().view(torch.complex64)
    xconvt.conv_transpose3d(*_cuda(torch, xd.astype(np.complex64)), tc, None, **CONFIG)
    tc.data = tc.data.view(torch.float64)
    txd, tbd = _cuda(torch, xd, bd)
    out = xconvt.conv_transpose3d(txd, tc, tbd, **CONFIG)
    assert_close(out.cpu().numpy(), _ref(xd, wd, bd), "float64")
    # free a weight, allocate another of the same size (PyTorch's caching
    # allocator usually hands back the same block)
    ptr = tw.data_ptr()
    del tw
    for seed in range(1, 4):
        _, w2, _ = _problem(seed)
        tw2 = torch.empty(W_SHAPE, device="cuda")
        tw2.copy_(torch.from_numpy(w2))
        out = xconvt.conv_transpose3d(tx, tw2, tb, **CONFIG)
        assert_close(out.cpu().numpy(), _ref(x, w2, b), "float32",
                     what=f"same address: {tw2.data_ptr() == ptr}")
        del tw2


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_torch_cuda_fast_writes_into_pytorch_output(torch, monkeypatch, dtype):
    """Repeated batched calls: the cached plan writes into a new PyTorch tensor
    (``into``, pointer views): outputs kept alive are distinct and each right;
    an input updated in place, and a new input at a freed input's address, are
    read afresh; on a side stream the work is ordered after the stream's writes."""
    from xconvt.backends.cuda import mma, runtime

    calls = []
    for cls in (runtime.DirectPlan, mma.MmaPlan):
        real = cls.into
        monkeypatch.setattr(cls, "into", lambda self, *a, real=real: calls.append(1) or
                            real(self, *a))
    x, w, b = _problem(dtype=dtype)
    tx, tw, tb = _cuda(torch, x, w, b)
    xconvt.conv_transpose3d(tx, tw, tb, **CONFIG)  # fills the call cache
    _no_general_path(monkeypatch)
    outs = [xconvt.conv_transpose3d(tx, tw, tb, **CONFIG) for _ in range(3)]
    assert len(calls) >= 3
    assert len({o.data_ptr() for o in outs}) == 3
    for o in outs:
        assert o.dtype == tx.dtype and o.is_contiguous() and o.device == tx.device
        assert_close(o.cpu().numpy(), _ref(x, w, b), dtype)
    with torch.no_grad():
        tx.mul_(-2.0)
    out = xconvt.conv_transpose3d(tx, tw, tb, **CONFIG)
    assert_close(out.cpu().numpy(), _ref(-2 * x, w, b), dtype)
    del tx
    for seed in range(1, 4):
        x2, _, _ = _problem(seed, dtype=dtype)
        tx2 = torch.empty(x2.shape, device="cuda", dtype=getattr(torch, dtype))
        tx2.copy_(torch.from_numpy(x2))
        out = xconvt.conv_transpose3d(tx2, tw, tb, **CONFIG)
        assert_close(out.cpu().numpy(), _ref(x2, w, b), dtype)
        del tx2
    side = torch.cuda.Stream()
    x3, _, _ = _problem(7, dtype=dtype)
    with torch.cuda.stream(side):
        tx3 = torch.empty(x3.shape, device="cuda", dtype=getattr(torch, dtype))
        torch.cuda._sleep(2_000_000)  # the copy lands late on the side stream
        tx3.copy_(torch.from_numpy(x3))
        out = xconvt.conv_transpose3d(tx3, tw, tb, **CONFIG)
    side.synchronize()
    assert_close(out.cpu().numpy(), _ref(x3, w, b), dtype)


# ================================================================================ JAX
@pytest.fixture
def jax():
    jax = pytest.importorskip("jax")
    try:
        jax.devices("gpu")
    except RuntimeError:
        pytest.skip("JAX without a GPU backend")
    return jax


def _on_gpu(jax, *arrays):
    dev = jax.devices("gpu")[0]
    return [None if a is None else jax.device_put(a, dev) for a in arrays]


def test_jax_gpu_eager(jax):
    x, w, b = _problem()
    jx, jw, jb = _on_gpu(jax, x, w, b)
    spy = Spy()
    out = _interop.call(spy, jx, jw, jb, **CONFIG)
    assert isinstance(out, jax.Array) and out.device.platform == "gpu"
    for j, a in zip((jx, jw, jb), spy.seen):
        assert type(a) is cupy.ndarray and a.data.ptr == j.unsafe_buffer_pointer()
    assert out.unsafe_buffer_pointer() == spy.result.data.ptr
    assert_close(np.asarray(out), _ref(x, w, b), "float32")
    out = xconvt.conv_transpose3d(jx[0], jw, jb, **CONFIG)
    assert_close(np.asarray(out), _ref(x[:1], w, b)[0], "float32")


def test_jax_gpu_eager_ordering(jax):
    """The input comes from a slow JAX computation that is still running."""
    jnp = jax.numpy
    x, w, b = _problem()
    jw, jb = _on_gpu(jax, w, b)
    xconvt.conv_transpose3d(*_on_gpu(jax, x), jw, jb, **CONFIG)  # compile first

    @jax.jit
    def produce(x, a):
        for _ in range(6):
            a = a @ a
        return x + 1e-30 * a[0, 0]  # x (a[0, 0] ~ 1e-4), available only after the matmuls

    a = jnp.full((8192, 8192), 1e-4, jnp.float32, device=jax.devices("gpu")[0])
    jx = produce(*_on_gpu(jax, x), a)
    out = xconvt.conv_transpose3d(jx, jw, jb, **CONFIG)
    assert_close(np.asarray(out + 0.0), _ref(x, w, b), "float32")


def test_jax_gpu_jit_and_vmap(jax):
    jnp = jax.numpy
    x, w, b = _problem(batch=3)
    ref = _ref(x, w, b)
    jx, jw, jb = _on_gpu(jax, x, w, b)

    @jax.jit
    def f(x, w, b):
        return 2.0 * xconvt.conv_transpose3d(x, w, b, **CONFIG) - 1.0

    out = f(jx, jw, jb)
    assert isinstance(out, jax.Array) and out.device.platform == "gpu"
    assert_close(np.asarray(out), 2.0 * ref - 1.0, "float32")
    g = jax.vmap(lambda xi: xconvt.conv_transpose3d(xi, jw, jb, **CONFIG))
    assert_close(np.asarray(g(jx)), ref, "float32")
    assert_close(np.asarray(jax.jit(g)(jx)), ref, "float32")
    for algorithm in ("direct", "fft"):
        h = jax.jit(lambda x, w: xconvt.jax.conv_transpose3d(x, w, None, **CONFIG,
                                                             algorithm=algorithm))
        assert_close(np.asarray(h(jx, jw)), _ref(x, w, None), "float32", what=algorithm)
    assert jnp.isfinite(out).all()
