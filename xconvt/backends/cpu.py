"""Direct transposed convolution on the CPU: stride phases, im2col and BLAS.

Every output voxel is a *gather*: along each axis, output ``first + s*j`` of a
stride phase sums ``x[base + j + u*step] * w[taps[u]]`` (see
:mod:`xconvt._params`), so a stride-``s`` transposed convolution is ``s^3``
stride-1 correlations of the un-stuffed, zero-padded input with sub-kernels,
with no multiply-by-zero work.  Each is made BLAS-bound by folding channels
and some taps into one GEMM operand, of which the depth taps take slices (a
range of its columns or rows, which BLAS takes without a copy).
Two formulations share the phase driver and the workspace plan; a cost model
picks one per call.

Channel GEMM (many channels)
    Per ``(D, H, W)`` phase with ``Td, Th, Tw`` taps, a partial im2col
    ``P[g, (c, uh, uw), (dd, jh, jw)]`` holds the ``Th*Tw`` shifted H/W
    windows of the padded input (one strided copy, shared by the depth
    phases; ``dd`` covers the chunk plus the depth taps' reach).  One GEMM
    per ``(H, W)`` unit stacks the weight blocks of every depth phase and tap,
    ``Cog`` rows each, and runs over every plane::

        Y[g] = Wst[g] (sum(Td)*Cog, Cig*Th*Tw)  @  P[g]

    (taller than one block per tap, which OpenBLAS runs faster: same_k3s1
    7.2 -> 6.0 ms on two cores), and each phase's output plane ``jd`` sums
    its taps' windows, ``Y[g][block (pd, ud), planes jd + ud*step_d]``, in
    place in ``Y``; that is written, with the bias, into the strided phase
    view of the output.  Groups are the batch dimension of the matmul.  The per-plane column grid
    is the exact ``(Oh, Ow)``, whole padded rows ``(Oh, Wp)`` or whole padded
    planes ``(Hp, Wp)``: padded grids compute a few junk columns (never
    written) but copy longer runs, and for a phase with one H and one W tap
    the padded-plane grid needs no copy at all: ``P`` is the input slab.

    That is the *channel-major* layout.  The *plane-major* one stores the
    slab and ``P`` plane by plane, ``P[g, dd, (c, uh, uw), (jh, jw)]``, so that
    with ``step_d == 1`` the rows an output plane needs, planes ``jd`` to
    ``jd + Td - 1``, are one matrix with a uniform row stride, and::

        acc[g, jd] = Wp[g] (Cog, Td*Cig*Th*Tw)  @  P[g, jd:jd + Td]

    folds the depth taps into the product: no accumulation passes, a deeper
    GEMM, and with unit H and W strides and the exact grid ``acc`` *is* the
    output plane (written in place).  One matmul call batches the GEMMs of all
    planes, groups and batch elements, but BLAS synchronizes its threads on
    each, which on a busy machine costs up to a scheduler time slice (and was
    no faster than channel-major on an idle one), so plane-major is used when
    BLAS runs them on the calling thread (``M*N*K`` under OpenBLAS's
    threshold), and then chunks go to worker threads (below).  Phases are
    computed and written a block of output planes at a time (``_BLOCK_BYTES``
    of accumulators), so that the strided W-phase writes meet in cache.

Toeplitz-W (few channels)
    With few output channels per group the channel GEMM has ``Cout/groups``
    rows and degenerates to a matrix-vector product.  Instead the whole W
    axis, all W phases at once, becomes a banded matrix: output blocks of
    ``Bw = m*s_w`` columns read windows of ``width`` input columns, and per
    H and D phase::

        C[(jd, jh, blk), (o, t)] = sum_ud  P[(jd + ud*step_d, jh, blk), (c, uh, q)] @ T[ud]

    with ``P`` the im2col of H taps and overlapping W windows and ``T[ud]``
    the ``(Cig*Th*width, Cog*Bw)`` banded weight, zero where no tap joins
    input ``q`` to output ``t``.  It spends about ``width*s_w/kW`` times the
    useful multiply-adds, but the GEMM is ``Cog*Bw`` wide and output rows
    are written whole, with no W interleave: it wins by far for depthwise
    and single-channel volumes.

Pure upsampling
    ``kernel == stride`` with no padding, dilation or output padding is one
    GEMM ``(D*H*W, Cig) @ (Cig, Cog*kD*kH*kW)`` per group and chunk of batch
    elements or input depth, then one reshuffle of the non-overlapping blocks
    that moves the ``kW`` W taps of a block as one item.

Choosing
    ``_choose`` estimates every candidate (three channel-GEMM grids,
    Toeplitz-W with ``m = 1, 2, 4, ..., 32``) in nanoseconds as GEMM time,
    ``flops * (0.0087 * (k + 64)/k + 0.0244/s)`` with ``k`` the inner
    dimension and ``s`` the thin outer one (shallow products are slow, thin
    ones are bound by reading the wide operand), plus ``0.72`` per element
    and ``8.2`` per contiguous run copied into the im2col, plus ``2.94`` per
    run of the output write.  The constants are a non-negative least-squares
    fit to single-thread timings of 19 configurations (the ten benchmark
    cases and nine others); with two BLAS threads the pick is on average
    within 2% of the fastest candidate, 11% at worst.  A plane-major channel
    GEMM run by ``n`` worker threads is credited ``1 + 0.6*(n - 1)`` times
    faster.  Choices are cached per parameters, dtype, budget and CPU count.

Workspace
    The padded input slab, the im2col buffer and the accumulators are
    allocated once per call and reused for every chunk.  Chunks cover batch
    elements, groups and ``dc`` rows of the depth phases (which need
    ``dc + span`` input planes, ``span`` being the reach of the depth taps),
    sized so that the workspace fits ``min(get_memory_budget(), 16 MiB)``:
    the memory budget is a hard limit, except that one depth row of one
    group of one batch element is always processed, even when that alone
    exceeds a tiny budget (plane-major: ``min(budget/workers, 8 MiB)`` per
    worker, and at least four chunks per worker where batch, groups or depth
    allow).  Depth chunks of at least ``4*span`` rows are
    preferred (halo copies under 25%), splitting groups first.  The 16 MiB
    soft target trades cache locality (4 MiB was fastest on one thread)
    against fewer, larger BLAS calls, which matter with threaded BLAS: every
    call synchronizes its threads, and on a busy machine 4 MiB chunks made
    stride-2 cases several times slower.  The channel GEMM writes all phases
    of about 512 KiB of output at a time, so that the stride-interleaved
    writes of neighbouring W phases meet in cache.  The pure-upsampling
    column buffer is chunked over batch and input depth to 2 MiB (it is
    reshuffled right away).  The slab, im2col and accumulator buffers are kept
    per calling thread for the next call (while at most twice what a call
    needs): allocating and freeing megabytes per call made the C allocator
    return the pages to the system and fault them back in, zeroed, on every
    call, which cost up to as much as the convolution in small cases.

Precision, non-finite values, threads
    float16 is computed in float32 and rounded once at the end; complex
    types use complex BLAS.  Non-finite values follow PyTorch, which only
    multiplies existing inputs by taps: with an inf or NaN in the weight a
    slower per-tap scatter is used (zero padding times inf would be NaN),
    and with one in the input Toeplitz-W (zero band entries) is skipped; no
    floating-point warnings are raised.  Parallelism is mostly BLAS's own:
    copies are memory-bound or, when strided, would compete with BLAS threads
    that keep spinning between calls.  The exception is a plane-major channel
    GEMM whose GEMMs BLAS runs on the calling thread: its chunks (slab copy,
    im2col, GEMMs, writes) go to ``min(CPUs, 8)`` Python threads, each with its
    own workspace, taking the next chunk when done (NumPy releases the GIL in
    matmul and copies).  Right after a threaded BLAS call elsewhere, the BLAS
    threads still spinning take a CPU from them and such a call runs about
    as fast as the single-threaded channel-major one did; otherwise about
    twice as fast.

Speed
    float32, two cores, ``torch.set_num_threads(2)``, NumPy's OpenBLAS with
    two threads; one process (``python -m bench cpu --algorithms direct``):
    per case PyTorch's and then our median after a warm-up (timings on a
    shared machine; two runs, grouped_g4 varied 5.8-8.2 ms)::

        case (N, Cin, Cout, input, kernel, stride, padding, output_padding, groups)
                                                         ours ms  torch ms  torch/ours
        unet_k2s2    1, 64, 32, 32^3, 2, 2, 0, 0, 1        19.2     46.3     2.41
        vnet_k3s2    1, 32, 16, 32^3, 3, 2, 1, 1, 1        18.2     18.9     1.03
        same_k3s1    1, 16, 16, 32^3, 3, 1, 1, 0, 1         7.8     28.4     3.64
        depthwise_k7 1, 32, 32, 32^3, 7, 1, 3, 0, 32       28.3    359.4    12.70
        grouped_g4   1, 32, 32, 24^3, 3, 2, 1, 1, 4         5.8      2.2     0.38
        imaging_c1   1, 1, 1, 64^3, 5, 2, 2, 1, 1           6.0     12.8     2.12
        seed_small   2, 16, 33, (6,20,30), (3,5,2),
                     (2,1,1), (0,4,2), 0, 1                 2.7      1.2     0.45
        sweep_k3     1, 4, 4, 32^3, 3, 1, 1, 0, 1           1.1      4.5     3.91
        sweep_k5     1, 4, 4, 32^3, 5, 1, 2, 0, 1           3.3      6.9     2.06
        sweep_k7     1, 4, 4, 32^3, 7, 1, 3, 0, 1           6.1     17.3     2.82
        geometric mean of torch/ours                                          1.98

    PyTorch's CPU kernels (oneDNN in this build) still win the two small
    cases.  grouped_g4 (8 channels per group, all phases stride 2) spends
    its time in the GEMMs (~3 ms of one thread: 8-row products run at about
    50 GFLOP/s) and in the stride-2 interleaving writes (~4 ms of one thread:
    NumPy writes runs of 24 elements at stride 2), both split over the two
    threads; seed_small is GEMM-bound (178 MFLOP at ~125 GFLOP/s with two
    BLAS threads) where oneDNN reaches ~150.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._config import get_memory_budget

__all__ = ["direct"]

_CHUNK_BYTES = 16 * 2**20
"""Soft workspace target of a chunk (the memory budget is the hard limit)."""

_UPSAMPLE_CHUNK_BYTES = 2 * 2**20
"""Soft target of the pure-upsampling column buffer, reshuffled while in cache."""

_HALO = 4
"""Preferred depth chunk, in multiples of the depth taps' reach."""

_WRITE_BLOCK_BYTES = 512 * 2**10
"""Output the channel GEMM writes per block of depth rows (all phases, in cache)."""

_BLOCK_BYTES = 2 * 2**20
"""Accumulators of the plane-major channel GEMM per worker and block of output planes."""

_PLANE_CHUNK_BYTES = 8 * 2**20
"""Soft workspace target of a plane-major channel GEMM chunk (BLAS calls are small)."""

_BLAS_ONE_THREAD_MNK = 2 * 65536 * 4
"""``M*N*K`` below which OpenBLAS runs a GEMM on one thread (its default threshold)."""

_WORKER_GAIN = 0.6
"""Speed-up per extra worker thread that the cost model credits (measured 0.7-0.9)."""

_CHUNKS_PER_WORKER = 4
"""Chunks per worker thread to aim for, so that the load balances."""

_MAX_WORKERS = 8
"""Most threads that share the small GEMMs and copies of a chunk."""

_PACK_INDEX_MAX = 1 << 20
"""Largest weight (elements) whose packing indices are cached per geometry."""


def direct(params, x, w, b):
    """Transposed convolution of ``x`` by ``w`` plus ``b`` (see the module docstring).

    Parameters
    ----------
    params : ConvParams
        Validated description of the convolution.
    x : numpy.ndarray, shape ``params.input_shape``
        Batched input, any strides.
    w : numpy.ndarray, shape ``params.weight_shape``
    b : numpy.ndarray, shape ``(params.out_channels,)``, or None

    Returns
    -------
    numpy.ndarray
        A new C-contiguous array of ``params.batched_output_shape`` with
        ``x.dtype``.
    """
    small = _small_plan(params, x.dtype)
    if small is not None:
        return small(x, w, b)
    dtype = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    out = np.empty(params.batched_output_shape, dtype)
    w = w.astype(dtype, copy=False)
    b = None if b is None else b.astype(dtype, copy=False)
    with np.errstate(all="ignore"):  # inf/NaN propagate silently, as in PyTorch
        if params.is_pure_upsample:
            _upsample(params, x, w, b, out)
        elif not np.isfinite(w).all():
            _scatter(params, x, w, b, out)
        else:
            geo, form = _formulation(params, out.itemsize)
            if form.covers_w_gaps and not all_finite(np, x):
                form = _ChannelGemm(geo, "exact")
            _phase_split(geo, x, w, b, out, form)
        return out if out.dtype == x.dtype else out.astype(x.dtype)


_CALL_NS = 80e3
"""Fixed cost of a call of the phase driver (workspace, chunks, Python, per-phase
and per-tap NumPy calls) that ``cost()`` leaves out, ns: measured minus
estimated time was 75-105 us on 1x1x4^3 k3, 1x2x8^3 k5 and 1x4x8^3 k5 g4
(Toeplitz-W, 2 cores, 2026-12-02)."""

_WORKERS_NS = 100e3
"""Extra fixed cost of handing chunks to worker threads, ns (measured 60-500 on
the same layers with the plane-major channel GEMM)."""

_SMALL = {}


def _small_plan(params, dtype):
    """The :mod:`.cpu_small` plan where it applies and its estimate beats the
    chosen formulation's (until the planner of issue 10 compares them)."""
    key = (params, dtype, get_memory_budget())
    plan = _SMALL.get(key, False)
    if plan is not False:
        return plan
    from . import cpu_small

    plan = cpu_small.plan_for(params, dtype.name, key[2])
    if not isinstance(plan, str):
        work = np.dtype(np.float32) if dtype == np.float16 else dtype
        scale = work.itemsize / 4 * (2 if work.kind == "c" else 1)
        if params.is_pure_upsample:
            cig = params.in_channels_per_group
            ns = (_gemm_ns(params.flops, cig, cig) + _copy_ns(
                params.batch * params.out_channels * np.prod(params.out_size), params.kernel[2]))
        else:
            form = _formulation(params, work.itemsize)[1]
            ns = form.cost() + (_WORKERS_NS if getattr(form, "workers", 1) > 1 else 0)
        plan = plan if plan.estimate < (ns * scale + _CALL_NS) * 1e-9 else None
    else:
        plan = None
    if len(_SMALL) >= 256:
        _SMALL.clear()
    _SMALL[key] = plan
    return plan


_POOL = None
_POOL_LOCK = threading.Lock()


_LOCAL = threading.local()


def _workspaces(count, size, dtype):
    """``count`` arrays of ``size`` elements, kept for this thread's next calls.

    Freeing and allocating megabytes per call makes the C allocator give the
    pages back to the system and fault them in again (zeroed) on the next call,
    which cost as much as the convolution itself in small cases; a buffer is
    kept while it is at most twice as large as needed, so that what a thread
    keeps stays within about twice one call's workspace.
    """
    cache = getattr(_LOCAL, "workspaces", None)
    if cache is None:
        cache = _LOCAL.workspaces = []
    del cache[count:]
    nbytes = max(1, size * dtype.itemsize)
    arrays = []
    for i in range(count):
        if i < len(cache) and nbytes <= cache[i].nbytes <= 2 * nbytes + 2**16:
            buf = cache[i]
        else:
            if i < len(cache):
                cache[i] = None  # freed before the replacement is allocated
            buf = np.empty(nbytes, np.uint8)
            if i < len(cache):
                cache[i] = buf
            else:
                cache.append(buf)
        arrays.append(buf[:size * dtype.itemsize].view(dtype))
    return arrays


def available_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _cpu_count():
    """CPUs for worker threads: :func:`available_cpus`, at most ``_MAX_WORKERS``."""
    return min(_MAX_WORKERS, available_cpus())


def _pool():
    """The shared worker threads (created again in a forked child, whose are gone)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(_MAX_WORKERS - 1, "xconvt-cpu"))
        return _POOL[1]


def _dynamic(nw, items, fn):
    """``fn(worker, item)`` for every item, on ``nw`` threads (this one is worker 0)
    that take the next item as they finish the last."""
    items, lock = iter(items), threading.Lock()

    def work(i):
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                return
            fn(i, item)

    futures = [_pool().submit(work, i) for i in range(1, nw)]
    try:
        work(0)
    finally:
        for fut in futures:
            fut.result()


def _workspace_limit(target=None):
    return min(get_memory_budget(), _CHUNK_BYTES if target is None else target)


def all_finite(xp, a):
    """Whether ``a`` holds no inf or NaN, in one pass: a finite sum implies it
    (an overflowing sum only sends finite data down an exact slow path).  float16
    sums in float32.  On CuPy this reads one flag back to the host."""
    wide = xp.float32 if a.dtype == xp.float16 else a.dtype
    return bool(xp.all(xp.isfinite(xp.sum(a, dtype=wide))))


# ------------------------------------------------------------- pure upsample
def _upsample(params, x, w, b, out):
    """kernel == stride: one GEMM per chunk of batch and input depth, then a reshuffle.

    The GEMM is ``(voxels, Cig) @ (Cig, Cog*kD*kH*kW)``: each voxel's output
    block has its ``kW`` W taps side by side, so the reshuffle moves runs of
    ``kW`` elements (viewed as one ``kW*itemsize``-byte item) instead of
    interleaving single elements.
    """
    N, G = params.batch, params.groups
    Cig, Cog = params.in_channels_per_group, params.out_channels_per_group
    kd, kh, kw = params.kernel
    D, H, W = params.in_size
    T = kd * kh * kw
    wm = w.reshape(G, Cig, Cog * T)  # columns (o, a, b, c)
    bias = None if b is None else np.repeat(b.reshape(G, 1, Cog), T, axis=2)
    run = np.dtype((np.void, kw * out.itemsize))
    outv = out.reshape(N, G, Cog, D, kd, H, kh, W * kw).view(run)
    plane = params.out_channels * T * H * W * out.itemsize
    limit = _workspace_limit(_UPSAMPLE_CHUNK_BYTES)
    dc = max(1, min(D, limit // plane))
    nc = max(1, min(N, limit // (plane * D))) if dc == D else 1
    cols = np.empty(nc * G * dc * H * W * Cog * T, out.dtype)
    for n0 in range(0, N, nc):
        n1 = min(N, n0 + nc)
        nn = n1 - n0
        xn = x[n0:n1].reshape(nn, G, Cig, D * H * W)
        for d0 in range(0, D, dc):
            d1 = min(D, d0 + dc)
            xs = xn[..., d0 * H * W:d1 * H * W].astype(out.dtype, copy=False)
            c = cols[:nn * G * (d1 - d0) * H * W * Cog * T].reshape(nn, G, -1, Cog * T)
            np.matmul(xs.transpose(0, 1, 3, 2), wm, out=c)
            if bias is not None:
                c += bias
            blocks = c.view(run).reshape(nn, G, d1 - d0, H, W, Cog, kd, kh)
            np.copyto(outv[n0:n1, :, :, d0:d1], blocks.transpose(0, 1, 5, 2, 6, 3, 7, 4))


# ------------------------------------------------------- non-finite weights
def _scatter(params, x, w, b, out):
    """Exact for inf/NaN weights: per tap, a channel GEMM added where its outputs land.

    The gather formulations multiply zero padding by every weight, and
    ``0 * inf`` is NaN where PyTorch, which only forms products of existing
    inputs, has an inf or a finite value; this path never touches padding.
    """
    N, G = params.batch, params.groups
    Cig, Cog = params.in_channels_per_group, params.out_channels_per_group
    D, H, W = params.in_size
    out6 = out.reshape(N, G, Cog, *params.out_size)
    out6[...] = 0 if b is None else b.reshape(1, G, Cog, 1, 1, 1)
    dc = max(1, min(D, _workspace_limit() // (params.out_channels * H * W * out.itemsize)))
    wt = w.reshape(G, Cig, Cog, -1).transpose(3, 0, 2, 1)  # (taps, G, Cog, Cig)

    def reach(axis, k, lo, hi):
        """Inputs ``[i0, i1)`` within ``[lo, hi)`` that tap ``k`` maps into the output."""
        s, p, d = params.stride[axis], params.padding[axis], params.dilation[axis]
        i0 = max(lo, -((k * d - p) // s))
        i1 = min(hi, (params.out_size[axis] - 1 + p - k * d) // s + 1)
        return slice(i0, i1), slice(i0 * s - p + k * d, (i1 - 1) * s - p + k * d + 1, s)

    for n in range(N):
        xn = x[n].reshape(G, Cig, D * H * W)
        for d0 in range(0, D, dc):
            d1 = min(D, d0 + dc)
            xs = xn[:, :, d0 * H * W:d1 * H * W].astype(out.dtype, copy=False)
            for t, (kd, kh, kw) in enumerate(np.ndindex(*params.kernel)):
                (id_, od), (ih, oh), (iw, ow) = (
                    reach(0, kd, d0, d1), reach(1, kh, 0, H), reach(2, kw, 0, W))
                if min(id_.stop - id_.start, ih.stop - ih.start, iw.stop - iw.start) <= 0:
                    continue
                cols = np.matmul(wt[t], xs).reshape(G, Cog, d1 - d0, H, W)
                out6[n, :, :, od, oh, ow] += cols[:, :, id_.start - d0:id_.stop - d0, ih, iw]


# ------------------------------------------------------------------ geometry
class _Geometry:
    """What every formulation needs, computed once per call as plain ints.

    ``pds``/``phs``/``pws`` are the D/H/W phases that have outputs and taps.
    A chunk of ``dc`` depth-phase rows starting at row ``j0`` reads input
    planes ``lo + j0`` to ``lo + j0 + dc + span - 1``.  The slab is padded
    to ``Hp`` rows, ``plo_h`` of them before the input.
    """

    def __init__(self, params):
        self.params = params
        self.N, self.G = params.batch, params.groups
        self.Cig, self.Cog = params.in_channels_per_group, params.out_channels_per_group
        self.in_size, self.out_size = params.in_size, params.out_size
        self.kernel, self.stride = params.kernel, params.stride
        self.padding, self.dilation = params.padding, params.dilation
        self.out_elems = self.N * params.out_channels * int(np.prod(self.out_size))
        axd, axh, axw = params.axis_phases
        self.pds = [pd for pd in axd if pd.count and pd.taps]
        self.phs = [ph for ph in axh if ph.count and ph.taps]
        self.pws = [pw for pw in axw if pw.count and pw.taps]
        self.rows = max((pd.count for pd in self.pds), default=0)
        self.lo = min((pd.base for pd in self.pds), default=0)
        self.span = max((pd.base + (len(pd.taps) - 1) * pd.step for pd in self.pds),
                        default=0) - self.lo
        H = self.in_size[1]
        # input planes the depth phases read (the rest of the slab is padding)
        self.in_planes = max(0, min(params.in_size[0], self.lo + self.rows + self.span)
                             - max(self.lo, 0))
        self.plo_h = max((ph.pad_lo for ph in self.phs), default=0)
        self.Hp = self.plo_h + H + max((ph.pad_hi(H) for ph in self.phs), default=0)
        self._packs = {}

    def packed_weights(self, w, key, pack):
        """``pack(wz)`` for ``wz`` the weight as ``(G, Cig, Cog, kD, kH, kW + 1)``,
        the extra W tap being zero, by one gather per call.

        ``pack`` slices and transposes ``wz`` into a dict of arrays; it is run
        once per geometry and ``key`` on an array of indices, whose results are
        cached (rearranging the weight step by step cost 0.2 ms a call on
        seed_small, 10% of the call).  Weights of more than ``_PACK_INDEX_MAX``
        elements, whose convolutions take far longer, are rearranged directly
        rather than keep megabytes of indices.
        """
        kd, kh, kw = self.kernel
        shape = (self.G, self.Cig, self.Cog, kd, kh, kw + 1)
        if w.size > _PACK_INDEX_MAX:
            wz = np.zeros(shape, w.dtype)
            wz[..., :-1] = w.reshape(shape[:-1] + (kw,))
            return {k: np.ascontiguousarray(v) for k, v in pack(wz).items()}
        idx = self._packs.get(key)
        if idx is None:
            wz = np.full(shape, w.size, np.int32)
            wz[..., :-1] = np.arange(w.size, dtype=np.int32).reshape(shape[:-1] + (kw,))
            idx = self._packs[key] = pack(wz)
        flat = np.empty(w.size + 1, w.dtype)
        flat[:-1] = w.reshape(-1)
        flat[-1] = 0
        return {k: flat[i] for k, i in idx.items()}


def _gemm_ns(flops, s, k):
    """Estimated nanoseconds for ``flops`` of GEMM with thin side ``s`` and depth ``k``."""
    return flops * (0.0087 * (k + 64) / k + 0.0244 / s)


def _copy_ns(elements, run):
    """Estimated nanoseconds to copy ``elements`` in contiguous runs of ``run``."""
    return elements * (0.72 + 8.2 / run)


def _write_ns(geo, run):
    """Estimated extra nanoseconds of writing the output in runs of ``run``."""
    return 2.94 * geo.out_elems / run


# -------------------------------------------------------------- formulations
class _ChannelGemm:
    """GEMM over channels per (D, H, W) phase; H/W taps folded by one im2col copy.

    ``grid`` picks the per-plane column grid: ``"exact"`` ``(Oh, Ow)``,
    ``"rows"`` ``(Oh, Wp)`` or ``"flat"`` ``(Hp, Wp)`` (module docstring).
    """

    covers_w_gaps = False

    def __init__(self, geo, grid, plane_major=None):
        self.geo, self.grid = geo, grid
        W = geo.in_size[2]
        self.units = [(ph, pw) for ph in geo.phs for pw in geo.pws]
        self.plo_w = max((pw.pad_lo for pw in geo.pws), default=0)
        self.Wp = self.plo_w + W + max((pw.pad_hi(W) for pw in geo.pws), default=0)
        self.grids = [(ph.count if grid != "flat" else geo.Hp,
                       pw.count if grid == "exact" else self.Wp) for ph, pw in self.units]
        self.views = [grid == "flat" and len(ph.taps) * len(pw.taps) == 1
                      for ph, pw in self.units]
        # im2col elements per input channel and slab plane
        self.p_per = sum(len(ph.taps) * len(pw.taps) * hc * wc for (ph, pw), (hc, wc), view
                         in zip(self.units, self.grids, self.views) if not view)
        sizes = [geo.Cog * hc * wc for hc, wc in self.grids]  # one output row per unit
        # Plane-major operands fold the depth taps into one GEMM per output plane
        # (no accumulation passes, deeper products, and output planes written in
        # place when H and W have stride 1), at the price of many small BLAS
        # calls.  Threaded BLAS synchronizes its threads on every call (on a busy
        # machine up to a scheduler time slice each), and measured no faster
        # than the channel-major GEMMs even on an idle one, so plane-major is
        # used where BLAS runs these GEMMs on the calling thread.
        threaded = False
        for pd in geo.pds:
            for (ph, pw), (hc, wc) in zip(self.units, self.grids):
                k = geo.Cig * len(pd.taps) * len(ph.taps) * len(pw.taps)
                threaded |= geo.Cog * k * hc * wc >= _BLAS_ONE_THREAD_MNK
        if plane_major is None:
            plane_major = not threaded
        self.plane_major = plane_major
        if self.plane_major:
            # accumulator elements per group and output row: for units not
            # written in place, and scratch only for depth taps that cannot be
            # folded
            kept = [s for s, (u, g) in zip(sizes, zip(self.units, self.grids))
                    if not self._direct(*u, *g)]
            self.acc_per = sum(kept) + (max(sizes, default=0)
                                        if any(pd.step > 1 for pd in geo.pds) else 0)
        # BLAS runs small GEMMs on the calling thread: chunks are then processed
        # by several Python threads (NumPy releases the GIL in matmul and copies)
        self.workers = 1 if threaded or not self.plane_major else _cpu_count()
        # Channel-major: per unit, one GEMM stacks the weight blocks of every
        # (D phase, depth tap), Cog rows each, and runs over every plane of the
        # chunk; its products are the accumulators (_chunk_stacked).
        self.m_tot = geo.Cog * sum(len(pd.taps) for pd in geo.pds)
        if not self.plane_major:  # product elements per group and input plane
            self.acc_per = self.m_tot * sum(hc * wc for hc, wc in self.grids)

    def acc_rows(self, nc, gc, dc, itemsize):
        """Depth rows (planes) of accumulators to allocate: every plane of the
        chunk for the stacked channel-major products, one block of output
        rows if plane-major."""
        if not self.plane_major:
            return dc + self.geo.span
        per = nc * gc * self.acc_per * itemsize
        return min(dc, max(1, _BLOCK_BYTES // per)) if per else 0

    def slack(self):
        """Elements that junk columns of the last channel read past the slab."""
        geo, Wp = self.geo, self.Wp
        reach = 0
        for (ph, pw), (hc, wc) in zip(self.units, self.grids):
            end = ((geo.plo_h + ph.base + (len(ph.taps) - 1) * ph.step + hc - 1) * Wp
                   + self.plo_w + pw.base + (len(pw.taps) - 1) * pw.step + wc)
            reach = max(reach, end - geo.Hp * Wp)
        return reach

    def cost(self):
        geo = self.geo
        reps, planes = geo.N * geo.G, geo.rows + geo.span
        t = _write_ns(geo, geo.out_size[2] / geo.stride[2])
        for (ph, pw), (hc, wc), view in zip(self.units, self.grids, self.views):
            k = geo.Cig * len(ph.taps) * len(pw.taps)
            if self.plane_major:
                for pd in geo.pds:
                    flops = 2 * reps * geo.Cog * k * pd.count * hc * wc * len(pd.taps)
                    t += _gemm_ns(flops, geo.Cog, k)
            else:  # one stacked GEMM over every input plane
                flops = 2 * reps * self.m_tot * k * geo.in_planes * hc * wc
                t += _gemm_ns(flops, self.m_tot, k)
            if not view:
                copied = planes if self.plane_major else geo.in_planes
                run = {"exact": wc, "rows": hc * wc, "flat": copied * hc * wc}[self.grid]
                t += _copy_ns(reps * k * copied * hc * wc, run)
        # worker threads share all of the work (threaded BLAS only the GEMMs of
        # the other formulations, which the single-thread estimates ignore)
        return t / (1 + _WORKER_GAIN * (self.workers - 1))

    def setup(self, w):
        self.wts = self.geo.packed_weights(w, ("channel", self.plane_major), self._pack)

    def _pack(self, wz):
        geo = self.geo
        wts = {}
        for pd in geo.pds:
            for ph, pw in self.units:
                t = wz[:, :, :, list(pd.taps)][:, :, :, :, list(ph.taps)][..., list(pw.taps)]
                # (G, Cig, Cog, Td, Th, Tw) -> (G, Cog, Td*Cig*Th*Tw): the depth taps
                # are folded into the GEMM's inner dimension (plane-major operand)
                wts[pd, ph, pw] = t.transpose(0, 2, 3, 1, 4, 5).reshape(geo.G, geo.Cog, -1)
        if self.plane_major:
            return wts
        # (G, rows (pd, ud, o), Cig*Th*Tw) per unit for the stacked GEMM
        return {(ph, pw): np.concatenate(
            [wts[pd, ph, pw].reshape(geo.G, geo.Cog, len(pd.taps), -1)
             .transpose(0, 2, 1, 3).reshape(geo.G, len(pd.taps) * geo.Cog, -1)
             for pd in geo.pds], axis=1) for ph, pw in self.units}

    def _direct(self, ph, pw, hc, wc):
        """Whether the GEMM of unit ``(ph, pw)`` can write output planes in place."""
        OH, OW = self.geo.out_size[1:]
        return (self.geo.stride[1:] == (1, 1) and self.grid == "exact"
                and (hc, wc) == (OH, OW) and ph.first == 0 and pw.first == 0)

    def chunk(self, ck):
        if not self.plane_major:
            return self._chunk_stacked(ck)
        geo = self.geo
        Cig = geo.Cig
        sd, sh, sw = geo.stride
        nn, gg, Sd = ck.nn, ck.gg, ck.Sd
        st = ck.slab.strides  # (nn, gg, Cig, Sd, Hp, Wp), planes outermost in memory
        cols = []
        pos = 0
        for (ph, pw), (hc, wc), view in zip(self.units, self.grids, self.views):
            Th, Tw = len(ph.taps), len(pw.taps)
            src = ck.slab[..., geo.plo_h + ph.base:, self.plo_w + pw.base:]
            if view:
                # rows (plane, channel), each a whole padded plane
                cols.append((as_strided(src, shape=(nn, gg, Sd * Cig, hc * wc), writeable=False,
                                        strides=(st[0], st[1], st[2], st[5])), Cig))
                continue
            size = nn * gg * Sd * Cig * Th * Tw * hc * wc
            P = ck.p_buf[pos:pos + size].reshape(nn, gg, Sd, Cig, Th, Tw, hc, wc)
            pos += size
            np.copyto(P, as_strided(src, shape=P.shape, writeable=False, strides=(
                st[0], st[1], st[3], st[2], ph.step * st[4], pw.step * st[5], st[4], st[5])))
            cols.append((P.reshape(nn, gg, Sd * Cig * Th * Tw, hc * wc), Cig * Th * Tw))
        direct = [self._direct(ph, pw, hc, wc)
                  for (ph, pw), (hc, wc) in zip(self.units, self.grids)]
        for pd in geo.pds:
            jc = min(ck.j1, pd.count) - ck.j0
            if jc <= 0:
                continue
            # all phases of a few output planes at a time, so that the accumulators
            # stay in cache and the strided writes of the W phases meet there
            rb = min(ck.acc_rows, jc) if self.acc_per else jc
            for j in range(0, jc, rb):
                self._block(ck, pd, j, min(rb, jc - j), cols, direct, 0)

    def _chunk_stacked(self, ck):
        """Channel-major operands: per (H, W) unit one GEMM of the stacked weight
        blocks of every (D phase, depth tap) with every plane of the chunk; each
        phase then sums its taps' windows of that product in place."""
        geo = self.geo
        Cig, Cog = geo.Cig, geo.Cog
        sd, sh, sw = geo.stride
        nn, gg, Sd = ck.nn, ck.gg, ck.Sd
        # only slab planes [v0, v1) hold input; the others are zero padding, whose
        # products are zero: they are neither copied nor multiplied (seed_small:
        # 6 of 8 planes, a quarter of its GEMM)
        v0, v1 = ck.v0, ck.v1
        Sv = v1 - v0
        st = ck.slab.strides  # (nn, gg, Cig, Sd, Hp, Wp), channels outermost in memory
        cols = []
        pos = 0
        for (ph, pw), (hc, wc), view in zip(self.units, self.grids, self.views):
            Th, Tw = len(ph.taps), len(pw.taps)
            src = ck.slab[:, :, :, v0:, geo.plo_h + ph.base:, self.plo_w + pw.base:]
            if view:
                cols.append(as_strided(src, shape=(nn, gg, Cig, Sv * hc * wc), writeable=False,
                                       strides=(st[0], st[1], st[2], st[5])))
                continue
            size = nn * gg * Cig * Th * Tw * Sv * hc * wc
            P = ck.p_buf[pos:pos + size].reshape(nn, gg, Cig, Th, Tw, Sv, hc, wc)
            pos += size
            np.copyto(P, as_strided(src, shape=P.shape, writeable=False, strides=(
                st[0], st[1], st[2], ph.step * st[4], pw.step * st[5], st[3], st[4], st[5])))
            cols.append(P.reshape(nn, gg, Cig * Th * Tw, -1))
        # One GEMM per unit: every (D phase, depth tap) weight block times every
        # input plane of the chunk, kept for all phases (the accumulator buffer);
        # the padding planes' products are zero.
        prods, pos = [], 0
        for (ph, pw), (hc, wc), Pm in zip(self.units, self.grids, cols):
            A = hc * wc
            Y = ck.acc_buf[pos:pos + nn * gg * self.m_tot * Sd * A].reshape(
                nn, gg, self.m_tot, Sd * A)
            pos += Y.size
            if Sv > 0:
                np.matmul(self.wts[ph, pw][ck.g0:ck.g1], Pm, out=Y[..., v0 * A:v1 * A])
            Y[..., :v0 * A] = 0
            Y[..., v1 * A:] = 0
            prods.append(Y)
        OH, OW = geo.out_size[1:]
        m0 = 0
        for pd in geo.pds:
            Td = len(pd.taps)
            rows0, m0 = m0, m0 + Td * Cog
            jc = min(ck.j1, pd.count) - ck.j0
            if jc <= 0:
                continue
            accs = []
            for (hc, wc), Y in zip(self.grids, prods):
                A = hc * wc
                # output plane j of the phase: tap ud's block at plane j + base + ud*step;
                # the taps are summed into tap 0's window, in place
                win = [Y[:, :, rows0 + ud * Cog:rows0 + (ud + 1) * Cog, r0:r0 + jc * A]
                       for ud in range(Td)
                       for r0 in ((pd.base + ck.j0 + ud * pd.step - ck.lo) * A,)]
                acc = win[0]
                for other in win[1:]:
                    acc += other
                if ck.bias is not None:
                    acc += ck.bias[..., 0, 0]
                accs.append(acc.reshape(nn, gg, Cog, jc, hc, wc))
            # all phases of a few output planes at a time, so that the strided
            # writes of the W phases meet in cache
            rb = max(1, _WRITE_BLOCK_BYTES // (nn * gg * Cog * OH * OW * ck.isz))
            for j in range(0, jc, rb):
                d0 = pd.first + sd * (ck.j0 + j)
                dsel = slice(d0, d0 + sd * (min(rb, jc - j) - 1) + 1, sd)
                for (ph, pw), acc in zip(self.units, accs):
                    np.copyto(ck.out[..., dsel, ph.first::sh, pw.first::sw],
                              acc[:, :, :, j:j + rb, :ph.count, :pw.count])

    def _block(self, ck, pd, j, jb, cols, direct, pos):
        """Depth-phase rows ``[j0 + j, j0 + j + jb)`` of every (H, W) unit: GEMMs, write."""
        geo = self.geo
        Cog, isz = geo.Cog, ck.isz
        sd, sh, sw = geo.stride
        nn, gg = ck.nn, ck.gg
        Td = len(pd.taps)
        d0 = pd.first + sd * (ck.j0 + j)
        writes = []
        for (ph, pw), (hc, wc), (Pm, R), dr in zip(self.units, self.grids, cols, direct):
            A = hc * wc
            ps = Pm.strides
            r0 = (pd.base + ck.j0 + j - ck.lo) * R
            wt = self.wts[pd, ph, pw][ck.g0:ck.g1]
            if dr:
                os_ = ck.out.strides
                accv = as_strided(ck.out[:, :, :, d0:], shape=(nn, gg, jb, Cog, A),
                                  strides=(os_[0], os_[1], sd * os_[3], os_[2], isz))
            else:
                acc = ck.acc_buf[pos:pos + nn * gg * Cog * jb * A].reshape(nn, gg, Cog, jb, A)
                pos += acc.size
                accv = acc.transpose(0, 1, 3, 2, 4)
                writes.append((ph, pw, acc.reshape(nn, gg, Cog, jb, hc, wc)))
            if pd.step == 1:
                # output plane i reads operand rows [(i + base)*R, (i + base + Td)*R)
                B = as_strided(Pm[:, :, r0:], shape=(nn, gg, jb, Td * R, A), writeable=False,
                               strides=(ps[0], ps[1], R * ps[2], ps[2], ps[3]))
                np.matmul(wt[None, :, None], B, out=accv)
            else:
                tmp = ck.acc_buf[pos:pos + nn * gg * Cog * jb * A].reshape(nn, gg, jb, Cog, A)
                for ud in range(Td):
                    B = as_strided(Pm[:, :, r0 + ud * pd.step * R:], shape=(nn, gg, jb, R, A),
                                   writeable=False,
                                   strides=(ps[0], ps[1], R * ps[2], ps[2], ps[3]))
                    wu = wt[None, :, None, :, ud * R:(ud + 1) * R]
                    if ud == 0:
                        np.matmul(wu, B, out=accv)
                    else:
                        np.matmul(wu, B, out=tmp)
                        accv += tmp
            if ck.bias is not None:
                accv += ck.bias[:, :, :, :, 0].reshape(1, gg, 1, Cog, 1)
        dsel = slice(d0, d0 + sd * (jb - 1) + 1, sd)
        for ph, pw, acc in writes:
            np.copyto(ck.out[..., dsel, ph.first::sh, pw.first::sw],
                      acc[..., :ph.count, :pw.count])


class _ToeplitzW:
    """The W axis as a blocked banded (Toeplitz) matrix; H taps by im2col; D taps looped.

    Block ``blk`` holds outputs ``blk*Bw + t`` (``t < Bw``) and reads inputs
    ``blk*m + ilo + q`` (``q < width``); output ``t`` takes tap ``k`` from
    input ``q`` when ``t + padding - (ilo + q)*s == k*dilation``.
    """

    covers_w_gaps = True

    def __init__(self, geo, m):
        self.geo, self.m = geo, m
        self.units = geo.phs
        I, O, K = geo.in_size[2], geo.out_size[2], geo.kernel[2]
        s, pad, d = geo.stride[2], geo.padding[2], geo.dilation[2]
        self.Bw = Bw = m * s
        self.ilo = ilo = -(((K - 1) * d - pad) // s)
        self.width = width = (Bw - 1 + pad) // s - ilo + 1
        self.nb = nb = -(-O // Bw)
        self.plo_w = max(0, -ilo)
        self.Wp = self.plo_w + I + max(0, (nb - 1) * m + ilo + width - I)
        self.p_per = max((len(ph.taps) * ph.count for ph in geo.phs), default=0) * nb * width
        self.acc_per = 2 * geo.Cog * max((ph.count for ph in geo.phs), default=0) * nb * Bw

    def slack(self):
        return 0

    def acc_rows(self, nc, gc, dc, itemsize):
        return dc

    def weight_bytes(self, itemsize):
        """Size of the banded weights, ``width*Bw/kW`` times the phase's share of ``w``."""
        geo = self.geo
        taps = sum(len(pd.taps) for pd in geo.pds) * sum(len(ph.taps) for ph in geo.phs)
        return itemsize * taps * geo.G * geo.Cig * self.width * geo.Cog * self.Bw

    def cost(self):
        geo = self.geo
        reps, planes = geo.N * geo.G, geo.rows + geo.span
        n = geo.Cog * self.Bw
        t = _write_ns(geo, self.Bw)
        for ph in geo.phs:
            k = geo.Cig * len(ph.taps) * self.width
            for pd in geo.pds:
                rows = pd.count * ph.count * self.nb
                t += _gemm_ns(2 * reps * rows * k * n * len(pd.taps), min(rows, n), k)
            t += _copy_ns(reps * k * planes * ph.count * self.nb, self.width)
        return t

    def setup(self, w):
        self.wts = self.geo.packed_weights(w, ("toeplitz", self.m), self._pack)

    def _pack(self, wz):
        geo = self.geo
        K, s, pad, d = geo.kernel[2], geo.stride[2], geo.padding[2], geo.dilation[2]
        r = np.arange(self.Bw)[None, :] + pad - (self.ilo + np.arange(self.width)[:, None]) * s
        kidx = np.where((r >= 0) & (r % d == 0) & (r < K * d), r // d, K)  # K: the zero tap
        wts = {}
        for pd in geo.pds:
            for ph in geo.phs:
                t = wz[:, :, :, list(pd.taps)][:, :, :, :, list(ph.taps)][..., kidx]
                # (G, Cig, Cog, Td, Th, width, Bw) -> (Td, G, Cig*Th*width, Cog*Bw)
                wts[pd, ph] = t.transpose(3, 0, 1, 4, 5, 2, 6).reshape(
                    len(pd.taps), geo.G, geo.Cig * len(ph.taps) * self.width, -1)
        return wts

    def chunk(self, ck):
        geo = self.geo
        Cig, Cog = geo.Cig, geo.Cog
        sd, sh = geo.stride[:2]
        OW = geo.out_size[2]
        m, width, nb, Bw = self.m, self.width, self.nb, self.Bw
        nn, gg, Sd = ck.nn, ck.gg, ck.Sd
        st = ck.slab.strides
        nf = OW // Bw  # full blocks; a last partial one is written separately
        for ph in geo.phs:
            Oh, Th = ph.count, len(ph.taps)
            P = ck.p_buf[:nn * gg * Sd * Oh * nb * Cig * Th * width].reshape(
                nn, gg, Sd, Oh, nb, Cig, Th, width)
            src = ck.slab[..., geo.plo_h + ph.base:, self.plo_w + self.ilo:]
            np.copyto(P, as_strided(src, shape=P.shape, writeable=False, strides=(
                st[0], st[1], st[3], st[4], m * st[5], st[2], ph.step * st[4], st[5])))
            R = Oh * nb
            Pm = P.reshape(nn, gg, Sd * R, Cig * Th * width)
            for pd in geo.pds:
                jc = min(ck.j1, pd.count) - ck.j0
                if jc <= 0:
                    continue
                wt = self.wts[pd, ph][:, ck.g0:ck.g1]
                acc = ck.acc_buf[:nn * gg * jc * R * Cog * Bw].reshape(nn, gg, jc * R, Cog * Bw)
                tmp = ck.acc_buf[acc.size:2 * acc.size].reshape(acc.shape)
                for ud in range(len(pd.taps)):
                    r0 = (pd.base + ck.j0 + ud * pd.step - ck.lo) * R
                    if ud == 0:
                        np.matmul(Pm[:, :, r0:r0 + jc * R], wt[ud], out=acc)
                    else:
                        np.matmul(Pm[:, :, r0:r0 + jc * R], wt[ud], out=tmp)
                        acc += tmp
                c = acc.reshape(nn, gg, jc, Oh, nb, Cog, Bw).transpose(0, 1, 5, 2, 3, 4, 6)
                if ck.bias is not None:
                    c += ck.bias[..., None]
                d0 = pd.first + sd * ck.j0
                dst = ck.out[..., d0:d0 + sd * (jc - 1) + 1:sd, ph.first::sh, :]
                if nf:
                    ws = dst.strides[-1]
                    blocks = as_strided(dst, shape=dst.shape[:-1] + (nf, Bw),
                                        strides=dst.strides[:-1] + (Bw * ws, ws))
                    np.copyto(blocks, c[..., :nf, :])
                if nf < nb:
                    np.copyto(dst[..., nf * Bw:], c[..., nf, :OW - nf * Bw])


_CHOICES = {}
"""Recent choices: ``(params, itemsize, budget, CPUs)`` -> ``(geometry, class, argument)``."""


def _formulation(params, itemsize):
    """The geometry and a new instance of the chosen formulation (choices cached)."""
    key = (params, itemsize, get_memory_budget(), _cpu_count())
    hit = _CHOICES.get(key)
    if hit is not None:
        geo, cls, arg = hit
        return geo, cls(geo, arg)
    geo = _Geometry(params)
    form = _choose(geo, itemsize)
    if len(_CHOICES) >= 256:
        _CHOICES.clear()
    _CHOICES[key] = geo, type(form), form.grid if isinstance(form, _ChannelGemm) else form.m
    return geo, form


def _choose(geo, itemsize):
    """The formulation with the smallest estimated cost (module docstring)."""
    if not geo.pds or not geo.phs:
        return _ChannelGemm(geo, "exact")  # every output is bias only
    forms = [_ChannelGemm(geo, grid) for grid in ("exact", "rows", "flat")]
    m_max = min(32, -(-geo.out_size[2] // geo.stride[2]))
    m = 1
    while True:
        form = _ToeplitzW(geo, min(m, m_max))
        if form.weight_bytes(itemsize) <= get_memory_budget():
            forms.append(form)
        if m >= m_max:
            break
        m *= 2
    return min(forms, key=lambda f: f.cost())


# -------------------------------------------------------------------- driver
class _Chunk:
    """The buffers and the current chunk: batch ``[n0, n0 + nn)``, groups
    ``[g0, g1)``, depth-phase rows ``[j0, j1)`` (input planes from ``lo``)."""


def _plan(workspace, N, G, rows, span, limit, parts=1):
    """Chunk sizes ``(nc, gc, dc)`` over batch, groups and depth-phase rows.

    The largest chunks under the workspace ``limit``, preferring depth chunks
    of at least ``_HALO * span`` rows (halo copies under 25%) and splitting
    groups first; depth chunks are then evened out.  At least ``parts`` chunks
    where the problem divides so, splitting batch, then groups, then depth.
    """
    if workspace(1, G, rows) <= limit:
        nc = max(1, min(N, limit // workspace(1, G, rows), -(-N // parts)))
        n_parts = -(-N // nc)
        gc = G if n_parts >= parts else -(-G // min(G, -(-parts // n_parts)))
        g_parts = n_parts * -(-G // gc)
        d_parts = min(-(-parts // g_parts), max(1, rows // max(1, _HALO * span)))
        return nc, gc, -(-rows // d_parts)
    dmin = min(rows, max(1, _HALO * span))
    gc = G
    while gc > 1 and workspace(1, gc, dmin) > limit:
        gc = (gc + 1) // 2
    lo, hi = 1, rows
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if workspace(1, gc, mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return 1, gc, -(-rows // -(-rows // lo))


def _phase_split(geo, x, w, b, out, form):
    """Fill bias-only phases, then run ``form`` over chunks of batch, groups and depth."""
    N, G, Cig, Cog = geo.N, geo.G, geo.Cig, geo.Cog
    D, H, W = geo.in_size
    sd, sh, sw = geo.stride
    out6 = out.reshape(N, G, Cog, *geo.out_size)
    bias = None if b is None else b.reshape(1, G, Cog, 1, 1, 1)

    axd, axh, axw = geo.params.axis_phases
    for pd in axd:
        for ph in axh:
            for pw in axw:
                reached = pd.taps and ph.taps and (pw.taps or form.covers_w_gaps)
                if pd.count and ph.count and pw.count and not reached:
                    view = out6[:, :, :, pd.first::sd, ph.first::sh, pw.first::sw]
                    view[...] = 0 if bias is None else bias
    if not geo.pds or not form.units:
        return
    form.setup(w)
    Hp, Wp, plo_h, plo_w = geo.Hp, form.Wp, geo.plo_h, form.plo_w

    isz = out.itemsize

    def workspace(nc, gc, dc):
        return isz * nc * gc * (Cig * (dc + geo.span) * (Hp * Wp + form.p_per)
                                + form.acc_rows(nc, gc, dc, isz) * form.acc_per)

    plane_major = getattr(form, "plane_major", False)
    nw = getattr(form, "workers", 1)
    # each worker has its own workspace, all of them within the budget
    limit = min(get_memory_budget() // nw, _PLANE_CHUNK_BYTES if plane_major else _CHUNK_BYTES)
    nc, gc, dc = _plan(workspace, N, G, geo.rows, geo.span, limit,
                       1 if nw == 1 else _CHUNKS_PER_WORKER * nw)
    chunks = [(n0, g0, j0) for n0 in range(0, N, nc) for g0 in range(0, G, gc)
              for j0 in range(0, geo.rows, dc)]
    nw = min(nw, len(chunks))
    Sd = dc + geo.span
    acc_rows = form.acc_rows(nc, gc, dc, isz)
    n_slab = nc * gc * Cig * Sd * Hp * Wp + form.slack()
    n_p = nc * gc * Cig * Sd * form.p_per
    n_acc = nc * gc * acc_rows * form.acc_per
    cks = []
    for i, ws in enumerate(_workspaces(nw, n_slab + n_p + n_acc, out.dtype)):
        ck = _Chunk()
        ck.Sd, ck.acc_rows, ck.isz = Sd, acc_rows, isz
        ck.slab_buf = ws[:n_slab]
        ck.slab_buf.fill(0)  # the padding stays zero: only the inner part is written
        ck.p_buf = ws[n_slab:n_slab + n_p]
        ck.acc_buf = ws[n_slab + n_p:]
        cks.append(ck)

    def run(ck, n0, g0, j0):
        Sd = ck.Sd
        n1, g1, j1 = min(N, n0 + nc), min(G, g0 + gc), min(geo.rows, j0 + dc)
        ck.nn, ck.gg, ck.g0, ck.g1, ck.j0, ck.j1 = n1 - n0, g1 - g0, g0, g1, j0, j1
        # (batch, group, channel, plane, Hp, Wp), planes outermost in memory
        # for plane-major operands
        slab = ck.slab_buf[:ck.nn * ck.gg * Cig * Sd * Hp * Wp]
        if plane_major:
            ck.slab = slab.reshape(ck.nn, ck.gg, Sd, Cig, Hp, Wp).transpose(0, 1, 3, 2, 4, 5)
        else:
            ck.slab = slab.reshape(ck.nn, ck.gg, Cig, Sd, Hp, Wp)
        ck.out = out6[n0:n1, g0:g1]
        ck.bias = None if bias is None else bias[:, g0:g1]
        # the slab's padding is zero from the start and never written
        inner = ck.slab[..., plo_h:plo_h + H, plo_w:plo_w + W]
        ck.lo = lo = geo.lo + j0
        a0, a1 = min(max(lo, 0), D), max(min(lo + Sd, D), 0)
        ck.v0, ck.v1 = a0 - lo, max(a1, a0) - lo  # slab planes that hold input
        if a1 > a0:
            np.copyto(inner[:, :, :, a0 - lo:a1 - lo],
                      x[n0:n1, g0 * Cig:g1 * Cig, a0:a1].reshape(ck.nn, ck.gg, Cig, a1 - a0, H, W))
            inner[:, :, :, :a0 - lo] = 0
            inner[:, :, :, a1 - lo:] = 0
        else:
            inner[...] = 0
        form.chunk(ck)

    # chunks are handed out one at a time, so that a worker slowed down by other
    # threads on its CPU (BLAS threads spinning after a threaded call) does less
    _dynamic(nw, chunks, lambda i, c: run(cks[i], *c))
