"""The public function's call cache (``xconvt._dispatch._CALLS``).

A call whose arguments match one that validated and planned before reuses its
plan.  These tests check that a hit computes the same as a fresh call (against
the float64 reference), that the settings in effect take part in the choice,
and that nothing a fresh call would reject is ever let through by a hit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import xconvt
from xconvt import _dispatch, _select

from .helpers import assert_close, random_array
from .reference import conv_transpose3d_ref
from .strategies import configs, seeds

KW = {"stride": (2, 1, 2), "padding": (1, 0, 1), "output_padding": (1, 0, 0), "groups": 2,
      "dilation": (1, 2, 1)}


def _arrays(dtype="float64", seed=0, batch=2):
    rng = np.random.default_rng(seed)
    x = random_array(rng, (batch, 4, 3, 5, 4), dtype)
    w = random_array(rng, (4, 3, 3, 2, 3), dtype)
    b = random_array(rng, (6,), dtype)
    return x, w, b


def _key(x, w, b, **kw):
    args = {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "dilation": 1,
            "output_size": None, "algorithm": "auto", "precision": None, **kw}
    return _dispatch._call_key(x, w, b, args["stride"], args["padding"],
                               args["output_padding"], args["groups"], args["dilation"],
                               args["output_size"], args["algorithm"], args["precision"])


@pytest.fixture
def plan_calls(monkeypatch):
    """The problems :func:`xconvt._select.plan_for` is asked for (a miss of the
    call cache asks it; a hit does not)."""
    seen = []
    real = _select.plan_for

    def spy(op, kind, params, dtype, precision, budget, algorithm, operands):
        seen.append((params, dtype, precision, budget, algorithm))
        return real(op, kind, params, dtype, precision, budget, algorithm, operands)

    monkeypatch.setattr(_select, "plan_for", spy)
    monkeypatch.setattr(_dispatch, "_CALLS", {})
    return seen


def test_hit_equals_reference(plan_calls):
    x, w, b = _arrays()
    ref = conv_transpose3d_ref(x, w, b, **KW)
    first = xconvt.conv_transpose3d(x, w, b, **KW)
    assert len(plan_calls) == 1 and len(_dispatch._CALLS) == 1
    second = xconvt.conv_transpose3d(x, w, b, **KW)
    assert len(plan_calls) == 1  # a hit: no validation, no planning
    assert second is not first  # a new array every call
    assert_close(first, ref, "float64")
    assert_close(second, ref, "float64")
    # a list is the tuple's entry; other data of the same geometry reads its own values
    x2, w2, b2 = _arrays(seed=1)
    out = xconvt.conv_transpose3d(x2, w2, b2, **{**KW, "stride": [2, 1, 2]})
    assert len(plan_calls) == 1
    assert_close(out, conv_transpose3d_ref(x2, w2, b2, **KW), "float64")


def test_hit_with_other_strides_and_unbatched(plan_calls):
    x, w, b = _arrays()
    xconvt.conv_transpose3d(x, w, b, **KW)
    # the same shapes as strided views: the cache ignores strides, the plan reads them
    xs = np.asfortranarray(x)
    ws = np.ascontiguousarray(np.swapaxes(w, 3, 4)).swapaxes(3, 4)
    assert not xs.flags.c_contiguous and not ws.flags.c_contiguous
    out = xconvt.conv_transpose3d(xs, ws, b[::-1].copy()[::-1], **KW)
    assert len(plan_calls) == 1
    assert_close(out, conv_transpose3d_ref(x, w, b, **KW), "float64")
    # unbatched: its own entry, the batch axis added and removed on a hit too
    for _ in range(2):
        out = xconvt.conv_transpose3d(x[1], w, b, **KW)
        assert out.shape == conv_transpose3d_ref(x[1:], w, b, **KW).shape[1:]
        assert_close(out, conv_transpose3d_ref(x[1:], w, b, **KW)[0], "float64")
    assert len(plan_calls) == 2


def test_settings_between_identical_calls(plan_calls):
    x, w, b = _arrays("float32", batch=1)
    xconvt.conv_transpose3d(x, w, b, **KW)
    assert plan_calls[-1][2:4] == ("float32", xconvt.get_memory_budget())
    with xconvt.float32_precision("tf32"):
        xconvt.conv_transpose3d(x, w, b, **KW)
        assert plan_calls[-1][2] == "tf32"
    xconvt.conv_transpose3d(x, w, b, **KW)  # back to float32: the first entry
    assert len(plan_calls) == 2
    old = xconvt.set_float32_precision("tf32")
    try:
        xconvt.conv_transpose3d(x, w, b, **KW)  # the "tf32" entry
        assert len(plan_calls) == 2
        xconvt.conv_transpose3d(x, w, b, precision="float32", **KW)
        assert plan_calls[-1][2] == "float32" and len(plan_calls) == 3
    finally:
        xconvt.set_float32_precision(old)
    # the memory budget: a budget too small for the small path's workspace
    # changes the plan of the same call
    first = _dispatch._CALLS[_key(x, w, b, **KW)][2]
    assert first.name == "cpu.small"
    with xconvt.memory_budget(64):
        out = xconvt.conv_transpose3d(x, w, b, **KW)
        assert plan_calls[-1][3] == 64
        assert _dispatch._CALLS[_key(x, w, b, **KW)][2].name != "cpu.small"
    assert_close(out, conv_transpose3d_ref(x, w, b, **KW), "float32")
    old = xconvt.set_memory_budget(64)
    try:
        xconvt.conv_transpose3d(x, w, b, **KW)
        assert len(plan_calls) == 4  # the entry of the 64-byte budget
    finally:
        xconvt.set_memory_budget(old)
    xconvt.conv_transpose3d(x, w, b, **KW)
    assert len(plan_calls) == 4


def test_replaced_planner_cache_plans_afresh(monkeypatch, plan_calls):
    x, w, b = _arrays()
    xconvt.conv_transpose3d(x, w, b, **KW)
    monkeypatch.setattr(_select, "_PLANS", {})
    xconvt.conv_transpose3d(x, w, b, **KW)
    assert len(plan_calls) == 2


@pytest.mark.parametrize("change, error, match", [
    ({"stride": (2.0, 1, 2)}, TypeError, "stride"),
    ({"stride": (True, 1, 2)}, TypeError, "stride"),
    ({"groups": 2.0}, TypeError, "groups"),
    ({"groups": 3}, ValueError, "groups"),
    ({"output_padding": (2, 0, 0)}, ValueError, "output_padding"),
    ({"padding": (1, 0, -1)}, ValueError, "padding"),
    ({"algorithm": "bogus"}, ValueError, "algorithm"),
    ({"algorithm": ["auto"]}, ValueError, "algorithm"),
    ({"precision": "float16"}, ValueError, "precision"),
    ({"precision": 1}, TypeError, "precision"),
    ({"output_size": (1, 1, 1)}, ValueError, "output_size"),
    ({"w": np.zeros((4, 3, 3, 2, 3), np.float32)}, TypeError, "dtype"),
    ({"w": np.zeros((4, 3, 3, 2), np.float64)}, ValueError, "weight"),
    ({"b": np.zeros(5)}, ValueError, "bias"),
    ({"b": np.zeros(6, np.float32)}, TypeError, "dtype"),
    ({"x": np.zeros((2, 5, 3, 5, 4))}, ValueError, "channels"),
    ({"x": np.zeros((2, 4, 3, 5, 4), np.int64)}, TypeError, "dtype"),
])
def test_invalid_after_cached_still_raises(plan_calls, change, error, match):
    x, w, b = _arrays()
    kw = dict(KW)
    xconvt.conv_transpose3d(x, w, b, **kw)
    xconvt.conv_transpose3d(x, w, b, **kw)
    assert len(plan_calls) == 1
    x, w, b = change.pop("x", x), change.pop("w", w), change.pop("b", b)
    kw.update(change)
    with pytest.raises(error, match=match):
        xconvt.conv_transpose3d(x, w, b, **kw)
    with pytest.raises(error, match=match):  # and again: nothing was entered
        xconvt.conv_transpose3d(x, w, b, **kw)


def test_equal_but_not_plain_arguments_are_not_keys():
    x, w, b = _arrays()
    assert _key(x, w, b, stride=2) is not None
    assert _key(x, w, b, stride=[2, 1, 2]) == _key(x, w, b, stride=(2, 1, 2))
    for value in (2.0, True, np.int64(2), (2, 1, 2.0), "2"):
        assert _key(x, w, b, stride=value) is None
    assert _key(x, w, b, output_size=[5, 5, 5]) == _key(x, w, b, output_size=(5, 5, 5))
    assert _key(x, w, b, output_size=(5, 5, 5.0)) is None
    assert _key(x, w, b, algorithm=np.str_("auto")) is None
    # byte order is part of the dtype, hence of the key
    assert _key(x.astype(">f8"), w, b) != _key(x, w, b)


def test_non_native_byte_order_is_not_cached(plan_calls):
    x, w, b = _arrays()
    ref = conv_transpose3d_ref(x, w, b, **KW)
    xb, wb = x.astype(">f8"), w.astype(">f8")
    for _ in range(2):
        assert_close(xconvt.conv_transpose3d(xb, wb, b, **KW), ref, "float64")
        assert_close(xconvt.conv_transpose3d(x, wb, b, **KW), ref, "float64")
    assert len(_dispatch._CALLS) == 0


def test_memmap_subclass_takes_the_cache(tmp_path, plan_calls):
    x, w, b = _arrays()
    m = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=x.dtype, shape=x.shape)
    m[...] = x
    for _ in range(2):
        out = xconvt.conv_transpose3d(m, w, b, **KW)
        assert type(out) is np.ndarray
        assert_close(out, conv_transpose3d_ref(x, w, b, **KW), "float64")
    assert len(plan_calls) == 1


@settings(max_examples=40, deadline=None)
@given(cfg=configs(max_spatial=4, max_kernel=3, batches=(None, 0, 1, 2), max_channels=2),
       seed=seeds)
def test_repeated_calls_equal_reference(cfg, seed):
    """Repeated calls (a miss, then hits with new data of the same geometry)
    equal the reference, for every dtype family."""
    for dtype in ("float32", "float64", "complex64"):
        for i in range(3):
            x, w, b = cfg.arrays(seed + i, dtype)
            out = xconvt.conv_transpose3d(x, w, b, **cfg.kwargs)
            assert out.dtype == x.dtype and out.flags.c_contiguous
            assert_close(out, cfg.reference(x, w, b), dtype)
