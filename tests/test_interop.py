"""PyTorch CPU tensors and JAX CPU arrays through the public API (xconvt._interop, xconvt.jax).

Every result is checked against the independent float64 reference; zero-copy is
checked by data pointers (``Tensor.data_ptr``, ``ndarray.ctypes.data``,
``jax.Array.unsafe_buffer_pointer``) on the arrays the boundary hands to the
backends and on the arrays it returns.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xconvt
import xconvt.jax
from xconvt import _interop

from .helpers import Spy, assert_close, random_array
from .reference import conv_transpose3d_ref
from .strategies import configs, seeds

CONFIG = dict(stride=(2, 1, 2), padding=(1, 0, 1), output_padding=(1, 0, 0), groups=2,
              dilation=(1, 2, 1))


def _problem(rng, dtype="float32", batch=2, bias=True):
    x = random_array(rng, (batch, 4, 3, 4, 5), dtype)
    w = random_array(rng, (4, 3, 3, 2, 3), dtype)
    b = random_array(rng, (6,), dtype) if bias else None
    return x, w, b


def _ref(x, w, b, **kw):
    return conv_transpose3d_ref(x, w, b, **{**CONFIG, **kw})


# ============================================================================ PyTorch
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "float16"])
def test_torch_cpu_same_type_and_reference(torch, rng, dtype):
    x, w, b = _problem(rng, dtype)
    out = xconvt.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(w),
                                  torch.from_numpy(b), **CONFIG)
    assert type(out) is torch.Tensor
    assert out.device.type == "cpu" and str(out.dtype) == f"torch.{dtype}"
    assert out.is_contiguous()
    assert_close(out.numpy(), _ref(x, w, b), dtype)


def test_torch_cpu_zero_copy(torch, rng):
    x, w, b = (torch.from_numpy(a) for a in _problem(rng))
    spy = Spy()
    out = _interop.call(spy, x, w, b, **CONFIG)
    for t, a in zip((x, w, b), spy.seen):
        assert type(a) is np.ndarray and a.ctypes.data == t.data_ptr()
    assert out.data_ptr() == spy.result.ctypes.data  # the backend's result, shared


def test_torch_cpu_strided_and_special_tensors(torch, rng):
    x, w, b = _problem(rng, "float64")
    ref = _ref(x, w, b)
    # A permuted, sliced input and a transposed weight: views with any strides.
    big = torch.from_numpy(np.ascontiguousarray(
        np.pad(x, ((0, 0), (0, 0), (0, 0), (0, 0), (0, 3))).transpose(0, 2, 1, 3, 4)))
    xs = big.permute(0, 2, 1, 3, 4)[..., :5]
    assert not xs.is_contiguous()
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(1, 0, 2, 3, 4))).transpose(0, 1)
    spy = Spy()
    out = _interop.call(spy, xs, wt, torch.from_numpy(b), **CONFIG)
    assert spy.seen[0].ctypes.data == xs.data_ptr()
    assert spy.seen[0].strides == tuple(s * 8 for s in xs.stride())
    assert_close(out.numpy(), ref, "float64")
    # requires_grad (read through detach) and the negative/conjugate bits (resolved).
    xg = torch.from_numpy(x).requires_grad_()
    assert_close(xconvt.conv_transpose3d(xg, torch.from_numpy(w), torch.from_numpy(b),
                                         **CONFIG).numpy(), ref, "float64")
    xc, wc, bc = _problem(rng, "complex128")
    conj = torch.from_numpy(xc.conj()).conj()  # conjugate bit set, values equal xc
    assert conj.is_conj()
    out = xconvt.conv_transpose3d(conj, torch.from_numpy(wc), torch.from_numpy(bc), **CONFIG)
    assert_close(out.numpy(), _ref(xc, wc, bc), "complex128")


def test_torch_cpu_unbatched_and_zero_batch(torch, rng):
    x, w, b = _problem(rng)
    out = xconvt.conv_transpose3d(torch.from_numpy(x[0]), torch.from_numpy(w),
                                  torch.from_numpy(b), **CONFIG)
    assert type(out) is torch.Tensor and out.ndim == 4
    assert_close(out.numpy(), _ref(x[:1], w, b)[0], "float32")
    x0 = torch.zeros((0,) + x.shape[1:])
    out = xconvt.conv_transpose3d(x0, torch.from_numpy(w), None, **CONFIG)
    assert type(out) is torch.Tensor and out.shape == (0,) + _ref(x, w, b).shape[1:]


def test_mixed_libraries_raise(torch, rng):
    x, w, b = _problem(rng)
    with pytest.raises(TypeError, match="input is a torch array but weight is a numpy array"):
        xconvt.conv_transpose3d(torch.from_numpy(x), w)
    with pytest.raises(TypeError, match="input is a torch array but bias is a numpy array"):
        xconvt.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(w), b)
    with pytest.raises(TypeError, match="input is a numpy array but bias is a torch array"):
        xconvt.conv_transpose3d(x, w, torch.from_numpy(b))
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(TypeError, match="input is a jax array but weight is a torch array"):
        xconvt.conv_transpose3d(jnp.asarray(x), torch.from_numpy(w))


def test_mixed_devices_raise(torch, rng):
    x, w, b = _problem(rng)
    with pytest.raises(ValueError, match="input is on cpu but weight is on meta"):
        xconvt.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(w).to("meta"))
    with pytest.raises(ValueError, match="bias is on meta"):
        xconvt.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(w),
                                torch.from_numpy(b).to("meta"))
    with pytest.raises(TypeError, match="input is a torch tensor on meta"):
        xconvt.conv_transpose3d(torch.from_numpy(x).to("meta"), torch.from_numpy(w).to("meta"))


def test_unsupported_dtypes_raise_before_export(torch, rng):
    x, w, _ = _problem(rng)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    with pytest.raises(TypeError, match="weight dtype bfloat16 differs from input dtype"):
        xconvt.conv_transpose3d(tx, tw.bfloat16())
    with pytest.raises(TypeError, match="input dtype int32 is not supported"):
        xconvt.conv_transpose3d(tx.int(), tw.int())
    with pytest.raises(TypeError, match="weight dtype float64 differs from input dtype"):
        xconvt.conv_transpose3d(tx, tw.double())


def test_algorithms_and_output_size_pass_through(torch, rng, algorithms):
    x, w, b = _problem(rng)
    ref = _ref(x, w, b, output_padding=0)
    size = ref.shape[2:]
    for algorithm in algorithms() + ("auto",):
        out = xconvt.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(w),
                                      torch.from_numpy(b), **{**CONFIG, "output_padding": 1},
                                      output_size=size, algorithm=algorithm)
        assert_close(out.numpy(), ref, "float32", what=algorithm)
    with pytest.raises(ValueError, match="algorithm='nope'"):
        xconvt.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(w), algorithm="nope")


# ================================================================================ JAX
@pytest.fixture
def jax():
    return pytest.importorskip("jax")


def test_jax_cpu_same_type_and_reference(jax, rng):
    jnp = jax.numpy
    x, w, b = _problem(rng)
    out = xconvt.conv_transpose3d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b), **CONFIG)
    assert isinstance(out, jax.Array) and not isinstance(out, jax.core.Tracer)
    assert out.dtype == np.float32 and out.device.platform == "cpu"
    assert_close(np.asarray(out), _ref(x, w, b), "float32")


def test_jax_cpu_zero_copy(jax, rng):
    jnp = jax.numpy
    x, w, b = (jnp.asarray(a) for a in _problem(rng))
    spy = Spy()
    out = _interop.call(spy, x, w, b, **CONFIG)
    for j, a in zip((x, w, b), spy.seen):
        assert type(a) is np.ndarray and a.ctypes.data == j.unsafe_buffer_pointer()
        assert not a.flags.writeable  # JAX's buffers are read-only; the backends never write
    if spy.result.ctypes.data % 64 == 0:
        assert out.unsafe_buffer_pointer() == spy.result.ctypes.data
    # Results come back without a copy where XLA's CPU client can share them
    # (64-byte aligned data).
    native = _interop.host_copy(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    back = _interop._library("input", x).wrap(native, x)
    assert isinstance(back, jax.Array) and back.unsafe_buffer_pointer() == native.ctypes.data
    np.testing.assert_array_equal(np.asarray(back), native)


def test_jax_cpu_unbatched_and_zero_batch(jax, rng):
    jnp = jax.numpy
    x, w, b = _problem(rng)
    out = xconvt.conv_transpose3d(jnp.asarray(x[1]), jnp.asarray(w), jnp.asarray(b), **CONFIG)
    assert isinstance(out, jax.Array) and out.ndim == 4
    assert_close(np.asarray(out), _ref(x[1:], w, b)[0], "float32")
    out = xconvt.conv_transpose3d(jnp.zeros((0,) + x.shape[1:]), jnp.asarray(w), **CONFIG)
    assert isinstance(out, jax.Array) and out.shape == (0,) + _ref(x, w, b).shape[1:]


def test_jax_bfloat16_eager_and_jit(jax, rng):
    jnp = jax.numpy
    x, w, _ = _problem(rng)
    xb, wb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
    eager = xconvt.conv_transpose3d(xb, wb, **CONFIG)
    traced = jax.jit(lambda x, w: xconvt.conv_transpose3d(x, w, **CONFIG))(xb, wb)
    assert eager.dtype == traced.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(eager, np.float32), np.asarray(traced, np.float32))
    ref = _ref(np.asarray(xb, np.float64), np.asarray(wb, np.float64), None)
    assert_close(np.asarray(eager, np.float64), ref, "float16", tol=1.5e-2)


@pytest.mark.parametrize("bias", [True, False])
def test_jax_jit(jax, rng, bias):
    jnp = jax.numpy
    x, w, b = _problem(rng, bias=bias)
    ref = _ref(x, w, b)

    @jax.jit
    def f(x, w, b):
        return 2.0 * xconvt.conv_transpose3d(x, w, b, **CONFIG) - 1.0

    out = f(jnp.asarray(x), jnp.asarray(w), None if b is None else jnp.asarray(b))
    assert isinstance(out, jax.Array)
    assert_close(np.asarray(out), 2.0 * ref - 1.0, "float32")
    # xconvt.jax directly, unbatched, output_size as a list, forced algorithms.
    for algorithm in ("direct", "fft"):
        g = jax.jit(lambda x, w: xconvt.jax.conv_transpose3d(
            x, w, None, **{**CONFIG, "output_padding": 0}, output_size=list(ref.shape[2:]),
            algorithm=algorithm))
        assert_close(np.asarray(g(jnp.asarray(x[0]), jnp.asarray(w))),
                     _ref(x[:1], w, None)[0], "float32", what=algorithm)


def test_jax_jit_zero_batch_and_float64(jax, rng):
    jnp = jax.numpy
    x, w, b = _problem(rng)
    f = jax.jit(lambda x, w: xconvt.conv_transpose3d(x, w, **CONFIG))
    out = f(jnp.zeros((0,) + x.shape[1:]), jnp.asarray(w))
    assert out.shape == (0,) + _ref(x, w, b).shape[1:]
    with jax.enable_x64(True) if hasattr(jax, "enable_x64") else jax.experimental.enable_x64():
        x64, w64, b64 = _problem(rng, "float64")
        out = jax.jit(lambda x, w, b: xconvt.conv_transpose3d(x, w, b, **CONFIG))(
            jnp.asarray(x64), jnp.asarray(w64), jnp.asarray(b64))
        assert out.dtype == np.float64
        assert_close(np.asarray(out), _ref(x64, w64, b64), "float64")


def test_jax_vmap(jax, rng):
    jnp = jax.numpy
    x, w, b = _problem(rng, batch=3)
    ref = _ref(x, w, b)
    # vmap over the batch of unbatched inputs, eager and under jit; weights shared.
    f = jax.vmap(lambda xi: xconvt.conv_transpose3d(xi, jnp.asarray(w), jnp.asarray(b),
                                                    **CONFIG))
    assert_close(np.asarray(f(jnp.asarray(x))), ref, "float32")
    assert_close(np.asarray(jax.jit(f)(jnp.asarray(x))), ref, "float32")
    # vmap over a stack of weights too (in_axes for every operand).
    ws = np.stack([w, 2 * w])
    g = jax.vmap(lambda wi: xconvt.conv_transpose3d(jnp.asarray(x), wi, None, **CONFIG))
    out = np.asarray(g(jnp.asarray(ws)))
    assert_close(out[1], _ref(x, 2 * w, None), "float32")


def test_jax_traced_without_buffer_callback(jax, rng, monkeypatch):
    jnp = jax.numpy
    x, w, _ = _problem(rng)
    monkeypatch.setitem(sys.modules, "jax.experimental.buffer_callback", None)
    xconvt.jax._buffer_callback.cache_clear()
    xconvt.jax._op.cache_clear()
    try:
        with pytest.raises(TypeError, match="needs jax.experimental.buffer_callback"):
            jax.jit(lambda x, w: xconvt.conv_transpose3d(x, w))(jnp.asarray(x), jnp.asarray(w))
        # Eager calls do not need it.
        out = xconvt.conv_transpose3d(jnp.asarray(x), jnp.asarray(w), **CONFIG)
        assert_close(np.asarray(out), _ref(x, w, None), "float32")
    finally:
        xconvt.jax._buffer_callback.cache_clear()
        xconvt.jax._op.cache_clear()


def test_jax_mixed_libraries_raise(jax, rng):
    jnp = jax.numpy
    x, w, _ = _problem(rng)
    with pytest.raises(TypeError, match="input is a jax array but weight is a numpy array"):
        xconvt.conv_transpose3d(jnp.asarray(x), w)
    with pytest.raises(TypeError, match="input is a jax array but weight is a numpy array"):
        jax.jit(lambda x: xconvt.conv_transpose3d(x, w))(jnp.asarray(x))


# ============================================================================= layer
def test_layer_follows_torch_and_jax_inputs(torch, jax, rng):
    jnp = jax.numpy
    m = xconvt.ConvTranspose3d(4, 6, (3, 2, 3), **CONFIG, rng=0)
    x = random_array(rng, (2, 4, 3, 4, 5), "float32")
    ref = _ref(x, m.weight, m.bias)
    out = m(torch.from_numpy(x))
    assert type(out) is torch.Tensor
    assert_close(out.numpy(), ref, "float32")
    out = m(jnp.asarray(x))
    assert isinstance(out, jax.Array)
    assert_close(np.asarray(out), ref, "float32")
    assert_close(np.asarray(jax.jit(m)(jnp.asarray(x))), ref, "float32")
    # The parameters are viewed, not copied: JAX shares the aligned NumPy weights.
    w, _ = _interop.follow(jnp.asarray(x), m.weight, m.bias)
    assert w.unsafe_buffer_pointer() == m.weight.ctypes.data
    w, _ = _interop.follow(torch.from_numpy(x), m.weight, m.bias)
    assert w.data_ptr() == m.weight.ctypes.data


def test_layer_device_objects(torch, jax, rng):
    x = random_array(rng, (1, 4, 3, 4, 5), "float32")
    ref = None
    for device in (torch.device("cpu"), jax.devices("cpu")[0]):
        m = xconvt.ConvTranspose3d(4, 6, (3, 2, 3), **CONFIG, device=device, rng=0)
        assert m.device == device
        assert _interop._library("weight", m.weight).name == (
            "torch" if device is not jax.devices("cpu")[0] else "jax")
        w, b = np.asarray(m.weight), np.asarray(m.bias)
        ref = _ref(x, w, b)
        out = m(x)  # a NumPy input gets NumPy out, the parameters viewed in NumPy
        assert type(out) is np.ndarray
        assert_close(out, ref, "float32")
        assert type(m(torch.from_numpy(x))) is torch.Tensor
        assert_close(np.asarray(m(jax.numpy.asarray(x))), ref, "float32")
        m2 = xconvt.ConvTranspose3d(4, 6, (3, 2, 3), **CONFIG, rng=1)
        m2.load_state_dict(m.state_dict())
        assert_close(m2(x), ref, "float32")


def test_layer_parameters_on_another_device_raise(torch, rng):
    m = xconvt.ConvTranspose3d(4, 6, 3, device=torch.device("meta"), rng=0)
    x = random_array(rng, (1, 4, 3, 4, 5), "float32")
    with pytest.raises(ValueError, match="parameters are torch arrays on meta"):
        m(x)
    with pytest.raises(ValueError, match="device must be"):
        xconvt.ConvTranspose3d(4, 6, 3, device=object())


# ======================================================================= properties

@settings(max_examples=25)
@given(cfg=configs(), seed=seeds, lib=st.sampled_from(["torch", "jax", "jax.jit"]),
       dtype=st.sampled_from(["float32", "float64"]))
def test_random_configurations(cfg, seed, lib, dtype):
    """Random valid configurations (unbatched and zero batch included) through
    PyTorch CPU, JAX CPU eager and JAX under jit: the input's library out, equal
    to the reference."""
    x, w, b = cfg.arrays(seed, dtype)
    ref = cfg.reference(x, w, b)
    if lib == "torch":
        torch = pytest.importorskip("torch")
        out = xconvt.conv_transpose3d(*(None if a is None else torch.from_numpy(a)
                                        for a in (x, w, b)), **cfg.kwargs)
        assert type(out) is torch.Tensor
        host = out.numpy()
    else:
        jax = pytest.importorskip("jax")
        with jax.enable_x64(dtype == "float64"):
            ops = [None if a is None else jax.numpy.asarray(a) for a in (x, w, b)]
            f = lambda x, w, b: xconvt.conv_transpose3d(x, w, b, **cfg.kwargs)  # noqa: E731
            out = (jax.jit(f) if lib == "jax.jit" else f)(*ops)
            assert isinstance(out, jax.Array) and out.dtype == np.dtype(dtype)
            host = np.asarray(out)
    assert_close(host, ref, dtype)


def test_layer_on_jax_device_needs_x64_for_float64(jax):
    cpu = jax.devices("cpu")[0]
    with jax.enable_x64(False), pytest.raises(TypeError, match="64-bit mode"):
        xconvt.ConvTranspose3d(2, 2, 2, dtype="float64", device=cpu)
    with jax.enable_x64(True):
        m = xconvt.ConvTranspose3d(2, 2, 2, dtype="float64", device=cpu, rng=0)
        assert m.weight.dtype == np.float64
