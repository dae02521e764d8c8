"""``conv_transpose3d`` on Dask arrays of CuPy chunks, on ``dask_cuda``.

* CuPy-backed chunks on a ``LocalCUDACluster`` (one worker per GPU) equal the
  single-array call on the whole CuPy volume (same per-block algorithm,
  ``algorithm="direct"``; float64 within 1e-12 relative L2, float32 within
  1e-5, since the CUDA direct path picks its kernel variant per block shape)
  and the independent float64 reference; chunks stay ``cupy.ndarray``; both
  halo modes (``halo_rows``).
* A run whose output (1 GiB) is four times the workers' device memory limit
  (256 MiB, ``device_memory_limit``) completes: the persisted blocks spill to
  host memory, and sampled blocks equal the float64 reference computed on
  the input region they depend on.

All tests carry ``gpu`` and skip without CuPy, a CUDA device or dask_cuda.
"""

from __future__ import annotations

import numpy as np
import pytest

import xconvt

from .helpers import assert_close, cuda_device_count
from .reference import conv_transpose3d_ref

pytestmark = pytest.mark.gpu

da = pytest.importorskip("dask.array")


def _require_gpu():
    cupy = pytest.importorskip("cupy")
    if cuda_device_count() == 0:
        pytest.skip("needs CuPy and a CUDA device")
    pytest.importorskip("dask_cuda")
    pytest.importorskip("distributed")
    return cupy


@pytest.fixture(scope="module")
def cuda_client():
    _require_gpu()
    from dask_cuda import LocalCUDACluster
    from distributed import Client

    with LocalCUDACluster(dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def _device_chunks(cupy, x, chunks):
    return da.from_array(x, chunks=chunks).map_blocks(
        cupy.asarray, meta=cupy.empty((0,) * x.ndim, x.dtype))


CONFIGS = [
    # (input shape, weight shape, kwargs, chunks, dtype)
    ((2, 4, 12, 10, 14), (4, 3, 3, 3, 3), dict(stride=2, padding=1, output_padding=1),
     (1, 4, 5, 4, 6), "float64"),
    ((1, 6, 9, 11, 8), (6, 2, 4, 2, 3), dict(stride=(2, 1, 3), padding=(1, 0, 2),
                                            groups=3, dilation=(1, 2, 1)),
     (1, 6, (2, 7), (1, 1, 9), 8), "float64"),
    ((1, 8, 16, 16, 16), (8, 16, 2, 2, 2), dict(stride=2), (1, 8, 8, 8, 8), "float32"),
    ((1, 1, 20, 20, 20), (1, 1, 5, 5, 5), dict(stride=2, padding=2, output_padding=1),
     (1, 1, 6, 7, 20), "float32"),
]


@pytest.mark.parametrize("halo_rows", ["slices", "blocks"])
@pytest.mark.parametrize("shape, wshape, kw, chunks, dtype", CONFIGS)
def test_cupy_chunks_equal_single_array(cuda_client, shape, wshape, kw, chunks, dtype,
                                        halo_rows):
    import dask

    import xconvt.dask as xdask

    cupy = _require_gpu()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    b = rng.standard_normal(wshape[1] * kw.get("groups", 1)).astype(dtype)
    xd = _device_chunks(cupy, x, chunks)
    y = xdask.conv_transpose3d(xd, cupy.asarray(w), cupy.asarray(b), **kw,
                               algorithm="direct", halo_rows=halo_rows)
    assert isinstance(y._meta, cupy.ndarray)
    parts = dask.compute(*y.to_delayed().ravel(), scheduler=cuda_client)
    for part, idx in zip(parts, np.ndindex(y.numblocks)):
        assert type(part) is cupy.ndarray
        assert part.shape == tuple(c[i] for c, i in zip(y.chunks, idx))
    got = y.compute(scheduler=cuda_client)
    assert isinstance(got, cupy.ndarray) and got.shape == y.shape
    single = xconvt.conv_transpose3d(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b),
                                     **kw, algorithm="direct")
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert_close(got, single.get(), tol=tol, what="dask_cuda vs single-array call")
    assert_close(got, conv_transpose3d_ref(x, w, b, **kw), dtype, what="vs reference")


def test_one_worker_per_gpu(cuda_client):
    assert len(cuda_client.scheduler_info()["workers"]) == cuda_device_count()


def _reference_block(x, w, b, stride, padding, dilation, region):
    """The float64 reference of output ``region`` (a (lo, hi) per spatial
    axis) from the input rows it depends on, with no padding and a crop."""
    sl, offsets = [], []
    for ax, (lo, hi) in enumerate(region):
        k, s, p, d, n = w.shape[2 + ax], stride, padding, dilation, x.shape[2 + ax]
        i0 = max(0, (lo + p - d * (k - 1)) // s)
        i1 = min(n, (hi - 1 + p) // s + 1)
        sl.append(slice(i0, i1))
        offsets.append(lo + p - i0 * s)
    full = conv_transpose3d_ref(x[(slice(None), slice(None), *sl)], w, None, stride, 0,
                                0, 1, dilation)
    out = np.zeros(full.shape[:2] + tuple(hi - lo for lo, hi in region))
    src = tuple(slice(o, min(o + (hi - lo), f)) for o, (lo, hi), f
                in zip(offsets, region, full.shape[2:]))
    dst = tuple(slice(0, s.stop - s.start) for s in src)
    out[(slice(None), slice(None), *dst)] = full[(slice(None), slice(None), *src)]
    return out + b.reshape(1, -1, 1, 1, 1)


def test_spills_past_device_memory_limit():
    cupy = _require_gpu()
    from dask_cuda import LocalCUDACluster
    from distributed import Client, wait

    limit = 256 << 20
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 1, 256, 256, 256)).astype(np.float32)
    w = rng.standard_normal((1, 2, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    kw = dict(stride=2, padding=1, output_padding=1)
    with LocalCUDACluster(n_workers=1, device_memory_limit=limit,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
        xd = _device_chunks(cupy, x, (1, 1, 64, 64, 64))
        y = xconvt.conv_transpose3d(xd, cupy.asarray(w), cupy.asarray(b), **kw)
        assert y.nbytes == 1 << 30 and y.nbytes >= 4 * limit
        y = y.persist()
        wait(y)

        def where(dask_worker):
            data = dask_worker.data
            device = getattr(data, "device", {})
            spilled = getattr(getattr(data, "device_buffer", None), "slow", {})
            return len(device), sum(v.nbytes for v in device.values()), len(spilled)

        (_, dev_bytes, n_spilled), = client.run(where).values()
        assert n_spilled > 0, "nothing was spilled to host memory"
        assert dev_bytes <= limit
        rng = np.random.default_rng(2)
        for _ in range(4):
            idx = tuple(int(rng.integers(n)) for n in y.numblocks)
            region = [(sum(c[:i]), sum(c[:i]) + c[i])
                      for c, i in zip(y.chunks[2:], idx[2:])]
            got = y.blocks[idx].compute()
            want = _reference_block(x, w, b, 2, 1, 1, region)
            assert_close(got, want, "float32", what=f"block {idx}")
