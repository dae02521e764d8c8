"""The algorithm chooser: ``auto``'s cost-model decisions and ``measure``'s cache.

These check decisions and bookkeeping, never timings.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xconvt
from xconvt import _cost, backends
from xconvt._params import ConvParams


def params(n, cin, cout, size, k, stride=1, padding=0, groups=1, dilation=1):
    size = size if isinstance(size, tuple) else (size,) * 3
    k = k if isinstance(k, tuple) else (k,) * 3
    return ConvParams.from_shapes((n, cin) + size, (cin, cout // groups) + k, None,
                                  stride, padding, 0, groups, dilation)


KINDS = ["numpy", "cupy"]

DECISIONS = [
    # (description, params, expected)
    ("4ch 32^3 k15", params(1, 4, 4, 32, 15, padding=7), "fft"),
    ("4ch 32^3 k21", params(1, 4, 4, 32, 21, padding=10), "fft"),
    ("4ch 32^3 k31", params(1, 4, 4, 32, 31, padding=15), "fft"),
    ("4ch 64^3 k15", params(1, 4, 4, 64, 15, padding=7), "fft"),
    ("1ch 256^3 k31", params(1, 1, 1, 256, 31, padding=15), "fft"),
    ("k2 s2 unet", params(1, 64, 32, 32, 2, stride=2), "direct"),
    ("k2 s1", params(1, 16, 16, 16, 2), "direct"),
    ("k1", params(1, 4, 4, 32, 1), "direct"),
    ("depthwise k3", params(1, 32, 32, 32, 3, padding=1, groups=32), "direct"),
    ("wide k3 s2", params(2, 64, 32, 32, 3, stride=2, padding=1), "direct"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("what", "p", "expect"), DECISIONS, ids=[d[0] for d in DECISIONS])
def test_auto_decisions(kind, what, p, expect):
    if isinstance(expect, dict):
        expect = expect[kind]
    assert _cost.choose(kind, p, np.dtype("float32")) == expect


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "complex64",
                                   "complex128"])
def test_estimates_are_positive_for_every_dtype(dtype):
    for _, p, expect in DECISIONS[:3] + DECISIONS[5:7]:
        if isinstance(expect, dict):
            expect = expect["numpy"]
        t = _cost.estimate("numpy", p, np.dtype(dtype))
        assert set(t) == {"direct", "fft"}
        assert all(math.isfinite(v) and v > 0 for v in t.values())
        assert _cost.choose("numpy", p, np.dtype(dtype)) == expect


def test_fft_cost_grows_slowly_with_kernel_direct_fast():
    """Direct cost grows about with the taps; FFT cost with the padded volume."""
    small = _cost.estimate("numpy", params(1, 4, 4, 32, 5, padding=2), "float32")
    large = _cost.estimate("numpy", params(1, 4, 4, 32, 25, padding=12), "float32")
    assert large["direct"] / small["direct"] > 20
    assert large["fft"] / small["fft"] < 5


def test_smaller_budget_prices_fft_higher():
    p = params(1, 1, 1, 128, 31, padding=15)
    roomy = _cost.estimate("numpy", p, "float32", budget=2**30)["fft"]
    tight = _cost.estimate("numpy", p, "float32", budget=2**22)["fft"]
    assert tight > roomy


def test_auto_result_matches_forced_algorithm():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 9, 9, 9))
    w = rng.standard_normal((2, 3, 7, 7, 7))
    auto = xconvt.conv_transpose3d(x, w, padding=3)
    fft = xconvt.conv_transpose3d(x, w, padding=3, algorithm="fft")
    np.testing.assert_allclose(auto, fft, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------- measure
@pytest.fixture
def counted(monkeypatch):
    """Registry whose backends count their calls; ``fft`` is made slow."""
    import time

    calls = {"direct": 0, "fft": 0}
    real = backends.get

    def fake_get(kind, name):
        fn = real(kind, name)

        def wrapped(*args):
            calls[name] += 1
            if name == "fft":
                time.sleep(0.02)
            return fn(*args)

        return wrapped

    monkeypatch.setattr(backends, "get", fake_get)
    monkeypatch.setattr(_cost, "_MEASURED", {})
    return calls


def test_measure_times_once_and_caches(counted):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 5, 5))
    w = rng.standard_normal((2, 2, 3, 3, 3))
    p = ConvParams.from_shapes(x.shape, w.shape, None, 1, 1)
    assert _cost.measure("numpy", p, x, w, None) == "direct"  # fft sleeps
    timed = dict(counted)
    assert timed["direct"] >= 2 and timed["fft"] >= 2  # warm-up + timed run
    for _ in range(3):
        assert _cost.measure("numpy", p, x, w, None) == "direct"
    assert counted == timed  # nothing re-timed
    # Another dtype is another key.
    _cost.measure("numpy", p, x.astype(np.float32), w.astype(np.float32), None)
    assert counted["fft"] > timed["fft"]


def test_measure_through_the_public_function(counted):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 5, 5))  # unbatched
    w = rng.standard_normal((2, 3, 3, 3, 3))
    first = xconvt.conv_transpose3d(x, w, stride=2, algorithm="measure")
    n_direct = counted["direct"]
    second = xconvt.conv_transpose3d(x, w, stride=2, algorithm="measure")
    assert counted["direct"] == n_direct + 1  # only the chosen backend ran
    np.testing.assert_array_equal(first, second)
    ref = xconvt.conv_transpose3d(x, w, stride=2, algorithm="direct")
    np.testing.assert_allclose(first, ref, rtol=1e-12, atol=1e-12)


def test_measure_key_includes_params(counted):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 5, 5, 5))
    w = rng.standard_normal((2, 2, 3, 3, 3))
    for s in (1, 2):
        p = ConvParams.from_shapes(x.shape, w.shape, None, s)
        _cost.measure("numpy", p, x, w, None)
    assert len(_cost._MEASURED) == 2


def test_calibration_fit_recovers_known_constants():
    """``_fit`` on synthetic records returns the constants that made them."""
    rng = np.random.default_rng(4)
    true = {name: {f: float(v) for f, v in zip(feats, rng.uniform(1e-10, 1e-9, len(feats)))}
            for name, feats in (("direct", _cost.DIRECT_FEATURES),
                                ("fft", _cost.FFT_FEATURES))}
    records = []
    for _ in range(40):
        rec = {"direct_f": {f: float(v) for f, v in zip(
                   _cost.DIRECT_FEATURES, rng.uniform(1e3, 1e9, 5))},
               "fft_f": {f: float(v) for f, v in zip(
                   _cost.FFT_FEATURES, rng.uniform(1e3, 1e9, 5))}}
        rec.update(_cost._predict(true, rec))
        records.append(rec)
    fitted = _cost._fit(records)
    for name in true:
        for f in true[name]:
            assert fitted[name][f] == pytest.approx(true[name][f], rel=1e-6)
