"""The dilation remap: where the dilation does not divide the stride, the
input is rearranged into per-residue blocks (``xconvt_remap``,
``kernels/remap.cu``) so that every sub-phase of the fused kernel reads
consecutive rows (:func:`.geometry.kernel_geometry`)."""

from __future__ import annotations

import math

import numpy as np

from . import runtime as rt
from .geometry import kernel_geometry

__all__ = ["Remap"]

SOURCE = rt.KERNELS / "remap.cu"


class Remap:
    """The remap of one geometry on the current device: ``remap(x)`` returns
    the rearranged input (a new array, on the current stream)."""

    def __init__(self, params, dtype_name, index_t):
        cupy = rt.cupy()
        geo = kernel_geometry(params)
        ityp = np.int32 if index_t == "int" else np.int64
        i32 = np.int32
        self.kern = rt.kernel(SOURCE, f"xconvt_remap<{rt.CTYPES[dtype_name]}, {index_t}>")
        self.tab = cupy.asarray(np.asarray(sum(geo.remap, ()), np.int32))
        self.x_shape = params.input_shape[:2] + geo.in_size
        n_x = math.prod(self.x_shape)
        self.args = (ityp(n_x), *(i32(v) for v in params.in_size),
                     *(i32(v) for v in geo.in_size))
        self.grid = rt.grid_1d(n_x)

    def __call__(self, x):
        xr = rt.cupy().empty(self.x_shape, dtype=x.dtype)
        self.kern(self.grid, (256,), (x, xr, self.tab, *self.args))
        return xr
