"""The Toeplitz-W formulation on the CPU (few channels; see
:mod:`xconvt.backends.cpu`): the whole W axis, every W phase at once, as a
blocked banded matrix; H taps by im2col; D taps looped."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .common import PhasePlan, copy_ns, gemm_ns, reject, write_ns

__all__ = ["ToeplitzW", "plan"]


class ToeplitzW:
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
        t = write_ns(geo, self.Bw)
        for ph in geo.phs:
            k = geo.Cig * len(ph.taps) * self.width
            for pd in geo.pds:
                rows = pd.count * ph.count * self.nb
                t += gemm_ns(2 * reps * rows * k * n * len(pd.taps), min(rows, n), k)
            t += copy_ns(reps * k * planes * ph.count * self.nb, self.width)
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



def plan(problem):
    """The cheapest Toeplitz-W blocking ``m`` (1, 2, 4, ..., 32 output blocks
    of ``m * s_w`` columns) whose banded weights fit the memory budget."""
    why = reject(problem)
    if why:
        return why
    if problem.params.is_pure_upsample:
        return "kernel == stride is the upsample plan's (one GEMM, no im2col, no tap sums)"
    p = problem.params
    geo = PhasePlan.geometry(p)
    if not geo.pds or not geo.phs:
        return "every output is bias only (no phase has taps)"
    m_max = min(32, -(-p.out_size[2] // p.stride[2]))
    blockings, m = [], 1
    while True:
        m_ = min(m, m_max)
        if ToeplitzW(geo, m_).weight_bytes(problem.itemsize) <= problem.budget:
            blockings.append(m_)
        if m >= m_max:
            break
        m *= 2
    if not blockings:
        return (f"its banded weights exceed the memory budget of {problem.budget} bytes "
                "at every blocking")
    return PhasePlan.best(problem, "cpu.toeplitz_w", ToeplitzW, blockings)
