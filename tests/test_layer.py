"""``xconvt.ConvTranspose3d``: parameters, initialization, state dicts, repr, forward."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xconvt

from .helpers import assert_close
from .reference import conv_transpose3d_ref


def _bound(cout, kernel, groups=1):
    return math.sqrt(groups / (cout * math.prod(kernel)))


@pytest.mark.parametrize("kw,wshape", [
    (dict(in_channels=16, out_channels=33, kernel_size=(3, 5, 2)), (16, 33, 3, 5, 2)),
    (dict(in_channels=6, out_channels=4, kernel_size=3, groups=2), (6, 2, 3, 3, 3)),
    (dict(in_channels=3, out_channels=3, kernel_size=[1, 2, 1], groups=3), (3, 1, 1, 2, 1)),
])
def test_shapes_and_default_dtype(kw, wshape):
    m = xconvt.ConvTranspose3d(**kw, rng=0)
    assert type(m.weight) is np.ndarray and type(m.bias) is np.ndarray
    assert m.weight.shape == wshape
    assert m.bias.shape == (kw["out_channels"],)
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    assert m.dtype == np.float32
    assert m.device == "cpu"
    assert m.kernel_size == tuple(wshape[2:])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "complex64",
                                   "complex128", np.float64])
def test_dtype_argument(dtype):
    m = xconvt.ConvTranspose3d(2, 4, 2, dtype=dtype, rng=0)
    assert m.weight.dtype == np.dtype(dtype) and m.bias.dtype == np.dtype(dtype)
    bound = _bound(4, (2, 2, 2))
    parts = [m.weight.real, m.weight.imag] if m.weight.dtype.kind == "c" else [m.weight]
    for p in parts:
        assert np.all(np.abs(p.astype(np.float64)) <= bound * (1 + 1e-3))


def test_no_bias():
    m = xconvt.ConvTranspose3d(2, 4, 3, bias=False, rng=0)
    assert m.bias is None
    assert set(m.state_dict()) == {"weight"}
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 2, 2)).astype(np.float32)
    assert_close(m(x), conv_transpose3d_ref(x, m.weight), "float32")


@pytest.mark.parametrize("cout,kernel,groups", [(64, (4, 4, 4), 1), (48, (3, 5, 2), 4)])
def test_init_distribution(cout, kernel, groups):
    """U(-b, b) with b = sqrt(groups / (Cout * prod(k))), for weight and bias."""
    cin = 64
    m = xconvt.ConvTranspose3d(cin, cout, kernel, groups=groups, rng=123)
    b = _bound(cout, kernel, groups)
    w = m.weight.astype(np.float64).ravel()
    assert w.size > 10_000
    assert np.all(np.abs(w) <= b)
    assert w.min() < -0.99 * b and w.max() > 0.99 * b
    assert abs(w.std() / (b / math.sqrt(3)) - 1) < 0.03
    assert abs(w.mean()) < 0.03 * b
    # roughly uniform: each tenth of [-b, b] holds about 10%
    hist, _ = np.histogram(w, bins=10, range=(-b, b))
    assert np.all(np.abs(hist / w.size - 0.1) < 0.02), hist
    bias = m.bias.astype(np.float64)
    assert np.all(np.abs(bias) <= b)
    assert len(np.unique(bias)) == cout  # really drawn, not constant


def test_rng_reproducibility():
    a = xconvt.ConvTranspose3d(4, 6, 3, groups=2, rng=7)
    b = xconvt.ConvTranspose3d(4, 6, 3, groups=2, rng=np.random.default_rng(7))
    c = xconvt.ConvTranspose3d(4, 6, 3, groups=2, rng=8)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)
    assert not np.array_equal(a.weight, c.weight)
    # reset_parameters with the same seed draws the same values again
    a.reset_parameters(7)
    np.testing.assert_array_equal(a.weight, b.weight)


def test_unseeded_layers_differ():
    a = xconvt.ConvTranspose3d(4, 6, 3)
    b = xconvt.ConvTranspose3d(4, 6, 3)
    assert not np.array_equal(a.weight, b.weight)


def test_state_dict_round_trip():
    src = xconvt.ConvTranspose3d(4, 6, (2, 3, 1), stride=2, groups=2, rng=1)
    dst = xconvt.ConvTranspose3d(4, 6, (2, 3, 1), stride=2, groups=2, rng=2)
    sd = src.state_dict()
    assert set(sd) == {"weight", "bias"}
    missing, unexpected = dst.load_state_dict(sd)
    assert list(missing) == [] and list(unexpected) == []
    np.testing.assert_array_equal(dst.weight, src.weight)
    np.testing.assert_array_equal(dst.bias, src.bias)
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3, 3)).astype(np.float32)
    ref = conv_transpose3d_ref(x, src.weight, src.bias, stride=2, groups=2)
    assert_close(dst(x), ref, "float32")


def test_load_state_dict_casts_to_layer_dtype():
    m = xconvt.ConvTranspose3d(2, 2, 2, rng=0)  # float32
    w = np.random.default_rng(0).standard_normal((2, 2, 2, 2, 2))  # float64
    m.load_state_dict({"weight": w, "bias": np.zeros(2)})
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    np.testing.assert_allclose(m.weight, w.astype(np.float32))


@pytest.mark.parametrize("sd_keys", [{"weight"}, {"weight", "bias", "extra"},
                                     {"bias"}, {"weight", "running_mean", "bias"}])
def test_strict_key_mismatch_raises(sd_keys):
    m = xconvt.ConvTranspose3d(2, 2, 2, rng=0)
    arrays = {"weight": m.weight, "bias": m.bias, "extra": np.zeros(1),
              "running_mean": np.zeros(2)}
    before = m.weight.copy()
    with pytest.raises(KeyError) as info:
        m.load_state_dict({k: arrays[k] for k in sd_keys})
    odd = (sd_keys ^ {"weight", "bias"})
    for key in odd:
        assert key in str(info.value)
    np.testing.assert_array_equal(m.weight, before)


def test_non_strict_load_reports_keys():
    m = xconvt.ConvTranspose3d(2, 2, 2, rng=0)
    w = np.ones((2, 2, 2, 2, 2), np.float32)
    missing, unexpected = m.load_state_dict({"weight": w, "extra": w}, strict=False)
    assert list(missing) == ["bias"] and list(unexpected) == ["extra"]
    np.testing.assert_array_equal(m.weight, w)


def test_bias_false_rejects_bias_key():
    m = xconvt.ConvTranspose3d(2, 2, 2, bias=False, rng=0)
    with pytest.raises(KeyError, match="bias"):
        m.load_state_dict({"weight": m.weight, "bias": np.zeros(2, np.float32)})


def test_forward_matches_reference_every_option():
    kw = dict(stride=(2, 1, 3), padding=(1, 0, 1), output_padding=(1, 0, 2),
              groups=2, dilation=(1, 2, 1))
    m = xconvt.ConvTranspose3d(4, 6, (3, 2, 2), **kw, rng=3)
    x = np.random.default_rng(4).standard_normal((2, 4, 3, 4, 2)).astype(np.float32)
    ref = conv_transpose3d_ref(x, m.weight, m.bias, **kw)
    out = m(x)
    assert type(out) is np.ndarray and out.dtype == np.float32
    assert_close(out, ref, "float32")
    assert_close(m.forward(x[0]), ref[0], "float32")  # unbatched


def test_seed_example():
    m = xconvt.ConvTranspose3d(16, 33, (3, 5, 2), stride=(2, 1, 1), padding=(0, 4, 2),
                               rng=0)
    x = np.random.default_rng(1).standard_normal((2, 16, 4, 6, 8), np.float32)
    out = m(x)
    assert out.shape == (2, 33, 9, 2, 5)  # the class docstring says (2, 33, 9, 2, 13)
    ref = conv_transpose3d_ref(x, m.weight, m.bias, stride=(2, 1, 1), padding=(0, 4, 2))
    assert_close(out, ref, "float32")


def test_forward_output_size():
    m = xconvt.ConvTranspose3d(2, 3, 3, stride=2, padding=1, rng=0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4, 4))
    for size, op in [((7, 7, 7), 0), ((8, 8, 8), 1), ((7, 8, 7), (0, 1, 0))]:
        out = m(x, output_size=size)
        ref = conv_transpose3d_ref(x, m.weight, m.bias, stride=2, padding=1,
                                   output_padding=op)
        assert_close(out, ref, "float64")
    assert m(x, output_size=(1, 3, 8, 7, 8)).shape == (1, 3, 8, 7, 8)
    with pytest.raises(ValueError, match="output_size"):
        m(x, output_size=(9, 9, 9))


# ------------------------------------------------------------- vs PyTorch
torch_cases = [
    dict(in_channels=16, out_channels=33, kernel_size=(3, 5, 2), stride=(2, 1, 1),
         padding=(0, 4, 2)),
    dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 2)),
    dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 2), dilation=(2, 2, 2)),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1,
         output_padding=1, groups=2, bias=False),
    dict(in_channels=3, out_channels=3, kernel_size=(1, 2, 3), stride=(1, 2, 3),
         dilation=(3, 1, 1), output_padding=(2, 1, 0), groups=3),
    dict(in_channels=4, out_channels=5, kernel_size=[3, 1, 3], padding=[1, 0, 2]),
]


@pytest.mark.parametrize("kw", torch_cases)
def test_repr_matches_torch(kw):
    torch = pytest.importorskip("torch")
    assert repr(xconvt.ConvTranspose3d(**kw)) == repr(torch.nn.ConvTranspose3d(**kw))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", torch_cases)
def test_load_torch_state_dict(kw, dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tdtype = getattr(torch, dtype)
    tm = torch.nn.ConvTranspose3d(**kw, dtype=tdtype)
    m = xconvt.ConvTranspose3d(**kw, dtype=dtype, rng=0)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert set(sd) == set(m.state_dict())
    m.load_state_dict(sd)
    cin = kw["in_channels"]
    x = np.random.default_rng(0).standard_normal((2, cin, 4, 8, 5)).astype(dtype)
    with torch.no_grad():
        expected = tm(torch.from_numpy(x)).numpy()
    out = m(x)
    assert out.shape == expected.shape and out.dtype == np.dtype(dtype)
    assert_close(out, expected, tol={"float32": 1e-5, "float64": 1e-10}[dtype])


def test_torch_init_bounds_agree():
    """Torch's own init never exceeds our bound (the same formula)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.ConvTranspose3d(8, 12, (3, 2, 4), groups=4)
    b = _bound(12, (3, 2, 4), 4)
    assert tm.weight.abs().max().item() <= b
    assert tm.weight.abs().max().item() > 0.95 * b


@pytest.mark.parametrize("unbatched", [False, True])
def test_forward_output_size_matches_torch(unbatched):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(in_channels=4, out_channels=6, kernel_size=(3, 2, 3), stride=(2, 3, 2),
              padding=(1, 0, 1), groups=2, dilation=(1, 2, 1))
    tm = torch.nn.ConvTranspose3d(**kw, dtype=torch.float64)
    m = xconvt.ConvTranspose3d(**kw, dtype="float64")
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 4, 2))
    if unbatched:
        x = x[0]
    lead = x.shape[:-4] + (6,)
    for spatial in [(5, 12, 3), (6, 14, 4), (5, 13, 4)]:
        for size in (spatial, lead + spatial):
            with torch.no_grad():
                expected = tm(torch.from_numpy(x), output_size=list(size)).numpy()
            out = m(x, output_size=size)
            assert out.shape == expected.shape
            assert_close(out, expected, tol=1e-10)
