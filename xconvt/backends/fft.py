"""FFT transposed convolution, written once for NumPy (``scipy.fft``) and CuPy.

The pipeline, per call::

    plan      FFT sizes per axis, spatial tiles, batch/group/channel chunks,
              all chosen so the spectra fit ``xconvt.get_memory_budget()``
    forward   transform each input tile (all channels of a chunk) once
    weights   per stride phase, the phase's sub-kernel (taps ``w[ks[0]::s']``
              placed ``step`` apart, which is the dilation) transformed at the
              same size; once per call where the spectra fit, else per chunk
    contract  per frequency, ``Y[n, g, o] = sum_c X[n, g, c] * W[g, c, o]``
              (block-diagonal over groups): a broadcast multiply-add over
              ``c`` on channels-first spectra ``(n, g, c, *freq)`` for few
              channels, a batched complex matmul on channels-last spectra
              ``(*freq, g, n, c)`` for many (:func:`use_matmul`; the
              transforms then run over the leading axes, so no spectrum is
              ever transposed)
    inverse   transform back, keeping only the rows the phase outputs
    add       into the strided output view ``out[..., first::s]`` (overlap-add
              across tiles), on top of the bias

Phase geometry (see :mod:`xconvt._params`): along one axis a phase outputs
``out[first + s*j] = sum_u x[base + j + u*step] * w[taps[u]]``.  With ``ks``
the phase's kernel indices in ascending order (``taps`` reversed) and
``g[v*step] = w[ks[v]]`` (length ``L = (len(ks) - 1)*step + 1``), that is row
``n = base + L - 1 + j`` of the full linear convolution ``c = x * g`` (length
``I + L - 1``), so no zero-stuffed input is ever formed: stride ``s`` costs
``s^3`` phases of the un-stuffed volume, not an ``s^3`` larger volume.

FFT sizes.  A circular convolution of length ``F`` returns
``c[m] + c[m + F]`` at row ``m``; for the kept rows ``[a, b]`` that is exact
when ``F > b`` and ``F >= I + L - 1 - a``.  Cropping ("same" padding) therefore
allows ``F`` below ``I + L - 1`` (48 rather than 64 for ``I = 32``, ``k = 31``).
Sizes come from the running library's ``next_fast_len``.  On NumPy the
transforms are pruned: the forward runs axis by axis starting where the data
is (only the ``I`` non-zero rows, then planes, are transformed) and the inverse
crops after each axis.  On CuPy, real-dtype calls that fit the budget run the
one-pass path below; others use one ``rfftn``/``irfftn`` per array (cuFFT 3-D
plans, cached by CuPy).

One pass on CuPy (:class:`OnePassPlan`).  All active phases at once: the
padded input and every phase's zero-extended sub-kernel are written by two
kernels into buffers zeroed with ``cudaMemsetAsync``, transformed by two cached
cuFFT R2C plans, contracted per frequency by one kernel into every phase's
output spectrum, transformed back by one C2R plan and cropped, scaled and
biased into the output by one kernel (``xconvt_fft_*`` in
``cuda/conv_transpose3d.cu``): the same handful of launches whatever the
number of phases and channels (64^3, 4 -> 4 channels: 0.20 ms on an H100 for
kernels up to 17^3).

Workspace.  :func:`make_plan` estimates the peak bytes of one chunk (input
spectra, one weight spectrum, the output spectrum and a temporary) and shrinks
pieces until it fits the budget: output-channel, group and batch chunks and
the weight chunk of the contraction first (they only add loop overhead), then
spatial tiles no smaller than the sub-kernel, then input-channel chunks
(whose spectra are then recomputed per phase), then smaller tiles.  Weight
spectra are kept for the call when they are used more than once and fit.
Peak NumPy allocations stay under the estimate (tests check it with
``tracemalloc``).

Overlap-add.  When one channel's spectra do not fit the budget, the input is
cut into tiles of ``T`` voxels per axis; each tile is convolved in full
(``F >= T + L - 1``) and its rows added where they land.  The output is
initialized with the bias once, and every contribution is added, so one tile
and many tiles share the code.

Non-finite values.  A transform would spread one inf or NaN over the whole
volume; PyTorch's result has it only where it scatters.  A one-pass check
(the sum of ``x`` and of ``w``; on the one-pass path a flag the padding
kernels set) sends such inputs to an exact slow path (:func:`_non_finite`).
On CuPy reading that flag, after everything is queued, is the path's only
host synchronization.

Precision.  float32 and complex64 transform in single precision (pocketFFT /
cuFFT): relative L2 error about 2.5e-7 (max-abs error about 2e-5 on outputs
of magnitude 50 to 70) for 31^3 kernels, far below 1e-5; float64 about 2e-15.
float16 is computed in float32 and rounded once at the end.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import numpy as np
from array_api_compat import array_namespace, is_cupy_array

from .._config import get_memory_budget
from .._params import dtype_name
from .cpu import all_finite, available_cpus

__all__ = ["Plan", "fft", "make_plan", "use_matmul"]


# --------------------------------------------------------------------- sizes
def _smooth7_len(target, real=False):
    """Smallest ``n >= target`` whose prime factors are 2, 3, 5, 7 (cuFFT's
    fast radices); the base of :func:`_cuda_fast_len`."""
    best = 2 * max(1, target)
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                n = p3
                while n < target:
                    n *= 2
                best = min(best, n)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


def _cuda_fast_len(target, real=False):
    """cuFFT sizes: 7-smooth, and a multiple of 4 beyond 16 (radix-3/5-only
    sizes such as 75 run about 1.5x slower per point than 80 on an H100)."""
    n = _smooth7_len(target)
    while target > 16 and n % 4:
        n = _smooth7_len(n + 1)
    return n


def _fast_len_fn(kind):
    if kind == "cupy":
        return _cuda_fast_len
    from scipy.fft import next_fast_len

    return next_fast_len


# ---------------------------------------------------------------- phase data
@dataclass(frozen=True)
class _AxisTerm:
    """One axis of one active phase, in full-convolution coordinates."""

    first: int    # first output index
    stride: int   # output step
    count: int    # outputs in the phase
    n0: int       # full-convolution row of output j = 0
    length: int   # L, extent of the dilated sub-kernel
    step: int     # spacing of the taps inside the sub-kernel
    k_slice: slice  # kernel indices, ascending


def _axis_term(ph, stride):
    ks = ph.taps[::-1]
    kstep = ks[1] - ks[0] if len(ks) > 1 else 1
    length = (len(ks) - 1) * ph.step + 1
    return _AxisTerm(
        first=ph.first,
        stride=stride,
        count=ph.count,
        n0=ph.base + length - 1,
        length=length,
        step=ph.step,
        k_slice=slice(ks[0], ks[-1] + 1, kstep),
    )


def _active_phases(params):
    """Phases with taps on every axis, as triples of :class:`_AxisTerm`.

    The others (an axis where no tap reaches the phase) get only the bias.
    """
    return [
        tuple(_axis_term(ph, params.stride[a]) for a, ph in enumerate(triple))
        for triple in params.phases()
        if all(ph.taps for ph in triple)
    ]


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


def _single_tile_len(in_size, terms, fast_len, real):
    """Smallest fast ``F`` that keeps every phase's cropped rows alias-free."""
    need = 1
    for t in terms:
        need = max(need, in_size, t.length)
        a = max(0, t.n0)
        b = min(in_size + t.length - 2, t.n0 + t.count - 1)
        if a <= b:
            need = max(need, b + 1, in_size + t.length - 1 - a)
    return fast_len(need, real)


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

    Pure Python (no arrays): the cost model in :mod:`xconvt._cost` prices
    exactly the plan that :func:`fft` then runs.  Pieces shrink (halving) in
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
    fast_len = _fast_len_fn(kind)
    terms = _active_phases(params)
    in_size = params.in_size
    lmax = [max((t[a].length for t in terms), default=1) for a in range(3)]
    tile = list(in_size)

    def fft_len(a):
        real = (a == 2) and not is_complex
        if tile[a] >= in_size[a]:
            return _single_tile_len(in_size[a], [t[a] for t in terms], fast_len, real)
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


# ------------------------------------------------------------------- backend
def fft(params, x, w, b):
    """Transposed convolution by FFT; see the module docstring.

    Parameters
    ----------
    params : ConvParams
        Validated geometry.
    x : ndarray, shape (N, C_in, D, H, W)
    w : ndarray, shape (C_in, C_out / groups, kD, kH, kW)
    b : ndarray, shape (C_out,), or None

    Returns
    -------
    ndarray, shape ``params.batched_output_shape``
        New contiguous array of ``x``'s dtype and library (and CuPy device).
    """
    if is_cupy_array(x):
        with x.device:
            return _run(params, x, w, b)
    return _run(params, x, w, b)


def _chunks(total, size):
    return [slice(s, min(s + size, total)) for s in range(0, total, size)]


def _tile_jobs(plan, tile):
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


class _Call:
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
                jobs = _tile_jobs(plan, tile)
                if not jobs:
                    continue
                src = tuple(slice(t0, t0 + tlen) for t0, tlen in tile)
                for ns in _chunks(self.n, plan.nb):
                    for gs in _chunks(self.g, plan.gc):
                        self._chunk(src, jobs, ns, gs)
        return self.out  # in the working dtype (float32 for float16 input)

    def _chunk(self, src, jobs, ns, gs):
        """One batch and group chunk of one tile, every phase."""
        plan = self.plan
        whole = self._x_spec(src, ns, gs, slice(0, self.cig)) if plan.ci == self.cig else None
        for p, crops, dests in jobs:
            for os_ in _chunks(self.cog, plan.co):
                y = self._y_spec(whole, src, p, ns, gs, os_)
                y = self.lib.inverse(y, plan, crops, self.axes)
                if self.chan_last:  # (d, h, w, g, n, o) -> (n, g, o, d, h, w)
                    y = self.lib.xp.permute_dims(y, (4, 3, 5, 0, 1, 2))
                self.out6[(ns, gs, os_) + dests] += y

    def _y_spec(self, whole, src, p, ns, gs, os_):
        """Output spectrum of phase ``p`` for one chunk, summed over inputs."""
        y = None
        for cs in _chunks(self.cig, self.plan.cw):
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


# ------------------------------------------------------- CuPy, all phases
class OnePassPlan:
    """Geometry of the one-pass CuPy FFT: every active phase at once.

    ``fft_shape`` is the single-tile transform size (alias-free for the kept
    rows of every phase, as in :func:`make_plan`).  Tables, as the kernels in
    ``cuda/conv_transpose3d.cu`` read them (``xconvt_fft_*``):

    ``wtab``  per axis, one row of ``F`` entries per active axis phase: the
              kernel tap at that position of the dilated sub-kernel, or -1;
              D rows, then H, then W (``offsets`` gives where H and W start).
    ``otab``  per axis and output index, ``(axis phase, full-convolution
              row)``, both -1 where no tap reaches the output (bias only) and
              the row -1 where the output lies outside the phase's full
              convolution (it is 0 there).

    The active phases are the product of the per-axis active phases, numbered
    ``(pd * NH + ph) * NW + pw``.  ``workspace`` is the peak bytes of the
    call's buffers (padded volumes, the three spectra, cuFFT's work area),
    ``bytes`` what the call moves (the cost model's feature) and ``macs`` the
    complex multiply-adds of the contraction.
    """

    def __init__(self, params, dtype_name, fast_len=None):
        fast_len = fast_len or _fast_len_fn("cupy")
        self.counts = []
        wrows, otab = [], []
        fshape, lengths = [], []
        for a in range(3):
            terms = [_axis_term(ph, params.stride[a]) for ph in params.axis_phases[a]
                     if ph.count and ph.taps]
            f = _single_tile_len(params.in_size[a], terms, fast_len, a == 2) if terms else 1
            fshape.append(f)
            lengths.append(max((t.length for t in terms), default=1))
            self.counts.append(len(terms))
            ot = [(-1, -1)] * params.out_size[a]
            for i, t in enumerate(terms):
                row = [-1] * f
                for v in range(0, t.length, t.step):
                    row[v] = t.k_slice.start + (v // t.step) * (t.k_slice.step or 1)
                wrows.append(row)
                last = params.in_size[a] + t.length - 2
                for j in range(t.count):
                    r = t.n0 + j
                    ot[t.first + t.stride * j] = (i, r if 0 <= r <= last else -1)
            otab.extend(ot)
        self.fft_shape = tuple(fshape)
        self.lengths = tuple(lengths)  # longest sub-kernel per axis (pad_w's extent)
        self.n_phases = math.prod(self.counts)
        fd, fh, fw = fshape
        self.offsets = (0, self.counts[0] * fd, self.counts[0] * fd + self.counts[1] * fh)
        self.wtab = [v for row in wrows for v in row]
        self.otab = [v for pair in otab for v in pair]
        n, g = params.batch, params.groups
        cig, cog = params.in_channels_per_group, params.out_channels_per_group
        p = self.n_phases
        self.spec = fd * fh * (fw // 2 + 1)
        vol = fd * fh * fw
        r = 8 if dtype_name == "float64" else 4
        xs, ws, ys = (2 * r * self.spec * k for k in (n * g * cig, p * g * cig * cog,
                                                       p * n * g * cog))
        xp_, wp, yr = (r * vol * k for k in (n * g * cig, p * g * cig * cog, p * n * g * cog))
        # cuFFT's work area is about one transform's output; it is freed with
        # the plan cache, so count the largest.
        self.workspace = (max(2 * xp_ + xs, xs + 2 * wp + ws, xs + ws + ys, 2 * ys + yr)
                          + r * math.prod(params.batched_output_shape))
        self.volumes = n * g * cig + p * g * cig * cog + p * n * g * cog
        self.macs = p * n * g * cig * cog * self.spec
        self.bytes = r * (2 * vol * self.volumes + 2 * self.spec * self.volumes
                          + math.prod(params.batched_output_shape)
                          + math.prod(params.input_shape) + math.prod(params.weight_shape))


@lru_cache(maxsize=512)
def one_pass_plan(params, dtype_name, budget):
    """The :class:`OnePassPlan` of a real-dtype call, or None where the call
    has no active phase, an empty batch or needs more than ``budget`` bytes
    (then the chunked path of :class:`_Call` runs)."""
    if dtype_name not in ("float32", "float64") or params.batch == 0:
        return None
    if not any(all(ph.taps for ph in t) for t in params.phases()):
        return None
    plan = OnePassPlan(params, dtype_name)
    if sum(f > 1 for f in plan.fft_shape) < 2:
        # cuFFT's multi-dimensional real plans reject arrays that are also
        # F-contiguous (one non-trivial axis); such lines take the chunked path.
        return None
    return plan if plan.workspace <= budget else None


class _DevicePlan:
    """Kernels, cuFFT plans and device tables of one :class:`OnePassPlan` on
    the current device.  A call is then four kernels, three cuFFT executions
    and five allocations from CuPy's pool, with no per-call planning."""

    def __init__(self, params, dtype_name, budget):
        import cupy
        from cupy.cuda import cufft
        from cupyx.scipy.fft import get_fft_plan

        from . import cuda

        self.plan = plan = one_pass_plan(params, "float32" if dtype_name == "float16"
                                         else dtype_name, budget)
        work = "float64" if dtype_name == "float64" else "float32"
        ctype = cuda._CTYPES[dtype_name]
        n, g = params.batch, params.groups
        cig, cog = params.in_channels_per_group, params.out_channels_per_group
        p = plan.n_phases
        fd, fh, fw = fs = plan.fft_shape
        vol = fd * fh * fw
        self.ob = 4 if cog >= 4 else 1
        n_mac = p * n * g * -(-cog // self.ob) * plan.spec
        n_out = math.prod(params.batched_output_shape)
        index_t = cuda._index_type(n * g * cig * vol, p * g * cig * cog * vol,
                                   p * n * g * cog * vol, n_mac, n_out,
                                   math.prod(params.input_shape))
        it = np.int32 if index_t == "int" else np.int64
        self.pad_x = cuda._kernel(f"xconvt_fft_pad_x<{ctype}, {index_t}>")
        self.pad_w = cuda._kernel(f"xconvt_fft_pad_w<{ctype}, {index_t}>")
        self.mac = cuda._kernel(f"xconvt_fft_mac<{cuda._CTYPES[work]}, {index_t}, {self.ob}>")
        self.crop = cuda._kernel(f"xconvt_fft_crop<{ctype}, {index_t}>")
        self.wtab = cupy.asarray(np.asarray(plan.wtab, np.int32))
        self.otab = cupy.asarray(np.asarray(plan.otab, np.int32))
        self.work = np.dtype(work)
        self.cwork = np.dtype("complex128" if work == "float64" else "complex64")
        self.shapes = dict(x=(n * g * cig,) + fs, w=(p * g * cig * cog,) + fs,
                           xs=(n * g * cig, fd, fh, fw // 2 + 1),
                           ws=(p * g * cig * cog, fd, fh, fw // 2 + 1),
                           y=(p * n * g * cog, fd, fh, fw // 2 + 1),
                           yr=(p * n * g * cog,) + fs)
        axes = (-3, -2, -1)

        def make(shape, dtype, value_type):
            probe = cupy.empty(shape, dtype=dtype)  # planning reads only shape and dtype
            return get_fft_plan(probe, shape=fs, axes=axes, value_type=value_type)

        self.fft_x = make(self.shapes["x"], self.work, "R2C")
        self.fft_w = make(self.shapes["w"], self.work, "R2C")
        self.ifft_y = make(self.shapes["y"], self.cwork, "C2R")
        self.forward, self.inverse = cufft.CUFFT_FORWARD, cufft.CUFFT_INVERSE
        i32 = np.int32
        nd, nh, nw = plan.counts
        n_x = n * g * cig * math.prod(params.in_size)
        n_w = p * g * cig * cog * math.prod(plan.lengths)
        self.launch = dict(
            x=(cuda.grid_1d(n_x),
               (it(n_x), *(i32(v) for v in params.in_size), i32(fd), i32(fh), i32(fw))),
            w=(cuda.grid_1d(n_w),
               (it(n_w), i32(g * cig * cog), *(i32(v) for v in params.kernel),
                *(i32(v) for v in plan.lengths), i32(fd), i32(fh), i32(fw), i32(nh), i32(nw),
                i32(plan.offsets[1]), i32(plan.offsets[2]))),
            mac=(cuda.grid_1d(n_mac),
                 (it(n_mac), it(plan.spec), i32(n), i32(g), i32(cig), i32(cog))),
            crop=(cuda.grid_1d(n_out),
                  (it(n_out), i32(n), i32(g), i32(cog), *(i32(v) for v in params.out_size),
                   i32(fd), i32(fh), i32(fw), i32(nh), i32(nw))),
        )
        self.scale = np.dtype(work).type(1.0 / vol)

    def __call__(self, params, x, w, b):
        """Queue the whole call; return the output and a device flag that is
        set where an input or weight is not finite."""
        import cupy

        x = cupy.ascontiguousarray(x)
        w = cupy.ascontiguousarray(w)
        sh, la, empty = self.shapes, self.launch, cupy.empty
        stream = cupy.cuda.get_current_stream().ptr
        memset = cupy.cuda.runtime.memsetAsync
        bad = empty(1, dtype=cupy.int32)
        memset(bad.data.ptr, 0, 4, stream)
        xpad = empty(sh["x"], dtype=self.work)
        memset(xpad.data.ptr, 0, xpad.nbytes, stream)  # the kernels write the data only
        grid, args = la["x"]
        self.pad_x(grid, (256,), (x, xpad, bad, *args))
        xs = empty(sh["xs"], dtype=self.cwork)
        self.fft_x.fft(xpad, xs, self.forward)
        del xpad
        wpad = empty(sh["w"], dtype=self.work)
        memset(wpad.data.ptr, 0, wpad.nbytes, stream)
        grid, args = la["w"]
        self.pad_w(grid, (256,), (w, wpad, self.wtab, bad, *args))
        ws = empty(sh["ws"], dtype=self.cwork)
        self.fft_w.fft(wpad, ws, self.forward)
        del wpad
        ys = empty(sh["y"], dtype=self.cwork)
        grid, args = la["mac"]
        self.mac(grid, (256,), (xs, ws, ys, *args))
        del xs, ws
        yr = empty(sh["yr"], dtype=self.work)
        self.ifft_y.fft(ys, yr, self.inverse)  # C2R: unnormalized, overwrites ys
        del ys
        out = empty(params.batched_output_shape, dtype=x.dtype)
        grid, args = la["crop"]
        self.crop(grid, (256,), (yr, x if b is None else b, out, self.otab, self.scale,
                                 np.int32(b is not None), *args))
        return out, bad


# Device plans hold cuFFT work areas, so only the few most recent are kept.
_DEVICE_PLANS = OrderedDict()
_DEVICE_PLANS_MAX = 8


def _device_plan(params, dtype_name, budget):
    import cupy

    key = (cupy.cuda.runtime.getDevice(), params, dtype_name, budget)
    plan = _DEVICE_PLANS.get(key)
    if plan is None:
        plan = _DevicePlan(params, dtype_name, budget)
        _DEVICE_PLANS[key] = plan
        while len(_DEVICE_PLANS) > _DEVICE_PLANS_MAX:
            _DEVICE_PLANS.popitem(last=False)
    else:
        _DEVICE_PLANS.move_to_end(key)
    return plan


def _one_pass(params, x, w, b):
    """The one-pass CuPy FFT, or None where :func:`one_pass_plan` declines."""
    name = dtype_name(x.dtype)
    budget = get_memory_budget()
    if one_pass_plan(params, "float32" if name == "float16" else name, budget) is None:
        return None
    out, bad = _device_plan(params, name, budget)(params, x, w, b)
    if int(bad.get()[0]):
        return _non_finite(params, x, w, b)
    return out


def _run(params, x, w, b):
    xp = array_namespace(x)
    if is_cupy_array(x):
        out = _one_pass(params, x, w, b)
        if out is not None:
            return out if out.dtype == x.dtype else xp.astype(out, x.dtype)
        # Enqueue the transforms first and read the finiteness flag last, so
        # the one synchronization waits on work already queued instead of
        # leaving the GPU idle while the host issues every transform.
        out = _Call(params, x, w, b).run()
        if not (all_finite(xp, x) and all_finite(xp, w)):
            out = _non_finite(params, x, w, b)
    elif all_finite(xp, x) and all_finite(xp, w):
        out = _Call(params, x, w, b).run()
    else:
        out = _non_finite(params, x, w, b)
    return out if out.dtype == x.dtype else xp.astype(out, x.dtype)


def _non_finite(params, x, w, b):
    """PyTorch's semantics for inf and NaN, which a transform would smear.

    PyTorch only multiplies existing inputs by taps, so an output becomes
    non-finite only if a non-finite product ``x[i] * w[k]`` reaches it.  The
    finite products come from the FFT of the inputs with their non-finite
    entries zeroed; the non-finite ones are counted per output by FFT
    transposed convolutions of indicator arrays (in float64, exact after
    rounding): NaN where some product is NaN (NaN times anything, inf times
    0) or where +inf and -inf products meet, else +-inf.  Complex results
    reached by any non-finite product become NaN + NaN j.  The bias is added
    last, so an infinite bias meets infinite products as in PyTorch.
    """
    xp = array_namespace(x)
    work = xp.float32 if x.dtype == xp.float16 else x.dtype
    zero = xp.zeros((), dtype=x.dtype)
    xf = xp.where(xp.isfinite(x), x, zero)
    wf = xp.where(xp.isfinite(w), w, zero)
    out = _Call(params, xf, wf, None).run()
    xf = wf = None

    def ind(mask):
        return xp.astype(mask, xp.float64)

    def conv(a, k):
        return _Call(params, a, k, None).run() > 0.5

    if xp.isdtype(x.dtype, "complex floating"):
        x_bad, w_bad = ind(~xp.isfinite(x)), ind(~xp.isfinite(w))
        reach = conv(x_bad, xp.ones_like(w_bad)) | conv(xp.ones_like(x_bad), w_bad)
        out[reach] = complex("nan+nanj")
    else:
        xs, ws = [], []
        for a, acc in ((x, xs), (w, ws)):
            finite = xp.isfinite(a)
            acc.extend(ind(m) for m in (
                a == xp.inf, a == -xp.inf, xp.isnan(a),
                finite & (a > 0), finite & (a < 0), a == 0))
        (xpi, xni, xnan, xpos, xneg, xzero), (wpi, wni, wnan, wpos, wneg, wzero) = xs, ws
        pos = conv(xpi, wpos + wpi) | conv(xni, wneg + wni) | conv(xpos, wpi) | conv(xneg, wni)
        neg = conv(xpi, wneg + wni) | conv(xni, wpos + wpi) | conv(xpos, wni) | conv(xneg, wpi)
        nan = (conv(xnan, xp.ones_like(wnan)) | conv(xp.ones_like(xnan), wnan)
               | conv(xpi + xni, wzero) | conv(xzero, wpi + wni))
        nan |= pos & neg
        out[nan] = xp.nan
        out[pos & ~nan] = xp.inf
        out[neg & ~nan] = -xp.inf
    if b is not None:
        g, cog = params.groups, params.out_channels_per_group
        out6 = xp.reshape(out, (params.batch, g, cog) + params.out_size)
        out6 += xp.reshape(xp.astype(b, work), (1, g, cog, 1, 1, 1))
    return out
