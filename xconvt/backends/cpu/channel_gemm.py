"""The channel-GEMM formulation on the CPU (many channels; see
:mod:`xconvt.backends.cpu`): per ``(D, H, W)`` stride phase a partial im2col
of the H/W taps and one stacked GEMM per ``(H, W)`` unit over every plane
(channel-major), or one GEMM per output plane with the depth taps folded in
(plane-major, on worker threads where BLAS would run them on one)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .common import (BLAS_ONE_THREAD_MNK, BLOCK_BYTES, WORKER_GAIN, WRITE_BLOCK_BYTES,
                     PhasePlan, copy_ns, cpu_count, gemm_ns, reject, write_ns)

__all__ = ["ChannelGemm", "plan"]

GRIDS = ("exact", "rows", "flat")


# -------------------------------------------------------------- formulations
class ChannelGemm:
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
                threaded |= geo.Cog * k * hc * wc >= BLAS_ONE_THREAD_MNK
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
        self.workers = 1 if threaded or not self.plane_major else cpu_count()
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
        return min(dc, max(1, BLOCK_BYTES // per)) if per else 0

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
        t = write_ns(geo, geo.out_size[2] / geo.stride[2])
        for (ph, pw), (hc, wc), view in zip(self.units, self.grids, self.views):
            k = geo.Cig * len(ph.taps) * len(pw.taps)
            if self.plane_major:
                for pd in geo.pds:
                    flops = 2 * reps * geo.Cog * k * pd.count * hc * wc * len(pd.taps)
                    t += gemm_ns(flops, geo.Cog, k)
            else:  # one stacked GEMM over every input plane
                flops = 2 * reps * self.m_tot * k * geo.in_planes * hc * wc
                t += gemm_ns(flops, self.m_tot, k)
            if not view:
                copied = planes if self.plane_major else geo.in_planes
                run = {"exact": wc, "rows": hc * wc, "flat": copied * hc * wc}[self.grid]
                t += copy_ns(reps * k * copied * hc * wc, run)
        # worker threads share all of the work (threaded BLAS only the GEMMs of
        # the other formulations, which the single-thread estimates ignore)
        return t / (1 + WORKER_GAIN * (self.workers - 1))

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
            rb = max(1, WRITE_BLOCK_BYTES // (nn * gg * Cog * OH * OW * ck.isz))
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



def plan(problem):
    """The cheapest channel-GEMM grid (``exact``, ``rows`` or ``flat``)."""
    why = reject(problem)
    if why:
        return why
    if problem.params.is_pure_upsample:
        return "kernel == stride is the upsample plan's (one GEMM, no im2col, no tap sums)"
    geo = PhasePlan.geometry(problem.params)
    if not geo.pds or not geo.phs:  # every output is bias only: nothing to multiply
        return PhasePlan(problem, "cpu.channel_gemm", geo, ChannelGemm, "exact",
                         write_ns(geo, 1), None)
    return PhasePlan.best(problem, "cpu.channel_gemm", ChannelGemm, GRIDS)
