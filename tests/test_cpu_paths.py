"""Every CPU direct formulation and operand layout against the reference.

The CPU planners pick one formulation per call (channel GEMM on three
column grids, Toeplitz-W with several block sizes) and, for the channel GEMM,
plane-major operands (depth taps folded into one GEMM per output plane) or
channel-major ones (one GEMM per H/W unit with every depth tap's weights
stacked, the taps then summed).  The property tests only reach the picked one;
here each is forced in turn.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from xconvt._params import ConvParams
from xconvt.backends.cpu import common
from xconvt.backends.cpu.channel_gemm import ChannelGemm
from xconvt.backends.cpu.toeplitz import ToeplitzW

from .helpers import assert_close
from .strategies import configs, seeds

FORMS = [("gemm", g, pm) for g in ("exact", "rows", "flat") for pm in (True, False)]
FORMS += [("toeplitz", m, None) for m in (1, 2, 4)]


def _run(params, x, w, b, form):
    kind, arg, plane_major = form
    dtype = x.dtype
    out = np.empty(params.batched_output_shape, dtype)
    geo = common.Geometry(params)
    if kind == "gemm" or not geo.pds or not geo.phs:
        f = ChannelGemm(geo, arg if kind == "gemm" else "exact", plane_major)
    else:
        f = ToeplitzW(geo, arg)
    with np.errstate(all="ignore"):
        common.phase_split(geo, x, w, None if b is None else b.astype(dtype), out, f)
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", FORMS, ids=lambda f: "-".join(map(str, f)))
@settings(deadline=None)
@given(cfg=configs(batches=(1, 2)), seed=seeds)
def test_forced_formulation(form, dtype, cfg, seed):
    x, w, b = cfg.arrays(seed, dtype)
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    **cfg.kwargs)
    out = _run(params, x, w, b, form)
    assert_close(out, cfg.reference(x, w, b), dtype)


@pytest.mark.parametrize("form", [("gemm", "exact", False), ("gemm", "rows", True),
                                  ("toeplitz", 2, None)],
                         ids=lambda f: "-".join(map(str, f)))
@settings(deadline=None, max_examples=25)
@given(cfg=configs(batches=(1, 2)), seed=seeds)
def test_weights_packed_without_cached_indices(form, cfg, seed):
    """Weights above ``PACK_INDEX_MAX`` elements are rearranged directly
    instead of by the cached gather; both give the same operands."""
    x, w, b = cfg.arrays(seed, np.float64)
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    **cfg.kwargs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "PACK_INDEX_MAX", 0)
        out = _run(params, x, w, b, form)
    assert_close(out, cfg.reference(x, w, b), np.float64)
