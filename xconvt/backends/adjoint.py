"""conv3d and the weight gradient by im2col and GEMM, for NumPy and CuPy.

Both operations read the output-side volume ``y`` of the transposed
convolution (``params``) at the same places: with ``ypad[m] = y[m - p]`` (zero
outside ``[0, O)``), per spatial axis::

    conv3d        x[c, i]    = sum_{o, k} w[c, o, k] * ypad[o, i*s + k*d]
    weight_grad   dw[c, o, k] = sum_{n, i} x[n, c, i] * ypad[n, o, i*s + k*d]

(channels within a group).  Per batch element, chunk of groups and chunk of
``nI`` input depth planes ``[i0, i0 + nI)``, a partial im2col holds the H and W
taps with the depth axis split by stride phase::

    P[r, (o, uh, uw), q, ih, iw] = ypad[o, (i0 + q)*s_d + r, ih*s_h + uh*d_h, iw*s_w + uw*d_w]

so that depth tap ``kd`` (phase ``r = kd*d_d mod s_d``, offset
``q0 = kd*d_d div s_d``) reads the plain 2-D block ``A_kd = P[r, :, q0:q0+nI]``,
``(Cog*kH*kW, nI*Ih*Iw)`` with unit column stride: no copy per tap, and::

    conv3d        X (Cig, nI*Ih*Iw)  = sum_kd W[kd] (Cig, Cog*kH*kW) @ A_kd
    weight_grad   dW[kd] (Cig, Cog*kH*kW) += X (Cig, nI*Ih*Iw) @ A_kd^T

one GEMM per depth tap (batched over the chunk's groups), deep in the pixel
dimension for the weight gradient.  The weight gradient keeps one partial sum
per chunk and adds them in a fixed order at the end: the result does not
depend on timing or threads.  On NumPy the im2col is ``s_d*kH*kW`` strided
slice copies (zeros where the window leaves ``y``); on CuPy one elementwise
kernel writes it.  Chunks are sized so that ``P`` and the accumulator stay
within ``min(get_memory_budget(), 16 MiB)`` (split over the worker threads) on
the CPU (cache locality) and the budget on the GPU; one depth plane of one
group of one batch element is always processed.  CPU threading: see
:class:`_Run`.  float16 is computed in float32 and rounded once.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import is_cupy_array
from numpy.lib.stride_tricks import as_strided

from .._plan import FunctionPlan

__all__ = ["conv3d", "plan_conv3d", "plan_weight_grad", "weight_grad"]

_CPU_CHUNK_BYTES = 16 * 2**20
"""Soft workspace target of a CPU chunk (the memory budget is the hard limit)."""

_BLAS_ONE_THREAD_MNK = 2 * 65536 * 4
"""``M*N*K`` below which OpenBLAS runs a GEMM on one thread (as in backends.cpu)."""

_BLAS_ONE_THREAD_GEMV = 2304 * 4
"""``M*N`` below which OpenBLAS runs a matrix-vector product on one thread; a GEMM
with one row is forwarded to it (``GEMM_GEMV_FORWARD``)."""

_MIN_BLOCK = 32
"""Fewest columns of a CPU GEMM block (wide layers then let BLAS thread it)."""

_CHUNKS_PER_WORKER = 4
"""Chunks per CPU worker thread to aim for, so that the load balances."""

# Seconds per unit, fitted to float32 timings on the 2-core bench machine
# (bench/NOTES.md, "conv3d and weight gradient"): GEMM FLOPs at two BLAS
# threads, im2col elements copied, accumulator/output elements passed, calls.
_CPU = {"flop": 1.0 / 60e9, "thin_flop": 1.0 / 25e9, "copy": 0.7e-9, "pass": 0.6e-9,
        "call": 6e-6}
# On the GPU (H100/H200 class): cuBLAS float32 FLOPs, bytes moved, launches,
# and the factor the whole estimate is multiplied by: the H200 runs of
# 2026-12-02 (bench/results/grad_gpu_h200_2026-12-02*.txt) took 2.4x to 23x
# (median 5x) the estimate of the first three terms, on both operations.
_GPU = {"flop": 1.0 / 25e12, "thin_flop": 1.0 / 4e12, "byte": 1.0 / 2.0e12, "call": 8e-6,
        "measured": 5.0}


class _Axes:
    """Per-axis geometry of the im2col (see the module docstring)."""

    def __init__(self, params):
        self.params = params
        self.I = params.in_size
        self.O = params.out_size
        self.K = params.kernel
        self.s = params.stride
        self.p = params.padding
        self.d = params.dilation
        self.G = params.groups
        self.cig = params.in_channels_per_group
        self.cog = params.out_channels_per_group
        self.R = self.cog * self.K[1] * self.K[2]
        self.hw = self.I[1] * self.I[2]
        self.qmax = (self.K[0] - 1) * self.d[0] // self.s[0]

    def p_elems(self, ni, gc):
        """Elements of the im2col of ``ni`` depth planes of ``gc`` groups."""
        return gc * self.s[0] * self.R * (ni + self.qmax) * self.hw

    def chunk_planes(self, limit, itemsize, gc):
        """Depth planes per chunk of ``gc`` groups so that P and the accumulator fit."""
        per = gc * (self.s[0] * self.R + self.cig) * self.hw * itemsize
        fixed = gc * self.s[0] * self.R * self.qmax * self.hw * itemsize
        return max(1, min(self.I[0], (limit - fixed) // per))

    def chunking(self, limit, itemsize):
        """``(groups, planes)`` per chunk: every group where the chunk still
        spans ``4*qmax`` planes (depth halos under 25%), else fewer groups."""
        want = min(self.I[0], max(1, 4 * self.qmax))
        gc = self.G
        while gc > 1 and self.chunk_planes(limit, itemsize, gc) < want:
            gc = -(-gc // 2)
        return gc, self.chunk_planes(limit, itemsize, gc)

    def gemm_flops(self):
        """FLOPs of the GEMMs: every tap, including those on padding."""
        p = self.params
        return 2 * p.batch * p.in_channels * self.R * self.K[0] * math.prod(self.I)

    def thin(self):
        """Whether the GEMMs are matrix-vector-like (few rows)."""
        return min(self.cig, self.R) < 8


def _valid(n, s, off, size):
    """``[lo, hi)`` of ``j < n`` with ``0 <= j*s + off < size``."""
    lo = max(0, -(off // s)) if off < 0 else 0
    hi = min(n, (size - 1 - off) // s + 1) if size - 1 - off >= 0 else 0
    return lo, max(lo, hi)


def _im2col_numpy(ax, y, P, i0, ni):
    """Fill ``P`` (``(G, s_d, Cog, kH, kW, nq, Ih, Iw)``) from ``y`` (``(G*Cog, O...)``)."""
    y = y.reshape((P.shape[0], ax.cog) + ax.O)
    nq = ni + ax.qmax
    Ih, Iw = ax.I[1], ax.I[2]
    for r in range(ax.s[0]):
        offd = i0 * ax.s[0] + r - ax.p[0]
        q0, q1 = _valid(nq, ax.s[0], offd, ax.O[0])
        for uh in range(ax.K[1]):
            offh = uh * ax.d[1] - ax.p[1]
            h0, h1 = _valid(Ih, ax.s[1], offh, ax.O[1])
            for uw in range(ax.K[2]):
                offw = uw * ax.d[2] - ax.p[2]
                w0, w1 = _valid(Iw, ax.s[2], offw, ax.O[2])
                t = P[:, r, :, uh, uw]
                if q1 > q0 and h1 > h0 and w1 > w0:
                    t[..., q0:q1, h0:h1, w0:w1] = y[
                        ..., 
                        q0 * ax.s[0] + offd:(q1 - 1) * ax.s[0] + offd + 1:ax.s[0],
                        h0 * ax.s[1] + offh:(h1 - 1) * ax.s[1] + offh + 1:ax.s[1],
                        w0 * ax.s[2] + offw:(w1 - 1) * ax.s[2] + offw + 1:ax.s[2],
                    ]
                    _zero_outside(t, q0, q1, h0, h1, w0, w1)
                else:
                    t[...] = 0


def _zero_outside(t, q0, q1, h0, h1, w0, w1):
    """Zero ``t[..., q, h, w]`` outside the box ``[q0, q1) x [h0, h1) x [w0, w1)``."""
    t[..., :q0, :, :] = 0
    t[..., q1:, :, :] = 0
    t[..., q0:q1, :h0, :] = 0
    t[..., q0:q1, h1:, :] = 0
    t[..., q0:q1, h0:h1, :w0] = 0
    t[..., q0:q1, h0:h1, w1:] = 0


_IM2COL_CUDA = r"""
    // i indexes P (G, s_d, Cog, kH, kW, nq, Ih, Iw); y is (G*Cog, Od, Oh, Ow)
    long long t = i;
    int iw = t % Iw; t /= Iw;
    int ih = t % Ih; t /= Ih;
    int q = t % nq; t /= nq;
    int uw = t % kW; t /= kW;
    int uh = t % kH; t /= kH;
    int o = t % Cog; t /= Cog;
    int r = t % sd; t /= sd;
    long long c = t * Cog + o;
    long long md = (long long)(i0 + q) * sd + r - pd;
    long long mh = (long long)ih * sh + uh * dh - ph;
    long long mw = (long long)iw * sw + uw * dw - pw;
    if (md < 0 || md >= Od || mh < 0 || mh >= Oh || mw < 0 || mw >= Ow) {
        out = 0;
    } else {
        out = y[((c * Od + md) * Oh + mh) * Ow + mw];
    }
"""


def _im2col_kernel():
    import cupy

    return cupy.ElementwiseKernel(
        "raw T y, int32 Iw, int32 Ih, int32 nq, int32 kW, int32 kH, int32 Cog, "
        "int32 i0, int32 sd, int32 sh, int32 sw, int32 dh, int32 dw, "
        "int32 pd, int32 ph, int32 pw, int32 Od, int32 Oh, int32 Ow",
        "T out", _IM2COL_CUDA, "xconvt_adjoint_im2col")


_KERNELS = {}


def _im2col_cupy(ax, y, P, i0, ni):
    kern = _KERNELS.get("im2col")
    if kern is None:
        kern = _KERNELS["im2col"] = _im2col_kernel()
    y = y if y.flags.c_contiguous else y.copy()
    # P's depth extent is the allocated one (the last chunk may be shorter)
    kern(y, ax.I[2], ax.I[1], P.shape[5], ax.K[2], ax.K[1], ax.cog, i0,
         ax.s[0], ax.s[1], ax.s[2], ax.d[1], ax.d[2], ax.p[0], ax.p[1], ax.p[2],
         ax.O[0], ax.O[1], ax.O[2], P)


def _cupy():
    import cupy

    return cupy


def _work_dtype(xp, dtype):
    return xp.dtype(xp.float32) if dtype == xp.float16 else dtype


class _Run:
    """Library, work dtype, geometry, chunking, workers and column blocks of a call.

    A chunk is one batch element, ``gc`` groups (all of them unless that
    would leave fewer than ``4*qmax`` depth planes per chunk) and ``ni`` input
    depth planes; its GEMMs are batched over the groups.  On the CPU, ``workers`` threads
    (:func:`xconvt.backends.cpu.available_cpus`, at most 8) take chunks as
    they finish, each with its own im2col buffer, and every GEMM is cut into
    column blocks small enough (``M*N*K``, or ``N*K`` for one-row GEMMs,
    under OpenBLAS's threading thresholds) that BLAS runs it on the calling
    thread: BLAS threads synchronize on every call, which on a busy machine
    costs up to a scheduler time slice per call.  On the GPU one thread issues
    whole batched GEMMs (cuBLAS).
    """

    def __init__(self, params, a, limit):
        from .cpu import common as cpu_common

        self.gpu = is_cupy_array(a)
        self.xp = xp = _cupy() if self.gpu else np
        self.dtype = _work_dtype(xp, a.dtype)
        self.ax = ax = _Axes(params)
        if limit is None:
            from .._config import get_memory_budget

            limit = get_memory_budget() if self.gpu else min(get_memory_budget(),
                                                              _CPU_CHUNK_BYTES)
        self.workers = 1 if self.gpu else cpu_common.cpu_count()
        itemsize = xp.dtype(self.dtype).itemsize
        gc, ni = ax.chunking(max(1, limit // self.workers), itemsize)
        outer = params.batch * -(-ax.G // gc)
        if self.workers > 1 and outer < _CHUNKS_PER_WORKER * self.workers:
            # enough chunks to balance the workers, halos permitting
            want = -(-_CHUNKS_PER_WORKER * self.workers // outer)
            ni = min(ni, max(-(-ax.I[0] // want), 4 * ax.qmax, 1))
        self.gc, self.ni = gc, ni
        self.items = [(k, n, g0, i0) for k, (n, g0, i0) in enumerate(
            (n, g0, i0) for n in range(params.batch) for g0 in range(0, ax.G, gc)
            for i0 in range(0, ax.I[0], ni))]
        self.im2col = _im2col_cupy if self.gpu else _im2col_numpy
        one = _BLAS_ONE_THREAD_GEMV if ax.cig == 1 else _BLAS_ONE_THREAD_MNK
        self.block = None if self.gpu else max(_MIN_BLOCK, (one - 1) // (ax.cig * ax.R))

    def buffers(self):
        """One im2col buffer ``(gc, s_d, Cog, kH, kW, nq, Ih, Iw)`` per worker."""
        ax, xp = self.ax, self.xp
        shape = (self.gc, ax.s[0], ax.cog, ax.K[1], ax.K[2], self.ni + ax.qmax) + ax.I[1:]
        return [xp.empty(shape, self.dtype) for _ in range(self.workers)]

    def each(self, fn):
        """``fn(worker, item)`` for every chunk, on the workers."""
        if self.workers == 1 or len(self.items) == 1:
            for item in self.items:
                fn(0, item)
            return
        from .cpu import common as cpu_common

        cpu_common.dynamic(min(self.workers, len(self.items)), self.items, fn)

    def _blocks(self, a, rows):
        """``a`` (``(G, rows, n)``) as ``(G, n // blk, rows, blk)`` column blocks."""
        blk, it = self.block, a.itemsize
        return as_strided(a, (a.shape[0], a.shape[2] // blk, rows, blk),
                          (a.strides[0], blk * it, a.strides[1], it))

    def matmul(self, a, b, out):
        """``out[g] = a[g] @ b[g]`` (``(G, M, K) @ (G, K, n)``), in column blocks on the CPU."""
        xp, blk = self.xp, self.block
        n = b.shape[2]
        if self.gpu:
            if out.flags.c_contiguous:
                return xp.matmul(a, b, out=out)
            out[...] = xp.matmul(a, b)
            return out
        if n <= blk:
            return xp.matmul(a, b, out=out)
        full = n // blk * blk
        xp.matmul(a[:, None], self._blocks(b, b.shape[1]), out=self._blocks(out, out.shape[1]))
        if full < n:
            xp.matmul(a, b[..., full:], out=out[..., full:])
        return out

    def matmul_t(self, a, b):
        """``a[g] @ b[g].T`` (``(G, M, n)``, ``(G, R, n)``), column blocks summed in order."""
        xp, blk = self.xp, self.block
        n = a.shape[2]
        if self.gpu or n <= blk:
            return xp.matmul(a, xp.swapaxes(b, -1, -2))
        full = n // blk * blk
        out = xp.matmul(self._blocks(a, a.shape[1]),
                        xp.swapaxes(self._blocks(b, b.shape[1]), -1, -2)).sum(axis=1)
        if full < n:
            out += xp.matmul(a[..., full:], xp.swapaxes(b[..., full:], -1, -2))
        return out


def _depth_blocks(P, ax, ni, nic):
    """Per depth tap, ``A_kd`` as a view ``(gc, R, nic*Ih*Iw)`` of ``P``."""
    nq = ni + ax.qmax
    Pr = P.reshape(P.shape[0], ax.s[0], ax.R, nq * ax.hw)
    blocks = []
    for kd in range(ax.K[0]):
        r, q0 = (kd * ax.d[0]) % ax.s[0], (kd * ax.d[0]) // ax.s[0]
        blocks.append(Pr[:, r, :, q0 * ax.hw:(q0 + nic) * ax.hw])
    return blocks


def _run_conv3d(params, y, w, b, limit=None):
    run = _Run(params, y, limit)
    xp, dtype, ax, ni = run.xp, run.dtype, run.ax, run.ni
    G, cig, cog, hw = ax.G, ax.cig, ax.cog, ax.hw
    y = xp.ascontiguousarray(y.astype(dtype, copy=False))
    # W[kd, g] : (Cig, Cog*kH*kW)
    wk = w.astype(dtype, copy=False).reshape((G, cig, cog) + ax.K)
    wk = xp.ascontiguousarray(wk.transpose(3, 0, 1, 2, 4, 5)).reshape(ax.K[0], G, cig, ax.R)
    Id = ax.I[0]
    x = xp.empty((params.batch, G, cig, Id * hw), dtype)
    Ps = run.buffers()
    tmps = [xp.empty((run.gc, cig, ni * hw), dtype) if ax.K[0] > 1 else None
            for _ in range(run.workers)]

    def chunk(worker, item):
        _, n, g0, i0 = item
        nic, gs = min(ni, Id - i0), slice(g0, min(G, g0 + run.gc))
        P = Ps[worker][:gs.stop - g0]
        run.im2col(ax, y[n, g0 * cog:gs.stop * cog], P, i0, nic)
        acc = x[n, gs, :, i0 * hw:(i0 + nic) * hw]
        blocks = _depth_blocks(P, ax, ni, nic)
        run.matmul(wk[0, gs], blocks[0], acc)
        for kd in range(1, ax.K[0]):
            t = tmps[worker][:gs.stop - g0, :, :nic * hw]
            run.matmul(wk[kd, gs], blocks[kd], t)
            acc += t

    run.each(chunk)
    x = x.reshape(params.input_shape)
    if b is not None:
        x += b.astype(dtype, copy=False).reshape(1, -1, 1, 1, 1)
    return x


def _run_weight_grad(params, x, gy, limit=None):
    run = _Run(params, x, limit)
    xp, dtype, ax, ni = run.xp, run.dtype, run.ax, run.ni
    G, cig, cog, hw = ax.G, ax.cig, ax.cog, ax.hw
    x = xp.ascontiguousarray(x.astype(dtype, copy=False))
    gy = xp.ascontiguousarray(gy.astype(dtype, copy=False))
    Id = ax.I[0]
    xr = x.reshape(params.batch, G, cig, Id * hw)
    Ps = run.buffers()
    # one partial sum per batch element and depth chunk, added in chunk order
    # at the end (deterministic)
    parts = xp.empty((params.batch, -(-Id // ni), ax.K[0], G, cig, ax.R), dtype)

    def chunk(worker, item):
        _, n, g0, i0 = item
        nic, gs = min(ni, Id - i0), slice(g0, min(G, g0 + run.gc))
        P = Ps[worker][:gs.stop - g0]
        run.im2col(ax, gy[n, g0 * cog:gs.stop * cog], P, i0, nic)
        xm = xr[n, gs, :, i0 * hw:(i0 + nic) * hw]
        for kd, a in enumerate(_depth_blocks(P, ax, ni, nic)):
            parts[n, i0 // ni, kd, gs] = run.matmul_t(xm, a)

    run.each(chunk)
    acc = parts.sum(axis=(0, 1))                               # (kD, G, Cig, R)
    dw = acc.reshape((ax.K[0], G, cig, cog) + ax.K[1:]).transpose(1, 2, 3, 0, 4, 5)
    return xp.ascontiguousarray(dw).reshape(params.weight_shape)


def conv3d(params, y, w, b=None, limit=None):
    """conv3d (the adjoint of ``params``' transposed convolution) by GEMM.

    Parameters
    ----------
    params : ConvParams
        The transposed convolution (see :func:`xconvt._params.conv3d_params`).
    y : ndarray, shape ``params.batched_output_shape``
    w : ndarray, shape ``params.weight_shape``
    b : ndarray, shape ``(params.in_channels,)``, or None
    limit : int, optional
        Workspace bytes per chunk (default: from the memory budget).

    Returns
    -------
    ndarray, shape ``params.input_shape``, ``y``'s dtype and library.
    """
    out = _run_conv3d(params, y, w, b, limit)
    return out if out.dtype == y.dtype else out.astype(y.dtype)


def weight_grad(params, x, gy, limit=None):
    """Weight gradient of ``params``' transposed convolution by GEMM.

    Returns ``dw[c, o, k] = sum_{n, i} x[n, c, i] * gy[n, o, i*s - p + k*d]``
    (channels within a group), shape ``params.weight_shape``, ``x``'s dtype.
    """
    out = _run_weight_grad(params, x, gy, limit)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


# ---------------------------------------------------------------- planners
def _estimate(problem, ax):
    """Seconds: GEMM FLOPs, im2col copies, accumulator passes, calls."""
    params = problem.params
    wide = 2.0 if problem.dtype in ("float64", "complex128") else 1.0
    cplx = 4.0 if problem.dtype.startswith("complex") else 1.0
    itemsize = 8 if wide > 1 else 4
    gpu = problem.device.kind == "cuda"
    limit = problem.budget if gpu else min(problem.budget, _CPU_CHUNK_BYTES)
    gc, ni = ax.chunking(limit, itemsize)
    chunks = params.batch * -(-ax.G // gc) * -(-ax.I[0] // ni)
    copied = chunks * ax.p_elems(ni, gc)
    passes = params.batch * params.in_channels * math.prod(ax.I) * ax.K[0]
    if problem.op == "weight_grad":
        passes = chunks * ax.K[0] * ax.G * ax.cig * ax.R
    c = _GPU if gpu else _CPU
    rate = c["thin_flop"] if ax.thin() else c["flop"]
    t = cplx * wide * ax.gemm_flops() * rate
    if gpu:
        t += wide * (copied + passes) * 4 * c["byte"] + chunks * (1 + ax.K[0]) * c["call"]
        t *= c["measured"]
    else:
        t += wide * (copied * c["copy"] + passes * c["pass"])
        t += chunks * (ax.s[0] * ax.K[1] * ax.K[2] + 2 * ax.K[0]) * c["call"]
    workspace = (ax.p_elems(ni, gc) + gc * ax.cig * ni * ax.hw) * itemsize
    return t, workspace


def _planner(problem, op, fn):
    if problem.op != op:
        return f"computes {op}, not {problem.op}"
    if problem.dtype in ("bfloat16",):
        return "bfloat16 is not supported by the GEMM formulation"
    ax = _Axes(problem.params)
    t, workspace = _estimate(problem, ax)
    name = ("cuda" if problem.device.kind == "cuda" else "cpu") + f".gemm_{op}"
    budget = problem.budget

    def run(*operands):
        limit = budget if problem.device.kind == "cuda" else min(budget, _CPU_CHUNK_BYTES)
        return fn(problem.params, *operands, limit=limit)

    return FunctionPlan(name, "direct", t, run, workspace)


def plan_conv3d(problem):
    """Planner: conv3d by per-depth-tap GEMMs on a partial im2col."""
    return _planner(problem, "conv3d", conv3d)


def plan_weight_grad(problem):
    """Planner: the weight gradient by per-depth-tap GEMMs on a partial im2col."""
    return _planner(problem, "weight_grad", weight_grad)
