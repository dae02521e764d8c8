"""CPU backend draft v3."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._config import get_memory_budget

__all__ = ["direct"]

FORCE = None  # experiment hook: None, "A", ("B", m)
CHUNK_BYTES = 8 * 2**20
HALO = 4


THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
PAR_MIN = 1 << 16
_pool = None


def _copy(dst, src):
    """``dst[...] = src``, split over threads when large (NumPy copies drop the GIL)."""
    global _pool
    n = THREADS
    ax = next((i for i, e in enumerate(dst.shape) if e >= n), None)
    if n < 2 or dst.size < PAR_MIN or ax is None:
        np.copyto(dst, src)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(n - 1, thread_name_prefix="xconvt")
    src = np.broadcast_to(src, dst.shape)
    e = dst.shape[ax]
    parts = [(slice(None),) * ax + (slice(e * i // n, e * (i + 1) // n),) for i in range(n)]
    futs = [_pool.submit(np.copyto, dst[s], src[s]) for s in parts[1:]]
    np.copyto(dst[parts[0]], src[parts[0]])
    for f in futs:
        f.result()


def direct(params, x, w, b):
    wdt = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    out = np.empty(params.batched_output_shape, wdt)
    w = w.astype(wdt, copy=False)
    b = None if b is None else b.astype(wdt, copy=False)
    if params.is_pure_upsample:
        _upsample(params, x, w, b, out)
    else:
        mode = FORCE or "A"
        form = _ChannelGemm(params, w) if mode == "A" else _ToeplitzW(params, w, mode[1])
        _phase_split(params, x, b, out, form)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


def _target():
    return min(get_memory_budget(), CHUNK_BYTES)


# --------------------------------------------------------------- pure upsample
def _upsample(params, x, w, b, out):
    N = params.batch
    G = params.groups
    Cig, Cog = params.in_channels_per_group, params.out_channels_per_group
    kd, kh, kw = params.kernel
    D, H, W = params.in_size
    T = kd * kh * kw
    wm = np.ascontiguousarray(w.reshape(G, Cig, Cog * T).transpose(0, 2, 1))
    isz = out.itemsize
    per_plane = (params.out_channels * T + params.in_channels) * H * W * isz
    dc = max(1, min(D, _target() // per_plane))
    out8 = out.reshape(N, G, Cog, D, kd, H, kh, W, kw)
    buf = np.empty(G * Cog * T * dc * H * W, out.dtype)
    for n in range(N):
        xn = x[n].reshape(G, Cig, D, H * W)
        for d0 in range(0, D, dc):
            d1 = min(D, d0 + dc)
            xs = xn[:, :, d0:d1].reshape(G, Cig, -1)
            if xs.dtype != out.dtype:
                xs = xs.astype(out.dtype)
            c = buf[:G * Cog * T * (d1 - d0) * H * W].reshape(G, Cog * T, -1)
            np.matmul(wm, xs, out=c)
            c = c.reshape(G, Cog, kd, kh, kw, d1 - d0, H, W)
            if b is not None:
                c += b.reshape(G, Cog, 1, 1, 1, 1, 1, 1)
            for a in range(kd):
                for bb in range(kh):
                    for cc in range(kw):
                        _copy(out8[n, :, :, d0:d1, a, :, bb, :, cc], c[:, :, a, bb, cc])


# ---------------------------------------------------------------- phase split
def _padded_weight(params, w):
    G, Cig, Cog = params.groups, params.in_channels_per_group, params.out_channels_per_group
    wz = np.zeros((G, Cig, Cog) + params.kernel[:2] + (params.kernel[2] + 1,), w.dtype)
    wz[..., :-1] = w.reshape(G, Cig, Cog, *params.kernel)
    return wz


class _ChannelGemm:
    """Channel GEMM per (D, H, W) phase; H/W taps folded by flat-offset copies."""

    def __init__(self, params, w):
        self.p = params
        axh, axw = params.axis_phases[1:]
        self.phs = [ph for ph in axh if ph.count and ph.taps]
        self.pws = [pw for pw in axw if pw.count and pw.taps]
        self.units = [(ph, pw) for ph in self.phs for pw in self.pws]
        self.w = w
        W = params.in_size[2]
        if self.pws:
            self.plo_w = max(pw.pad_lo for pw in self.pws)
            self.Wp = self.plo_w + W + max(pw.pad_hi(W) for pw in self.pws)

    def covers_w_gaps(self):
        return False

    def setup(self, pds, plo_h, Hp):
        p = self.p
        G, Cog = p.groups, p.out_channels_per_group
        wz = _padded_weight(p, self.w)
        self.wts = {}
        for pd in pds:
            for ph, pw in self.units:
                t = wz[:, :, :, list(pd.taps)][:, :, :, :, list(ph.taps)][..., list(pw.taps)]
                self.wts[pd, ph, pw] = np.ascontiguousarray(
                    t.transpose(3, 0, 2, 1, 4, 5).reshape(len(pd.taps), G, Cog, -1))
        self.plo_h, self.Hp = plo_h, Hp
        HpWp = Hp * self.Wp
        self.p_per = sum(len(ph.taps) * len(pw.taps) * ph.count for ph, pw in self.units) * self.Wp
        self.acc_per = Cog * max(ph.count for ph in self.phs) * self.Wp
        self.slack = max(self.plo_w + pw.base + (len(pw.taps) - 1) * pw.step for pw in self.pws)

    def chunk(self, ck):
        p = self.p
        Cig, Cog = p.in_channels_per_group, p.out_channels_per_group
        sd, sh, sw = p.stride
        Wp, Hp = self.Wp, self.Hp
        HpWp = Hp * Wp
        nn, gg, Sd, isz = ck.nn, ck.gg, ck.Sd, ck.isz
        cs = Sd * HpWp * isz
        Pms = []
        pos = 0
        for ph, pw in self.units:
            Th, Tw = len(ph.taps), len(pw.taps)
            A = ph.count * Wp
            off0 = (self.plo_h + ph.base) * Wp + self.plo_w + pw.base
            size = nn * gg * Cig * Th * Tw * Sd * A
            P = ck.p_buf[pos:pos + size].reshape(nn, gg, Cig, Th, Tw, Sd, A)
            pos += size
            _copy(P, as_strided(ck.slab_flat[off0:], shape=P.shape,
                                strides=(gg * Cig * cs, Cig * cs, cs, ph.step * Wp * isz,
                                         pw.step * isz, HpWp * isz, isz), writeable=False))
            Pms.append(P.reshape(nn, gg, Cig * Th * Tw, Sd * A))
        for pd in ck.pds:
            jc = min(ck.j1, pd.count) - ck.j0
            if jc <= 0:
                continue
            d0 = pd.first + sd * ck.j0
            dsel = slice(d0, d0 + sd * (jc - 1) + 1, sd)
            for (ph, pw), Pm in zip(self.units, Pms):
                A = ph.count * Wp
                wt = self.wts[pd, ph, pw][:, ck.g0:ck.g1]
                acc = ck.acc_buf[:nn * gg * Cog * jc * A].reshape(nn, gg, Cog, jc * A)
                tmp = ck.tmp_buf[:acc.size].reshape(acc.shape)
                for ud in range(len(pd.taps)):
                    dd0 = pd.base + ck.j0 + ud * pd.step - ck.lo
                    cols = Pm[..., dd0 * A:(dd0 + jc) * A]
                    if ud == 0:
                        np.matmul(wt[ud], cols, out=acc)
                    else:
                        np.matmul(wt[ud], cols, out=tmp)
                        acc += tmp
                if ck.bias is not None:
                    acc += ck.bias[..., 0, 0]
                a6 = acc.reshape(nn, gg, Cog, jc, ph.count, Wp)[..., :pw.count]
                _copy(ck.out[..., dsel, ph.first::sh, pw.first::sw], a6)


class _ToeplitzW:
    """W axis as a blocked banded (Toeplitz) matrix; H taps by im2col; D taps looped."""

    def __init__(self, params, w, m):
        self.p = params
        self.w = w
        axh = params.axis_phases[1]
        self.phs = [ph for ph in axh if ph.count and ph.taps]
        self.units = self.phs
        I, K, s, pad, d, O = (params.in_size[2], params.kernel[2], params.stride[2],
                              params.padding[2], params.dilation[2], params.out_size[2])
        self.m = m
        self.Bw = Bw = m * s
        self.ilo = ilo = -(((K - 1) * d - pad) // s)
        self.width = width = (Bw - 1 + pad) // s - ilo + 1
        self.nb = nb = -(-O // Bw)
        q = np.arange(width)[:, None]
        t = np.arange(Bw)[None, :]
        r = t + pad - (ilo + q) * s
        self.kidx = np.where((r >= 0) & (r % d == 0) & (r // d < K), r // d, K)
        self.plo_w = max(0, -ilo)
        self.Wp = self.plo_w + I + max(0, (nb - 1) * m + ilo + width - I)

    def covers_w_gaps(self):
        return True

    def setup(self, pds, plo_h, Hp):
        p = self.p
        G, Cig = p.groups, p.in_channels_per_group
        wz = _padded_weight(p, self.w)
        self.wts = {}
        for pd in pds:
            for ph in self.phs:
                t = wz[:, :, :, list(pd.taps)][:, :, :, :, list(ph.taps)][..., self.kidx]
                self.wts[pd, ph] = np.ascontiguousarray(
                    t.transpose(3, 0, 1, 4, 5, 2, 6).reshape(
                        len(pd.taps), G, Cig * len(ph.taps) * self.width, -1))
        self.plo_h, self.Hp = plo_h, Hp
        self.p_per = max(len(ph.taps) * ph.count for ph in self.phs) * self.nb * self.width
        self.acc_per = p.out_channels_per_group * max(ph.count for ph in self.phs) * self.nb * self.Bw
        self.slack = 0

    def chunk(self, ck):
        p = self.p
        Cig, Cog = p.in_channels_per_group, p.out_channels_per_group
        sd, sh, sw = p.stride
        OW = p.out_size[2]
        m, width, nb, Bw = self.m, self.width, self.nb, self.Bw
        nn, gg, Sd = ck.nn, ck.gg, ck.Sd
        st = ck.slab.strides
        for ph in self.phs:
            Oh, Th = ph.count, len(ph.taps)
            P = ck.p_buf[:nn * gg * Sd * Oh * nb * Cig * Th * width].reshape(
                nn, gg, Sd, Oh, nb, Cig, Th, width)
            hs = self.plo_h + ph.base
            _copy(P, as_strided(ck.slab[:, :, :, hs:, self.plo_w + self.ilo:], shape=P.shape,
                                strides=(st[0], Cig * st[1], st[2], st[3], m * st[4], st[1],
                                         ph.step * st[3], st[4]), writeable=False))
            R = Oh * nb
            Pm = P.reshape(nn, gg, Sd * R, Cig * Th * width)
            for pd in ck.pds:
                jc = min(ck.j1, pd.count) - ck.j0
                if jc <= 0:
                    continue
                wt = self.wts[pd, ph][:, ck.g0:ck.g1]
                acc = ck.acc_buf[:nn * gg * jc * R * Cog * Bw].reshape(nn, gg, jc * R, Cog * Bw)
                tmp = ck.tmp_buf[:acc.size].reshape(acc.shape)
                for ud in range(len(pd.taps)):
                    dd0 = pd.base + ck.j0 + ud * pd.step - ck.lo
                    rows = Pm[:, :, dd0 * R:(dd0 + jc) * R]
                    if ud == 0:
                        np.matmul(rows, wt[ud], out=acc)
                    else:
                        np.matmul(rows, wt[ud], out=tmp)
                        acc += tmp
                a7 = acc.reshape(nn, gg, jc, Oh, nb, Cog, Bw).transpose(0, 1, 5, 2, 3, 4, 6)
                if ck.bias is not None:
                    a7 += ck.bias[..., None]
                d0 = pd.first + sd * ck.j0
                dst = ck.out[..., d0:d0 + sd * (jc - 1) + 1:sd, ph.first::sh, :]
                nf = OW // Bw
                if nf:
                    _copy(dst[..., :nf * Bw].reshape(dst.shape[:-1] + (nf, Bw)), a7[..., :nf, :])
                if nf < nb:
                    dst[..., nf * Bw:] = a7[..., nf, :OW - nf * Bw]


class _Chunk:
    pass


def _plan(ws, N, G, jmax, span, target):
    """Pick (nc, gc, dc): batch, group and depth chunk sizes."""
    if ws(1, G, jmax) <= target:
        return max(1, min(N, target // ws(1, G, jmax))), G, jmax
    dmin = min(jmax, max(1, HALO * span))
    gc = G
    while gc > 1 and ws(1, gc, dmin) > target:
        gc = (gc + 1) // 2
    lo, hi = 1, jmax
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ws(1, gc, mid) <= target:
            lo = mid
        else:
            hi = mid - 1
    return 1, gc, lo


def _phase_split(params, x, b, out, form):
    N = params.batch
    G = params.groups
    Cig, Cog = params.in_channels_per_group, params.out_channels_per_group
    D, H, W = params.in_size
    OD, OH, OW = params.out_size
    axd, axh, axw = params.axis_phases
    sd, sh, sw = params.stride
    dt = out.dtype
    isz = dt.itemsize
    out6 = out.reshape(N, G, Cog, OD, OH, OW)
    bv = None if b is None else b.reshape(1, G, Cog, 1, 1, 1)

    pds = [pd for pd in axd if pd.count and pd.taps]
    # outputs reached by no tap get only the bias
    for pd in axd:
        for ph in axh:
            for pw in axw:
                if pd.count and ph.count and pw.count and not (
                        pd.taps and ph.taps and (pw.taps or form.covers_w_gaps())):
                    v = out6[:, :, :, pd.first::sd, ph.first::sh, pw.first::sw]
                    v[...] = 0 if bv is None else bv
    if not pds or not form.units:
        return
    phs = form.phs
    plo_h = max(ph.pad_lo for ph in phs)
    Hp = plo_h + H + max(ph.pad_hi(H) for ph in phs)
    form.setup(pds, plo_h, Hp)
    plo_w, Wp = form.plo_w, form.Wp
    HpWp = Hp * Wp

    jmax = max(pd.count for pd in pds)
    lo_off = min(pd.base for pd in pds)
    span = max(pd.base + (len(pd.taps) - 1) * pd.step for pd in pds) - lo_off

    def ws(nc, gc, dc):
        return isz * nc * gc * (Cig * (dc + span) * (HpWp + form.p_per) + 2 * dc * form.acc_per)

    nc, gc, dc = _plan(ws, N, G, jmax, span, _target())
    Sd = dc + span
    slab_buf = np.zeros(nc * gc * Cig * Sd * HpWp + form.slack, dt)
    ck = _Chunk()
    ck.isz, ck.Sd, ck.pds = isz, Sd, pds
    ck.p_buf = np.empty(nc * gc * Cig * Sd * form.p_per, dt) if form.p_per else None
    ck.acc_buf = np.empty(nc * gc * dc * form.acc_per, dt)
    ck.tmp_buf = np.empty(nc * gc * dc * form.acc_per, dt)

    for n0 in range(0, N, nc):
        n1 = min(N, n0 + nc)
        for g0 in range(0, G, gc):
            g1 = min(G, g0 + gc)
            ck.nn, ck.gg, ck.g0, ck.g1 = n1 - n0, g1 - g0, g0, g1
            ck.slab_flat = slab_buf[:ck.nn * ck.gg * Cig * Sd * HpWp + form.slack]
            ck.slab = ck.slab_flat[:ck.nn * ck.gg * Cig * Sd * HpWp].reshape(
                ck.nn, ck.gg * Cig, Sd, Hp, Wp)
            ck.out = out6[n0:n1, g0:g1]
            ck.bias = None if bv is None else bv[:, g0:g1]
            xs = x[n0:n1, g0 * Cig:g1 * Cig]
            inner = ck.slab[:, :, :, plo_h:plo_h + H, plo_w:plo_w + W]
            for j0 in range(0, jmax, dc):
                j1 = min(jmax, j0 + dc)
                lo = lo_off + j0
                a0, a1 = max(lo, 0), min(lo + Sd, D)
                if a1 > a0:
                    _copy(inner[:, :, a0 - lo:a1 - lo], xs[:, :, a0:a1])
                if a0 > lo:
                    inner[:, :, :a0 - lo] = 0
                if lo + Sd > max(a1, lo):
                    inner[:, :, max(a1, lo) - lo:] = 0
                ck.j0, ck.j1, ck.lo = j0, j1, lo
                form.chunk(ck)
