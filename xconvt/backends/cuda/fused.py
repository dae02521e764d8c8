"""The fused FMA kernel: one launch covers every stride phase.

``xconvt_fused`` (``kernels/fused.cu``): a phase is a stride-1 correlation of
the un-stuffed input with its sub-kernel, so no multiply-by-zero work is done;
where the dilation does not divide the stride a phase is split into unit-step
sub-phases, which read a per-residue rearranged input (:mod:`.remap`,
:func:`.geometry.kernel_geometry`) so their rows stay contiguous.  A block
computes a tile of one phase for a block of output channels; tile extents
along H and D come from :func:`_tile_hd`.  Input slab and weights are staged
in shared memory in stages of input channels and depth taps, double-buffered
with ``cp.async`` (16-byte copies, see :func:`_w_alignment`); the weights are
either read in place from PyTorch's layout or first packed per phase by
``xconvt_pack`` (:func:`_pack_weights`); each thread accumulates ``RO``
output channels x 4 consecutive outputs along W in registers and reuses a
register row of inputs across the W taps; the outputs leave through shared
memory so each warp writes whole rows.  :func:`fused_config` sizes tiles and
stages from the device's registers and shared memory; the planner rejects
the kernel where a block would need more shared memory than the device
gives (large kernels with many channels: the FFT takes those).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ..._plan import DEVICE_PRESETS
from . import runtime as rt
from .geometry import kernel_geometry
from .remap import Remap

__all__ = ["FusedConfig", "META_FIELDS", "RW", "WIDE_MINB", "fused_config", "plan"]

SOURCE = rt.KERNELS / "fused.cu"

# Registers per thread the fused kernel needs, by output channels per thread
# (ptxas reports for sm_90); they decide how many blocks share an SM and so
# how much shared memory each block may take.
_REGS = {1: 64, 2: 64, 4: 80, 8: 96, 12: 128, 16: 128}
_REGS_WIDE_UNCAPPED = 168
RW = 4  # outputs per thread along W
# Minimum resident blocks per SM the compiler must allow for wide register
# tiles (RO >= 12); see _REGS.
WIDE_MINB = 2

#: Columns of the per-phase metadata rows, in the order of the kernel's ``M_*``
#: enum (``kernels/fused.cu``).
META_FIELDS = ("block0", "tiles_w", "tiles_h", "tiles_d", "first_d", "first_h", "first_w",
               "count_d", "count_h", "count_w", "base_d", "base_h", "base_w",
               "nt_d", "nt_h", "nt_w", "wshift", "vec", "woff",
               "wtap0", "wstep_d", "wstep_h", "wstep_w")


class FusedConfig(NamedTuple):
    """Template arguments and launch geometry of one fused call."""

    ro: int             # output channels per thread
    og: int             # output-channel groups per block
    bo: int             # output channels per block (ro * og)
    n_ob: int           # output-channel blocks per group
    vw: int             # elements per 16-byte vector of the accumulator type
    dtype: str
    itemsize: int       # of the accumulator type
    twx: int            # W-tap block (compile time)
    twt: int            # threads along W
    th: int             # tile rows along H
    td: int             # tile planes along D
    tw_tile: int        # outputs along W per tile
    cc: int             # input channels per stage
    tdc: int            # depth taps per stage
    p: int              # shared-memory row pitch
    pp: int             # plane pitch
    cp: int             # channel pitch
    buf: int            # elements per stage buffer
    smem: int           # dynamic shared memory, bytes
    threads: int
    blocks_per_sm: int


def _kernel(name):
    return rt.kernel(SOURCE, name, (f"-DXCONVT_WIDE_MINB={WIDE_MINB}",))


def _choose_ro(cog):
    """Output channels per thread: few wasted (padded) channels, wide registers."""
    best = None
    for ro in (1, 2, 4, 8, 12, 16):
        padded = -(-cog // ro) * ro
        cost = padded * (1 + 4 / ro)
        if best is None or cost < best[0]:
            best = (cost, ro)
    return best[1]


# FMAs per staged input element (taps x output channels of a block) below
# which a phase is bound by staging rather than arithmetic.
_STAGING_BOUND = 128


def _chunk(itemsize):
    """Elements per 16-byte copy."""
    return 16 // itemsize


def _vec_eligible(params, dtype_name):
    """Whether the input can be staged 16 bytes at a time: float or double
    (half converts element-wise), unit input stride along W, and W rows of
    whole 16-byte chunks.  The data pointer's alignment is checked per call."""
    itemsize = {"float16": 2, "float32": 4, "float64": 8}[dtype_name]
    geo = kernel_geometry(params)
    return (dtype_name != "float16" and geo.in_stride[2] == 1
            and geo.in_size[2] % _chunk(itemsize) == 0)


def _w_alignment(tri, ro, bo, tw_tile, chunk, vec_ok):
    """``(wshift, mode)`` of one phase's W tiles for 16-byte input staging.

    ``"aligned"``: tiles start ``wshift`` outputs early so each tile's first
    input column is 16-byte aligned.  Where that costs an extra tile of a
    compute-bound phase, the tiles stay put and either the kernel stages from
    the aligned column before the tile (``"shifted"``: register rows are then
    loaded element by element, cheap beside 8 or more output channels per
    thread: gan_k4s2 0.69 -> 0.61 ms) or, with fewer channels per thread,
    where those loads would dominate, the phase stages element-wise
    (``"scalar"``: depthwise_k7 ran 0.40 ms so and 0.58 ms shifted).
    """
    pd, ph, pw = tri
    if not vec_ok:
        return 0, "scalar"
    wshift = pw.base % chunk
    ntap = len(pd.taps) * len(ph.taps) * len(pw.taps)
    if (wshift and -(-(pw.count + wshift) // tw_tile) > -(-pw.count // tw_tile)
            and ntap * bo > _STAGING_BOUND):
        return 0, ("shifted" if ro >= 8 else "scalar")
    return wshift, "aligned"


def _padded_tw(tw, bo, vw):
    """W taps per packed weight row: whole vectors when a block has one channel."""
    return -(-tw // vw) * vw if bo == 1 else tw


def _bank_score(twt, th, td, og, p, pp, itemsize):
    """Shared-memory wavefronts of one 16-byte register-row load, all warps."""
    nthreads = twt * th * td * og
    total = 0
    for w0 in range(0, nthreads, 32):
        lanes = range(w0, min(w0 + 32, nthreads))
        # 128-bit loads are served 8 lanes at a time.
        for q in range(0, len(lanes), 8):
            groups = {}
            for t in list(lanes)[q:q + 8]:
                wt = t % twt
                ht = (t // twt) % th
                dt = (t // (twt * th)) % td
                addr = (dt * pp + ht * p + wt * RW) * itemsize
                groups.setdefault((addr // 16) % 8, set()).add(addr // 16)
            total += max(len(v) for v in groups.values())
    return total




def _tile_hd(phases, cmax, tmax, twt, og, spatial, regs, copies, sms, regs_per_sm,
             search=True):
    """Tile extents ``(th, td)`` along H and D.

    Searches every tile of at most ``spatial`` threads per output-channel
    group for the lowest cost per useful output: ``1 + staged / computed``
    rows (the input halo a tile stages for its taps), divided by the fraction
    of launched rows that are real outputs (partial tiles) and by the
    fraction of the last wave of blocks that is occupied (``copies`` blocks
    per phase tile: batch x groups x output-channel blocks).  Ties go to the
    taller tile, and the former rule (H first, up to 16 rows) stays unless
    the best tile costs at least 5% less, or when ``search`` is false: the
    caller searches only phases of at most 3 taps along H and D or one output
    channel per thread; the 64^3 sweep's k = 5 and 7 layers (4 channels per
    thread) ran 10-20% slower with the searched tiles.  Measured on an H100
    (2026-11-26, bench/NOTES.md), the searched tiles gave dilated_k3d2 0.283
    -> 0.256 ms, grouped_g4 0.310 -> 0.296, same_k3s1 0.500 -> 0.478,
    vnet_k3s2 0.451 -> 0.429, depthwise_k7 0.454 -> 0.404, imaging_c1_k5s2
    0.357 -> 0.329.
    """
    def cost(th, td):
        threads = -(-(twt * th * td * og) // 32) * 32
        bps = max(1, min(8, regs_per_sm // (threads * regs)))
        blocks = rows = launched = 0
        for pd, ph, _ in phases:
            bh, bd = -(-ph.count // th), -(-pd.count // td)
            blocks += bh * bd
            rows += ph.count * pd.count
            launched += bh * bd * th * td
        blocks *= copies
        slots = sms * bps
        wave_eff = blocks / (-(-blocks // slots) * slots)
        staged = (th + max(1, tmax[1]) - 1) * (td + max(1, tmax[0]) - 1) / (th * td)
        return (1 + staged) / (wave_eff * rows / launched)

    # The model ignores weight staging and per-block overhead, which favour
    # the former rule's larger tiles where staging costs tie (1-tap phases).
    th0 = -(-cmax[1] // -(-cmax[1] // max(1, min(16, spatial // twt))))
    td0 = -(-cmax[0] // -(-cmax[0] // max(1, spatial // (twt * th0))))
    if not search:
        return th0, td0
    best = None
    for th in range(1, min(16, cmax[1]) + 1):
        for td in range(1, cmax[0] + 1):
            if twt * th * td > spatial:
                break
            key = (round(cost(th, td), 6), -th)
            if best is None or key < best[0]:
                best = (key, th, td)
    if best[0][0] < 0.95 * cost(th0, td0):
        return best[1], best[2]
    return th0, td0


@lru_cache(maxsize=4096)
def fused_config(params, dtype_name, device=DEVICE_PRESETS["h100"]):
    """Template arguments and launch geometry of the fused kernel for one call.

    Returns a :class:`FusedConfig`, sized to ``device``'s registers and
    shared memory (its ``smem`` may exceed what a block can have: the planner
    then rejects the kernel).
    """
    acc_size = 8 if dtype_name == "float64" else 4
    vw = 16 // acc_size
    cog = params.out_channels_per_group
    phases = kernel_geometry(params).phases
    tmax = [max(len(ph[a].taps) for ph in phases) for a in range(3)]
    cmax = [max(ph[a].count for ph in phases) for a in range(3)]

    ro = _choose_ro(cog)
    og = max(1, min(-(-cog // ro), max(1, 64 // ro)))
    bo = og * ro
    n_ob = -(-cog // bo)

    # W-tap block: the whole W kernel up to 16 taps (one unrolled register
    # row), else blocks of 8 (aligned).
    twx = max(1, tmax[2]) if tmax[2] <= 16 else 8

    # Spatial tile: 64-256 threads per output-channel group (fewer for more
    # groups), RW outputs per thread along W; tiles balanced so the last one is
    # not mostly empty.
    # At most 256 threads a block (the kernel's launch bound): five groups of
    # 12 channels get 51 threads each.
    spatial = min({1: 256, 2: 128}.get(og, 64), 256 // og)
    # 16-byte input staging needs each W tile to start on an aligned input
    # column; phases whose taps are few (staging-bound) widen the tile by the
    # largest alignment shift rather than lose the vector copies.
    itemsize = {"float16": 2, "float32": 4, "float64": 8}[dtype_name]
    shifts = [ph[2].base % _chunk(itemsize) for ph in phases] if _vec_eligible(
        params, dtype_name) else [0]
    staging_bound = max(len(ph[0].taps) * len(ph[1].taps) * len(ph[2].taps)
                        for ph in phases) * bo <= _STAGING_BOUND
    lanes_w = -(-(cmax[2] + (max(shifts) if staging_bound else 0)) // RW)
    twt = -(-lanes_w // -(-lanes_w // 32))
    regs = _REGS[ro] if ro < 12 or WIDE_MINB == 2 else _REGS_WIDE_UNCAPPED
    th, td = _tile_hd(phases, cmax, tmax, twt, og, spatial, regs,
                      n_ob * params.batch * params.groups, device.sm_count, device.regs_per_sm,
                      search=max(tmax[0], tmax[1]) <= 3 or ro == 1)
    tw_tile = twt * RW

    hh_max = th + max(1, tmax[1]) - 1
    last_tw0 = ((max(1, tmax[2]) - 1) // twx) * twx
    xl = -(-(RW + twx - 1) // vw) * vw
    # Rows staged from the aligned column before a shifted tile need up to
    # chunk - 1 more elements.
    vec_ok = _vec_eligible(params, dtype_name)
    extra = max(_chunk(itemsize) - 1
                if _w_alignment(tri, ro, bo, tw_tile, _chunk(itemsize), vec_ok)[1] == "shifted"
                else 0 for tri in phases)
    p_min = (twt - 1) * RW + last_tw0 + xl + extra
    p_min = max(p_min, tw_tile + max(1, tmax[2]) - 1 + extra)
    p_min = -(-p_min // vw) * vw

    best = None
    for p in range(p_min, p_min + 32, vw):
        for pp in range(hh_max * p, hh_max * p + 32, vw):
            score = _bank_score(twt, th, td, og, p, pp, acc_size)
            key = (score, pp)
            if best is None or key < best[0]:
                best = (key, p, pp)
    _, p, pp = best

    # Stage size: CC input channels x TDC depth taps per shared-memory buffer
    # (two buffers), within a budget that leaves room for several blocks per SM.
    cig = params.in_channels_per_group
    tap_sz = max(1, tmax[1]) * _padded_tw(max(1, tmax[2]), bo, vw) * bo
    threads = -(-(twt * th * td * og) // 32) * 32
    blocks_per_sm = max(1, min(8, device.regs_per_sm // (threads * regs)))
    budget = min(device.smem_per_block, device.smem_per_sm // blocks_per_sm - 1024)
    cc, tdc = 1, 1
    for cand_tdc in range(max(1, tmax[0]), 0, -1):
        cp_ = -(-(td + cand_tdc - 1) * pp // vw) * vw
        per_c = cp_ + cand_tdc * tap_sz
        fit = budget // (2 * per_c * acc_size)
        if fit >= 1:
            # Balanced chunks: 16 channels in stages of 8+8, not 5+5+5+1.
            cc = max(1, min(cig, 32, fit))
            cc, tdc = -(-cig // -(-cig // cc)), cand_tdc
            break
    cp_ = -(-(td + tdc - 1) * pp // vw) * vw
    buf = -(-(cc * (cp_ + tdc * tap_sz)) // vw) * vw
    # The epilogue reuses the buffers for the (RO, OG, TD, TH, TW) output tile.
    smem = max(2 * buf, ro * og * td * th * tw_tile) * acc_size

    return FusedConfig(ro, og, bo, n_ob, vw, dtype_name, itemsize, twx, twt, th, td, tw_tile,
                       cc, tdc, p, pp, cp_, buf, smem, threads, blocks_per_sm)


def _tap_walk(taps, inner):
    """``(first, step)`` of an arithmetic tap sequence, in units of ``inner``
    weight elements (the product of the kernel's later extents)."""
    if len(taps) > 1 and any(b - a != taps[1] - taps[0] for a, b in zip(taps, taps[1:])):
        raise AssertionError(f"phase taps {taps} are not evenly spaced")
    step = taps[1] - taps[0] if len(taps) > 1 else 0
    return (taps[0] if taps else 0) * inner, step * inner


@lru_cache(maxsize=1024)
def _fused_tables(params, cfg):
    """Per-phase metadata (int64 rows, see ``M_*`` in the kernel source), the
    weight-pack index, the block count and whether blocks interleave phases."""
    G = params.groups
    cig = params.in_channels_per_group
    cog = params.out_channels_per_group
    kd_, kh_, kw_ = params.kernel
    bo, n_ob = cfg.bo, cfg.n_ob
    meta = []
    nblk = []
    idx_parts = []
    block0 = 0
    woff = 0
    phases = kernel_geometry(params).phases
    vec_ok = _vec_eligible(params, cfg.dtype)
    for pd, ph, pw in phases:
        # 16-byte staging: tiles shifted to an aligned first column, or staged
        # from the aligned column before them (_w_alignment).
        wshift, mode = _w_alignment((pd, ph, pw), cfg.ro, bo, cfg.tw_tile,
                                    _chunk(cfg.itemsize), vec_ok)
        tiles_w = -(-(pw.count + wshift) // cfg.tw_tile)
        tiles_h = -(-ph.count // cfg.th)
        tiles_d = -(-pd.count // cfg.td)
        # Unpacked, the kernel reads the phase's weights in PyTorch's layout,
        # walking its taps from the first one by a fixed offset per axis.
        (d0, dstep), (h0, hstep), (w0, wstep) = (
            _tap_walk(pd.taps, kh_ * kw_), _tap_walk(ph.taps, kw_), _tap_walk(pw.taps, 1))
        meta.append([block0, tiles_w, tiles_h, tiles_d,
                     pd.first, ph.first, pw.first,
                     pd.count, ph.count, pw.count,
                     pd.base, ph.base, pw.base,
                     len(pd.taps), len(ph.taps), len(pw.taps), wshift, int(mode != "scalar"),
                     woff, d0 + h0 + w0, dstep, hstep, wstep])
        nblk.append(tiles_w * tiles_h * tiles_d * n_ob * params.batch * G)
        block0 += nblk[-1]
        if pd.taps and ph.taps and pw.taps:
            # Packed layout of a phase: [g][ob][c][td][th][tw][o in block].
            g = np.arange(G).reshape(-1, 1, 1, 1, 1, 1, 1)
            ob = np.arange(n_ob).reshape(1, -1, 1, 1, 1, 1, 1)
            c = np.arange(cig).reshape(1, 1, -1, 1, 1, 1, 1)
            td = np.asarray(pd.taps).reshape(1, 1, 1, -1, 1, 1, 1)
            th = np.asarray(ph.taps).reshape(1, 1, 1, 1, -1, 1, 1)
            tw_pad = _padded_tw(len(pw.taps), bo, cfg.vw)
            tw = np.asarray(pw.taps + (-1,) * (tw_pad - len(pw.taps))).reshape(
                1, 1, 1, 1, 1, -1, 1)
            o = ob * bo + np.arange(bo).reshape(1, 1, 1, 1, 1, 1, -1)
            src = ((((g * cig + c) * cog + o) * kd_ + td) * kh_ + th) * kw_ + tw
            src = np.where((o < cog) & (tw >= 0), src, -1).ravel()
            # Keep every phase's segment 16-byte aligned for vector copies.
            src = np.concatenate([src, np.full(-src.size % 4, -1, src.dtype)])
            idx_parts.append(src)
            woff += src.size
    idx = np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int64)
    interleave = len(set(nblk)) == 1
    return np.asarray(meta, np.int64), idx, block0, interleave


def _pack_weights(params, cfg, meta):
    """Whether the fused kernel reads a per-call packed copy of the weights.

    Unpacked, a block reads its phase's taps straight from PyTorch's layout,
    4 bytes at a time and a few per 32-byte sector; packed, one extra launch
    first copies them into each phase's contiguous block order, which blocks
    then stage 16 bytes at a time.  Packing pays once the blocks stage more
    than ~1M weight elements in all (H100, 2026-11-26, ms unpacked/packed:
    sweep_k3 0.15M elements 0.050/0.057, imaging_c1_k5s2 0.45M 0.300/0.304,
    sweep_k5 0.51M 0.084/0.092; sweep_k7 1.4M and grouped_g4 1.8M tied;
    depthwise_k7 2.8M 0.429/0.408, same_k3s1 14M 0.464/0.444, seed_example
    85M 1.63/1.46).
    """
    staged = 0
    for row in meta:  # blocks of the phase x weights each stages
        m = dict(zip(META_FIELDS, (int(v) for v in row)))
        tiles = m["tiles_w"] * m["tiles_h"] * m["tiles_d"] * cfg.n_ob * params.batch * params.groups
        taps = m["nt_d"] * m["nt_h"] * _padded_tw(m["nt_w"], cfg.bo, cfg.vw)
        staged += tiles * params.in_channels_per_group * taps * cfg.bo
    return staged > _PACK_MIN_STAGED


_PACK_MIN_STAGED = 1 << 20


# Fields of the kernel's FusedArgs struct, in order (all int32).
_FUSED_FIELDS = ("nphase", "interleave", "has_bias", "vec", "packed", "G", "Cig", "Cog", "n_ob",
                 "ID", "IH", "IW", "OD", "OH", "OW", "sd", "sh", "sw", "isd", "ish", "isw",
                 "TWT", "TH", "TD", "OG", "CC", "TDC", "P", "PP", "CP", "BUF", "KD", "KH", "KW")


class _Launcher:
    """Everything one fused call needs that depends only on the geometry,
    dtype and device: kernels, device tables, launch shape, the scalar
    argument struct (one per bias/alignment case)."""

    def __init__(self, params, dtype_name, cfg, packed=None):
        cupy = rt.cupy()
        geo = kernel_geometry(params)
        meta, idx, nblocks, interleave = _fused_tables(params, cfg)
        x_shape = params.input_shape[:2] + geo.in_size
        index_t = rt.index_type(math.prod(params.input_shape), math.prod(x_shape),
                              math.prod(params.batched_output_shape),
                              math.prod(params.weight_shape), idx.size)
        ctype = rt.CTYPES[dtype_name]
        self.meta = cupy.asarray(meta)
        self.packed = _pack_weights(params, cfg, meta) if packed is None else packed
        if self.packed:
            ityp = np.int32 if index_t == "int" else np.int64
            self.idx = cupy.asarray(idx.astype(ityp))
            self.n_idx = ityp(idx.size)
            self.pack = _kernel(f"xconvt_pack<{ctype}, {index_t}>")
            self.pack_grid = rt.grid_1d(idx.size)
        self.kern = _kernel(f"xconvt_fused<{ctype}, {index_t}, {cfg.ro}, {RW}, "
                            f"{cfg.twx}>")
        rt.allow_smem(self.kern, cfg.smem)
        self.grid = (nblocks,)
        self.block = (cfg.threads,)
        self.smem = cfg.smem
        values = dict(
            nphase=meta.shape[0], interleave=int(interleave), G=params.groups,
            Cig=params.in_channels_per_group, Cog=params.out_channels_per_group,
            n_ob=cfg.n_ob, sd=geo.out_stride[0], sh=geo.out_stride[1],
            sw=geo.out_stride[2], isd=geo.in_stride[0], ish=geo.in_stride[1],
            isw=geo.in_stride[2], TWT=cfg.twt, TH=cfg.th, TD=cfg.td,
            OG=cfg.og, CC=cfg.cc, TDC=cfg.tdc, P=cfg.p, PP=cfg.pp,
            CP=cfg.cp, BUF=cfg.buf, packed=int(self.packed),
            **dict(zip(("ID", "IH", "IW"), geo.in_size)),
            **dict(zip(("OD", "OH", "OW"), params.out_size)),
            **dict(zip(("KD", "KH", "KW"), params.kernel)))
        # args[has_bias][vec]: 16-byte input staging needs an aligned input
        # pointer, checked per call.
        self.args = [[rt.struct(_FUSED_FIELDS, {**values, "has_bias": hb, "vec": v})
                      for v in (0, 1)] for hb in (0, 1)]
        self.vec_ok = _vec_eligible(params, dtype_name)
        self.remap = Remap(params, dtype_name, index_t) if geo.remap is not None else None

    def __call__(self, x, w, b, out):
        if self.remap is not None:
            x = self.remap(x)
        if self.packed:
            wp = rt.cupy().empty(int(self.n_idx), dtype=x.dtype)
            if self.n_idx:
                self.pack(self.pack_grid, (256,), (w, self.idx, wp, self.n_idx))
            w = wp
        args = self.args[b is not None][self.vec_ok and x.data.ptr % 16 == 0]
        self.kern(self.grid, self.block, (x, w, x if b is None else b, out, self.meta, args),
                  shared_mem=self.smem)



def _fill(params, cfg, device):
    """Fraction of the GPU the kernel's blocks occupy (at most 1)."""
    nblocks = _fused_tables(params, cfg)[2]
    return min(1.0, nblocks / (device.sm_count * cfg.blocks_per_sm))


def model_estimate(problem):
    """The fused kernel's predicted seconds for ``problem`` (real dtype), with
    the fill of its blocks where its configuration can be sized, else a full
    GPU: the base that the other FMA variants' estimates are scaled from."""
    p = problem.params
    work = "float64" if problem.dtype == "float64" else "float32"
    cfg = fused_config(p, work, problem.device)
    return rt.fma_estimate(p, problem.dtype, _fill(p, cfg, problem.device), narrow=cfg.ro < 4)


@rt.planner
def plan(problem):
    """The fused kernel, wherever a block's tiles fit the device's shared memory."""
    p, dev = problem.params, problem.device
    work = "float64" if problem.dtype == "float64" else "float32"
    cfg = fused_config(p, work, dev)
    if cfg.smem > dev.smem_per_block:
        return (f"a block needs {cfg.smem} bytes of shared memory for kernel {p.kernel} with "
                f"{p.out_channels_per_group} output channels per group; {dev.name} gives "
                f"{dev.smem_per_block}")
    est = rt.fma_estimate(p, problem.dtype, _fill(p, cfg, dev), narrow=cfg.ro < 4)
    dtype = problem.dtype
    return rt.DirectPlan(problem, "cuda.fused", est, lambda: _Launcher(p, dtype, cfg),
                         detail=f"RO={cfg.ro}, {cfg.threads} threads, {cfg.smem} B shared")
