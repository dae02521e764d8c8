"""conv3d by FMA straight from the definition, for few channels per group.

``x[n, g*Cx + c, i] = b + sum_{o, k} w[g*Cx + c, o, k] y[n, g*Cy + o, i*s + k*d - p]``
(``kernels/conv3d.cu``): a thread computes ``COB`` output channels at ``WB``
neighbouring positions along W, reading ``y`` in place at the stride (no
space-to-depth copy, no zero taps) and the weights of its channel block from
shared memory.  Where channels are few (single-channel imaging layers, small
groups) the tensor cores' tiles are mostly padding and the space-to-depth
rewrite's copy of ``y`` costs more than the arithmetic; this kernel does only
the useful multiply-adds and reads ``y`` once from memory.  float32 and
float64 (exact arithmetic in the storage type).
"""

from __future__ import annotations

import math

from ..._plan import Plan
from . import runtime as rt

__all__ = ["FIELDS", "config", "plan"]

SOURCE = rt.KERNELS / "conv3d.cu"

FIELDS = ("G", "Cx", "Cy", "ID", "IH", "IW", "OD", "OH", "OW", "KD", "KH", "KW",
          "sd", "sh", "sw", "pd", "ph", "pw", "dd", "dh", "dw", "ncb", "wtiles", "has_bias")
"""The kernel's ``Conv3dArgs`` fields, in order (all int32)."""

THREADS = 128
COBS = (1, 2, 4, 8, 16)
"""Output channels per thread the kernel is instantiated for."""

# Cost model: warp instructions over the SMs' issue rate (4 schedulers a
# cycle), per (y channel, tap) of a thread: ~5 per loaded y value (address,
# bounds, load), COB/4 shared-memory weight loads (16-byte broadcasts), COB x
# WB FMAs (twice for float64), at _EFFICIENCY of the issue rate; y and x once
# through HBM; a launch.
_ISSUE = 132 * 4 * 1.7e9
_EFFICIENCY = 0.41  # H100, 2026-12-02: measured/modelled 1.1-1.7 over the suite (median 1.45)
_BANDWIDTH = 3.0e12
_CALL = 12e-6


def config(params, dtype, smem_per_block=rt.SMEM_DEFAULT):
    """``(COB, WB)`` for conv3d of ``params`` (the transposed convolution it is
    the adjoint of), or the reason the kernel does not apply."""
    itemsize = 8 if dtype == "float64" else 4
    cx, cy = params.in_channels_per_group, params.out_channels_per_group
    k3 = math.prod(params.kernel)
    cob = next(c for c in COBS if c >= min(cx, COBS[-1]))
    while cob > 1 and cy * k3 * cob * itemsize > smem_per_block:
        cob //= 2
    if cy * k3 * cob * itemsize > smem_per_block:
        return (f"one output channel's weights ({cy * k3 * itemsize} bytes) exceed "
                f"{smem_per_block} bytes of shared memory")
    if params.batch * params.groups * -(-cx // cob) > 65535:
        return "batch x groups x channel blocks exceed the grid's 65535 y blocks"
    # one or two channels: two positions a thread (more threads in flight; the
    # H100 sweep of 2026-12-02: imaging_c1_k5s2 0.19 ms against 0.28 with 4)
    return cob, 2 if cob <= 2 or dtype == "float64" else 4


def estimate(params, dtype, cob, wb, sm_count=132):
    """Predicted seconds of one call (the cost model above)."""
    cx, cy = params.in_channels_per_group, params.out_channels_per_group
    k3 = math.prod(params.kernel)
    ncb = -(-cx // cob)
    ID, IH, IW = params.in_size
    threads = params.batch * params.groups * ncb * ID * IH * -(-IW // wb)
    per_step = 5 * wb + max(1, cob // 4) + cob * wb * (2 if dtype == "float64" else 1)
    blocks = -(-threads // THREADS)
    fill = min(1.0, blocks / (4 * sm_count))
    issue = (threads / 32 * cy * k3 * per_step / (_ISSUE * sm_count / 132)
             / (_EFFICIENCY * max(fill, 0.02)))
    itemsize = 8 if dtype == "float64" else 4
    nbytes = itemsize * (math.prod(params.batched_output_shape) + math.prod(params.input_shape))
    return max(issue, nbytes / _BANDWIDTH) + _CALL


class Conv3dFmaPlan(Plan):
    """conv3d by :mod:`conv3d`'s kernel: ``plan(y, w, b) -> x``."""

    algorithm = "direct"

    def __init__(self, params, dtype, cob, wb, estimate_s):
        self.name = "cuda.conv3d_fma"
        self.params, self.dtype, self.cob, self.wb = params, dtype, cob, wb
        self.estimate, self.workspace = float(estimate_s), 0
        self.detail = f"{cob} output channel(s) x {wb} positions per thread"
        cx = params.in_channels_per_group
        ID, IH, IW = params.in_size
        wt = -(-IW // wb)
        self._grid = (-(-ID * IH * wt // THREADS), params.batch * params.groups * -(-cx // cob))
        self._smem = params.out_channels_per_group * math.prod(params.kernel) * cob * (
            8 if dtype == "float64" else 4)
        values = dict(G=params.groups, Cx=cx, Cy=params.out_channels_per_group,
                      **dict(zip(("ID", "IH", "IW"), params.in_size)),
                      **dict(zip(("OD", "OH", "OW"), params.out_size)),
                      **dict(zip(("KD", "KH", "KW"), params.kernel)),
                      **dict(zip(("sd", "sh", "sw"), params.stride)),
                      **dict(zip(("pd", "ph", "pw"), params.padding)),
                      **dict(zip(("dd", "dh", "dw"), params.dilation)),
                      ncb=-(-cx // cob), wtiles=wt)
        self._args = [rt.struct(FIELDS, dict(values, has_bias=h)) for h in (0, 1)]
        self._kernel = f"xconvt_conv3d_fma<{rt.CTYPES[dtype]}, {cob}, {wb}>"

    def __call__(self, y, w, b=None):
        cp = rt.cupy()
        with y.device:
            kern = rt.kernel(SOURCE, self._kernel)
            y, w = cp.ascontiguousarray(y), cp.ascontiguousarray(w)
            x = cp.empty(self.params.input_shape, y.dtype)
            if b is not None:
                b = cp.ascontiguousarray(b)
            kern(self._grid, (THREADS,), (y, w, y if b is None else b, x,
                                          self._args[b is not None]),
                 shared_mem=self._smem)
            return x


def plan(problem):
    """Planner: conv3d by the FMA kernel of few channels per group."""
    if problem.op != "conv3d":
        return f"computes conv3d, not {problem.op}"
    if problem.device.kind != "cuda":
        return "runs on CUDA devices only"
    if problem.dtype not in ("float32", "float64"):
        return f"the kernel takes float32 and float64, not {problem.dtype}"
    p = problem.params
    got = config(p, problem.dtype)
    if isinstance(got, str):
        return got
    cob, wb = got
    if p.in_size[0] * p.in_size[1] * -(-p.in_size[2] // wb) > rt.INT32_MAX:
        return "more than 2**31 - 1 rows of positions"
    return Conv3dFmaPlan(p, problem.dtype, cob, wb,
                         estimate(p, problem.dtype, cob, wb, problem.device.sm_count))

