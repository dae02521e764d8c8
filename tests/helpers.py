"""Shared helpers for the test suite: tolerances, comparisons, data, devices.

Nothing here imports CuPy at import time; :func:`cuda_device_count` does so
lazily and reports 0 when CuPy or a CUDA device is missing.
"""

from __future__ import annotations

import functools

import numpy as np

#: Relative L2 error ``||out - ref|| / ||ref||`` allowed per result dtype.
TOLERANCES = {
    "float16": 1e-2,
    "float32": 1e-5,
    "complex64": 1e-5,
    "float64": 1e-12,
    "complex128": 1e-12,
}

FLOAT_DTYPES = ("float16", "float32", "float64")
ALL_DTYPES = ("float16", "float32", "float64", "complex64", "complex128")


def tolerance(dtype):
    """Relative L2 tolerance for results of ``dtype``."""
    return TOLERANCES[np.dtype(dtype).name]


def algorithms(kind="numpy"):
    """Algorithms registered for array library ``kind`` (``"numpy"``/``"cupy"``)."""
    import xconvt.backends

    return tuple(xconvt.backends.algorithms(kind))


@functools.lru_cache(maxsize=None)
def cuda_device_count():
    """Number of CUDA devices CuPy can see; 0 without CuPy or a device."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # ImportError, CUDARuntimeError, missing driver ...
        return 0


def to_host(a):
    """A NumPy view/copy of a NumPy or CuPy array."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def to_device(a):
    """A host array on the current CUDA device, 16-bit types moved as their bits
    (no bfloat16 conversion kernel needed); None stays None."""
    import cupy

    if a is None:
        return None
    if a.dtype.itemsize == 2:
        return cupy.asarray(a.view(np.uint16)).view(a.dtype)
    return cupy.asarray(a)


def host_float64(a):
    """A device array on the host as float64 (bfloat16 widened from its bits)."""
    if a.dtype.name == "bfloat16":
        bits = a.view("uint16").get().astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64)
    return a.get().astype(np.float64)


def rel_l2(out, ref):
    """``||out - ref|| / ||ref||`` in float64 (absolute error when ``ref`` is 0)."""
    out = to_host(out)
    ref = np.asarray(ref)
    wide = np.complex128 if (np.iscomplexobj(out) or np.iscomplexobj(ref)) else np.float64
    diff = np.linalg.norm((out.astype(wide) - ref.astype(wide)).ravel())
    den = np.linalg.norm(ref.astype(wide).ravel())
    return float(diff / den) if den > 0 else float(diff)


def assert_close(out, ref, dtype=None, tol=None, what=""):
    """Assert ``out`` matches ``ref`` (same shape, finite, relative L2 within tol)."""
    host = to_host(out)
    ref = np.asarray(ref)
    assert host.shape == ref.shape, f"{what} shape {host.shape} != reference {ref.shape}"
    if host.size == 0:
        return
    if tol is None:
        tol = tolerance(dtype if dtype is not None else host.dtype)
    assert np.all(np.isfinite(host)), f"{what} result has non-finite values"
    err = rel_l2(host, ref)
    if not err <= tol:
        absdiff = np.abs(host.astype(ref.dtype) - ref)
        where = np.unravel_index(int(np.argmax(absdiff)), ref.shape)
        raise AssertionError(
            f"{what} relative L2 error {err:.3e} > {tol:.1e}; worst at {where}: "
            f"got {host[where]!r}, expected {ref[where]!r}"
        )


def random_array(rng, shape, dtype):
    """Standard-normal data of ``dtype`` (complex: independent real/imag parts)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        a = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    else:
        a = rng.standard_normal(shape)
    return a.astype(dtype)


def run_planner(name, params, x, w, b=None, op="conv_transpose3d", precision="float32"):
    """Run the plan of planner ``name`` (e.g. ``"cuda.tile"``, ``"cpu.toeplitz_w"``)
    on native arrays; ``ValueError`` where it does not apply."""
    from xconvt import _select

    problem = _select.problem_for(op, params, x, precision)
    return _select.named_plan(name, problem)(x, w, b)


def planner_names(kind="numpy", algorithm=None):
    """Names of the planners registered for ``kind`` (optionally of one algorithm)."""
    import xconvt.backends

    return tuple(p.name for p in xconvt.backends.planners(kind)
                 if algorithm is None or p.algorithm == algorithm)
class Spy:
    """A stand-in for :func:`xconvt.conv_transpose3d` that records the native
    operands :mod:`xconvt._interop` hands it and the result it returns (for the
    zero-copy checks: compare their data pointers with the caller's arrays)."""

    __name__ = "conv_transpose3d"

    def __init__(self):
        self.seen = self.result = None

    def __call__(self, x, w, b, *args, **kwargs):
        import xconvt

        self.seen = (x, w, b)
        self.result = xconvt.conv_transpose3d(x, w, b, *args, **kwargs)
        return self.result
