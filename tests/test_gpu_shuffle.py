"""``cuda.shuffle`` (one-tap layers: a GEMM to ``Cout * taps`` channels, then
the depth-to-space shuffle) on a CUDA device, against the float64 reference,
at every dtype and precision, with the bounds of the tensor-core tests
(issue 11).  Marked ``gpu``; skipped without CuPy and a CUDA device."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xconvt._params import ConvParams

from .helpers import (cuda_device_count, host_float64, random_array, rel_l2, run_planner,
                      to_device)
from .reference import conv_transpose3d_ref

cupy = pytest.importorskip("cupy", reason="needs CuPy and a CUDA device")
if cuda_device_count() == 0:
    pytest.skip("needs CuPy and a CUDA device", allow_module_level=True)

pytestmark = pytest.mark.gpu

#: (dtype, precision) -> relative L2 bound against float64 of the rounded operands
BOUNDS = {("float32", "float32"): 1e-5, ("float32", "tf32"): 5e-3,
          ("float16", "float32"): 2e-3, ("bfloat16", "float32"): 1.5e-2,
          ("float64", "float32"): 1e-12, ("complex64", "float32"): 1e-5}


def _np_dtype(name):
    if name == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


@settings(max_examples=12, deadline=None)
@given(k=st.tuples(*[st.integers(1, 3)] * 3).filter(lambda k: math.prod(k) > 1),
       size=st.tuples(*[st.integers(1, 9)] * 3), batch=st.integers(1, 2),
       cig=st.integers(1, 40), cog=st.integers(1, 24), groups=st.integers(1, 3),
       bias=st.booleans(), unbatched=st.booleans(),
       mode=st.sampled_from(sorted(BOUNDS)), seed=st.integers(0, 2**16))
def test_shuffle_matches_the_reference(k, size, batch, cig, cog, groups, bias, unbatched,
                                       mode, seed):
    dt_name, prec = mode
    dt = _np_dtype(dt_name)
    rng = np.random.default_rng(seed)
    xshape = ((groups * cig,) if unbatched else (batch, groups * cig)) + size
    x = random_array(rng, xshape, dt)
    w = (random_array(rng, (groups * cig, cog) + k, dt) / math.sqrt(cig)).astype(dt)
    b = random_array(rng, groups * cog, dt) if bias else None
    params = ConvParams.from_shapes(x.shape, w.shape, None if b is None else b.shape,
                                    stride=k, groups=groups)
    got = run_planner("cuda.shuffle", params, to_device(x), to_device(w), to_device(b),
                      precision=prec)
    wide = np.complex128 if dt.kind == "c" else np.float64
    ref = conv_transpose3d_ref(x.astype(wide), w.astype(wide),
                               None if b is None else b.astype(wide), stride=k,
                               groups=groups)
    host = (got.get().astype(wide) if dt.kind == "c" else host_float64(got)).reshape(ref.shape)
    assert got.dtype == dt
    assert rel_l2(host, ref) <= BOUNDS[mode], mode


def test_shuffle_through_the_function_on_unet():
    """``auto`` on a U-Net upsampling layer, whichever plan it takes, and the
    shuffle plan forced by name, agree with the reference (float16, strided input)."""
    import xconvt

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 64, 12, 10, 14)).astype(np.float16)
    w = (rng.standard_normal((64, 32, 2, 2, 2)) / 8).astype(np.float16)
    b = rng.standard_normal(32).astype(np.float16)
    ref = conv_transpose3d_ref(x.astype(np.float64), w.astype(np.float64),
                               b.astype(np.float64), stride=2)
    xd = cupy.asarray(np.concatenate([x, x], axis=-1))[..., :14]
    assert not xd.flags.c_contiguous
    got = xconvt.conv_transpose3d(xd, cupy.asarray(w), cupy.asarray(b), stride=2)
    assert rel_l2(host_float64(got), ref) <= 2e-3
    params = ConvParams.from_shapes(x.shape, w.shape, b.shape, stride=2)
    forced = run_planner("cuda.shuffle", params, cupy.ascontiguousarray(xd), cupy.asarray(w),
                         cupy.asarray(b))
    assert rel_l2(host_float64(forced), ref) <= 2e-3
