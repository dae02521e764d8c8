"""The fused GPU kernel's iteration space, checked on the CPU.

:func:`xconvt.backends.cuda.geometry.kernel_geometry` turns a layer into stride phases
that read consecutive rows of a (possibly rearranged) input.  Here those
phases, and the rearrangement ``xconvt_remap`` applies, are replayed in NumPy
and compared with the float64 reference, so the geometry is tested where no
GPU exists (the kernels themselves are tested in ``test_gpu.py``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xconvt._params import ConvParams
from xconvt.backends.cuda.fused import META_FIELDS, _fused_tables, fused_config
from xconvt.backends.cuda.geometry import kernel_geometry

from .reference import conv_transpose3d_ref
from .strategies import configs, seeds


def _replay(params, x, w):
    geo = kernel_geometry(params)
    n, g = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    x6 = x.reshape((n, g, cig) + params.in_size)
    if geo.remap is not None:
        rd, rh, rw = (np.asarray(t) for t in geo.remap)
        ok = (rd[:, None, None] >= 0) & (rh[None, :, None] >= 0) & (rw[None, None, :] >= 0)
        vals = x6[..., np.maximum(rd, 0)[:, None, None], np.maximum(rh, 0)[None, :, None],
                  np.maximum(rw, 0)[None, None, :]]
        x6 = np.where(ok, vals, 0.0)
    assert x6.shape[3:] == geo.in_size
    # Weights as the kernel reads them: w's flat tap index from the phase's
    # first tap and per-axis tap offsets (meta columns M_WTAP0..M_WSTEP_W).
    w4 = w.reshape(g, cig, cog, -1)
    cfg = fused_config(params, "float64")
    meta = _fused_tables(params, cfg)[0]
    assert len(meta) == len(geo.phases)
    out = np.zeros((n, g, cog) + params.out_size)
    seen = np.zeros(params.out_size, bool)
    for tri, row in zip(geo.phases, meta):
        col = dict(zip(META_FIELDS, row))
        tap0 = col["wtap0"]
        steps = np.array([col["wstep_d"], col["wstep_h"], col["wstep_w"]])
        counts = [ph.count for ph in tri]
        osl = tuple(slice(ph.first, ph.first + s * (ph.count - 1) + 1, s)
                    for ph, s in zip(tri, geo.out_stride))
        assert not seen[osl].any(), "two phases write one output"
        seen[osl] = True
        acc = np.zeros((n, g, cog) + tuple(counts))
        for ud in range(len(tri[0].taps)):
            for uh in range(len(tri[1].taps)):
                for uw in range(len(tri[2].taps)):
                    us = (ud, uh, uw)
                    tap = tap0 + int(np.dot(steps, us))
                    xs = np.zeros((n, g, cig) + tuple(counts))
                    src, dst = [], []
                    for a, ph in enumerate(tri):
                        st = geo.in_stride[a]
                        idx = ph.base + st * (np.arange(ph.count) + us[a])
                        keep = (idx >= 0) & (idx < geo.in_size[a])
                        src.append(idx[keep])
                        dst.append(np.nonzero(keep)[0])
                    xs[np.ix_(range(n), range(g), range(cig), *dst)] = \
                        x6[np.ix_(range(n), range(g), range(cig), *src)]
                    acc += np.einsum("ngc...,gco->ngo...", xs, w4[..., tap])
        out[(slice(None),) * 3 + osl] = acc
    return out.reshape((n, g * cog) + params.out_size)


@settings(max_examples=120, deadline=None)
@given(cfg=configs(batches=(1, 2)), seed=seeds)
def test_kernel_geometry_replays_to_reference(cfg, seed):
    x, w, _ = cfg.arrays(seed, "float64")
    kw = cfg.kwargs
    params = ConvParams.from_shapes(x.shape, w.shape, None, **kw)
    np.testing.assert_allclose(_replay(params, x, w), conv_transpose3d_ref(x, w, None, **kw),
                               rtol=1e-10, atol=1e-10)


def test_dilation_is_remapped_to_unit_input_stride():
    params = ConvParams.from_shapes((1, 32, 48, 48, 48), (32, 32, 3, 3, 3), padding=2,
                                    dilation=2)
    geo = kernel_geometry(params)
    assert geo.in_stride == (1, 1, 1) and geo.remap is not None
    assert geo.in_size[2] % 4 == 0 and len(geo.phases) == 8
    plain = ConvParams.from_shapes((1, 4, 8, 8, 8), (4, 4, 3, 3, 3), stride=2, dilation=2)
    assert kernel_geometry(plain).remap is None  # the dilation divides the stride


def _replay_gather(params, x, w, rg):
    """The gather kernel's loops (``xconvt_gather``) in NumPy, from its table."""
    from xconvt.backends.cuda.gather import _gather_table

    tab, E, _ = _gather_table(params, rg)
    N, G = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    OD, OH, OW = params.out_size
    ID, IH, IW = params.in_size
    sd, sh, sw = params.stride
    x6 = x.reshape(N, G, cig, ID, IH, IW)
    w6 = w.reshape(G, cig, cog, *params.kernel)
    out = np.full((N, G, cog, OD, OH, OW), np.nan)
    wtab = tab[3 * (OD + OH):3 * (OD + OH) + 5 * E].reshape(E, 5)
    taps = tab[3 * (OD + OH) + 5 * E:]
    for od in range(OD):
        kd0, id0, nd = tab[3 * od:3 * od + 3]
        for oh in range(OH):
            kh0, ih0, nh = tab[3 * (OD + oh):3 * (OD + oh) + 3]
            for o0, nv, win0, nt, off in wtab:
                acc = np.zeros((N, G, cog, rg))
                for td in range(nd):
                    for tq in range(nh):
                        row = x6[:, :, :, id0 - td, ih0 - tq]
                        wr = w6[:, :, :, kd0 + td * sd, kh0 + tq * sh]
                        for u in range(nt):
                            for r in range(rg):
                                iw = win0 + r + u
                                if 0 <= iw < IW:
                                    acc[..., r] += np.einsum("ngc,gco->ngo", row[..., iw],
                                                             wr[..., taps[off + u]])
                for r in range(nv):
                    out[:, :, :, od, oh, o0 + r * sw] = acc[..., r]
    return out.reshape((N, G * cog) + params.out_size)


@settings(max_examples=60, deadline=None)
@given(cfg=configs(batches=(1, 2), max_dilation=1, max_spatial=4), seed=seeds,
       rg=st.sampled_from([1, 2, 4]))
def test_gather_tables_replay_to_reference(cfg, seed, rg):
    """Every output is written once by the gather kernel's table, with the right taps."""
    x, w, _ = cfg.arrays(seed, "float64")
    kw = cfg.kwargs
    params = ConvParams.from_shapes(x.shape, w.shape, None, **kw)
    np.testing.assert_allclose(_replay_gather(params, x, w, rg),
                               conv_transpose3d_ref(x, w, None, **kw), rtol=1e-10, atol=1e-10)


def _replay_tile(params, x, w):
    """The tile kernel's loops (``xconvt_tile``) in NumPy, from its configuration."""
    from xconvt.backends.cuda.tile import _TILE_THREADS, tile_config

    cfg = tile_config(params, 8)
    N, G = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    ID, IH, IW = params.in_size
    TD, TH, TW = cfg.tile
    XD, XH, XW = cfg.slab
    x6 = x.reshape(N, G, cig, ID, IH, IW)
    wk = w.reshape(G, cig, cog, params.taps)
    KH, KW = params.kernel[1:]
    nph = math.prod(len([ph for ph in ax if ph.count]) for ax in params.axis_phases)
    pt = cfg.ptab[:15 * nph].reshape(nph, 15)
    taps = cfg.ptab[15 * nph:]
    out = np.full((N, G, cog) + params.out_size, np.nan)
    per_og = _TILE_THREADS // cfg.n_og
    assert (TW // 4) * TD * TH == per_og
    for n, g, td_, th_, tw_ in np.ndindex(N, G, *cfg.ntiles):
        j0 = (td_ * TD, th_ * TH, tw_ * TW)
        slab = np.zeros((cig, XD, XH, XW))
        src = [np.arange(lo + j, lo + j + X) for lo, j, X in zip(cfg.lo, j0, (XD, XH, XW))]
        ok = [(s >= 0) & (s < S) for s, S in zip(src, params.in_size)]
        slab[np.ix_(range(cig), *[np.nonzero(k)[0] for k in ok])] = \
            x6[n, g][np.ix_(range(cig), *[s[k] for s, k in zip(src, ok)])]
        for p in range(nph):
            first, count, off, nt, toff = pt[p, 0:3], pt[p, 3:6], pt[p, 6:9], pt[p, 9:12], pt[p, 12:15]
            LG = TW // 4
            for ld, lh, lg in np.ndindex(TD, TH, LG):
                # the thread's W outputs are j = jw + LG*r
                j = (j0[0] + ld, j0[1] + lh, j0[2] + lg)
                if j[0] >= count[0] or j[1] >= count[1] or j[2] >= count[2]:
                    continue
                acc = np.zeros((cog, 4))
                for ud in range(nt[0]):
                    for uh in range(nt[1]):
                        row = slab[:, ld + off[0] + ud, lh + off[1] + uh]
                        for uw in range(nt[2]):
                            k = (taps[toff[0] + ud] * KH + taps[toff[1] + uh]) * KW \
                                + taps[toff[2] + uw]
                            xv = row[:, lg + off[2] + uw + LG * np.arange(4)]
                            acc += wk[g, :, :, k].T @ xv
                for r in range(4):
                    if j[2] + LG * r < count[2]:
                        o = [f + s * jj for f, s, jj in zip(first, params.stride, j)]
                        out[n, g, :, o[0], o[1], o[2] + params.stride[2] * LG * r] = acc[:, r]
    return out.reshape((N, G * cog) + params.out_size)


@settings(max_examples=40, deadline=None)
@given(cfg=configs(batches=(1, 2), max_dilation=1, max_spatial=4, max_channels=5),
       seed=seeds)
def test_tile_config_replays_to_reference(cfg, seed):
    """Every output is written once by the tile kernel's blocks and phases."""
    from xconvt.backends.cuda.tile import tile_config

    x, w, _ = cfg.arrays(seed, "float64")
    kw = cfg.kwargs
    params = ConvParams.from_shapes(x.shape, w.shape, None, **kw)
    assume(tile_config(params, 8) is not None)
    np.testing.assert_allclose(_replay_tile(params, x, w),
                               conv_transpose3d_ref(x, w, None, **kw), rtol=1e-10, atol=1e-10)


TILE_WIDE = [  # 2 and 4 groups of output channels per block, partial groups, odd strides
    ((2, 4, 3, 5, 9), (4, 32, 3, 3, 3), dict(stride=2, padding=1)),
    ((1, 6, 4, 3, 6), (6, 13, 4, 3, 2),
     dict(stride=(2, 3, 2), padding=(1, 0, 1), output_padding=(1, 2, 0), groups=2)),
    ((1, 3, 5, 4, 40), (3, 5, 3, 4, 3), dict(stride=(3, 2, 2), padding=(2, 1, 0))),
]


@pytest.mark.parametrize("xs, ws, kw", TILE_WIDE)
def test_tile_config_replays_wide(xs, ws, kw):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    params = ConvParams.from_shapes(xs, ws, None, **kw)
    np.testing.assert_allclose(_replay_tile(params, x, w),
                               conv_transpose3d_ref(x, w, None, **kw), rtol=1e-10, atol=1e-10)


def _choice(params, dtype, device="h100"):
    from xconvt import _select
    from xconvt._plan import DEVICE_PRESETS, Problem

    return _select.choose(Problem("conv_transpose3d", params, dtype, DEVICE_PRESETS[device]),
                          "direct")


def test_tile_variant_depends_on_the_dtype():
    """float64 doubles the tile kernel's shared memory: grouped_g4 (16 -> 16
    channels per group, k3 s2) takes it in float32 but not in float64."""
    params = ConvParams.from_shapes((2, 64, 32, 32, 32), (64, 16, 3, 3, 3), None, stride=2,
                                    padding=1, output_padding=1, groups=4)
    assert _choice(params, "float32").name == "cuda.tile"
    assert _choice(params, "float64").name == "cuda.fused"  # no tensor cores in float64


SUITE_VARIANTS = {
    # the direct plan of each GPU suite case (bench/cases.py) in float32, as
    # measured fastest on an H200 (bench/results/precisions_h200_2026-12-02.json:
    # 3xTF32 tensor cores against the FMA kernels; bench/results/
    # wg_sweep_h200_2026-12-02/: 3xTF32 on wgmma against mma.sync: seed_example
    # 0.93 against the fused kernel's 1.43 ms, gan_k4s2 0.22 against 0.38;
    # same_k3s1 and dilated_k3d2 within 1-8% either way, unet and vnet
    # mma.sync 0.26/0.34/0.23 against 0.29/0.50/0.21-0.26; unet_k2s2 since
    # 2026-12-03 wgmma's W pairs, 0.192 against mma.sync's 0.270 ms,
    # precisions_h200_2026-12-03{c,d}): the estimates must keep choosing it
    "seed_example": "cuda.wgmma", "unet_k2s2": "cuda.wgmma", "unet_k2s2_big": "cuda.mma",
    "vnet_k3s2": "cuda.mma", "gan_k4s2": "cuda.wgmma", "same_k3s1": "cuda.wgmma",
    "dilated_k3d2": "cuda.wgmma", "grouped_g4": "cuda.tile", "depthwise_k7": "cuda.fused",
    "imaging_c1_k5s2": "cuda.gather",
}


@pytest.mark.parametrize("name", sorted(SUITE_VARIANTS))
def test_suite_cases_keep_their_measured_variant(name):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.cases import GPU_SUITE

    case = next(c for c in GPU_SUITE if c.name == name)
    assert _choice(case.params(), "float32").name == SUITE_VARIANTS[name]
