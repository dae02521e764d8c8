"""The oracle itself: ``reference.conv_transpose3d_ref`` against hand-computed
values and against PyTorch on the CPU in float64."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import random_array, rel_l2
from .reference import conv_transpose3d_ref, out_size_ref


def _line(values):
    """A (1, 1, 1, 1, W) array holding ``values`` along W."""
    return np.asarray(values, dtype=np.float64).reshape(1, 1, 1, 1, -1)


def test_hand_computed_stride():
    # x = [1, 2, 3], w = [1, 10], stride 2: blocks [x*1, x*10] side by side.
    out = conv_transpose3d_ref(_line([1, 2, 3]), _line([1, 10]), stride=(1, 1, 2))
    np.testing.assert_array_equal(out.ravel(), [1, 10, 2, 20, 3, 30])


def test_hand_computed_overlap_padding_dilation():
    x = _line([1, 2, 3])
    w = _line([1, 10, 100])
    # stride 1: full correlation-like overlap-add.
    full = conv_transpose3d_ref(x, w)
    np.testing.assert_array_equal(full.ravel(), [1, 12, 123, 230, 300])
    # padding 1 crops one element each side; output_padding 1 adds one at the end.
    np.testing.assert_array_equal(
        conv_transpose3d_ref(x, w, padding=(0, 0, 1)).ravel(), [12, 123, 230])
    np.testing.assert_array_equal(
        conv_transpose3d_ref(x, w, padding=(0, 0, 1), output_padding=(0, 0, 1),
                             stride=(1, 1, 2)).ravel(),
        # full stride-2 result is [1, 10, 102, 20, 203, 30, 300]; crop 1..6
        [10, 102, 20, 203, 30, 300])
    # dilation 2: taps at 0, 2, 4.
    np.testing.assert_array_equal(
        conv_transpose3d_ref(_line([1, 2]), w, dilation=(1, 1, 2)).ravel(),
        [1, 2, 10, 20, 100, 200])


def test_output_padding_past_the_written_region_is_bias():
    # stride 3 with output_padding 2 and no padding: the last 2 outputs receive
    # no input and hold only the bias.
    x = _line([1.0, 2.0])
    w = _line([1.0])
    b = np.array([0.5])
    out = conv_transpose3d_ref(x, w, b, stride=(1, 1, 3), output_padding=(0, 0, 2))
    np.testing.assert_array_equal(out.ravel(), [1.5, 0.5, 0.5, 2.5, 0.5, 0.5])


def test_groups_are_block_diagonal():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3, 2, 3))
    w = rng.standard_normal((4, 3, 2, 2, 1))
    out = conv_transpose3d_ref(x, w, groups=2, stride=2)
    lo = conv_transpose3d_ref(x[:, :2], w[:2], stride=2)
    hi = conv_transpose3d_ref(x[:, 2:], w[2:], stride=2)
    np.testing.assert_allclose(out, np.concatenate([lo, hi], axis=1), rtol=0, atol=0)


def test_unbatched_and_complex():
    rng = np.random.default_rng(1)
    x = random_array(rng, (2, 3, 3, 3), np.complex128)
    w = random_array(rng, (2, 2, 2, 2, 2), np.complex128)
    out = conv_transpose3d_ref(x, w)
    assert out.shape == (2, 4, 4, 4) and out.dtype == np.complex128
    # Linearity in the real/imaginary parts.
    re = conv_transpose3d_ref(x.real, w.real) - conv_transpose3d_ref(x.imag, w.imag)
    im = conv_transpose3d_ref(x.real, w.imag) + conv_transpose3d_ref(x.imag, w.real)
    assert rel_l2(out, re + 1j * im) < 1e-14


def test_out_size_formula():
    assert out_size_ref((10, 50, 100), (3, 5, 2), (2, 1, 1), (0, 4, 2)) == (21, 46, 97)


# ---------------------------------------------------------------- vs PyTorch
def _random_config(rng):
    while True:
        groups = int(rng.integers(1, 4))
        cig, cog = (int(v) for v in rng.integers(1, 4, 2))
        n = int(rng.integers(0, 3)) if rng.random() < 0.85 else None
        in_size = tuple(int(v) for v in rng.integers(1, 6, 3))
        kernel = tuple(int(v) for v in rng.integers(1, 5, 3))
        stride = tuple(int(v) for v in rng.integers(1, 4, 3))
        dilation = tuple(int(v) for v in rng.integers(1, 4, 3))
        padding = tuple(int(v) for v in rng.integers(0, 4, 3))
        output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        if min(out_size_ref(in_size, kernel, stride, padding, output_padding, dilation)) < 1:
            continue
        xs = ((groups * cig,) if n is None else (n, groups * cig)) + in_size
        ws = (groups * cig, cog) + kernel
        bias = (groups * cog,) if rng.random() < 0.5 else None
        kw = dict(stride=stride, padding=padding, output_padding=output_padding,
                  groups=groups, dilation=dilation)
        return xs, ws, bias, kw


@pytest.mark.parametrize("seed", range(120))
def test_reference_matches_torch_float64(seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng([7, seed])
    xs, ws, bs, kw = _random_config(rng)
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = None if bs is None else rng.standard_normal(bs)
    expected = torch.nn.functional.conv_transpose3d(
        torch.from_numpy(x), torch.from_numpy(w),
        None if b is None else torch.from_numpy(b), **kw).numpy()
    got = conv_transpose3d_ref(x, w, b, **kw)
    assert got.shape == expected.shape, (xs, ws, kw)
    if expected.size:
        assert rel_l2(got, expected) < 1e-13, (xs, ws, kw)


@pytest.mark.parametrize("seed", range(10))
def test_reference_matches_torch_complex128(seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng([8, seed])
    xs, ws, bs, kw = _random_config(rng)
    x = random_array(rng, xs, np.complex128)
    w = random_array(rng, ws, np.complex128)
    b = None if bs is None else random_array(rng, bs, np.complex128)
    try:
        expected = torch.nn.functional.conv_transpose3d(
            torch.from_numpy(x), torch.from_numpy(w),
            None if b is None else torch.from_numpy(b), **kw).numpy()
    except RuntimeError as exc:  # pragma: no cover - older torch
        pytest.skip(f"torch has no complex conv_transpose3d here: {exc}")
    got = conv_transpose3d_ref(x, w, b, **kw)
    assert got.shape == expected.shape
    if expected.size:
        assert rel_l2(got, expected) < 1e-13
