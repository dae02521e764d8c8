"""The tile kernel: strided layers with few channels per group
(``grouped_g4``): a block stages once, in shared memory, the input box that
one tile of phase coordinates reads in every stride phase, with all the input
channels and weights of its group (``xconvt_tile``, ``kernels/tile.cu``,
:func:`tile_config`), then computes the phases in turn, taps outermost and
input channels innermost, each thread holding 4 or 8 output channels x 4
outputs along W (interleaved across lanes, so that a warp's stores are
contiguous runs).  The fused kernel stages per phase and per channel stage
instead."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from . import runtime as rt

__all__ = ["TileConfig", "plan", "tile_config"]

SOURCE = rt.KERNELS / "tile.cu"


# Fields of the kernel's TileArgs struct, in order (all int32).
_TILE_FIELDS = ("has_bias", "G", "Cig", "Cog", "CogP", "n_og", "nph",
                "ID", "IH", "IW", "OD", "OH", "OW", "KH", "KW", "K",
                "sd", "sh", "sw", "TD", "TH", "TW", "XD", "XH", "XW",
                "ntd", "nth", "ntw", "lod", "loh", "low", "nptab")
_TILE_THREADS = 256
_TILE_SMEM = 100 * 1024  # two blocks per SM


class TileConfig(NamedTuple):
    ro: int
    n_og: int
    nph: int        # stride phases with outputs
    tile: tuple     # (TD, TH, TW) in phase coordinates
    slab: tuple     # (XD, XH, XW)
    lo: tuple       # smallest phase base per axis
    ntiles: tuple   # tiles per axis
    smem: int
    ptab: np.ndarray


@lru_cache(maxsize=1024)
def tile_config(params, itemsize):
    """The tile kernel's configuration, or None where it does not apply
    (dilation; more than 32 output channels per group; the group's weights and
    input box beyond ``_TILE_SMEM``).  ``itemsize`` is the accumulator's.

    256 threads: ``n_og`` groups of ``ro`` output channels, each spread over
    the tile's rows (``TD x TH``) and ``TW / 4`` lanes along W; the W extent
    covers the longest phase up to 32, and ``TD x TH`` is the split of the
    remaining threads that stages the fewest elements per output."""
    if params.dilation != (1, 1, 1):
        return None
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    ro = 8 if cog > 4 else 4
    n_og = -(-cog // ro)
    if n_og not in (1, 2, 4):
        return None
    axes = [[ph for ph in ax if ph.count] for ax in params.axis_phases]
    lo, span, counts = [], [], []
    for ax in axes:
        lo.append(min(ph.base for ph in ax))
        span.append(max(ph.base + max(len(ph.taps), 1) - 1 for ph in ax) - lo[-1])
        counts.append(max(ph.count for ph in ax))
    per_og = _TILE_THREADS // n_og
    lanes = 1  # threads along W, 4 outputs each: a power of 2 up to 8
    while lanes < 8 and 4 * lanes < counts[2]:
        lanes *= 2
    tw, rows = 4 * lanes, per_og // lanes
    best = None
    for td in (d for d in range(1, rows + 1) if rows % d == 0):
        th = rows // td
        # rows of the box padded so that a warp's rows (32/lanes of them) start
        # in distinct banks: width = lanes (mod 32)
        xw = tw + span[2] + (lanes - tw - span[2]) % 32
        slab = (td + span[0], th + span[1], xw)
        tiles = tuple(-(-c // t) for c, t in zip(counts, (td, th, tw)))
        # staged elements per computed output position, and positions wasted
        # past the phases' ends
        staged = math.prod(slab) * cig + cig * params.taps * ro * n_og
        work = math.prod(tiles) * td * th * tw
        cost = math.prod(tiles) * staged / 8 + work
        if best is None or cost < best[0]:
            best = (cost, (td, th, tw), slab, tiles)
    _, tile, slab, tiles = best
    fields, taps = [], []
    for pd in axes[0]:
        for ph in axes[1]:
            for pw in axes[2]:
                row = [pd.first, ph.first, pw.first, pd.count, ph.count, pw.count,
                       pd.base - lo[0], ph.base - lo[1], pw.base - lo[2],
                       len(pd.taps), len(ph.taps), len(pw.taps)]
                for a in (pd, ph, pw):
                    row.append(len(taps))
                    taps.extend(a.taps)
                fields.append(row)
    ptab = np.asarray(sum(fields, []) + taps, np.int32)
    # weights, input box, then the phase table
    smem = (cig * params.taps * ro * n_og + cig * math.prod(slab)) * itemsize + 4 * ptab.size
    if smem > _TILE_SMEM:
        return None
    return TileConfig(ro, n_og, len(fields), tile, slab, tuple(lo), tiles, smem, ptab)


def _tile_applies(params, name):
    return tile_config(params, 8 if name == "float64" else 4) is not None


def _tile_preferred(params, name):
    """Strided on every axis with 2 to 4 taps per phase (where it was measured
    to win), and the tile kernel applies (:func:`tile_config`).  H100, 2026-11-26, kernel calls (ms,
    fused -> tile): grouped_g4 (16 -> 16 channels per group, k3 s2) 0.233 ->
    0.209; 8 -> 8, k3 s2, 64^3 0.117 -> 0.107; 4 -> 4 in 8 groups, k3 s2
    0.100 -> 0.088.  Not with one tap per phase (16 -> 16, k2 s2: 0.158 ->
    0.178), 8 (12 -> 12, k4 s2, with 128-thread blocks: 0.139 -> 0.229) or
    stride 1 (sweep_k3: 0.031 either way)."""
    per_phase = params.taps / math.prod(params.stride)
    return min(params.stride) > 1 and 2 <= per_phase <= 4 and _tile_applies(params, name)


class _Launcher:
    """Launch plan of ``xconvt_tile`` (:func:`tile_config`)."""

    def __init__(self, params, dtype_name):
        cupy = rt.cupy()
        acc = 8 if dtype_name == "float64" else 4
        cfg = tile_config(params, acc)
        self.ptab = cupy.asarray(cfg.ptab)
        index_t = rt.index_type(math.prod(params.input_shape),
                              math.prod(params.batched_output_shape),
                              math.prod(params.weight_shape))
        self.kern = rt.kernel(SOURCE, f"xconvt_tile<{rt.CTYPES[dtype_name]}, {index_t}, {cfg.ro}>")
        rt.allow_smem(self.kern, cfg.smem)
        self.smem = cfg.smem
        self.grid = (params.batch * params.groups * math.prod(cfg.ntiles),)
        values = dict(
            rt.layer_fields(params), CogP=cfg.ro * cfg.n_og, n_og=cfg.n_og, K=params.taps,
            nph=cfg.nph, nptab=cfg.ptab.size,
            **dict(zip(("TD", "TH", "TW"), cfg.tile)),
            **dict(zip(("XD", "XH", "XW"), cfg.slab)),
            **dict(zip(("ntd", "nth", "ntw"), cfg.ntiles)),
            **dict(zip(("lod", "loh", "low"), cfg.lo)))
        self.args = [rt.struct(_TILE_FIELDS, {**values, "has_bias": hb}) for hb in (0, 1)]

    def __call__(self, x, w, b, out):
        self.kern(self.grid, (_TILE_THREADS,),
                  (x, w, x if b is None else b, out, self.ptab, self.args[b is not None]),
                  shared_mem=self.smem)


#: Estimate relative to the fused kernel's model, from the measurements in
#: :func:`_tile_preferred`'s docstring.
RELATIVE = {True: 0.9, False: 1.2}


@rt.planner
def plan(problem):
    """The tile kernel, where a group's channels, weights and input box fit
    its shared memory (:func:`tile_config`)."""
    from .fused import model_estimate

    p, dtype = problem.params, problem.dtype
    if p.dilation != (1, 1, 1):
        return "no dilation"
    cfg = tile_config(p, 8 if dtype == "float64" else 4)
    if cfg is None:
        return (f"needs at most 32 output channels per group and a group's weights and input "
                f"box within {_TILE_SMEM} bytes of shared memory")
    if cfg.smem > problem.device.smem_per_block:
        return f"needs {cfg.smem} bytes of shared memory per block"
    est = RELATIVE[_tile_preferred(p, dtype)] * model_estimate(problem)
    return rt.DirectPlan(problem, "cuda.tile", est, lambda: _Launcher(p, dtype))
