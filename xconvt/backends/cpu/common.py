"""What the CPU formulations share: worker threads, kept workspaces, the
geometry of a call, the cost terms their estimates are made of, and the
driver that runs a formulation over chunks of batch, groups and depth rows
(see :mod:`xconvt.backends.cpu` for the formulations and the cost model)."""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..._config import get_memory_budget
from ..._plan import Plan

CHUNK_BYTES = 16 * 2**20
"""Soft workspace target of a chunk (the memory budget is the hard limit)."""

UPSAMPLE_CHUNK_BYTES = 2 * 2**20
"""Soft target of the pure-upsampling column buffer, reshuffled while in cache."""

HALO = 4
"""Preferred depth chunk, in multiples of the depth taps' reach."""

WRITE_BLOCK_BYTES = 512 * 2**10
"""Output the channel GEMM writes per block of depth rows (all phases, in cache)."""

BLOCK_BYTES = 2 * 2**20
"""Accumulators of the plane-major channel GEMM per worker and block of output planes."""

PLANE_CHUNK_BYTES = 8 * 2**20
"""Soft workspace target of a plane-major channel GEMM chunk (BLAS calls are small)."""

BLAS_ONE_THREAD_MNK = 2 * 65536 * 4
"""``M*N*K`` below which OpenBLAS runs a GEMM on one thread (its default threshold)."""

WORKER_GAIN = 0.6
"""Speed-up per extra worker thread that the cost model credits (measured 0.7-0.9)."""

CHUNKS_PER_WORKER = 4
"""Chunks per worker thread to aim for, so that the load balances."""

CALL_NS = 80e3
"""Fixed cost of a call of the phase driver (workspace, chunks, Python, per-phase
and per-tap NumPy calls) that the formulations' ``cost()`` leaves out, ns:
measured minus estimated time was 75-105 us on 1x1x4^3 k3, 1x2x8^3 k5 and
1x4x8^3 k5 g4 (Toeplitz-W, 2 cores, 2026-12-02)."""

WORKERS_NS = 100e3
"""Extra fixed cost of handing chunks to worker threads, ns (measured 60-500 on
the same layers with the plane-major channel GEMM)."""

MAX_WORKERS = 8
"""Most threads that share the small GEMMs and copies of a chunk."""

PACK_INDEX_MAX = 1 << 20
"""Largest weight (elements) whose packing indices are cached per geometry."""

_POOL = None
_POOL_LOCK = threading.Lock()


_LOCAL = threading.local()


def workspaces(count, size, dtype):
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


def cpu_count():
    """CPUs for worker threads: :func:`available_cpus`, at most ``MAX_WORKERS``."""
    return min(MAX_WORKERS, available_cpus())


def _pool():
    """The shared worker threads (created again in a forked child, whose are gone)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(MAX_WORKERS - 1, "xconvt-cpu"))
        return _POOL[1]


def dynamic(nw, items, fn):
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


def workspace_limit(target=None):
    return min(get_memory_budget(), CHUNK_BYTES if target is None else target)


def all_finite(xp, a):
    """Whether ``a`` holds no inf or NaN, in one pass: a finite sum implies it
    (an overflowing sum only sends finite data down an exact slow path).  float16
    sums in float32.  On CuPy this reads one flag back to the host."""
    wide = xp.float32 if a.dtype == xp.float16 else a.dtype
    return bool(xp.all(xp.isfinite(xp.sum(a, dtype=wide))))


# ------------------------------------------------------------------ geometry
class Geometry:
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
        seed_small, 10% of the call).  Weights of more than ``PACK_INDEX_MAX``
        elements, whose convolutions take far longer, are rearranged directly
        rather than keep megabytes of indices.
        """
        kd, kh, kw = self.kernel
        shape = (self.G, self.Cig, self.Cog, kd, kh, kw + 1)
        if w.size > PACK_INDEX_MAX:
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


def gemm_ns(flops, s, k):
    """Estimated nanoseconds for ``flops`` of GEMM with thin side ``s`` and depth ``k``."""
    return flops * (0.0087 * (k + 64) / k + 0.0244 / s)


def copy_ns(elements, run):
    """Estimated nanoseconds to copy ``elements`` in contiguous runs of ``run``."""
    return elements * (0.72 + 8.2 / run)


def write_ns(geo, run):
    """Estimated extra nanoseconds of writing the output in runs of ``run``."""
    return 2.94 * geo.out_elems / run


# -------------------------------------------------------------------- driver
class Chunk:
    """The buffers and the current chunk: batch ``[n0, n0 + nn)``, groups
    ``[g0, g1)``, depth-phase rows ``[j0, j1)`` (input planes from ``lo``)."""


def chunk_plan(workspace, N, G, rows, span, limit, parts=1):
    """Chunk sizes ``(nc, gc, dc)`` over batch, groups and depth-phase rows.

    The largest chunks under the workspace ``limit``, preferring depth chunks
    of at least ``HALO * span`` rows (halo copies under 25%) and splitting
    groups first; depth chunks are then evened out.  At least ``parts`` chunks
    where the problem divides so, splitting batch, then groups, then depth.
    """
    if workspace(1, G, rows) <= limit:
        nc = max(1, min(N, limit // workspace(1, G, rows), -(-N // parts)))
        n_parts = -(-N // nc)
        gc = G if n_parts >= parts else -(-G // min(G, -(-parts // n_parts)))
        g_parts = n_parts * -(-G // gc)
        d_parts = min(-(-parts // g_parts), max(1, rows // max(1, HALO * span)))
        return nc, gc, -(-rows // d_parts)
    dmin = min(rows, max(1, HALO * span))
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


def phase_split(geo, x, w, b, out, form):
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
    limit = min(get_memory_budget() // nw, PLANE_CHUNK_BYTES if plane_major else CHUNK_BYTES)
    nc, gc, dc = chunk_plan(workspace, N, G, geo.rows, geo.span, limit,
                       1 if nw == 1 else CHUNKS_PER_WORKER * nw)
    chunks = [(n0, g0, j0) for n0 in range(0, N, nc) for g0 in range(0, G, gc)
              for j0 in range(0, geo.rows, dc)]
    nw = min(nw, len(chunks))
    Sd = dc + geo.span
    acc_rows = form.acc_rows(nc, gc, dc, isz)
    n_slab = nc * gc * Cig * Sd * Hp * Wp + form.slack()
    n_p = nc * gc * Cig * Sd * form.p_per
    n_acc = nc * gc * acc_rows * form.acc_per
    cks = []
    for i, ws in enumerate(workspaces(nw, n_slab + n_p + n_acc, out.dtype)):
        ck = Chunk()
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
    dynamic(nw, chunks, lambda i, c: run(cks[i], *c))



def reject(problem):
    """Why a CPU formulation does not apply to ``problem``'s operation or dtype
    (None where it does); bfloat16 then runs as float32 (:mod:`xconvt._bf16`)."""
    if problem.op != "conv_transpose3d":
        return f"computes conv_transpose3d only, not {problem.op}"
    if problem.dtype == "bfloat16":
        return "computes in float16/32/64 and complex, not bfloat16"
    return None


def run(params, x, w, b, body):
    """``body(x, w, b, out)`` with the shared conventions of the CPU plans:
    float16 computed in float32 and rounded once at the end, a new output
    array, and no floating-point warnings (inf/NaN propagate silently, as in
    PyTorch)."""
    dtype = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    out = np.empty(params.batched_output_shape, dtype)
    w = w.astype(dtype, copy=False)
    b = None if b is None else b.astype(dtype, copy=False)
    with np.errstate(all="ignore"):
        body(x, w, b, out)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


class PhasePlan(Plan):
    """A stride-phase formulation (channel GEMM or Toeplitz-W) of one problem:
    the cheapest of its variants by their estimates (``cost()``, nanoseconds
    of one thread, see :mod:`xconvt.backends.cpu`), run by :func:`phase_split`.

    Two properties of the data, not of the problem, switch paths at run
    time: an inf or NaN weight runs :func:`~.scatter.scatter` (the gather
    formulations would multiply zero padding by it), and an inf or NaN input
    takes the exact channel GEMM instead of Toeplitz-W (whose zero band
    entries would multiply it).
    """

    algorithm = "direct"

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def geometry(params):
        """The :class:`Geometry` of ``params``, shared by the plans of one
        geometry (it caches the weight-packing indices)."""
        return Geometry(params)

    @classmethod
    def best(cls, problem, name, form_cls, variants):
        geo = cls.geometry(problem.params)
        forms = [form_cls(geo, v) for v in variants]
        costs = [f.cost() for f in forms]
        i = min(range(len(forms)), key=costs.__getitem__)
        return cls(problem, name, geo, form_cls, variants[i], costs[i], forms[i])

    def __init__(self, problem, name, geo, form_cls, variant, cost_ns, form):
        self.name, self.params, self.geo = name, problem.params, geo
        self.form_cls, self.variant = form_cls, variant
        wide = 2.0 if problem.real_dtype == "float64" else 1.0
        workers = getattr(form, "workers", 1) if form is not None else 1
        fixed = CALL_NS + (WORKERS_NS if workers > 1 else 0)
        self.estimate = (cost_ns * wide * (4.0 if problem.is_complex else 1.0) + fixed) * 1e-9
        target = PLANE_CHUNK_BYTES * workers if getattr(form, "plane_major", False) else CHUNK_BYTES
        self.workspace = min(problem.budget, target)
        self.detail = f"{form_cls.__name__} {variant!r}" + (
            f", {workers} worker threads" if workers > 1 else "")

    def __call__(self, x, w, b):
        params, geo = self.params, self.geo

        def body(x, w, b, out):
            if not np.isfinite(w).all():
                from .scatter import scatter

                scatter(params, x, w, b, out)
                return
            form = self.form_cls(geo, self.variant)
            if form.covers_w_gaps and not all_finite(np, x):
                from .channel_gemm import ChannelGemm

                form = ChannelGemm(geo, "exact")
            phase_split(geo, x, w, b, out, form)

        return run(params, x, w, b, body)
