"""The direct GPU path: CuPy RawModule kernels in gather form, and cuBLAS + col2im.

Five variants sit behind ``algorithm="direct"`` on CuPy arrays; all compute
every output element in one thread with no atomics (bit-for-bit repeatable),
launch on the current stream and never synchronize the host.

``fused``
    One launch of ``xconvt_fused`` (``cuda/conv_transpose3d.cu``) covers every
    stride phase (:func:`unit_step_phases`): a phase is a stride-1 correlation
    of the un-stuffed input with its sub-kernel, so no multiply-by-zero work is
    done; where the dilation does not divide the stride a phase is split
    into unit-step sub-phases, which read a per-residue rearranged input
    (``xconvt_remap``, :func:`kernel_geometry`) so their rows stay
    contiguous.  A block computes a tile of one phase for a block of output
    channels; tile extents along H and D come from :func:`_tile_hd`.  Input
    slab and weights are staged in shared memory in stages of input channels
    and depth taps, double-buffered with ``cp.async`` (16-byte copies, see
    :func:`_w_alignment`); the weights are either read in place from
    PyTorch's layout or first packed per phase by ``xconvt_pack``
    (:func:`_pack_weights`); each thread accumulates ``RO`` output channels x 4
    consecutive outputs along W in registers and reuses a register row of
    inputs across the W taps; the outputs leave through shared memory so each
    warp writes whole rows.  :func:`fused_config` sizes tiles and stages from
    the register and shared-memory budget of an SM (H100 figures).

``gemm``
    ``cols = W^T @ X`` per group and chunk with cuBLAS's strided-batched GEMM
    through CuPy's bindings (true float32: the legacy SGEMM does not use TF32
    unless CuPy's handle is switched to it), reading ``x`` and ``w`` in place,
    then ``xconvt_col2im`` gathers the kernel blocks into the output and adds
    the bias, with per-axis tap tables instead of divisions
    (:class:`_GemmPlan`).  The column buffer is chunked over batch and output
    channels (``_GEMM_CHUNK``, within :func:`xconvt.get_memory_budget`).

``pointwise``
    1x1x1 kernels with few channels per group (``_POINTWISE_MAX_MACS``) are
    memory-bound: ``xconvt_pointwise`` gives each thread one output position
    of one group, reads its input channels once and writes up to 8 output
    channels, with no staging (positions no input reaches get the bias).

``tile``
    Strided layers with few channels per group (``grouped_g4``): a block
    stages once, in shared memory, the input box that one tile of phase
    coordinates reads in every stride phase, with all the input channels and
    weights of its group (``xconvt_tile``, :func:`tile_config`), then computes
    the phases in turn, taps outermost and input channels innermost, each
    thread holding 4 or 8 output channels x 4 outputs along W (interleaved
    across lanes, so that a warp's stores are contiguous runs).  The fused
    kernel stages per phase and per channel stage instead.

``gather``
    Layers with few channels and few multiply-adds per output (single-channel
    volumes, small depthwise kernels; no dilation) skip the staging:
    ``xconvt_gather`` gives each thread 4 or 8 outputs of one W stride phase
    for up to 4 output channels, reads each input row once into a register window
    shared by the W taps, and reads the weights in place through the cache
    (:func:`_gather_preferred`).

:func:`choose_variant` picks between them (rule and measurements in its
docstring).  Index arithmetic is 32-bit when every array's element count fits
in an ``int`` and 64-bit otherwise; kernel names carry the specialization
(dtype, index type, ``RO``, ``RW``, W-tap block).  Kernels are compiled once
per device and specialization (``cupy.memoize(for_each_device=True)``), and
each geometry's launch plan (tables on the device, the scalar arguments as one
struct passed by value) is cached the same way, so a call costs one or two
launches and a few microseconds of Python: every microsecond of host time
before the first launch leaves the GPU idle, and CuPy spends about 0.3 us per
launch argument (36 scalar arguments took 15 us to launch, 6 take 5 us), a
struct passed as a NumPy structured scalar about as much as three (:func:`_struct`).
float16 accumulates in float32; complex inputs run as four real convolutions.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._config import get_memory_budget
from .._params import AxisPhase, dtype_name

__all__ = ["choose_variant", "direct", "fused_config"]

_SOURCE_PATH = Path(__file__).with_name("cuda") / "conv_transpose3d.cu"
_CTYPES = {"float16": "__half", "float32": "float", "float64": "double"}
_INT32_MAX = 2**31 - 1
_SMEM_DEFAULT = 48 * 1024
_SMEM_MAX = 227 * 1024
_SMEM_PER_SM = 228 * 1024
_REGS_PER_SM = 65536
# Registers per thread the fused kernel needs, by output channels per thread
# (ptxas reports for sm_90); they decide how many blocks share an SM and so
# how much shared memory each block may take.
_REGS = {1: 64, 2: 64, 4: 80, 8: 96, 12: 128, 16: 128}
_REGS_WIDE_UNCAPPED = 168
RW = 4  # outputs per thread along W in the fused kernel


@lru_cache(maxsize=None)
def _source():
    return _SOURCE_PATH.read_text()


def _cupy():
    import cupy

    return cupy


# Minimum resident blocks per SM the compiler must allow for wide register
# tiles (RO >= 12); see _REGS.
WIDE_MINB = 2


@lru_cache(maxsize=None)
def _memoized_kernel_getter():
    cupy = _cupy()

    @cupy.memoize(for_each_device=True)
    def get(name, minb):
        module = cupy.RawModule(
            code=_source(), options=("-std=c++17", f"-DXCONVT_WIDE_MINB={minb}"),
            name_expressions=(name,),
        )
        return module.get_function(name)

    return get


def _kernel(name):
    return _memoized_kernel_getter()(name, WIDE_MINB)


def _allow_smem(kern, smem):
    """Let ``kern`` launch with ``smem`` bytes of dynamic shared memory.  The
    limit is an attribute of the (shared, memoized) kernel, so it is only ever
    raised: lowering it for one geometry would make the launches of a plan
    made earlier with more fail."""
    if smem > _SMEM_DEFAULT and smem > kern.max_dynamic_shared_size_bytes:
        kern.max_dynamic_shared_size_bytes = smem


def _index_type(*sizes):
    return "int" if max(sizes) <= _INT32_MAX else "long long"


# --------------------------------------------------------------------------- choice
@lru_cache(maxsize=1024)
def _variant(params, name):
    return choose_variant(params, name)


def choose_variant(params, dtype):
    """``"pointwise"``, ``"gather"``, ``"tile"``, ``"gemm"`` or ``"fused"`` for
    one call on ``dtype`` (a dtype or its name; None means float32).

    Pointwise layers with few channels (:func:`_pointwise_eligible`) take the
    pointwise kernel, layers with few channels and few taps per output the
    gather kernel (:func:`_gather_preferred`), strided layers whose group's
    channels and weights fit a block's shared memory the tile kernel
    (:func:`_tile_preferred`).

    GEMM + col2im wins only where the channel contraction is wide enough for
    cuBLAS to run near its float32 peak and every phase of the fused kernel
    has several taps: strided layers (stride > 1 on every axis, at least 8
    taps per stride phase) with at least 128 input and 64 output channels per
    group (``gan_k4s2``: 0.49 ms against 0.57 ms fused on an H100,
    2026-11-26).  Everything else runs the fused kernel, U-Net upsampling
    included (``unet_k2s2``: 0.45 ms fused, 0.51 ms GEMM; ``vnet_k3s2`` 0.40
    fused, 0.50 GEMM).
    """
    name = "float32" if dtype is None else dtype_name(np.dtype(dtype))
    if _pointwise_eligible(params):
        return "pointwise"
    if _gather_preferred(params):
        return "gather"
    if _tile_preferred(params, name):
        return "tile"
    taps_per_phase = params.taps / math.prod(params.stride)
    if (min(params.stride) > 1 and taps_per_phase >= 8
            and params.in_channels_per_group >= 128
            and params.out_channels_per_group >= 64):
        return "gemm"
    return "fused"


# --------------------------------------------------------------------------- fused
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


@lru_cache(maxsize=1024)
def unit_step_phases(params):
    """Stride phases whose taps read consecutive input positions.

    Returns ``(phases, out_stride, in_stride)``: ``phases`` a list of
    ``(AxisPhase, AxisPhase, AxisPhase)`` with ``step == 1``, and per axis the
    output stride between a phase's outputs and the input stride between its
    taps.  Where the dilation makes a phase's taps step by ``k > 1`` input
    positions (``k = d / gcd(s, d)``), each phase on that axis splits into
    ``k`` sub-phases by ``j mod k``: outputs ``first + s*r + (s*k)*j'`` read
    inputs ``base + r + k*(j' + u)``.  The fused kernel then stages dense
    slabs (no dilation holes) and reuses a register row across every tap.
    """
    axes = []
    for a in range(3):
        k = params.axis_phases[a][0].step
        s = params.stride[a]
        subs = [AxisPhase(ph.first + s * r, max(0, -(-(ph.count - r) // k)), ph.base + r,
                          1, ph.taps)
                for ph in params.axis_phases[a] for r in range(k)]
        axes.append([ph for ph in subs if ph.count > 0])
    phases = [(pd, ph, pw) for pd in axes[0] for ph in axes[1] for pw in axes[2]]
    steps = tuple(params.axis_phases[a][0].step for a in range(3))
    out_stride = tuple(s * k for s, k in zip(params.stride, steps))
    return phases, out_stride, steps


class Geometry(NamedTuple):
    """What the fused kernel iterates over (see :func:`kernel_geometry`)."""

    phases: list        # (AxisPhase, AxisPhase, AxisPhase), step 1
    out_stride: tuple   # per axis, between a phase's outputs
    in_stride: tuple    # per axis, between a phase's taps in the kernel's input
    in_size: tuple      # the kernel's input extent
    remap: tuple        # per axis, source index of each kernel input row (-1: zero), or None


@lru_cache(maxsize=4096)
def kernel_geometry(params):
    """:func:`unit_step_phases`, with dilation turned into contiguous reads.

    Where the dilation does not divide the stride (``k = d / gcd(s, d) > 1``
    on some axis), a sub-phase reads every ``k``-th input.  The input is
    then first rearranged (``xconvt_remap``) into ``k`` blocks per axis, block
    ``q`` holding rows ``q, q + k, q + 2k, ...`` between zero margins, so
    every sub-phase reads consecutive rows of one block: input stride 1 and
    16-byte staging as for an undilated layer (``dilated_k3d2`` 1.3x faster
    on an H100).  Block lengths along W are whole 16-byte chunks.
    """
    phases, out_stride, steps = unit_step_phases(params)
    if steps == (1, 1, 1):
        return Geometry(phases, out_stride, steps, params.in_size, None)
    new_base, sizes, remap = [], [], []
    for a in range(3):
        k, n_in = steps[a], params.in_size[a]
        axis = {ph[a] for ph in phases}
        if k == 1:
            new_base.append({ph: ph.base for ph in axis})
            sizes.append(n_in)
            remap.append(tuple(range(n_in)))
            continue
        used = [ph for ph in axis if ph.count and ph.taps]
        lo = min((ph.base // k for ph in used), default=0)
        hi = max((ph.base // k + ph.count + len(ph.taps) - 2 for ph in used), default=0)
        h_lo = max(0, -lo)
        counts = [-(-(n_in - q) // k) for q in range(k)]
        block = h_lo + max(max(counts), hi + 1)
        if a == 2:
            block = -(-block // 4) * 4
        new_base.append({ph: (ph.base % k) * block + h_lo + ph.base // k for ph in axis})
        sizes.append(k * block)
        remap.append(tuple(
            q + k * (t % block - h_lo) if 0 <= t % block - h_lo < counts[q] else -1
            for t in range(k * block) for q in (t // block,)))
    phases = [tuple(dataclasses.replace(ph, base=new_base[a][ph]) for a, ph in enumerate(tri))
              for tri in phases]
    return Geometry(phases, out_stride, (1, 1, 1), tuple(sizes), tuple(remap))


_SMS = 132  # H100 SXM; the tile choice only needs the order of magnitude


def grid_1d(total, threads=256):
    """Grid of an element-wise grid-stride kernel: one thread per element, at
    most 16 blocks per SM (the loop covers the rest)."""
    return (max(1, min(-(-int(total) // threads), _SMS * 16)),)


def _tile_hd(phases, cmax, tmax, twt, og, spatial, regs, copies, search=True):
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
        bps = max(1, min(8, _REGS_PER_SM // (threads * regs)))
        blocks = rows = launched = 0
        for pd, ph, _ in phases:
            bh, bd = -(-ph.count // th), -(-pd.count // td)
            blocks += bh * bd
            rows += ph.count * pd.count
            launched += bh * bd * th * td
        blocks *= copies
        slots = _SMS * bps
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
def fused_config(params, dtype_name):
    """Template arguments and launch geometry of the fused kernel for one call.

    Returns a dict; cached on the (hashable) params and the dtype.
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
    spatial = {1: 256, 2: 128}.get(og, 64)
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
                      n_ob * params.batch * params.groups,
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
    blocks_per_sm = max(1, min(8, _REGS_PER_SM // (threads * regs)))
    budget = min(_SMEM_MAX, _SMEM_PER_SM // blocks_per_sm - 1024)
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
    if smem > _SMEM_MAX:
        msg = (f"the fused kernel needs {smem} bytes of shared memory for kernel "
               f"{params.kernel} with {cog} output channels per group; use algorithm='fft'")
        raise ValueError(msg)

    return {
        "ro": ro, "og": og, "bo": bo, "n_ob": n_ob, "vw": vw, "dtype": dtype_name,
        "itemsize": itemsize,
        "twx": twx, "twt": twt, "th": th, "td": td, "tw_tile": tw_tile,
        "cc": cc, "tdc": tdc, "p": p, "pp": pp, "cp": cp_, "buf": buf, "smem": smem,
        "threads": threads, "blocks_per_sm": blocks_per_sm,
    }


def _tap_walk(taps, inner):
    """``(first, step)`` of an arithmetic tap sequence, in units of ``inner``
    weight elements (the product of the kernel's later extents)."""
    if len(taps) > 1 and any(b - a != taps[1] - taps[0] for a, b in zip(taps, taps[1:])):
        raise AssertionError(f"phase taps {taps} are not evenly spaced")
    step = taps[1] - taps[0] if len(taps) > 1 else 0
    return (taps[0] if taps else 0) * inner, step * inner


@lru_cache(maxsize=1024)
def _fused_tables(params, cfg_key):
    """Per-phase metadata (int64 rows, see ``M_*`` in the kernel source), the
    weight-pack index, the block count and whether blocks interleave phases."""
    cfg = dict(cfg_key)
    G = params.groups
    cig = params.in_channels_per_group
    cog = params.out_channels_per_group
    kd_, kh_, kw_ = params.kernel
    bo, n_ob = cfg["bo"], cfg["n_ob"]
    meta = []
    nblk = []
    idx_parts = []
    block0 = 0
    woff = 0
    phases = kernel_geometry(params).phases
    vec_ok = _vec_eligible(params, cfg["dtype"])
    for pd, ph, pw in phases:
        # 16-byte staging: tiles shifted to an aligned first column, or staged
        # from the aligned column before them (_w_alignment).
        wshift, mode = _w_alignment((pd, ph, pw), cfg["ro"], bo, cfg["tw_tile"],
                                    _chunk(cfg["itemsize"]), vec_ok)
        tiles_w = -(-(pw.count + wshift) // cfg["tw_tile"])
        tiles_h = -(-ph.count // cfg["th"])
        tiles_d = -(-pd.count // cfg["td"])
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
            tw_pad = _padded_tw(len(pw.taps), bo, cfg["vw"])
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
        tiles = int(row[1] * row[2] * row[3]) * cfg["n_ob"] * params.batch * params.groups
        taps = int(row[13] * row[14]) * _padded_tw(int(row[15]), cfg["bo"], cfg["vw"])
        staged += tiles * params.in_channels_per_group * taps * cfg["bo"]
    return staged > _PACK_MIN_STAGED


_PACK_MIN_STAGED = 1 << 20


# Fields of the kernel's FusedArgs struct, in order (all int32).
_FUSED_FIELDS = ("nphase", "interleave", "has_bias", "vec", "packed", "G", "Cig", "Cog", "n_ob",
                 "ID", "IH", "IW", "OD", "OH", "OW", "sd", "sh", "sw", "isd", "ish", "isw",
                 "TWT", "TH", "TD", "OG", "CC", "TDC", "P", "PP", "CP", "BUF", "KD", "KH", "KW")


def _struct(fields, values):
    """A C struct of int32 ``fields`` passed by value: the NumPy structured
    scalar (``numpy.void``) of a one-element structured array, which CuPy
    hands to the kernel as its bytes.  The scalar, not the array: CuPy 14
    took 5.7 us of host time to launch a kernel with a 17-field struct
    scalar, 16.1 us with the one-element array and 10.1 us with 17 separate
    ``int32`` arguments (H100 machine, 2026-11-26)."""
    arr = np.zeros(1, np.dtype([(f, np.int32) for f in fields]))
    for f in fields:
        arr[f] = values[f]
    return arr[0]


def _layer_fields(params):
    """The struct fields every kernel but the fused one names the same way:
    groups, channels per group, sizes, kernel, stride and padding (``_struct``
    takes the fields its kernel lists)."""
    return dict(
        G=params.groups, Cig=params.in_channels_per_group,
        Cog=params.out_channels_per_group,
        **dict(zip(("ID", "IH", "IW"), params.in_size)),
        **dict(zip(("OD", "OH", "OW"), params.out_size)),
        **dict(zip(("KD", "KH", "KW"), params.kernel)),
        **dict(zip(("sd", "sh", "sw"), params.stride)),
        **dict(zip(("pd", "ph", "pw"), params.padding)))


class _FusedPlan:
    """Everything one fused call needs that depends only on the geometry,
    dtype and device: kernels, device tables, launch shape, the scalar
    argument struct (one per bias/alignment case)."""

    def __init__(self, params, dtype_name, packed=None):
        cupy = _cupy()
        cfg = fused_config(params, dtype_name)
        cfg_key = tuple(sorted(cfg.items()))
        geo = kernel_geometry(params)
        meta, idx, nblocks, interleave = _fused_tables(params, cfg_key)
        x_shape = params.input_shape[:2] + geo.in_size
        index_t = _index_type(math.prod(params.input_shape), math.prod(x_shape),
                              math.prod(params.batched_output_shape),
                              math.prod(params.weight_shape), idx.size)
        ctype = _CTYPES[dtype_name]
        self.meta = cupy.asarray(meta)
        self.packed = _pack_weights(params, cfg, meta) if packed is None else packed
        if self.packed:
            ityp = np.int32 if index_t == "int" else np.int64
            self.idx = cupy.asarray(idx.astype(ityp))
            self.n_idx = ityp(idx.size)
            self.pack = _kernel(f"xconvt_pack<{ctype}, {index_t}>")
            self.pack_grid = grid_1d(idx.size)
        self.kern = _kernel(f"xconvt_fused<{ctype}, {index_t}, {cfg['ro']}, {RW}, "
                            f"{cfg['twx']}>")
        _allow_smem(self.kern, cfg["smem"])
        self.grid = (nblocks,)
        self.block = (cfg["threads"],)
        self.smem = cfg["smem"]
        values = dict(
            nphase=meta.shape[0], interleave=int(interleave), G=params.groups,
            Cig=params.in_channels_per_group, Cog=params.out_channels_per_group,
            n_ob=cfg["n_ob"], sd=geo.out_stride[0], sh=geo.out_stride[1],
            sw=geo.out_stride[2], isd=geo.in_stride[0], ish=geo.in_stride[1],
            isw=geo.in_stride[2], TWT=cfg["twt"], TH=cfg["th"], TD=cfg["td"],
            OG=cfg["og"], CC=cfg["cc"], TDC=cfg["tdc"], P=cfg["p"], PP=cfg["pp"],
            CP=cfg["cp"], BUF=cfg["buf"], packed=int(self.packed),
            **dict(zip(("ID", "IH", "IW"), geo.in_size)),
            **dict(zip(("OD", "OH", "OW"), params.out_size)),
            **dict(zip(("KD", "KH", "KW"), params.kernel)))
        # args[has_bias][vec]: 16-byte input staging needs an aligned input
        # pointer, checked per call.
        self.args = [[_struct(_FUSED_FIELDS, {**values, "has_bias": hb, "vec": v})
                      for v in (0, 1)] for hb in (0, 1)]
        self.vec_ok = _vec_eligible(params, dtype_name)
        self.remap = None
        if geo.remap is not None:
            ityp = np.int32 if index_t == "int" else np.int64
            i32 = np.int32
            self.remap = _kernel(f"xconvt_remap<{ctype}, {index_t}>")
            self.remap_tab = cupy.asarray(np.asarray(sum(geo.remap, ()), np.int32))
            self.x_shape = x_shape
            n_x = math.prod(x_shape)
            self.remap_args = (ityp(n_x), *(i32(v) for v in params.in_size),
                               *(i32(v) for v in geo.in_size))
            self.remap_grid = grid_1d(n_x)

    def __call__(self, x, w, b, out):
        if self.remap is not None:
            xr = _cupy().empty(self.x_shape, dtype=x.dtype)
            self.remap(self.remap_grid, (256,), (x, xr, self.remap_tab, *self.remap_args))
            x = xr
        if self.packed:
            wp = _cupy().empty(int(self.n_idx), dtype=x.dtype)
            if self.n_idx:
                self.pack(self.pack_grid, (256,), (w, self.idx, wp, self.n_idx))
            w = wp
        args = self.args[b is not None][self.vec_ok and x.data.ptr % 16 == 0]
        self.kern(self.grid, self.block, (x, w, x if b is None else b, out, self.meta, args),
                  shared_mem=self.smem)


@lru_cache(maxsize=None)
def _fused_plan_getter():
    cupy = _cupy()
    return cupy.memoize(for_each_device=True)(_FusedPlan)


# --------------------------------------------------------------------------- gemm
@lru_cache(maxsize=1024)
def _col2im_table(params):
    """Per axis and output index: first tap, its input index, number of taps."""
    rows = []
    for a in range(3):
        size, k, s, p, d = (params.in_size[a], params.kernel[a], params.stride[a],
                            params.padding[a], params.dilation[a])
        for o in range(params.out_size[a]):
            taps = [(kk, (o + p - kk * d) // s) for kk in range(k)
                    if (o + p - kk * d) % s == 0 and 0 <= (o + p - kk * d) // s < size]
            rows.append((taps[0][0], taps[0][1], len(taps)) if taps else (0, 0, 0))
    return np.asarray(rows, np.int32).ravel()


# Column-buffer chunk (within the memory budget).  With cuBLAS called
# directly, larger chunks won: gan_k4s2 0.593 ms in 8 MiB chunks, 0.500 in
# 16-64 MiB, 0.484 in one 128 MiB chunk (H100, 2026-11-26).  Through
# cupy.matmul, whose host time per call left gaps, 16 MiB chunks had been best.
_GEMM_CHUNK = 128 << 20


def _gemm_chunks(params, itemsize, budget):
    """``(batch chunk, output-channel chunk)`` of the column buffer under
    ``budget`` bytes: whole samples while they fit, else output channels of
    one sample (chunking the output channels of the whole batch first
    measured slower on gan_k4s2)."""
    N, G = params.batch, params.groups
    cog, K = params.out_channels_per_group, params.taps
    V = math.prod(params.in_size)
    budget = max(1, min(budget, _GEMM_CHUNK))
    per_o = G * K * V * itemsize  # one output channel of one sample
    per_sample = cog * per_o
    nn = max(1, min(N, budget // per_sample))
    return nn, (cog if per_sample <= budget else max(1, budget // per_o))


# Fields of the kernel's Col2imArgs struct, in order (all int32).
_COL2IM_FIELDS = ("has_bias", "G", "Cog", "ID", "IH", "IW", "OD", "OH", "OW",
                  "KD", "KH", "KW", "ksd", "ksh", "ksw", "dgd", "dgh", "dgw")

_BLAS = {"float32": ("sgemmStridedBatched", np.float32),
         "float64": ("dgemmStridedBatched", np.float64)}


class _GemmPlan:
    """The GEMM variant's launch plan for one geometry, dtype and device.

    Per chunk of batch elements and output channels and per group, one
    strided-batched cuBLAS call (batched over the chunk's samples)::

        cols[n, g, (o, tap), v] = sum_c w[g*Cig + c, o0 + o, tap] * x[n0 + n, g*Cig + c, v]

    reads ``x`` and ``w`` where they lie (column-major, ``cols^T = x^T w``:
    no transposed copies), then ``xconvt_col2im`` gathers the taps.  cuBLAS
    is called through CuPy's bindings with precomputed arguments, a few
    microseconds a call: ``cupy.matmul`` took 20-40 us of host time per chunk,
    enough to leave the GPU idle between chunks.  float16 is computed in
    float32 (``cols`` is float32).
    """

    def __init__(self, params, dtype_name, budget):
        cupy = _cupy()
        from cupy_backends.cuda.libs import cublas

        self.cublas = cublas
        G, cig, cog = params.groups, params.in_channels_per_group, params.out_channels_per_group
        K, V = params.taps, math.prod(params.in_size)
        gemm_dtype = "float64" if dtype_name == "float64" else "float32"
        name, self.col_dtype = _BLAS[gemm_dtype]
        self.gemm = getattr(cublas, name)
        self.one = np.ones(1, self.col_dtype)
        self.zero = np.zeros(1, self.col_dtype)
        csz = np.dtype(self.col_dtype).itemsize
        nn, no = _gemm_chunks(params, csz, budget)
        self.cols_size = nn * G * no * K * V
        index_t = _index_type(math.prod(params.input_shape),
                              math.prod(params.batched_output_shape), self.cols_size)
        self.kern = _kernel(f"xconvt_col2im<{_CTYPES[dtype_name]}, {_CTYPES[gemm_dtype]}, "
                            f"{index_t}>")
        self.tab = cupy.asarray(_col2im_table(params))
        gs = [math.gcd(s, d) for s, d in zip(params.stride, params.dilation)]
        values = dict(
            _layer_fields(params),
            **dict(zip(("ksd", "ksh", "ksw"), (s // g for s, g in zip(params.stride, gs)))),
            **dict(zip(("dgd", "dgh", "dgw"), (d // g for d, g in zip(params.dilation, gs)))))
        self.args = [_struct(_COL2IM_FIELDS, {**values, "has_bias": hb}) for hb in (0, 1)]
        OD, OH, OW = params.out_size
        i32 = np.int32
        cin = params.in_channels
        # Per chunk: the GEMMs' (m, n, k) and element offsets/strides, then the
        # col2im launch.
        self.steps = []
        for n0 in range(0, params.batch, nn):
            nc = min(nn, params.batch - n0)
            for o0 in range(0, cog, no):
                oc = min(no, cog - o0)
                gemms = [(V, oc * K, cig,
                          (n0 * cin + g * cig) * V, V, cin * V,            # x
                          g * cig * cog * K + o0 * K, cog * K,              # w
                          g * oc * K * V, V, G * oc * K * V, nc)            # cols
                         for g in range(G)]
                nz = nc * G * oc
                launch = ((-(-(OH * OW) // 128), min(OD, 65535), min(nz, 65535)),
                          (i32(nz), i32(oc), i32(n0), i32(o0)))
                self.steps.append((gemms, launch))

    def __call__(self, x, w, b, out):
        cupy, cublas = _cupy(), self.cublas
        if x.dtype != self.col_dtype:  # float16: the GEMM in float32
            x, w = x.astype(self.col_dtype), w.astype(self.col_dtype)
        cols = cupy.empty(self.cols_size, self.col_dtype)
        handle = cupy.cuda.device.get_cublas_handle()
        cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
        isz = cols.itemsize
        xp, wp, cp_ = x.data.ptr, w.data.ptr, cols.data.ptr
        one, zero = self.one.ctypes.data, self.zero.ctypes.data
        args = self.args[b is not None]
        bias = out if b is None else b
        for gemms, (grid, tail) in self.steps:
            for m, n, k, xo, lda, sa, wo, ldb, co, ldc, sc, batch in gemms:
                # column-major: cols^T (m x n) = x^T (m x k) @ (w^T)^T
                self.gemm(handle, cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T, m, n, k, one,
                          xp + xo * isz, lda, sa, wp + wo * isz, ldb, 0, zero,
                          cp_ + co * isz, ldc, sc, batch)
            self.kern(grid, (128,), (cols, bias, out, self.tab, args, *tail))


@lru_cache(maxsize=None)
def _gemm_plan_getter():
    cupy = _cupy()
    return cupy.memoize(for_each_device=True)(_GemmPlan)


# --------------------------------------------------------------------------- pointwise
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


@lru_cache(maxsize=1024)
def _pointwise_eligible(params):
    return (params.kernel == (1, 1, 1)
            and params.in_channels_per_group * params.out_channels_per_group
            <= _POINTWISE_MAX_MACS
            and math.prod(params.out_size) <= _INT32_MAX - 256)


class _PointwisePlan:
    """Launch plan of ``xconvt_pointwise`` (1x1x1 kernels, few channels): one
    thread per output position, group and chunk of up to 8 output channels."""

    def __init__(self, params, dtype_name):
        cog = params.out_channels_per_group
        co = next(c for c in (1, 2, 4, 8) if c >= min(cog, 8))
        n_oc = -(-cog // co)
        nz = params.batch * params.groups * n_oc
        index_t = _index_type(math.prod(params.input_shape),
                              math.prod(params.batched_output_shape))
        self.kern = _kernel(f"xconvt_pointwise<{_CTYPES[dtype_name]}, {index_t}, {co}>")
        self.grid = (-(-math.prod(params.out_size) // 256), min(nz, 65535))
        self.nz = np.int32(nz)
        values = dict(_layer_fields(params), n_oc=n_oc)
        self.args = [_struct(_POINTWISE_FIELDS, {**values, "has_bias": hb}) for hb in (0, 1)]

    def __call__(self, x, w, b, out):
        self.kern(self.grid, (256,),
                  (x, w, x if b is None else b, out, self.args[b is not None], self.nz))


@lru_cache(maxsize=None)
def _pointwise_plan_getter():
    cupy = _cupy()
    return cupy.memoize(for_each_device=True)(_PointwisePlan)


# --------------------------------------------------------------------------- gather
# Fields of the kernel's GatherArgs struct, in order (all int32).
_GATHER_FIELDS = ("has_bias", "G", "Cig", "Cog", "n_oc", "E", "ID", "IH", "IW",
                  "OD", "OH", "OW", "KD", "KH", "KW", "sd", "sh", "sw")
_GATHER_TW = (2, 4, 8)  # W taps per phase the kernel is compiled for


@lru_cache(maxsize=1024)
def _gather_eligible(params):
    pws = params.axis_phases[2]
    return (params.dilation == (1, 1, 1)
            and max((len(pw.taps) for pw in pws), default=0) <= _GATHER_TW[-1]
            and params.out_size[1] * params.out_size[2] <= _INT32_MAX - 128)


def _gather_preferred(params):
    """Few channels and few multiply-adds per output: the gather kernel beats
    the fused one's staging.  H100, 2026-11-26, kernel calls (ms, fused ->
    gather with 4 outputs a thread): imaging_c1_k5s2 (1 -> 1 channel, 15.6
    taps per output) 0.281 -> 0.156; 2 -> 2, k3 s2, 128^3 0.259 -> 0.182;
    4 -> 4, k3 s2, 2 x 64^3 0.107 -> 0.086; depthwise k3, 64^3 0.150 -> 0.101;
    2 -> 2 in 4 groups, k4 s2 0.166 -> 0.091.  It loses with many taps or
    channels: depthwise k7 (343 taps) 0.40 -> 0.71, sweep_k3 (4 -> 4, 27 taps)
    0.031 -> 0.042, grouped_g4 (16 -> 16) 0.24 -> 0.63."""
    taps_per_output = params.taps / math.prod(params.stride)
    return (params.out_channels_per_group <= 4
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
    tab = np.concatenate([_col2im_table(params)[:3 * (OD + OH)],
                          np.asarray(entries, np.int32).ravel(),
                          np.asarray(taps, np.int32)]).astype(np.int32)
    tw = next(t for t in _GATHER_TW if t >= max((e[3] for e in entries), default=0))
    return tab, len(entries), tw


class _GatherPlan:
    """Launch plan of ``xconvt_gather``: ``rg`` outputs of a W phase and ``co``
    output channels per thread (chosen when None), no staging (few channels,
    no dilation)."""

    def __init__(self, params, dtype_name, rg=None, co=None):
        cupy = _cupy()
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
        index_t = _index_type(math.prod(params.input_shape),
                              math.prod(params.batched_output_shape),
                              math.prod(params.weight_shape))
        self.kern = _kernel(f"xconvt_gather<{_CTYPES[dtype_name]}, {index_t}, {co}, {rg}, {tw}>")
        self.grid = (-(-OH * E // 128), min(OD, 65535), min(nz, 65535))
        self.nz = np.int32(nz)
        values = dict(_layer_fields(params), n_oc=n_oc, E=E)
        self.args = [_struct(_GATHER_FIELDS, {**values, "has_bias": hb}) for hb in (0, 1)]

    def __call__(self, x, w, b, out):
        self.kern(self.grid, (128,),
                  (x, w, x if b is None else b, out, self.tab, self.args[b is not None], self.nz))


@lru_cache(maxsize=None)
def _gather_plan_getter():
    cupy = _cupy()
    return cupy.memoize(for_each_device=True)(_GatherPlan)


# --------------------------------------------------------------------------- tile
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


class _TilePlan:
    """Launch plan of ``xconvt_tile`` (:func:`tile_config`)."""

    def __init__(self, params, dtype_name):
        cupy = _cupy()
        acc = 8 if dtype_name == "float64" else 4
        cfg = tile_config(params, acc)
        self.ptab = cupy.asarray(cfg.ptab)
        index_t = _index_type(math.prod(params.input_shape),
                              math.prod(params.batched_output_shape),
                              math.prod(params.weight_shape))
        self.kern = _kernel(f"xconvt_tile<{_CTYPES[dtype_name]}, {index_t}, {cfg.ro}>")
        _allow_smem(self.kern, cfg.smem)
        self.smem = cfg.smem
        self.grid = (params.batch * params.groups * math.prod(cfg.ntiles),)
        values = dict(
            _layer_fields(params), CogP=cfg.ro * cfg.n_og, n_og=cfg.n_og, K=params.taps,
            nph=cfg.nph, nptab=cfg.ptab.size,
            **dict(zip(("TD", "TH", "TW"), cfg.tile)),
            **dict(zip(("XD", "XH", "XW"), cfg.slab)),
            **dict(zip(("ntd", "nth", "ntw"), cfg.ntiles)),
            **dict(zip(("lod", "loh", "low"), cfg.lo)))
        self.args = [_struct(_TILE_FIELDS, {**values, "has_bias": hb}) for hb in (0, 1)]

    def __call__(self, x, w, b, out):
        self.kern(self.grid, (_TILE_THREADS,),
                  (x, w, x if b is None else b, out, self.ptab, self.args[b is not None]),
                  shared_mem=self.smem)


@lru_cache(maxsize=None)
def _tile_plan_getter():
    cupy = _cupy()
    return cupy.memoize(for_each_device=True)(_TilePlan)


# --------------------------------------------------------------------------- entry
# variant -> (whether it applies to (params, dtype name), its launch plan)
_VARIANTS = {
    "fused": (lambda params, name: True,
              lambda params, name: _fused_plan_getter()(params, name)),
    "gemm": (lambda params, name: True,
             lambda params, name: _gemm_plan_getter()(params, name, get_memory_budget())),
    "pointwise": (lambda params, name: _pointwise_eligible(params),
                  lambda params, name: _pointwise_plan_getter()(params, name)),
    "gather": (lambda params, name: _gather_eligible(params),
               lambda params, name: _gather_plan_getter()(params, name)),
    "tile": (_tile_applies, lambda params, name: _tile_plan_getter()(params, name)),
}


def direct(params, x, w, b, variant=None):
    """Direct transposed convolution on CuPy arrays (see the module docstring).

    ``variant`` forces ``"fused"``, ``"gemm"``, ``"pointwise"`` (1x1x1
    kernels with few channels only), ``"gather"`` (no dilation, at most 8 W
    taps per stride phase) or ``"tile"`` (:func:`tile_config`); ``None`` uses
    :func:`choose_variant`.
    """
    cupy = _cupy()
    with x.device:
        if x.dtype.kind == "c":
            return _complex(params, x, w, b, variant)
        x = cupy.ascontiguousarray(x)
        w = cupy.ascontiguousarray(w)
        if b is not None:
            b = cupy.ascontiguousarray(b)
        out = cupy.empty(params.batched_output_shape, dtype=x.dtype)
        name = dtype_name(x.dtype)
        if variant is None:
            variant = _variant(params, name)
        elif variant not in _VARIANTS or not _VARIANTS[variant][0](params, name):
            msg = ("variant must be 'fused', 'gemm', 'pointwise' (1x1x1 kernels with "
                   f"at most {_POINTWISE_MAX_MACS} channel pairs per group), 'gather' (no "
                   "dilation, at most 8 W taps per stride phase), 'tile' (no dilation, "
                   "a group's channels and weights within a block's shared memory) or "
                   f"None, got variant={variant!r}")
            raise ValueError(msg)
        _VARIANTS[variant][1](params, name)(x, w, b, out)
        return out


def _complex(params, x, w, b, variant):
    """(xr + i xi) * (wr + i wi) as four real transposed convolutions."""
    xr, xi = x.real.copy(), x.imag.copy()
    wr, wi = w.real.copy(), w.imag.copy()
    rr = direct(params, xr, wr, None, variant)
    ii = direct(params, xi, wi, None, variant)
    ri = direct(params, xr, wi, None, variant)
    ir = direct(params, xi, wr, None, variant)
    out = (rr - ii) + 1j * (ri + ir)
    out = out.astype(x.dtype, copy=False)
    if b is not None:
        out += b.reshape((1, -1, 1, 1, 1))
    return out
