"""The gather kernel: layers with few channels and few multiply-adds per
output (single-channel volumes, small depthwise kernels; no dilation) skip
the staging: ``xconvt_gather`` (``kernels/gather.cu``) gives each thread 4 or
8 outputs of one W stride phase for up to 4 output channels, reads each input
row once into a register window shared by the W taps, and reads the weights
in place through the cache."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from . import runtime as rt
from .gemm import col2im_table

__all__ = ["plan"]

SOURCE = rt.KERNELS / "gather.cu"


# Fields of the kernel's GatherArgs struct, in order (all int32).
_GATHER_FIELDS = ("has_bias", "G", "Cig", "Cog", "n_oc", "E", "ID", "IH", "IW",
                  "OD", "OH", "OW", "KD", "KH", "KW", "sd", "sh", "sw")
_GATHER_TW = (2, 4, 8)  # W taps per phase the kernel is compiled for


@lru_cache(maxsize=1024)
def _gather_eligible(params):
    pws = params.axis_phases[2]
    return (params.dilation == (1, 1, 1)
            and max((len(pw.taps) for pw in pws), default=0) <= _GATHER_TW[-1]
            and params.out_size[1] * params.out_size[2] <= rt.INT32_MAX - 128)


def _gather_preferred(params):
    """Few channels and few multiply-adds per output: the gather kernel beats
    the fused one's staging.  H100, 2026-11-26, kernel calls (ms, fused ->
    gather with 4 outputs a thread): imaging_c1_k5s2 (1 -> 1 channel, 15.6
    taps per output) 0.281 -> 0.156; 2 -> 2, k3 s2, 128^3 0.259 -> 0.182;
    4 -> 4, k3 s2, 2 x 64^3 0.107 -> 0.086; depthwise k3, 64^3 0.150 -> 0.101;
    2 -> 2 in 4 groups, k4 s2 0.166 -> 0.091.  It loses with many taps or
    channels: depthwise k7 (343 taps) 0.40 -> 0.71, sweep_k3 (4 -> 4, 27 taps)
    0.031 -> 0.042, grouped_g4 (16 -> 16) 0.24 -> 0.63.  1x1x1 kernels were not
    measured (the pointwise kernel takes them)."""
    taps_per_output = params.taps / math.prod(params.stride)
    return (params.taps > 1 and params.out_channels_per_group <= 4
            and params.in_channels_per_group * taps_per_output <= 32
            and _gather_eligible(params))


@lru_cache(maxsize=256)
def _gather_table(params, rg):
    """``xconvt_gather``'s table (see the kernel), its number of entries per
    output row and the kernel's W-tap bound."""
    sw = params.stride[2]
    entries, taps = [], []
    for pw in params.axis_phases[2]:
        if pw.count == 0:
            continue
        off = len(taps)
        taps.extend(pw.taps)
        for j0 in range(0, pw.count, rg):
            entries.append((pw.first + sw * j0, min(rg, pw.count - j0), pw.base + j0,
                            len(pw.taps), off))
    OD, OH = params.out_size[:2]
    tab = np.concatenate([col2im_table(params)[:3 * (OD + OH)],
                          np.asarray(entries, np.int32).ravel(),
                          np.asarray(taps, np.int32)]).astype(np.int32)
    tw = next(t for t in _GATHER_TW if t >= max((e[3] for e in entries), default=0))
    return tab, len(entries), tw


class _Launcher:
    """Launch plan of ``xconvt_gather``: ``rg`` outputs of a W phase and ``co``
    output channels per thread (chosen when None), no staging (few channels,
    no dilation)."""

    def __init__(self, params, dtype_name, rg=None, co=None):
        cupy = rt.cupy()
        cog = params.out_channels_per_group
        if co is None:
            co = next(c for c in (1, 2, 4) if c >= min(cog, 4))
        if rg is None:
            # 8 outputs a thread where phases are short rows and a thread has few
            # channels (imaging_c1_k5s2 0.157 -> 0.130 ms, 2 -> 2 k3 s2 0.183 ->
            # 0.138), else 4 (depthwise k3 0.102 against 0.127, 4 -> 4 k3 s2
            # 0.088 against 0.093)
            rg = 8 if params.stride[2] > 1 and co <= 2 else 4
        n_oc = -(-cog // co)
        nz = params.batch * params.groups * n_oc
        tab, E, tw = _gather_table(params, rg)
        self.tab = cupy.asarray(tab)
        OD, OH = params.out_size[:2]
        index_t = rt.index_type(math.prod(params.input_shape),
                              math.prod(params.batched_output_shape),
                              math.prod(params.weight_shape))
        self.kern = rt.kernel(SOURCE, f"xconvt_gather<{rt.CTYPES[dtype_name]}, {index_t}, {co}, {rg}, {tw}>")
        self.grid = (-(-OH * E // 128), min(OD, 65535), min(nz, 65535))
        self.nz = np.int32(nz)
        values = dict(rt.layer_fields(params), n_oc=n_oc, E=E)
        self.args = [rt.struct(_GATHER_FIELDS, {**values, "has_bias": hb}) for hb in (0, 1)]

    def __call__(self, x, w, b, out):
        self.kern(self.grid, (128,),
                  (x, w, x if b is None else b, out, self.tab, self.args[b is not None], self.nz))


#: Estimate relative to the fused kernel's model, from the measurements in
#: :func:`_gather_preferred`'s docstring (where preferred it took 0.45-0.84 of
#: the fused kernel's time; elsewhere up to 2.6 times).
RELATIVE = {True: 0.55, False: 1.6}


@rt.planner
def plan(problem):
    """The gather kernel (no dilation, at most 8 W taps per stride phase)."""
    from .fused import model_estimate

    p, dtype = problem.params, problem.dtype
    if p.dilation != (1, 1, 1):
        return "no dilation"
    taps_w = max((len(pw.taps) for pw in p.axis_phases[2]), default=0)
    if taps_w > _GATHER_TW[-1]:
        return f"at most {_GATHER_TW[-1]} W taps per stride phase, not {taps_w}"
    if p.out_size[1] * p.out_size[2] > rt.INT32_MAX - 128:
        return "an output plane beyond 32-bit indexing"
    est = RELATIVE[_gather_preferred(p)] * model_estimate(problem)
    return rt.DirectPlan(problem, "cuda.gather", est, lambda: _Launcher(p, dtype))
