"""conv3d (the adjoint) and the gradients: identities, references, PyTorch, validation.

* Adjoint identities in float64 over random valid geometries (hypothesis),
  every algorithm forced: ``<T(x, w), y> = <x, conv3d(y, w)>`` and
  ``<T(x, w), gy> = <w, weight_grad(x, gy)>``.
* Values against the independent float64 references of
  :mod:`tests.reference` (``conv3d_ref``, ``conv_transpose3d_weight_ref``) and
  against PyTorch (CPU float64 within 1e-10, float32 within 1e-5).
* Every invalid argument raises ``ValueError``/``TypeError`` where PyTorch rejects it.
* The GPU paths (CuPy, marked ``gpu``) against the same float64 references.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import xconvt
from xconvt import grad
from xconvt._params import ConvParams, conv3d_params
from xconvt import _select
from xconvt.backends import adjoint, adjoint_cuda, adjoint_fft
from xconvt.backends.cuda import conv3d as conv3d_fma

from .helpers import assert_close, random_array, to_host
from .reference import (conv3d_ref, conv_transpose3d_weight_ref,
                        triple)
from .strategies import configs, seeds

ALGORITHMS = ("direct", "fft")
FEW = settings(max_examples=30)


def _vdot(a, b):
    return complex(np.vdot(np.conj(np.asarray(a)).ravel(), np.asarray(b).ravel()))


def _conv3d_kwargs(cfg):
    return dict(stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation,
                groups=cfg.groups)


def _adjoint_holds(lhs, rhs, *norms):
    bound = 1e-12 * np.prod(norms)
    assert abs(lhs - rhs) <= bound, (lhs, rhs, bound)


# ------------------------------------------------------------- adjoint identity
@FEW
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds, algorithm=st.sampled_from(ALGORITHMS))
def test_adjoint_identity_input(cfg, seed, algorithm):
    """<conv_transpose3d(x), y> = <x, conv3d(y)> (and the input-gradient function)."""
    x, w, _ = cfg.arrays(seed, "float64")
    y = random_array(np.random.default_rng(seed + 1), cfg.output_shape, "float64")
    tx = xconvt.conv_transpose3d(x, w, **cfg.kwargs)
    gx = grad.conv_transpose3d_input(x.shape, w, y, **cfg.kwargs, algorithm=algorithm)
    lhs, nx, ny = _vdot(tx, y), np.linalg.norm(x), np.linalg.norm(y)
    _adjoint_holds(lhs, _vdot(x, gx), nx, ny, max(1.0, np.linalg.norm(w)))
    if all(o < s for o, s in zip(triple(cfg.output_padding), triple(cfg.stride))):
        cx = xconvt.conv3d(y, w, **_conv3d_kwargs(cfg), algorithm=algorithm)
        assert cx.shape == x.shape
        _adjoint_holds(lhs, _vdot(x, cx), nx, ny, max(1.0, np.linalg.norm(w)))


@FEW
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds, algorithm=st.sampled_from(ALGORITHMS))
def test_adjoint_identity_weight(cfg, seed, algorithm):
    """<conv_transpose3d(x, w), gy> = <w, conv_transpose3d_weight(x, gy)>."""
    x, w, _ = cfg.arrays(seed, "float64")
    gy = random_array(np.random.default_rng(seed + 1), cfg.output_shape, "float64")
    lhs = _vdot(xconvt.conv_transpose3d(x, w, **cfg.kwargs), gy)
    dw = grad.conv_transpose3d_weight(x, w.shape, gy, **cfg.kwargs, algorithm=algorithm)
    assert dw.shape == w.shape
    _adjoint_holds(lhs, _vdot(w, dw), np.linalg.norm(x), np.linalg.norm(gy),
                   max(1.0, np.linalg.norm(w)))


# ------------------------------------------------------- independent references
@FEW
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds, algorithm=st.sampled_from(ALGORITHMS),
       dtype=st.sampled_from(["float64", "float32", "complex128"]))
def test_gradients_match_reference(cfg, seed, algorithm, dtype):
    x, w, _ = cfg.arrays(seed, dtype)
    gy = random_array(np.random.default_rng(seed + 1), cfg.output_shape, dtype)
    gx = grad.conv_transpose3d_input(x.shape, w, gy, **cfg.kwargs, algorithm=algorithm)
    assert gx.dtype == x.dtype
    # the input gradient is conv3d of gy cropped to x: the reference conv3d with
    # padding, then the first I outputs
    ref = conv3d_ref(gy, w, None, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    ref = ref[(Ellipsis,) + tuple(slice(0, i) for i in cfg.in_size)]
    assert_close(gx, ref, dtype, what="conv_transpose3d_input")
    dw = grad.conv_transpose3d_weight(x, w.shape, gy, **cfg.kwargs, algorithm=algorithm)
    ref = conv_transpose3d_weight_ref(x, gy, cfg.kernel, cfg.stride, cfg.padding,
                                      cfg.groups, cfg.dilation)
    assert_close(dw, ref, dtype, what="conv_transpose3d_weight")


@FEW
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds, algorithm=st.sampled_from(ALGORITHMS))
def test_conv3d_chunked_matches_reference(cfg, seed, algorithm):
    """Tiny workspace limits (one plane / one batch element per chunk) change nothing."""
    assume(all(o < s for o, s in zip(triple(cfg.output_padding), triple(cfg.stride))))
    x, w, b = cfg.arrays(seed, "float64")
    y = random_array(np.random.default_rng(seed + 1), cfg.output_shape, "float64")
    bias = None if b is None else random_array(np.random.default_rng(seed), (w.shape[0],),
                                               "float64")
    ref = conv3d_ref(y, w, bias, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    with xconvt.memory_budget(1 << 16):
        try:
            out = xconvt.conv3d(y, w, bias, **_conv3d_kwargs(cfg), algorithm=algorithm)
        except ValueError as e:  # the FFT declines when one piece exceeds the budget
            assert algorithm == "fft" and "budget" in str(e)
            return
    assert_close(out, ref, "float64", what="conv3d")


def test_conv3d_gemm_plane_chunks():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 4, 9, 8, 7))
    w = rng.standard_normal((6, 2, 3, 2, 3))
    params, _ = conv3d_params(y.shape, w.shape, None, (2, 1, 2), (1, 0, 2), (1, 2, 1), 2)
    ref = conv3d_ref(y, w, None, (2, 1, 2), (1, 0, 2), (1, 2, 1), 2)
    x = adjoint.conv3d(params, y, w, limit=1)
    assert_close(x, ref, "float64")
    gx = rng.standard_normal(ref.shape)
    dw = adjoint.weight_grad(params, gx, y, limit=1)
    wref = adjoint.weight_grad(params, gx, y, limit=1 << 30)
    np.testing.assert_allclose(dw, wref, rtol=1e-12, atol=1e-12)


@FEW
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds)
def test_gpu_rearrangement_on_cpu(cfg, seed):
    """The space-to-depth rewrite of the GPU conv3d, run with the CPU transposed kernel."""
    assume(all(o < s for o, s in zip(triple(cfg.output_padding), triple(cfg.stride))))
    _, w, b = cfg.arrays(seed, "float64")
    y = random_array(np.random.default_rng(seed + 1), cfg.output_shape, "float64")
    y5 = y[None] if cfg.batch is None else y
    params, crop = conv3d_params(y5.shape, w.shape, None, **_conv3d_kwargs(cfg))
    bias = None if b is None else np.ones(w.shape[0])
    from dataclasses import replace

    tp = replace(adjoint_cuda.rearrange_params(params), has_bias=bias is not None)
    inner = _select.choose(_select.problem_for("conv_transpose3d", tp, y5), "direct")
    out = adjoint_cuda.conv3d(params, y5, w, bias, inner)
    ref = conv3d_ref(y5, w, bias, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    assert_close(out, ref, "float64", what="space-to-depth conv3d")


@settings(max_examples=25)
@given(seed=seeds, size=st.tuples(*[st.integers(1, 7)] * 3),
       kernel=st.tuples(*[st.integers(1, 4)] * 3), dilation=st.tuples(*[st.integers(1, 2)] * 3),
       padding=st.sampled_from(["same", "valid"]), groups=st.integers(1, 2),
       unbatched=st.booleans(), algorithm=st.sampled_from(ALGORITHMS))
def test_conv3d_same_valid(seed, size, kernel, dilation, padding, groups, unbatched,
                           algorithm):
    if padding == "valid":
        assume(all(d * (k - 1) < s for d, k, s in zip(dilation, kernel, size)))
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(((2 * groups,) if unbatched else (2, 2 * groups)) + size)
    w = rng.standard_normal((3 * groups, 2) + kernel)
    b = rng.standard_normal(3 * groups)
    out = xconvt.conv3d(y, w, b, padding=padding, dilation=dilation, groups=groups,
                        algorithm=algorithm)
    ref = conv3d_ref(y, w, b, padding=padding, dilation=dilation, groups=groups)
    assert_close(out, ref, "float64", what=f"conv3d padding={padding!r}")
    if padding == "same":
        assert out.shape[-3:] == size


# ------------------------------------------------------------------ PyTorch
torch = pytest.importorskip("torch")
TG = torch.nn.grad


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


@FEW
@given(cfg=configs(batches=(None, 1, 2), bias=True), seed=seeds,
       algorithm=st.sampled_from(ALGORITHMS), dtype=st.sampled_from(["float64", "float32"]))
def test_conv3d_and_gradients_match_torch(cfg, seed, algorithm, dtype):
    """conv3d, conv3d_input/weight and conv_transpose3d_input/weight against torch."""
    assume(all(o < s for o, s in zip(triple(cfg.output_padding), triple(cfg.stride))))
    tol = 1e-10 if dtype == "float64" else 1e-5
    x, w, _ = cfg.arrays(seed, dtype)
    rng = np.random.default_rng(seed + 1)
    y = random_array(rng, cfg.output_shape, dtype)
    b = random_array(rng, (w.shape[0],), dtype)
    kw3 = _conv3d_kwargs(cfg)
    s, p, d = triple(cfg.stride), triple(cfg.padding), triple(cfg.dilation)
    ref = torch.nn.functional.conv3d(_t(y), _t(w), _t(b), s, p, d, cfg.groups).numpy()
    assert_close(xconvt.conv3d(y, w, b, **kw3, algorithm=algorithm), ref, tol=tol,
                 what="conv3d")
    # conv3d's gradients: torch.nn.grad on the batched shapes
    y5 = y[None] if cfg.batch is None else y
    gx = random_array(rng, (y5.shape[0],) + x.shape[-4:], dtype)
    tin = TG.conv3d_input(y5.shape, _t(w), _t(gx), s, p, d, cfg.groups).numpy()
    assert_close(grad.conv3d_input(y5.shape, w, gx, **kw3, algorithm=algorithm), tin,
                 tol=tol, what="conv3d_input")
    twt = TG.conv3d_weight(_t(y5), w.shape, _t(gx), s, p, d, cfg.groups).numpy()
    assert_close(grad.conv3d_weight(y5, w.shape, gx, **kw3, algorithm=algorithm), twt,
                 tol=tol, what="conv3d_weight")
    # conv_transpose3d's gradients through autograd (unbatched input included)
    tx = _t(x).requires_grad_(True)
    tw = _t(w).requires_grad_(True)
    out = torch.nn.functional.conv_transpose3d(tx, tw, None, **cfg.kwargs)
    out.backward(_t(y))
    gi = grad.conv_transpose3d_input(x.shape, w, y, **cfg.kwargs, algorithm=algorithm)
    assert_close(gi, tx.grad.numpy(), tol=tol, what="conv_transpose3d_input")
    gw = grad.conv_transpose3d_weight(x, w.shape, y, **cfg.kwargs, algorithm=algorithm)
    assert_close(gw, tw.grad.numpy(), tol=tol, what="conv_transpose3d_weight")
    assert_close(grad.bias_grad(y), _t(y).sum(
        dim=tuple(a for a in range(y.ndim) if a != y.ndim - 4)).numpy(), tol=tol,
        what="bias_grad")


def test_conv3d_torch_table():
    """Geometries from PyTorch's Conv3d tests (common_nn, sample_inputs_conv3d)."""
    rng = np.random.default_rng(0)
    table = [
        ((1, 3, 4, 4, 4), (3, 3, 3, 3, 3), dict(stride=2, padding=1)),
        ((2, 2, 5, 6, 7), (4, 1, 2, 3, 4), dict(groups=2, dilation=(1, 2, 1), padding=(1, 0, 2))),
        ((1, 4, 7, 7, 7), (4, 1, 3, 3, 3), dict(groups=4, stride=(1, 2, 3))),
        ((2, 3, 4, 5, 6), (2, 3, 2, 3, 2), dict(padding="same", dilation=2)),
        ((3, 4, 4, 5), (2, 3, 2, 2, 2), dict(padding="same")),
        ((1, 2, 8, 8, 8), (3, 2, 4, 4, 4), dict(padding="valid", stride=3, dilation=1)),
    ]
    for ys, ws, kw in table:
        y, w = rng.standard_normal(ys), rng.standard_normal(ws)
        b = rng.standard_normal(ws[0])
        ref = torch.nn.functional.conv3d(_t(y), _t(w), _t(b), **kw).numpy()
        for algorithm in ALGORITHMS:
            assert_close(xconvt.conv3d(y, w, b, **kw, algorithm=algorithm), ref, tol=1e-10,
                         what=f"conv3d {ys} {ws} {kw}")


# --------------------------------------------------------------- validation
def _torch_raises(fn):
    try:
        fn()
    except (RuntimeError, ValueError, TypeError):
        return True
    return False


INVALID = [
    ((4, 5, 5), (6, 2, 3, 3, 3), None, {}),                      # input rank
    ((1, 4, 5, 5, 5), (6, 2, 3, 3), None, {}),                   # weight rank
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=0)),
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=4)),    # 6 % 4
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=1)),    # channels
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2, stride=0)),
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2, padding=-1)),
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2, dilation=0)),
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), (5,), dict(groups=2)),     # bias
    ((1, 4, 2, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2)),     # kernel > input
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2, padding="same", stride=2)),
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2, padding="full")),
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2, stride=(1, 1))),
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2, stride=1.5)),
    ((1, 4, 5, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=True)),
    ((1, 4, 5, 5, 5), (0, 2, 3, 3, 3), None, dict(groups=2)),
    ((1, 4, 0, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2)),
    ((1, 4, 1, 5, 5), (6, 2, 3, 3, 3), None, dict(groups=2, padding=(1, 0, 0), dilation=2)),
]


@pytest.mark.parametrize("ys,ws,bs,kw", INVALID)
def test_conv3d_invalid_raises_like_torch(ys, ws, bs, kw):
    y, w = np.zeros(ys), np.zeros(ws)
    b = None if bs is None else np.zeros(bs)
    assert _torch_raises(lambda: torch.nn.functional.conv3d(
        _t(y), _t(w), None if b is None else _t(b), **kw))
    with pytest.raises((ValueError, TypeError)) as info:
        xconvt.conv3d(y, w, b, **kw)
    text = str(info.value)
    assert any(word in text for word in ("input", "weight", "bias", "groups", "stride",
                                         "padding", "dilation", "kernel"))


@settings(max_examples=60)
@given(seed=seeds, ys=st.tuples(st.integers(0, 2), st.integers(0, 4), st.integers(0, 5),
                                st.integers(1, 5), st.integers(1, 5)),
       wk=st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(1, 4),
                    st.integers(1, 3), st.integers(1, 3)),
       stride=st.integers(0, 3), padding=st.sampled_from([0, 1, 2, -1, "same", "valid"]),
       dilation=st.integers(0, 2), groups=st.integers(0, 3))
def test_conv3d_fuzz_against_torch(seed, ys, wk, stride, padding, dilation, groups):
    """Where torch raises, xconvt raises ValueError/TypeError; else equal values."""
    y, w = np.random.default_rng(seed).standard_normal(ys), np.ones(wk)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    try:
        ref = torch.nn.functional.conv3d(_t(y), _t(w), **kw).numpy()
    except (RuntimeError, ValueError, TypeError):
        with pytest.raises((ValueError, TypeError)):
            xconvt.conv3d(y, w, **kw)
        return
    if ys[1] == 0 or wk[1] == 0:
        # PyTorch allows zero input channels (all-zero result); xconvt asks for a
        # non-empty weight, as conv_transpose3d does
        with pytest.raises(ValueError, match="non-empty"):
            xconvt.conv3d(y, w, **kw)
        return
    assert_close(xconvt.conv3d(y, w, **kw), ref, tol=1e-10)


def test_gradient_argument_errors():
    x, w = np.zeros((1, 2, 3, 3, 3)), np.zeros((2, 4, 2, 2, 2))
    gy = np.zeros((1, 4, 4, 4, 4))
    with pytest.raises(ValueError, match="grad_output must have shape"):
        grad.conv_transpose3d_input(x.shape, w, gy[:, :3])
    with pytest.raises(ValueError, match="grad_output must have shape"):
        grad.conv_transpose3d_weight(x, w.shape, gy[..., :3])
    with pytest.raises(TypeError, match="input_size"):
        grad.conv_transpose3d_input(3, w, gy)
    with pytest.raises(TypeError, match="weight_size"):
        grad.conv_transpose3d_weight(x, (2, 4, 2.0, 2, 2), gy)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        grad.conv_transpose3d_weight(x, w.shape, [[0.0]])
    with pytest.raises(TypeError, match="dtype"):
        grad.conv_transpose3d_input(x.shape, w.astype(np.float32), gy)
    with pytest.raises(ValueError, match="algorithm"):
        xconvt.conv3d(gy, w, algorithm="cudnn")
    with pytest.raises(ValueError, match="precision"):
        xconvt.conv3d(gy, w, precision="fp8")
    with pytest.raises(ValueError, match="grad_output must have shape"):
        grad.conv3d_input((1, 4, 4, 4, 4), w, np.zeros((1, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match="grad_output"):
        grad.bias_grad(np.zeros((2, 3)))


def test_zero_batch_and_dtypes():
    w = np.ones((2, 4, 2, 2, 2), np.float32)
    assert xconvt.conv3d(np.zeros((0, 4, 4, 4, 4), np.float32), w).shape == (0, 2, 3, 3, 3)
    dw = grad.conv_transpose3d_weight(np.zeros((0, 2, 3, 3, 3), np.float32), w.shape,
                                      np.zeros((0, 4, 4, 4, 4), np.float32))
    assert dw.shape == w.shape and not dw.any()
    y = np.random.default_rng(0).standard_normal((1, 4, 5, 5, 5))
    for dtype in ("float16", "float32", "complex64"):
        out = xconvt.conv3d(y.astype(dtype), w.astype(dtype))
        assert out.dtype == np.dtype(dtype)
        assert_close(out, conv3d_ref(y.astype(dtype), w), dtype)
    big = y.astype(">f8")
    assert_close(xconvt.conv3d(big, w.astype(">f8")), conv3d_ref(y, w), "float64")


def test_fft_falls_back_on_non_finite():
    rng = np.random.default_rng(0)
    y, w = rng.standard_normal((1, 2, 6, 6, 6)), rng.standard_normal((3, 2, 3, 3, 3))
    y[0, 0, 2, 2, 2] = np.inf
    out = xconvt.conv3d(y, w, algorithm="fft")
    ref = xconvt.conv3d(y, w, algorithm="direct")
    np.testing.assert_array_equal(np.isfinite(out), np.isfinite(ref))
    assert np.isfinite(out).sum() > out.size // 2


@FEW
@given(cfg=configs(batches=(1, 2)), seed=seeds,
       dtype=st.sampled_from(["float64", "float32", "float16", "complex128"]),
       bias=st.booleans())
def test_small_gradient_planners(cfg, seed, dtype, bias):
    """``cpu.small_conv3d`` and ``cpu.small_weight_grad`` (one gather, one GEMM)
    against the float64 references, forced, over random geometries and dtypes."""
    from xconvt._plan import Problem, cpu_device
    from xconvt.backends.cpu import small_grad

    x, w, _ = cfg.arrays(seed, dtype)
    rng = np.random.default_rng(seed + 1)
    gy = random_array(rng, cfg.output_shape, dtype)
    params = ConvParams.from_shapes(x.shape, w.shape, None, **cfg.kwargs)
    p3 = small_grad.plan_conv3d(Problem("conv3d", params, dtype, cpu_device()))
    pw = small_grad.plan_weight_grad(Problem("weight_grad", params, dtype, cpu_device()))
    assert not isinstance(p3, str) and not isinstance(pw, str), (p3, pw)
    b = random_array(rng, (w.shape[0],), dtype) if bias else None
    out = p3(gy, w, b)
    assert out.dtype == np.dtype(dtype) and out.shape == params.input_shape
    ref = conv3d_ref(gy, w, b, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    ref = ref[(Ellipsis,) + tuple(slice(0, i) for i in params.in_size)]
    assert_close(out, ref, dtype, what="cpu.small_conv3d")
    dw = pw(x, gy)
    assert dw.dtype == np.dtype(dtype) and dw.shape == params.weight_shape
    ref = conv_transpose3d_weight_ref(x, gy, cfg.kernel, cfg.stride, cfg.padding,
                                      cfg.groups, cfg.dilation)
    assert_close(dw, ref, dtype, what="cpu.small_weight_grad")


def test_small_gradients_non_finite_and_limits():
    """An inf where a zero slot meets it: the exact GEMM path's result (its NaN
    and inf placement); the size limits are stated as reasons; auto takes the
    small path for a small layer."""
    from xconvt._plan import Problem, cpu_device
    from xconvt.backends.cpu import small_grad

    params = ConvParams.from_shapes((1, 2, 3, 3, 3), (2, 3, 3, 3, 3), None, stride=2,
                                    padding=1)
    rng = np.random.default_rng(0)
    gy = rng.standard_normal(params.batched_output_shape)
    x = rng.standard_normal(params.input_shape)
    w = rng.standard_normal(params.weight_shape)
    w[0, 1, 0, 0, 0] = np.inf
    x[0, 1, 0, 0, 0] = -np.inf
    for op, plans, ops in (("conv3d", (small_grad.plan_conv3d, adjoint.plan_conv3d), (gy, w)),
                           ("weight_grad", (small_grad.plan_weight_grad,
                                            adjoint.plan_weight_grad), (x, gy))):
        small, exact = (f(Problem(op, params, "float64", cpu_device())) for f in plans)
        with np.errstate(invalid="ignore"):
            got, want = small(*ops), exact(*ops)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(got[np.isfinite(want)], want[np.isfinite(want)])
    big = ConvParams.from_shapes((1, 32, 8, 8, 8), (32, 32, 3, 3, 3), None, padding=1)
    why = small_grad.plan_conv3d(Problem("conv3d", big, "float32", cpu_device()))
    assert isinstance(why, str) and "FLOPs" in why
    assert "bfloat16" in small_grad.plan_weight_grad(
        Problem("weight_grad", params, "bfloat16", cpu_device()))
    chosen = _select.choose(_select.problem_for("conv3d", params, gy), "auto")
    assert chosen.name == "cpu.small_conv3d"


@FEW
@given(cfg=configs(batches=(1, 2)), seed=seeds, dtype=st.sampled_from(["float64", "float32"]),
       bias=st.booleans())
def test_conv3d_on_the_cpu_forward_planners(cfg, seed, dtype, bias):
    """``cpu.conv3d_forward``: a stride-1 conv3d as the CPU's transposed
    convolution of ``y`` itself with rearranged weights, against the float64
    conv3d; strided layers and large paddings are refused with the rule."""
    from xconvt._plan import Problem, cpu_device

    _, w, _ = cfg.arrays(seed, dtype)
    rng = np.random.default_rng(seed + 1)
    y = random_array(rng, ((cfg.batch or 1),) + tuple(cfg.output_shape[-4:]), dtype)
    kw = dict(stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups)
    params, _ = conv3d_params(y.shape, w.shape, None, **kw)
    plan = adjoint_cuda.plan_conv3d_cpu(Problem("conv3d", params, dtype, cpu_device()))
    if not adjoint_cuda._no_copy(params):
        assert isinstance(plan, str) and "stride-1" in plan
        return
    assert plan.name == "cpu.conv3d_forward", plan
    b = random_array(rng, (w.shape[0],), dtype) if bias else None
    out = plan(y, w, b)
    assert out.dtype == np.dtype(dtype) and out.shape == params.input_shape
    assert_close(out, conv3d_ref(y, w, b, **kw), dtype, what="cpu.conv3d_forward")


@pytest.mark.parametrize("ys, ws, kw", [
    ((2, 6, 7, 8, 9), (4, 3, 3, 2, 3), dict(padding=(1, 0, 2), dilation=(1, 2, 1), groups=2)),
    ((1, 4, 9, 9, 9), (4, 1, 5, 5, 5), dict(padding=2, groups=4)),
    ((1, 3, 6, 5, 4), (2, 3, 1, 1, 1), {}),
])
def test_conv3d_on_the_cpu_forward_planners_layers(ys, ws, kw):
    from xconvt._plan import Problem, cpu_device

    rng = np.random.default_rng(1)
    y, w, b = rng.standard_normal(ys), rng.standard_normal(ws), rng.standard_normal(ws[0])
    params, _ = conv3d_params(ys, ws, None, **kw)
    plan = adjoint_cuda.plan_conv3d_cpu(Problem("conv3d", params, "float64", cpu_device()))
    assert plan.name == "cpu.conv3d_forward"
    for bias in (None, b):
        assert_close(plan(y, w, bias), conv3d_ref(y, w, bias, **kw), "float64",
                     what="cpu.conv3d_forward")


def test_planners_explain_refusals():
    from xconvt._plan import Problem, cpu_device

    params, _ = conv3d_params((1, 64, 64, 64, 64), (64, 64, 3, 3, 3))
    prob = Problem("conv3d", params, "float32", cpu_device(), budget=1 << 20)
    assert "budget" in adjoint_fft.plan_conv3d(prob)
    assert "CUDA" in adjoint_cuda.plan_conv3d(prob)
    assert "weight_grad" in adjoint.plan_weight_grad(prob)
    plan = adjoint.plan_conv3d(prob)
    assert plan.algorithm == "direct" and plan.estimate > 0 and plan.workspace > 0


# ---------------------------------------------------------------------- GPU
@pytest.mark.gpu
@settings(max_examples=15)
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds,
       algorithm=st.sampled_from(ALGORITHMS), dtype=st.sampled_from(["float64", "float32"]))
def test_gpu_gradients_match_reference(cfg, seed, algorithm, dtype):
    cp = pytest.importorskip("cupy")
    x, w, _ = cfg.arrays(seed, dtype)
    gy = random_array(np.random.default_rng(seed + 1), cfg.output_shape, dtype)
    dx, dwt, dgy = cp.asarray(x), cp.asarray(w), cp.asarray(gy)
    gx = grad.conv_transpose3d_input(x.shape, dwt, dgy, **cfg.kwargs, algorithm=algorithm)
    assert isinstance(gx, cp.ndarray) and gx.dtype == x.dtype
    ref = conv3d_ref(gy, w, None, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    ref = ref[(Ellipsis,) + tuple(slice(0, i) for i in cfg.in_size)]
    assert_close(gx, ref, dtype, what="gpu conv_transpose3d_input")
    dw = grad.conv_transpose3d_weight(dx, w.shape, dgy, **cfg.kwargs, algorithm=algorithm)
    ref = conv_transpose3d_weight_ref(x, gy, cfg.kernel, cfg.stride, cfg.padding,
                                      cfg.groups, cfg.dilation)
    assert_close(dw, ref, dtype, what="gpu conv_transpose3d_weight")
    if all(o < s for o, s in zip(triple(cfg.output_padding), triple(cfg.stride))):
        b = np.arange(w.shape[0], dtype=dtype)
        out = xconvt.conv3d(dgy, dwt, cp.asarray(b), **_conv3d_kwargs(cfg),
                            algorithm=algorithm)
        ref = conv3d_ref(gy, w, b, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
        assert_close(out, ref, dtype, what="gpu conv3d")
        y5 = gy[None] if cfg.batch is None else gy
        gx5 = random_array(np.random.default_rng(seed), (y5.shape[0],) + x.shape[-4:], dtype)
        dw3 = grad.conv3d_weight(cp.asarray(y5), w.shape, cp.asarray(gx5),
                                 **_conv3d_kwargs(cfg), algorithm=algorithm)
        ref = conv_transpose3d_weight_ref(gx5, y5, cfg.kernel, cfg.stride, cfg.padding,
                                          cfg.groups, cfg.dilation)
        assert_close(dw3, ref, dtype, what="gpu conv3d_weight")


@pytest.mark.gpu
@settings(max_examples=15)
@given(cfg=configs(batches=(None, 1, 2)), seed=seeds, algorithm=st.sampled_from(ALGORITHMS))
def test_gpu_adjoint_identity(cfg, seed, algorithm):
    cp = pytest.importorskip("cupy")
    x, w, _ = cfg.arrays(seed, "float64")
    y = random_array(np.random.default_rng(seed + 1), cfg.output_shape, "float64")
    dx, dw_, dy = cp.asarray(x), cp.asarray(w), cp.asarray(y)
    tx = to_host(xconvt.conv_transpose3d(dx, dw_, **cfg.kwargs))
    gx = to_host(grad.conv_transpose3d_input(x.shape, dw_, dy, **cfg.kwargs,
                                             algorithm=algorithm))
    gw = to_host(grad.conv_transpose3d_weight(dx, w.shape, dy, **cfg.kwargs,
                                              algorithm=algorithm))
    norms = (np.linalg.norm(x), np.linalg.norm(y), max(1.0, np.linalg.norm(w)))
    _adjoint_holds(_vdot(tx, y), _vdot(x, gx), *norms)
    _adjoint_holds(_vdot(tx, y), _vdot(w, gw), *norms)


@pytest.mark.gpu
@pytest.mark.parametrize("plan", ["cuda.conv3d_direct", "cuda.gemm_conv3d", "cuda.conv3d_fma",
                                  "cuda.mma_conv3d"])
def test_gpu_conv3d_each_plan(plan):
    """Each direct-algorithm GPU plan of conv3d, on strided, dilated, grouped
    layers, with and without bias (the tensor cores in float32 only)."""
    cp = pytest.importorskip("cupy")
    from xconvt._plan import Problem, cuda_device

    rng = np.random.default_rng(0)
    for ys, ws, kw in [((2, 8, 9, 10, 11), (6, 4, 3, 3, 3), dict(stride=2, padding=1,
                                                                 groups=2)),
                       ((1, 4, 12, 12, 12), (4, 4, 5, 5, 5), dict(padding=2, dilation=1)),
                       ((1, 6, 10, 9, 8), (3, 2, 2, 3, 2), dict(stride=(2, 1, 3), groups=3,
                                                                dilation=(1, 2, 1)))]:
        for dtype in ("float32",) if plan == "cuda.mma_conv3d" else ("float32", "float64"):
            y, w = rng.standard_normal(ys).astype(dtype), rng.standard_normal(ws).astype(dtype)
            b = rng.standard_normal(ws[0]).astype(dtype)
            params, _ = conv3d_params(ys, ws, None, **kw)
            prob = Problem("conv3d", params, dtype, cuda_device(0))
            p = _select.named_plan(plan, prob)
            assert p.name == plan
            for bias in (None, b):
                out = p(cp.asarray(y), cp.asarray(w), None if bias is None else cp.asarray(bias))
                assert_close(out, conv3d_ref(y, w, bias, **kw), dtype, what=plan)


@pytest.mark.gpu
def test_gpu_weight_grad_deterministic():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(0)
    x = cp.asarray(rng.standard_normal((2, 16, 12, 12, 12)).astype(np.float32))
    gy = cp.asarray(rng.standard_normal((2, 8, 24, 24, 24)).astype(np.float32))
    a = grad.conv_transpose3d_weight(x, (16, 8, 3, 3, 3), gy, stride=2, padding=1,
                                     output_padding=1)
    b = grad.conv_transpose3d_weight(x, (16, 8, 3, 3, 3), gy, stride=2, padding=1,
                                     output_padding=1)
    assert bool((a == b).all())


def _space_to_depth_replay(y, M, s, p):
    """``xconvt_space_to_depth``'s index math (adjoint_cuda._SPACE_TO_DEPTH), in Python."""
    N, C = y.shape[:2]
    O = y.shape[2:]
    S = int(np.prod(s))
    yf, out = y.reshape(-1), np.zeros(N * C * S * int(np.prod(M)))
    for plane in range(N * C * S * M[0]):
        t = plane
        m0, t = t % M[0], t // M[0]
        r, t = t % S, t // S
        r2, r1, r0 = r % s[2], (r // s[2]) % s[1], r // (s[1] * s[2])
        o0 = m0 * s[0] + r0 - p[0]
        ok0 = 0 <= o0 < O[0]
        src = (t * O[0] + (o0 if ok0 else 0)) * O[1] * O[2]
        for m1 in range(M[1]):
            o1 = m1 * s[1] + r1 - p[1]
            for m2 in range(M[2]):
                o2 = m2 * s[2] + r2 - p[2]
                hit = ok0 and 0 <= o1 < O[1] and 0 <= o2 < O[2]
                out[(plane * M[1] + m1) * M[2] + m2] = yf[src + o1 * O[2] + o2] if hit else 0
    return out


@pytest.mark.parametrize("xs, ws, kw", [
    ((2, 3, 4, 5, 6), (3, 2, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 2, 5, 3, 4), (2, 3, 2, 4, 3), dict(stride=(3, 1, 2), padding=(0, 2, 1),
                                            output_padding=(2, 0, 1))),
    ((1, 4, 3, 3, 3), (4, 2, 5, 5, 5), dict(stride=2, padding=3, dilation=(1, 2, 1), groups=2)),
])
def test_space_to_depth_kernel_replay(xs, ws, kw):
    """The GPU space-to-depth kernel's index math, replayed on the CPU, equals the
    NumPy rearrangement (zeros where the window leaves the gradient)."""
    from xconvt._dispatch import _params

    params = _params(xs, ws, None, kw.get("stride", 1), kw.get("padding", 0),
                     kw.get("output_padding", 0), kw.get("groups", 1), kw.get("dilation", 1),
                     None)
    y = np.random.default_rng(0).standard_normal(params.batched_output_shape)
    tp, y2, _ = adjoint_cuda.rearrange(params, y, np.ones(ws))
    out = _space_to_depth_replay(y, tp.in_size, params.stride, params.padding)
    assert np.array_equal(out.reshape(y2.shape), y2)


def _conv3d_fma_replay(y, w, b, plan):
    """``xconvt_conv3d_fma``'s index math (cuda/kernels/conv3d.cu), in NumPy: the
    grid and thread decomposition from the plan's launch shape and argument
    struct, the block's weights staged as ``[o][k][c]`` (zero past the
    channels), the bounds checks of each load, the guarded stores."""
    a = {f: int(plan._args[b is not None][f]) for f in conv3d_fma.FIELDS}
    cob, wb = plan.cob, plan.wb
    K3 = a["KD"] * a["KH"] * a["KW"]
    OD, OH, OW = a["OD"], a["OH"], a["OW"]
    ID, IH, IW = a["ID"], a["IH"], a["IW"]
    yf, wf = y.reshape(-1), w.reshape(-1)
    x = np.full(plan.params.input_shape, np.nan).reshape(-1)
    grid_x, grid_y = plan._grid
    t = np.arange(grid_x * conv3d_fma.THREADS)
    t = t[t < ID * IH * a["wtiles"]]
    wt, ih, id_ = t % a["wtiles"], (t // a["wtiles"]) % IH, t // (a["wtiles"] * IH)
    iw0 = wt * wb
    for z in range(grid_y):
        cb, g, n = z % a["ncb"], (z // a["ncb"]) % a["G"], z // (a["ncb"] * a["G"])
        c0 = cb * cob
        q = np.arange(a["Cy"] * K3 * cob)
        c, ok = q % cob, q // cob
        src = ((g * a["Cx"] + c0 + c) * a["Cy"]) * K3 + ok
        ws = np.where(c0 + c < a["Cx"], wf[np.where(c0 + c < a["Cx"], src, 0)], 0.0)
        acc = np.zeros((cob, wb, t.size))
        yg = (n * a["G"] + g) * a["Cy"] * OD * OH * OW
        for o in range(a["Cy"]):
            for kd in range(a["KD"]):
                zd = id_ * a["sd"] + kd * a["dd"] - a["pd"]
                for kh in range(a["KH"]):
                    zh = ih * a["sh"] + kh * a["dh"] - a["ph"]
                    for kw_ in range(a["KW"]):
                        k = (kd * a["KH"] + kh) * a["KW"] + kw_
                        for j in range(wb):
                            zw = (iw0 + j) * a["sw"] + kw_ * a["dw"] - a["pw"]
                            inside = ((zd >= 0) & (zd < OD) & (zh >= 0) & (zh < OH)
                                      & (zw >= 0) & (zw < OW))
                            idx = yg + o * OD * OH * OW + (zd * OH + zh) * OW + zw
                            v = np.where(inside, yf[np.where(inside, idx, 0)], 0.0)
                            acc[:, j] += ws[(o * K3 + k) * cob:(o * K3 + k + 1) * cob, None] * v
        for cc in range(cob):
            if c0 + cc >= a["Cx"]:
                break
            bias = b[g * a["Cx"] + c0 + cc] if a["has_bias"] else 0.0
            for j in range(wb):
                keep = iw0 + j < IW
                dst = ((n * a["G"] * a["Cx"] + g * a["Cx"] + c0 + cc) * ID * IH * IW
                       + (id_ * IH + ih) * IW + iw0 + j)
                assert np.isnan(x[dst[keep]]).all(), "an output written twice"
                x[dst[keep]] = acc[cc, j][keep] + bias
    return x.reshape(plan.params.input_shape)


@FEW
@given(cfg=configs(batches=(1, 2)), seed=seeds, dtype=st.sampled_from(["float32", "float64"]))
def test_conv3d_fma_kernel_replay(cfg, seed, dtype):
    """The GPU conv3d FMA kernel's decomposition, replayed on the CPU for random
    geometries (groups, stride, dilation, bias), equals the float64 conv3d."""
    from xconvt._plan import DEVICE_PRESETS, Problem

    _, w, b = cfg.arrays(seed, "float64")
    rng = np.random.default_rng(seed + 1)
    y = rng.standard_normal(((cfg.batch or 1),) + tuple(cfg.output_shape[-4:]))
    kw = dict(stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups)
    params, _ = conv3d_params(y.shape, w.shape, None, **kw)
    plan = conv3d_fma.plan(Problem("conv3d", params, dtype, DEVICE_PRESETS["h100"]))
    assert not isinstance(plan, str), plan
    bias = None if b is None else rng.standard_normal(w.shape[0])
    got = _conv3d_fma_replay(y, w, bias, plan)
    assert not np.isnan(got).any(), "unwritten outputs"
    np.testing.assert_allclose(got, conv3d_ref(y, w, bias, **kw), rtol=1e-10, atol=1e-10)


def test_conv3d_fma_planner():
    """Channels per thread and positions per thread by the channels and the
    shared memory; reasons where the kernel does not apply."""
    from xconvt._plan import DEVICE_PRESETS, Problem

    def plan(ys, ws, dtype="float32", **kw):
        params, _ = conv3d_params(ys, ws, None, **kw)
        return conv3d_fma.plan(Problem("conv3d", params, dtype, DEVICE_PRESETS["h200"]))

    p = plan((1, 1, 64, 64, 64), (1, 1, 5, 5, 5), stride=2, padding=2)
    assert (p.cob, p.wb) == (1, 2)
    p = plan((2, 64, 32, 32, 32), (64, 16, 3, 3, 3), stride=2, padding=1, groups=4)
    assert (p.cob, p.wb) == (16, 4)
    # 33 y channels x 30 taps x 16 channels of weights exceed 48 KB: 8 channels a thread
    assert plan((2, 33, 8, 8, 8), (16, 33, 3, 5, 2)).cob == 8
    assert plan((2, 4, 8, 8, 8), (4, 4, 3, 3, 3), "float64").wb == 2
    assert "float16" in plan((1, 4, 8, 8, 8), (4, 4, 3, 3, 3), "float16")
    huge = plan((1, 4096, 8, 8, 8), (1, 4096, 3, 3, 3))
    assert isinstance(huge, str) and "shared memory" in huge


@FEW
@given(cfg=configs(batches=(1, 2)), seed=seeds)
def test_weight_grad_conv3d_rewrite_on_cpu(cfg, seed):
    """The weight gradient as a conv3d of rearranged operands (the GPU planner
    ``cuda.wgrad_conv3d``), run with a CPU conv3d plan as the inner one."""
    from xconvt.backends import wgrad_conv3d

    x, w, _ = cfg.arrays(seed, "float64")
    gy = random_array(np.random.default_rng(seed + 1), cfg.output_shape, "float64")
    params = ConvParams.from_shapes(x.shape, w.shape, None, **cfg.kwargs)
    t, y2, w2 = wgrad_conv3d.rearrange(params, x, gy)
    assert t.out_size == (params.out_size[0], params.out_size[1], params.kernel[2])
    assert y2.shape == t.batched_output_shape and w2.shape == t.weight_shape
    inner = _select.choose(_select.problem_for("conv3d", t, y2), "direct")
    dw = wgrad_conv3d.weight_grad(params, x, gy, inner)
    assert dw.shape == params.weight_shape and dw.flags.c_contiguous
    ref = conv_transpose3d_weight_ref(x, gy, cfg.kernel, cfg.stride, cfg.padding,
                                      cfg.groups, cfg.dilation)
    assert_close(dw, ref, "float64", what="weight gradient by the conv3d rewrite")


# ------------------------------------------------------- the GPU wgrad kernel
_WGRAD_LAYERS = [
    ((2, 6, 5, 6, 7), (6, 4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=2)),
    ((3, 4, 4, 5, 3), (4, 3, 3, 2, 3), dict(stride=(2, 1, 2), padding=(1, 0, 1),
                                            dilation=(1, 2, 1))),
    ((1, 1, 9, 8, 7), (1, 1, 5, 5, 5), dict(stride=2, padding=2, output_padding=1)),
    ((2, 5, 3, 4, 17), (5, 7, 1, 2, 4), dict(padding=(0, 1, 2), groups=1)),
    ((1, 8, 6, 6, 6), (8, 1, 3, 3, 3), dict(padding=1, groups=8)),
]


def _wgrad_problem(xs, ws, kw, dtype, budget=2**28):
    from xconvt._dispatch import _params
    from xconvt._plan import Problem, cuda_device

    params = _params(xs, ws, None, kw.get("stride", 1), kw.get("padding", 0),
                     kw.get("output_padding", 0), kw.get("groups", 1), kw.get("dilation", 1),
                     None)
    return params, Problem("weight_grad", params, dtype, cuda_device(0), "float32", budget)


@pytest.mark.gpu
@pytest.mark.parametrize("tile", ["big", "big16", "mid", "narrow", "thin"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_gpu_wgrad_each_tile(tile, dtype):
    """The split-reduction kernel with every tile, against the float64 reference:
    the planner's splits, many short splits, and one batch element per launch
    (partial sums added launch by launch)."""
    cp = pytest.importorskip("cupy")
    from xconvt.backends.cuda import wgrad

    rng = np.random.default_rng(1)
    for xs, ws, kw in _WGRAD_LAYERS:
        params, prob = _wgrad_problem(xs, ws, kw, dtype)
        x = rng.standard_normal(xs).astype(dtype)
        gy = rng.standard_normal(params.batched_output_shape).astype(dtype)
        ref = conv_transpose3d_weight_ref(x.astype(np.float64), gy.astype(np.float64),
                                          ws[2:], kw.get("stride", 1), kw.get("padding", 0),
                                          kw.get("groups", 1), kw.get("dilation", 1))
        P = int(np.prod(xs[2:]))
        bk = wgrad.TILES[tile][2]
        S, chunk, nb = wgrad.splits(params, tile, prob.device.sm_count, prob.budget, 8)
        for args in ((S, chunk, nb), (-(-P // bk), bk, 1), (2, -(-P // (2 * bk)) * bk, 1)):
            if args[0] * args[1] < P:
                continue
            plan = wgrad.WgradPlan(prob, tile, *args, 0.0, 0)
            out = plan(cp.asarray(x), cp.asarray(gy))
            assert out.dtype == x.dtype and out.shape == ws
            assert_close(out, ref, dtype, what=f"wgrad {tile} {args} {xs} {ws} {kw}")


@pytest.mark.gpu
@settings(max_examples=25)
@given(cfg=configs(batches=(None, 1, 2, 3)), seed=seeds,
       dtype=st.sampled_from(["float32", "float64"]))
def test_gpu_wgrad_planner_random(cfg, seed, dtype):
    """The planner's own choice of tile and splits, over random geometries."""
    cp = pytest.importorskip("cupy")
    from xconvt.backends.cuda import wgrad

    x, _, _ = cfg.arrays(seed, dtype)
    gy = random_array(np.random.default_rng(seed + 1), cfg.output_shape, dtype)
    x5 = x if x.ndim == 5 else x[None]
    gy5 = gy if gy.ndim == 5 else gy[None]
    ws = (cfg.in_channels, cfg.out_channels // cfg.groups) + triple(cfg.kernel)
    assume(x5.shape[0] > 0)
    _, prob = _wgrad_problem(x5.shape, ws, cfg.kwargs, dtype)
    plan = wgrad.plan(prob)
    assert not isinstance(plan, str), plan
    out = plan(cp.asarray(x5), cp.asarray(gy5))
    ref = conv_transpose3d_weight_ref(x5, gy5, cfg.kernel, cfg.stride, cfg.padding,
                                      cfg.groups, cfg.dilation)
    assert_close(out, ref, dtype, what=f"wgrad planner {plan.detail}")


def test_wgrad_planner_choices():
    """Replayed on the CPU (an H200's limits): depthwise and single-channel layers
    take the thin tile, wide ones the big tile; splits fill the GPU; partial sums
    stay within the budget; complex and CPU problems are declined with reasons."""
    from dataclasses import replace

    from xconvt._plan import DEVICE_PRESETS
    from xconvt.backends.cuda import wgrad

    h200 = DEVICE_PRESETS["h200"]

    def prob(xs, ws, kw, dtype="float32", budget=2**28):
        params, p = _wgrad_problem_cpu(xs, ws, kw, dtype, budget)
        return params, replace(p, device=h200)

    params, p = prob((1, 64, 48, 48, 48), (64, 1, 7, 7, 7), dict(padding=3, groups=64))
    assert wgrad.choose_tile(params) == "thin"
    params, p = prob((8, 256, 8, 8, 8), (256, 128, 4, 4, 4), dict(stride=2, padding=1))
    assert wgrad.choose_tile(params) == "big"
    plan = wgrad.plan(p)
    S, chunk, nb = plan._args[1:]
    assert S * chunk >= 512 and nb == 8
    assert plan.workspace <= p.budget
    # a small budget: batch elements one launch at a time, partial sums within it
    params, p = prob((8, 256, 8, 8, 8), (256, 128, 4, 4, 4), dict(stride=2, padding=1),
                     budget=2**24)
    plan = wgrad.plan(p)
    assert plan._args[3] < 8 and plan.workspace <= max(p.budget, 256 * 8192 * 4)
    # splits shrink so that one batch element's partial sums fit the budget
    params, p = prob((1, 64, 64, 64, 64), (64, 32, 3, 3, 3), dict(padding=1), budget=2**22)
    S, chunk, nb = wgrad.plan(p)._args[1:]
    assert S * 64 * 32 * 27 * 4 <= 2**22 and S * chunk >= 64**3 and nb == 1
    # blocks fill the GPU on a layer with few tiles
    params, p = prob((2, 128, 32, 32, 32), (128, 64, 2, 2, 2), dict(stride=2))
    tile, S = wgrad.choose_tile(params), wgrad.plan(p)._args[1]
    bm, bn = wgrad.TILES[tile][:2]
    assert -(-128 // bm) * -(-512 // bn) * 2 * S >= 2 * h200.sm_count
    _, p = prob((1, 4, 8, 8, 8), (4, 4, 3, 3, 3), {}, dtype="complex64")
    assert "complex64" in wgrad.plan(p)
    _, p = prob((1, 4, 8, 8, 8), (4, 4, 3, 3, 3), {})
    assert "CUDA" in wgrad.plan(replace(p, device=replace(h200, kind="cpu")))


def _wgrad_problem_cpu(xs, ws, kw, dtype, budget):
    from xconvt._dispatch import _params
    from xconvt._plan import Problem, cpu_device

    params = _params(xs, ws, None, kw.get("stride", 1), kw.get("padding", 0),
                     kw.get("output_padding", 0), kw.get("groups", 1), kw.get("dilation", 1),
                     None)
    return params, Problem("weight_grad", params, dtype, cpu_device(), "float32", budget)


# -------------------------------------------------------------------- layer
def test_layer_backward_matches_torch_autograd():
    rng = np.random.default_rng(0)
    layer = xconvt.ConvTranspose3d(4, 6, (3, 2, 3), stride=(2, 1, 2), padding=1, groups=2,
                                   dilation=(1, 2, 1), dtype=np.float64, rng=0)
    tl = torch.nn.ConvTranspose3d(4, 6, (3, 2, 3), stride=(2, 1, 2), padding=1, groups=2,
                                  dilation=(1, 2, 1), dtype=torch.float64)
    tl.load_state_dict({k: _t(v) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((2, 4, 4, 5, 3))
    size = (8, 5, 6)          # output_size sets output_padding (1, 0, 1)
    y = layer(x, output_size=size, keep_input=True)
    tx = _t(x).requires_grad_(True)
    ty = tl(tx, output_size=size)
    gy = rng.standard_normal(y.shape)
    ty.backward(_t(gy))
    gx = layer.backward(gy)
    assert_close(gx, tx.grad.numpy(), tol=1e-10, what="layer input grad")
    assert_close(layer.weight_grad, tl.weight.grad.numpy(), tol=1e-10, what="weight_grad")
    assert_close(layer.bias_grad, tl.bias.grad.numpy(), tol=1e-10, what="bias_grad")
    # accumulation, as .grad does; zero_grad forgets
    layer(x, output_size=size, keep_input=True)
    assert layer.backward(gy, input_grad=False) is None
    assert_close(layer.weight_grad, 2 * tl.weight.grad.numpy(), tol=1e-10)
    layer.zero_grad()
    assert layer.weight_grad is None and layer.bias_grad is None
    with pytest.raises(RuntimeError, match="keep_input"):
        layer.backward(gy)
    layer.requires_grad = True
    layer(x[0])            # unbatched input, kept by requires_grad
    assert layer.backward(gy[0][:, :7, :, :5]).shape == x[0].shape


# ------------------------------------------------------------ CUDA compiles
def test_im2col_kernel_compiles(tmp_path):
    """The CuPy im2col kernel body compiles with nvcc (skipped without nvcc)."""
    import shutil
    import subprocess

    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    params = ", ".join(f"int {n}" for n in (
        "Iw", "Ih", "nq", "kW", "kH", "Cog", "i0", "sd", "sh", "sw", "dh", "dw", "pd", "ph",
        "pw", "Od", "Oh", "Ow"))
    src = ("template <typename T>\n__global__ void k(const T* y, " + params +
           ", T* outp, long long n) {\n  for (long long i = blockIdx.x * (long long)"
           "blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {\n"
           "    T& out = outp[i];\n" + adjoint._IM2COL_CUDA + "\n  }\n}\n")
    ints = ", ".join(["int"] * 18)
    for t in ("float", "double"):
        src += f"template __global__ void k<{t}>(const {t}*, {ints}, {t}*, long long);\n"
    cu = tmp_path / "im2col.cu"
    cu.write_text(src)
    res = subprocess.run([nvcc, "-std=c++17", "-arch=sm_80", "--ptx", "-o",
                          str(tmp_path / "im2col.ptx"), str(cu)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


def test_cpu_column_blocks(monkeypatch):
    """GEMMs cut into column blocks (forced small) give the same results."""
    monkeypatch.setattr(adjoint, "_BLAS_ONE_THREAD_MNK", 1)
    rng = np.random.default_rng(1)
    y = rng.standard_normal((2, 4, 9, 11, 10))
    w = rng.standard_normal((6, 2, 3, 2, 3))
    kw = dict(stride=(2, 1, 2), padding=(1, 0, 2), dilation=(1, 2, 1), groups=2)
    params, _ = conv3d_params(y.shape, w.shape, None, **kw)
    x = adjoint.conv3d(params, y, w)
    assert_close(x, conv3d_ref(y, w, None, **kw), "float64")
    gx = rng.standard_normal(x.shape)
    dw = adjoint.weight_grad(params, gx, y)
    ref = conv_transpose3d_weight_ref(gx, y, w.shape[2:], kw["stride"], kw["padding"], 2,
                                      kw["dilation"])
    assert_close(dw, ref, "float64")


@pytest.mark.parametrize("pairs", [0, 10**6])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_fft_contraction_layouts(monkeypatch, pairs, dtype):
    """Both channel contractions of the FFT path: batched matmul and broadcast."""
    monkeypatch.setattr(adjoint_fft, "_FEW_CHANNEL_PAIRS", pairs)
    rng = np.random.default_rng(2)
    y = random_array(rng, (3, 6, 9, 8, 7), dtype)
    w = random_array(rng, (4, 3, 3, 2, 3), dtype)
    kw = dict(stride=(2, 1, 2), padding=(1, 0, 2), dilation=(1, 2, 1), groups=2)
    params, _ = conv3d_params(y.shape, w.shape, None, **kw)
    x = adjoint_fft.conv3d(params, y, w)
    assert_close(x, conv3d_ref(y, w, None, **kw), dtype)
    gx = random_array(rng, x.shape, dtype)
    ref = conv_transpose3d_weight_ref(gx, y, w.shape[2:], kw["stride"], kw["padding"], 2,
                                      kw["dilation"])
    assert_close(adjoint_fft.weight_grad(params, gx, y), ref, dtype)


@pytest.mark.parametrize("limit", [1, 20000, 80000, 10**7])
def test_gemm_group_and_depth_chunks(limit):
    """Chunks of some groups (5 groups in chunks of 2) and some depth planes."""
    rng = np.random.default_rng(0)
    y, w = rng.standard_normal((2, 10, 9, 8, 7)), rng.standard_normal((15, 2, 5, 2, 3))
    kw = dict(stride=(1, 1, 2), padding=(2, 0, 1), dilation=(1, 2, 1), groups=5)
    params, _ = conv3d_params(y.shape, w.shape, None, **kw)
    x = adjoint.conv3d(params, y, w, limit=limit)
    assert_close(x, conv3d_ref(y, w, None, **kw), "float64")
    gx = rng.standard_normal(x.shape)
    ref = conv_transpose3d_weight_ref(gx, y, w.shape[2:], kw["stride"], kw["padding"], 5,
                                      kw["dilation"])
    assert_close(adjoint.weight_grad(params, gx, y, limit=limit), ref, "float64")


def _im2col_cuda_emulated(ax, y, P, i0, ni):
    """The CuPy im2col kernel's index arithmetic (adjoint._IM2COL_CUDA), line by
    line in NumPy, so that the CPU suite checks the GPU kernel's math."""
    Iw, Ih, nq, kW, kH, Cog = ax.I[2], ax.I[1], P.shape[5], ax.K[2], ax.K[1], ax.cog
    sd, sh, sw, dh, dw, pd, ph, pw = (*ax.s, ax.d[1], ax.d[2], *ax.p)
    Od, Oh, Ow = ax.O
    t = np.arange(P.size, dtype=np.int64)
    iw = t % Iw; t //= Iw          # noqa: E702
    ih = t % Ih; t //= Ih          # noqa: E702
    q = t % nq; t //= nq           # noqa: E702
    uw = t % kW; t //= kW          # noqa: E702
    uh = t % kH; t //= kH          # noqa: E702
    o = t % Cog; t //= Cog         # noqa: E702
    r = t % sd; t //= sd           # noqa: E702
    c = t * Cog + o
    md = (i0 + q) * sd + r - pd
    mh = ih * sh + uh * dh - ph
    mw = iw * sw + uw * dw - pw
    ok = (md >= 0) & (md < Od) & (mh >= 0) & (mh < Oh) & (mw >= 0) & (mw < Ow)
    flat = np.where(ok, ((c * Od + md) * Oh + mh) * Ow + mw, 0)
    P.reshape(-1)[...] = np.where(ok, np.ascontiguousarray(y).reshape(-1)[flat], 0)


@pytest.mark.parametrize("limit", [1, 30000, None])
def test_gpu_gemm_branch_emulated(monkeypatch, limit):
    """The GEMM path's GPU branch (one thread, whole batched GEMMs, the im2col
    kernel's index math) run with NumPy standing in for CuPy."""
    monkeypatch.setattr(adjoint, "is_cupy_array", lambda a: True)
    monkeypatch.setattr(adjoint, "_cupy", lambda: np)
    monkeypatch.setattr(adjoint, "_im2col_cupy", _im2col_cuda_emulated)
    rng = np.random.default_rng(3)
    for ys, ws, kw in [((2, 10, 9, 8, 7), (15, 2, 5, 2, 3),
                        dict(stride=(1, 1, 2), padding=(2, 0, 1), dilation=(1, 2, 1),
                             groups=5)),
                       ((1, 4, 11, 9, 10), (6, 4, 3, 3, 2),
                        dict(stride=(2, 2, 3), padding=(1, 2, 0), dilation=(2, 1, 1)))]:
        y, w = rng.standard_normal(ys), rng.standard_normal(ws)
        params, _ = conv3d_params(y.shape, w.shape, None, **kw)
        x = adjoint.conv3d(params, y, w, limit=limit)
        assert_close(x, conv3d_ref(y, w, None, **kw), "float64")
        gx = rng.standard_normal(x.shape)
        ref = conv_transpose3d_weight_ref(gx, y, w.shape[2:], kw["stride"], kw["padding"],
                                          kw.get("groups", 1), kw["dilation"])
        assert_close(adjoint.weight_grad(params, gx, y, limit=limit), ref, "float64")
