"""The registry of planners, per array library.

Each entry names a planner (``"<backend>.<variant>"``), the algorithm it
implements (what ``algorithm=`` forces: ``"direct"`` or ``"fft"``) and the
module whose ``plan(problem)`` it is; modules are imported on first use, so
``import xconvt`` never imports CuPy.  A planner returns a
:class:`~xconvt._plan.Plan` or a sentence saying why it does not apply (the
operation, the dtype, the device's limits, the memory budget, ...); the
operations a planner serves are its own business, so adding an operation or
a precision is adding planners here.  :mod:`xconvt._select` compares them.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

__all__ = ["Planner", "algorithms", "kinds", "planners"]


class Planner(NamedTuple):
    """A registered planner: ``module.function(problem)`` for the operations ``ops``."""

    name: str
    algorithm: str
    module: str
    function: str = "plan"
    ops: tuple = ("conv_transpose3d",)

    def __call__(self, problem):
        return _resolve(self.module, self.function)(problem)


_CPU = "xconvt.backends.cpu."
_ADJ = "xconvt.backends.adjoint"
_CONV3D = ("conv3d",)
_WGRAD = ("weight_grad",)
_CUDA = "xconvt.backends.cuda."
_FFT = "xconvt.backends.fft."

_REGISTRY = {
    "numpy": (
        Planner("cpu.small", "direct", _CPU + "small"),
        Planner("cpu.upsample", "direct", _CPU + "upsample"),
        Planner("cpu.channel_gemm", "direct", _CPU + "channel_gemm"),
        Planner("cpu.toeplitz_w", "direct", _CPU + "toeplitz"),
        Planner("fft.chunked", "fft", _FFT + "chunked"),
        Planner("cpu.small_conv3d", "direct", _CPU + "small_grad", "plan_conv3d", _CONV3D),
        Planner("cpu.conv3d_forward", "direct", _ADJ + "_cuda", "plan_conv3d_cpu", _CONV3D),
        Planner("cpu.gemm_conv3d", "direct", _ADJ, "plan_conv3d", _CONV3D),
        Planner("cpu.fft_conv3d", "fft", _ADJ + "_fft", "plan_conv3d", _CONV3D),
        Planner("cpu.small_weight_grad", "direct", _CPU + "small_grad", "plan_weight_grad",
                _WGRAD),
        Planner("cpu.gemm_weight_grad", "direct", _ADJ, "plan_weight_grad", _WGRAD),
        Planner("cpu.fft_weight_grad", "fft", _ADJ + "_fft", "plan_weight_grad", _WGRAD),
    ),
    "cupy": (
        Planner("cuda.wgmma", "direct", _CUDA + "mma", "plan_wgmma"),
        Planner("cuda.mma", "direct", _CUDA + "mma"),
        Planner("cuda.pointwise", "direct", _CUDA + "pointwise"),
        Planner("cuda.gather", "direct", _CUDA + "gather"),
        Planner("cuda.tile", "direct", _CUDA + "tile"),
        Planner("cuda.gemm", "direct", _CUDA + "gemm"),
        Planner("cuda.fused", "direct", _CUDA + "fused"),
        Planner("fft.one_pass", "fft", _FFT + "one_pass"),
        Planner("fft.chunked", "fft", _FFT + "chunked"),
        Planner("cuda.wgmma_conv3d", "direct", _CUDA + "mma", "plan_wgmma_conv3d", _CONV3D),
        Planner("cuda.mma_conv3d", "direct", _CUDA + "mma", "plan_conv3d", _CONV3D),
        Planner("cuda.conv3d_fma", "direct", _CUDA + "conv3d", "plan", _CONV3D),
        Planner("cuda.conv3d_direct", "direct", _ADJ + "_cuda", "plan_conv3d", _CONV3D),
        Planner("cuda.gemm_conv3d", "direct", _ADJ, "plan_conv3d", _CONV3D),
        Planner("cuda.fft_conv3d", "fft", _ADJ + "_fft", "plan_conv3d", _CONV3D),
        Planner("cuda.wgrad", "direct", _CUDA + "wgrad", "plan", _WGRAD),
        Planner("cuda.gemm_weight_grad", "direct", _ADJ, "plan_weight_grad", _WGRAD),
        Planner("cuda.fft_weight_grad", "fft", _ADJ + "_fft", "plan_weight_grad", _WGRAD),
    ),
}

_RESOLVED = {}


def _resolve(module, function):
    fn = _RESOLVED.get((module, function))
    if fn is None:  # first use: import the module (import_module costs ~4 us a call)
        fn = _RESOLVED[module, function] = getattr(importlib.import_module(module), function)
    return fn


def kinds():
    """Array libraries with planners: ``("numpy", "cupy")``."""
    return tuple(_REGISTRY)


def planners(kind, op=None):
    """The :class:`Planner` entries for array library ``kind`` (and operation
    ``op``), in order."""
    if op is None:
        return _REGISTRY[kind]
    return tuple(p for p in _REGISTRY[kind] if op in p.ops)


def algorithms(kind):
    """The algorithms (``"direct"``, ``"fft"``) some planner of ``kind`` implements."""
    return tuple(dict.fromkeys(p.algorithm for p in _REGISTRY[kind]))
