"""The pointwise kernel: 1x1x1 kernels with few channels per group are
memory-bound; ``xconvt_pointwise`` (``kernels/pointwise.cu``) gives each
thread one output position of one group, reads its input channels once and
writes up to 8 output channels, with no staging (positions no input reaches
get the bias)."""

from __future__ import annotations

import math
import numpy as np

from . import runtime as rt

__all__ = ["plan"]

SOURCE = rt.KERNELS / "pointwise.cu"

# Fields of the kernel's PointwiseArgs struct, in order (all int32).
_POINTWISE_FIELDS = ("has_bias", "G", "Cig", "Cog", "n_oc", "ID", "IH", "IW",
                     "OD", "OH", "OW", "sd", "sh", "sw", "pd", "ph", "pw")

# Largest Cig * Cog (per group) that goes to the pointwise kernel; beyond it
# the channel contraction is worth the fused kernel's staging.  H100,
# 2026-11-26, 64^3 volumes, kernel call with host time: 4 -> 4 channels 18.8 us
# pointwise, 19.8 fused; 8 -> 8 20.9 / 22.3; 16 -> 8 (batch 4, 32^3) 19.7 /
# 21.1; 32 -> 32 in 8 groups 45.7 / 55.0; 4 -> 4 at 128^3 45.8 / 53.2; but
# 16 -> 16 33.6 / 30.7.
_POINTWISE_MAX_MACS = 128


class _Launcher:
    """Launch plan of ``xconvt_pointwise`` (1x1x1 kernels, few channels): one
    thread per output position, group and chunk of up to 8 output channels."""

    def __init__(self, params, dtype_name):
        cog = params.out_channels_per_group
        co = next(c for c in (1, 2, 4, 8) if c >= min(cog, 8))
        n_oc = -(-cog // co)
        nz = params.batch * params.groups * n_oc
        index_t = rt.index_type(math.prod(params.input_shape),
                              math.prod(params.batched_output_shape))
        self.kern = rt.kernel(SOURCE, f"xconvt_pointwise<{rt.CTYPES[dtype_name]}, {index_t}, {co}>")
        self.grid = (-(-math.prod(params.out_size) // 256), min(nz, 65535))
        self.nz = np.int32(nz)
        values = dict(rt.layer_fields(params), n_oc=n_oc)
        self.args = [rt.struct(_POINTWISE_FIELDS, {**values, "has_bias": hb}) for hb in (0, 1)]

    def __call__(self, x, w, b, out):
        self.kern(self.grid, (256,),
                  (x, w, x if b is None else b, out, self.args[b is not None], self.nz))


#: Estimate relative to the fused kernel's model: where it applies it was
#: measured 5-17% faster (see ``_POINTWISE_MAX_MACS``).
RELATIVE = 0.9


@rt.planner
def plan(problem):
    """The pointwise kernel, for 1x1x1 kernels with few channel pairs per group."""
    from .fused import model_estimate

    p, dtype = problem.params, problem.dtype
    if p.kernel != (1, 1, 1):
        return "needs a 1x1x1 kernel"
    if p.in_channels_per_group * p.out_channels_per_group > _POINTWISE_MAX_MACS:
        return (f"needs at most {_POINTWISE_MAX_MACS} input x output channel pairs per group, "
                f"not {p.in_channels_per_group * p.out_channels_per_group}")
    if math.prod(p.out_size) > rt.INT32_MAX - 256:
        return "an output volume beyond 32-bit indexing"
    return rt.DirectPlan(problem, "cuda.pointwise", RELATIVE * model_estimate(problem),
                         lambda: _Launcher(p, dtype))
