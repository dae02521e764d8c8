"""The array-library boundary: the caller's arrays in, the same library's arrays out.

The backends compute on NumPy arrays (CPU) and CuPy arrays (CUDA).  The public
functions accept any array library that array-api-compat knows and hand the
backends *views of the caller's memory* in those two types, then return the result
in the caller's library, on the caller's device, with the caller's dtype.

Design
------
Fast path
    :data:`NATIVE` maps the exact types ``numpy.ndarray`` and ``cupy.ndarray`` (the
    latter added on first sight) to their kind.  The public functions test
    ``type(x) in NATIVE`` before anything else, so NumPy and CuPy calls pay one
    dict lookup per operand; every other array goes through :func:`call`.

Finding the library
    :func:`_library` classifies an operand with array-api-compat's ``is_*_array``
    helpers (never by hand-written type checks) and caches the answer per exact
    type, so a library costs a dict lookup after its first call.  ``input``,
    ``weight`` and ``bias`` must come from one library (``TypeError`` naming both)
    and one device (``ValueError`` naming both).  Nothing is ever moved between
    host and device.

Dtypes
    :func:`check_dtype` is the one place that decides which dtypes cross the
    boundary; it runs *before* any DLPack export (CuPy's ``from_dlpack`` raises
    ``NotImplementedError`` on bfloat16).  bfloat16 (``ml_dtypes.bfloat16``)
    crosses as 16-bit integer views relabelled on each side, since neither
    DLPack export nor ``Tensor.numpy()`` knows it; JAX GPU bfloat16 arrays are
    refused (CuPy cannot import them through DLPack).

Per library
    ========================  =====================================  ==============================
    caller's array            handed to the backend (zero-copy)      result (zero-copy)
    ========================  =====================================  ==============================
    PyTorch CPU               ``Tensor.numpy()``                     ``torch.from_numpy``
    PyTorch CUDA              CuPy array over ``data_ptr()``         ``torch.from_dlpack`` (or
                              (``UnownedMemory`` owned by the        ``__cuda_array_interface__``,
                              tensor; weight and bias views cached   :data:`TORCH_OUTPUT`)
                              per tensor, see ``parameter``)
    JAX CPU                   ``numpy.asarray`` (JAX's read-only     DLPack import (XLA's CPU client
    (eager)                   view of its buffer)                    shares 64-byte aligned memory
                                                                     and copies anything else)
    JAX GPU (eager)           ``cupy.from_dlpack``                   ``jax.dlpack.from_dlpack``
    JAX traced (``jit``)      :mod:`xconvt.jax` (``buffer_callback``, XLA's buffers and stream)
    other (array-api-compat)  ``numpy``/``cupy.from_dlpack``         ``xp.from_dlpack``
    ========================  =====================================  ==============================

    PyTorch tensors with the conjugate or negative bit set are resolved first (a
    copy, as any PyTorch kernel would do); tensors that require grad are read
    through ``detach()``: the result carries no autograd history (gradients are
    another issue's).  The pointer wrap costs a few microseconds where
    ``cupy.from_dlpack`` of a tensor costs about 25; XLA's own DLPack import of a
    CPU result about 7 where ``jax.dlpack.from_dlpack`` costs about 50.

    No copy of ``input``, ``weight`` or ``bias`` is ever made (but for the
    PyTorch bits above); the result is the backend's own array, shared.  Two
    exceptions on the result side, until the backends write into a given output:
    XLA's CPU client shares only 64-byte aligned memory and copies a NumPy result
    that is not; and under ``jit`` the result is copied once into the buffer XLA
    allocated.

Streams (CUDA)
    Nothing here synchronizes the host.

    * PyTorch: the whole call (input views, kernels, workspace and output
      allocation from CuPy's pool, the export of the result) runs on PyTorch's
      current stream of the tensors' device, entered as a CuPy stream made with
      ``cupy.cuda.Stream.from_external`` and cached per raw stream handle.  Work
      PyTorch queued on that stream (the producer of ``input``) is therefore
      ordered before ours and the caller's next kernels after it, exactly as for a
      PyTorch operator; a tensor produced on another stream needs the caller's
      ``wait_stream``, as it would for PyTorch itself.  The result is exported with
      CuPy's current stream equal to PyTorch's, so the DLPack handshake records no
      event.
    * JAX eager: the call runs on CuPy's current stream.  ``cupy.from_dlpack``
      passes that stream to JAX's ``__dlpack__``, and JAX makes it wait (on the
      device) for the input's definition event; ``jax.dlpack.from_dlpack`` passes
      JAX's stream to CuPy's ``__dlpack__``, and CuPy makes it wait for an event
      recorded on its current stream.  The inputs are kept alive as long as the
      result (its memory owner holds them), so JAX cannot reuse their memory
      while the kernels may still read it.
    * DLPack orders the consumer only against the *producer's current stream* at
      the time of the export: work the producer queued on another stream is not
      waited for.  Data written on a side stream must be ordered by the caller
      (PyTorch: call inside ``with torch.cuda.stream(s)``, or ``wait_stream``).
    * JAX under ``jit``: XLA hands the callback its stream (``ctx.stream``) and the
      buffers ordered on it; see :mod:`xconvt.jax`.

Adding a library means one :class:`_Library` subclass: ``native`` (zero-copy
view), ``wrap`` (zero-copy result), ``device`` (a comparable device), ``check``
where a faster test of dtypes and devices pays, and ``call`` where the library
has its own stream.  Layers: :func:`follow` views a layer's parameters in the
input's library, :func:`placement` keeps them in the library of a
``torch.device``/JAX device.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref

import numpy as np
from array_api_compat import (
    array_namespace,
    is_cupy_array,
    is_jax_array,
    is_numpy_array,
    is_torch_array,
)

__all__ = ["NATIVE", "NOT_YET", "OPERANDS", "Placement", "call", "check_dtype", "follow",
           "host_copy", "placement"]

NATIVE = {np.ndarray: "numpy"}
"""Exact array types the backends run on -> ``"numpy"``/``"cupy"`` (CuPy's added on first use)."""

NOT_YET = {}
"""Dtypes refused at the boundary with the reason; remove an entry to accept it."""

TORCH_OUTPUT = "export"
"""How a CuPy result becomes a CUDA tensor: ``"dlpack"`` (``torch.from_dlpack``),
``"cai"`` (``torch.as_tensor`` over CuPy's ``__cuda_array_interface__``) or
``"export"`` (``torch.as_tensor`` over :class:`_Export`, a prebuilt interface
without CuPy's property or a stream entry); all are zero-copy and stream-safe here
(the kernels ran on PyTorch's current stream), ``bench overhead`` times them."""


class _Export:
    """The CUDA array interface (version 2: no ``stream`` entry, so the consumer
    waits on nothing) of CuPy array ``out``, whose memory it keeps alive.

    :meth:`_Torch.wrap` hands results to PyTorch through it while PyTorch's
    current stream is CuPy's (the kernels that wrote ``out`` were queued there),
    so no synchronization is owed; PyTorch does not read CuPy's ``stream`` entry
    either.  The interface dictionary is built directly (CuPy's property also
    looks up the current stream).
    """

    __slots__ = ("__cuda_array_interface__", "owner")

    def __init__(self, out):
        self.owner = out
        self.__cuda_array_interface__ = {
            "shape": out.shape, "typestr": out.dtype.str, "data": (out.data.ptr, False),
            "strides": out.strides, "version": 2}

OPERANDS = ("input", "weight", "bias")
"""The array arguments of ``conv_transpose3d``/``conv3d``: :func:`call`'s default names."""

PARAMETERS = frozenset(("weight", "bias"))
"""Operands whose CUDA views are cached per tensor (:meth:`_Torch.parameter`)."""

_SUPPORTED = None


def check_dtype(arg, name):
    """Raise ``TypeError`` unless dtype ``name`` (a string) may cross the boundary."""
    global _SUPPORTED
    if _SUPPORTED is None:
        from ._dispatch import SUPPORTED_DTYPES

        _SUPPORTED = frozenset(SUPPORTED_DTYPES)
    if name in _SUPPORTED:
        return
    if name in NOT_YET:
        msg = f"{arg} dtype {name}: {NOT_YET[name]}"
    else:
        msg = (f"{arg} dtype {name} is not supported; use one of "
               f"{', '.join(sorted(_SUPPORTED))}")
    raise TypeError(msg)


# --------------------------------------------------------------------------- libraries
class _Library:
    """How one array library crosses the boundary (see the module docstring)."""

    name = "?"
    names = None

    def dtype_name(self, a):
        """The name of ``a``'s dtype (cached per dtype object: ``numpy.dtype.name``
        costs microseconds)."""
        dt = a.dtype
        names = self.names
        if names is None:
            names = self.names = {}
        name = names.get(dt)
        if name is None:
            name = names[dt] = str(getattr(dt, "name", None) or dt).rpartition(".")[2]
        return name

    def device(self, a):
        """A comparable, printable device of ``a``."""
        raise NotImplementedError

    def native(self, a):
        """A NumPy or CuPy view of ``a`` (zero-copy)."""
        raise NotImplementedError

    def wrap(self, out, like, native=()):
        """``out`` (NumPy/CuPy, C-contiguous) as this library's array (zero-copy);
        ``native`` are the operands' views the backend read."""
        raise NotImplementedError

    def check(self, operands):
        """Dtypes the boundary accepts (:func:`check_dtype`) and one device;
        ``operands`` are ``(name, array)`` pairs, the first one the reference."""
        for arg, a in operands:
            check_dtype(arg, self.dtype_name(a))
        first, like = operands[0]
        dev = self.device(like)
        for arg, a in operands[1:]:
            if self.device(a) != dev:
                msg = (f"{first} is on {dev} but {arg} is on {self.device(a)}; "
                       f"{_listing(operands)} must be on one device (xconvt never moves "
                       "data between devices)")
                raise ValueError(msg)

    def call(self, fn, call):
        """``fn`` on native views of the :class:`_Call`'s operands; the result in
        this library."""
        native = []

        def view(name, a):
            v = self.native(a)
            native.append(v)
            return v

        args = call.swap(view)
        if type(native[0]) is np.ndarray:
            return self.wrap(fn(*args, **call.kwargs), call.like, native)
        with on_device(native[0].device.id):
            return self.wrap(fn(*args, **call.kwargs), call.like, native)


class _Native(_Library):
    """NumPy and CuPy themselves: nothing to convert."""

    def __init__(self, name):
        self.name = name

    def device(self, a):
        return "cpu" if self.name == "numpy" else f"cuda:{a.device.id}"

    def native(self, a):
        """``a`` itself, or a base-class view of a subclass (``numpy.memmap`` ...)."""
        if type(a) in NATIVE:
            return a
        return a.view(np.ndarray if self.name == "numpy" else array_namespace(a).ndarray)

    def wrap(self, out, like, native=()):
        return out


# ----------------------------------------------------------------------------- CuPy helpers
_STREAMS = {}


class _StreamRef:
    """A raw ``cudaStream_t`` exposing the CUDA stream protocol for CuPy."""

    __slots__ = ("ptr",)

    def __init__(self, ptr):
        self.ptr = ptr

    def __cuda_stream__(self):
        return (0, self.ptr)


def cupy_stream(ptr, device_id):
    """The CuPy stream over raw handle ``ptr`` of device ``device_id`` (cached)."""
    s = _STREAMS.get((device_id, ptr))
    if s is None:
        import cupy

        with cupy.cuda.Device(device_id):
            s = _STREAMS[device_id, ptr] = cupy.cuda.Stream.from_external(_StreamRef(ptr))
    return s


def on_device(device_id):
    """A context manager making GPU ``device_id`` CuPy's current device."""
    import cupy

    if cupy.cuda.runtime.getDevice() == device_id:
        return contextlib.nullcontext()
    return cupy.cuda.Device(device_id)


def on_stream(ptr, device_id):
    """A context manager making raw stream ``ptr`` of GPU ``device_id`` CuPy's
    current stream (and the device current); the stream is cached per handle."""
    stream = _STREAMS.get((device_id, ptr)) or cupy_stream(ptr, device_id)
    import cupy

    if cupy.cuda.runtime.getDevice() == device_id:
        return stream
    stack = contextlib.ExitStack()
    stack.enter_context(cupy.cuda.Device(device_id))
    stack.enter_context(stream)
    return stack


def cupy_view(ptr, shape, dtype, strides, owner, device_id):
    """A CuPy array over device memory at ``ptr`` that keeps ``owner`` alive.

    ``strides`` are in bytes (``None``: C-contiguous); all must be >= 0.
    """
    import cupy

    itemsize = dtype.itemsize
    if strides is None:
        span = itemsize
        for n in shape:
            span *= n
    elif 0 in shape:
        span = 0
    else:
        span = itemsize + sum((n - 1) * s for n, s in zip(shape, strides))
    if span == 0:
        return cupy.ndarray(shape, dtype)
    mem = cupy.cuda.UnownedMemory(ptr, span, owner, device_id)
    return cupy.ndarray(shape, dtype, cupy.cuda.MemoryPointer(mem, 0), strides)


def _keeping(out, *alive):
    """``out`` (CuPy) as a view whose memory owner also holds ``alive``."""
    return cupy_view(out.data.ptr, out.shape, out.dtype, out.strides, (out, alive),
                     out.device.id)


# ----------------------------------------------------------------------------------- PyTorch
class _Torch(_Library):
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch
        self.raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        self.accepted = None
        self.views = {}
        self.np_dtypes = {}
        self.cuda_dtypes = None  # torch dtype -> NumPy dtype of the fast path
        self.devices = {}  # CUDA device index -> torch.device
        self.pointers = {}  # (address, shape, dtype, device) -> CuPy view (_pointer_view)
        self.modules = None  # (xconvt._dispatch, xconvt._select), imported on first use
        self.cupy = None

    def check(self, operands):
        ok = self.accepted
        if ok is None:
            ok = set()
            for name in ("float16", "float32", "float64", "complex64", "complex128",
                         "bfloat16"):
                try:
                    check_dtype("input", name)
                except TypeError:
                    continue
                ok.add(getattr(self.torch, name))
            ok = self.accepted = frozenset(ok)
        dev = operands[0][1].device
        if all(a.dtype in ok and a.device == dev for _, a in operands):
            return
        super().check(operands)  # raises with the reason

    def device(self, t):
        return t.device

    def _plain(self, t):
        """``t`` without autograd, conjugate or negative bits (a copy only for the bits)."""
        if t.requires_grad:
            t = t.detach()
        if t.is_conj() or t.is_neg():
            t = t.resolve_conj().resolve_neg()
        return t

    def native(self, t):
        if not t.is_cuda:
            if t.dtype == self.torch.bfloat16:  # Tensor.numpy() knows no bfloat16
                from ._bf16 import dtype

                return self._plain(t).view(self.torch.int16).numpy().view(dtype())
            try:
                return t.numpy()
            except RuntimeError:  # grad, conjugate or negative bit
                return self._plain(t).numpy()
        t = self._plain(t)
        return self._view(t, t)

    def _view(self, t, owner):
        """A CuPy array over CUDA tensor ``t``'s memory, kept alive by ``owner``."""
        dtype = self.np_dtypes.get(t.dtype)
        if dtype is None:
            name = self.dtype_name(t)
            if name == "bfloat16":
                from ._bf16 import dtype as bf16
                dtype = self.np_dtypes[t.dtype] = bf16()
            else:
                dtype = self.np_dtypes[t.dtype] = np.dtype(name)
        isz = dtype.itemsize
        return cupy_view(t.data_ptr(), tuple(t.shape), dtype,
                         tuple(s * isz for s in t.stride()), owner, t.get_device())

    def call(self, fn, call):
        like = call.like
        if not like.is_cuda:
            if not like.is_cpu:
                msg = (f"{call.first} is a torch tensor on {like.device}; xconvt "
                       "computes on cpu and cuda tensors")
                raise TypeError(msg)
            return self.wrap(fn(*call.swap(lambda _, a: self.native(a)), **call.kwargs),
                             like)
        dev = like.get_device()
        if self.raw_stream is not None:
            ptr = self.raw_stream(dev)
        else:  # pragma: no cover - PyTorch without the raw accessor
            ptr = self.torch.cuda.current_stream(dev).cuda_stream
        with on_stream(ptr, dev):  # the views, the kernels and the export all on it
            args = call.swap(lambda name, a: self.parameter(a) if name in PARAMETERS
                             else self.native(a))
            return self.wrap(fn(*args, **call.kwargs), like)

    def parameter(self, t):
        """:meth:`native` of a CUDA tensor, cached per tensor (a layer's weight and
        bias come back every call; building a CuPy view costs microseconds).

        The cached view does not keep ``t`` alive (the call's operands do); it
        is used only while ``t`` itself lives (a weak reference: another tensor
        at the same address, or with the same ``id`` after ``t`` died, never
        gets it) and still has the same data pointer, shape, strides and dtype
        (``.data`` replaced, ``set_``, ``resize_``, a dtype view all miss), and
        dropped when ``t`` dies.  The view reads ``t``'s memory, not a copy of
        it, so writes into ``t`` between calls (an optimizer step, ``copy_``,
        ``torch.no_grad()`` updates: ``t._version`` changes) are seen without
        rebuilding it.
        """
        key = id(t)
        e = self.views.get(key)
        if e is not None and e[0]() is t and e[1] == (t.data_ptr(), t.shape, t.stride(),
                                                      t.dtype):
            return e[2]
        if t.is_conj() or t.is_neg():
            return self.native(t)
        if len(self.views) > 256:
            self.views.clear()
        views = self.views
        ref = weakref.ref(t, lambda _, key=key: views.pop(key, None))
        view = self._view(t, ref)
        views[key] = (ref, (t.data_ptr(), t.shape, t.stride(), t.dtype), view)
        return view

    def _fast_dtypes(self):
        """torch dtype -> NumPy dtype for every dtype the boundary accepts."""
        table = {}
        for name in ("float16", "float32", "float64", "complex64", "complex128", "bfloat16"):
            try:
                check_dtype("input", name)
                if name == "bfloat16":
                    from ._bf16 import dtype as bf16

                    table[self.torch.bfloat16] = bf16()
                else:
                    table[getattr(self.torch, name)] = np.dtype(name)
            except (TypeError, ImportError):  # refused here, or no ml_dtypes
                continue
        self.cuda_dtypes = table
        return table

    def fast(self, fn, x, w, b, args, kwargs):
        """``fn(x, w, b, *args, **kwargs)`` on CUDA tensors with the least host
        work, or ``NotImplemented`` for any other call (CPU tensors, other
        types, mixed dtypes or devices, conjugate or negative bits): :func:`call`
        takes those, and raises where it must.

        Per call: the three tensors' types, dtypes and devices compared; the
        device's current PyTorch stream read as a raw handle (with PyTorch's
        and CuPy's current streams both the legacy default stream, no stream
        context is entered; else its CuPy stream from a cache,
        :func:`on_stream`); weight and bias views from :meth:`parameter`'s
        cache.  A contiguous batched input's view comes from
        :meth:`_pointer_view`; where ``fn``'s call cache holds a plan for the
        call that writes into a given output (``into``), the output is a new
        PyTorch tensor (``new_empty`` of the input, on the stream) that the plan writes
        through its view: no CuPy allocation, no export.  Otherwise (first
        call, unbatched, other plans) ``fn`` runs on the views with the stream
        current, so that its call cache, kernels and allocations see it, and
        the result is handed to PyTorch (:meth:`wrap`) with the stream still
        current, so that no event is recorded.  Nothing synchronizes the host.
        """
        if not x.is_cuda:
            return NotImplemented
        table = self.cuda_dtypes
        if table is None:
            table = self._fast_dtypes()
        dt = x.dtype
        dtype = table.get(dt)
        if dtype is None:
            return NotImplemented
        dev = x.get_device()
        if (_BY_TYPE.get(type(w)) is not self or w.dtype is not dt or not w.is_cuda
                or w.get_device() != dev):
            return NotImplemented
        if b is not None and (_BY_TYPE.get(type(b)) is not self or b.dtype is not dt
                              or not b.is_cuda or b.get_device() != dev):
            return NotImplemented
        if x.is_conj() or x.is_neg():
            return NotImplemented
        raw = self.raw_stream
        ptr = raw(dev) if raw is not None else self.torch.cuda.current_stream(dev).cuda_stream
        wv = self.parameter(w)
        bv = None if b is None else self.parameter(b)
        cupy = self.cupy
        if cupy is None:
            import cupy

            self.cupy = cupy
        default = ptr == 0 and cupy.cuda.runtime.getDevice() == dev and (
            cupy.cuda.get_current_stream().ptr == 0)
        if x.is_contiguous() and x.dim() == 5 and x.numel():
            xv = self._pointer_view(x, dtype, dev)
            plan = self._cached_plan(fn, xv, wv, bv, args, kwargs)
            if plan is not None:  # the output is PyTorch's, written in place
                out = x.new_empty(plan.params.batched_output_shape)  # x's dtype, device
                ov = self._pointer_view(out, dtype, dev)
                if default:
                    plan.into(xv, wv, bv, ov)
                else:
                    with on_stream(ptr, dev):
                        plan.into(xv, wv, bv, ov)
                return out
        else:
            xv = self._input_view(x, dtype, dev)
        if default:  # PyTorch's and CuPy's current streams: both the legacy default
            return self.wrap(fn(xv, wv, bv, *args, **kwargs), x)
        with on_stream(ptr, dev):
            return self.wrap(fn(xv, wv, bv, *args, **kwargs), x)

    def _cached_plan(self, fn, xv, wv, bv, args, kwargs):
        """Where ``fn`` is :func:`xconvt.conv_transpose3d`: the plan it chose
        for a call like this one before (its call cache,
        :data:`xconvt._dispatch._CALLS`, still valid), if the plan can write
        into a given output (``into``) and the call is batched; else None (the
        call then takes the general route, which also fills the cache)."""
        mods = self.modules
        if mods is None:
            from . import _dispatch, _select

            mods = self.modules = (_dispatch, _select)
        _dispatch, _select = mods
        if fn is not _dispatch.conv_transpose3d:
            return None
        key = _dispatch._call_key(xv, wv, bv, *args, kwargs["output_size"],
                                  kwargs["algorithm"], kwargs["precision"])
        hit = None if key is None else _dispatch._CALLS.get(key)
        if hit is None or hit[0] is not _select._PLANS or hit[1]:
            return None
        return hit[2] if hasattr(hit[2], "into") else None

    def _pointer_view(self, t, dtype, dev):
        """A CuPy view of contiguous, non-empty CUDA tensor ``t``'s memory,
        cached per (address, shape, dtype, device) and holding no reference
        to ``t``.

        The view is a pointer: it is used only within a call, while the caller
        holds ``t``, by kernels queued on PyTorch's current stream, so a later
        tensor at the same address with the same shape and dtype (PyTorch's
        caching allocator returns freed blocks to the same stream's
        allocations, ordered after the queued kernels) is the same view.
        Activations and outputs of a model come back at the same addresses
        from one step to the next, so the views are built once.
        """
        key = (t.data_ptr(), t.shape, dtype, dev)
        view = self.pointers.get(key)
        if view is None:
            if len(self.pointers) >= 256:
                self.pointers.clear()
            view = self.pointers[key] = cupy_view(key[0], tuple(t.shape), dtype, None, None,
                                                  dev)
        return view

    def _input_view(self, t, dtype, dev):
        """A CuPy view of CUDA tensor ``t`` (of NumPy ``dtype``, on GPU ``dev``)
        whose memory keeps ``t`` alive: for a contiguous, non-empty tensor one
        ``UnownedMemory``, ``MemoryPointer`` and ``ndarray`` (the cheapest
        construction), else :meth:`_view`."""
        if t.is_contiguous():
            n = t.numel()
            if n:
                cupy = self.cupy
                if cupy is None:
                    import cupy

                    self.cupy = cupy
                cuda = cupy.cuda
                mem = cuda.UnownedMemory(t.data_ptr(), n * dtype.itemsize, t, dev)
                return cupy.ndarray(t.shape, dtype, cuda.MemoryPointer(mem, 0))
        return self._view(t, t)

    def wrap(self, out, like, native=()):
        if self.dtype_name(out) == "bfloat16":  # as int16 bits, relabelled
            bits = out.view(np.int16) if type(out) is np.ndarray else out.view("int16")
            return self.wrap(bits, like, native).view(self.torch.bfloat16)
        if type(out) is np.ndarray:
            if out.flags.writeable:
                return self.torch.from_numpy(out)
            with warnings.catch_warnings():  # a read-only view of a layer's parameters
                warnings.simplefilter("ignore", UserWarning)
                return self.torch.from_numpy(out)
        if out.size == 0:  # no memory to share (and CuPy cannot export a null pointer)
            return self.torch.empty(out.shape, dtype=self.torch.int16 if out.dtype == np.int16
                                    else like.dtype, device=like.device)
        if TORCH_OUTPUT == "dlpack":
            return self.torch.from_dlpack(out)
        dev = like.get_device()
        device = self.devices.get(dev)
        if device is None:
            device = self.devices[dev] = self.torch.device("cuda", dev)
        if TORCH_OUTPUT == "cai":
            return self.torch.as_tensor(out, device=device)
        return self.torch.as_tensor(_Export(out), device=device)


# --------------------------------------------------------------------------------------- JAX
class _Jax(_Library):
    name = "jax"

    def __init__(self):
        import jax

        self.jax = jax
        tracer = getattr(jax.core, "Tracer", None)
        if tracer is None:  # pragma: no cover - JAX versions without jax.core.Tracer
            from jax._src.core import Tracer as tracer
        self.tracer = tracer
        try:  # XLA's own DLPack import: ~7 us against ~55 us for jax.dlpack.from_dlpack
            from jax._src.lib import _jax

            self.import_buffer = _jax.dlpack_managed_tensor_to_buffer
        except (ImportError, AttributeError):  # pragma: no cover - other jaxlib layouts
            self.import_buffer = None

    def device(self, a):
        return a.device

    def native(self, a):
        if a.device.platform == "cpu":
            # JAX's own read-only view of its CPU buffer, cached on the array (1 us;
            # numpy.from_dlpack costs 4 us, and as much again to release).
            return np.asarray(a)
        if self.dtype_name(a) == "bfloat16":
            msg = ("bfloat16 JAX arrays on a GPU are not supported (CuPy cannot import them "
                   "through DLPack); use float16 or float32 there")
            raise TypeError(msg)
        import cupy

        return cupy.from_dlpack(a)

    def wrap(self, out, like, native=()):
        if type(out) is not np.ndarray:  # GPU: JAX's stream waits for CuPy's (DLPack)
            if out.size == 0:  # no memory to share
                return self.jax.numpy.zeros(out.shape, out.dtype, device=like.device)
            return self.jax.dlpack.from_dlpack(_keeping(out, *native))
        if out.dtype.name == "bfloat16":  # NumPy's DLPack export knows no bfloat16
            return self.jax.numpy.asarray(out, device=like.device)
        if self.import_buffer is not None:
            try:
                return self.import_buffer(out.__dlpack__(), like.device, None, None, 1)
            except TypeError:  # another signature: use the public function from now on
                self.import_buffer = None
        return self.jax.dlpack.from_dlpack(out)

    def check(self, operands):
        if any(isinstance(a, self.tracer) for _, a in operands):
            return  # xconvt.jax checks dtypes; traced arrays have no device yet
        super().check(operands)

    def call(self, fn, call):
        if any(isinstance(a, self.tracer) for _, a in call.operands):
            from . import jax as xjax

            return xjax.traced(fn.__name__)(*call.args, **call.kwargs)
        return super().call(fn, call)


# ---------------------------------------------------------------------------- other libraries
class _DLPack(_Library):
    """Any other array-API library whose arrays export DLPack."""

    def __init__(self, name):
        self.name = name

    def device(self, a):
        from array_api_compat import device

        return device(a)

    def native(self, a):
        if not hasattr(a, "__dlpack__"):
            msg = (f"{self.name} arrays are not supported: they do not export DLPack "
                   "(convert to NumPy, CuPy, PyTorch or JAX first)")
            raise TypeError(msg)
        if a.__dlpack_device__()[0] == 1:  # kDLCPU
            return np.from_dlpack(a)
        import cupy

        return cupy.from_dlpack(a)

    def wrap(self, out, like, native=()):
        return array_namespace(like).from_dlpack(out)


_BY_TYPE = {}
_BY_NAME = {}

FAST = {}
"""Exact array types with a fast path for ``fn(input, weight, bias, ...)`` -> a
function ``fast(fn, input, weight, bias, args, kwargs)`` that computes the call
or returns ``NotImplemented`` (PyTorch tensors: :meth:`_Torch.fast`, which takes
CUDA tensors); filled as :func:`_library` meets the types."""


def _named(cls, name):
    lib = _BY_NAME.get(name)
    if lib is None:
        lib = _BY_NAME[name] = cls() if name in ("torch", "jax") else cls(name)
    return lib


def _library(arg, a):
    """The :class:`_Library` of operand ``arg`` (cached per exact type)."""
    lib = _BY_TYPE.get(type(a))
    if lib is not None:
        return lib
    if is_numpy_array(a) and isinstance(a, np.ndarray):
        lib = _named(_Native, "numpy")
    elif is_cupy_array(a):
        lib = _named(_Native, "cupy")
        if type(a).__name__ == "ndarray":
            NATIVE[type(a)] = "cupy"
    elif is_torch_array(a):
        lib = _named(_Torch, "torch")
        FAST[type(a)] = lib.fast
    elif is_jax_array(a):
        lib = _named(_Jax, "jax")
    else:
        try:
            xp = array_namespace(a)
        except TypeError:
            msg = (f"{arg} must be a numpy.ndarray, a cupy.ndarray or another array-API "
                   f"library's array (PyTorch, JAX ...), got "
                   f"{type(a).__module__}.{type(a).__qualname__}")
            raise TypeError(msg) from None
        name = xp.__name__.removeprefix("array_api_compat.").split(".")[0]
        lib = _named(_DLPack, name)
    _BY_TYPE[type(a)] = lib
    return lib


def _listing(operands):
    """``"input, weight and bias"`` for ``(name, array)`` pairs."""
    names = [n for n, _ in operands]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _check_one(lib, operands):
    """One library and one device for every operand; dtypes the boundary accepts."""
    first = operands[0][0]
    for arg, a in operands[1:]:
        other = _BY_TYPE.get(type(a)) or _library(arg, a)
        if other is not lib:
            msg = (f"{first} is a {lib.name} array but {arg} is a {other.name} array; "
                   f"pass {_listing(operands)} from one array library")
            raise TypeError(msg)
    if not isinstance(lib, _Native):
        lib.check(operands)


class _Call:
    """One public call: its arguments, which of them are arrays, and their names."""

    __slots__ = ("args", "names", "kwargs", "operands", "first", "like")

    def __init__(self, args, names, kwargs):
        self.args, self.names, self.kwargs = args, names, kwargs
        self.operands = [(n, a) for n, a in zip(names, args)
                         if n is not None and a is not None]
        self.first, self.like = self.operands[0]

    def swap(self, view):
        """The arguments with each array operand ``a`` named ``n`` replaced by
        ``view(n, a)``."""
        args = list(self.args)
        for i, (n, a) in enumerate(zip(self.names, self.args)):
            if n is not None and a is not None:
                args[i] = view(n, a)
        return args


def call(fn, *args, names=OPERANDS, **kwargs):
    """``fn(*args, **kwargs)`` on native views of its array arguments; the result
    in their library, device and dtype.

    ``names`` names the positional arguments (None for the ones that are not
    arrays, such as a gradient's ``input_size``; positions past ``names`` are
    not arrays); the arrays among them (those not None) must share a library
    and a device, and the errors name them.  ``fn`` is a public function (it
    is called again with native arrays, which take its fast path); traced JAX
    operands go to the function of the same name in :mod:`xconvt.jax`.
    """
    c = _Call(args, names, kwargs)
    lib = _library(c.first, c.like)
    _check_one(lib, c.operands)
    return lib.call(fn, c)


# ----------------------------------------------------------------------------------- layers
def follow(input, weight, bias):
    """``weight`` and ``bias`` (a layer's parameters) in ``input``'s library, zero-copy.

    Parameters stored as NumPy/CuPy, PyTorch or JAX arrays are viewed in the
    input's library when they live on the input's device; otherwise ``ValueError``
    (nothing is transferred).  Traced JAX inputs get the parameters as constants.
    """
    lib = _library("input", input)
    plib = _library("weight", weight)
    if lib is plib:
        return weight, bias
    traced = isinstance(lib, _Jax) and isinstance(input, lib.tracer)
    if not traced and _where(weight) != _where(input):
        msg = (f"the layer's parameters are {plib.name} arrays on {plib.device(weight)} "
               f"but input is a {lib.name} array on {lib.device(input)}; create the "
               "layer with a matching device= (xconvt never moves data between devices)")
        raise ValueError(msg)
    pw = plib.native(weight)
    pb = None if bias is None else plib.native(bias)
    if traced:
        jax = lib.jax
        conv = jax.numpy.asarray if _where(weight)[0] == 1 else jax.dlpack.from_dlpack
        return conv(pw), None if pb is None else conv(pb)
    if isinstance(lib, _Native):
        return pw, pb
    return lib.wrap(pw, input), None if pb is None else lib.wrap(pb, input)


def host_copy(a, align=64):
    """A C-contiguous copy of NumPy array ``a`` whose data is ``align``-byte aligned
    (XLA's CPU client shares only such memory, and copies anything else)."""
    buf = np.empty(a.nbytes + align, np.uint8)
    off = -buf.ctypes.data % align
    out = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _where(a):
    """``(DLPack device type, index)``: ``(1, 0)`` for host memory, ``(2, i)`` for GPU i;
    ``(None, repr(a.device))`` for devices DLPack does not know (PyTorch's meta ...)."""
    try:
        return tuple(a.__dlpack_device__())
    except Exception:  # noqa: BLE001 - BufferError, RuntimeError: whatever the library says
        return (None, repr(getattr(a, "device", None)))


class Placement:
    """Where a layer keeps its parameters when ``device`` is a library's device object."""

    def __init__(self, lib, device):
        self.lib, self.device = lib, device

    def __repr__(self):
        return f"{self.lib.name}:{self.device}"

    def from_host(self, host):
        """A copy of NumPy array ``host`` in the library, on the device."""
        if isinstance(self.lib, _Torch):
            return self.lib.torch.from_numpy(np.array(host, copy=True)).to(self.device)
        out = self.lib.jax.device_put(host, self.device)
        if out.dtype != host.dtype:
            msg = (f"dtype={host.dtype.name} needs JAX's 64-bit mode "
                   "(jax.config.update('jax_enable_x64', True)) for a layer on a JAX device")
            raise TypeError(msg)
        return out


def placement(device):
    """A :class:`Placement` for a ``torch.device`` or a JAX ``Device``, else None."""
    mod = type(device).__module__
    if mod.startswith("torch"):
        lib = _named(_Torch, "torch")
        if isinstance(device, lib.torch.device):
            return Placement(lib, device)
    elif mod.startswith(("jax", "jaxlib")):
        lib = _named(_Jax, "jax")
        if isinstance(device, lib.jax.Device):
            return Placement(lib, device)
    return None
