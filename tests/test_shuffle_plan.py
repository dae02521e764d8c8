"""``cuda.shuffle`` without a GPU: where it applies, its plan and estimate on
the H200 preset, and a NumPy replay of ``xconvt_shuffle``'s index formula
(the GEMM to ``Cout * taps`` channels and the shuffle) against the float64
reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xconvt._params import ConvParams
from xconvt._plan import DEVICE_PRESETS, Problem
from xconvt.backends.cuda import shuffle

from .reference import conv_transpose3d_ref


def _params(k=(2, 2, 2), s=None, **kw):
    return ConvParams.from_shapes((2, 16, 5, 6, 7), (16, 8) + tuple(k), None,
                                  stride=k if s is None else s, **kw)


@pytest.mark.parametrize("kw, why", [
    (dict(k=(2, 2, 2), s=(2, 2, 1)), "kernel_size == stride"),
    (dict(padding=1, k=(3, 3, 3)), "padding and output_padding 0"),
    (dict(k=(1, 1, 1)), "already one GEMM"),
    (dict(k=(2, 2, 2), s=(2, 2, 2), dilation=2), "dilation 1"),
])
def test_one_tap_rejects(kw, why):
    assert why in shuffle.one_tap(_params(**kw))


def test_one_tap_rejects_dilation_and_output_padding():
    p = ConvParams.from_shapes((1, 4, 3, 3, 3), (4, 4, 2, 2, 2), None, stride=2,
                               output_padding=1)
    assert "output_padding" in shuffle.one_tap(p)
    p = ConvParams.from_shapes((1, 4, 3, 3, 3), (4, 4, 1, 1, 1), None, stride=1, dilation=2)
    assert shuffle.one_tap(p) is not None


def test_plan_on_the_h200_preset():
    p = ConvParams.from_shapes((2, 128, 32, 32, 32), (128, 64, 2, 2, 2), (64,), stride=2)
    for dt in ("float32", "float16", "bfloat16", "float64", "complex64"):
        prob = Problem("conv_transpose3d", p, dt, DEVICE_PRESETS["h200"])
        got = shuffle.plan(prob)
        assert isinstance(got, shuffle.ShufflePlan), got
        inner = got.inner
        assert "GEMM to 512 channels" in got.detail
        nbytes = math.prod(p.batched_output_shape) * prob.itemsize
        assert got.estimate > inner.estimate
        assert got.workspace == inner.workspace + nbytes
    small = Problem("conv_transpose3d", p, "float32", DEVICE_PRESETS["h200"], budget=1 << 20)
    assert "memory budget" in shuffle.plan(small)
    from xconvt._plan import cpu_device

    assert "CUDA" in shuffle.plan(Problem("conv_transpose3d", p, "float32", cpu_device()))


def _shuffle_replay(y, params):
    """``xconvt_shuffle``'s index formula, element by element (vectorized)."""
    n, c = params.batch, params.out_channels
    d_, h_, w_ = params.in_size
    sd, sh, sw = params.stride
    od_, oh_, ow_ = params.out_size
    out = np.empty((n, c, od_, oh_, ow_), y.dtype)
    yf = y.reshape(-1)
    j = np.arange(oh_ * ow_)
    oh, ow = j // ow_, j % ow_
    h, w = oh // sh, ow // sw
    sub = (oh - h * sh) * sw + (ow - w * sw)
    planes = n * c * od_
    for p in range(planes):
        b = p // od_
        od = p - b * od_
        d = od // sd
        src = ((b * sd * sh * sw + (od - d * sd) * sh * sw + sub) * d_ + d) * (h_ * w_) \
            + h * w_ + w
        out.reshape(planes, -1)[p] = yf[src]
    return out


@settings(max_examples=25, deadline=None)
@given(k=st.tuples(*[st.integers(1, 3)] * 3).filter(lambda k: math.prod(k) > 1),
       size=st.tuples(*[st.integers(1, 5)] * 3), batch=st.integers(1, 2),
       cig=st.integers(1, 5), cog=st.integers(1, 4), groups=st.integers(1, 3),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_gemm_and_shuffle_replay_the_layer(k, size, batch, cig, cog, groups, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, groups * cig) + size)
    w = rng.standard_normal((groups * cig, cog) + k)
    b = rng.standard_normal(groups * cog) if bias else None
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    stride=k, groups=groups)
    assert shuffle.one_tap(params) is None
    inner = shuffle.inner_params(params)
    taps = math.prod(k)
    # the GEMM, as the inner 1x1x1 layer computes it (weight read as (Cin, Cog * T))
    w2 = w.reshape(groups * cig, cog * taps, 1, 1, 1)
    b2 = None if b is None else np.repeat(b, taps)
    y = conv_transpose3d_ref(x, w2, b2, groups=groups)
    assert y.shape == inner.batched_output_shape
    got = _shuffle_replay(y, params)
    ref = conv_transpose3d_ref(x, w, b, stride=k, groups=groups)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
