"""The PyTorch CUDA fast path (``xconvt._interop._Torch.fast``), emulated on the CPU.

Without a GPU the path's logic still runs: a tensor subclass reports itself as a
CUDA tensor on device 0, and a stand-in ``cupy`` module (installed in
``sys.modules`` for the test) turns the device pointers the path wraps into NumPy
views of the same memory, so the call computes on the NumPy path.  What this
checks is the host-side logic: which calls take the path, the views read the
tensors' current memory (in-place updates of a cached parameter, replaced data,
a tensor at a freed address), and that the stream the path enters is PyTorch's.
The real thing is tested in ``tests/test_interop_gpu.py`` (marked ``gpu``).
"""

from __future__ import annotations

import contextlib
import sys
import types

import numpy as np
import pytest

import xconvt
from xconvt import _interop

from .reference import conv_transpose3d_ref

torch = pytest.importorskip("torch")

KW = {"stride": (2, 1, 2), "padding": (1, 0, 1), "output_padding": (1, 0, 0), "groups": 2,
      "dilation": (1, 2, 1)}
STREAM = 0x5EED


class FakeCuda(torch.Tensor):
    """A CPU tensor that says it is a CUDA tensor on device 0."""

    __torch_function__ = torch._C._disabled_torch_function_impl

    @property
    def is_cuda(self):
        return True

    def get_device(self):
        return 0


def cuda(a):
    """A "CUDA" tensor holding a copy of ``a``."""
    return torch.from_numpy(np.array(a, order="C", copy=True)).as_subclass(FakeCuda)


class _Buffer:
    """Device memory as NumPy sees it: ``__array_interface__`` over the pointer."""

    def __init__(self, ptr, shape, dtype, strides, owner):
        self.__array_interface__ = {"data": (ptr, False), "shape": tuple(shape),
                                    "typestr": dtype.str, "strides": strides, "version": 3}
        self.owner = owner


class _FakeNdarray:
    """``cupy.ndarray(shape, dtype, memptr, strides)``: a NumPy view of the memory."""

    def __new__(cls, shape, dtype=float, memptr=None, strides=None):
        dtype = np.dtype(dtype)
        if memptr is None:
            return np.empty(shape, dtype)
        return np.asarray(_Buffer(memptr.ptr, shape, dtype, strides, memptr))


class _Stream:
    def __init__(self, ptr, log):
        self.ptr, self.log = ptr, log

    def __enter__(self):
        self.log.append(("enter", self.ptr))
        return self

    def __exit__(self, *exc):
        self.log.append(("exit", self.ptr))


@pytest.fixture
def fake(monkeypatch):
    """The stand-in ``cupy`` and the PyTorch library object patched to use it;
    yields the log of streams entered."""
    log = []
    cu = types.SimpleNamespace(
        UnownedMemory=lambda ptr, size, owner, dev: types.SimpleNamespace(
            ptr=ptr, size=size, owner=owner, device_id=dev),
        MemoryPointer=lambda mem, offset: types.SimpleNamespace(ptr=mem.ptr + offset, mem=mem),
        runtime=types.SimpleNamespace(getDevice=lambda: 0),
        Device=lambda dev: contextlib.nullcontext(),
        Stream=types.SimpleNamespace(
            from_external=lambda ref: _Stream(ref.__cuda_stream__()[1], log)),
    )
    mod = types.ModuleType("cupy")
    mod.cuda, mod.ndarray = cu, _FakeNdarray
    monkeypatch.setitem(sys.modules, "cupy", mod)
    monkeypatch.setattr(_interop, "_STREAMS", {})
    lib = _interop._named(_interop._Torch, "torch")
    monkeypatch.setattr(lib, "cupy", None)
    monkeypatch.setattr(lib, "raw_stream", lambda dev: STREAM)
    monkeypatch.setattr(lib, "views", {})
    yield lib, log
    for d in (_interop._BY_TYPE, _interop.FAST):
        d.pop(FakeCuda, None)


def _arrays(seed=0, dtype=np.float64, batch=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 4, 3, 5, 4)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2, 3)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    return x, w, b


def _check(out, x, w, b, **kw):
    assert type(out) is torch.Tensor
    ref = conv_transpose3d_ref(np.asarray(x), np.asarray(w), None if b is None else np.asarray(b),
                               **{**KW, **kw})
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-10)


def _general_path_forbidden(monkeypatch, lib):
    def refuse(fn, call):
        raise AssertionError("the general path ran")

    monkeypatch.setattr(lib, "call", refuse)


def test_fast_path_runs_on_pytorch_stream(fake, monkeypatch):
    lib, log = fake
    x, w, b = _arrays()
    tx, tw, tb = cuda(x), cuda(w), cuda(b)
    _check(xconvt.conv_transpose3d(tx, tw, tb, **KW), x, w, b)  # registers the types
    assert _interop.FAST[FakeCuda] == lib.fast
    _general_path_forbidden(monkeypatch, lib)
    log.clear()
    _check(xconvt.conv_transpose3d(tx, tw, tb, **KW), x, w, b)
    assert log == [("enter", STREAM), ("exit", STREAM)]  # the call ran inside it
    # the input view is the tensor's memory, kept alive by the view
    view = lib._input_view(tx, np.dtype(np.float64), 0)
    assert view.ctypes.data == tx.data_ptr()
    # unbatched, strided (a permuted view), zero batch, no bias: still the fast path
    # (views of a FakeCuda are plain tensors: as_subclass makes them "CUDA" again)
    _check(xconvt.conv_transpose3d(tx[1].as_subclass(FakeCuda), tw, tb, **KW)[None],
           x[1:], w, b)
    xs = cuda(x.transpose(0, 1, 2, 4, 3)).permute(0, 1, 2, 4, 3).as_subclass(FakeCuda)
    assert not xs.is_contiguous()
    _check(xconvt.conv_transpose3d(xs, tw, None, **KW), x, w, None)
    out = xconvt.conv_transpose3d(tx[:0].as_subclass(FakeCuda), tw, tb, **KW)
    assert out.shape == (0,) + conv_transpose3d_ref(x, w, b, **KW).shape[1:]


def test_calls_the_fast_path_leaves_to_the_general_one(fake, monkeypatch):
    lib, _ = fake
    x, w, b = _arrays()
    tx, tw, tb = cuda(x), cuda(w), cuda(b)
    xconvt.conv_transpose3d(tx, tw, tb, **KW)
    taken = []
    real = lib.call
    monkeypatch.setattr(lib, "call", lambda fn, c: taken.append(fn) or real(fn, c))
    # CPU tensors, a weight of another library, another dtype: the general path
    _check(xconvt.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(w), None, **KW),
           x, w, None)
    with pytest.raises(TypeError, match="torch array but weight is a numpy"):
        xconvt.conv_transpose3d(tx, w, None, **KW)
    with pytest.raises(TypeError, match="differs from input dtype"):
        xconvt.conv_transpose3d(tx, cuda(w.astype(np.float32)), None, **KW)
    with pytest.raises(TypeError, match="int64"):
        xconvt.conv_transpose3d(cuda(x.astype(np.int64)), cuda(w.astype(np.int64)), **KW)
    assert len(taken) == 2  # the CPU call and the mixed dtypes (the others raise first)
    # a conjugate-bit input is resolved by the general path
    xc = (x + 0.5j).astype(np.complex128)
    wc, bc = w.astype(np.complex128), b.astype(np.complex128)
    tc = cuda(np.conj(xc)).conj()
    assert tc.is_conj()
    _check(xconvt.conv_transpose3d(tc, cuda(wc), cuda(bc), **KW), xc, wc, bc)
    assert len(taken) == 3


def test_parameter_updated_in_place_is_seen(fake, monkeypatch):
    lib, _ = fake
    x, w, b = _arrays()
    tx, tw, tb = cuda(x), cuda(w), cuda(b)
    xconvt.conv_transpose3d(tx, tw, tb, **KW)
    _general_path_forbidden(monkeypatch, lib)
    view = lib.views[id(tw)][2]
    version = tw._version
    with torch.no_grad():
        tw.mul_(2.0)
        tb.add_(1.0)
    assert tw._version != version
    _check(xconvt.conv_transpose3d(tx, tw, tb, **KW), x, 2 * w, b + 1)
    assert lib.views[id(tw)][2] is view  # the same view: it reads the memory


def test_parameter_replaced_or_realiased(fake, monkeypatch):
    lib, _ = fake
    x, w, b = _arrays()
    tx, tw, tb = cuda(x), cuda(w), cuda(b)
    xconvt.conv_transpose3d(tx, tw, tb, **KW)
    _general_path_forbidden(monkeypatch, lib)
    # .data replaced: a new pointer, a new view
    w2 = 3 * w
    tw.data = torch.from_numpy(w2.copy())
    _check(xconvt.conv_transpose3d(tx, tw, tb, **KW), x, w2, b)
    # the same memory seen with another dtype of the same size and shape
    wc = cuda(w.astype(np.complex64))
    xc, bc = cuda(x.astype(np.complex64)), cuda(b.astype(np.complex64))
    xconvt.conv_transpose3d(xc, wc, bc, **KW)
    wc.data = wc.data.view(torch.float64)
    assert wc.data_ptr() == lib.views[id(wc)][1][0]
    wf = wc.numpy()
    _check(xconvt.conv_transpose3d(tx, wc, tb, **KW), x, wf, b)
    # another tensor over the same memory: its own entry; a dead tensor's entry goes
    alias = tw.view(tw.shape).as_subclass(FakeCuda)
    assert alias.data_ptr() == tw.data_ptr() and alias is not tw
    _check(xconvt.conv_transpose3d(tx, alias, tb, **KW), x, w2, b)
    assert id(alias) in lib.views
    key = id(alias)
    del alias
    assert key not in lib.views
    # a new tensor where a freed one was (address and id may both repeat)
    for seed in range(3):
        _, wn, _ = _arrays(seed + 1)
        tn = cuda(wn)
        _check(xconvt.conv_transpose3d(tx, tn, tb, **KW), x, wn, b)
        del tn


def test_cached_plan_writes_into_a_pytorch_output(fake, monkeypatch):
    """A repeated batched call with a contiguous input: the plan the call cache
    holds writes into a new PyTorch tensor through a pointer view (no CuPy output,
    no export); in-place changes of the input between calls are read; the input's
    view is cached by address, shape and dtype."""
    from xconvt import _dispatch

    lib, log = fake
    monkeypatch.setattr(lib, "devices", {0: torch.device("cpu")})  # torch.empty's device
    monkeypatch.setattr(lib, "pointers", {})
    x, w, b = _arrays()
    tx, tw, tb = cuda(x), cuda(w), cuda(b)
    _check(xconvt.conv_transpose3d(tx, tw, tb, **KW), x, w, b)  # fills the call cache
    written = []

    class Into:
        """The cached CPU plan, given ``into`` (what the CUDA plans have)."""

        def __init__(self, plan, shape):
            self.plan, self.params = plan, types.SimpleNamespace(batched_output_shape=shape)

        def __call__(self, *a):
            return self.plan(*a)

        def into(self, xv, wv, bv, out):
            out[...] = self.plan(xv, wv, bv)
            written.append(out)
            return out

    shape = conv_transpose3d_ref(x, w, b, **KW).shape
    for key, (plans, unbatched, plan) in list(_dispatch._CALLS.items()):
        if key[0] is np.ndarray and not unbatched:
            monkeypatch.setitem(_dispatch._CALLS, key, (plans, unbatched, Into(plan, shape)))
    _general_path_forbidden(monkeypatch, lib)
    log.clear()
    out = xconvt.conv_transpose3d(tx, tw, tb, **KW)
    _check(out, x, w, b)
    assert len(written) == 1 and written[0].ctypes.data == out.data_ptr()
    assert log == [("enter", STREAM), ("exit", STREAM)]  # written on PyTorch's stream
    views = dict(lib.pointers)
    with torch.no_grad():
        tx.mul_(-3.0)
    out2 = xconvt.conv_transpose3d(tx, tw, tb, **KW)
    _check(out2, -3.0 * x, w, b)
    assert len(written) == 2 and out2.data_ptr() != out.data_ptr()
    key = (tx.data_ptr(), tx.shape, np.dtype(np.float64), 0)
    assert key in views and lib.pointers[key] is views[key]  # the input's view, reused
