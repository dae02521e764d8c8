"""bfloat16 (``ml_dtypes.bfloat16``) on the CPU: computed in float32, rounded
once, returned as bfloat16, for NumPy arrays and PyTorch / JAX CPU tensors;
without ml_dtypes a TypeError says what to install."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings

import xconvt

from .strategies import configs, seeds

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)

#: Relative L2 error against the float64 result of the rounded operands (issue 11).
TOL = 1.5e-2


def _rel(out, ref):
    out = np.asarray(out, np.float64)
    return np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-300)


@settings(max_examples=40, deadline=None)
@given(cfg=configs(), seed=seeds)
def test_numpy_bfloat16_against_reference(cfg, seed):
    x, w, b = cfg.arrays(seed, "float32")
    x, w = x.astype(BF16), w.astype(BF16)
    b = None if b is None else b.astype(BF16)
    out = xconvt.conv_transpose3d(x, w, b, **cfg.kwargs)
    assert out.dtype == BF16
    assert out.shape == cfg.output_shape
    ref = cfg.reference(x.astype(np.float64), w.astype(np.float64),
                        None if b is None else b.astype(np.float64))
    if out.size:
        assert _rel(out, ref) <= TOL


def test_rounded_once_from_float32():
    """The result is the float32 computation rounded to nearest even, exactly."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 6, 7)).astype(BF16)
    w = rng.standard_normal((4, 3, 3, 3, 3)).astype(BF16)
    out = xconvt.conv_transpose3d(x, w, stride=2, padding=1)
    wide = xconvt.conv_transpose3d(x.astype(np.float32), w.astype(np.float32), stride=2,
                                   padding=1)
    np.testing.assert_array_equal(out.view(np.uint16), wide.astype(BF16).view(np.uint16))


@pytest.mark.parametrize("algorithm", ["direct", "fft", "auto", "measure"])
def test_every_algorithm_takes_bfloat16(algorithm):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 6, 6, 6)).astype(BF16)
    w = rng.standard_normal((2, 2, 5, 5, 5)).astype(BF16)
    out = xconvt.conv_transpose3d(x, w, padding=2, algorithm=algorithm)
    ref = xconvt.conv_transpose3d(x.astype(np.float64), w.astype(np.float64), padding=2)
    assert out.dtype == BF16 and _rel(out, ref) <= TOL


def test_explain_bfloat16_runs_float32_plans():
    e = xconvt.explain((1, 3, 5, 5, 5), (3, 2, 3, 3, 3), stride=2, dtype="bfloat16")
    assert e.choice.detail.startswith("in float32")


def test_torch_bfloat16_cpu():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((3, 4, 3, 3, 3)).astype(np.float32)
    xt, wt = torch.from_numpy(x).bfloat16(), torch.from_numpy(w).bfloat16()
    out = xconvt.conv_transpose3d(xt, wt, stride=2)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16
    ref = torch.nn.functional.conv_transpose3d(xt.double(), wt.double(), stride=2).numpy()
    assert _rel(out.float().numpy(), ref) <= TOL


def test_jax_bfloat16_cpu():
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 4, 4, 4)).astype(BF16)
    w = rng.standard_normal((2, 2, 3, 3, 3)).astype(BF16)
    out = xconvt.conv_transpose3d(jnp.asarray(x), jnp.asarray(w), padding=1)
    assert out.dtype == jnp.bfloat16
    ref = xconvt.conv_transpose3d(x.astype(np.float64), w.astype(np.float64), padding=1)
    assert _rel(np.asarray(out), ref) <= TOL


def test_without_ml_dtypes_says_what_to_install(monkeypatch):
    from xconvt import _bf16

    monkeypatch.setattr(_bf16, "_DTYPE", None)
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(TypeError, match="pip install ml_dtypes"):
        _bf16.dtype()


# ------------------------------------------------------------------ GPU (CuPy)
def _cupy():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("needs a CUDA device")
    except Exception:  # noqa: BLE001 - no driver, no device
        pytest.skip("needs a CUDA device")
    return cupy


@pytest.mark.gpu
def test_gpu_conversions_match_ml_dtypes():
    """The CuPy widening and rounding kernels equal ml_dtypes' conversions bit
    for bit: ties to even, subnormals, infinities, NaN kept a NaN."""
    cupy = _cupy()
    from xconvt._bf16 import to_bfloat16, to_float32

    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    special = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001,
                        0x00000001, 0x007FFFFF, 0x3F808000, 0x3F818000, 0x3F80FFFF,
                        0x7F7FFFFF, 0x7F7F8000], np.uint32)
    f = np.concatenate([bits, special]).view(np.float32)
    got = to_bfloat16(cupy.asarray(f)).get()
    want = f.astype(BF16)
    finite = ~np.isnan(f)
    np.testing.assert_array_equal(got.view(np.uint16)[finite], want.view(np.uint16)[finite])
    assert np.isnan(got[~finite].astype(np.float32)).all()
    h = want[finite]
    back = to_float32(cupy.asarray(h)[::-1][::-1]).get()     # a strided view in
    np.testing.assert_array_equal(back.view(np.uint32), h.astype(np.float32).view(np.uint32))


@pytest.mark.gpu
@pytest.mark.parametrize("algorithm", ["direct", "fft", "auto"])
def test_gpu_bfloat16_on_float32_plans(algorithm):
    """Layers with few channels (no tensor-core plan) run in float32 and come
    back bfloat16, equal to the float32 call rounded once."""
    cupy = _cupy()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 9, 8, 7)).astype(BF16)
    w = rng.standard_normal((2, 3, 5, 5, 5)).astype(BF16)
    b = rng.standard_normal(3).astype(BF16)
    kw = dict(stride=2, padding=2, output_padding=1)
    xd, wd, bd = (cupy.asarray(a.view(np.uint16)).view(BF16) for a in (x, w, b))
    out = xconvt.conv_transpose3d(xd, wd, bd, algorithm=algorithm, **kw)
    assert out.dtype == BF16 and isinstance(out, cupy.ndarray)
    ref = xconvt.conv_transpose3d(x.astype(np.float64), w.astype(np.float64),
                                  b.astype(np.float64), **kw)
    assert _rel(out.get().astype(np.float64), ref) <= TOL
    choice = xconvt.explain(x.shape, w.shape, True, dtype="bfloat16", device="cuda",
                            algorithm=algorithm if algorithm != "auto" else "auto",
                            **kw).choice
    if "in float32" in (choice.detail or ""):   # widened, computed, rounded once
        wide = xconvt.conv_transpose3d(
            *(cupy.asarray(a.astype(np.float32)) for a in (x, w, b)), algorithm=algorithm,
            **kw).get()
        np.testing.assert_array_equal(out.view(cupy.uint16).get(),
                                      wide.astype(BF16).view(np.uint16))
