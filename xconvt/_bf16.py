"""bfloat16 (``ml_dtypes.bfloat16``): the dtype, and exact conversions to and
from float32 for NumPy and CuPy arrays.

Plans that do not compute in bfloat16 run a bfloat16 problem as its float32
problem (:class:`Upcast`): the operands widen exactly (a bfloat16 is the top
16 bits of a float32), the result is rounded once to nearest even.  On CuPy
each conversion is one elementwise kernel on the bits (CuPy's kernels need
not know bfloat16; one launch instead of a dozen ufunc calls, whose host time
dominated small layers: 0.45 ms for sweep_k3 on an H200).  ``ml_dtypes`` is
imported lazily; without it bfloat16 arrays cannot exist in NumPy or CuPy, and
:func:`dtype` says what to install.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._plan import Plan

__all__ = ["Upcast", "dtype", "to_bfloat16", "to_float32"]

_DTYPE = None


def dtype():
    """``numpy.dtype(ml_dtypes.bfloat16)``; ``TypeError`` saying what to install
    where ml_dtypes is missing."""
    global _DTYPE
    if _DTYPE is None:
        try:
            import ml_dtypes
        except ImportError:
            msg = ("bfloat16 arrays need the ml_dtypes package: pip install ml_dtypes "
                   "(or xconvt[bf16])")
            raise TypeError(msg) from None
        _DTYPE = np.dtype(ml_dtypes.bfloat16)
    return _DTYPE


def _is_cupy(a):
    return type(a).__module__.startswith("cupy")


@lru_cache(maxsize=None)
def _kernels():
    """CuPy elementwise kernels: bfloat16 bits -> float32, and float32 ->
    bfloat16 bits rounded to nearest even (a NaN stays a quiet NaN)."""
    import cupy

    widen = cupy.ElementwiseKernel(
        "uint16 h", "float32 f", "f = __uint_as_float(((unsigned int)h) << 16)",
        "xconvt_bf16_widen")
    round_ = cupy.ElementwiseKernel(
        "float32 f", "uint16 h",
        """
        unsigned int u = __float_as_uint(f);
        h = (unsigned short)(((u & 0x7FFFFFFFu) > 0x7F800000u)
                             ? ((u >> 16) | 0x40u)
                             : ((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16));
        """,
        "xconvt_bf16_round")
    return widen, round_


def to_float32(a):
    """``a`` (bfloat16) widened to float32, exactly."""
    if _is_cupy(a):
        import cupy

        return _kernels()[0](cupy.ascontiguousarray(a).view(cupy.uint16))
    return np.asarray(a).astype(np.float32)


def to_bfloat16(a):
    """``a`` (float32) rounded to bfloat16, to nearest even (NaN stays NaN)."""
    if _is_cupy(a):
        import cupy

        return _kernels()[1](cupy.ascontiguousarray(a)).view(dtype())
    return np.asarray(a).astype(dtype())


class Upcast(Plan):
    """A float32 plan run on a bfloat16 problem: widen, compute, round once."""

    def __init__(self, plan, nbytes, bandwidth):
        self.inner = plan
        self.name, self.algorithm = plan.name, plan.algorithm
        # the conversions read and write every operand and the result once more
        self.estimate = plan.estimate + 6 * nbytes / bandwidth
        self.workspace = plan.workspace + 2 * nbytes
        self.detail = "in float32 (bfloat16 widened, result rounded): " + (plan.detail or "")

    def __call__(self, *operands):
        wide = [None if a is None else to_float32(a) for a in operands]
        return to_bfloat16(self.inner(*wide))
