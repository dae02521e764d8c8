"""The chunked FFT plan, for NumPy (``scipy.fft``) and CuPy
(``cupyx.scipy.fft``): batch, group and channel chunks and overlap-add
spatial tiles sized to the memory budget (see :mod:`xconvt.backends.fft`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

from array_api_compat import array_namespace, is_cupy_array

from ..._config import get_memory_budget
from ..._plan import Plan as _PlanBase
from ..cpu.common import all_finite, available_cpus
from .sizes import active_phases, fast_len_fn, single_tile_len

__all__ = ["Call", "Plan", "chunks", "make_plan", "tile_jobs", "use_matmul"]


# ---------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Plan:
    """How :func:`fft` runs one call: sizes, tiles and chunks.

    ``fft_shape`` is the transform size per axis; ``tiles`` per axis the
    ``(start, length)`` input tiles (one tile covering the axis when it is
    not split).  Chunk sizes: ``nb`` batch, ``gc`` groups, ``co`` output
    channels per group, ``ci`` input channels per group whose spectra are
    held at once (``ci < C_in/groups`` means they are recomputed for every
    phase and output chunk), ``cw`` input channels per weight spectrum in the
    contraction.  ``cache_weights``: all weight spectra are kept for the call;
    ``workspace``: the estimated peak bytes.
    """

    fft_shape: tuple
    tiles: tuple
    nb: int
    gc: int
    ci: int
    cw: int
    co: int
    cache_weights: bool
    workspace: int
    is_complex: bool
    prune: bool
    chan_last: bool
    phases: tuple

    @property
    def spec_shape(self):
        fd, fh, fw = self.fft_shape
        return (fd, fh, fw if self.is_complex else fw // 2 + 1)

    @property
    def n_tiles(self):
        return math.prod(len(t) for t in self.tiles)




def use_matmul(kind, cw, co):
    """Broadcast multiply-add for few input channels, batched matmul beyond."""
    if kind == "cupy":
        return cw * co > 16
    return cw > 8 and cw * co > 64


def _workspace(spec_elems, csize, nb, gc, ci, cw, co):
    """Approximate peak bytes of one chunk: the input spectra, and the larger
    of the forward transform's second buffer and (one weight spectrum + the
    output spectrum + a product temporary or the inverse transform's buffer),
    plus 10% for small temporaries (tiles of the input, cropped rows)."""
    x_el, w_el, y_el = nb * gc * ci, gc * cw * co, nb * gc * co
    return int(1.1 * csize * spec_elems * (x_el + max(x_el, w_el + 2 * y_el)))


def make_plan(params, kind, dtype, budget=None):
    """Choose FFT sizes, tiles and chunks for ``params`` under ``budget`` bytes.

    Pure Python (no arrays): :func:`estimate` prices exactly the plan that
    :class:`Call` then runs.  Pieces shrink (halving) in
    order of what they cost: output-channel, group and batch chunks and the
    weight chunk of the contraction cost nothing but loop overhead; then
    spatial tiles no smaller than the sub-kernel (overlap-add overhead at most
    about 2x per axis); then input-channel chunks (input spectra recomputed
    per phase and output chunk); then smaller tiles.  A single piece may
    still exceed a tiny budget.
    """
    if budget is None:
        budget = get_memory_budget()
    name = getattr(dtype, "name", str(dtype))
    is_complex = name.startswith("complex")
    csize = 16 if name in ("float64", "complex128") else 8
    fast_len = fast_len_fn(kind)
    terms = active_phases(params)
    in_size = params.in_size
    lmax = [max((t[a].length for t in terms), default=1) for a in range(3)]
    tile = list(in_size)

    def fft_len(a):
        real = (a == 2) and not is_complex
        if tile[a] >= in_size[a]:
            return single_tile_len(in_size[a], [t[a] for t in terms], fast_len, real)
        return fast_len(tile[a] + lmax[a] - 1, real)

    n, g = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    c = dict(nb=n, gc=g, ci=cig, cw=cig, co=cog)
    fshape = [fft_len(a) for a in range(3)]

    def spec_elems():
        return fshape[0] * fshape[1] * (fshape[2] if is_complex else fshape[2] // 2 + 1)

    def ws():
        return _workspace(spec_elems(), csize, c["nb"], c["gc"], c["ci"], c["cw"], c["co"])

    def halve(key):
        if c[key] == 1:
            return False
        c[key] = -(-c[key] // 2)
        if key == "ci":
            c["cw"] = c["ci"]
        return True

    def split_tile(min_tile):
        """Shrink the tile of the axis with the largest transform."""
        cand = [a for a in range(3) if tile[a] > min_tile[a]]
        if not cand:
            return False
        a = max(cand, key=lambda a: fshape[a])
        old, old_tile, t = fshape[a], tile[a], tile[a]
        while True:
            t = max(min_tile[a], t // 2)
            tile[a] = t
            new = fft_len(a)
            if new < old or t == min_tile[a]:
                break
        if new < old:
            # Grow the tile to fill the fast length it was given (the tile
            # still shrinks, so this loop ends).
            tile[a] = max(t, min(old_tile - 1, in_size[a] - 1, new - lmax[a] + 1))
        fshape[a] = fft_len(a)
        return True

    big_tiles = [max(1, m) for m in lmax]
    while ws() > budget:
        if not (halve("co") or halve("gc") or halve("nb") or halve("cw")
                or split_tile(big_tiles) or halve("ci") or split_tile((1, 1, 1))):
            break  # one indivisible piece

    tiles = tuple(
        tuple((t0, min(tile[a], in_size[a] - t0)) for t0 in range(0, in_size[a], tile[a]))
        for a in range(3)
    )
    # Keep every weight spectrum for the call when they are used more than
    # once (several tiles or batch chunks), shrinking batch chunks to make room.
    n_tiles = math.prod(len(t) for t in tiles)
    wbytes = len(terms) * g * cig * cog * spec_elems() * csize
    cache = False
    if c["ci"] == cig and n_tiles * -(-n // c["nb"]) > 1:
        while ws() + wbytes > budget and halve("nb"):
            pass
        cache = ws() + wbytes <= budget
    work = ws() + (wbytes if cache else 0)
    return Plan(tuple(fshape), tiles, c["nb"], c["gc"], c["ci"], c["cw"], c["co"], cache,
                work, is_complex, kind != "cupy", use_matmul(kind, c["cw"], c["co"]),
                tuple(terms))




# ----------------------------------------------------------------- transforms
# Spectra live in one of two layouts.  Channels first, ``(n, g, c, *freq)``,
# for the broadcast multiply-add (few channels: long contiguous vectors).
# Channels last, ``(*freq, g, n, c)``, for the batched matmul (many channels):
# the transforms run over the leading axes (pocketFFT and cuFFT vectorize over
# the contiguous channel dimension) and the matmul operands need no transpose.
_FIRST = (-3, -2, -1)
_LAST = (0, 1, 2)


class _Lib:
    """The FFT module and options of the array library that runs the call."""

    def __init__(self, x):
        self.xp = array_namespace(x)
        if is_cupy_array(x):
            import cupy
            import cupyx.scipy.fft as sfft

            self.kind, self.mod, self.fft, self.kw = "cupy", cupy, sfft, {}
        else:
            import numpy
            import scipy.fft as sfft

            self.kind, self.mod = "numpy", numpy
            self.fft, self.kw = sfft, {"workers": available_cpus()}

    def forward(self, a, plan, axes):
        """Spectrum over ``axes`` (D, H, W) of ``a``, zero-extended to the plan."""
        f, kw = self.fft, self.kw
        fd, fh, fw = plan.fft_shape
        if not plan.prune:
            fn = f.fftn if plan.is_complex else f.rfftn
            return fn(a, s=(fd, fh, fw), axes=axes, **kw)
        ad, ah, aw = axes
        a = (f.fft if plan.is_complex else f.rfft)(a, n=fw, axis=aw, **kw)
        a = f.fft(a, n=fh, axis=ah, overwrite_x=True, **kw)
        return f.fft(a, n=fd, axis=ad, overwrite_x=True, **kw)

    def inverse(self, a, plan, crops, axes):
        """Inverse transform over ``axes`` keeping rows ``crops`` (3 slices)."""
        f, kw = self.fft, self.kw
        fd, fh, fw = plan.fft_shape

        def crop(a, ax, sl):
            idx = [slice(None)] * a.ndim
            idx[ax] = sl
            return a[tuple(idx)]

        if not plan.prune:
            fn = f.ifftn if plan.is_complex else f.irfftn
            a = fn(a, s=(fd, fh, fw), axes=axes, overwrite_x=True, **kw)
            for ax, sl in zip(axes, crops):
                a = crop(a, ax, sl)
            return a
        ad, ah, aw = axes
        a = crop(f.ifft(a, axis=ad, overwrite_x=True, **kw), ad, crops[0])
        a = crop(f.ifft(a, axis=ah, overwrite_x=True, **kw), ah, crops[1])
        if plan.is_complex:
            return crop(f.ifft(a, axis=aw, overwrite_x=True, **kw), aw, crops[2])
        return crop(f.irfft(a, n=fw, axis=aw, overwrite_x=True, **kw), aw, crops[2])


def _contract(lib, x_spec, w_spec, chan_last, acc=None):
    """Sum over input channels ``c`` of one group, per frequency ``f``.

    Channels first: ``acc[n, g, o, f] += X[n, g, c, f] * W[g, c, o, f]``;
    channels last: ``acc[f, g, n, o] += X[f, g, n, c] @ W[f, g, c, o]``.
    ``acc`` is created when None.
    """
    mod = lib.mod
    if chan_last:
        if acc is None:
            return mod.matmul(x_spec, w_spec)
        acc += mod.matmul(x_spec, w_spec)
        return acc
    tmp = None
    for c in range(x_spec.shape[2]):
        xc, wc = x_spec[:, :, c:c + 1, ...], w_spec[None, :, c, ...]
        if acc is None:
            acc = xc * wc
        else:
            tmp = mod.multiply(xc, wc, out=tmp)
            acc += tmp
    return acc


def _sub_kernel(xp, w6, terms, gs, cs, os_, dtype):
    """The phase's dilated sub-kernel ``(gc, ci, co, L_d, L_h, L_w)``."""
    taps = w6[gs, cs, os_, terms[0].k_slice, terms[1].k_slice, terms[2].k_slice]
    taps = xp.astype(taps, dtype)
    if all(t.step == 1 or t.length == 1 for t in terms):
        return taps
    dense = xp.zeros(tuple(taps.shape[:3]) + tuple(t.length for t in terms), dtype=dtype)
    dense[..., ::terms[0].step, ::terms[1].step, ::terms[2].step] = taps
    return dense




def chunks(total, size):
    return [slice(s, min(s + size, total)) for s in range(0, total, size)]


def tile_jobs(plan, tile):
    """Per active phase meeting ``tile``: ``(phase, crops, dests)`` where
    ``crops`` are the tile-local rows of the full convolution that the phase
    keeps and ``dests`` the output slices they are added to."""
    jobs = []
    for p, terms in enumerate(plan.phases):
        crops, dests = [], []
        for (t0, tlen), t in zip(tile, terms):
            j0 = max(0, t0 - t.n0)
            j1 = min(t.count, t0 + tlen + t.length - 1 - t.n0)
            if j0 >= j1:
                break
            m0 = t.n0 + j0 - t0
            crops.append(slice(m0, m0 + j1 - j0))
            o0 = t.first + t.stride * j0
            dests.append(slice(o0, o0 + t.stride * (j1 - j0 - 1) + 1, t.stride))
        else:
            jobs.append((p, tuple(crops), tuple(dests)))
    return jobs


class Call:
    """State of one :func:`fft` call.  Work is split into methods so that
    every chunk's spectra are released as soon as the chunk is done."""

    def __init__(self, params, x, w, b):
        self.lib = lib = _Lib(x)
        xp = lib.xp
        self.work = work = xp.float32 if x.dtype == xp.float16 else x.dtype
        self.plan = make_plan(params, lib.kind, work)
        self.n, self.g = params.batch, params.groups
        self.cig, self.cog = params.in_channels_per_group, params.out_channels_per_group
        self.x6 = xp.reshape(x, (self.n, self.g, self.cig) + params.in_size)
        self.w6 = xp.reshape(w, (self.g, self.cig, self.cog) + params.kernel)
        self.chan_last = self.plan.chan_last
        self.axes = _LAST if self.chan_last else _FIRST
        self.w_cache = {}
        self.out = xp.zeros(params.batched_output_shape, dtype=work)
        self.out6 = xp.reshape(self.out, (self.n, self.g, self.cog) + params.out_size)
        if b is not None:
            self.out6 += xp.reshape(xp.astype(b, work), (1, self.g, self.cog, 1, 1, 1))

    def run(self):
        plan = self.plan
        if self.n and plan.phases:
            for tile in product(*plan.tiles):
                jobs = tile_jobs(plan, tile)
                if not jobs:
                    continue
                src = tuple(slice(t0, t0 + tlen) for t0, tlen in tile)
                for ns in chunks(self.n, plan.nb):
                    for gs in chunks(self.g, plan.gc):
                        self._chunk(src, jobs, ns, gs)
        return self.out  # in the working dtype (float32 for float16 input)

    def _chunk(self, src, jobs, ns, gs):
        """One batch and group chunk of one tile, every phase."""
        plan = self.plan
        whole = self._x_spec(src, ns, gs, slice(0, self.cig)) if plan.ci == self.cig else None
        for p, crops, dests in jobs:
            for os_ in chunks(self.cog, plan.co):
                y = self._y_spec(whole, src, p, ns, gs, os_)
                y = self.lib.inverse(y, plan, crops, self.axes)
                if self.chan_last:  # (d, h, w, g, n, o) -> (n, g, o, d, h, w)
                    y = self.lib.xp.permute_dims(y, (4, 3, 5, 0, 1, 2))
                self.out6[(ns, gs, os_) + dests] += y

    def _y_spec(self, whole, src, p, ns, gs, os_):
        """Output spectrum of phase ``p`` for one chunk, summed over inputs."""
        y = None
        for cs in chunks(self.cig, self.plan.cw):
            if whole is None:
                xs = self._x_spec(src, ns, gs, cs)
            elif self.chan_last:
                xs = whole[..., cs]
            else:
                xs = whole[:, :, cs]
            y = _contract(self.lib, xs, self._w_spec(p, gs, cs, os_), self.chan_last, y)
        return y

    def _x_spec(self, src, ns, gs, cs):
        xp = self.lib.xp
        xt = xp.astype(self.x6[(ns, gs, cs) + src], self.work, copy=False)
        if self.chan_last:  # (n, g, c, d, h, w) -> (d, h, w, g, n, c)
            xt = xp.permute_dims(xt, (3, 4, 5, 1, 0, 2))
        return self.lib.forward(xt, self.plan, self.axes)

    def _w_spec(self, p, gs, cs, os_):
        key = (p, gs.start, cs.start, os_.start)
        spec = self.w_cache.get(key)
        if spec is None:
            xp = self.lib.xp
            sub = _sub_kernel(xp, self.w6, self.plan.phases[p], gs, cs, os_, self.work)
            if self.chan_last:  # (g, c, o, d, h, w) -> (d, h, w, g, c, o)
                sub = xp.permute_dims(sub, (3, 4, 5, 0, 1, 2))
            spec = self.lib.forward(sub, self.plan, self.axes)
            if self.plan.cache_weights:
                self.w_cache[key] = spec
        return spec




# ------------------------------------------------------------------ estimate
#: Seconds per unit of each feature of a chunked FFT call (see :func:`features`).
#: ``numpy``: fitted on 2026-11-25 on the project's 2-core CPU machine (Intel
#: Xeon, NumPy 2.4 with OpenBLAS, SciPy 1.17 pocketFFT with ``workers=2``) by
#: non-negative least squares of the relative error over 28 configurations
#: (the kernel-size sweep up to k = 15, the CPU suite and extras): every FFT
#: time predicted within 1.25x.  ``cupy``: ``mac1``/``mac2`` from the same
#: calibration on an H200, ``fft`` and ``call`` refitted on the 64^3 kernel-size
#: sweep (H100, 2026-11-25).  ``bench/NOTES.md`` has the history.
CONSTANTS = {
    "numpy": {"fft": 5.40e-10, "mac1": 8.23e-10, "mac2": 1.31e-9, "elem": 3.61e-10,
              "call": 2.92e-5},
    "cupy": {"fft": 1.8e-12, "mac1": 8.27e-11, "mac2": 5.43e-11, "elem": 0.0,
             "call": 6.5e-5},
}
FEATURES = ("fft", "mac1", "mac2", "elem", "call")


def _log2(n):
    return math.log2(n) if n > 1 else 0.0


def _fwd_units(plan, batch, sizes):
    """Butterfly units of one forward transform of ``batch`` arrays of ``sizes``."""
    fd, fh, fw = plan.fft_shape
    half = 1.0 if plan.is_complex else 0.5
    frw = plan.spec_shape[2]
    if not plan.prune:
        sizes = plan.fft_shape
    td, th, _ = sizes
    return batch * (td * th * fw * _log2(fw) * half + td * frw * fh * _log2(fh)
                    + fh * frw * fd * _log2(fd))


def _inv_units(plan, batch, kept):
    fd, fh, fw = plan.fft_shape
    half = 1.0 if plan.is_complex else 0.5
    frw = plan.spec_shape[2]
    md, mh, _ = kept if plan.prune else plan.fft_shape
    return batch * (fh * frw * fd * _log2(fd) + md * frw * fh * _log2(fh)
                    + md * mh * fw * _log2(fw) * half)


def features(params, plan):
    """What a chunked call of ``plan`` does, in the units of :data:`CONSTANTS`.

    ``fft``  butterfly work: over every 1-D transform stage, ``rows * n *
             log2(n)`` (real stages count half); ``mac1``/``mac2`` complex
             multiply-adds of the channel contraction, channels-first
             (broadcast multiply-add) or channels-last (batched matmul);
             ``elem`` output elements written or added; ``call`` array-library
             calls (transforms, products, adds).
    """
    n, g = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    spec = math.prod(plan.spec_shape)
    n_nb, n_gc = len(chunks(n, plan.nb)), len(chunks(g, plan.gc))
    n_co, n_cw = len(chunks(cog, plan.co)), len(chunks(cig, plan.cw))
    x_again = 1 if plan.ci == cig else None  # recomputed per job and output chunk
    f = dict.fromkeys(FEATURES, 0.0)
    f["elem"] = n * params.out_channels * math.prod(params.out_size)
    f["call"] = 2.0
    mac = "mac2" if plan.chan_last else "mac1"
    tiles = list(product(*plan.tiles))
    scale = 1.0
    if len(tiles) > 2048:  # estimate from a sample of the tiles
        scale, tiles = len(tiles) / 2048, tiles[:: max(1, len(tiles) // 2048)][:2048]
    w_done = set()
    for tile in tiles:
        jobs = tile_jobs(plan, tile)
        if not jobs:
            continue
        sizes = tuple(t[1] for t in tile)
        t_units = t_mac = t_elem = t_call = 0.0
        per_x = x_again or len(jobs) * n_co
        t_units += per_x * _fwd_units(plan, n * g * cig, sizes)
        t_call += per_x * (n_nb * n_gc if x_again else n_nb * n_gc * n_cw)
        for p, crops, _ in jobs:
            kept = tuple(c.stop - c.start for c in crops)
            lengths = tuple(t.length for t in plan.phases[p])
            w_uses = 1 if plan.cache_weights else n_nb
            if not (plan.cache_weights and p in w_done):
                t_units += w_uses * _fwd_units(plan, g * cig * cog, lengths)
                t_call += w_uses * n_gc * n_co * n_cw
                w_done.add(p)
            t_units += _inv_units(plan, n * g * cog, kept)
            t_mac += n * g * cig * cog * spec
            t_elem += n * params.out_channels * math.prod(kept)
            calls_per_chunk = (n_cw * (1 if plan.chan_last else plan.cw)) + 4
            t_call += n_nb * n_gc * n_co * calls_per_chunk
        f["fft"] += scale * t_units
        f[mac] += scale * t_mac
        f["elem"] += scale * t_elem
        f["call"] += scale * t_call
    return f


def estimate(kind, params, plan, wide=1.0, constants=None):
    """Predicted seconds of a chunked call (``wide`` = 2 for double precision)."""
    c = CONSTANTS[kind] if constants is None else constants
    f = features(params, plan)
    return (wide * (f["fft"] * c["fft"] + f["mac1"] * c["mac1"] + f["mac2"] * c["mac2"]
                    + f["elem"] * c["elem"]) + f["call"] * c["call"])


# --------------------------------------------------------------------- plan
def run(params, x, w, b):
    """A chunked FFT call on NumPy or CuPy arrays (on ``x``'s device), with
    PyTorch's inf/NaN semantics (:func:`.exact.non_finite`)."""
    from .exact import non_finite

    xp = array_namespace(x)
    if is_cupy_array(x):
        with x.device:
            # Enqueue the transforms first and read the finiteness flags last,
            # so the one synchronization waits on work already queued.
            out = Call(params, x, w, b).run()
            if not (all_finite(xp, x) and all_finite(xp, w)):
                out = non_finite(params, x, w, b)
            return out if out.dtype == x.dtype else xp.astype(out, x.dtype)
    if all_finite(xp, x) and all_finite(xp, w):
        out = Call(params, x, w, b).run()
    else:
        out = non_finite(params, x, w, b)
    return out if out.dtype == x.dtype else xp.astype(out, x.dtype)


class ChunkedPlan(_PlanBase):
    """The chunked FFT (:class:`Plan` is its geometry) as a planner's plan."""

    algorithm = "fft"

    def __init__(self, problem, plan):
        self.name = "fft.chunked"
        self.params, self.plan = problem.params, plan
        kind = problem.device.array_kind
        wide = 2.0 if problem.real_dtype == "float64" else 1.0
        self.estimate = estimate(kind, problem.params, plan, wide)
        self.workspace = _workspace(math.prod(plan.spec_shape), 16 if plan.is_complex else 8,
                                    plan.nb, plan.gc, plan.ci, plan.cw, plan.co)
        self.detail = (f"transforms {'x'.join(map(str, plan.fft_shape))}, "
                       f"{plan.n_tiles} tile(s)")

    def __call__(self, x, w, b):
        return run(self.params, x, w, b)


def plan(problem):
    """The chunked FFT plan (any dtype, NumPy or CuPy) of a transposed convolution."""
    if problem.op != "conv_transpose3d":
        return f"computes conv_transpose3d only, not {problem.op}"
    if problem.dtype == "bfloat16":
        return "transforms in float16/32/64 and complex, not bfloat16"
    work = "float32" if problem.dtype == "float16" else problem.dtype
    return ChunkedPlan(problem, make_plan(problem.params, problem.device.array_kind, work,
                                          problem.budget))
