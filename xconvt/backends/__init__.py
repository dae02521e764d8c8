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
    name: str
    algorithm: str
    module: str

    def __call__(self, problem):
        return _resolve(self.module)(problem)


_CPU = "xconvt.backends.cpu."
_CUDA = "xconvt.backends.cuda."
_FFT = "xconvt.backends.fft."

_REGISTRY = {
    "numpy": (
        Planner("cpu.upsample", "direct", _CPU + "upsample"),
        Planner("cpu.channel_gemm", "direct", _CPU + "channel_gemm"),
        Planner("cpu.toeplitz_w", "direct", _CPU + "toeplitz"),
        Planner("fft.chunked", "fft", _FFT + "chunked"),
    ),
    "cupy": (
        Planner("cuda.mma", "direct", _CUDA + "mma"),
        Planner("cuda.pointwise", "direct", _CUDA + "pointwise"),
        Planner("cuda.gather", "direct", _CUDA + "gather"),
        Planner("cuda.tile", "direct", _CUDA + "tile"),
        Planner("cuda.gemm", "direct", _CUDA + "gemm"),
        Planner("cuda.fused", "direct", _CUDA + "fused"),
        Planner("fft.one_pass", "fft", _FFT + "one_pass"),
        Planner("fft.chunked", "fft", _FFT + "chunked"),
    ),
}

_RESOLVED = {}


def _resolve(module):
    fn = _RESOLVED.get(module)
    if fn is None:  # first use: import the module (import_module costs ~4 us a call)
        fn = _RESOLVED[module] = importlib.import_module(module).plan
    return fn


def kinds():
    """Array libraries with planners: ``("numpy", "cupy")``."""
    return tuple(_REGISTRY)


def planners(kind):
    """The :class:`Planner` entries for array library ``kind``, in order."""
    return _REGISTRY[kind]


def algorithms(kind):
    """The algorithms (``"direct"``, ``"fft"``) some planner of ``kind`` implements."""
    return tuple(dict.fromkeys(p.algorithm for p in _REGISTRY[kind]))
