"""The weight gradient on the GPU: an FMA GEMM kernel with a split reduction.

``dw[g, c, o, k] = sum_{n, i} x[n, g*Cig + c, i] * gy[n, g*Cog + o, i*s - p + k*d]``
is, per group, a GEMM of ``Cig`` rows by ``Cog * KD*KH*KW`` columns (output
channel and tap) deep in the input positions of every batch element
(``kernels/wgrad.cu``): ``x`` is read along its rows, ``gy`` gathered at each
column's tap offset (zero outside the output), both staged in shared memory
per step of ``BK`` positions.  The reduction is split over batch elements and
ranges of positions so that the grid fills the GPU; every split writes its own
partial sums and a second kernel adds them in a fixed order, so the result
does not depend on timing (no atomics).  Partial sums that do not fit the
memory budget are made and added in batch chunks, in order.

Tiles (rows x columns per block, positions per step, outputs per thread) are
chosen per geometry from :data:`TILES` by the padded FLOPs each would run at
its fitted rate: wide layers the 128x128 tile, ``Cig`` of 1 to 4 with many
columns (depthwise, larger kernels) the thin one, whose 4 rows waste least.
float16 accumulates in float32, float64 in float64; complex dtypes are left to
the GEMM and FFT planners.
"""

from __future__ import annotations

import math

import numpy as np

from ..._plan import Plan
from . import runtime as rt

__all__ = ["TILES", "choose_tile", "plan", "splits"]

SOURCE = rt.KERNELS / "wgrad.cu"

_FIELDS = ("G", "Cig", "Cog", "T", "ID", "IH", "IW", "OD", "OH", "OW", "KH", "KW",
           "sd", "sh", "sw", "pd", "ph", "pw", "dd", "dh", "dw", "S", "chunk", "tiles_n")
"""The kernel's ``WgradArgs`` fields, in order (all int32)."""

TILES = {
    "big": (128, 128, 8, 8, 8, 1),
    "big16": (128, 128, 16, 8, 8, 1),
    "mid": (64, 64, 16, 4, 4, 1),
    "narrow": (16, 128, 16, 2, 4, 1),
    "thin": (4, 256, 8, 1, 4, 1),
}
"""``name: (BM, BN, BK, TM, TN, MINB)``: block tile rows (input channels) x
columns (output channel, tap), positions per step, outputs per thread (256
threads), blocks per SM the registers must allow.  ``big16`` stages twice the
positions per step of ``big`` (half the barriers) in fewer registers (127
against 167: two blocks per SM)."""

RATE = {"big": 27e12, "big16": 26.5e12, "mid": 24e12, "narrow": 13.5e12, "thin": 6e12}
"""float32 FLOP/s of each tile on its padded FLOPs when the grid fills the GPU,
measured on an H200 over the GPU suite (bench/NOTES.md, 2026-12-02); float64
is taken at half."""

_MIN_CHUNK = 512
"""Fewest positions per split (shorter ones spend more on partial sums than they save)."""

_WAVES = 4
"""Blocks per SM to aim the split count at (several, so the last wave is short)."""


def choose_tile(params):
    """The :data:`TILES` name with the least padded FLOPs at its rate."""
    cig, nj = params.in_channels_per_group, params.out_channels_per_group * math.prod(
        params.kernel)

    def cost(name):
        bm, bn = TILES[name][:2]
        return -(-cig // bm) * bm * -(-nj // bn) * bn / RATE[name]

    return min(TILES, key=cost)


def splits(params, tile, sm_count, budget, acc_size):
    """``(S, chunk, nb)``: splits per batch element (enough blocks for
    ``_WAVES`` per SM, splits of at least ``_MIN_CHUNK`` positions, one batch
    element's partial sums within ``budget``), positions per split, and batch
    elements per launch (their partial sums within ``budget``; at least one)."""
    bm, bn, bk = TILES[tile][:3]
    P = math.prod(params.in_size)
    nj = params.out_channels_per_group * math.prod(params.kernel)
    blocks = -(-params.in_channels_per_group // bm) * -(-nj // bn) * params.groups
    want = max(1, -(-_WAVES * max(sm_count, 1) // (blocks * params.batch)))
    # one batch element's partial sums within the budget where they can be
    fit = budget // max(1, params.in_channels * nj * acc_size)
    S = max(1, min(want, -(-P // _MIN_CHUNK), fit))
    chunk = -(-(-(-P // S)) // bk) * bk
    S = -(-P // chunk)
    per_element = S * params.in_channels * nj * acc_size
    nb = max(1, min(params.batch, budget // max(per_element, 1)))
    return S, chunk, nb


class _Launcher:
    def __init__(self, params, dtype, tile, S, chunk, nb):
        bm, bn, bk, tm, tn, minb = TILES[tile]
        ctype = rt.CTYPES[dtype]
        self.acc = np.float64 if dtype == "float64" else np.float32
        acc_c = "double" if dtype == "float64" else "float"
        self.kern = rt.kernel(
            SOURCE, f"xconvt_wgrad<{ctype}, {bm}, {bn}, {bk}, {tm}, {tn}, {minb}>")
        self.reduce = rt.kernel(SOURCE, f"xconvt_wgrad_reduce<{acc_c}>")
        nj = params.out_channels_per_group * math.prod(params.kernel)
        tiles_n = -(-nj // bn)
        self.tiles = -(-params.in_channels_per_group // bm) * tiles_n
        self.params, self.S, self.nb = params, S, nb
        values = dict(rt.layer_fields(params), T=math.prod(params.kernel),
                      **dict(zip(("dd", "dh", "dw"), params.dilation)),
                      S=S, chunk=chunk, tiles_n=tiles_n)
        self.args = rt.struct(_FIELDS, values)
        self.total = params.in_channels * nj

    def __call__(self, x, gy, dw_acc):
        cp = rt.cupy()
        p, S, nb = self.params, self.S, self.nb
        part = cp.empty((min(nb, p.batch) * S * self.total,), self.acc)
        grid_r = rt.grid_1d(self.total)
        for n0 in range(0, p.batch, nb):
            m = min(nb, p.batch - n0)
            self.kern((self.tiles, p.groups, m * S), (256,), (x[n0:n0 + m], gy[n0:n0 + m],
                                                              part, self.args))
            self.reduce(grid_r, (256,), (part, dw_acc, np.int64(self.total),
                                         np.int32(m * S), np.int32(n0 > 0)))


class WgradPlan(Plan):
    """The weight gradient by :mod:`wgrad`'s kernels: ``plan(x, gy) -> dw``."""

    algorithm = "direct"

    def __init__(self, problem, tile, S, chunk, nb, estimate, workspace):
        self.name = "cuda.wgrad"
        self.estimate, self.workspace = float(estimate), int(workspace)
        bm, bn, bk = TILES[tile][:3]
        self.detail = (f"{tile} tile {bm}x{bn}x{bk}, {S} split(s) of {chunk} positions "
                       f"per batch element, {nb} batch element(s) per launch")
        self.params, self.dtype = problem.params, problem.dtype
        self._args = (tile, S, chunk, nb)
        self._launchers = {}

    def __call__(self, x, gy):
        cp = rt.cupy()
        dev = x.device
        with dev:
            launch = self._launchers.get(dev.id)
            if launch is None:
                launch = self._launchers[dev.id] = _Launcher(self.params, self.dtype,
                                                             *self._args)
            x = cp.ascontiguousarray(x)
            gy = cp.ascontiguousarray(gy)
            shape = self.params.weight_shape
            if self.dtype == "float16":
                acc = cp.empty(shape, cp.float32)
                launch(x, gy, acc)
                return acc.astype(cp.float16)
            dw = cp.empty(shape, x.dtype)
            launch(x, gy, dw)
            return dw


def plan(problem):
    """Planner: the weight gradient by the split-reduction GEMM kernel."""
    if problem.op != "weight_grad":
        return f"computes weight_grad, not {problem.op}"
    if problem.device.kind != "cuda":
        return "runs on CUDA devices only"
    if problem.dtype not in ("float16", "float32", "float64"):
        return f"the kernel takes float16, float32 and float64, not {problem.dtype}"
    p = problem.params
    P, OV = math.prod(p.in_size), math.prod(p.out_size)
    if p.in_channels_per_group * P > rt.INT32_MAX or p.out_channels_per_group * OV > rt.INT32_MAX:
        return "one batch element's group of the input or output is beyond 32-bit indexing"
    tile = choose_tile(p)
    acc_size = 8 if problem.dtype == "float64" else 4
    S, chunk, nb = splits(p, tile, problem.device.sm_count, problem.budget, acc_size)
    nj = p.out_channels_per_group * math.prod(p.kernel)
    bm, bn = TILES[tile][:2]
    padded = 2.0 * p.batch * P * p.groups * (-(-p.in_channels_per_group // bm) * bm) * (
        -(-nj // bn) * bn)
    blocks = -(-p.in_channels_per_group // bm) * -(-nj // bn) * p.groups * min(nb, p.batch) * S
    fill = min(1.0, blocks / max(1, 2 * problem.device.sm_count))
    itemsize = 8 if problem.dtype == "float64" else (2 if problem.dtype == "float16" else 4)
    wide = 2.0 if problem.dtype == "float64" else 1.0
    partial = p.batch * S * p.in_channels * nj * acc_size
    nbytes = itemsize * (math.prod(p.input_shape) + math.prod(p.batched_output_shape))
    launches = 2 * -(-p.batch // nb)
    t = (wide * padded / (RATE[tile] * max(fill, 0.05)) + (nbytes + 2 * partial) / 2.5e12
         + launches * 5e-6)
    workspace = min(nb, p.batch) * S * p.in_channels * nj * acc_size
    return WgradPlan(problem, tile, S, chunk, nb, t, workspace)
