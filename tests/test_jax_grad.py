"""Gradients through JAX (xconvt.jax's custom_vjp) and the gradient functions on
PyTorch and JAX arrays (the boundary, xconvt._interop).

Oracles: ``jax.test_util.check_grads`` (finite differences, float64), the float64
references of ``tests/reference.py``, and a backward pass written by hand with
xconvt.grad on NumPy arrays (itself tested against the references in test_grad).
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
xjax = pytest.importorskip("xconvt.jax")

import xconvt  # noqa: E402
from xconvt import grad  # noqa: E402

from .cases import DIRECT, TRANSPOSED  # noqa: E402
from .helpers import assert_close, random_array  # noqa: E402
from .reference import conv3d_ref, conv_transpose3d_ref, conv_transpose3d_weight_ref  # noqa: E402

jnp = jax.numpy
check_grads = pytest.importorskip("jax.test_util").check_grads


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _arrays(case, seed=0):
    xs, ws, bias, kw = case
    rng = np.random.default_rng(seed)
    cout = ws[1] * kw.get("groups", 1) if case in TRANSPOSED else ws[0]
    x = random_array(rng, xs, "float64")
    w = random_array(rng, ws, "float64")
    b = random_array(rng, (cout,), "float64") if bias else None
    return x, w, b, kw


def _j(*arrays):
    return tuple(None if a is None else jnp.asarray(a) for a in arrays)


def _check(f, args):
    check_grads(f, args, order=1, modes=("rev",))


# ======================================================================= check_grads
CASES = [("conv_transpose3d", c) for c in TRANSPOSED] + [("conv3d", c) for c in DIRECT]


@pytest.mark.parametrize(("name", "case"), CASES)
@pytest.mark.parametrize("jit", [False, True])
def test_check_grads(name, case, jit):
    x, w, b, kw = _arrays(case)
    fn = getattr(xjax, name)
    f = lambda x, w, b=None: fn(x, w, b, **kw)  # noqa: E731
    f = jax.jit(f) if jit else f
    args = _j(x, w) if b is None else _j(x, w, b)
    _check(f, args)
    if not isinstance(kw.get("padding"), str):
        ref = conv_transpose3d_ref if name == "conv_transpose3d" else conv3d_ref
        assert_close(np.asarray(f(*args)), ref(x, w, b, **kw), "float64")


@pytest.mark.parametrize("algorithm", ["measure", "fft"])
def test_grad_with_a_forced_algorithm(algorithm, rng):
    x, w, b, kw = _arrays(TRANSPOSED[0])
    gy = random_array(rng, conv_transpose3d_ref(x, w, b, **kw).shape, "float64")
    f = lambda x, w, b: jnp.vdot(xjax.conv_transpose3d(x, w, b, **kw,  # noqa: E731
                                                       algorithm=algorithm), gy)
    gx, gw, gb = jax.jit(jax.grad(f, argnums=(0, 1, 2)))(*_j(x, w, b))
    assert_close(np.asarray(gx), conv3d_ref(gy, w, None, kw["stride"], kw["padding"],
                                            kw["dilation"], kw["groups"]), "float64")
    assert_close(np.asarray(gw), conv_transpose3d_weight_ref(
        x, gy, w.shape[2:], kw["stride"], kw["padding"], kw["groups"], kw["dilation"]),
        "float64")
    assert_close(np.asarray(gb), gy.sum(axis=(0, 2, 3, 4)), "float64")


@pytest.mark.parametrize(("name", "case"), [CASES[0], CASES[3]])
def test_check_grads_complex(name, case, rng):
    x, w, b, kw = _arrays(case)
    args = tuple(a + 1j * rng.standard_normal(a.shape) for a in (x, w, b))
    fn = getattr(xjax, name)
    _check(jax.jit(lambda x, w, b: fn(x, w, b, **kw)), _j(*args))


def test_public_functions_are_differentiable_on_traced_arrays():
    """xconvt.conv_transpose3d / conv3d on traced JAX arrays take the custom_vjp too."""
    x, w, b, kw = _arrays(TRANSPOSED[0])
    _check(jax.jit(lambda x, w, b: xconvt.conv_transpose3d(x, w, b, **kw)), _j(x, w, b))
    y, w3, _, kw3 = _arrays(DIRECT[0])
    _check(lambda y, w: xconvt.conv3d(y, w, None, **kw3), _j(y, w3))


# ===================================================== jax.grad against the analytic one
def _model_numpy(params, x, target, kw1, kw2):
    """Loss and gradients of ``mse(conv3d(tanh(conv_transpose3d(x)), target)`` by
    hand with xconvt.grad (NumPy)."""
    w1, b1, w2, b2 = params
    h = xconvt.conv_transpose3d(x, w1, b1, **kw1)
    a = np.tanh(h)
    y = xconvt.conv3d(a, w2, b2, **kw2)
    r = y - target
    loss = np.mean(r * r)
    gy = 2 * r / r.size
    gw2 = grad.conv3d_weight(a, w2.shape, gy, **kw2)
    gb2 = grad.bias_grad(gy)
    ga = grad.conv3d_input(a.shape, w2, gy, **kw2)
    gh = ga * (1 - a * a)
    gw1 = grad.conv_transpose3d_weight(x, w1.shape, gh, **kw1)
    gb1 = grad.bias_grad(gh)
    gx = grad.conv_transpose3d_input(x.shape, w1, gh, **kw1)
    return loss, (gw1, gb1, gw2, gb2), gx


@pytest.mark.parametrize("jit", [False, True])
def test_jax_grad_matches_xconvt_grad(jit, rng):
    kw1 = dict(stride=(2, 1, 2), padding=1, output_padding=(1, 0, 1), groups=2)
    kw2 = dict(padding="same", dilation=(1, 2, 1))
    x = random_array(rng, (2, 4, 3, 6, 3), "float64")
    params = [random_array(rng, s, "float64") for s in
              ((4, 3, 3, 3, 3), (6,), (2, 6, 3, 2, 3), (2,))]
    target = random_array(rng, (2, 2, 6, 6, 6), "float64")

    def loss(params, x):
        w1, b1, w2, b2 = params
        h = xjax.conv_transpose3d(x, w1, b1, **kw1)
        y = xjax.conv3d(jnp.tanh(h), w2, b2, **kw2)
        return jnp.mean((y - target) ** 2)

    f = jax.value_and_grad(loss, argnums=(0, 1))
    f = jax.jit(f) if jit else f
    value, (gp, gx) = f(list(_j(*params)), jnp.asarray(x))
    ref_loss, ref_gp, ref_gx = _model_numpy(params, x, target, kw1, kw2)
    assert abs(float(value) - ref_loss) <= 1e-12 * ref_loss
    for a, r in zip(list(gp) + [gx], list(ref_gp) + [ref_gx]):
        assert_close(np.asarray(a), r, "float64")


def test_jax_grad_through_the_layer(rng):
    """The framework-free layer called on a traced JAX input is differentiable."""
    layer = xconvt.ConvTranspose3d(4, 6, 3, stride=2, padding=1, groups=2, dtype="float64",
                                   rng=0)
    x = random_array(rng, (2, 4, 3, 3, 4), "float64")
    gy = random_array(rng, xconvt.output_shape(x.shape, layer.weight.shape, stride=2,
                                               padding=1, groups=2), "float64")
    gx = jax.jit(jax.grad(lambda x: jnp.vdot(layer(x), gy)))(jnp.asarray(x))
    ref = conv3d_ref(gy, layer.weight, None, stride=2, padding=1, groups=2)
    assert_close(np.asarray(gx), ref, "float64")


def test_vmap_of_grad_per_example_weight_gradients(rng):
    x, w, _, kw = _arrays(TRANSPOSED[0])
    gy = random_array(rng, conv_transpose3d_ref(x, w, None, **kw).shape, "float64")

    def one(xi, gi, w):
        return jax.grad(lambda w: jnp.vdot(xjax.conv_transpose3d(xi, w, **kw), gi))(w)

    per = jax.jit(jax.vmap(one, in_axes=(0, 0, None)))(*_j(x, gy, w))
    for n in range(x.shape[0]):
        ref = conv_transpose3d_weight_ref(x[n:n + 1], gy[n:n + 1], w.shape[2:],
                                          kw["stride"], kw["padding"], kw["groups"],
                                          kw["dilation"])
        assert_close(np.asarray(per[n]), ref, "float64")


# ============================================= xconvt.grad on PyTorch and JAX arrays
def _gradient_calls(x, w, gy, kw, xy, wy, gx, kw3):
    """Every gradient function on one library's arrays (x, w, gy of a transposed
    convolution; xy, wy, gx of a conv3d)."""
    return {
        "conv_transpose3d_input": grad.conv_transpose3d_input(tuple(x.shape), w, gy, **kw),
        "conv_transpose3d_weight": grad.conv_transpose3d_weight(x, tuple(w.shape), gy, **kw),
        "conv3d_input": grad.conv3d_input(tuple(xy.shape), wy, gx, **kw3),
        "conv3d_weight": grad.conv3d_weight(xy, tuple(wy.shape), gx, **kw3),
        "bias_grad": grad.bias_grad(gy),
        "conv3d": xconvt.conv3d(xy, wy, None, **kw3),
    }


def _gradient_inputs(rng):
    x, w, _, kw = _arrays(TRANSPOSED[0])
    gy = random_array(rng, conv_transpose3d_ref(x, w, None, **kw).shape, "float64")
    xy, wy, _, kw3 = _arrays(DIRECT[1])
    gx = random_array(rng, xconvt.conv3d(xy, wy, None, **kw3).shape, "float64")
    return (x, w, gy, kw, xy, wy, gx, kw3)


def test_gradient_functions_take_jax_arrays(rng):
    x, w, gy, kw, xy, wy, gx, kw3 = _gradient_inputs(rng)
    ref = _gradient_calls(x, w, gy, kw, xy, wy, gx, kw3)
    eager = _gradient_calls(*_j(x, w, gy), kw, *_j(xy, wy, gx), kw3)
    jitted = jax.jit(lambda *a: _gradient_calls(*a[:3], kw, *a[3:], kw3))(
        *_j(x, w, gy, xy, wy, gx))
    for name, r in ref.items():
        for got in (eager[name], jitted[name]):
            assert isinstance(got, jax.Array), name
            assert_close(np.asarray(got), r, "float64", what=name)


def test_gradient_functions_take_torch_tensors(rng):
    torch = pytest.importorskip("torch")
    x, w, gy, kw, xy, wy, gx, kw3 = _gradient_inputs(rng)
    ref = _gradient_calls(x, w, gy, kw, xy, wy, gx, kw3)
    t = torch.from_numpy
    got = _gradient_calls(t(x), t(w), t(gy), kw, t(xy), t(wy), t(gx), kw3)
    for name, r in ref.items():
        assert type(got[name]) is torch.Tensor, name
        assert_close(got[name].numpy(), r, "float64", what=name)


def test_gradient_functions_name_their_operands(rng):
    torch = pytest.importorskip("torch")
    x, w, gy, kw, *_ = _gradient_inputs(rng)
    with pytest.raises(TypeError, match="weight is a torch array but grad_output is a "
                                        "numpy array; pass weight and grad_output"):
        grad.conv_transpose3d_input(x.shape, torch.from_numpy(w), gy, **kw)
    with pytest.raises(TypeError, match="input is a jax array but grad_output is a torch"):
        grad.conv_transpose3d_weight(jnp.asarray(x), w.shape, torch.from_numpy(gy), **kw)
    with pytest.raises(ValueError, match="input is on cpu but grad_output is on meta"):
        grad.conv_transpose3d_weight(torch.from_numpy(x), w.shape,
                                     torch.from_numpy(gy).to("meta"), **kw)
    with pytest.raises(TypeError, match="grad_output dtype float32 differs from weight"):
        jax.jit(lambda w, g: grad.conv_transpose3d_input(x.shape, w, g, **kw))(
            jnp.asarray(w), jnp.asarray(gy, jnp.float32))
    with pytest.raises(ValueError, match="grad_output must have shape"):
        jax.jit(lambda g: grad.conv_transpose3d_weight(jnp.asarray(x), w.shape, g, **kw))(
            jnp.asarray(gy[:, :, 1:]))


def test_layer_backward_on_torch_and_jax_arrays(rng):
    """The framework-free layer's backward takes the input's library (its parameters
    are viewed there), and gives that library's gradients."""
    torch = pytest.importorskip("torch")
    m = xconvt.ConvTranspose3d(4, 6, 3, stride=2, groups=2, dtype="float64", rng=0)
    m.requires_grad = True
    x = random_array(rng, (2, 4, 3, 3, 3), "float64")
    gy = random_array(rng, xconvt.output_shape(x.shape, m.weight.shape, stride=2, groups=2),
                      "float64")
    ref_gx = conv3d_ref(gy, m.weight, None, stride=2, groups=2)
    ref_gw = conv_transpose3d_weight_ref(x, gy, (3, 3, 3), 2, 0, 2, 1)
    for lib, conv in (("torch", torch.from_numpy), ("jax", jnp.asarray)):
        m.zero_grad()
        m(conv(x))
        gx = m.backward(conv(gy))
        assert type(gx).__module__.startswith(lib)
        assert_close(np.asarray(gx), ref_gx, "float64", what=lib)
        assert_close(np.asarray(m.weight_grad), ref_gw, "float64", what=lib)
        assert_close(np.asarray(m.bias_grad), gy.sum(axis=(0, 2, 3, 4)), "float64", what=lib)


# ================================================================================ GPU
@pytest.mark.gpu
@pytest.mark.parametrize("jit", [False, True])
def test_gpu_check_grads(jit):
    from .helpers import cuda_device_count

    try:
        gpu = jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("JAX sees no GPU")
    if cuda_device_count() == 0:
        pytest.skip("CuPy sees no CUDA device")
    for name, case in CASES:
        x, w, b, kw = _arrays(case)
        fn = getattr(xjax, name)
        f = lambda x, w, b=None, fn=fn, kw=kw: fn(x, w, b, **kw)  # noqa: E731
        args = tuple(jax.device_put(a, gpu) for a in ((x, w) if b is None else (x, w, b)))
        _check(jax.jit(f) if jit else f, args)
