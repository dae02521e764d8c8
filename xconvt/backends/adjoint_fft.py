"""conv3d and the weight gradient by FFT, written once for scipy.fft and cupyx.scipy.fft.

Both are correlations with the output-side volume ``y`` of the transposed
convolution ``params`` (``ypad[m] = y[m - p]``, zero outside ``[0, O)``)::

    conv3d        x[c, i]     = sum_{o, k} w[c, o, k] * ypad[o, i*s + k*d]
    weight_grad   dw[c, o, k] = sum_{n, i} x[n, c, i] * ypad[n, o, i*s + k*d]

Split by stride phase of ``y``, per axis: taps ``k`` with ``k*d = q*s + r``
read ``Y_r[i + q]`` where ``Y_r[m] = ypad[m*s + r]``; the phase's taps, in
ascending order ``ks``, sit at ``q = qa + v*step`` (``step = d / gcd(s, d)``),
so with the segment ``seg_r[m] = Y_r[qa + m]`` (``m < S = I + Lmax - 1``,
``L_r = (len(ks) - 1)*step + 1``)::

    conv3d        x[i]       = sum_v w[ks[v]] seg_r[i + v*step]
    weight_grad   dw[ks[v]]  = sum_i x[i] seg_r[i + v*step]

Both are rows of linear convolutions computed by FFT at one size
``F >= S`` per axis (``next_fast_len``): conv3d convolves ``seg_r`` with the
phase's reversed sub-kernel placed to end at ``Lmax - 1`` and keeps rows
``[Lmax - 1, Lmax - 1 + I)``; all phases share that crop, so their spectra
are summed (channels contracted per frequency) and transformed back once.
The weight gradient convolves ``seg_r`` with the reversed ``x`` and keeps
rows ``I - 1 + v*step`` of each phase; the batch is contracted per frequency
(a fixed summation order: batch chunks, then phases, in sequence).

Transforms run axis by axis: forward from W (the zeros that extend the small
sub-kernels are not transformed along W and H), inverse from D, cropping to the
kept rows after each axis.  Channels are contracted per frequency by broadcast
multiply-adds for few channel pairs, else by batched matmuls (channels moved
last).  Work is chunked over batch elements and groups so that the spectra fit
``xconvt.get_memory_budget()``; the planner declines when one batch element of
one group does not.  Inputs holding inf or NaN go to the GEMM path (a
transform would spread them over the whole volume); that check reads one flag
back to the host on CuPy.  float16 is computed in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
from array_api_compat import is_cupy_array

from .._plan import FunctionPlan

__all__ = ["conv3d", "plan_conv3d", "plan_weight_grad", "weight_grad"]

# Seconds per unit on the 2-core bench machine (float32; bench/NOTES.md): one
# element-log2 of transform work, one complex multiply-add, one call overhead
# (per chunk and phase: 0.3 ms measured on small layers, "Small gradients on
# the CPU"; 0.03 ms before, which sent 0.1 ms layers to a 0.5 ms FFT).
_CPU = {"fft": 0.45e-9, "mac": 1.0e-9, "call": 3e-4}
_GPU = {"fft": 4e-12, "mac": 2e-11, "call": 3e-5}


@dataclass(frozen=True)
class _AxisPhase:
    r: int        # residue of the y index mod s
    qa: int       # offset of the first tap in Y_r
    ks: tuple     # kernel indices, ascending
    step: int     # spacing of the taps in Y_r

    @property
    def length(self):
        return (len(self.ks) - 1) * self.step + 1


def _axis(I, K, s, d):
    step = d // math.gcd(s, d)
    out = []
    for r in range(s):
        ks = tuple(k for k in range(K) if (k * d) % s == r)
        if ks:
            out.append(_AxisPhase(r, (ks[0] * d - r) // s, ks, step))
    lmax = max(ph.length for ph in out)
    return tuple(out), lmax, I + lmax - 1


class _Geometry:
    def __init__(self, params, kind, real):
        from .fft.sizes import fast_len_fn

        fast = fast_len_fn(kind)
        self.params = params
        axes = [_axis(params.in_size[a], params.kernel[a], params.stride[a],
                      params.dilation[a]) for a in range(3)]
        self.phases = tuple(a[0] for a in axes)
        self.lmax = tuple(a[1] for a in axes)
        self.seg = tuple(a[2] for a in axes)
        self.fft_shape = tuple(fast(self.seg[a], real=real and a == 2) for a in range(3))
        nf = self.fft_shape
        self.freqs = nf[0] * nf[1] * (nf[2] // 2 + 1 if real else nf[2])

    def n_phases(self):
        return math.prod(len(p) for p in self.phases)


def _lib(a):
    if is_cupy_array(a):
        import cupy as xp
        import cupyx.scipy.fft as sfft

        return xp, sfft, {}
    import scipy.fft as sfft

    from .cpu import available_cpus

    return np, sfft, {"workers": available_cpus()}


def _segment(xp, geo, y, ph, dtype):
    """``seg[n, c, m...] = ypad[n, c, (qa + m)*s + r]`` per axis, zero outside ``y``."""
    p = geo.params
    out = xp.zeros(y.shape[:2] + geo.seg, dtype)
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for a in range(3):
        s, S, O = p.stride[a], geo.seg[a], p.out_size[a]
        off = ph[a].qa * s + ph[a].r - p.padding[a]
        lo = 0 if off >= 0 else -(off // s)
        hi = min(S, (O - 1 - off) // s + 1) if O - 1 - off >= 0 else 0
        if hi <= lo:
            return out
        dst.append(slice(lo, hi))
        src.append(slice(lo * s + off, (hi - 1) * s + off + 1, s))
    out[tuple(dst)] = y[tuple(src)]
    return out


def _tap_index(ph, length, reverse):
    """Per axis, positions of the phase's taps in a length-``length`` kernel."""
    pos = [v * ph.step for v in range(len(ph.ks))]
    return [length - 1 - q for q in pos] if reverse else pos


def _forward(sfft, kw, a, geo, real):
    """Spectrum of ``a`` zero-extended to the FFT shape, axis by axis from W, so
    that the zeros of small operands (the sub-kernels) are not transformed
    along the first axes."""
    fd, fh, fw = geo.fft_shape
    a = (sfft.rfft if real else sfft.fft)(a, n=fw, axis=-1, **kw)
    a = sfft.fft(a, n=fh, axis=-2, overwrite_x=True, **kw)
    return sfft.fft(a, n=fd, axis=-3, overwrite_x=True, **kw)


def _inverse(sfft, kw, a, geo, real, keep):
    """Inverse transform keeping rows ``keep`` (3 slices), axis by axis from D,
    cropping after each axis so that later axes transform only kept rows."""
    fd, fh, fw = geo.fft_shape
    a = sfft.ifft(a, n=fd, axis=-3, overwrite_x=True, **kw)[..., keep[0], :, :]
    a = sfft.ifft(a, n=fh, axis=-2, overwrite_x=True, **kw)[..., keep[1], :]
    return (sfft.irfft if real else sfft.ifft)(a, n=fw, axis=-1, **kw)[..., keep[2]]


_FEW_CHANNEL_PAIRS = 16
"""Up to this many channel pairs per group, channels are contracted by broadcast
multiply-adds on channels-first spectra; beyond, by a batched matmul per
frequency on channels-last views (a matmul of tiny matrices per frequency
costs more than the arithmetic)."""


def _matmul_layout(cig, cog):
    return cig * cog > _FEW_CHANNEL_PAIRS


def _from_chan_last(xp, a, dest):
    """``(*f, a0, a1, a2) -> `` the three trailing axes moved to ``dest``."""
    return xp.moveaxis(a, (-3, -2, -1), dest)


def _contract_conv3d(xp, kf, sf, acc):
    """``acc[n, g, c, f] += sum_o kf[g, c, o, f] * sf[n, g, o, f]``.

    Channels-first result for few channels, else channels-last ``(*f, g, c, n)``.
    """
    cig, cog = kf.shape[1], kf.shape[2]
    if _matmul_layout(cig, cog):
        k = xp.moveaxis(kf, (0, 1, 2), (-3, -2, -1))                  # (*f, g, c, o)
        s = xp.moveaxis(sf, (0, 1, 2), (-1, -3, -2))                  # (*f, g, o, n)
        prod = xp.matmul(k, s)
        return prod if acc is None else acc.__iadd__(prod)
    for o in range(cog):
        term = kf[None, :, :, o] * sf[:, :, o:o + 1]
        acc = term if acc is None else acc.__iadd__(term)
    return acc


def _contract_weight(xp, xf, sf):
    """``out[g, c, o, f] = sum_n xf[n, g, c, f] * sf[n, g, o, f]`` (channels first)."""
    cig, cog = xf.shape[2], sf.shape[2]
    if _matmul_layout(cig, cog):
        a = xp.moveaxis(xf, (0, 1, 2), (-1, -3, -2))                  # (*f, g, c, n)
        b = xp.moveaxis(sf, (0, 1, 2), (-2, -3, -1))                  # (*f, g, n, o)
        return _from_chan_last(xp, xp.matmul(a, b), (0, 1, 2))
    out = None
    for n in range(xf.shape[0]):
        term = xf[n][:, :, None] * sf[n][:, None, :]
        out = term if out is None else out.__iadd__(term)
    return out


def _budget_chunks(geo, params, itemsize, budget, op):
    """(batch chunk, group chunk) whose spectra fit ``budget``, or None."""
    cs = 2 * itemsize
    f = geo.freqs
    seg = math.prod(geo.seg)
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    vol = math.prod(params.in_size)

    def ws(nb, gc):
        if op == "conv3d":
            return (nb * gc * cog * (seg * itemsize + 2 * f * cs) + gc * cig * cog * 2 * f * cs
                    + 2 * nb * gc * cig * f * cs + nb * gc * cig * vol * itemsize)
        return (nb * gc * cog * (seg * itemsize + 2 * f * cs) + 2 * nb * gc * cig * f * cs
                + 3 * gc * cig * cog * f * cs)

    G, N = params.groups, params.batch
    for gc in (G, 1):
        nb = N
        while nb > 1 and ws(nb, gc) > budget:
            nb = -(-nb // 2)
        if ws(nb, gc) <= budget:
            return nb, gc, ws(nb, gc)
    return None


def _run_conv3d(params, y, w, b, budget):
    xp, sfft, kw = _lib(y)
    dtype = xp.dtype(xp.float32) if y.dtype == xp.float16 else y.dtype
    real = xp.dtype(dtype).kind != "c"
    geo = _Geometry(params, "cupy" if xp is not np else "numpy", real)
    nb, gc, _ = _budget_chunks(geo, params, xp.dtype(dtype).itemsize, budget, "conv3d")
    G, cig, cog = params.groups, params.in_channels_per_group, params.out_channels_per_group
    N = params.batch
    w6 = w.astype(dtype, copy=False).reshape((G, cig, cog) + params.kernel)
    x = xp.empty((N, G, cig) + params.in_size, dtype)
    crop = tuple(slice(lm - 1, lm - 1 + i) for lm, i in zip(geo.lmax, params.in_size))
    for n0, g0 in product(range(0, N, nb), range(0, G, gc)):
        ns, gs = slice(n0, min(N, n0 + nb)), slice(g0, min(G, g0 + gc))
        yc = y[ns].reshape((-1, G, cog) + params.out_size)[:, gs]
        yc = yc.reshape((-1, (gs.stop - gs.start) * cog) + params.out_size)
        acc = None
        for ph in product(*geo.phases):
            seg = _segment(xp, geo, yc, ph, dtype)
            seg = seg.reshape((seg.shape[0], -1, cog) + geo.seg)
            sf = _forward(sfft, kw, seg, geo, real)                    # (n, g, o, *f)
            ker = xp.zeros((gs.stop - gs.start, cig, cog) + geo.lmax, dtype)
            idx = [_tap_index(ph[a], geo.lmax[a], True) for a in range(3)]
            ks = [list(ph[a].ks) for a in range(3)]
            ker[:, :, :, xp.asarray(idx[0])[:, None, None], xp.asarray(idx[1])[None, :, None],
                xp.asarray(idx[2])[None, None, :]] = w6[gs][
                :, :, :, xp.asarray(ks[0])[:, None, None], xp.asarray(ks[1])[None, :, None],
                xp.asarray(ks[2])[None, None, :]]
            kf = _forward(sfft, kw, ker, geo, real)                    # (g, c, o, *f)
            acc = _contract_conv3d(xp, kf, sf, acc)
        acc = _from_chan_last(xp, acc, (1, 2, 0)) if _matmul_layout(cig, cog) else acc
        x[ns, gs] = _inverse(sfft, kw, acc, geo, real, crop)
    x = x.reshape(params.input_shape)
    if b is not None:
        x += b.astype(dtype, copy=False).reshape(1, -1, 1, 1, 1)
    return x


def _run_weight_grad(params, x, gy, budget):
    xp, sfft, kw = _lib(x)
    dtype = xp.dtype(xp.float32) if x.dtype == xp.float16 else x.dtype
    real = xp.dtype(dtype).kind != "c"
    geo = _Geometry(params, "cupy" if xp is not np else "numpy", real)
    nb, gc, _ = _budget_chunks(geo, params, xp.dtype(dtype).itemsize, budget,
                               "weight_grad")
    G, cig, cog = params.groups, params.in_channels_per_group, params.out_channels_per_group
    N = params.batch
    dw = xp.zeros((G, cig, cog) + params.kernel, dtype)
    I = params.in_size
    for n0, g0 in product(range(0, N, nb), range(0, G, gc)):
        ns, gs = slice(n0, min(N, n0 + nb)), slice(g0, min(G, g0 + gc))
        xc = x[ns].reshape((-1, G, cig) + I)[:, gs][..., ::-1, ::-1, ::-1]
        xf = _forward(sfft, kw, xp.ascontiguousarray(xc), geo, real)  # (n, g, c, *f)
        yc = gy[ns].reshape((-1, G, cog) + params.out_size)[:, gs]
        yc = yc.reshape((-1, (gs.stop - gs.start) * cog) + params.out_size)
        for ph in product(*geo.phases):
            seg = _segment(xp, geo, yc, ph, dtype)
            seg = seg.reshape((seg.shape[0], -1, cog) + geo.seg)
            sf = _forward(sfft, kw, seg, geo, real)                    # (n, g, o, *f)
            cf = xp.ascontiguousarray(_contract_weight(xp, xf, sf))   # (g, c, o, *f)
            rows = [[I[a] - 1 + q for q in _tap_index(ph[a], 0, False)] for a in range(3)]
            keep = tuple(slice(r[0], r[-1] + 1) for r in rows)
            z = _inverse(sfft, kw, cf, geo, real, keep)                # (g, c, o, *kept)
            rows = [[v - r[0] for v in r] for r in rows]
            ks = [list(ph[a].ks) for a in range(3)]
            dw[gs][:, :, :, xp.asarray(ks[0])[:, None, None], xp.asarray(ks[1])[None, :, None],
                   xp.asarray(ks[2])[None, None, :]] += z[
                :, :, :, xp.asarray(rows[0])[:, None, None], xp.asarray(rows[1])[None, :, None],
                xp.asarray(rows[2])[None, None, :]]
    return dw.reshape(params.weight_shape)


def _finite(*arrays):
    from .cpu import all_finite

    for a in arrays:
        xp = _lib(a)[0]
        if not all_finite(xp, a):
            return False
    return True


def conv3d(params, y, w, b=None, budget=None):
    """conv3d (the adjoint of ``params``' transposed convolution) by FFT.

    Same operands and result as :func:`xconvt.backends.adjoint.conv3d`.
    """
    from .._config import get_memory_budget
    from . import adjoint

    if not _finite(y, w):
        return adjoint.conv3d(params, y, w, b)
    out = _run_conv3d(params, y, w, b, get_memory_budget() if budget is None else budget)
    return out if out.dtype == y.dtype else out.astype(y.dtype)


def weight_grad(params, x, gy, budget=None):
    """Weight gradient of ``params``' transposed convolution by FFT."""
    from .._config import get_memory_budget
    from . import adjoint

    if not _finite(x, gy):
        return adjoint.weight_grad(params, x, gy)
    out = _run_weight_grad(params, x, gy,
                           get_memory_budget() if budget is None else budget)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


# ---------------------------------------------------------------- planners
def _planner(problem, op, fn):
    if problem.op != op:
        return f"computes {op}, not {problem.op}"
    if problem.dtype == "bfloat16":
        return "bfloat16 has no FFT"
    params = problem.params
    real = not problem.dtype.startswith("complex")
    gpu = problem.device.kind == "cuda"
    geo = _Geometry(params, "cupy" if gpu else "numpy", real)
    itemsize = 8 if problem.dtype in ("float64", "complex128") else 4
    chunks = _budget_chunks(geo, params, itemsize, problem.budget, op)
    if chunks is None:
        return (f"the spectra of one batch element and group exceed the memory budget "
                f"({problem.budget} bytes)")
    nb, gc, workspace = chunks
    c = _GPU if gpu else _CPU
    wide = 2.0 if itemsize == 8 else 1.0
    nf = math.prod(geo.fft_shape)
    logn = math.log2(max(2, nf))
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    N, G, P = params.batch, params.groups, geo.n_phases()
    n_chunks = -(-N // nb) * -(-G // gc)
    if op == "conv3d":
        transforms = P * (N * G * cog + n_chunks * G * cig * cog) + N * G * cig
    else:
        transforms = N * G * cig + P * (N * G * cog + n_chunks * G * cig * cog)
    macs = P * N * G * cig * cog * geo.freqs * (1 if real else 2)
    t = wide * (transforms * nf * logn * c["fft"] * (0.5 if real else 1.0)
                + macs * c["mac"] * 4) + n_chunks * P * c["call"]
    name = ("cuda" if gpu else "cpu") + f".fft_{op}"
    budget = problem.budget
    return FunctionPlan(name, "fft", t, lambda *ops: fn(params, *ops, budget=budget),
                        workspace)


def plan_conv3d(problem):
    """Planner: conv3d by FFT (large kernels)."""
    return _planner(problem, "conv3d", conv3d)


def plan_weight_grad(problem):
    """Planner: the weight gradient by FFT (large kernels)."""
    return _planner(problem, "weight_grad", weight_grad)
