"""Tensor-core (``mma.sync``) implicit GEMM per stride phase, on CuPy arrays.

Each stride phase ``(pd, ph, pw)`` of a transposed convolution
(:attr:`xconvt._params.ConvParams.axis_phases`) is, per group, one GEMM::

    C[m, o] = sum_k A[m, k] B[k, o]
    m = (n, jd, jh, jw)      output positions of the phase, jw fastest
    k = (t, c)               tap t = (ud, uh, uw) of the phase, input channel c
    A[m, (t, c)] = x[n, g*Cig + c, base_d + jd + ud*step_d, ...]   (0 outside)
    B[(t, c), o] = w[g*Cig + c, o, taps_d[ud], taps_h[uh], taps_w[uw]]

so taps that meet only stride zeros cost nothing.  One launch of
``xconvt_mma`` (``cuda/kernels/mma.cu``) covers every phase: a per-phase
table and a block table (:func:`mma_tables`; blocks round-robin over the
phases, so that a strided output's interleaved sectors are completed in L2)
map each block to its phase, group and ``BM x BN`` tile.  The weights are
packed per call (``xconvt_mma_pack_t``, tiled through shared memory) into
``[phase][group][tap][channel][o]`` with zero padding, float weights rounded
to TF32 (and split for 3xTF32), so B tiles are 16-byte ``cp.async`` copies
through ``STAGES`` shared-memory buffers.  A is staged per tap and channel
block (``variant="tap"``, the default: 4-byte ``cp.async`` with zero-fill
for float, registers for 16-bit), or as the input box of a box-shaped tile
once per channel block and read at each tap's offset (``"slab"``, through
registers; ``"slab_async"``, float only, through ``cp.async``).  The products
run on ``mma.sync``:

``"float32"`` precision (float32 storage)
    3xTF32: ``big = tf32(v)``, ``small = tf32(v - big)`` for both operands;
    per k8 step ``small*big + big*small`` then ``big*big`` into a zeroed
    accumulator, added to the running sum with an ordinary float add (the
    tensor cores' accumulation truncates, a bias that would grow with K):
    errors at or below the FMA kernel's.
``"tf32"``
    Operands rounded to TF32 (round to nearest), float32 accumulation, as
    PyTorch's default for convolutions.
float16, bfloat16 (``ml_dtypes.bfloat16``)
    ``m16n8k16`` with float32 accumulation; the result is rounded to the
    storage dtype once.

On compute capability 9.0 (H100, H200) ``xconvt_wgmma`` runs the same GEMM
with ``wgmma`` (planners :func:`plan_wgmma`, :func:`plan_wgmma_conv3d`;
``slab`` 5 of :class:`MmaConfig`): A from the channels-last copy, B packed
K-major (:func:`pack_taps_k`), both by ``cp.async`` into shared-memory stages
in wgmma's swizzled K-major layout (K blocks of 128, 64 or 32 bytes: the
128-, 64- or 32-byte swizzle), one warpgroup per 64 rows, the accumulators in
registers; TF32 operands rounded by the copy and the pack; 3xTF32 stages both
halves and sums each K block's three products in fresh registers.  Compiled
for ``sm_90a`` by NVRTC directly (:func:`.runtime.kernel`'s ``arch``).  The
weight pack and the copy share one launch (``xconvt_wgmma_prep``), both by
16-byte vectors transposed in registers where x's rows and w's rows are whole
vectors and the arrays 16-byte aligned (``_Launch.vec_ok``; the tile kernels
otherwise), their arguments one struct (``PackArgs``).  Where
kernel = stride = 2 along W the planner also weighs W pairs
(:func:`pair_params`: both W phases in one GEMM, written as value pairs),
for 16-bit stride-1 layers of few channels the VEC epilogue
(:func:`vec_applies`: the tile through shared memory, 16-byte stores), and
for float32-storage stride-1 layers whose input rows fill a tile the W fold
(:func:`fold_params`, :func:`fold_applies`: the W taps as ``KW * Cout``
columns of one GEMM over whole input rows, summed by the epilogue).

conv3d, the adjoint, is one more GEMM of the same kernel (:class:`Conv3dGemm`):
a single phase over every real tap, A read from y at the stride (no
space-to-depth copy, no zero taps).

:func:`plan` is the planner (``plan(problem) -> MmaPlan | str``),
:func:`plan_conv3d` conv3d's, and :func:`mma_direct` a direct entry for tests
and benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..._params import dtype_name
from ..._plan import Plan
from . import runtime as rt

__all__ = ["MMA_FIELDS", "Conv3dGemm", "MmaConfig", "MmaPlan", "mma_config", "mma_direct",
           "mma_tables", "pack_taps", "pack_taps_k", "plan", "plan_conv3d", "plan_wgmma",
           "plan_wgmma_conv3d"]

_SOURCE_PATH = Path(__file__).with_name("kernels") / "mma.cu"
_INT32_MAX = 2**31 - 1

#: Storage dtypes: name -> (DT template value, element bytes).
DTYPES = {"float32": (0, 4), "float16": (1, 2), "bfloat16": (2, 2)}

#: Fields of the kernel's ``MmaArgs`` struct, in order (all int32).
MMA_FIELDS = ("nphase", "has_bias", "N", "G", "Cig", "Cog", "Cin", "Cout",
              "ID", "IH", "IW", "OD", "OH", "OW", "sd", "sh", "sw", "ed", "eh", "ew",
              "nCB", "NP", "TD", "TH", "TW", "SC", "WSMALL",
              "PD", "PH", "PW", "LD", "LH", "LW", "CT", "QD", "QH", "QW", "XSMALL", "TPK",
              "PAIR", "VEC", "FOLD", "FS", "FP", "FDL", "FOW", "FMT", "ACA")

#: Columns of the per-phase table (``P_*`` in the kernel).
META_COLUMNS = ("m_tiles", "n_tiles", "cd", "ch", "cw", "fd", "fh", "fw",
                "bd", "bh", "bw", "nd", "nh", "nw", "woff")

#: Block tiles the kernel is instantiated for: (BM, BN, WM, WN).  Threads are
#: (BM/WM) * (BN/WN) warps.
TILES = ((128, 128, 64, 32), (128, 64, 64, 32), (128, 32, 32, 32), (64, 64, 32, 32),
         (128, 128, 64, 64), (256, 128, 64, 64))

#: ``xconvt_wgmma`` (``slab`` 5, sm_90a): block tiles (BM, BN), one warpgroup
#: of 128 threads per 64 rows; a K block is 128, 64 or 32 bytes of K (one
#: row of the swizzle of that width: BK = 64, 32, 16 16-bit values or 32,
#: 16, 8 floats; the narrower ones for few channels, which 128 bytes would pad).
#: (256-row tiles, four warpgroups and one block per SM, were measured too and
#: were never faster: gan_k4s2 0.057 ms in float16 as 128x128, TF32 0.094
#: against 0.095; the fits picked them for seed_example at 1.16-1.18x the best.)
WG_TILES = ((128, 256), (128, 128), (128, 64), (128, 32), (64, 128), (64, 64), (64, 32))
WG_KBYTES = (128, 64, 32)
#: ``mma_config``'s wgmma variants and their A staging (``MmaConfig.slab``):
#: 5 the channels-last copy per tap and K block; 6 the tile's input box per
#: channel block in two buffers, B in stages (measured slower than 5, asked
#: for only); 7 the box and every tap's B of a channel block resident, all
#: the taps' wgmmas in one group; 8 as 5 with K blocks of several taps
#: (``MmaConfig.tpk``) where a tap's channels fill less than a 128-byte row.
WG_VARIANTS = {"wgmma": 5, "wgmma_slab": 6, "wgmma_box": 7, "wgmma_taps": 8}
#: :func:`mw_rows`' configurations' estimates against the 128-row pick they
#: replace (H200, 2026-12-03, probe/l1_probe.py: 0.92-0.97 measured).  MW
#: tiles are not offered to the estimates: their fit cannot rank them (offered
#: with factor 1 it took 512-row tiles for vnet_k3s2, 1.2x slower than the
#: pick; bench/NOTES.md).
_MW_GAIN = 0.94

# Cost model (:func:`estimate`): a fixed part, the tensor-core time at the
# measured mma.sync ceiling times a factor, and the operand elements the
# blocks stage (A and B), over the SMs the blocks keep busy.  Fitted by
# relative least squares per mode and A staging to the H200 timings of
# bench/tc_probe.py of 2026-12-02 (seven dense suite cases; bench/NOTES.md):
# "tap" on 13 timings per mode (planner tile and the other BK), predictions
# 0.60-1.36x the measured times; "slab" on 19-20 (tile sweep and the other
# BK), 0.54-2.2x.  The staged elements dominate the tap kernel's time: it is
# bound by its element-wise A loads, not by the tensor cores.
_CEILING = {"tf32": 321e12, "3xtf32": 321e12 / 3, "float16": 642e12, "bfloat16": 642e12}
#: ``wgmma``'s ceilings (H200, bench/NOTES.md).
_CEILING_WG = {"tf32": 485e12, "3xtf32": 485e12 / 3, "float16": 970e12, "bfloat16": 970e12}
# The 3xTF32 estimates of slabs 0-4 (mma.sync) are scaled by _MMA_3XTF32:
# the per-K-block accumulation (2026-12-02, fourth session) made those
# kernels 6-18% faster and conv3d's own GEMM came after the fit; the H200
# sweep of probe/wg_sweep.py measured the mma.sync plans at 0.65-0.99x
# (median 0.77) of these estimates, so the choice between them and
# xconvt_wgmma needs it.  A uniform scale leaves the choice among mma.sync
# configurations as it was.
_MMA_3XTF32 = 0.77
_FIT = {  # (mode, slab): (fixed s, factor on the tensor-core time, s per staged element per SM)
    ("3xtf32", 0): (69.7e-6, 1.80, 9.86e-11),
    ("tf32", 0): (55.0e-6, 1.08, 1.08e-10),
    ("float16", 0): (46.3e-6, 0.0, 1.29e-10),
    ("bfloat16", 0): (48.2e-6, 0.0, 1.26e-10),
    ("3xtf32", 1): (230.3e-6, 1.73, 3.12e-10),
    ("tf32", 1): (154.5e-6, 0.35, 2.95e-10),
    ("float16", 1): (67.7e-6, 0.0, 5.0e-10),
    ("bfloat16", 1): (67.5e-6, 0.0, 5.1e-10),
    # slab_async: not measured yet; the tap variant's per-element cost
    ("3xtf32", 2): (69.7e-6, 1.80, 9.86e-11),
    ("tf32", 2): (55.0e-6, 1.08, 1.08e-10),
    # cl and cl_slab: five terms (fixed s, factor on the tensor-core time, s
    # per staged element per SM, s per K step per SM, s per output byte),
    # fitted by relative least squares (non-negative) to the H200 sweep of
    # bench/tc_probe.py --sweep new of 2026-12-02 (seven dense suite cases,
    # every tile and BK; 24-29 timings a mode): predictions 0.71-1.18x the
    # measured times.  bfloat16 takes float16's.
    ("3xtf32", 3): (4.26e-05, 1.68, 7.56e-11, 0.0, 5.68e-13),
    ("tf32", 3): (1.89e-05, 1.91, 3.93e-11, 6.45e-08, 5.7e-13),
    ("float16", 3): (2.12e-05, 1.13, 2.81e-11, 7.38e-08, 1.09e-12),
    ("bfloat16", 3): (2.12e-05, 1.13, 2.81e-11, 7.38e-08, 1.09e-12),
    ("3xtf32", 4): (7.14e-05, 2.53, 0.0, 6.83e-08, 3.42e-13),
    ("tf32", 4): (4.53e-05, 2.0, 0.0, 2.04e-07, 5.05e-13),
    ("float16", 4): (3.24e-05, 1.4, 0.0, 1.48e-07, 1.33e-12),
    ("bfloat16", 4): (3.24e-05, 1.4, 0.0, 1.48e-07, 1.33e-12),
    # wgmma (slab 5): the same five terms, the tensor-core time at the wgmma
    # ceiling (_CEILING_WG), fitted (probe/wg_fit.py) to the H200 sweep of
    # probe/wg_sweep.py of 2026-12-02 (eight suite cases, forward and conv3d,
    # every tile of WG_TILES, K block and 3-4 stages: 80-154 timings a mode):
    # predictions 0.53-1.29x the measured times; the fit's pick per case is
    # within 5% of the sweep's best but for vnet_k3s2 (1.08-1.11x: its
    # 64-row, 3-stage tile estimates no faster than the 128-row, 4-stage one)
    # and unet_k2s2_big (1.12-1.23x; mma.sync is taken there) in TF32 and
    # 16-bit, and grouped_g4 in 3xTF32 (1.17x; mma.sync is taken)
    # (bench/NOTES.md).  The small tensor-core factors (0.20-0.76): the
    # kernel is bound by moving operands from L2, not by the tensor cores.
    # 3xTF32 has a sixth weight, on the K steps per resident block (it waits
    # for each K block's products, a latency only other resident blocks
    # hide): with five terms its picks were up to 25% off; the other modes
    # overlap the next block's wgmmas with the wait and fit worse with it.
    # bfloat16 takes float16's fit (the same kernel; its own, 1.2e-5 s fixed
    # from fewer timings, took wgmma for sweep_k3 at twice the fused kernel's
    # time in an earlier fit).
    ("tf32", 5): (2.33e-05, 0.362, 4.38e-11, 0.0, 7.31e-13),
    ("3xtf32", 5): (3.0e-05, 0.755, 3.39e-11, 0.0, 1.03e-12, 2.53e-07),
    ("float16", 5): (2.35e-05, 0.208, 1.83e-11, 3.21e-08, 1.69e-12),
    ("bfloat16", 5): (2.35e-05, 0.208, 1.83e-11, 3.21e-08, 1.69e-12),
}
# wgmma's box staging (slab 6, asked for only): not yet measured; slab 5's fits
# (its staged-element term then counts the boxes' smaller volume).
_FIT.update({(m, 6): f for (m, sl), f in list(_FIT.items()) if sl == 5})
_FIT.update({(m, 7): f for (m, sl), f in list(_FIT.items()) if sl == 5})
# K blocks of several taps (slab 8): not yet measured; slab 5's fits.
_FIT.update({(m, 8): f for (m, sl), f in list(_FIT.items()) if sl == 5})
#: Values one tile of the channels-last copy holds (CL_ELEMS in mma.cu), and
#: the most blocks its grid has (they stride over the tiles).
_CL_ELEMS = 4096
_CL_GRID = 8192
#: The channels-last copy: (launch s, bytes per second) for x read and the copy written.
#: The slab fits (``_FIT``) were made with it, so it stays as calibrated although the copy
#: by 16-byte vectors (x's rows whole vectors) measured 2.5-3.8 TB/s and the tile copy
#: 1.1-1.4 (16-bit) and 1.9-2.5 (float) on the H200: the measured rates in its place moved
#: two picks, one slower (sweep_k3 bfloat16 to wgmma: 0.065 ms against the float32 FMA
#: plan's 0.041; bench/results/precisions_h200_2026-12-03k, NOTES).
_CL_COPY = (4e-6, 2.5e12)


#: The output term of the estimates of W-pair configurations (``pair``)
#: relative to the phase-by-phase writes: 0.28-0.55 on the H200 sweep of
#: unet_k2s2 and unet_k2s2_big (float16, TF32, 3xTF32; the slab 5 fits'
#: other terms as they are), 0.4 taken (predictions 0.86-1.17x measured).
_PAIR_OUT = 0.4


#: The output term of the estimates of W-fold configurations (``fold``):
#: whole output rows, as the pairs'; and the estimate's scale where
#: :func:`fold_applies`: same_k3s1 in TF32 measured 0.147 ms against the
#: fold tile's 0.119 estimated (the plain pick 0.177, its estimate 0.185;
#: H200 sweep, 2026-12-03, third session); with it the second sweep's
#: estimates were 0.96-1.04x the measured times of the tiles taken.
_FOLD_OUT = 0.4
_FOLD = 1.24


def fold_applies(params, dtype):
    """Where ``cuda.wgmma`` considers the W fold (:func:`fold_params`):
    float32 storage (TF32 and 3xTF32), at least 16 channels a group in and
    out, unit stride along W and input rows that fill 64-, 128- or (3xTF32
    only) 192-row tiles exactly.  Measured on the H200: same_k3s1 TF32 1.2x
    faster than the phase-by-phase pick, 3xTF32 1.17x (192 rows),
    dilated_k3d2 3xTF32 1.10x (192 rows); stride 2 (vnet, gan), rows that
    leave part of a tile idle (dilated_k3d2's 48 in TF32, seed_example's
    100) and every 16-bit case were 1.0-1.8x slower (the epilogue's round
    trip through shared memory and few resident blocks on layers of few K
    steps: bench/NOTES.md)."""
    if dtype != "float32" or fold_params(params) is None or params.stride[2] != 1:
        return False
    if min(params.in_channels_per_group, params.out_channels_per_group) < 16:
        return False  # sweep_k3 (4 channels) in TF32: 0.059 ms folded, the FMA kernel 0.024
    return any(bm % params.in_size[2] == 0 for bm in WG_FOLD_BM)  # 192: 3xTF32 only


#: The estimate of a VEC configuration (the epilogue through shared memory)
#: where :func:`vec_applies`, relative to the same tile's: same_k3s1 and
#: dilated_k3d2 in float16 measured 0.97x and 0.94x the plain pick's time
#: (H200 sweep, the same process); in TF32 1.02-1.05x, on seed_example
#: (rows of 100, misaligned) 1.39x, hence the rule.
_VEC = 0.96


def vec_smem(bm, bn, itemsize):
    """Shared memory the VEC epilogue's tile takes (``[bn][bm + 16 bytes]``
    values after the 1024-byte alignment); the stages' memory is reused."""
    return bn * (bm + 16 // itemsize) * itemsize + 1024


def vec_applies(params, dtype):
    """Where ``cuda.wgmma`` considers the VEC epilogue: 16-bit storage, unit
    output steps along W, output rows of whole 16-byte runs and at most 32
    output channels a group (the measured cases)."""
    return (dtype in ("float16", "bfloat16") and not isinstance(params, Conv3dGemm)
            and params.stride[2] == 1 and params.out_size[2] % 8 == 0
            and params.out_channels_per_group <= 32)


@lru_cache(maxsize=256)
def pair_params(params):
    """The layer whose GEMM ``xconvt_wgmma`` runs for a W-pair configuration
    (``MmaConfig.pair``), or None where ``params`` has none: along W the
    kernel equals the stride, 2, with no padding, output padding or dilation
    (U-Net upsampling), so every output column ``2 iw + j`` is tap ``j`` of
    input column ``iw``.  The pair layer has kernel 1 and stride 1 along W
    and ``2 * Cout`` channels, column ``2 o + j`` being channel ``o``'s W
    phase ``j``; its epilogue writes the two as one 2-value store (a whole
    32-byte sector a warp's eight rows), where the phase-by-phase kernel
    writes every other element."""
    if isinstance(params, Conv3dGemm) or params.kernel[2] != 2 or params.stride[2] != 2:
        return None
    if params.padding[2] or params.output_padding[2] or params.dilation[2] != 1:
        return None
    from ..._params import ConvParams

    kd, kh, _ = params.kernel
    return ConvParams.from_shapes(
        params.input_shape,
        (params.in_channels, 2 * params.out_channels_per_group, kd, kh, 1),
        (2 * params.out_channels,) if params.has_bias else None,
        stride=params.stride[:2] + (1,), padding=params.padding[:2] + (0,),
        output_padding=params.output_padding[:2] + (0,),
        dilation=params.dilation[:2] + (1,), groups=params.groups)


#: Column tiles of the W fold: the wgmma widths (``Wg<DT, N>`` in mma.cu)
#: a fold's columns come in whole channels of (KW W taps each).
WG_FOLD_BN = (256, 192, 128, 96, 64, 48, 32)
#: Row tiles of the W fold (192: three warpgroups, four rows of 48).
WG_FOLD_BM = (192, 128, 64)


@lru_cache(maxsize=256)
def fold_params(params):
    """The layer whose GEMM ``xconvt_wgmma`` runs for a W-fold configuration
    (``MmaConfig.fold``), or None where ``params`` has none (kernel width 1,
    conv3d, or no column tile of whole channels).  The fold layer has
    kernel 1, stride 1 and no padding along W (its output columns are the
    input's) and ``KW * Cout`` channels, column ``c * KW + kw`` being
    channel ``c``'s W tap ``kw``: every multiply-add of the layer once, as in
    the phase-by-phase GEMMs, but each input row's taps reuse one A row, and
    the epilogue, which holds whole input rows (M tiles of ``bm // IW``
    rows), sums each output column's taps and writes the output row along W
    (where the phases write every ``stride``-th value).  W pairs
    (:func:`pair_params`) are the fold of kernel = stride = 2 without a sum."""
    if isinstance(params, Conv3dGemm):
        return None
    kw = params.kernel[2]
    if kw < 2 or not any(bn % kw == 0 for bn in WG_FOLD_BN):
        return None
    from ..._params import ConvParams

    kd, kh, _ = params.kernel
    return ConvParams.from_shapes(
        params.input_shape,
        (params.in_channels, kw * params.out_channels_per_group, kd, kh, 1),
        (kw * params.out_channels,) if params.has_bias else None,
        stride=params.stride[:2] + (1,), padding=params.padding[:2] + (0,),
        output_padding=params.output_padding[:2] + (0,),
        dilation=params.dilation[:2] + (1,), groups=params.groups)


def fold_smem(bm, bn):
    """Shared memory of the W fold's epilogue: the tile as floats
    (``[bn][bm + 4]``), the rows' output offsets, the 1024-byte alignment."""
    return bn * (bm + 4) * 4 + 8 * bm + 1024


def _fold_rows(params, cfg):
    """Positions an M tile of a fold configuration covers: whole input rows
    (``params`` is the fold layer, its output width the input's)."""
    iw = params.out_size[2]
    return cfg.bm // iw * iw


def _in_step(params):
    """Input step between neighbouring output positions of a phase, per axis."""
    return getattr(params, "in_step", (1, 1, 1))


@dataclass(frozen=True)
class GatherAxis:
    """One axis of :class:`Conv3dGemm`'s single phase: output ``first + j``
    (``j < count``) reads input ``base + j*q + u*step`` with kernel tap
    ``taps[u]`` (the fields of :class:`xconvt._params.AxisPhase`, plus the
    input step ``q``)."""

    first: int
    count: int
    base: int
    step: int
    taps: tuple
    q: int

    @property
    def pad_lo(self):
        """Zeros needed before input index 0."""
        return max(0, -self.base)

    def pad_hi(self, in_size):
        """Zeros needed after input index ``in_size - 1``."""
        last = self.base + (self.count - 1) * self.q + (len(self.taps) - 1) * self.step
        return max(0, last - (in_size - 1))


@dataclass(frozen=True)
class Conv3dGemm:
    """conv3d as one phase of ``xconvt_mma``: the adjoint of ``params``'
    transposed convolution, ``x[n, c, i] = sum_{o, k} w[c, o, k] y[n, o, i*s +
    k*d - p]``, is the GEMM

        C[m, c] = sum_{(k, o)} A[m, (k, o)] B[(k, o), c]
        m = (n, i)     the positions of x (the kernel's outputs), W fastest
        A[m, (k, o)] = y[n, g*Cog + o, i*s + k*d - p]   (0 outside y)
        B[(k, o), c] = w[g*Cig + c, o, k]

    every tap a real one (no space-to-depth rewrite, no zero taps), A read at
    the stride ``s`` (the kernel's ``QD, QH, QW``).  It has the attributes of
    :class:`xconvt._params.ConvParams` that this module reads, with the
    channels and sizes of y (input) and x (output) in the kernel's roles.
    """

    params: object  # the transposed convolution's ConvParams

    batch = property(lambda self: self.params.batch)
    groups = property(lambda self: self.params.groups)
    in_channels = property(lambda self: self.params.out_channels)
    out_channels = property(lambda self: self.params.in_channels)
    in_channels_per_group = property(lambda self: self.params.out_channels_per_group)
    out_channels_per_group = property(lambda self: self.params.in_channels_per_group)
    in_size = property(lambda self: self.params.out_size)
    out_size = property(lambda self: self.params.in_size)
    kernel = property(lambda self: self.params.kernel)
    stride = (1, 1, 1)  # output step of the phase
    in_step = property(lambda self: self.params.stride)
    input_shape = property(lambda self: self.params.batched_output_shape)
    batched_output_shape = property(lambda self: self.params.input_shape)

    @property
    def axis_phases(self):
        p = self.params
        return tuple((GatherAxis(0, p.in_size[a], -p.padding[a], p.dilation[a],
                                 tuple(range(p.kernel[a])), p.stride[a]),)
                     for a in range(3))

    def phases(self):
        tri = tuple(ax[0] for ax in self.axis_phases)
        return [tri] if all(ph.count for ph in tri) else []


def _mode(dtype, precision):
    """``(MODE template value, mode name)``; None where no mode applies."""
    if dtype == "float32":
        return (1, "3xtf32") if precision == "float32" else (0, "tf32")
    if dtype in ("float16", "bfloat16"):
        return 2, dtype
    return None


class MmaConfig(NamedTuple):
    """Template arguments and launch shape of ``xconvt_mma`` for one problem."""

    dt: int          # storage (0 float32, 1 float16, 2 bfloat16)
    mode: int        # 0 TF32, 1 3xTF32, 2 f16/bf16
    index_t: str     # "int" or "long long"
    bm: int
    bn: int
    bk: int
    wm: int
    wn: int
    stages: int
    threads: int
    smem: int        # dynamic shared memory, bytes
    minb: int = 2    # resident blocks per SM the registers must allow
    slab: int = 0    # A staging: 0 per tap, 1 slab (registers), 2 slab (cp.async, float),
                     # 3 channels-last copy (16-byte cp.async rows), 4 the copy's
                     # slabs (box tiles, 16-byte cp.async rows); xconvt_wgmma: 5 the
                     # copy per tap, 6 the copy's slabs (box tiles TD x 8 x 8; not
                     # yet run on a GPU, used only when asked for)
    box: tuple = (0, 0, 0)  # slab: the M tile (TD, TH, TW) in phase coordinates
    sc: int = 0      # slab: 32-bit words per k row of a slab buffer
    tpk: int = 1     # slab 8: taps a K block spans (bk is then one tap's channels)
    pair: int = 0    # xconvt_wgmma: column pairs are W phase pairs (:func:`pair_params`)
    vec: int = 0     # xconvt_wgmma: the epilogue through shared memory, 16-byte stores
    fold: int = 0    # xconvt_wgmma: the W fold (:func:`fold_params`), the kernel's width
    l1a: int = 0     # xconvt_wgmma: A copied through L1 (cp.async.ca; ``ACA``)
    mw: int = 1      # xconvt_wgmma: 64-row accumulator blocks a warpgroup computes

    @property
    def name(self):
        if self.slab >= 5:
            return (f"xconvt_wgmma<{self.dt}, {self.mode}, {self.index_t}, {self.bm}, "
                    f"{self.bn}, {self.bk * self.tpk}, {self.stages}, {self.minb}, "
                    f"{self.slab - 5}{f', {self.mw}' if self.mw > 1 else ''}>")
        return (f"xconvt_mma<{self.dt}, {self.mode}, {self.index_t}, {self.bm}, {self.bn}, "
                f"{self.bk}, {self.wm}, {self.wn}, {self.stages}, {self.minb}, {self.slab}>")


def _smem(bm, bn, bk, stages, itemsize, sc=0, mode=0, slab=0, ntaps=0, tpk=1):
    """Dynamic shared memory: B stages (twice for 3xTF32, ``mode`` 1: big and
    small), then A stages or (``sc``) two slab buffers of ``sc`` words per k
    row (3xTF32: twice the rows) and the slab's position table; ``slab`` 3:
    ``[m][k]`` A stages with rows padded by 16 bytes; 4: two ``[pos][k]``
    slabs of ``sc`` positions and their position table; 5 (wgmma): unpadded
    ``[chunk][row]`` A and B stages; 8: as 5 with K blocks of ``tpk`` taps
    of ``bk`` channels, then the offsets of ``ntaps`` taps (8 bytes each)."""
    if slab == 8:
        return ((2 if mode == 1 else 1) * stages * (bm + bn) * bk * tpk * itemsize + 1024
                + 8 * -(-ntaps // tpk) * tpk)
    if slab == 5:  # 1024 more: the kernel aligns the stages to 1024 bytes
        return (2 if mode == 1 else 1) * stages * (bm + bn) * bk * itemsize + 1024
    if slab == 6:  # B stages, then two slab buffers of sc rows
        return (2 if mode == 1 else 1) * (stages * bn + 2 * sc) * bk * itemsize + 1024
    if slab == 7:  # one box of sc rows, then B of ``ntaps`` taps
        return (2 if mode == 1 else 1) * (sc + ntaps * bn) * bk * itemsize + 1024
    b = (2 if mode == 1 else 1) * stages * bk * (bn + 8) * itemsize
    if slab == 3:
        return b + stages * bm * (bk + 16 // itemsize) * itemsize
    if slab == 4:  # two [pos][k] slab buffers (rows padded by 16 bytes), position table
        return b + 2 * sc * (bk + 16 // itemsize) * itemsize + 4 * sc
    if sc:
        kp = (bk if itemsize == 4 else bk // 2) * (2 if mode == 1 else 1)
        return b + (2 * kp + 1) * sc * 4
    return b + stages * bk * (bm + 8) * itemsize


def _slab_dims(params, box):
    """Per phase with taps: the slab extent (SD, SH, SW) of a ``box`` tile."""
    steps = [ax[0].step for ax in params.axis_phases]
    out = []
    for tri in params.phases():
        n = [len(ph.taps) for ph in tri]
        if min(n) == 0:
            continue
        out.append(tuple(b + (k - 1) * e for b, k, e in zip(box, n, steps)))
    return out


@lru_cache(maxsize=1024)
def cl_layout(params, bk):
    """The channels-last copy of x that the ``"cl"`` staging reads:
    ``((PD, PH, PW), (LD, LH, LW), CT)``, the padded extents, the leading halo
    and the channels per position (``groups * ceil(Cig/bk)*bk``).  The halo
    covers every position a phase with taps reads, so the kernel needs no
    bounds checks."""
    lo, hi = [0, 0, 0], [0, 0, 0]
    for tri in params.phases():
        if min(len(ph.taps) for ph in tri) == 0:
            continue
        for a, (ph, n) in enumerate(zip(tri, params.in_size)):
            lo[a] = max(lo[a], ph.pad_lo)
            hi[a] = max(hi[a], ph.pad_hi(n))
    ext = tuple(n + lo_ + hi_ for n, lo_, hi_ in zip(params.in_size, lo, hi))
    ct = params.groups * -(-params.in_channels_per_group // bk) * bk
    return ext, tuple(lo), ct


def cl_grid(ext, ct, batch, v):
    """Blocks of ``xconvt_mma_to_cl`` for a copy of padded extents ``ext``,
    ``ct`` channels and ``batch`` samples, ``v`` values a 4-byte word (2 for
    16-bit storage): its tiles of ``TP x TC`` (``TC = 32 v``, or the power of
    two from 16 covering ``ct``), at most ``_CL_GRID``."""
    tc = 32 * v
    while tc > 16 and tc // 2 >= ct:
        tc //= 2
    tp = _CL_ELEMS // tc
    tiles = batch * -(-math.prod(ext) // tp) * -(-ct // tc)
    return max(1, min(tiles, _CL_GRID))


def cl_vec_grid(ext, ct, batch, in_size, e):
    """Blocks of ``xconvt_mma_to_cl<..., VEC = 1>`` (8 warps each): a warp per
    unit of ``8 e`` input positions by ``4 e`` channels (``e`` values a
    16-byte vector) and per padded row of the halo pass, at most
    ``_CL_GRID``."""
    units = batch * -(-math.prod(in_size) // (8 * e)) * -(-ct // (4 * e))
    rows = batch * ext[0] * ext[1]
    return max(1, min(-(-max(units, rows) // 8), _CL_GRID))


def pack_vec_grid(groups, cig, row, e):
    """Blocks of ``xconvt_wgmma_prep``'s vector pack (VEC bit 2; 8 warps
    each): a warp per unit of ``8 e`` values of w's rows of ``row`` values by
    ``4 e`` K channels, per group, at most ``_CL_GRID``."""
    units = groups * -(-(row // e) // 8) * -(-(-(-cig // e)) // 4)
    return max(1, min(-(-units // 8), _CL_GRID))


#: ``PackArgs`` of mma.cu (xconvt_wgmma_prep's pack arguments), in its order.
PACK_FIELDS = (("small", np.int64), ("kstride", np.int64), ("nstride", np.int64),
               ("Cig", np.int32), ("Cog", np.int32), ("K3", np.int32), ("wf", np.int32),
               ("px", np.int32), ("py", np.int32), ("pz", np.int32), ("pad", np.int32))


def pack_struct(values, grid):
    """``PackArgs`` as a NumPy structured scalar: ``values`` (every field of
    :data:`PACK_FIELDS` but the grid's) and the pack's ``grid`` ``(px, py,
    pz)``."""
    arr = np.zeros(1, np.dtype(list(PACK_FIELDS)))
    for f, v in {**values, **dict(zip(("px", "py", "pz"), grid))}.items():
        arr[f] = v
    return arr[0]


def cl_elements(params, bk):
    """Elements of the channels-last copy (:func:`cl_layout`)."""
    ext, _, ct = cl_layout(params, bk)
    return params.batch * math.prod(ext) * ct


@lru_cache(maxsize=1024)
def slab_box(params, bm):
    """``(box, sc)``: the M tile ``(TD, TH, TW)`` of ``bm`` positions (powers of
    2, ``TW >= 8`` so fragment rows lie in one W row) that stages the fewest
    slab elements per useful output, and the slab row length in words
    (``sc = 8 mod 32``: conflict-free fragment loads)."""
    best = None
    tw = 8
    while tw <= bm:
        th = 1
        while tw * th <= bm:
            td = bm // (tw * th)
            box = (td, th, tw)
            cost = 0
            for tri in params.phases():
                taps = math.prod(len(ph.taps) for ph in tri)
                tiles = math.prod(-(-ph.count // b) for ph, b in zip(tri, box))
                vol = math.prod(b + (max(1, len(ph.taps)) - 1) * ax[0].step
                                for b, ph, ax in zip(box, tri, params.axis_phases))
                cost += tiles * (2 * bm * taps + (vol if taps else 0))
            if best is None or cost < best[0]:
                best = (cost, box)
            th *= 2
        tw *= 2
    box = best[1]
    npos = max([math.prod(d) for d in _slab_dims(params, box)] + [1])
    return box, npos + (8 - npos) % 32


def _minb(mode, wm, threads, slab=0, wn=32):
    """Blocks per SM the kernel's registers are capped for: 128 registers a
    thread for 256-thread blocks and 32x32 warp tiles (ptxas, sm_90a: no or
    a few spilled bytes), 168 (3 blocks) for 64x32 warp tiles, 207 (2) with
    3xTF32's split operands; 64x64 warp tiles (128 accumulators) may use
    255."""
    if wm * wn >= 64 * 64:  # 128 accumulators a thread: up to 255 registers
        return max(1, 256 // threads)
    if threads == 256:
        return 1 if slab in (1, 2) else 2  # slab 128x128 tiles need 210-255 registers
    if wm == 32:
        return 4
    return 2 if mode == 1 else 3


def _sizes(params, cfg_bk, cfg_bn, tpk=1):
    """Element counts of x, the output and the packed weights (each phase's
    taps padded to whole K blocks of ``tpk`` taps)."""
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    ncb = -(-cig // cfg_bk)
    np_ = -(-cog // cfg_bn) * cfg_bn
    taps = sum(-(-len(pd.taps) * len(ph.taps) * len(pw.taps) // tpk) * tpk
               for pd, ph, pw in params.phases())
    return (math.prod(params.input_shape), math.prod(params.batched_output_shape),
            params.groups * taps * ncb * cfg_bk * np_)


def _candidates(params, dtype, precision, smem_per_block, variant="tap"):
    """Every configuration of A staging ``variant`` (``"tap"``, ``"slab"``,
    ``"slab_async"``, ``"cl"``, ``"cl_slab"``, ``"auto"`` for tap, cl and
    cl_slab, or None for all)
    that fits in ``smem_per_block``."""
    if variant == "wgmma_vec":  # slab 5, the epilogue through shared memory
        if isinstance(params, Conv3dGemm) or params.stride[2] != 1:
            return []
        itemsize = DTYPES[dtype][1]
        out = []
        for c in _wg_candidates(params, dtype, precision, smem_per_block):
            smem = max(vec_smem(c.bm, c.bn, itemsize), c.smem)
            if smem <= smem_per_block:
                out.append(c._replace(vec=1, smem=smem))
        return out
    if variant == "wgmma_fold":  # slab 5 on fold_params, the epilogue sums the W taps
        fp = fold_params(params)
        if fp is None:
            return []
        kw, iw = params.kernel[2], params.in_size[2]
        mode = _mode(dtype, precision)[0]
        # 192 rows: 3xTF32 only (TF32 same_k3s1 measured 0.164 ms as 192x96,
        # 0.141 as 128x96; 3xTF32 0.271 against 0.300)
        tiles = tuple((bm, bn) for bm in WG_FOLD_BM for bn in WG_FOLD_BN
                      if bn % kw == 0 and bm >= iw and (mode != 1 or bn <= 128)
                      and (bm != 192 or mode == 1))
        out = []
        # the real output's offsets may pass int32 where the fold layer's do not
        wide = math.prod(params.batched_output_shape) > _INT32_MAX
        for c in _wg_candidates(fp, dtype, precision, smem_per_block, 5, tiles):
            smem = max(fold_smem(c.bm, c.bn), c.smem)
            if smem <= smem_per_block:
                out.append(c._replace(fold=kw, smem=smem,
                                      index_t="long long" if wide else c.index_t))
        return out
    if variant == "wgmma_pair":  # slab 5 on pair_params, columns written as W pairs
        gp = pair_params(params)
        return [] if gp is None else [
            c._replace(pair=1) for c in _wg_candidates(gp, dtype, precision, smem_per_block)]
    if variant in WG_VARIANTS:
        return _wg_candidates(params, dtype, precision, smem_per_block, WG_VARIANTS[variant])
    dt, itemsize = DTYPES[dtype]
    mode = _mode(dtype, precision)[0]
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    out = []
    for bk in (16, 32):
        if bk == 32 and cig <= 16:
            continue
        for bm, bn, wm, wn in TILES:
            # tap: BK = 32 with 128-column tiles (gan_k4s2: 1.12-1.20x faster
            # than 16 in TF32, f16, bf16; 3xTF32, whose 128x128x32 kernel spills,
            # 1.12x slower), 16 with narrower ones (32 was 5-30% slower: one
            # resident block fewer); slab: BK = 32 was 1.3-1.5x faster than 16
            # (half the steps, each with its barrier and slab loads)
            tap_bk = (bk == 32) == (bn == 128 and mode != 1)
            if bn > 32 and -(-cog // bn) * bn >= 2 * max(cog, 32):
                continue  # mostly padding
            if mode == 1 and wm * wn >= 64 * 64:
                continue  # 3xTF32's split fragments beside 128 accumulators spill
            if mode == 1 and (bm // wm) * (bn // wn) > 4:
                continue  # 3xTF32 accumulates per K block on 128-thread tiles only (faster)
            threads = (bm // wm) * (bn // wn) * 32
            index_t = ("int" if max(_sizes(params, bk, bn)) <= _INT32_MAX else "long long")
            for slab in {"tap": (0,), "slab": (1,), "slab_async": (2,), "cl": (3,),
                         "cl_slab": (4,), "auto": (0, 3, 4), None: (0, 1, 2, 3, 4)}[variant]:
                if (not slab and not tap_bk) or (slab == 2 and dt != 0):
                    continue
                if slab in (1, 2) and wm * wn >= 64 * 64:
                    continue  # the register and 4-byte slabs keep their original tiles
                if slab in (1, 2, 4) and _in_step(params) != (1, 1, 1):
                    continue  # box tiles read unit-step input boxes only
                if slab >= 3 and params.batch > 65535:
                    continue  # the layout copy's grid has one z block per sample
                if slab == 4 and math.prod(cl_layout(params, bk)[0]) > _INT32_MAX:
                    continue  # 32-bit slab position table
                if slab in (1, 2):
                    box, sc = slab_box(params, bm)
                elif slab == 4:
                    box = slab_box(params, bm)[0]
                    sc = max([math.prod(d) for d in _slab_dims(params, box)] + [1])
                else:
                    box, sc = (0, 0, 0), 0
                for stages in (3, 2):
                    smem = _smem(bm, bn, bk, stages, itemsize, sc, mode, slab)
                    if smem <= smem_per_block:
                        break
                else:
                    continue
                if slab >= 3:
                    if cl_elements(params, bk) > _INT32_MAX:
                        index_t = "long long"
                out.append(MmaConfig(dt, mode, index_t, bm, bn, bk, wm, wn, stages, threads,
                                     smem, _minb(mode, wm, threads, slab, wn), slab, box,
                                     sc))
    return out


def _wg_minb(bn, threads, mode=0, mw=1):
    """Blocks per SM ``xconvt_wgmma``'s registers are capped for: about
    ``mw * bn/2`` accumulators (3xTF32: twice) and 64 other registers a thread
    (ptxas, sm_90a: 128 registers for 128x128 tiles, 216 for 128x256)."""
    regs = mw * bn // 2 * (2 if mode == 1 else 1) + 64
    return max(1, min(4, 65536 // (threads * regs)))


def wg_box_rows(params, td):
    """``xconvt_wgmma``'s box stagings (``slab`` 6, 7) of ``td x 8 x 8``
    tiles: rows a box buffer holds, the largest phase's ``SD x SH x SW``
    rounded up to 32 rows (buffers of whole 1024-byte swizzle repeats; the
    hardware swizzles absolute addresses, so a tap's window may start at any
    row)."""
    rows = 8
    for sd, sh, sw in _slab_dims(params, (td, 8, 8)):
        rows = max(rows, sd * sh * sw)
    return -(-rows // 32) * 32


def _max_taps(params):
    """The most taps of one phase."""
    return max([math.prod(len(ph.taps) for ph in tri) for tri in params.phases()] + [1])


def with_rows(params, cfg, bm, mw, stages=None):
    """``cfg`` (an ``xconvt_wgmma`` configuration of flat M tiles on the real
    layer ``params``) with M tiles of ``bm`` rows, each warpgroup computing
    ``mw`` accumulator blocks of 64 rows (``bm // (64 * mw)`` warpgroups),
    ``stages`` stages (default ``cfg``'s): threads, registers' block cap and
    shared memory recomputed."""
    gp = fold_params(params) if cfg.fold else pair_params(params) if cfg.pair else params
    st = stages or cfg.stages
    item = 4 if cfg.dt == 0 else 2
    threads = bm // (64 * mw) * 128
    smem = _smem(bm, cfg.bn, cfg.bk, st, item, cfg.sc, cfg.mode, cfg.slab, _max_taps(gp),
                 cfg.tpk)
    if cfg.vec:
        smem = max(smem, vec_smem(bm, cfg.bn, item))
    if cfg.fold:
        smem = max(smem, fold_smem(bm, cfg.bn))
    return cfg._replace(bm=bm, mw=mw, threads=threads, stages=st, smem=smem,
                        minb=_wg_minb(cfg.bn, threads, cfg.mode, mw))


def mw_rows(params, cfg):
    """``(bm, mw)``: the M tile and 64-row blocks a warpgroup that replace a
    plain ``xconvt_wgmma`` pick ``cfg`` of 128 x 32 tiles where measured
    faster (H200, 2026-12-03, probe/l1_probe.py, same process as cuDNN):
    16-bit stride-1 layers 512 rows, ``MW`` 4 (same_k3s1 0.111 -> 0.104 ms,
    dilated_k3d2 0.053 -> 0.052), 16-bit and TF32 layers of stride 2 256
    rows, ``MW`` 2 (vnet_k3s2 float16 0.098 -> 0.090, TF32 0.130 -> 0.126);
    else None (TF32 stride 1, 128-column tiles and 3xTF32 measured no faster
    or slower)."""
    if (isinstance(params, Conv3dGemm) or cfg.slab != 5 or cfg.fold or cfg.pair
            or cfg.mw != 1 or (cfg.bm, cfg.bn) != (128, 32)
            or params.out_channels_per_group > 32 or params.groups != 1
            or params.in_channels_per_group < 32):  # as measured: 32-64 channels in
        return None
    if cfg.mode == 2 and params.stride == (1, 1, 1):
        return 512, 4
    if cfg.mode in (0, 2) and params.stride == (2, 2, 2):
        return 256, 2
    return None


def _wg_candidates(params, dtype, precision, smem_per_block, slab=5, tiles=WG_TILES):
    """Configurations of ``xconvt_wgmma`` with A staging ``slab``
    (:data:`WG_VARIANTS`: 5 the channels-last copy, K-major packed weights;
    6 and 7 the copy's input box per channel block, unit input steps only;
    8 the copy per K block of ``tpk`` taps, where a group's channels fill 64
    bytes or less) that fit ``smem_per_block``: TF32, 3xTF32, float16 and
    bfloat16."""
    dt, itemsize = DTYPES[dtype]
    mode = _mode(dtype, precision)[0]
    box = slab in (6, 7)
    if params.batch > 65535 or (box and _in_step(params) != (1, 1, 1)):
        return []
    ntaps = _max_taps(params)
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    out = []
    tpk = 1
    kbytes_all = WG_KBYTES
    if slab == 8:  # one tap's channels in 16, 32 or 64 bytes; 128-byte K blocks
        fits = [b for b in (16, 32, 64) if cig * itemsize <= b]
        if not fits:
            return []
        tpk = 128 // fits[0]
        kbytes_all = (fits[0],)
    for kbytes in kbytes_all:
        bk = kbytes // itemsize
        if (slab in (5, 6) and kbytes < 128
                and -(-cig // (2 * bk)) * 2 * bk == -(-cig // bk) * bk):
            continue  # the wider block pads no more channels (7: less shared memory)
        if mode == 1 and 2 * cl_elements(params, bk) > _INT32_MAX:
            continue  # the copy's small halves are an int32 offset away
        for tile_ in tiles:
            bm, bn, mw = tile_ if len(tile_) == 3 else (*tile_, 1)
            if bn > 32 and -(-cog // bn) * bn >= 2 * max(cog, 32):
                continue  # mostly padding
            index_t = ("int" if max(_sizes(params, bk, bn, tpk)) <= _INT32_MAX
                       and cl_elements(params, bk) <= _INT32_MAX else "long long")
            threads = bm // (64 * mw) * 128
            minb = _wg_minb(bn, threads, mode, mw)
            tile, sc = (0, 0, 0), 0
            if box:
                tile, sc = (bm // 64, 8, 8), wg_box_rows(params, bm // 64)
            if slab == 7:  # no stages (3: the template's minimum, unused)
                smem = _smem(bm, bn, bk, 3, itemsize, sc, mode, slab, ntaps)
                if smem <= smem_per_block:
                    out.append(MmaConfig(dt, mode, index_t, bm, bn, bk, 64, bn, 3,
                                         threads, smem, minb, slab, tile, sc))
                continue
            # 4 or 3 stages: in the sweep 3 or 4 was the best count on every
            # case, 5 and 6 no better and with 3xTF32's twice the shared memory
            # up to 1.7x slower.  Both are candidates; the estimates tell them
            # apart by the blocks resident per SM (3xTF32's sixth term), and
            # otherwise 4, the first, wins the tie
            for stages in (4, 3):
                smem = _smem(bm, bn, bk, stages, itemsize, sc, mode, slab, ntaps, tpk)
                if smem <= smem_per_block:
                    out.append(MmaConfig(dt, mode, index_t, bm, bn, bk, 64, bn, stages,
                                         threads, smem, minb, slab, tile, sc, tpk, mw=mw))
    return out


def _work(params, cfg):
    """``(padded multiply-adds, staged operand elements, blocks)`` of ``cfg``."""
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    kp = -(-cig // cfg.bk) * cfg.bk
    nt = -(-cog // cfg.bn)
    macs = staged = blocks = 0
    for tri in params.phases():
        taps = math.prod(len(ph.taps) for ph in tri)
        taps = -(-taps // cfg.tpk) * cfg.tpk  # slab 8: padded to whole K blocks
        nb = _m_tiles(params, tri, cfg) * nt * params.groups
        blocks += nb
        macs += nb * cfg.bm * cfg.bn * kp * taps
        if cfg.slab in (1, 2, 4, 6, 7) and taps:
            vol = math.prod(b + (len(ph.taps) - 1) * ax[0].step
                            for b, ph, ax in zip(cfg.box, tri, params.axis_phases))
            staged += nb * (vol + cfg.bn * taps) * kp
        else:
            staged += nb * (cfg.bm + cfg.bn) * kp * taps
    return macs, staged, blocks


def _m_tiles(params, tri, cfg):
    """M tiles of one phase: flat runs of ``bm`` positions, or slab boxes."""
    if cfg.slab in (1, 2, 4, 6, 7):
        return params.batch * math.prod(-(-ph.count // b) for ph, b in zip(tri, cfg.box))
    per = _fold_rows(params, cfg) if cfg.fold else cfg.bm
    return -(-(params.batch * math.prod(ph.count for ph in tri)) // per)


def features(params, cfg, mode_name, sm_count, smem_per_sm=233472):
    """``(copy seconds, terms)`` of :func:`estimate`: the channels-last copy's
    time (``_CL_COPY``; 0 without it) and the terms ``_FIT`` weighs: 1, the
    tensor-core time of the padded multiply-adds at ``_CEILING``, the staged
    operand elements and the K steps (each with its barrier), both per SM
    the blocks keep busy, the output's bytes (blocks per SM from shared
    memory and the register cap; a partial last wave counts as a whole), and
    the K steps per SM over the blocks resident on one (a fit with a sixth
    weight: wgmma's 3xTF32 waits for each K block's products, a latency only
    other resident blocks hide)."""
    if cfg.pair:  # the GEMM of the pair layer
        params = pair_params(params)
    if cfg.fold:  # the GEMM of the fold layer, the real output's bytes
        copy, terms = _features(fold_params(params), cfg, mode_name, sm_count, smem_per_sm)
        out_bytes = math.prod(params.batched_output_shape) * (4 if cfg.dt == 0 else 2)
        return copy, terms[:4] + (out_bytes,) + terms[5:]
    return _features(params, cfg, mode_name, sm_count, smem_per_sm)


def _features(params, cfg, mode_name, sm_count, smem_per_sm=233472):
    """:func:`features` of the GEMM geometry ``params``."""
    macs, staged, blocks = _work(params, cfg)
    per_sm = max(1, min(smem_per_sm // (cfg.smem + 1024), cfg.minb))
    waves = -(-blocks // (sm_count * per_sm))
    busy = min(sm_count, blocks / waves) if blocks else sm_count
    itemsize = DTYPES["float32" if cfg.dt == 0 else "float16"][1]
    copy = 0.0
    if cfg.slab >= 3:
        halves = 2 if cfg.slab >= 5 and cfg.mode == 1 else 1
        moved = (math.prod(params.input_shape) + halves * cl_elements(params, cfg.bk)) * itemsize
        copy = _CL_COPY[0] + moved / _CL_COPY[1]
    cig = params.in_channels_per_group
    steps = 0
    for tri in params.phases():
        taps = -(-math.prod(len(ph.taps) for ph in tri) // cfg.tpk)  # slab 8: K blocks
        steps += (_m_tiles(params, tri, cfg) * -(-params.out_channels_per_group // cfg.bn)
                  * params.groups * (1 if cfg.slab == 7 else taps) * -(-cig // cfg.bk))
    out_bytes = math.prod(params.batched_output_shape) * itemsize
    ceiling = (_CEILING_WG if cfg.slab >= 5 else _CEILING)[mode_name]
    return copy, (1.0, 2 * macs / (ceiling / sm_count * busy), staged / busy,
                  steps / busy, out_bytes, steps / busy / per_sm)


def estimate(params, cfg, mode_name, sm_count, smem_per_sm=233472):
    """Predicted seconds of one call with ``cfg``: the copy and ``_FIT``'s
    weights of the terms of :func:`features`."""
    copy, terms = features(params, cfg, mode_name, sm_count, smem_per_sm)
    fit = _FIT[(mode_name, cfg.slab)]
    if cfg.pair or cfg.fold:  # the fits' output term for whole 32-byte sectors
        terms = terms[:4] + (terms[4] * (_PAIR_OUT if cfg.pair else _FOLD_OUT),) + terms[5:]
    scale = _MMA_3XTF32 if mode_name == "3xtf32" and cfg.slab < 5 else 1.0
    if cfg.vec:
        scale *= _VEC
    if cfg.fold:
        scale *= _FOLD
    return copy + scale * sum(f * t for f, t in zip(fit, terms))


@lru_cache(maxsize=1024)
def mma_config(params, dtype, precision="float32", sm_count=132, smem_per_block=232448,
               variant=None):
    """The fastest predicted :class:`MmaConfig` and its estimate, or a reason
    string where none applies.  ``variant`` is the A staging; by default the
    fastest predicted of ``"tap"`` (A from x itself, element by element),
    ``"cl"`` (a channels-last copy of x; A per tap and channel block, rows of
    BK channels by 16-byte ``cp.async``) and ``"cl_slab"`` (the same copy;
    the tile's input box per channel block, read at each tap's offset).  On
    the H200 the copy pays off where taps reuse the input (vnet, gan, same,
    dilated: up to 1.6x faster than tap in float16) and not for one-tap
    layers (unet: tap is up to 1.3x faster; bench/NOTES.md).  ``"slab"``
    and ``"slab_async"`` (the input box through registers or 4-byte copies)
    are used only when asked for; ``"wgmma"`` (sm_90a) gives the
    configurations of ``xconvt_wgmma`` only, ``"wgmma_slab"`` and
    ``"wgmma_box"`` its box stagings (:data:`WG_VARIANTS`)."""
    reason = _reject(params, dtype, precision, smem_per_block)
    if reason:
        return reason
    mode_name = _mode(dtype, precision)[1]
    best = None
    cands = _candidates(params, dtype, precision, smem_per_block, variant or "auto")
    if variant == "wgmma":
        cands = cands + _candidates(params, dtype, precision, smem_per_block, "wgmma_pair")
        if fold_applies(params, dtype):
            iw = params.in_size[2]
            cands = cands + [c for c in _candidates(params, dtype, precision, smem_per_block,
                                                    "wgmma_fold") if c.bm % iw == 0]
        if vec_applies(params, dtype):
            cands = cands + _candidates(params, dtype, precision, smem_per_block, "wgmma_vec")
    if any(c.slab in (1, 2) and c.bk == 32 for c in cands):  # slab: BK = 32 where it fits
        cands = [c for c in cands if c.slab not in (1, 2) or c.bk == 32]
    for cfg in cands:
        t = estimate(params, cfg, mode_name, sm_count)
        if best is None or t < best[1]:
            best = (cfg, t)
    rows = mw_rows(params, best[0]) if variant == "wgmma" and best is not None else None
    if rows:  # the measured replacement: its stage count as timed (two blocks an SM)
        for st in (best[0].stages, 3):
            c = with_rows(params, best[0], *rows, st)
            if c.smem <= smem_per_block and (c.smem <= 116 * 1024 or st == 3):
                best = (c, best[1] * _MW_GAIN)
                break
    if best is None:
        if variant in ("wgmma_slab", "wgmma_box") and _in_step(params) != (1, 1, 1):
            return "the wgmma box staging reads unit-step input boxes only"
        if variant == "wgmma_fold":
            return ("the W fold needs kernel_size > 1 along W, a column tile of whole "
                    "channels and input rows no wider than a row tile (128; 3xTF32 192)")
        if variant == "wgmma_pair" and pair_params(params) is None:
            return ("W phase pairs need kernel_size = stride = 2, padding 0, output "
                    "padding 0 and dilation 1 along W")
        if variant in WG_VARIANTS and params.batch > 65535:
            return "the channels-last copy's grid has one z block per sample (batch <= 65535)"
        return f"no tile fits {smem_per_block} bytes of shared memory per block"
    return best


def _reject(params, dtype, precision, smem_per_block):
    if dtype not in DTYPES:
        return (f"dtype {dtype} has no tensor-core kernel (float32, float16 and "
                "bfloat16 do)")
    if dtype == "float32" and precision not in ("float32", "tf32"):
        return f"precision must be 'float32' or 'tf32', got {precision!r}"
    m_max = max((params.batch * pd.count * ph.count * pw.count
                 for pd, ph, pw in params.phases()), default=0)
    if m_max > _INT32_MAX - 256:
        return f"a stride phase has {m_max} output positions, beyond 32-bit tile indices"
    if params.batch == 0:
        return "the batch is empty"
    if 2 * _sizes(params, 32, 128)[2] > _INT32_MAX:
        return "the packed weights exceed 2**31 - 1 elements"
    if math.prod(params.in_size) > _INT32_MAX:
        return "an input channel has more than 2**31 - 1 elements"
    return ""


# --------------------------------------------------------------------------- tables
def _phase_order(params):
    """Phases with outputs, in the order of the table and the packed weights."""
    return params.phases()


@lru_cache(maxsize=1024)
def mma_tables(params, cfg):
    """The kernel's per-phase table (int32, one row of :data:`META_COLUMNS` per
    phase) and block table (int32 ``(phase, block within the phase)`` per
    block, round-robin over the phases so that the blocks of one tile in
    every phase are neighbours)."""
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    bn, bk = cfg.bn, cfg.bk
    ncb = -(-cig // bk)
    np_ = -(-cog // bn) * bn
    nt = np_ // bn
    rows, nblk, woff = [], [], 0
    for pd, ph, pw in _phase_order(params):
        mt = _m_tiles(params, (pd, ph, pw), cfg)
        taps = len(pd.taps) * len(ph.taps) * len(pw.taps)
        rows.append([mt, nt, pd.count, ph.count, pw.count,
                     pd.first, ph.first, pw.first, pd.base, ph.base, pw.base,
                     len(pd.taps), len(ph.taps), len(pw.taps), woff])
        nblk.append(mt * nt * params.groups)
        woff += params.groups * -(-taps // cfg.tpk) * cfg.tpk * ncb * bk * np_
    meta = np.asarray(rows, np.int64).reshape(-1, len(META_COLUMNS))
    if woff > _INT32_MAX or sum(nblk) > _INT32_MAX:
        raise ValueError(f"packed weights of {woff} elements exceed 32-bit table offsets")
    counts = np.asarray(nblk)
    r = np.arange(counts.max() if counts.size else 0)
    ph_idx = np.broadcast_to(np.arange(len(nblk))[None, :], (r.size, len(nblk)))
    local = np.broadcast_to(r[:, None], ph_idx.shape)
    keep = local < counts[None, :]
    btab = np.stack([ph_idx[keep], local[keep]], axis=1).astype(np.int32)
    return meta.astype(np.int32), btab


@lru_cache(maxsize=256)
def _tap_slots(params, tpk=1):
    """Per kernel tap ``k`` (``(kd_i*kh + kh_i)*kw + kw_i``): its index ``t =
    (ud*nh + uh)*nw + uw`` in its phase (-1 for a tap of no phase with
    outputs), the phase's taps, and the taps of the phases before it (in
    :func:`mma_tables`' order): what both packed layouts are offsets of.
    ``tpk``: each phase's taps padded to a multiple (K blocks of ``tpk``
    taps, slab 8)."""
    kd, kh, kw = params.kernel
    t_of = np.full(kd * kh * kw, -1, np.int64)
    n_of = np.zeros(kd * kh * kw, np.int64)
    before = np.zeros(kd * kh * kw, np.int64)
    seen = 0
    for pd, ph, pw in _phase_order(params):
        taps = len(pd.taps) * len(ph.taps) * len(pw.taps)
        t = 0
        for td in pd.taps:
            for th in ph.taps:
                for tw in pw.taps:
                    k = (td * kh + th) * kw + tw
                    t_of[k], n_of[k], before[k] = t, -(-taps // tpk) * tpk, seen
                    t += 1
        seen += -(-taps // tpk) * tpk
    return t_of, n_of, before


def _padded(params, bn, bk):
    """Channels per group padded to whole ``bk`` blocks, columns to whole ``bn`` tiles."""
    return (-(-params.in_channels_per_group // bk) * bk,
            -(-params.out_channels_per_group // bn) * bn)


@lru_cache(maxsize=256)
def pack_taps(params, bn, bk):
    """Per kernel tap ``k`` (``(kd_i*kh + kh_i)*kw + kw_i``) of ``xconvt_mma_pack_t``:
    ``tapoff[k]``, the packed offset of its ``(phase, tap)`` block at group 0,
    channel 0, column 0 (-1 for a tap of no phase with outputs), and
    ``gstride[k]``, the step between groups.  Layout: per phase (in
    :func:`mma_tables`' order), ``[g][t][c][o]`` with ``t = (ud*nh + uh)*nw + uw``,
    ``c < ceil(Cig/BK)*BK`` and ``o < ceil(Cog/BN)*BN``."""
    t, n, before = _tap_slots(params)
    cp, np_ = _padded(params, bn, bk)
    tapoff = np.where(t >= 0, (params.groups * before + t) * cp * np_, -1)
    return tapoff, n * cp * np_


@lru_cache(maxsize=256)
def pack_taps_k(params, bn, bk, tpk=1):
    """:func:`pack_taps` for ``xconvt_wgmma_pack``'s K-major layout: per
    phase, ``[g][o][t][c]`` (``o < ceil(Cog/BN)*BN``, ``t`` as in
    :func:`pack_taps`, ``c < ceil(Cig/BK)*BK``).  Returns ``(tapoff,
    gstride, ostride)``: per kernel tap ``k`` the packed offset of group 0,
    column 0, channel 0 (-1: a tap of no phase with outputs), the step
    between groups and the step between columns (the phase's packed K).
    ``tpk``: each phase's taps padded to whole K blocks of ``tpk`` taps
    (slab 8; the host zeroes the padding)."""
    t, n, before = _tap_slots(params, tpk)
    cp, np_ = _padded(params, bn, bk)
    tapoff = np.where(t >= 0, params.groups * before * cp * np_ + t * cp, -1)
    return tapoff, np_ * n * cp, n * cp


# --------------------------------------------------------------------------- launch
def kernel_args(params, cfg):
    """The kernels' ``MmaArgs`` (:data:`MMA_FIELDS` but ``has_bias``) of
    ``cfg`` on ``params``: a fold configuration's on the real layer (the
    GEMM's geometry from :func:`fold_params`, the real W geometry in the
    ``F*`` fields), a pair configuration's on :func:`pair_params`."""
    real = params
    if cfg.fold:
        params = fold_params(params)
    meta = mma_tables(params, cfg)[0]
    geo = dict(
        nphase=meta.shape[0], N=params.batch, G=params.groups,
        Cig=params.in_channels_per_group, Cog=params.out_channels_per_group,
        Cin=params.in_channels, Cout=params.out_channels,
        **dict(zip(("ID", "IH", "IW"), params.in_size)),
        **dict(zip(("OD", "OH", "OW"), params.out_size)),
        **dict(zip(("sd", "sh", "sw"), params.stride)),
        **dict(zip(("ed", "eh", "ew"), (ax[0].step for ax in params.axis_phases))),
        nCB=-(-params.in_channels_per_group // cfg.bk),
        NP=-(-params.out_channels_per_group // cfg.bn) * cfg.bn,
        TD=cfg.box[0], TH=cfg.box[1], TW=cfg.box[2], SC=cfg.sc,
        WSMALL=_sizes(params, cfg.bk, cfg.bn, cfg.tpk)[2] if cfg.mode == 1 else 0,
        PD=0, PH=0, PW=0, LD=0, LH=0, LW=0, CT=0,
        **dict(zip(("QD", "QH", "QW"), _in_step(params))), XSMALL=0, TPK=cfg.tpk,
        PAIR=cfg.pair, VEC=cfg.vec, FOLD=cfg.fold, FS=0, FP=0, FDL=0, FOW=0, FMT=0,
        ACA=cfg.l1a)
    if cfg.fold:  # the real layer's W geometry (Conv3dGemm has none: never folded)
        geo.update(FS=real.stride[2], FP=real.padding[2], FDL=real.dilation[2],
                   FOW=real.out_size[2], FMT=_fold_rows(params, cfg))
    if cfg.slab >= 3:
        ext, lo, ct = cl_layout(params, cfg.bk)
        geo.update(zip(("PD", "PH", "PW"), ext))
        geo.update(zip(("LD", "LH", "LW"), lo))
        geo["CT"] = ct
        if cfg.slab >= 5 and cfg.dt == 0 and cfg.mode == 1:  # the copy's small halves
            geo["XSMALL"] = cl_elements(params, cfg.bk)
    return geo


class _Launch:
    """Device tables, kernels and arguments of one configuration (a fold
    configuration: of the real layer ``params``; a pair one: of
    :func:`pair_params`)."""

    def __init__(self, params, cfg):
        import cupy

        real = params
        if cfg.fold:
            params = fold_params(params)
        meta, btab = mma_tables(params, cfg)
        nblocks = len(btab)
        ityp = np.int32 if cfg.index_t == "int" else np.int64
        self.meta = cupy.asarray(meta)
        self.btab = cupy.asarray(btab)
        wg = cfg.slab >= 5  # xconvt_wgmma: K-major packed weights
        tables = (pack_taps_k(params, cfg.bn, cfg.bk, cfg.tpk) if wg
                  else pack_taps(params, cfg.bn, cfg.bk))
        tables = tuple(cupy.asarray(np.asarray(t).astype(ityp)) for t in tables)
        cig, cog = params.in_channels_per_group, params.out_channels_per_group
        ncb, np_ = -(-cig // cfg.bk), -(-cog // cfg.bn) * cfg.bn
        n_packed = _sizes(params, cfg.bk, cfg.bn, cfg.tpk)[2]
        self.n_idx = ityp(n_packed)
        self.padded = ncb * cfg.bk != cig or np_ != cog or cfg.tpk > 1
        k3 = math.prod(params.kernel)
        # w's strides between K channels and between N columns (Conv3dGemm:
        # w is [G*Cog][Cig][K3], its K channels on the second axis)
        kstride, nstride = ((k3, cig * k3) if isinstance(params, Conv3dGemm)
                            else (cog * k3, k3))
        # the pack's arguments: (w, *tables, packed, *pack_rest); the prep's
        # take the three tables as one array (pack_tabs) and a PackArgs struct
        self.pack_tables = tables
        self.pack_tabs = cupy.concatenate([cupy.broadcast_to(t, (k3,)) for t in tables])
        # pair, fold: w is the real layer's, its taps wf times as many along W
        wf = 2 if cfg.pair else max(cfg.fold, 1)
        self.pack_rest = ((np.int32(cig), np.int32(cog), np.int32(k3))
                          + (() if wg else (np.int32(np_),))
                          + (ityp(n_packed), ityp(kstride), ityp(nstride * wf))
                          + ((np.int32(wf),) if wg else ()))
        self.pack_grid = ((params.groups * cog, -(-k3 // 32), -(-cig // 32)) if wg
                          else (params.in_channels, -(-k3 // 32), -(-cog // 32)))

        def get(name, arch=None):
            return rt.kernel(_SOURCE_PATH, name, arch=arch)

        self.kern = get(cfg.name, "sm_90a" if wg else None)
        rt.allow_smem(self.kern, cfg.smem)
        # the launch itself (an ArchKernel's CuPy function: one Python call less)
        self.kern_fn = getattr(self.kern, "function", self.kern)
        # float weights leave the pack rounded to tf32 (and split, 3xTF32)
        conv = 0 if cfg.dt else (2 if cfg.mode == 1 else 1)
        bits = "unsigned" if cfg.dt == 0 else "unsigned short"
        self.pack = get(f"xconvt_{'wgmma_pack' if wg else 'mma_pack_t'}<{bits}, "
                        f"{cfg.index_t}, {conv}>")
        self.wp_size = n_packed * (2 if cfg.mode == 1 else 1)
        self.grid = (nblocks,)
        self.block = (cfg.threads,)
        self.smem = cfg.smem
        geo = kernel_args(real, cfg)
        self.to_cl = self.prep = None
        # VEC bits this layer allows (16-byte vectors; x's and w's alignment
        # is checked per call): 1 the copy (x's rows whole vectors), 2 the
        # pack (xconvt_wgmma's, w read plainly, whole vectors along its rows)
        self.vec_ok = 0
        self._vec = {}
        if cfg.slab >= 3:
            ext, ct = (geo["PD"], geo["PH"], geo["PW"]), geo["CT"]
            bits = "unsigned" if cfg.dt == 0 else "unsigned short"
            # xconvt_wgmma reads TF32 operands as stored: the copy rounds them
            # (3xTF32: and writes the small halves after the big ones)
            round_ = (2 if cfg.mode == 1 else 1) if wg and cfg.dt == 0 else 0
            self._tmpl = f"{bits}, {cfg.index_t}, {round_}"
            self.to_cl = get(f"xconvt_mma_to_cl<{self._tmpl}>")
            self.cl_size = cl_elements(params, cfg.bk) * (2 if round_ == 2 else 1)
            per = 256 // (4 if cfg.dt == 0 else 2)  # values of 256 bytes
            self.cl_at = -(-self.wp_size // per) * per  # the copy's offset in the workspace
            self.cl_grid = (cl_grid(ext, ct, params.batch, 2 if cfg.dt else 1),)
            e = 4 if cfg.dt == 0 else 8  # values a vector
            if geo["IW"] % e == 0 and cfg.bk % e == 0:
                self.vec_ok |= 1
                self._cl_vec_grid = cl_vec_grid(ext, ct, geo["N"],
                                                (geo["ID"], geo["IH"], geo["IW"]), e)
            if wg:  # the pack and the copy in one launch (xconvt_wgmma_prep)
                self.prep = get(f"xconvt_wgmma_prep<{self._tmpl}>")
                pg = self.pack_grid if self.n_idx else (1, 1, 0)
                self.prep_grid = (math.prod(pg) + self.cl_grid[0],)
                self._pack_args = dict(small=n_packed, kstride=kstride, nstride=nstride * wf,
                                       Cig=cig, Cog=cog, K3=k3, wf=wf, pad=0)
                self.prep_pack = pack_struct(self._pack_args, pg)
                if (self.n_idx and wf == 1 and not isinstance(params, Conv3dGemm)
                        and cog * k3 % e == 0 and cfg.bk % e == 0):
                    self.vec_ok |= 2
                    self._pack_vec_grid = pack_vec_grid(params.groups, cig, cog * k3, e)
        self.args = [rt.struct(MMA_FIELDS, {**geo, "has_bias": hb}) for hb in (0, 1)]

    def prep_launch(self, vec):
        """``(kernel, grid, pack)`` of the preparation with VEC bits ``vec``
        (a subset of ``vec_ok``): ``xconvt_wgmma_prep``'s (``pack``: its
        ``PackArgs``; its arguments ``(x, copy, args, w, pack_tabs, packed,
        pack)``) where there is one, else the copy's (``pack`` None; its
        arguments ``(x, copy, args)``)."""
        if vec not in self._vec:
            t = self._tmpl + (f", {vec}" if vec else "")
            ncl = self._cl_vec_grid if vec & 1 else self.cl_grid[0]
            if self.prep is None:
                k = self.to_cl if not vec else rt.kernel(_SOURCE_PATH,
                                                         f"xconvt_mma_to_cl<{t}>")
                self._vec[vec] = (k, (ncl,), None)
            else:
                k = self.prep if not vec else rt.kernel(_SOURCE_PATH,
                                                        f"xconvt_wgmma_prep<{t}>")
                if vec & 2:  # the vector pack's own grid
                    pv = self._pack_vec_grid
                    self._vec[vec] = (k, (pv + ncl,), pack_struct(self._pack_args, (pv, 1, 1)))
                else:  # the tile pack's: prep_pack's grid, prep_grid's pack blocks
                    npk = self.prep_grid[0] - self.cl_grid[0]
                    self._vec[vec] = (k, (npk + ncl,), self.prep_pack)
        return self._vec[vec]

    def __call__(self, x, w, b, out):
        import cupy

        if self.to_cl is None:
            wp = (cupy.zeros if self.padded else cupy.empty)(self.wp_size, dtype=x.dtype)
            if self.n_idx:
                self.pack(self.pack_grid, (256,), (w, *self.pack_tables, wp, *self.pack_rest))
        else:  # one allocation: the packed weights, then (256-byte aligned) the copy
            wp = cupy.empty(self.cl_at + self.cl_size, dtype=x.dtype)  # kernels read its start
            xcl = wp[self.cl_at:]
            if self.padded:  # (a memset: no bfloat16 fill kernel needed)
                cupy.cuda.runtime.memsetAsync(wp.data.ptr, 0, self.wp_size * wp.itemsize,
                                              cupy.cuda.get_current_stream().ptr)
            vec = self.vec_ok & ((x.data.ptr % 16 == 0) | 2 * (w.data.ptr % 16 == 0))
            if self.prep is None:
                if self.n_idx:
                    self.pack(self.pack_grid, (256,),
                              (w, *self.pack_tables, wp, *self.pack_rest))
                k, grid, _ = self.prep_launch(vec & 1)
                k(grid, (256,), (x, xcl, self.args[0]))
            else:
                k, grid, pack = self.prep_launch(vec)
                k(grid, (256,), (x, xcl, self.args[0], w, self.pack_tabs, wp, pack))
            x = xcl
        self.kern_fn(self.grid, self.block,
                     (x, wp, x if b is None else b, out, self.meta, self.btab,
                      self.args[b is not None]),
                     shared_mem=self.smem)


@lru_cache(maxsize=None)
def _launch_getter():
    import cupy

    return cupy.memoize(for_each_device=True)(_Launch)


def _contiguous(a):
    """C-contiguous ``a``; 16-bit arrays are copied as ``uint16`` (bit
    copies need no bfloat16 support in CuPy's elementwise kernels)."""
    import cupy

    if a.flags.c_contiguous:
        return a
    if a.dtype.itemsize == 2:
        return cupy.ascontiguousarray(a.view(cupy.uint16)).view(a.dtype)
    return cupy.ascontiguousarray(a)


def _run(params, cfg, x, w, b, out=None, launches=None):
    """``cfg`` on ``params`` (a pair configuration: on :func:`pair_params`,
    the output in ``params``' shape).  ``launches``: a plan's dictionary of
    its launch objects by device id (saves the memoized lookup per call)."""
    import cupy

    dev = x.device
    with dev:
        x, w = _contiguous(x), _contiguous(w)
        if b is not None:
            b = _contiguous(b)
        shape = params.batched_output_shape
        if cfg.pair or cfg.fold:
            if out is not None and out.data.ptr % (2 * out.dtype.itemsize):
                res = _run(params, cfg, x, w, b)  # 2-value stores need aligned pairs
                out[...] = res
                return out
            if cfg.pair:
                params = pair_params(params)
        if out is None:
            out = cupy.empty(shape, dtype=x.dtype)
        if launches is None:
            launch = _launch_getter()(params, cfg)
        else:
            launch = launches.get(dev.id)
            if launch is None:
                launch = launches[dev.id] = _launch_getter()(params, cfg)
        launch(x, w, b, out)
        return out


# --------------------------------------------------------------------------- planner
class MmaPlan(Plan):
    """A tensor-core plan (:func:`plan`): ``plan(x, w, b) -> out``."""

    algorithm = "direct"

    def __init__(self, params, cfg, estimate_s, mode_name, name="cuda.mma"):
        self.params, self.cfg = params, cfg
        self._launches = {}  # device id -> _Launch (made on the first call there)
        self.estimate = float(estimate_s)
        self.name = name
        gp = (pair_params(params) if cfg.pair else fold_params(params) if cfg.fold
              else params)
        nw = _sizes(gp, cfg.bk, cfg.bn, cfg.tpk)[2] * (2 if cfg.mode == 1 else 1)
        if cfg.slab >= 3:  # the copy (wgmma 3xTF32: big and small halves)
            nw += cl_elements(gp, cfg.bk) * (2 if cfg.slab >= 5 and cfg.mode == 1 else 1)
        self.workspace = nw * (4 if cfg.dt == 0 else 2)
        staging = {0: "A per tap", 1: "A slab", 2: "A slab (cp.async)",
                   3: "A channels-last", 4: "A channels-last slab",
                   5: "A channels-last, B K-major",
                   6: "A channels-last slab, B K-major",
                   7: "A channels-last box and B resident per channel block",
                   8: f"A channels-last, {cfg.tpk} taps a K block, B K-major"}[cfg.slab]
        inst = "wgmma" if cfg.slab >= 5 else "mma.sync"
        self.detail = (f"{inst} {mode_name}, tile {cfg.bm}x{cfg.bn}x{cfg.bk}, "
                       f"{cfg.stages} stages, {cfg.threads} threads, {staging}"
                       + (", W phase pairs" if cfg.pair else "")
                       + (f", W fold of {cfg.fold} taps" if cfg.fold else ""))

    def __call__(self, x, w, b=None):
        return _run(self.params, self.cfg, x, w, b, launches=self._launches)

    def into(self, x, w, b, out):
        """The call, writing into ``out`` (C-contiguous, the batched output shape
        and ``x``'s dtype, on ``x``'s device)."""
        return _run(self.params, self.cfg, x, w, b, out, launches=self._launches)

    def __repr__(self):
        return (f"<MmaPlan {self.name}: {self.detail}, {self.estimate * 1e3:.3g} ms "
                f"estimated, {self.workspace} bytes>")


def plan(problem):
    """Planner: an :class:`MmaPlan` for ``problem``, or the reason it does not apply.

    ``problem`` has ``op``, ``params``, ``dtype``, ``precision`` and
    ``device`` (``kind``, ``compute_capability``, ``sm_count``,
    ``smem_per_block``), as :class:`xconvt._plan.Problem`.
    """
    if problem.op != "conv_transpose3d":
        return f"the tensor-core kernel computes conv_transpose3d only, not {problem.op}"
    return _plan(problem, problem.params, "cuda.mma")


def plan_conv3d(problem):
    """Planner: conv3d on the tensor cores (:class:`Conv3dGemm`: one GEMM over
    every real tap, A read from y at the stride), an :class:`MmaPlan` whose
    call is ``plan(y, w, b) -> x``, or the reason it does not apply."""
    if problem.op != "conv3d":
        return f"computes conv3d, not {problem.op}"
    return _plan(problem, Conv3dGemm(problem.params), "cuda.mma_conv3d")


def plan_wgmma(problem):
    """Planner: the transposed convolution on ``xconvt_wgmma`` (sm_90a:
    compute capability 9.0 exactly; 3xTF32, TF32, float16, bfloat16), an
    :class:`MmaPlan` or the reason it does not apply."""
    if problem.op != "conv_transpose3d":
        return f"the wgmma kernel computes conv_transpose3d here, not {problem.op}"
    return _plan(problem, problem.params, "cuda.wgmma", "wgmma")


def plan_wgmma_conv3d(problem):
    """Planner: conv3d (:class:`Conv3dGemm`) on ``xconvt_wgmma``."""
    if problem.op != "conv3d":
        return f"computes conv3d, not {problem.op}"
    return _plan(problem, Conv3dGemm(problem.params), "cuda.wgmma_conv3d", "wgmma")


def _plan(problem, params, name, variant=None):
    dev = problem.device
    if dev.kind != "cuda":
        return "the tensor-core kernel runs on CUDA devices only"
    cc = tuple(dev.compute_capability)
    if variant == "wgmma" and cc != (9, 0):
        return ("wgmma (sm_90a) runs on compute capability 9.0 only, got "
                + ".".join(map(str, cc)))
    if cc < (8, 0):
        return ("mma.sync with TF32/bf16 needs compute capability 8.0 or later, got "
                + ".".join(map(str, cc)))
    mode_name = (_mode(problem.dtype, problem.precision) or (None, None))[1]
    got = mma_config(params, problem.dtype, problem.precision, dev.sm_count,
                     dev.smem_per_block, variant)
    if isinstance(got, str):
        return got
    cfg, t = got
    plan = MmaPlan(params, cfg, t, mode_name, name)
    if plan.workspace > problem.budget and 3 <= cfg.slab <= 4:  # without the copy of x
        got = mma_config(params, problem.dtype, problem.precision, dev.sm_count,
                         dev.smem_per_block, "tap")
        if not isinstance(got, str):
            plan = MmaPlan(params, got[0], got[1], mode_name, name)
    if plan.workspace > problem.budget:
        return (f"its workspace takes {plan.workspace} bytes, over the memory budget of "
                f"{problem.budget}")
    return plan


def _limits_cached(device_id):
    """``(compute capability, SM count, shared memory per block)`` of a device,
    read once (:func:`xconvt._plan.cuda_device`)."""
    from ..._plan import cuda_device

    dev = cuda_device(device_id)
    return dev.compute_capability, dev.sm_count, dev.smem_per_block


def mma_direct(params, x, w, b=None, precision="float32", config=None, out=None,
               variant=None):
    """Transposed convolution of CuPy arrays with the tensor-core kernel.

    ``precision`` applies to float32 (``"float32"``: 3xTF32, ``"tf32"``);
    float16 and bfloat16 ignore it.  ``config`` forces an :class:`MmaConfig`;
    ``out``, a C-contiguous array of the output's shape and dtype, receives
    the result (tests poison it first); ``variant`` (``"tap"``, ``"slab"``)
    restricts the choice (:func:`mma_config`).
    Raises ``ValueError`` where the kernel does not apply (the reason from
    :func:`mma_config`).
    """
    import cupy

    name = dtype_name(x.dtype)
    cc, sms, smem = _limits_cached(cupy.cuda.runtime.getDevice())
    if cc < (8, 0):
        raise ValueError(f"the tensor-core kernel needs compute capability >= 8.0, got {cc}")
    wg = (variant in WG_VARIANTS or variant in ("wgmma_pair", "wgmma_vec", "wgmma_fold")
          or (config is not None and config.slab >= 5))
    if wg and tuple(cc) != (9, 0):
        raise ValueError(f"the wgmma kernel needs compute capability 9.0, got {cc}")
    if name != "float32":
        precision = "float32"
    if config is None:
        got = mma_config(params, name, precision, sms, smem, variant)
        if isinstance(got, str):
            raise ValueError(f"the tensor-core kernel does not apply: {got}")
        config = got[0]
    return _run(params, config, x, w, b, out)
