"""Small transposed convolutions on the CPU in a handful of NumPy/BLAS calls.

For small problems the per-phase formulations of :mod:`xconvt.backends.cpu` (:mod:`.channel_gemm`,
:mod:`.toeplitz`)
spend their time in Python and in per-phase NumPy calls, not in arithmetic.
This path does the whole call in a handful of array operations whose index
tables are built once per geometry:

0. scatter the weights (and bias) into the GEMM's weight matrix;
1. copy the input into a zero-padded buffer (its borders stay zero);
2. one strided copy, the im2col shared by every stride phase;
3. one GEMM (batched over groups) for every phase, tap and batch element;
4. one ``take`` that interleaves the phases into the output, crops it and
   drops junk columns;
5. a finite check of the result (see below).

Geometry, per spatial axis (input ``I``, kernel ``K``, stride ``s``, padding
``p``, dilation ``d``, output size ``O``).  Output ``o = s*j + r`` (phase
``r < s``) receives tap ``k`` from input ``j - t_k`` exactly when
``r == (k*d - p) mod s``, with ``t_k = floor((k*d - p) / s)``.  The shifts
``t_k`` of every phase lie on one grid ``t_max - q*u`` (``u < T``, ``q`` the
gcd of their differences), so every phase reads the same window::

    out[s*j + r] = sum_u  xpad[j + q*u] * Wr[u]        (xpad[0] = x[-t_max])

with ``Wr[u]`` the tap of phase ``r`` at shift ``t_max - q*u``, or zero.  In
3-D, with ``R = S*Cout/groups`` rows (phase, channel; ``S`` the phases
with taps, at most ``s_d*s_h*s_w``, see below) and
``Cin/groups * T_d*T_h*T_w`` columns (channel, window slot), per group::

    F[g] (R, N*cols)  =  Wall[g] (R, Cig*T^3 [+1])  @  Xcol[g] (Cig*T^3 [+1], N*cols)

``cols`` is the ``J_d x G_h x G_w`` output grid per phase: the exact grid
``J = ceil(O/s)`` per axis ("exact": im2col runs of ``J_w``), padded rows
(``G_w = L_w``, "rows": runs of ``J_h*L_w``) or padded planes (``G = L``,
"flat": runs of ``J_d*L_h*L_w``); the padded grids compute a few junk
columns, which are never read.  A bias is a
column of ``Wall`` times a row of ones in ``Xcol``.  The output is then one
``take`` of ``F`` by a cached index table, or, for unit stride, the exact grid
and one batch element, the GEMM's own output.

Phases without taps (a dilation sharing a factor with the stride, a stride
beyond the kernel's reach) get no rows of their own: their outputs read one
extra block of rows that holds the bias (or zero).

Waste.  Padded window slots (zero weights) and junk columns cost GEMM FLOPs:
``s^3*T^3 / K^3`` times the useful ones for ``K`` not a multiple of ``s``
(2.4x for k3 s2), times ``G_h*G_w / (J_h*J_w)`` on the padded grids.  The
estimate counts them; the path only applies to small problems (a size limit
on the GEMM, the index table and the workspace), where they cost less than
the Python and call overhead of the per-phase paths.

Non-finite values.  Zero weights multiply window slots and zero padding
multiplies taps, so an inf or NaN in the input or weight could make a NaN
that PyTorch, which only multiplies existing inputs by taps, does not.  Such
a NaN can only reach the output, whose every entry is checked by one dot
product with ones (a finite result is exact: the extra products are then all
zero); otherwise
the call is computed again by the exact per-tap scatter of
:mod:`.scatter`.  float16 is computed in float32 and rounded once.

Workspace (the padded input, the im2col operand, the GEMM output, the packed
weights) is kept per thread and geometry for the next call; its padding and
ones row are written once.  The output is always a new array.
"""

from __future__ import annotations

import cmath
import math
import threading
from dataclasses import dataclass
from functools import reduce

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..._plan import Plan

__all__ = ["GRIDS", "SmallPlan", "plan", "plan_for", "run", "tables"]

MAX_GEMM_FLOPS = 16e6
"""Largest GEMM (counting padded slots and junk columns) this path takes."""

MAX_OUT_ELEMENTS = 1 << 18
"""Largest output (elements) whose index table (8 bytes each) is cached."""

MAX_WORKSPACE = 8 << 20
"""Most workspace bytes (within the problem's budget)."""

_BLAS_ONE_THREAD_MNK = 2 * 65536 * 4
"""``M*N*K`` up to which OpenBLAS runs a GEMM on the calling thread."""

_MIN_CHUNK = 32
"""Fewest GEMM columns per BLAS call (problems needing fewer are not small)."""

_TABLES_MAX = 64
"""Geometries whose tables are kept (the oldest dropped first)."""

# Cost model, seconds per unit (fitted in bench/NOTES.md, "Small CPU path")
_CALL_S = 6.5e-6        # Python and NumPy call overhead of one call
_GEMM_S = 0.0175e-9     # per GEMM FLOP (padded slots and junk columns included)
_SHALLOW_S = 0.141e-9   # per GEMM FLOP / depth (shallow products run slower)
_THIN_S = 0.0995e-9     # per GEMM FLOP / thin side (thin products read more per FLOP)
_BLAS_S = 1.3e-6        # per BLAS call (groups times column chunks)
_RUN_S = 4.43e-9        # per contiguous run of the im2col copy
_TAKE_S = 0.518e-9      # per output element gathered

GRIDS = ("flat", "rows", "exact")
"""Column grids per phase: padded planes, padded rows, or the exact outputs."""

_F16, _F32 = np.dtype(np.float16), np.dtype(np.float32)

_SUPPORTED = ("float16", "float32", "float64", "complex64", "complex128")


@dataclass(frozen=True)
class _Axis:
    """One spatial axis: phases ``s``, output rows ``J``, window ``T`` slots of
    step ``q``, padded input length ``L`` whose index 0 is input ``lo``."""

    size: int      # input size I
    out: int       # output size O
    s: int
    J: int
    T: int
    q: int
    lo: int
    L: int
    r: tuple       # phase of each tap
    u: tuple       # window slot of each tap
    act: tuple     # per phase, its index among the phases with taps, or -1

    @property
    def na(self):
        """Phases with at least one tap."""
        return sum(a >= 0 for a in self.act)


def _axis(I, K, s, p, d, O):
    v = [k * d - p for k in range(K)]
    t = [x // s for x in v]
    tmax, tmin = max(t), min(t)
    q = reduce(math.gcd, (tmax - x for x in t), 0) or 1
    T = (tmax - tmin) // q + 1
    J = -(-O // s)
    r = tuple(x % s for x in v)
    used = sorted(set(r))
    act = tuple(used.index(x) if x in used else -1 for x in range(s))
    return _Axis(I, O, s, J, T, q, -tmax, J + q * (T - 1), r,
                 tuple((tmax - x) // q for x in t), act)


class _Tables:
    """Everything built once per geometry: shapes, index tables, costs."""

    def __init__(self, params, grid):
        self.params, self.grid = params, grid
        N, G = params.batch, params.groups
        Cig, Cog = params.in_channels_per_group, params.out_channels_per_group
        self.N, self.G, self.Cig, self.Cog = N, G, Cig, Cog
        self.axes = ax = tuple(
            _axis(params.in_size[a], params.kernel[a], params.stride[a],
                  params.padding[a], params.dilation[a], params.out_size[a])
            for a in range(3))
        # GEMM rows: the phases with taps on every axis; the others (dilation
        # sharing a factor with the stride, a stride above the kernel's reach)
        # receive the bias only, which one extra block of rows holds
        self.S = math.prod(a.na for a in ax)
        self.extra = int(any(a.na < a.s for a in ax))
        self.R = (self.S + self.extra) * Cog
        self.slots = math.prod(a.T for a in ax)
        self.depth = Cig * self.slots + params.has_bias
        self.Lvol = ax[0].L * ax[1].L * ax[2].L
        # junk columns of the last channel read past its padded volume
        self.slack = {"flat": (ax[1].T - 1) * ax[1].q * ax[2].L, "rows": 0, "exact": 0}[grid]
        self.slack += (ax[2].T - 1) * ax[2].q if grid != "exact" else 0
        self.gh = ax[1].L if grid == "flat" else ax[1].J
        self.gw = ax[2].J if grid == "exact" else ax[2].L
        self.cols = ax[0].J * self.gh * self.gw
        # GEMMs of one thread: OpenBLAS threads those above _BLAS_ONE_THREAD_MNK,
        # and a threaded call right after PyTorch's (whose OpenMP threads spin)
        # took 30 ms on two cores; the columns are split into chunks under it
        ncols = N * self.cols
        self.nchunks = -(-ncols // max(1, _BLAS_ONE_THREAD_MNK // (self.R * self.depth)))
        self.chunk = -(-ncols // self.nchunks)
        self.ncols = self.nchunks * self.chunk  # junk columns up to whole chunks
        self.flops = 2 * G * self.R * self.depth * self.ncols
        self.has_bias = params.has_bias
        self.in_place = (grid == "exact" and N == 1 and all(a.s == 1 for a in ax)
                         and self.nchunks == 1)
        self.out_elems = N * params.out_channels * math.prod(params.out_size)

    def workspace(self, itemsize):
        """Bytes of the buffers a thread keeps (index tables counted apart)."""
        return itemsize * (self.N * self.G * self.Cig * self.Lvol + self.slack
                           + self.G * self.depth * self.ncols
                           + (0 if self.in_place else self.G * self.R * self.ncols)
                           + self.G * self.R * self.depth + self.params.weight_shape[0]
                           * math.prod(self.params.weight_shape[1:]) + self.params.out_channels
                           + 1)

    def table_bytes(self):
        return 8 * ((0 if self.in_place else self.out_elems) + self.params.in_channels
                    * math.prod(self.params.weight_shape[1:]) + self.params.out_channels)

    def seconds(self, itemsize, complex_):
        """Predicted seconds of one call (the module's cost model): float64 and
        complex128 move twice the bytes, complex GEMMs do 4 real multiply-adds."""
        wide = itemsize / (8 if complex_ else 4)
        per_flop = _GEMM_S + _SHALLOW_S / self.depth + _THIN_S / min(self.R, self.chunk)
        gemm = self.flops * per_flop * wide * (4 if complex_ else 1)
        run = {"flat": self.cols, "rows": self.gh * self.gw, "exact": self.gw}[self.grid]
        im2col = self.G * self.Cig * self.slots * self.N * self.cols / run * _RUN_S
        take = 0 if self.in_place else self.out_elems * _TAKE_S * wide
        return _CALL_S + gemm + self.G * self.nchunks * _BLAS_S + im2col + take

    # ------------------------------------------------------------- index tables
    def build(self):
        """The weight-packing and output index tables (once per geometry)."""
        params, ax = self.params, self.axes
        G, Cig, Cog = self.G, self.Cig, self.Cog
        # Wall[g, (rd, rh, rw, c), (ci, ud, uh, uw)] = w[g*Cig + ci, c, k]: the
        # position in Wall of every weight, in the weight's order; window slots
        # no tap reaches stay zero
        ph = (ax[0].na, ax[1].na, ax[2].na)
        rd, rh, rw = (np.array(a.act)[list(a.r)].reshape(sh) for a, sh in zip(
            ax, ((-1, 1, 1), (1, -1, 1), (1, 1, -1))))
        ud, uh, uw = (np.array(a.u).reshape(sh) for a, sh in zip(
            ax, ((-1, 1, 1), (1, -1, 1), (1, 1, -1))))
        row = ((rd * ph[1] + rh) * ph[2] + rw)[None, None, None]        # (.., kd, kh, kw)
        slot = ((ud * ax[1].T + uh) * ax[2].T + uw)[None, None, None]
        g = np.arange(G).reshape(-1, 1, 1, 1, 1, 1)
        ci = np.arange(Cig).reshape(1, -1, 1, 1, 1, 1)
        c = np.arange(Cog).reshape(1, 1, -1, 1, 1, 1)
        self.wpos = (((g * self.R + row * Cog + c) * self.depth + ci * self.slots + slot)
                     .astype(np.intp).ravel())
        if params.has_bias:
            # the bias column, ordered (phase, g, c) so that b repeats along it
            r = np.arange(self.S + self.extra).reshape(-1, 1, 1)
            g = np.arange(G).reshape(1, -1, 1)
            c = np.arange(Cog).reshape(1, 1, -1)
            self.bpos = ((g * self.R + r * Cog + c) * self.depth + self.depth - 1).reshape(
                self.S + self.extra, -1)
        if self.in_place:
            self.oidx = None
            return self
        # out[n, g, c, o_d, o_h, o_w] = F[g, (r_d, r_h, r_w, c), n, (j_d, j_h, j_w)]
        # with o = s*j + r per axis (r the phase's index among those with taps;
        # outputs of a phase without taps read the bias rows)
        def split(a, grid):
            o = np.arange(a.out)
            return np.array(a.act)[o % a.s], (o // a.s) * grid
        rd, jd = split(ax[0], self.gh * self.gw)
        rh, jh = split(ax[1], self.gw)
        rw, jw = split(ax[2], 1)
        row = (rd[:, None, None] * ph[1] + rh[:, None]) * ph[2] + rw
        row[(rd[:, None, None] < 0) | (rh[:, None] < 0) | (rw < 0)] = self.S
        row = row.astype(np.intp)  # (O_d, O_h, O_w)
        col = jd[:, None, None] + jh[:, None] + jw
        n = np.arange(self.N).reshape(-1, 1, 1, 1, 1, 1)
        gg = np.arange(G).reshape(1, -1, 1, 1, 1, 1)
        cc = np.arange(Cog).reshape(1, 1, -1, 1, 1, 1)
        self.oidx = ((gg * self.R + row * Cog + cc) * self.ncols + n * self.cols + col).reshape(
            params.batched_output_shape)  # take() returns the output in its shape
        return self


_TABLES = {}
_TABLES_LOCK = threading.Lock()


def tables(params, grid):
    """The cached :class:`_Tables` of ``params`` on ``grid`` (built on first use)."""
    key = (params, grid)
    t = _TABLES.get(key)
    if t is None:
        t = _Tables(params, grid).build()
        with _TABLES_LOCK:
            if len(_TABLES) >= _TABLES_MAX:
                _TABLES.pop(next(iter(_TABLES)))
            _TABLES[key] = t
    return t


# ------------------------------------------------------------------ workspace
_LOCAL = threading.local()


class _Work:
    """One thread's buffers for one geometry and compute dtype."""

    def __init__(self, t, dtype):
        ax = t.axes
        N, G, Cig = t.N, t.G, t.Cig
        self.xbuf = np.zeros(N * G * Cig * t.Lvol + t.slack, dtype)
        self.xpad = self.xbuf[:N * G * Cig * t.Lvol].reshape(
            N, G * Cig, ax[0].L, ax[1].L, ax[2].L)
        # the part of xpad that holds input, and the input planes it takes
        self.dst, self.src = [], []
        for a in ax:
            a0, a1 = max(0, a.lo), min(a.size, a.lo + a.L)
            a1 = max(a0, a1)
            self.dst.append(slice(a0 - a.lo, a1 - a.lo))
            self.src.append(slice(a0, a1))
        self.empty = any(s.start == s.stop for s in self.src)
        self.whole = all(s == slice(0, a.size) for s, a in zip(self.src, ax))
        self.inner = self.xpad[(slice(None), slice(None), *self.dst)]
        self.src = (slice(None), slice(None), *self.src)
        # zeros: the columns past N*cols (up to whole chunks) are never written
        self.xcol = np.zeros((G, t.depth, t.ncols), dtype)
        if t.params.has_bias:
            self.xcol[:, -1] = 1
        e = self.xbuf.itemsize
        Lh, Lw = ax[1].L, ax[2].L
        plane = ax[0].L * Lh * Lw
        self.window = as_strided(
            self.xbuf, writeable=False,
            shape=(G, Cig, ax[0].T, ax[1].T, ax[2].T, N, ax[0].J, t.gh, t.gw),
            strides=(Cig * plane * e, plane * e, ax[0].q * Lh * Lw * e, ax[1].q * Lw * e,
                     ax[2].q * e, G * Cig * plane * e, Lh * Lw * e, Lw * e, e))
        self.cols = self.xcol[:, :Cig * t.slots, :N * t.cols].reshape(self.window.shape)
        # without their unit axes (fewer dimensions, a cheaper copy to set up)
        keep = tuple(i for i, n in enumerate(self.window.shape) if n != 1)
        self.window = as_strided(self.window, writeable=False,
                                 shape=[self.window.shape[i] for i in keep],
                                 strides=[self.window.strides[i] for i in keep])
        self.cols = self.cols.reshape([self.cols.shape[i] for i in keep])
        self.f = None if t.in_place else np.empty((G, t.R, t.ncols), dtype)
        self.ones = np.ones(t.out_elems, dtype)
        self.out_shape = t.params.batched_output_shape
        self.f_shape = (t.R, t.cols) if G * t.nchunks == 1 else (t.G, 1, t.R, t.cols)
        self.wall = np.zeros((G, t.R, t.depth), dtype)  # unreached slots stay zero
        self.wflat = self.wall.reshape(-1)
        self.fflat = None if t.in_place else self.f.reshape(-1)
        # the GEMMs, a chunk of columns each: (G, chunks) batches of
        # (R, depth) @ (depth, chunk); ndarray.dot where there is one
        self.single = G * t.nchunks == 1
        self.a = self.wall[0] if self.single else self.wall[:, None]
        self.b = self.xcol[0] if self.single else self._chunks(self.xcol, t)
        self.c = (None if t.in_place else self.f[0] if self.single
                  else self._chunks(self.f, t))

    @staticmethod
    def _chunks(m, t):
        """``m`` of shape ``(G, rows, ncols)`` as ``(G, nchunks, rows, chunk)``."""
        if t.nchunks == 1:
            return m[:, None]
        sg, sr, sc = m.strides
        return as_strided(m, shape=(m.shape[0], t.nchunks, m.shape[1], t.chunk),
                          strides=(sg, t.chunk * sc, sr, sc))


def _work(t, dtype):
    cache = getattr(_LOCAL, "work", None)
    if cache is None:
        cache = _LOCAL.work = {}
    key = (t, dtype)
    wk = cache.get(key)
    if wk is None:
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        wk = cache[key] = _Work(t, dtype)
    return wk


# ---------------------------------------------------------------------- compute
def run(t, x, w, b):
    """The transposed convolution on tables ``t`` (see the module docstring).

    ``x`` is the batched input, ``w`` the weight, ``b`` the bias or None, all of
    one supported dtype; returns a new C-contiguous array of
    ``params.batched_output_shape`` with ``x.dtype``.  Tables built without a
    bias column (``params.has_bias`` False) take a bias as a separate add.

    A call of a few microseconds notices every Python-level step: array
    methods rather than NumPy functions (their dispatch costs a third as
    much), the buffers, shapes and GEMM operands prepared in the thread's
    :class:`_Work`, and floating-point errors ignored by :func:`_quiet`
    rather than ``numpy.errstate`` (2 us a call).
    """
    if b is not None and not t.has_bias:
        out = run(t, x, w, None)
        out += b.astype(out.dtype, copy=False).reshape((1, -1, 1, 1, 1))
        return out
    dtype = x.dtype
    if dtype == _F16:
        dtype = _F32
    cache = _LOCAL.__dict__.get("work")
    wk = None if cache is None else cache.get((t, dtype))
    if wk is None:
        wk = _work(t, dtype)
    token = _quiet()  # inf/NaN propagate silently, as in PyTorch
    try:
        wk.wflat[t.wpos] = w.ravel()
        if b is not None:
            wk.wflat[t.bpos] = b
        if wk.whole:
            wk.inner[...] = x
        elif not wk.empty:
            wk.inner[...] = x[wk.src]
        wk.cols[...] = wk.window
        if t.in_place:
            out = np.empty(wk.out_shape, dtype)
            if wk.single:
                wk.a.dot(wk.b, out=out.reshape(wk.f_shape))
            else:
                np.matmul(wk.a, wk.b, out=out.reshape(wk.f_shape))
        else:
            if wk.single:
                wk.a.dot(wk.b, out=wk.c)
            else:
                np.matmul(wk.a, wk.b, out=wk.c)
            out = wk.fflat.take(t.oidx, mode="wrap")  # a new array
        if not cmath.isfinite(out.reshape(-1).dot(wk.ones)):
            # a NaN from a zero weight or padding times inf or NaN, or a
            # legitimate one: recompute exactly, multiplying only existing
            # inputs by taps
            from .scatter import scatter

            scatter(t.params, x, w.astype(dtype, copy=False),
                    None if b is None else b.astype(dtype, copy=False), out)
        if dtype is not x.dtype:
            out = out.astype(x.dtype)
    finally:
        _unquiet(token)
    return out


try:  # NumPy 2: the floating-point error state is a context variable
    from numpy._core.umath import _extobj_contextvar as _FP_STATE
    from numpy._core.umath import _make_extobj
except ImportError:  # pragma: no cover - NumPy 1.x: numpy.errstate below
    _FP_STATE = None

_IGNORING = {}
"""NumPy's error state in effect -> the same state with every floating-point
error ignored (what ``numpy.errstate(all="ignore")`` would enter)."""


def _quiet():
    """Ignore floating-point errors until :func:`_unquiet` of the returned token:
    ``numpy.errstate(all="ignore")``, whose state is built once per state in
    effect (NumPy 2's context variable) instead of on every call; the call's
    own buffer size and error callback are kept.  A fallback enters
    ``numpy.errstate`` where NumPy lacks that variable."""
    if _FP_STATE is None:
        ctx = np.errstate(all="ignore")
        ctx.__enter__()
        return ctx
    current = _FP_STATE.get()
    ignoring = _IGNORING.get(current)
    if ignoring is None:
        if len(_IGNORING) >= 16:
            _IGNORING.clear()
        ignoring = _IGNORING[current] = _make_extobj(all="ignore")
    return _FP_STATE.set(ignoring)


def _unquiet(token):
    """Restore the error state :func:`_quiet` replaced."""
    if _FP_STATE is None:
        token.__exit__(None, None, None)
    else:
        _FP_STATE.reset(token)


# ---------------------------------------------------------------------- planner
class SmallPlan(Plan):
    """A plan of the small path for one problem (see :func:`plan`)."""

    algorithm = "direct"

    def __init__(self, t, estimate, workspace):
        self.name = "cpu.small"
        self.tables, self.estimate, self.workspace = t, estimate, workspace
        self.detail = (f"{t.grid} grid, GEMM {t.R}x{t.depth} by {t.N * t.cols} columns "
                       f"per group in {t.nchunks} call(s), {t.flops / 1e6:.3g} MFLOP")

    def __call__(self, x, w, b=None):
        return run(self.tables, x, w, b)

    def __repr__(self):
        return (f"SmallPlan(grid={self.tables.grid!r}, estimate={self.estimate:.3g} s, "
                f"workspace={self.workspace})")


def plan(problem):
    """A :class:`SmallPlan` for ``problem``, or the reason there is none.

    Applies to a forward transposed convolution on the CPU whose GEMM (with
    its padded slots and junk columns), output index table and workspace are
    within :data:`MAX_GEMM_FLOPS`, :data:`MAX_OUT_ELEMENTS` and
    ``min(problem.budget, MAX_WORKSPACE)``, and whose GEMM splits into column
    chunks of at least ``_MIN_CHUNK`` under OpenBLAS's threading threshold;
    of the column grids (:data:`GRIDS`) it takes the one with the lowest
    estimate.
    """
    if problem.op != "conv_transpose3d":
        return f"cpu.small computes conv_transpose3d only, not {problem.op}"
    if problem.device.kind != "cpu":
        return f"cpu.small runs on the CPU, not on {problem.device.kind}"
    return plan_for(problem.params, problem.dtype, problem.budget)


_PLANS = {}


def plan_for(params, dtype, budget):
    """:func:`plan` for a forward problem on the CPU (cached): ``dtype`` its name,
    ``budget`` the workspace bytes allowed."""
    limit = min(budget, MAX_WORKSPACE)
    key = (params, dtype, limit)
    hit = _PLANS.get(key)
    if hit is not None:
        return hit
    if dtype not in _SUPPORTED:
        return f"cpu.small does not support dtype {dtype}"
    if params.batch == 0:
        return "cpu.small needs a non-empty batch"
    work = np.dtype("float32" if dtype == "float16" else dtype)
    out_elems = params.batch * params.out_channels * math.prod(params.out_size)
    best, why = None, None
    if out_elems > MAX_OUT_ELEMENTS:
        why = (f"cpu.small: output of {out_elems} elements exceeds its "
               f"{MAX_OUT_ELEMENTS}-element index table limit")
    else:
        for grid in GRIDS:
            t = _Tables(params, grid)
            ws = t.workspace(work.itemsize) + t.table_bytes()
            if t.flops > MAX_GEMM_FLOPS:
                why = (f"cpu.small: GEMM of {t.flops:.3g} FLOPs (with padded slots) exceeds "
                       f"{MAX_GEMM_FLOPS:.3g}")
                continue
            if t.nchunks > 1 and t.chunk < _MIN_CHUNK:
                why = (f"cpu.small: a GEMM of {t.R}x{t.depth} weights per group runs on one "
                       f"thread only for fewer than {_MIN_CHUNK} columns")
                continue
            if ws > limit:
                why = f"cpu.small: workspace of {ws} bytes exceeds {limit}"
                continue
            est = t.seconds(work.itemsize, work.kind == "c")
            if best is None or est < best[0]:
                best = (est, ws, grid)
    if best is None:
        result = why
    else:
        est, ws, grid = best
        result = SmallPlan(tables(params, grid), est, ws)
    if len(_PLANS) >= 1024:
        _PLANS.clear()
    _PLANS[key] = result
    return result
