"""The tensor-core kernel's tables, replayed on the CPU, and its templates compiled.

:func:`xconvt.backends.cuda.mma.mma_tables` and the packed weights drive
``xconvt_mma`` (``cuda/kernels/mma.cu``).  Here the kernel's index
arithmetic is replayed in NumPy, block by block, from those tables (block ->
phase, group, m tile and n tile; A gathered from ``x`` with the kernel's
bounds checks; B read from the packed weights; the epilogue's output
addresses) and compared with the float64 reference, so the tables are tested
where no GPU exists.  The kernels themselves run in ``test_gpu_mma.py``.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xconvt._params import ConvParams
from xconvt.backends.cuda import mma as cuda_mma
from xconvt.backends.cuda.mma import META_COLUMNS, MmaConfig, mma_tables

from .reference import conv_transpose3d_ref
from .strategies import configs, seeds

C = {name: i for i, name in enumerate(META_COLUMNS)}


def pack_index(params, bn, bk):
    """Source element (in ``w.ravel()``) of each packed weight, -1 for padding:
    the packed layout written out directly (``xconvt_mma_pack_t`` computes it
    per kernel tap from :func:`~xconvt.backends.cuda.mma.pack_taps`).

    Layout: per phase (in :func:`mma_tables`' order), ``[g][t][c][o]`` with
    ``t = (ud*nh + uh)*nw + uw``, ``c < ceil(Cig/BK)*BK`` and
    ``o < ceil(Cog/BN)*BN``.
    """
    G = params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    kd, kh, kw = params.kernel
    cp = -(-cig // bk) * bk
    np_ = -(-cog // bn) * bn
    parts = []
    for pd, ph, pw in params.phases():  # the order of mma_tables
        if not (pd.taps and ph.taps and pw.taps):
            continue
        td = np.asarray(pd.taps).reshape(-1, 1, 1)
        th = np.asarray(ph.taps).reshape(1, -1, 1)
        tw = np.asarray(pw.taps).reshape(1, 1, -1)
        tap = ((td * kh + th) * kw + tw).reshape(-1)          # [t]
        g = np.arange(G).reshape(-1, 1, 1, 1)
        t = tap.reshape(1, -1, 1, 1)
        c = np.arange(cp).reshape(1, 1, -1, 1)
        o = np.arange(np_).reshape(1, 1, 1, -1)
        if isinstance(params, cuda_mma.Conv3dGemm):  # w [G*cog][cig][K3]: K channels 2nd
            src = ((g * cog + o) * cig + c) * (kd * kh * kw) + t
        else:
            src = ((g * cig + c) * cog + o) * (kd * kh * kw) + t
        parts.append(np.where((c < cig) & (o < cog), src, -1).ravel())
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _cfg(params, bm, bn, bk, slab):
    """A configuration of ``xconvt_mma`` with the given tile (and, for the
    slab variant, the planner's box)."""
    box, sc = cuda_mma.slab_box(params, bm) if slab in (1, 2, 4) else ((0, 0, 0), 0)
    wm = 64 if bm == 128 and bn >= 64 else 32
    return MmaConfig(0, 0, "int", bm, bn, bk, wm, 32, 3, 128, 0, 2, slab, box, sc)


def _replay(params, x, w, b, cfg):
    """What the blocks of ``xconvt_mma`` compute, in float64."""
    bm, bn, bk = cfg.bm, cfg.bn, cfg.bk
    meta, btab = mma_tables(params, cfg)
    idx = pack_index(params, bn, bk)
    wflat = w.ravel()
    wp = np.where(idx >= 0, wflat[np.maximum(idx, 0)], 0.0)
    N, G = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    cin, cout = params.in_channels, params.out_channels
    ID, IH, IW = params.in_size
    OD, OH, OW = params.out_size
    ed, eh, ew = (ax[0].step for ax in params.axis_phases)
    qd, qh, qw = cuda_mma._in_step(params)  # conv3d: A read at the stride
    assert cfg.slab in (0, 3) or (qd, qh, qw) == (1, 1, 1)
    TD, TH, TW = cfg.box
    ncb = -(-cig // bk)
    np_ = -(-cog // bn) * bn
    xf = x.ravel()
    V = ID * IH * IW
    if cfg.slab >= 3:
        # xconvt_mma_to_cl: the channels-last copy with its halo, by the
        # kernel's index arithmetic
        (PD, PH, PW), (LD, LH, LW), CT = cuda_mma.cl_layout(params, bk)
        CP = CT // G
        assert CP == ncb * bk
        s_ = np.arange(PD * PH * PW)[:, None]
        q_ = np.arange(CT)[None, :]
        d_, h_, w_ = s_ // (PW * PH) - LD, (s_ // PW) % PH - LH, s_ % PW - LW
        g_, c_ = q_ // CP, q_ % CP
        inside = ((d_ >= 0) & (d_ < ID) & (h_ >= 0) & (h_ < IH) & (w_ >= 0) & (w_ < IW)
                  & (c_ < cig))
        off = np.where(inside, (d_ * IH + h_) * IW + w_, 0)
        src = ((np.arange(N)[:, None, None] * cin + g_ * cig + np.minimum(c_, cig - 1)) * V
               + off)
        xcl = np.where(inside, xf[src], 0.0).ravel()
    out = np.full(params.batched_output_shape, np.nan).ravel()
    written = np.zeros(out.size, int)
    seen = set()
    for ph, r in btab:
        assert (ph, r) not in seen
        seen.add((ph, r))
        row = meta[ph]
        ntile = r % row[C["n_tiles"]]
        r //= row[C["n_tiles"]]
        mtile = r % row[C["m_tiles"]]
        g = r // row[C["m_tiles"]]
        assert g < G
        cd, ch, cw = row[C["cd"]], row[C["ch"]], row[C["cw"]]
        nd, nh, nw = row[C["nd"]], row[C["nh"]], row[C["nw"]]
        per_n = cd * ch * cw
        m = np.arange(bm)
        if cfg.slab in (1, 2, 4):
            mtw, mth, mtd = -(-cw // TW), -(-ch // TH), -(-cd // TD)
            q = mtile
            jw0 = (q % mtw) * TW
            q //= mtw
            jh0 = (q % mth) * TH
            q //= mth
            jd0 = (q % mtd) * TD
            nb = np.full(bm, q // mtd)
            jw = m % TW + jw0
            jh = (m // TW) % TH + jh0
            jd = m // (TW * TH) + jd0
            ok_m = (jd < cd) & (jh < ch) & (jw < cw)
        else:
            m = mtile * bm + m
            ok_m = m < N * per_n
            nb = m // per_n
            q = m - nb * per_n
            jw, jh, jd = q % cw, (q // cw) % ch, q // (cw * ch)
        ntaps = nd * nh * nw
        acc = np.zeros((bm, bn))
        n0 = ntile * bn
        wph = row[C["woff"]] + g * ntaps * ncb * bk * np_ + n0
        if cfg.slab in (1, 2, 4) and ntaps:
            # the kernel's slab: position table, then words [c][pos]
            SD, SH, SW = TD + (nd - 1) * ed, TH + (nh - 1) * eh, TW + (nw - 1) * ew
            pos = np.arange(SD * SH * SW)
            sw_, sh_, sd_ = pos % SW, (pos // SW) % SH, pos // (SW * SH)
            i_d, i_h, i_w = row[C["bd"]] + jd0 + sd_, row[C["bh"]] + jh0 + sh_, \
                row[C["bw"]] + jw0 + sw_
            inside = (i_d >= 0) & (i_d < ID) & (i_h >= 0) & (i_h < IH) & (i_w >= 0) & (i_w < IW)
            ptab = np.where(inside, (i_d * IH + i_h) * IW + i_w, -1)
            moff = ((m // (TW * TH)) * SH + (m // TW) % TH) * SW + m % TW
            assert SD * SH * SW <= cfg.sc or cfg.slab == 4
        if cfg.slab == 3:
            mc = np.minimum(mtile * bm + np.arange(bm), N * per_n - 1)
            nbc = mc // per_n
            qc = mc - nbc * per_n
            a_row = ((((nbc * PD + LD + row[C["bd"]] + qd * (qc // (cw * ch))) * PH + LH
                       + row[C["bh"]] + qh * ((qc // cw) % ch)) * PW + LW + row[C["bw"]]
                      + qw * (qc % cw)) * CT + g * ncb * bk)
        for kc in range(ntaps * ncb):
            if cfg.slab in (1, 2, 4):
                cb, t = divmod(kc, ntaps)
            else:
                t, cb = divmod(kc, ncb)
            uw, uh, ud = t % nw, (t // nw) % nh, t // (nw * nh)
            c = cb * bk + np.arange(bk)
            if cfg.slab == 4:
                # the box of the padded copy (positions clamped into it),
                # [pos][k], read at the tap's offset
                cpd = np.minimum(LD + i_d, PD - 1)
                cph = np.minimum(LH + i_h, PH - 1)
                cpw = np.minimum(LW + i_w, PW - 1)
                cpos = (cpd * PH + cph) * PW + cpw
                src = ((nb[0] * PD * PH * PW + cpos[:, None]) * CT + g * ncb * bk + cb * bk
                       + np.arange(bk)[None, :])
                assert src.min() >= 0 and src.max() < xcl.size
                toff = (ud * ed * SH + uh * eh) * SW + uw * ew
                a = xcl[src][moff + toff]
            elif cfg.slab == 3:
                # the kernel's row offsets (rows past the phase read its last
                # position) plus the tap's offset; no bounds checks
                toff = ((ud * ed * PH + uh * eh) * PW + uw * ew) * CT + cb * bk
                src = a_row[:, None] + toff + np.arange(bk)[None, :]
                assert src.min() >= 0 and src.max() < xcl.size
                a = xcl[src]
            elif cfg.slab:
                chan = (nb[0] * cin + g * cig + np.minimum(c, cig - 1)) * V
                valid = (ptab >= 0)[None, :] & (c < cig)[:, None]
                slab = np.where(valid, xf[chan[:, None] + np.maximum(ptab, 0)[None, :]], 0.0)
                toff = (ud * ed * SH + uh * eh) * SW + uw * ew
                a = slab[:, moff + toff].T                                   # [m, k]
            else:
                i_d = row[C["bd"]] + qd * jd + ud * ed
                i_h = row[C["bh"]] + qh * jh + uh * eh
                i_w = row[C["bw"]] + qw * jw + uw * ew
                ok = (ok_m & (i_d >= 0) & (i_d < ID) & (i_h >= 0) & (i_h < IH)
                      & (i_w >= 0) & (i_w < IW))
                valid = ok[:, None] & (c < cig)[None, :]
                src = (((nb[:, None] * cin + g * cig + c[None, :]) * ID + i_d[:, None]) * IH
                       + i_h[:, None]) * IW + i_w[:, None]
                a = np.where(valid, xf[np.where(valid, src, 0)], 0.0)      # [m, k]
            boff = wph + (t * ncb * bk + cb * bk + np.arange(bk))[:, None] * np_ \
                + np.arange(bn)[None, :]
            acc += a @ wp[boff]
        od = row[C["fd"]] + params.stride[0] * jd
        oh = row[C["fh"]] + params.stride[1] * jh
        ow = row[C["fw"]] + params.stride[2] * jw
        n = n0 + np.arange(bn)
        keep = ok_m[:, None] & (n < cog)[None, :]
        dst = (((nb[:, None] * cout + g * cog + n[None, :]) * OD + od[:, None]) * OH
               + oh[:, None]) * OW + ow[:, None]
        val = acc + (b[g * cog + np.minimum(n, cog - 1)][None, :] if b is not None else 0.0)
        out[dst[keep]] = val[keep]
        np.add.at(written, dst[keep], 1)
    assert (written == 1).all(), "every output is written exactly once"
    return out.reshape(params.batched_output_shape)


@settings(max_examples=60, deadline=None)
@given(cfg=configs(batches=(1, 2), max_channels=5), seed=seeds,
       tile=st.sampled_from([(128, 32, 16), (64, 64, 16), (128, 64, 32)]),
       slab=st.sampled_from([0, 1, 2, 3, 4]))
def test_mma_tables_replay_to_reference(cfg, seed, tile, slab):
    x, w, b = cfg.arrays(seed, "float64")
    kw = cfg.kwargs
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape, **kw)
    got = _replay(params, x, w, b, _cfg(params, *tile, slab))
    ref = conv_transpose3d_ref(x, w, b, **kw).reshape(got.shape)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(cfg=configs(batches=(1,), max_channels=6), bn=st.sampled_from([32, 64]),
       bk=st.sampled_from([16, 32]))
def test_pack_kernel_index_math_matches_the_packed_layout(cfg, bn, bk):
    """``xconvt_mma_pack_t``'s destination of each weight (``pack_taps``)
    is where :func:`pack_index` says it goes, every packed slot of a real
    weight is written once, and the rest is padding."""
    x, w, b = cfg.arrays(0, "float64")
    params = ConvParams.from_shapes(x.shape, w.shape, None, **cfg.kwargs)
    idx = pack_index(params, bn, bk)
    tapoff, gstride = cuda_mma.pack_taps(params, bn, bk)
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    k3 = int(np.prod(params.kernel))
    np_ = -(-cog // bn) * bn
    got = np.full(idx.size, -1, np.int64)
    cc, o, k = np.meshgrid(np.arange(params.in_channels), np.arange(cog), np.arange(k3),
                           indexing="ij")
    keep = tapoff[k] >= 0
    g, c = cc // cig, cc % cig
    dst = (tapoff[k] + g * gstride[k] + c * np_ + o)[keep]
    src = ((cc * cog + o) * k3 + k)[keep]
    assert np.unique(dst).size == dst.size
    got[dst] = src
    np.testing.assert_array_equal(got, idx)


@pytest.mark.parametrize("slab", [0, 1, 3, 4])
def test_replay_small_tiles_many_blocks(slab):
    """Several m and n tiles per phase, channel blocks, groups and padding."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 36, 5, 6, 7))
    w = rng.standard_normal((36, 35, 3, 2, 3))
    b = rng.standard_normal(70)
    kw = dict(stride=(2, 1, 3), padding=(1, 0, 2), output_padding=(1, 0, 1), groups=2,
              dilation=(1, 2, 2))
    params = ConvParams.from_shapes(x.shape, w.shape, b.shape, **kw)
    got = _replay(params, x, w, b, _cfg(params, 64, 32, 16, slab))
    np.testing.assert_allclose(got, conv_transpose3d_ref(x, w, b, **kw), rtol=1e-10,
                               atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(cfg=configs(batches=(1, 2), max_channels=5), seed=seeds,
       tile=st.sampled_from([(128, 32, 16), (64, 64, 16), (128, 64, 32)]),
       slab=st.sampled_from([0, 3, 4]))
def test_conv3d_gemm_replay_to_reference(cfg, seed, tile, slab):
    """conv3d as one phase of the kernel (``Conv3dGemm``: A read from y at the
    stride, every tap real), replayed block by block, against the float64
    conv3d written from the definition; the box staging only at stride 1."""

    from xconvt._params import conv3d_params

    from .reference import conv3d_ref, triple

    assume(slab != 4 or triple(cfg.stride) == (1, 1, 1))
    _, w, b = cfg.arrays(seed, "float64")
    batch = cfg.batch or 1
    rng = np.random.default_rng(seed + 1)
    shape = (batch,) + tuple(cfg.output_shape[-4:])
    y = rng.standard_normal(shape)
    kw = dict(stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation,
              groups=cfg.groups)
    params, crop = conv3d_params(y.shape, w.shape, None if b is None else (w.shape[0],), **kw)
    assert crop == (0, 0, 0)
    geo = cuda_mma.Conv3dGemm(params)
    bias = None if b is None else rng.standard_normal(w.shape[0])
    got = _replay(geo, y, w, bias, _cfg(geo, *tile, slab))
    np.testing.assert_allclose(got, conv3d_ref(y, w, bias, **kw), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("slab", [0, 3])
def test_conv3d_gemm_replay_many_blocks(slab):
    """Strided, dilated, grouped conv3d with several m and n tiles and channel blocks."""
    from xconvt._params import conv3d_params

    from .reference import conv3d_ref

    rng = np.random.default_rng(7)
    y = rng.standard_normal((2, 36, 9, 7, 11))
    w = rng.standard_normal((70, 18, 3, 2, 3))
    b = rng.standard_normal(70)
    kw = dict(stride=(2, 1, 3), padding=(1, 0, 2), dilation=(1, 2, 2), groups=2)
    params, _ = conv3d_params(y.shape, w.shape, b.shape, **kw)
    geo = cuda_mma.Conv3dGemm(params)
    got = _replay(geo, y, w, b, _cfg(geo, 64, 32, 16, slab))
    np.testing.assert_allclose(got, conv3d_ref(y, w, b, **kw), rtol=1e-10, atol=1e-10)


def test_conv3d_gemm_planner():
    """The conv3d planner: an MmaPlan over Conv3dGemm on the GPU, no box
    stagings with a stride, reasons elsewhere."""
    from dataclasses import replace

    from xconvt._params import conv3d_params

    p = _problem((1, 32, 8, 8, 8), (32, 32, 3, 3, 3), "float32")
    params, _ = conv3d_params((2, 64, 32, 32, 32), (32, 64, 3, 3, 3), None, stride=2,
                              padding=1)
    plan = cuda_mma.plan_conv3d(replace(p, op="conv3d", params=params))
    assert isinstance(plan, cuda_mma.MmaPlan) and plan.name == "cuda.mma_conv3d"
    assert plan.cfg.slab in (0, 3) and isinstance(plan.params, cuda_mma.Conv3dGemm)
    assert plan.params.batched_output_shape == (2, 32, 16, 16, 16)
    assert "conv3d" in cuda_mma.plan_conv3d(p)
    assert "compute capability" in cuda_mma.plan_conv3d(replace(
        p, op="conv3d", params=params, device=replace(p.device, compute_capability=(7, 5))))
    for c in cuda_mma._candidates(cuda_mma.Conv3dGemm(params), "float32", "float32", 232448,
                                  None):
        assert c.slab in (0, 3)


def _problem(shape_x, shape_w, dtype, precision="float32", cc=(9, 0), budget=256 << 20,
             **kw):
    from dataclasses import replace

    from xconvt._plan import DEVICE_PRESETS, Problem

    params = ConvParams.from_shapes(shape_x, shape_w, None, **kw)
    dev = replace(DEVICE_PRESETS["h100"], compute_capability=cc)
    return Problem("conv_transpose3d", params, dtype, dev, precision, budget)


def test_planner_applicability():
    p = _problem((8, 256, 8, 8, 8), (256, 128, 4, 4, 4), "float32", stride=2, padding=1)
    plan = cuda_mma.plan(p)
    assert isinstance(plan, cuda_mma.MmaPlan) and plan.estimate > 0
    assert "3xtf32" in plan.detail
    assert "tf32" in cuda_mma.plan(_problem((1, 32, 8, 8, 8), (32, 32, 3, 3, 3), "float32",
                                            "tf32")).detail
    assert isinstance(cuda_mma.plan(_problem((1, 32, 8, 8, 8), (32, 32, 3, 3, 3),
                                             "bfloat16")), cuda_mma.MmaPlan)
    assert "compute capability" in cuda_mma.plan(
        _problem((1, 32, 8, 8, 8), (32, 32, 3, 3, 3), "float16", cc=(7, 5)))
    assert "float64" in cuda_mma.plan(_problem((1, 32, 8, 8, 8), (32, 32, 3, 3, 3), "float64"))
    from dataclasses import replace

    p = _problem((1, 32, 8, 8, 8), (32, 32, 3, 3, 3), "float32")
    assert isinstance(cuda_mma.plan(replace(p, op="conv3d")), str)
    assert "memory budget" in cuda_mma.plan(replace(p, budget=1))


def test_planner_estimates_scale_with_precision():
    shapes = ((2, 128, 32, 32, 32), (128, 64, 2, 2, 2))
    t = {prec: cuda_mma.plan(_problem(*shapes, "float32", prec, stride=2)).estimate
         for prec in ("float32", "tf32")}
    t16 = cuda_mma.plan(_problem(*shapes, "float16", stride=2)).estimate
    assert t16 < t["tf32"] < t["float32"]


# ------------------------------------------------------------------ nvcc
NVCC = shutil.which("nvcc")


def _instances(full=True):
    """Every instantiation the planner can choose (``full``: the stagings tap,
    cl and cl_slab), or one per template-argument value (each tile, depth,
    dtype, mode, staging, index type and stage count at least once, the
    register and 4-byte slabs that only run when asked for among them)."""
    names = []
    for dt, mode in ((0, 0), (0, 1), (1, 2), (2, 2)):
        for bm, bn, wm, wn in cuda_mma.TILES if full or mode == 1 else cuda_mma.TILES[:1]:
            for bk in (16, 32) if full else (16,):
                threads = (bm // wm) * (bn // wn) * 32
                for slab in (0, 1, 2, 3, 4) if dt == 0 else (0, 1, 3, 4):
                    if mode == 1 and wm * wn >= 64 * 64:
                        continue  # not a 3xTF32 tile (mma._candidates)
                    if slab in (1, 2) and (wm * wn >= 64 * 64 or full):
                        continue  # legacy stagings (asked for by name only): the reduced set
                    minb = cuda_mma._minb(mode, wm, threads, slab, wn)
                    cfg = MmaConfig(dt, mode, "int", bm, bn, bk, wm, wn, 3, threads, 0, minb,
                                    slab)
                    names.append(cfg.name)
        for slab in (0, 1, 3, 4) if full else (mode % 2, 3, 4):
            names.append(MmaConfig(dt, mode, "long long", 128, 64, 32, 64, 32, 3, 128, 0, 2,
                                   slab).name)
            names.append(MmaConfig(dt, mode, "int", 128, 128, 32, 64, 32, 2, 256, 0, 2,
                                   slab).name)
    for i in ("int", "long long"):
        for bits, conv in (("unsigned short", 0), ("unsigned", 1), ("unsigned", 2)):
            names.append(f"xconvt_mma_pack_t<{bits}, {i}, {conv}>")
        for bits, conv in (("unsigned short", 0), ("unsigned", 1)):
            names.append(f"xconvt_wgmma_pack<{bits}, {i}, {conv}>")
        for bits, rnd in (("unsigned", 0), ("unsigned", 1), ("unsigned", 2),
                          ("unsigned short", 0)):
            for vec in ("", ", 1"):  # VEC 1: the 16-byte vector copy
                names.append(f"xconvt_mma_to_cl<{bits}, {i}, {rnd}{vec}>")
                if (bits, rnd) != ("unsigned", 0):  # wgmma's: float bits are rounded
                    names.append(f"xconvt_wgmma_prep<{bits}, {i}, {rnd}{vec}>")
    # xconvt_wgmma: every tile and K block of the table (full) or one per
    # template argument value, each dtype and mode; the body is sm_90a only
    for dt, mode, itemsize in ((0, 0, 4), (0, 1, 4), (1, 2, 2), (2, 2, 2)):
        for bm, bn in cuda_mma.WG_TILES if full else cuda_mma.WG_TILES[:2]:
            for kbytes in cuda_mma.WG_KBYTES if full else cuda_mma.WG_KBYTES[::2]:
                threads = bm // 64 * 128
                names.append(MmaConfig(dt, mode, "int", bm, bn, kbytes // itemsize, 64, bn, 4,
                                       threads, 0, cuda_mma._wg_minb(bn, threads, mode),
                                       5).name)
        names.append(MmaConfig(dt, mode, "long long", 64, 32, 64 // itemsize, 64, 32, 3, 128,
                               0, 2, 5).name)
        for bm, bn, mw in ((256, 32, 2), (128, 64, 2), (512, 32, 4)):  # MW row blocks
            threads = bm // (64 * mw) * 128
            for kbytes in (64, 128):  # the planner's (mw_rows): 3 stages, K 64 or 128 bytes
                names.append(MmaConfig(dt, mode, "int", bm, bn, kbytes // itemsize, 64, bn, 3,
                                       threads, 0, cuda_mma._wg_minb(bn, threads, mode, mw),
                                       5, mw=mw).name)
        for bm, bn, tpk in ((64, 32, 2), (128, 64, 4), (128, 256, 8)):  # BOXA 3
            names.append(MmaConfig(dt, mode, "int", bm, bn, 128 // itemsize // tpk, 64, bn, 4,
                                   bm // 64 * 128, 0,
                                   cuda_mma._wg_minb(bn, bm // 64 * 128, mode), 8,
                                   tpk=tpk).name)
        for bm, kbytes in ((64, 128), (128, 64)):  # the box stagings (BOXA = 1, 2)
            for slab in (6, 7):
                names.append(MmaConfig(dt, mode, "int", bm, 64, kbytes // itemsize, 64, 64,
                                       4 if slab == 6 else 3, bm // 64 * 128, 0, 2, slab).name)
    return names


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90", "sm_90a"])
def test_mma_kernels_compile(tmp_path, arch):
    """All the planner's instantiations and one per template argument value
    for sm_90a (the H100/H200 target), one per template argument value for
    sm_80 and sm_90 (the full set takes minutes per arch on a 2-core machine)."""
    names = _instances(False)
    if arch == "sm_90a":
        names = list(dict.fromkeys(_instances(True) + names))
    body = "\n".join(f"  (void*)&{name}," for name in names)
    unit = tmp_path / "instances.cu"
    unit.write_text(f'#include "{cuda_mma._SOURCE_PATH}"\n'
                    f"void* xconvt_instances[] = {{\n{body}\n}};\n")
    gencode = f"-gencode=arch=compute_{arch[3:]},code={arch}"
    cmd = [NVCC, "-std=c++17", gencode, "-split-compile=0", "-cubin", "-o",
           str(tmp_path / "out.cubin"), str(unit)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_struct_fields_match_the_kernel():
    import re

    text = cuda_mma._SOURCE_PATH.read_text()
    body = re.search(r"struct MmaArgs \{(.*?)\};", text, re.S).group(1)
    decls = [d.strip() for d in body.split(";") if d.strip()]
    assert all(d.startswith("int ") for d in decls), decls   # int32 fields only
    names = tuple(n.strip() for d in decls for n in d[4:].split(","))
    assert names == cuda_mma.MMA_FIELDS
    enum = re.search(r"enum \{(.*?)PMETA", text, re.S).group(1)
    cols = [c.split("=")[0].strip() for c in enum.split(",") if c.strip()]
    assert len(cols) == len(META_COLUMNS)


def test_pack_struct_matches_the_kernel():
    """``PACK_FIELDS`` names ``PackArgs``' fields in order with their C types,
    and :func:`pack_struct` lays them out as the C struct does (no padding:
    the 64-bit fields first, the size a multiple of 8)."""
    import re

    text = cuda_mma._SOURCE_PATH.read_text()
    body = re.search(r"struct PackArgs \{(.*?)\};", text, re.S).group(1)
    body = re.sub(r"//[^\n]*", "", body)
    ctype = {"long long": np.int64, "int": np.int32}
    fields = []
    for d in (d.strip() for d in body.split(";") if d.strip()):
        t = "long long" if d.startswith("long long ") else "int"
        fields += [(n.strip(), ctype[t]) for n in d[len(t):].split(",")]
    assert tuple(fields) == cuda_mma.PACK_FIELDS
    s = cuda_mma.pack_struct(dict(small=5, kstride=6, nstride=7, Cig=1, Cog=2, K3=3, wf=4,
                                  pad=0), (8, 9, 10))
    assert s.dtype.itemsize == 56 and s.dtype.itemsize % 8 == 0
    raw = np.frombuffer(s.tobytes(), np.int32)
    assert list(np.frombuffer(s.tobytes()[:24], np.int64)) == [5, 6, 7]
    assert list(raw[6:]) == [1, 2, 3, 4, 8, 9, 10, 0]


# ------------------------------------------------------------------ xconvt_wgmma
def pack_index_k(params, bn, bk, tpk=1):
    """:func:`pack_index` in ``xconvt_wgmma_pack``'s K-major layout: per
    phase ``[g][o][t][c]`` (the ``[g][t][c][o]`` blocks transposed; ``tpk``:
    each phase's taps padded with -1 to a multiple of ``tpk``)."""
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    cp, np_ = -(-cig // bk) * bk, -(-cog // bn) * bn
    flat, parts, at = pack_index(params, bn, bk), [], 0
    for pd, ph, pw in params.phases():
        taps = len(pd.taps) * len(ph.taps) * len(pw.taps)
        if not taps:
            continue
        n = params.groups * taps * cp * np_
        block = flat[at:at + n].reshape(params.groups, taps, cp, np_)
        pad = -(-taps // tpk) * tpk - taps
        block = np.pad(block, ((0, 0), (0, pad), (0, 0), (0, 0)), constant_values=-1)
        parts.append(block.transpose(0, 3, 1, 2).ravel())
        at += n
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@settings(max_examples=40, deadline=None)
@given(cfg=configs(batches=(1,), max_channels=6), bn=st.sampled_from([32, 64, 128]),
       bk=st.sampled_from([8, 16, 32, 64]), conv3d=st.booleans(),
       tpk=st.sampled_from([1, 2, 4, 8]))
def test_wgmma_pack_index_math_matches_the_k_major_layout(cfg, bn, bk, conv3d, tpk):
    """``xconvt_wgmma_pack``'s destination of each weight (``pack_taps_k``:
    ``tapoff[k] + g*gstride[k] + o*ostride[k] + c``, the source read as the
    kernel reads it for both GEMMs) is where :func:`pack_index_k` says it
    goes; every packed slot of a real weight is written once."""
    from xconvt._params import conv3d_params

    x, w, b = cfg.arrays(0, "float64")
    params = ConvParams.from_shapes(x.shape, w.shape, None, **cfg.kwargs)
    if conv3d:
        p3, _ = conv3d_params(params.batched_output_shape, w.shape, None,
                              stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation,
                              groups=cfg.groups)
        params = cuda_mma.Conv3dGemm(p3)
    idx = pack_index_k(params, bn, bk, tpk)
    assert idx.size == cuda_mma._sizes(params, bk, bn, tpk)[2]
    tapoff, gstride, ostride = cuda_mma.pack_taps_k(params, bn, bk, tpk)
    G = params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    k3 = int(np.prod(params.kernel))
    kstride, nstride = (k3, cig * k3) if conv3d else (cog * k3, k3)
    got = np.full(idx.size, -1, np.int64)
    go, c, k = np.meshgrid(np.arange(G * cog), np.arange(cig), np.arange(k3), indexing="ij")
    g, o = go // cog, go % cog
    keep = tapoff[k] >= 0
    dst = (tapoff[k] + g * gstride[k] + o * ostride[k] + c)[keep]
    src = (g * cig * cog * k3 + c * kstride + o * nstride + k)[keep]
    assert np.unique(dst).size == dst.size
    got[dst] = src
    np.testing.assert_array_equal(got, idx)


@settings(max_examples=30, deadline=None)
@given(cfg=configs(batches=(1,), max_channels=12), bn=st.sampled_from([32, 64]),
       e=st.sampled_from([4, 8]), tpk=st.sampled_from([1, 2]), grid=st.sampled_from([1, 3]))
def test_wgmma_pack_vec_replay(cfg, bn, e, tpk, grid):
    """``xconvt_wgmma_prep``'s vector pack (VEC bit 2: warp units of 8 x 4 lane
    vectors of ``e`` values, the register transpose, per value j = o*K3 + k
    its row ``tapoff[k] + g*gstride[k] + o*ostride[k]``) replayed lane by
    lane writes what :func:`pack_index_k` says (zero where padded), each slot
    at most once, where the host allows it (Cog*K3 % e == 0, BK % e == 0)."""
    x, w, b = cfg.arrays(0, "float64")
    params = ConvParams.from_shapes(x.shape, w.shape, None, **cfg.kwargs)
    G = params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    k3 = int(np.prod(params.kernel))
    J = cog * k3
    assume(J % e == 0)
    bk = 2 * e
    idx = pack_index_k(params, bn, bk, tpk)
    want = np.where(idx >= 0, w.ravel()[np.maximum(idx, 0)], 0.0)
    tapoff, gstride, ostride = cuda_mma.pack_taps_k(params, bn, bk, tpk)
    gstride, ostride = np.broadcast_to(gstride, tapoff.shape), np.broadcast_to(ostride,
                                                                             tapoff.shape)
    assert all(v % e == 0 for v in (*tapoff[tapoff >= 0], *gstride, *ostride))
    got = np.zeros(idx.size)  # the host zeroes the packed weights (padded)
    written = np.zeros(idx.size, bool)
    src = w.ravel()
    junits, cunits = -(-(J // e) // 8), -(-(-(-cig // e)) // 4)
    units = G * cunits * junits
    nw = cuda_mma.pack_vec_grid(G, cig, J, e) if grid == 3 else 8
    for w0 in range(nw):
        for u in range(w0, units, nw):
            ju, r = u % junits, u // junits
            cu, g = r % cunits, r // cunits
            for lane in range(32):
                j0, c0 = ((ju * 8 + (lane & 7)) * e, (cu * 4 + (lane >> 3)) * e)
                if j0 >= J or c0 >= cig:
                    continue
                base = (g * cig + c0) * J + j0
                v = np.array([src[base + i * J:base + i * J + e] if c0 + i < cig
                              else np.zeros(e) for i in range(e)])
                for jj in range(e):
                    o, k = divmod(j0 + jj, k3)
                    if tapoff[k] < 0:
                        continue
                    d = tapoff[k] + g * gstride[k] + o * ostride[k] + c0
                    assert not written[d:d + e].any(), "written twice"
                    written[d:d + e] = True
                    got[d:d + e] = v[:, jj]
    np.testing.assert_array_equal(got, want)
    assert written[idx >= 0].all()


@pytest.mark.parametrize("rb", [32, 64, 128])
@pytest.mark.parametrize("rows", [32, 64, 128, 256])
def test_wgmma_stage_swizzle(rb, rows):
    """The loader's shared-memory layout is the one wgmma reads: chunk q of a
    stage goes to (row q // CPR, chunk q % CPR) at ``r*RB + ((j ^ ((r*RB >>
    7) % CPR)) << 4)`` (xconvt_wgmma's ``swz``), every 16 bytes written once;
    and that address is the hardware's RB-byte swizzle (address bits 4.. XOR
    bits 7..) of the unswizzled K-major address ``r*RB + 16*j``, so a
    descriptor starting ``32*k`` bytes into the rows (stride 8 rows) reads
    row r's K bytes ``[32k, 32k + 32)``."""
    cpr = rb // 16
    q = np.arange(rows * cpr)
    r, j = q // cpr, q % cpr
    phys = r * rb + ((j ^ ((r * rb >> 7) & (cpr - 1))) << 4)
    assert np.unique(phys).size == phys.size and phys.max() < rows * rb
    logical = r * rb + 16 * j
    bits = cpr.bit_length() - 1  # the swizzle's XOR width (3, 2, 1 bits)
    hw = logical ^ (((logical >> 7) & ((1 << bits) - 1)) << 4)
    np.testing.assert_array_equal(phys, hw)


def test_wgmma_planner_applicability():
    from dataclasses import replace

    from xconvt._params import conv3d_params

    p = _problem((8, 256, 8, 8, 8), (256, 128, 4, 4, 4), "float16", stride=2, padding=1)
    plan = cuda_mma.plan_wgmma(p)
    assert isinstance(plan, cuda_mma.MmaPlan) and plan.name == "cuda.wgmma"
    assert plan.cfg.slab == 5 and "wgmma" in plan.detail and plan.estimate > 0
    for dt, prec, mode in (("float32", "float32", "3xtf32"), ("float32", "tf32", "tf32"),
                           ("bfloat16", "float32", "bfloat16")):
        got = cuda_mma.plan_wgmma(replace(p, dtype=dt, precision=prec))
        assert isinstance(got, cuda_mma.MmaPlan) and mode in got.detail
    assert "9.0" in cuda_mma.plan_wgmma(replace(p, device=replace(p.device,
                                                                  compute_capability=(8, 0))))
    assert "9.0" in cuda_mma.plan_wgmma(replace(p, device=replace(p.device,
                                                                  compute_capability=(10, 0))))
    assert "float64" in cuda_mma.plan_wgmma(replace(p, dtype="float64"))
    assert "conv_transpose3d" in cuda_mma.plan_wgmma(replace(p, op="conv3d"))
    assert "memory budget" in cuda_mma.plan_wgmma(replace(p, budget=1))
    params, _ = conv3d_params((2, 64, 32, 32, 32), (32, 64, 3, 3, 3), None, stride=2,
                              padding=1)
    plan = cuda_mma.plan_wgmma_conv3d(replace(p, op="conv3d", params=params))
    assert isinstance(plan, cuda_mma.MmaPlan) and plan.name == "cuda.wgmma_conv3d"
    assert plan.params.batched_output_shape == (2, 32, 16, 16, 16)
    assert "conv3d" in cuda_mma.plan_wgmma_conv3d(p)
    # every candidate fits the block's shared memory; 16-bit K blocks of 128,
    # 64 or 32 bytes only where they pad fewer channels than the wider one
    for c in cuda_mma._candidates(p.params, "float16", "float32", 232448, "wgmma"):
        assert c.smem <= 232448 and c.bk * 2 in cuda_mma.WG_KBYTES
    def bks(cin):
        q = _problem((1, cin, 8, 8, 8), (cin, 16, 3, 3, 3), "float16")
        return {c.bk for c in cuda_mma._candidates(q.params, "float16", "float32", 232448,
                                                   "wgmma")}

    assert bks(16) == {16, 32, 64} and bks(32) == {32, 64} and bks(64) == {64}
    assert bks(100) == {16, 64}  # 112 channels in blocks of 16, 128 in blocks of 32


@settings(max_examples=40, deadline=None)
@given(cfg=configs(batches=(1, 2), max_channels=5), td=st.sampled_from([1, 2]),
       rb=st.sampled_from([32, 64, 128]), conv3d=st.booleans())
def test_wgmma_box_windows_read_the_right_rows(cfg, td, rb, conv3d):
    """``xconvt_wgmma``'s box staging (``slab`` 6), replayed: per block and
    channel block the loader's swizzled slab (``slab_issue``), and per tap,
    warpgroup, row and K chunk the address wgmma reads through the window's
    descriptor (start ``row0*RB``, stride ``SWP*RB`` per 8 rows, the swizzle
    applied to the absolute address, as measured on an H200), which must
    hold the copy's position and channels the GEMM needs for every stored
    row, and stay inside the buffer for the others."""

    from xconvt._params import conv3d_params

    from .reference import triple

    x, w, b = cfg.arrays(0, "float64")
    params = ConvParams.from_shapes(x.shape, w.shape, None, **cfg.kwargs)
    if conv3d:
        assume(triple(cfg.stride) == (1, 1, 1))
        p3, _ = conv3d_params(params.batched_output_shape, w.shape, None, stride=cfg.stride,
                              padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups)
        params = cuda_mma.Conv3dGemm(p3)
    cpr = rb // 16
    sc = cuda_mma.wg_box_rows(params, td)
    cfg6 = MmaConfig(1, 2, "int", 64 * td, 32, rb // 2, 64, 32, 4, 128 * td, 0, 1, 6,
                     (td, 8, 8), sc)
    (PD, PH, PW), (LD, LH, LW), _ = cuda_mma.cl_layout(params, rb // 2)
    meta, btab = mma_tables(params, cfg6)
    ed, eh, ew = (ax[0].step for ax in params.axis_phases)

    def swz(r, j):
        return r * rb + ((j ^ ((r * rb >> 7) & (cpr - 1))) << 4)

    checked = 0
    for ph_i, row in enumerate(meta):
        cd, ch, cw = row[C["cd"]], row[C["ch"]], row[C["cw"]]
        nd, nh, nw = row[C["nd"]], row[C["nh"]], row[C["nw"]]
        bd, bh, bw = row[C["bd"]], row[C["bh"]], row[C["bw"]]
        if nd * nh * nw == 0:
            continue
        swr, shp, sdp = 8 + (nw - 1) * ew, 8 + (nh - 1) * eh, td + (nd - 1) * ed
        swp = swr  # no padding: the swizzle is of absolute addresses
        assert sdp * shp * swp <= sc
        mt_w, mt_h, mt_d = -(-cw // 8), -(-ch // 8), -(-cd // td)
        for mtile in range(row[C["m_tiles"]]):
            r_ = mtile
            jw0 = (r_ % mt_w) * 8
            r_ //= mt_w
            jh0 = (r_ % mt_h) * 8
            r_ //= mt_h
            jd0 = (r_ % mt_d) * td
            # the loader: slab byte address -> (copy position, chunk)
            held = {}
            for p in range(sdp * shp * swr):
                sw, r2 = p % swr, p // swr
                sh, sd = r2 % shp, r2 // shp
                pos = (min(LD + bd + jd0 + sd, PD - 1), min(LH + bh + jh0 + sh, PH - 1),
                       min(LW + bw + jw0 + sw, PW - 1))
                for j in range(cpr):
                    a = swz((sd * shp + sh) * swp + sw, j)
                    assert a not in held
                    held[a] = (pos, j)
            for t in range(nd * nh * nw):
                ud, uh, uw = t // (nh * nw), (t // nw) % nh, t % nw
                for wg in range(td):
                    row0 = ((wg + ud * ed) * shp + uh * eh) * swp + uw * ew
                    for r in range(64):
                        jd, jh, jw = jd0 + wg, jh0 + r // 8, jw0 + r % 8
                        for c in range(cpr):
                            logical = row0 * rb + (r // 8) * swp * rb + (r % 8) * rb + 16 * c
                            phys = logical ^ (((logical >> 7) & (cpr - 1)) << 4)
                            assert 0 <= phys < sc * rb
                            if jd < cd and jh < ch and jw < cw:
                                want = ((LD + bd + jd + ud * ed, LH + bh + jh + uh * eh,
                                         LW + bw + jw + uw * ew), c)
                                assert held.get(phys) == want, (ph_i, mtile, t, wg, r, c)
                                checked += 1
    assert checked > 0 or all(r[C["nd"]] * r[C["nh"]] * r[C["nw"]] == 0 for r in meta)


def _cl_copy_reference(x, ext, lo, ct, groups):
    """The channels-last copy from its definition: x moved to ``cl_layout``'s
    padded positions and each group's padded channels, zero elsewhere."""
    shape = x.shape
    cig, cp = shape[1] // groups, ct // groups
    want = np.zeros((shape[0],) + tuple(ext) + (ct,))
    for g in range(groups):
        want[:, lo[0]:lo[0] + shape[2], lo[1]:lo[1] + shape[3], lo[2]:lo[2] + shape[4],
             g * cp:g * cp + cig] = np.moveaxis(x[:, g * cig:(g + 1) * cig], 1, -1)
    return want


def replay_to_cl(x, ext, lo, ct, groups, v, grid):
    """``xconvt_mma_to_cl``'s index math replayed thread by thread (its tiles,
    the channel carry between groups, the 4-byte stores of ``v`` values):
    the copy ``y[n][pd][ph][pw][q]`` it writes, NaN where nothing is written."""
    n_, cin = x.shape[:2]
    cig = cin // groups
    cp = ct // groups
    sp = int(np.prod(ext))
    vol = int(np.prod(x.shape[2:]))
    xf = x.reshape(-1)
    y = np.full(n_ * sp * ct, np.nan)
    elems = cuda_mma._CL_ELEMS
    tc = 32 * v
    while tc > 16 and tc // 2 >= ct:
        tc //= 2
    tp = elems // tc
    ptiles, qtiles = -(-sp // tp), -(-ct // tc)
    tiles = n_ * ptiles * qtiles
    for blk in range(grid):
        for t in range(blk, tiles, grid):
            qt, r = t % qtiles, t // qtiles
            st_, n = r % ptiles, r // ptiles
            s0, q0 = st_ * tp, qt * tc
            tile = np.zeros((tp, tc + v))
            for tid in range(256):
                p, c_first, c_step = tid % tp, tid // tp, 256 // tp
                off = -1
                s = s0 + p
                if s < sp:
                    pd, ph, pw = np.unravel_index(s, ext)
                    d, h, w_ = pd - lo[0], ph - lo[1], pw - lo[2]
                    if all(0 <= a < b for a, b in zip((d, h, w_), x.shape[2:])):
                        off = int(np.ravel_multi_index((d, h, w_), x.shape[2:]))
                g, cc = (q0 + c_first) // cp, (q0 + c_first) % cp
                xs = (n * cin + g * cig + cc) * vol + off
                for i in range(elems // 256):
                    c = c_first + i * c_step
                    tile[p, c] = xf[xs] if off >= 0 and g < groups and cc < cig else 0.0
                    cc += c_step
                    xs += c_step * vol
                    if cc >= cp:
                        cc -= cp
                        g += 1
                        xs += (cig - cp) * vol
            upr = tc // v
            for u in range(tp * upr):
                pp, cv = divmod(u, upr)
                s, q = s0 + pp, q0 + cv * v
                if s < sp and q < ct:
                    dst = (n * sp + s) * ct + q
                    assert np.isnan(y[dst:dst + v]).all(), "written twice"
                    y[dst:dst + v] = tile[pp, cv * v:cv * v + v]
    return y.reshape((n_,) + tuple(ext) + (ct,))


@pytest.mark.parametrize("shape, groups, kernel, stride, padding, bk, v", [
    ((2, 6, 3, 4, 5), 2, 3, 1, 1, 8, 1),      # groups, channel padding, halo, float32
    ((1, 40, 2, 3, 9), 1, 3, 2, 1, 16, 2),    # 16-bit, CT 48 (TC 64)
    ((1, 32, 3, 5, 7), 1, 3, 1, 1, 32, 2),    # 16-bit, CT 32
    ((1, 64, 2, 2, 3), 4, 2, 2, 0, 16, 2),    # 16-bit, groups of 16 channels
    ((2, 9, 2, 3, 4), 3, 3, 1, 1, 8, 1),      # float32, CT 24 (TC 32)
    ((1, 12, 3, 2, 5), 3, 2, 1, 0, 8, 1),     # float32, CT 24, no halo
    ((1, 6, 2, 3, 5), 3, 3, 2, 1, 16, 2),     # 16-bit, CT 48 (TC 64)
])
def test_to_cl_copy_replay(shape, groups, kernel, stride, padding, bk, v):
    """The channels-last copy as the kernel's threads write it equals x moved
    to ``cl_layout``'s padded positions and padded channels, zero elsewhere,
    every element written once, for one block and for the grid ``cl_grid``
    gives."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    cout = 2 * groups
    params = ConvParams.from_shapes(shape, (shape[1], cout // groups) + (kernel,) * 3, None,
                                    stride=stride, padding=padding, groups=groups)
    ext, lo, ct = cuda_mma.cl_layout(params, bk)
    want = _cl_copy_reference(x, ext, lo, ct, groups)
    for grid in (1, cuda_mma.cl_grid(ext, ct, shape[0], v)):
        got = replay_to_cl(x, ext, lo, ct, groups, v, grid)
        np.testing.assert_array_equal(got, want)


def replay_to_cl_vec(x, ext, lo, ct, groups, e, grid, rnd=0):
    """``xconvt_mma_to_cl<..., VEC = 1>``'s index math replayed lane by lane
    (warp units of 8 x 4 lane vectors of ``e`` values, the register
    transpose, the halo pass): the copy it writes, NaN where nothing is
    written; ``rnd`` 2: the small halves' region after it, written as the
    kernel's CONV 2 does (zeros where the copy is zero, else NaN-free)."""
    n_, cin = x.shape[:2]
    cig, cp = cin // groups, ct // groups
    ID, IH, IW = x.shape[2:]
    PD, PH, PW = ext
    LD, LH, LW = lo
    vol, sp = ID * IH * IW, PD * PH * PW
    xf = x.reshape(-1)
    size = n_ * sp * ct
    y = np.full(size * (2 if rnd == 2 else 1), np.nan)

    def put(dst, vals):
        assert np.isnan(y[dst:dst + e]).all(), "written twice"
        y[dst:dst + e] = vals
        if rnd == 2:
            assert np.isnan(y[size + dst:size + dst + e]).all(), "written twice"
            y[size + dst:size + dst + e] = 0.0

    pblocks, cunits = -(-(vol // e) // 8), -(-(ct // e) // 4)
    units = n_ * pblocks * cunits
    nw = grid * 8
    for w0 in range(nw):
        for u in range(w0, units, nw):
            cu, r = u % cunits, u // cunits
            pb, n = r % pblocks, r // pblocks
            for lane in range(32):
                wl, cl = lane & 7, lane >> 3
                p0, q0 = (pb * 8 + wl) * e, (cu * 4 + cl) * e
                if p0 >= vol or q0 >= ct:
                    continue
                g, cc0 = q0 // cp, q0 % cp
                base = (n * cin + g * cig + cc0) * vol + p0
                v = np.array([xf[base + i * vol:base + i * vol + e] if cc0 + i < cig
                              else np.zeros(e) for i in range(e)])
                w_, rr = p0 % IW, p0 // IW
                h, d = rr % IH, rr // IH
                yd = (n * sp + ((d + LD) * PH + h + LH) * PW + w_ + LW) * ct + q0
                for j in range(e):
                    put(yd + j * ct, v[:, j])
        rowvec = PW * (ct // e)
        lead, trail = LW * (ct // e), (PW - LW - IW) * (ct // e)
        for r in range(w0, n_ * PD * PH, nw):
            ph, pd = r % PH, (r // PH) % PD
            inner = LD <= pd < LD + ID and LH <= ph < LH + IH
            nl, nt = (lead, trail) if inner else (rowvec, 0)
            for lane in range(32):
                for k in range(lane, nl + nt, 32):
                    el = k if k < nl else rowvec - nt + (k - nl)
                    put(r * PW * ct + el * e, np.zeros(e))
    assert not np.isnan(y[size:]).any(), "small halves not all written"
    return y[:size].reshape((n_,) + tuple(ext) + (ct,))


@pytest.mark.parametrize("shape, groups, kernel, stride, padding, bk, e", [
    ((2, 6, 3, 4, 8), 2, 3, 1, 1, 8, 4),      # groups, channel padding, halo, float32
    ((1, 40, 2, 3, 16), 1, 3, 2, 1, 16, 8),   # 16-bit, CT 48: a partial channel unit
    ((1, 32, 3, 5, 8), 1, 3, 1, 1, 32, 8),    # 16-bit, CT 32
    ((1, 64, 2, 2, 8), 4, 2, 2, 0, 16, 8),    # 16-bit, groups of 16 channels, no halo
    ((2, 9, 2, 3, 4), 3, 3, 1, 1, 8, 4),      # float32, CT 24, one vector a row
    ((1, 6, 2, 3, 24), 3, 3, 2, 1, 16, 8),    # 16-bit, 2 of 16 channels a group
])
def test_to_cl_vec_copy_replay(shape, groups, kernel, stride, padding, bk, e):
    """The 16-byte vector copy (VEC 1) writes the same channels-last copy as
    the tile copy, every element once, for one block and for ``cl_vec_grid``'s
    grid; its small-halves region (3xTF32) likewise."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    cout = 2 * groups
    params = ConvParams.from_shapes(shape, (shape[1], cout // groups) + (kernel,) * 3, None,
                                    stride=stride, padding=padding, groups=groups)
    ext, lo, ct = cuda_mma.cl_layout(params, bk)
    want = _cl_copy_reference(x, ext, lo, ct, groups)
    for grid in (1, cuda_mma.cl_vec_grid(ext, ct, shape[0], shape[2:], e)):
        got = replay_to_cl_vec(x, ext, lo, ct, groups, e, grid, rnd=2 if e == 4 else 0)
        np.testing.assert_array_equal(got, want)


def _replay_wg_taps(params, x, w, b, cfg):
    """What the blocks of ``xconvt_wgmma<..., BOXA = 3>`` (slab 8) compute,
    in float64, by the kernel's index arithmetic: the channels-last copy,
    K blocks of ``tpk`` taps (chunk j of a 128-byte row: tap ``j // CPT`` of
    the block, channel chunk ``j % CPT``), each tap's offset from the table
    (-1 past the phase's taps: zero-filled), B K-major with the taps padded."""
    itemsize = 128 // (cfg.bk * cfg.tpk)
    epc, cpr = 16 // itemsize, 8
    cpt = cpr // cfg.tpk
    bm, bn, bkt, tpk = cfg.bm, cfg.bn, cfg.bk, cfg.tpk
    BK = bkt * tpk
    meta, btab = mma_tables(params, cfg)
    idx = pack_index_k(params, bn, bkt, tpk)
    wflat = w.ravel()
    wp = np.where(idx >= 0, wflat[np.maximum(idx, 0)], 0.0)
    N, G = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    cout = params.out_channels
    ID, IH, IW = params.in_size
    OD, OH, OW = params.out_size
    ed, eh, ew = (ax[0].step for ax in params.axis_phases)
    qd, qh, qw = cuda_mma._in_step(params)
    assert -(-cig // bkt) == 1
    np_ = -(-cog // bn) * bn
    (PD, PH, PW), (LD, LH, LW), CT = cuda_mma.cl_layout(params, bkt)
    CP = CT // G
    xcl = np.zeros((N, PD, PH, PW, CT))
    for g in range(G):
        xcl[:, LD:LD + ID, LH:LH + IH, LW:LW + IW, g * CP:g * CP + cig] = np.moveaxis(
            x[:, g * cig:(g + 1) * cig], 1, -1)
    xcl = xcl.ravel()
    out = np.full(params.batched_output_shape, np.nan).ravel()
    written = np.zeros(out.size, int)
    for ph, r in btab:
        row = meta[ph]
        ntile = r % row[C["n_tiles"]]
        r //= row[C["n_tiles"]]
        mtile = r % row[C["m_tiles"]]
        g = r // row[C["m_tiles"]]
        cd, ch, cw = row[C["cd"]], row[C["ch"]], row[C["cw"]]
        nd, nh, nw = row[C["nd"]], row[C["nh"]], row[C["nw"]]
        per_n = cd * ch * cw
        m = mtile * bm + np.arange(bm)
        ok_m = m < N * per_n
        mc = np.where(ok_m, m, N * per_n - 1)   # rows past the phase: its last position
        nb = mc // per_n
        q = mc - nb * per_n
        jw, jh, jd = q % cw, (q // cw) % ch, q // (cw * ch)
        a_row = ((((nb * PD + LD + row[C["bd"]] + qd * jd) * PH + LH + row[C["bh"]] + qh * jh)
                  * PW + LW + row[C["bw"]] + qw * jw) * CT)
        ntaps = nd * nh * nw
        ntk = -(-ntaps // tpk)
        KT = ntk * BK
        ttab = np.full(ntk * tpk, -1)
        for t in range(ntaps):
            uw, uh, ud = t % nw, (t // nw) % nh, t // (nw * nh)
            ttab[t] = ((ud * ed * PH + uh * eh) * PW + uw * ew) * CT
        n0 = ntile * bn
        wph = row[C["woff"]] + g * np_ * KT + n0 * KT
        acc = np.zeros((bm, bn))
        for kt in range(ntk):
            a = np.zeros((bm, BK))
            for j in range(cpr):
                jt, jc = j // cpt, j % cpt
                toff = ttab[kt * tpk + jt]
                if toff < 0:
                    continue
                src = (a_row + g * CP + jc * epc + toff)[:, None] + np.arange(epc)[None, :]
                assert src.min() >= 0 and src.max() < xcl.size
                a[:, j * epc:(j + 1) * epc] = xcl[src]
            boff = wph + np.arange(bn)[None, :] * KT + kt * BK + np.arange(BK)[:, None]
            acc += a @ wp[boff]
        od = row[C["fd"]] + params.stride[0] * jd
        oh = row[C["fh"]] + params.stride[1] * jh
        ow = row[C["fw"]] + params.stride[2] * jw
        n = n0 + np.arange(bn)
        keep = ok_m[:, None] & (n < cog)[None, :]
        dst = (((nb[:, None] * cout + g * cog + n[None, :]) * OD + od[:, None]) * OH
               + oh[:, None]) * OW + ow[:, None]
        val = acc + (b[g * cog + np.minimum(n, cog - 1)][None, :] if b is not None else 0.0)
        out[dst[keep]] = val[keep]
        np.add.at(written, dst[keep], 1)
    assert (written == 1).all(), "every output is written exactly once"
    return out.reshape(params.batched_output_shape)


@settings(max_examples=40, deadline=None)
@given(cfg=configs(batches=(1, 2), max_channels=6), seed=seeds,
       dtype=st.sampled_from(["float16", "float32"]), pick=st.integers(0, 50),
       conv3d=st.booleans())
def test_wgmma_taps_replay_to_reference(cfg, seed, dtype, pick, conv3d):
    """Slab 8 (K blocks of several taps) replayed by the kernel's index
    arithmetic equals the float64 reference, for the transposed convolution
    and conv3d's GEMM, any of its candidate tiles."""
    from xconvt._params import conv3d_params

    from .reference import conv3d_ref

    x, w, b = cfg.arrays(seed, "float64")
    params = ConvParams.from_shapes(x.shape, w.shape, b.shape if b is not None else None,
                                    **cfg.kwargs)
    if conv3d:
        p3, _ = conv3d_params(params.batched_output_shape, w.shape, None,
                              stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation,
                              groups=cfg.groups)
        geo = cuda_mma.Conv3dGemm(p3)
        y = np.random.default_rng(seed).standard_normal(params.batched_output_shape)
        want = conv3d_ref(y, w, None, stride=cfg.stride, padding=cfg.padding,
                          dilation=cfg.dilation, groups=cfg.groups)
        got_in, bias = y, None
    else:
        geo = params
        want = conv_transpose3d_ref(x, w, b, **cfg.kwargs)
        got_in, bias = x, b
    cands = cuda_mma._wg_candidates(geo, dtype, "float32", 232448, 8)
    if not cands:
        return
    c0 = cands[pick % len(cands)]
    assert c0.tpk >= 2 and c0.slab == 8 and c0.bk * c0.tpk * (2 if dtype == "float16" else 4) == 128
    got = _replay_wg_taps(geo, got_in, w, bias, c0)
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, groups=st.sampled_from([1, 2]),
       kdh=st.sampled_from([(1, 1), (2, 2), (3, 2)]), bias=st.booleans())
def test_pair_layer_equals_the_layer(seed, groups, kdh, bias):
    """The W-pair configuration's arithmetic (``pair_params``): the pair
    layer (kernel 1 and stride 1 along W, ``2 * Cout`` channels) with the
    weights as ``xconvt_wgmma_pack`` reads them for ``pair`` (column ``o`` is
    W tap ``o & 1`` of channel ``o >> 1``; bias ``b[o >> 1]``), its column
    ``2 o + j`` written to channel ``o``, output column ``2 iw + j``, is the
    layer, against float64; the pack's source index for ``pair`` is that
    weight."""
    rng = np.random.default_rng(seed)
    cin, cog = 2 * groups, 3
    x = rng.standard_normal((2, cin, 3, 4, 5))
    kd, kh = kdh
    w = rng.standard_normal((cin, cog, kd, kh, 2))
    b = rng.standard_normal(groups * cog) if bias else None
    kw = dict(stride=(2, 1, 2), padding=(min(kd - 1, 1), 0, 0), groups=groups)
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape, **kw)
    gp = cuda_mma.pair_params(params)
    assert gp is not None and gp.kernel == (kd, kh, 1) and gp.out_size[2] == x.shape[4]
    # the pack kernel's reads, pair = 1: s = w + g*Cig*Cog'*K3' + (o >> 1)*(2 K3') + (o & 1),
    # element c*kstride + (k << 1), kstride = Cog'*K3'
    cig, cogp, k3p = cin // groups, 2 * cog, kd * kh
    g_, c_, o_, k_ = np.meshgrid(np.arange(groups), np.arange(cig), np.arange(cogp),
                                 np.arange(k3p), indexing="ij")
    src = (g_ * cig * cogp * k3p + (o_ >> 1) * (2 * k3p) + (o_ & 1) + c_ * cogp * k3p
           + (k_ << 1))
    wp = w.ravel()[src].reshape(groups * cig, cogp, kd, kh, 1)   # [g*cig + c][o'][k']
    bp = None if b is None else np.repeat(b, 2)
    y = conv_transpose3d_ref(x, wp, bp, stride=(2, 1, 1), padding=(kw["padding"][0], 0, 0),
                             groups=groups)
    n_, _, od, oh, iw = y.shape
    got = y.reshape(n_, groups * cog, 2, od, oh, iw).transpose(0, 1, 3, 4, 5, 2).reshape(
        n_, groups * cog, od, oh, 2 * iw)
    want = conv_transpose3d_ref(x, w, b, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert cuda_mma.pair_params(ConvParams.from_shapes(
        x.shape, (cin, cog, 2, 2, 3), None, stride=2, groups=groups)) is None


def test_wgmma_planner_takes_pairs_vec_and_fold_where_measured():
    """``cuda.wgmma``'s estimates (H200 preset numbers) take W pairs for the
    U-Net layers at every precision, the VEC epilogue for 16-bit stride-1
    layers of few channels with rows of whole 16-byte runs, the W fold for
    their float32-storage precisions (TF32, 3xTF32), and none of them
    elsewhere (seed_example's rows of 100, strided W, 16-bit folds: measured
    slower)."""
    from bench import cases as C

    suite = {c.name: c.params() for c in C.GPU_SUITE}
    for name in ("unet_k2s2", "unet_k2s2_big"):
        for dt, prec in (("float16", "float32"), ("float32", "tf32"), ("float32", "float32")):
            cfg = cuda_mma.mma_config(suite[name], dt, prec, 132, 232448, "wgmma")[0]
            assert cfg.pair == 1 and cfg.vec == 0, (name, dt, prec)
    for name in ("same_k3s1", "dilated_k3d2"):
        cfg = cuda_mma.mma_config(suite[name], "float16", "float32", 132, 232448, "wgmma")[0]
        assert cfg.vec == 1 and cfg.fold == 0
        for prec in ("tf32", "float32"):  # the W fold in float32 storage, whole rows a tile
            cfg = cuda_mma.mma_config(suite[name], "float32", prec, 132, 232448, "wgmma")[0]
            # dilated_k3d2's rows of 48 fill only 192-row tiles, 3xTF32's
            fold = 3 if name == "same_k3s1" or prec == "float32" else 0
            assert cfg.vec == 0 and cfg.fold == fold, (name, prec)
            assert cfg.bm % suite[name].in_size[2] == 0 or not fold
    for name in ("seed_example", "vnet_k3s2", "gan_k4s2"):
        for dt, prec in (("float16", "float32"), ("float32", "tf32"), ("float32", "float32")):
            cfg = cuda_mma.mma_config(suite[name], dt, prec, 132, 232448, "wgmma")[0]
            assert cfg.vec == 0 and cfg.pair == 0 and cfg.fold == 0, (name, dt, prec)
    assert not cuda_mma.vec_applies(suite["seed_example"], "float16")
    assert cuda_mma.pair_params(suite["gan_k4s2"]) is None
    assert cuda_mma.fold_params(suite["gan_k4s2"]).kernel == (4, 4, 1)
    assert not cuda_mma.fold_applies(suite["gan_k4s2"], "float32")      # stride 2
    assert not cuda_mma.fold_applies(suite["seed_example"], "float32")  # rows of 100
    assert not cuda_mma.fold_applies(suite["same_k3s1"], "float16")
    assert cuda_mma.fold_params(suite["depthwise_k7"]) is None  # no tile of whole channels


@settings(max_examples=30, deadline=None)
@given(seed=seeds, sd=st.sampled_from([1, 2]), k=st.sampled_from([1, 2, 3]),
       size=st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 21)),
       bm=st.sampled_from([64, 128]), epc=st.sampled_from([4, 8]), off=st.sampled_from([0, 1]))
def test_vec_epilogue_index_math(seed, sd, k, size, bm, epc, off):
    """``xconvt_wgmma``'s VEC epilogue replayed: every chunk of ``epc`` rows
    of a column that takes the 16-byte store (its first and last rows valid,
    one output row, consecutive W, an aligned address) covers exactly the
    outputs the per-value epilogue writes for those rows, and with the
    value-by-value fallback every output is written once (stride 1 along W,
    any stride along D, an output at element offset ``off``)."""
    del seed
    params = ConvParams.from_shapes((2, 4) + size, (4, 3, k, k, k), None,
                                    stride=(sd, 1, 1), padding=(k // 2, 0, k // 2))
    cfg = MmaConfig(1, 2, "int", bm, 32, 32, 64, 32, 4, bm // 64 * 128, 0, 2, 5, vec=1)
    meta, btab = mma_tables(params, cfg)
    N, cout = params.batch, params.out_channels
    OD, OH, OW = params.out_size
    ODHW = OD * OH * OW
    written = np.zeros(N * cout * ODHW, int)
    for ph, r in btab:
        row = meta[ph]
        ntile = r % row[C["n_tiles"]]
        mtile = (r // row[C["n_tiles"]]) % row[C["m_tiles"]]
        cd, ch, cw = row[C["cd"]], row[C["ch"]], row[C["cw"]]
        per_n = cd * ch * cw

        def decode(m):
            m += mtile * bm
            nb = m // per_n
            q = m - nb * per_n
            return m < N * per_n, nb, q // (cw * ch), (q // cw) % ch, q % cw

        def index(nb, n, jd, jh, jw):
            od = row[C["fd"]] + sd * jd
            oh = row[C["fh"]] + jh
            return (nb * cout + ntile * 32 + n) * ODHW + (od * OH + oh) * OW + row[C["fw"]] + jw

        for n in range(min(32, cout - ntile * 32)):
            for m in range(0, bm, epc):
                v0, nb, jd, jh, jw = decode(m)
                v1, nb1, jd1, jh1, jw1 = decode(m + epc - 1)
                if v0 and v1 and (nb1, jd1, jh1, jw1) == (nb, jd, jh, jw + epc - 1) \
                        and (off + index(nb, n, jd, jh, jw)) % epc == 0:
                    got = index(nb, n, jd, jh, jw) + np.arange(epc)
                    want = [index(*decode(m + e)[1:2], n, *decode(m + e)[2:]) for e in range(epc)]
                    np.testing.assert_array_equal(got, want)
                    written[got] += 1
                else:
                    for e in range(epc):
                        ok, nb2, jd2, jh2, jw2 = decode(m + e)
                        if not ok:
                            break
                        written[index(nb2, n, jd2, jh2, jw2)] += 1
    assert (written == 1).all()


@settings(max_examples=40, deadline=None)
@given(seed=seeds, groups=st.sampled_from([1, 2]), kw=st.sampled_from([2, 3, 4]),
       sw=st.sampled_from([1, 2, 3]), pw=st.integers(0, 2), dw=st.sampled_from([1, 2]),
       opw=st.integers(0, 1), iw=st.integers(1, 13), bm=st.sampled_from([64, 128]),
       bias=st.booleans())
def test_fold_replay_to_reference(seed, groups, kw, sw, pw, dw, opw, iw, bm, bias):
    """The W fold (``fold_params``, ``xconvt_wgmma``'s FOLD epilogue) replayed
    block by block against float64: the fold layer's GEMM (kernel 1 along W,
    ``KW * Cout`` columns, the weights as ``xconvt_wgmma_pack`` reads them
    with ``wf = KW``: column ``o`` is W tap ``o % KW`` of channel ``o // KW``),
    M tiles of whole input rows from ``mtile * FMT``, then per output row the
    kernel's three paths (unit stride; stride 2 with ``OW = 2 IW``, two
    columns a lane; any stride) sum the taps; every output element is
    written exactly once."""
    rng = np.random.default_rng(seed)
    opw = min(opw, max(sw, dw) - 1)
    cin, cog = 2 * groups, 3
    x = rng.standard_normal((2, cin, 2, 3, iw))
    w = rng.standard_normal((cin, cog, 2, 1, kw))
    b = rng.standard_normal(groups * cog) if bias else None
    kwargs = dict(stride=(2, 1, sw), padding=(1, 0, min(pw, (kw - 1) * dw)),
                  output_padding=(1, 0, opw), dilation=(1, 1, dw), groups=groups)
    try:
        params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                        **kwargs)
    except ValueError:
        return  # an empty output
    fp = cuda_mma.fold_params(params)
    assert fp.kernel == (2, 1, 1) and fp.out_size[2] == iw
    assert fp.out_channels_per_group == kw * cog
    # the pack's reads, wf = KW: s = w + g*Cig*Cog'*K3' + (o // KW)*(KW K3') + o % KW,
    # element c*kstride + k*KW, kstride = Cog'*K3'
    cig, cogp, k3p = cin // groups, kw * cog, 2
    g_, c_, o_, k_ = np.meshgrid(np.arange(groups), np.arange(cig), np.arange(cogp),
                                 np.arange(k3p), indexing="ij")
    src = g_ * cig * cogp * k3p + (o_ // kw) * (kw * k3p) + o_ % kw + c_ * cogp * k3p + k_ * kw
    wp = w.ravel()[src].reshape(groups * cig, cogp, 2, 1, 1)
    y = conv_transpose3d_ref(x, wp, None, stride=(2, 1, 1), padding=(1, 0, 0),
                             output_padding=(1, 0, 0), groups=groups)
    want = conv_transpose3d_ref(x, w, b, **kwargs)
    bn = next(n for n in cuda_mma.WG_FOLD_BN[::-1] if n % kw == 0)
    cfg = MmaConfig(0, 0, "int", bm, bn, 32, 64, bn, 4, bm // 64 * 128, 0, 2, 5, fold=kw)
    fmt = cuda_mma._fold_rows(fp, cfg)
    meta, btab = mma_tables(fp, cfg)
    N, OW = params.batch, params.out_size[2]
    args = cuda_mma.kernel_args(params, cfg)  # what the kernel's epilogue reads
    assert (args["FOLD"], args["FS"], args["FDL"], args["FOW"], args["FMT"], args["OW"]) == (
        kw, sw, dw, OW, fmt, iw)
    got = np.full(want.shape, np.nan)
    count = np.zeros(want.shape, int)
    for ph, r in btab:
        row = meta[ph]
        ntile = r % row[C["n_tiles"]]
        r //= row[C["n_tiles"]]
        mtile, g = r % row[C["m_tiles"]], r // row[C["m_tiles"]]
        cd, ch, cw = row[C["cd"]], row[C["ch"]], row[C["cw"]]
        assert cw == iw
        per_n = cd * ch * cw
        n0, c0 = ntile * bn, ntile * bn // kw
        for rr in range(fmt // iw):
            m = mtile * fmt + rr * iw
            if m >= N * per_n:
                continue
            nb, q = divmod(m, per_n)
            jd, jh = q // (cw * ch), (q // cw) % ch
            od, oh = row[C["fd"]] + 2 * jd, row[C["fh"]] + jh
            for c in range(min(bn // kw, cog - c0)):
                st = y[nb, g * cogp + n0 + c * kw: g * cogp + n0 + (c + 1) * kw, od, oh, :]
                bv = b[g * cog + c0 + c] if bias else 0.0
                out = got[nb, g * cog + c0 + c, od, oh]
                hit = count[nb, g * cog + c0 + c, od, oh]
                if sw == 1:
                    for e in range(OW):
                        v = bv
                        for t in range(kw):
                            i = e + kwargs["padding"][2] - t * dw
                            if 0 <= i < iw:
                                v += st[t, i]
                        out[e] = v
                        hit[e] += 1
                elif sw == 2 and OW == 2 * iw:
                    for e in range(iw):
                        v = [bv, bv]
                        for t in range(kw):
                            t0 = kwargs["padding"][2] - t * dw
                            i = e + ((t0 + 1) >> 1)
                            if 0 <= i < iw:
                                v[t0 & 1] += st[t, i]
                        out[2 * e: 2 * e + 2] = v
                        hit[2 * e: 2 * e + 2] += 1
                else:
                    for e in range(OW):
                        v = bv
                        for t in range(kw):
                            s = e + kwargs["padding"][2] - t * dw
                            if s < 0:
                                continue
                            i = s // sw
                            if i * sw == s and i < iw:
                                v += st[t, i]
                        out[e] = v
                        hit[e] += 1
    assert (count == 1).all()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_kernel_args_of_every_configuration_kind():
    """``kernel_args`` (the kernels' ``MmaArgs``) builds every field of
    :data:`MMA_FIELDS` but ``has_bias`` as int32 values for the plain,
    W-pair, VEC and W-fold configurations of the suite's layers and for the
    conv3d GEMM (which has no W geometry of a transposed convolution: the
    ``F*`` fields stay 0; building them from it was a GPU failure)."""
    from bench import cases as C

    from xconvt._params import conv3d_params

    fields = set(cuda_mma.MMA_FIELDS) - {"has_bias"}
    for case in C.GPU_SUITE[:7]:
        p = case.params()
        q, _ = conv3d_params(p.batched_output_shape, p.weight_shape, None, case.stride,
                             case.padding, case.dilation, case.groups)
        for geo, variants in ((p, ("wgmma", "wgmma_pair", "wgmma_vec", "wgmma_fold", "cl")),
                              (cuda_mma.Conv3dGemm(q), ("wgmma", "cl", "tap"))):
            for dt, prec in (("float16", "float32"), ("float32", "tf32"), ("float32", "float32")):
                for variant in variants:
                    for cfg in cuda_mma._candidates(geo, dt, prec, 232448, variant)[:2]:
                        gp = cuda_mma.pair_params(geo) if cfg.pair else geo
                        args = cuda_mma.kernel_args(gp, cfg)
                        assert set(args) == fields, (case.name, variant)
                        assert all(isinstance(v, (int, np.integer)) and -2**31 <= v < 2**31
                                   for v in args.values()), (case.name, variant, args)
                        assert (args["FOLD"] > 0) == (cfg.fold > 0)
                        if cfg.fold:
                            assert args["FOW"] == p.out_size[2] and args["OW"] == p.in_size[2]
                            assert args["Cout"] == cfg.fold * p.out_channels


def test_launch_objects_are_callable():
    """``_Launch`` (the per-configuration launcher every GPU call goes through)
    keeps its ``__call__``: a module-level function placed inside the class
    body once detached it, and only the GPU tests would have noticed."""
    assert callable(cuda_mma._Launch.__dict__.get("__call__"))
    assert callable(cuda_mma.kernel_args)


def test_wgmma_planner_takes_mw_rows_where_measured():
    """``mw_rows``: the plain 128 x 32 pick becomes 512 rows with ``MW`` 4 on
    16-bit stride-1 layers and 256 rows with ``MW`` 2 on 16-bit and TF32
    stride-2 layers of 32-64 input and at most 32 output channels (the
    probe's measured wins), nowhere else on the GPU suite; the replacement
    keeps the pick's K block, epilogue and tile columns."""
    from bench.cases import GPU_SUITE

    want = {("vnet_k3s2", "float16", "float32"): (256, 2),
            ("vnet_k3s2", "bfloat16", "float32"): (256, 2),
            ("vnet_k3s2", "float32", "tf32"): (256, 2),
            ("same_k3s1", "float16", "float32"): (512, 4),
            ("same_k3s1", "bfloat16", "float32"): (512, 4),
            ("dilated_k3d2", "float16", "float32"): (512, 4),
            ("dilated_k3d2", "bfloat16", "float32"): (512, 4)}
    got = {}
    for c in GPU_SUITE:
        p = c.params()
        for dt, prec in (("float16", "float32"), ("bfloat16", "float32"),
                         ("float32", "tf32"), ("float32", "float32")):
            cfg = cuda_mma.mma_config(p, dt, prec, 132, 232448, "wgmma")
            if isinstance(cfg, str):
                continue
            cfg = cfg[0]
            if cfg.mw > 1:
                got[(c.name, dt, prec)] = (cfg.bm, cfg.mw)
                assert cfg.bn == 32 and cfg.threads == cfg.bm // (64 * cfg.mw) * 128
                assert cfg.smem <= 116 * 1024 and cfg.stages == 3
    assert got == want
