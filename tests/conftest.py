"""Fixtures, the hypothesis profile, and GPU skipping for xconvt's tests.

* ``xp`` runs a test once per array library: NumPy always; CuPy only where it
  imports *and* sees a CUDA device (that parameter carries ``pytest.mark.gpu``
  and is skipped with a reason otherwise).
* ``tol`` maps a dtype to the allowed relative L2 error (see
  :data:`tests.helpers.TOLERANCES`); ``algorithms`` lists the registry.
* Hypothesis runs derandomized with no example database, so CI sees the same
  examples every time.  ``XCONVT_HYPOTHESIS_PROFILE=thorough`` runs more, ``quick`` fewer.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from .helpers import algorithms as _algorithms
from .helpers import cuda_device_count, tolerance

_COMMON = dict(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
# Fewer examples for a time-limited GPU session (each new kernel
# specialization is compiled once by NVRTC).
settings.register_profile("quick", max_examples=15, **_COMMON)
settings.load_profile(os.environ.get("XCONVT_HYPOTHESIS_PROFILE", "ci"))

GPU_SKIP_REASON = "needs CuPy and a CUDA device"


def pytest_collection_modifyitems(config, items):
    """Skip ``gpu``-marked tests cleanly where there is no CUDA device."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_items and cuda_device_count() == 0:
        skip = pytest.mark.skip(reason=GPU_SKIP_REASON)
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(params=[
    pytest.param("numpy", id="numpy"),
    pytest.param("cupy", id="cupy", marks=pytest.mark.gpu),
])
def xp(request):
    """The array library under test: ``numpy``, or ``cupy`` on a CUDA machine."""
    if request.param == "numpy":
        return np
    cupy = pytest.importorskip("cupy")
    if cuda_device_count() == 0:
        pytest.skip(GPU_SKIP_REASON)
    return cupy


@pytest.fixture
def tol():
    """``tol(dtype)`` -> allowed relative L2 error for that result dtype."""
    return tolerance


@pytest.fixture
def algorithms():
    """``algorithms(kind="numpy")`` -> the registered algorithm names."""
    return _algorithms


@pytest.fixture
def rng():
    """A fresh, fixed-seed NumPy Generator per test."""
    return np.random.default_rng(20240521)


@pytest.fixture(autouse=True)
def _restore_memory_budget():
    """Tests that change the workspace budget must not leak it to others."""
    import xconvt

    before = xconvt.get_memory_budget()
    yield
    if xconvt.get_memory_budget() != before:
        xconvt.set_memory_budget(before)
