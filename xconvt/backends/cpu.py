"""CPU backend draft."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._config import get_memory_budget

__all__ = ["direct"]

FORCE = None  # experiment hook: None, "A", ("B", m)


def direct(params, x, w, b):
    wdt = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    out = np.empty(params.batched_output_shape, wdt)
    w = w.astype(wdt, copy=False)
    b = None if b is None else b.astype(wdt, copy=False)
    if params.is_pure_upsample:
        _upsample(params, x, w, b, out)
    else:
        _phase_split(params, x, w, b, out)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


def _bias_view(b, G, Cog, ndim_after):
    return b.reshape((1, G, Cog) + (1,) * ndim_after)


# --------------------------------------------------------------- pure upsample
def _upsample(params, x, w, b, out):
    N = params.batch
    G = params.groups
    Cig, Cog = params.in_channels_per_group, params.out_channels_per_group
    kd, kh, kw = params.kernel
    D, H, W = params.in_size
    T = kd * kh * kw
    wm = w.reshape(G, Cig, Cog * T).transpose(0, 2, 1)  # (G, Cog*T, Cig)
    isz = out.itemsize
    per_plane = (Cog * G * T + params.in_channels) * H * W * isz
    dc = max(1, min(D, get_memory_budget() // max(1, per_plane)))
    out8 = out.reshape(N, G, Cog, D, kd, H, kh, W, kw)
    bv = None if b is None else b.reshape(1, G, Cog, 1, 1, 1)
    for n in range(N):
        xn = x[n].reshape(G, Cig, D, H * W)
        for d0 in range(0, D, dc):
            d1 = min(D, d0 + dc)
            xs = xn[:, :, d0:d1].reshape(G, Cig, -1)
            if xs.dtype != out.dtype:
                xs = xs.astype(out.dtype)
            c = np.matmul(wm, xs).reshape(G, Cog, kd, kh, kw, d1 - d0, H, W)
            for a in range(kd):
                for bb in range(kh):
                    for cc in range(kw):
                        dst = out8[n, :, :, d0:d1, a, :, bb, :, cc]
                        if bv is None:
                            dst[...] = c[:, :, a, bb, cc]
                        else:
                            np.add(c[:, :, a, bb, cc], bv[0], out=dst)


# ---------------------------------------------------------------- phase split
def _w_toeplitz(I, K, s, p, d, O, m):
    """Blocked Toeplitz geometry of the whole (un-phase-split) W axis."""
    Bw = m * s
    ilo = -(((K - 1) * d - p) // s)
    ihi = (Bw - 1 + p) // s
    width = ihi - ilo + 1
    nb = -(-O // Bw)
    q = np.arange(width)[:, None]
    t = np.arange(Bw)[None, :]
    r = t + p - (ilo + q) * s
    kidx = np.where((r >= 0) & (r % d == 0) & (r // d < K), r // d, K)
    plo = max(0, -ilo)
    phi = max(0, (nb - 1) * m + ilo + width - I)
    return dict(Bw=Bw, m=m, ilo=ilo, width=width, nb=nb, kidx=kidx, plo=plo, phi=phi)


def _phase_split(params, x, w, b, out):
    N = params.batch
    G = params.groups
    Cin = params.in_channels
    Cig, Cog = params.in_channels_per_group, params.out_channels_per_group
    D, H, W = params.in_size
    OD, OH, OW = params.out_size
    axd, axh, axw = params.axis_phases
    sd, sh, sw = params.stride
    dt = out.dtype
    out6 = out.reshape(N, G, Cog, OD, OH, OW)
    bv = None if b is None else b.reshape(1, G, Cog, 1, 1, 1)
    wz = np.concatenate([w.reshape(G, Cig, Cog, *params.kernel),
                         np.zeros((G, Cig, Cog) + params.kernel[:2] + (1,), dt)], axis=-1)

    mode = FORCE or "A"
    pds = [pd for pd in axd if pd.count and pd.taps]
    phs = [ph for ph in axh if ph.count and ph.taps]
    # bias-only outputs
    for pd in axd:
        for ph in axh:
            for pw in axw:
                if pd.count and ph.count and pw.count and not (pd.taps and ph.taps and (pw.taps or mode != "A")):
                    v = out6[:, :, :, pd.first::sd, ph.first::sh, pw.first::sw]
                    v[...] = 0 if bv is None else bv
    if not pds or not phs:
        return
    plo_h = max(ph.pad_lo for ph in phs)
    Hp = plo_h + H + max(ph.pad_hi(H) for ph in phs)
    if mode == "A":
        pws = [pw for pw in axw if pw.count and pw.taps]
        if not pws:
            return
        plo_w = max(pw.pad_lo for pw in pws)
        Wp = plo_w + W + max(pw.pad_hi(W) for pw in pws)
        hw = [(ph, pw) for ph in phs for pw in pws]
        wts = {}
        for pd in pds:
            for ph, pw in hw:
                t = wz[:, :, :, list(pd.taps)][:, :, :, :, list(ph.taps)][..., list(pw.taps)]
                # (G, Cig, Cog, Td, Th, Tw) -> (Td, G, Cog, Cig*Th*Tw)
                wts[pd, ph, pw] = np.ascontiguousarray(
                    t.transpose(3, 0, 2, 1, 4, 5).reshape(len(pd.taps), G, Cog, -1))
    else:
        geo = _w_toeplitz(W, params.kernel[2], sw, params.padding[2], params.dilation[2], OW, FORCE[1])
        plo_w = geo["plo"]
        Wp = plo_w + W + geo["phi"]
        wts = {}
        for pd in pds:
            for ph in phs:
                t = wz[:, :, :, list(pd.taps)][:, :, :, :, list(ph.taps)][..., geo["kidx"]]
                # (G, Cig, Cog, Td, Th, width, Bw) -> (Td, G, Cig*Th*width, Cog*Bw)
                wts[pd, ph] = np.ascontiguousarray(
                    t.transpose(3, 0, 1, 4, 5, 2, 6).reshape(len(pd.taps), G, Cig * len(ph.taps) * geo["width"], -1))

    # depth geometry: slab covers union of planes over D phases
    jmax = max(pd.count for pd in pds)
    lo_off = min(pd.base for pd in pds)
    span = max(pd.base + (len(pd.taps) - 1) * pd.step for pd in pds) - lo_off
    isz = dt.itemsize
    if mode == "A":
        pmax = max(len(ph.taps) * len(pw.taps) * ph.count * pw.count for ph, pw in hw)
        accp = max(ph.count * pw.count for ph, pw in hw)
    else:
        pmax = max(len(ph.taps) * ph.count for ph in phs) * geo["nb"] * geo["width"]
        accp = max(ph.count for ph in phs) * geo["nb"] * geo["Bw"]

    def ws(nc, dc):
        sdn = dc + span
        return isz * nc * (Cin * sdn * (Hp * Wp + pmax) + 2 * G * Cog * dc * accp)

    budget = get_memory_budget()
    lo_dc, hi_dc = 1, jmax
    while lo_dc < hi_dc:
        mid = (lo_dc + hi_dc + 1) // 2
        if ws(1, mid) <= budget:
            lo_dc = mid
        else:
            hi_dc = mid - 1
    dc = lo_dc
    nc = 1
    if dc == jmax:
        while nc < N and ws(nc + 1, dc) <= budget:
            nc += 1

    for n0 in range(0, N, nc):
        n1 = min(N, n0 + nc)
        nn = n1 - n0
        for j0 in range(0, jmax, dc):
            j1 = min(jmax, j0 + dc)
            lo = lo_off + j0
            sdn = (j1 - j0) + span
            slab = np.zeros((nn, Cin, sdn, Hp, Wp), dt)
            a0, a1 = max(lo, 0), min(lo + sdn, D)
            if a1 > a0:
                slab[:, :, a0 - lo:a1 - lo, plo_h:plo_h + H, plo_w:plo_w + W] = x[n0:n1, :, a0:a1]
            slab6 = slab.reshape(nn, G, Cig, sdn, Hp, Wp)
            if mode == "A":
                for ph, pw in hw:
                    Oh, Ow = ph.count, pw.count
                    Th, Tw = len(ph.taps), len(pw.taps)
                    P = np.empty((nn, G, Cig, Th, Tw, sdn, Oh, Ow), dt)
                    for uh in range(Th):
                        hs = plo_h + ph.base + uh * ph.step
                        for uw in range(Tw):
                            wsx = plo_w + pw.base + uw * pw.step
                            P[:, :, :, uh, uw] = slab6[:, :, :, :, hs:hs + Oh, wsx:wsx + Ow]
                    A = Oh * Ow
                    Pm = P.reshape(nn, G, Cig * Th * Tw, sdn * A)
                    for pd in pds:
                        jc = min(j1, pd.count) - j0
                        if jc <= 0:
                            continue
                        wt = wts[pd, ph, pw]
                        acc = tmp = None
                        for ud in range(len(pd.taps)):
                            dd0 = pd.base + j0 + ud * pd.step - lo
                            cols = Pm[..., dd0 * A:(dd0 + jc) * A]
                            if acc is None:
                                acc = np.matmul(wt[ud], cols)
                            else:
                                tmp = np.matmul(wt[ud], cols, out=tmp)
                                acc += tmp
                        acc = acc.reshape(nn, G, Cog, jc, Oh, Ow)
                        d0 = pd.first + sd * j0
                        dst = out6[n0:n1, :, :, d0:d0 + sd * (jc - 1) + 1:sd, ph.first::sh, pw.first::sw]
                        if bv is None:
                            dst[...] = acc
                        else:
                            np.add(acc, bv, out=dst)
            else:
                m, width, nb, Bw = geo["m"], geo["width"], geo["nb"], geo["Bw"]
                woff = plo_w + geo["ilo"]
                st = slab6.strides
                for ph in phs:
                    Oh, Th = ph.count, len(ph.taps)
                    P = np.empty((nn, G, sdn, Oh, nb, Cig, Th, width), dt)
                    for uh in range(Th):
                        hs = plo_h + ph.base + uh * ph.step
                        src = as_strided(slab6[:, :, :, :, hs:, woff:],
                                         shape=(nn, G, sdn, Oh, nb, Cig, width),
                                         strides=(st[0], st[1], st[3], st[4], m * st[5], st[2], st[5]),
                                         writeable=False)
                        P[:, :, :, :, :, :, uh, :] = src
                    R = Oh * nb
                    Pm = P.reshape(nn, G, sdn * R, Cig * Th * width)
                    for pd in pds:
                        jc = min(j1, pd.count) - j0
                        if jc <= 0:
                            continue
                        wt = wts[pd, ph]
                        acc = tmp = None
                        for ud in range(len(pd.taps)):
                            dd0 = pd.base + j0 + ud * pd.step - lo
                            rows = Pm[:, :, dd0 * R:(dd0 + jc) * R]
                            if acc is None:
                                acc = np.matmul(rows, wt[ud])
                            else:
                                tmp = np.matmul(rows, wt[ud], out=tmp)
                                acc += tmp
                        acc = acc.reshape(nn, G, jc, Oh, nb, Cog, Bw).transpose(0, 1, 5, 2, 3, 4, 6)
                        d0 = pd.first + sd * j0
                        dst = out6[n0:n1, :, :, d0:d0 + sd * (jc - 1) + 1:sd, ph.first::sh, :]
                        nf = OW // Bw
                        if nf:
                            dv = dst[..., :nf * Bw].reshape(dst.shape[:-1] + (nf, Bw))
                            if bv is None:
                                dv[...] = acc[..., :nf, :]
                            else:
                                np.add(acc[..., :nf, :], bv[..., None], out=dv)
                        if nf < nb:
                            dv = dst[..., nf * Bw:]
                            src = acc[..., nf, :OW - nf * Bw]
                            if bv is None:
                                dv[...] = src
                            else:
                                np.add(src, bv, out=dv)
