"""What every CUDA plan shares: kernel compilation, launch arguments, the plan
base classes and the FMA cost model.

* :func:`kernel` compiles one family's source (``kernels/<family>.cu`` or the
  FFT's ``kernels.cu``, with ``kernels/common.cuh`` inlined so that CuPy's
  on-disk cache keys on everything compiled) once per device and
  specialization (``cupy.memoize(for_each_device=True)``); the kernel's name
  carries the specialization (dtype, index type, tile sizes).
* :func:`struct` packs a kernel's scalar arguments as one C struct passed by
  value, a NumPy structured scalar: CuPy spends about 0.3 us of host time per
  launch argument, and host time before a launch leaves the GPU idle.
* :func:`index_type`: 32-bit indices where every extent fits, 64-bit otherwise.
* :class:`DirectPlan`: a direct plan made by a planner from the problem
  alone (no CuPy needed, so choices replay on the CPU); its launcher (device
  tables, kernels) is built on the first call on each device.
  :class:`ComplexPlan` runs complex problems as four real ones.
* :func:`fma_estimate`: seconds of an FMA kernel from FLOPs, traffic and how
  much of the GPU its blocks fill.

Nothing here imports CuPy at import time.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..._plan import Plan

__all__ = ["CTYPES", "ComplexPlan", "DirectPlan", "KERNELS", "allow_smem", "cupy",
           "fma_estimate", "grid_1d", "index_type", "kernel", "layer_fields", "struct"]

KERNELS = Path(__file__).with_name("kernels")
CTYPES = {"float16": "__half", "float32": "float", "float64": "double"}
INT32_MAX = 2**31 - 1
SMEM_DEFAULT = 48 * 1024
"""Dynamic shared memory a kernel may use without raising its limit."""


def cupy():
    import cupy

    return cupy


@lru_cache(maxsize=None)
def source(path):
    """The compilable text of a family's ``.cu`` file: the common header inlined."""
    text = Path(path).read_text()
    common = (KERNELS / "common.cuh").read_text().replace("#pragma once\n", "")
    return text.replace('#include "common.cuh"', common, 1)


@lru_cache(maxsize=None)
def _memoized_getter():
    cp = cupy()

    @cp.memoize(for_each_device=True)
    def get(path, name, options):
        module = cp.RawModule(code=source(path), options=("-std=c++17",) + options,
                              name_expressions=(name,))
        return module.get_function(name)

    return get


def kernel(path, name, options=(), arch=None):
    """The kernel ``name`` (a template instantiation) of the family source
    ``path``, compiled for the current device (once per device, source,
    name, options and ``arch``).  ``arch`` names a target CuPy does not
    choose itself (``"sm_90a"``, whose ``wgmma`` the plain sm_90 target
    lacks): the source is then compiled by NVRTC directly
    (:func:`_arch_kernel`)."""
    if arch is not None:
        return _arch_getter()(str(path), name, tuple(options), arch)
    return _memoized_getter()(str(path), name, tuple(options))


class ArchKernel:
    """A kernel compiled for an explicit target (:func:`kernel`'s ``arch``),
    called as a ``cupy.RawKernel``: ``k(grid, block, args, shared_mem=0)``,
    with the ``max_dynamic_shared_size_bytes`` attribute."""

    _MAX_DYNAMIC_SMEM = 8  # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES

    def __init__(self, module, function):
        self.module, self.function = module, function  # the module must outlive it
        self._smem = SMEM_DEFAULT

    @property
    def max_dynamic_shared_size_bytes(self):
        return self._smem

    @max_dynamic_shared_size_bytes.setter
    def max_dynamic_shared_size_bytes(self, value):
        from cupy.cuda import driver

        driver.funcSetAttribute(self.function.ptr, self._MAX_DYNAMIC_SMEM, int(value))
        self._smem = int(value)

    def __call__(self, grid, block, args, shared_mem=0):
        self.function(grid, block, args, shared_mem=shared_mem)


@lru_cache(maxsize=None)
def _arch_getter():
    cp = cupy()

    @cp.memoize(for_each_device=True)
    def get(path, name, options, arch):
        from cupy.cuda import function
        from cupy_backends.cuda.libs import nvrtc

        prog = nvrtc.createProgram(source(path), Path(path).name, [], [])
        try:
            nvrtc.addNameExpression(prog, name)
            try:
                nvrtc.compileProgram(prog, ["-std=c++17", f"-arch={arch}", *options])
            except nvrtc.NVRTCError as exc:
                raise RuntimeError(f"NVRTC failed to compile {name} for {arch}:\n"
                                   f"{nvrtc.getProgramLog(prog)}") from exc
            cubin = nvrtc.getCUBIN(prog)
            lowered = nvrtc.getLoweredName(prog, name)
        finally:
            nvrtc.destroyProgram(prog)
        module = function.Module()
        module.load(cubin)
        return ArchKernel(module, module.get_function(lowered))

    return get


def allow_smem(kern, smem):
    """Let ``kern`` launch with ``smem`` bytes of dynamic shared memory.  The
    limit is an attribute of the (shared, memoized) kernel, so it is only ever
    raised: lowering it for one geometry would make the launches of a plan
    made earlier with more fail."""
    if smem > SMEM_DEFAULT and smem > kern.max_dynamic_shared_size_bytes:
        kern.max_dynamic_shared_size_bytes = smem


def index_type(*sizes):
    """``"int"`` where every extent fits in 32 bits, else ``"long long"``."""
    return "int" if max(sizes) <= INT32_MAX else "long long"


def grid_1d(total, threads=256, sms=132):
    """Grid of an element-wise grid-stride kernel: one thread per element, at
    most 16 blocks per SM (the loop covers the rest)."""
    return (max(1, min(-(-int(total) // threads), sms * 16)),)


def struct(fields, values):
    """A C struct of int32 ``fields`` passed by value: the NumPy structured
    scalar (``numpy.void``) of a one-element structured array, which CuPy
    hands to the kernel as its bytes.  The scalar, not the array: CuPy 14
    launches the scalar about three times faster (bench/NOTES.md, v20)."""
    arr = np.zeros(1, np.dtype([(f, np.int32) for f in fields]))
    for f in fields:
        arr[f] = values[f]
    return arr[0]


def layer_fields(params):
    """The struct fields most kernels name the same way: groups, channels per
    group, sizes, kernel, stride and padding (:func:`struct` takes the fields
    its kernel lists)."""
    return dict(
        G=params.groups, Cig=params.in_channels_per_group,
        Cog=params.out_channels_per_group,
        **dict(zip(("ID", "IH", "IW"), params.in_size)),
        **dict(zip(("OD", "OH", "OW"), params.out_size)),
        **dict(zip(("KD", "KH", "KW"), params.kernel)),
        **dict(zip(("sd", "sh", "sw"), params.stride)),
        **dict(zip(("pd", "ph", "pw"), params.padding)))


#: The FMA kernels' cost model (:func:`fma_estimate`): the fused kernel's rate
#: when it fills the GPU, float32, with 4 or more output channels per thread
#: and with one or two (shared-memory bound), HBM bandwidth it reaches, and
#: launch plus host time.  Fitted to the H100/H200 runs of 2026-11-25
#: (bench/NOTES.md); float64 doubles the whole estimate.
FMA_MODEL = {"rate": 26e12, "rate_narrow": 10e12, "bandwidth": 2.5e12, "call": 4e-5}


def fma_estimate(params, dtype, fill=1.0, narrow=False):
    """Seconds of an FMA direct kernel: useful FLOPs at the fused kernel's
    rate scaled by ``fill`` (the fraction of the GPU its blocks occupy),
    plus input/output traffic and the fixed launch cost."""
    c = FMA_MODEL
    itemsize = 8 if dtype in ("float64", "complex128") else 4
    rate = c["rate_narrow"] if narrow else c["rate"]
    nbytes = itemsize * (math.prod(params.input_shape) + math.prod(params.batched_output_shape))
    t = c["call"] + params.flops / (rate * max(fill, 1e-3)) + nbytes / c["bandwidth"]
    return 2.0 * t if itemsize == 8 else t


class DirectPlan(Plan):
    """A direct CUDA plan of a transposed convolution.

    ``make_launcher()`` builds, on the current device, a callable
    ``launch(x, w, b, out)`` with everything that depends only on the
    geometry (kernels, device tables, launch shapes, argument structs); it
    is called once per device, on that device's first call.  A call makes
    the operands contiguous, allocates the output and launches on the
    current stream, without synchronizing the host.
    """

    algorithm = "direct"

    def __init__(self, problem, name, estimate, make_launcher, workspace=0, detail=""):
        self.name, self.estimate = name, float(estimate)
        self.workspace, self.detail = int(workspace), detail
        self.params = problem.params
        self._make = make_launcher
        self._launchers = {}

    def __call__(self, x, w, b):
        return self.into(x, w, b, None)

    def into(self, x, w, b, out):
        """The call, writing into ``out`` (a C-contiguous array of the batched
        output shape and ``x``'s dtype on ``x``'s device; None: a new one)."""
        cp = cupy()
        dev = x.device
        with dev:
            launch = self._launchers.get(dev.id)
            if launch is None:
                launch = self._launchers[dev.id] = self._make()
            x = cp.ascontiguousarray(x)
            w = cp.ascontiguousarray(w)
            if b is not None:
                b = cp.ascontiguousarray(b)
            if out is None:
                out = cp.empty(self.params.batched_output_shape, dtype=x.dtype)
            launch(x, w, b, out)
        return out


class ComplexPlan(Plan):
    """A complex problem as four real ones: ``(xr + i xi) * (wr + i wi)``."""

    def __init__(self, real_plan):
        self.real = real_plan
        self.name, self.algorithm = real_plan.name, real_plan.algorithm
        self.estimate = 4.0 * real_plan.estimate
        self.workspace = real_plan.workspace
        self.detail = "four real convolutions: " + (real_plan.detail or real_plan.name)

    def __call__(self, x, w, b):
        with x.device:
            xr, xi = x.real.copy(), x.imag.copy()
            wr, wi = w.real.copy(), w.imag.copy()
            rr = self.real(xr, wr, None)
            ii = self.real(xi, wi, None)
            ri = self.real(xr, wi, None)
            ir = self.real(xi, wr, None)
            out = (rr - ii) + 1j * (ri + ir)
            out = out.astype(x.dtype, copy=False)
            if b is not None:
                out += b.reshape((1, -1, 1, 1, 1))
        return out


def planner(make_real):
    """Turn ``make_real(problem) -> Plan | str`` (real dtypes) into a planner
    that also takes complex problems (as :class:`ComplexPlan`) and rejects
    other operations and bfloat16."""
    def plan(problem):
        if problem.op != "conv_transpose3d":
            return f"computes conv_transpose3d only, not {problem.op}"
        if problem.device.kind != "cuda":
            return "runs on CUDA devices only"
        if problem.dtype not in ("float16", "float32", "float64", "complex64", "complex128"):
            return f"the FMA kernels take float16/32/64 and complex, not {problem.dtype}"
        if problem.is_complex:
            from dataclasses import replace

            real = make_real(replace(problem, dtype=problem.real_dtype))
            return real if isinstance(real, str) else ComplexPlan(real)
        return make_real(problem)

    plan.__doc__ = make_real.__doc__
    plan.__name__ = getattr(make_real, "__name__", "plan")
    return plan
