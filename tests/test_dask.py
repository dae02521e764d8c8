"""``conv_transpose3d`` on Dask arrays (xconvt/dask.py) and the Zarr pipeline.

Every result is checked two ways: against the independent float64 reference
(tests/reference.py) and against the single-array call on the whole volume
with the same forced per-block algorithm (``algorithm="direct"``).  The
second comparison uses a relative L2 tolerance of 1e-13 on float64 data, not
bitwise equality: the CPU direct path picks its BLAS formulation from the
block's shape, so a block may sum in another order than the whole volume.

The layouts cover uneven chunks, chunks smaller than the halo (merged first),
single-chunk axes and trailing chunks that own no output; the schedulers are
the threaded one and a ``distributed.LocalCluster(n_workers=2,
processes=True)`` shared by the module.  Skipped without dask.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xconvt

from .helpers import assert_close
from .reference import conv_transpose3d_ref
from .strategies import configs, seeds

da = pytest.importorskip("dask.array")
xdask = pytest.importorskip("xconvt.dask")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@st.composite
def layouts(draw, n):
    """Chunks of one axis of size ``n``: one chunk, unit chunks or random cuts."""
    kind = draw(st.sampled_from(["single", "unit", "random"]))
    if kind == "single" or n == 1:
        return (n,)
    if kind == "unit":
        return (1,) * n
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), min_size=1, max_size=min(4, n - 1))))
    bounds = [0, *cuts, n]
    return tuple(b - a for a, b in zip(bounds, bounds[1:]))


@st.composite
def problems(draw, max_spatial=9):
    """A valid configuration with a chunk layout for every input axis."""
    cfg = draw(configs(max_spatial=max_spatial, batches=(None, 1, 2), max_channels=2))
    spatial = tuple(draw(layouts(n)) for n in cfg.in_size)
    lead = () if cfg.batch is None else (draw(layouts(cfg.batch)),)
    channels = draw(st.sampled_from([(cfg.in_channels,), (1,) * cfg.in_channels]))
    return cfg, lead + (channels,) + spatial


def _blocks(y, **compute):
    """Compute every block of ``y``; check each is a NumPy array of the
    chunk's shape, and return the assembled array."""
    import dask

    keys = y.to_delayed()
    parts = dask.compute(*keys.ravel(), **compute)
    for part, idx in zip(parts, np.ndindex(keys.shape)):
        want = tuple(c[i] for c, i in zip(y.chunks, idx))
        assert type(part) is np.ndarray, type(part)
        assert part.shape == want, (idx, part.shape, want)
        assert part.dtype == y.dtype
    out = np.empty(y.shape, y.dtype)
    for part, idx in zip(parts, np.ndindex(keys.shape)):
        sl = tuple(slice(sum(c[:i]), sum(c[:i]) + c[i]) for c, i in zip(y.chunks, idx))
        out[sl] = part
    return out


def _check(cfg, chunks, seed, halo_rows=None, **compute):
    x, w, b = cfg.arrays(seed, "float64")
    xd = da.from_array(x, chunks=chunks)
    if halo_rows is None:  # through the core function's hand-off
        y = xconvt.conv_transpose3d(xd, w, b, **cfg.kwargs, algorithm="direct")
    else:
        y = xdask.conv_transpose3d(xd, w, b, **cfg.kwargs, algorithm="direct",
                                   halo_rows=halo_rows)
    _check_tasks(y, xd)
    assert isinstance(y, da.Array)
    assert y.shape == cfg.output_shape
    got = _blocks(y, **compute)
    assert_close(got, cfg.reference(x, w, b), "float64", what="dask vs reference")
    single = xconvt.conv_transpose3d(x, w, b, **cfg.kwargs, algorithm="direct")
    assert_close(got, single, tol=1e-13, what="dask vs single-array call")
    return y


def _check_tasks(y, xd):
    """One task per output block, plus (halo_rows="slices") at most one halo
    export per input block; nothing else but the input, weight and bias."""
    graph = dict(y.__dask_graph__())
    names = {str(k[0] if isinstance(k, tuple) else k) for k in graph}
    conv = [k for k in graph if isinstance(k, tuple) and k[0].startswith("conv_transpose3d-")]
    exports = [k for k in conv if k[0].startswith("conv_transpose3d-halo-")]
    assert len(conv) - len(exports) == y.npartitions
    assert len(exports) <= xd.npartitions
    rest = {n for n in names if not n.startswith("conv_transpose3d-")}
    # getitem: the unbatched input's added axis and the result's removed one
    assert all(n.startswith(("xconvt-", "array-", "rechunk-", "getitem-", "original-array-"))
               for n in rest), rest


@settings(max_examples=40)
@given(problems(), seeds, st.sampled_from([None, "slices", "blocks"]))
def test_matches_single_array_threaded(problem, seed, halo_rows):
    cfg, chunks = problem
    y = _check(cfg, chunks, seed, halo_rows, scheduler="threads")
    # Output chunks: stride times the (merged) input chunks, channels one chunk.
    sp = 1 if cfg.batch is None else 2
    assert y.chunks[sp - 1] == (cfg.out_channels,)
    for ax in range(3):
        s = cfg.kwargs["stride"]
        s = s if isinstance(s, int) else s[ax]
        c = y.chunks[sp + ax]
        assert sum(c) == cfg.out_size[ax]
        assert all(v % s == 0 for v in c[:-1])


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # dashboard_address=":0": a free port (None still binds the scheduler's HTTP
    # server to 8787, and warns when another cluster holds it).
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


@settings(max_examples=6)
@given(problems(max_spatial=7), seeds, st.sampled_from(["slices", "blocks"]))
def test_matches_single_array_distributed(client, problem, seed, halo_rows):
    cfg, chunks = problem
    _check(cfg, chunks, seed, halo_rows, scheduler=client)


@pytest.mark.parametrize("halo_rows, tasks", [("slices", 27 + 27), ("blocks", 27)])
def test_one_task_per_output_block(halo_rows, tasks):
    # k3 s1 p1: halo (1, 1) on every axis, 3x3x3 blocks: every input block
    # exports halo rows, each output block is one task.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 9, 9, 9))
    w = rng.standard_normal((2, 3, 3, 3, 3))
    xd = da.from_array(x, chunks=(1, 2, 3, 3, 3))
    y = xdask.conv_transpose3d(xd, w, padding=1, halo_rows=halo_rows)
    graph = dict(y.__dask_graph__())
    assert len(graph) == tasks + xd.npartitions + 1  # + the input blocks and the weight
    assert_close(y.compute(scheduler="threads"), conv_transpose3d_ref(x, w, padding=1),
                 "float64", what="dask vs reference")


def test_halo_rows_error():
    xd = da.ones((1, 2, 4, 4, 4), chunks=2)
    with pytest.raises(ValueError, match="halo_rows must be 'slices' or 'blocks', got 'x'"):
        xdask.conv_transpose3d(xd, np.ones((2, 2, 3, 3, 3)), halo_rows="x")


@pytest.mark.parametrize("chunks, expect", [
    # (input chunks, (merged input chunks, output chunks, halo)), k3 s2 p1 op1
    ((4, 4, 4), ((4, 4, 4), (8, 8, 8), (0, 1))),
    ((12,), ((12,), (24,), (0, 0))),
    ((5, 1, 6), ((5, 1, 6), (10, 2, 12), (0, 1))),
])
def test_plan_chunks(chunks, expect):
    assert xdask.plan_chunks(chunks, 12, 3, 2, 1, 1, 24) == expect


def test_plan_chunks_merges():
    # k5 s1 d1 p0: halo (4, 0); chunks below 4 join the following ones.
    assert xdask.plan_chunks((1, 1, 1, 1, 2, 6), 12, 5, 1, 0, 1, 16) == (
        (4, 8), (4, 12), (4, 0))
    # k7 s1 p3: halo (3, 3).
    assert xdask.plan_chunks((7, 5), 12, 7, 1, 3, 1, 12) == ((7, 5), (7, 5), (3, 3))
    # k1 s1 p3 (output 6 of 12): the chunk starting at 6 would own no output.
    assert xdask.plan_chunks((6, 6), 12, 1, 1, 3, 1, 6) == ((12,), (6,), (0, 0))


def test_lazy_shape_chunks_and_shared_weight_key():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 12, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 64, 4, 4, 4)).astype(np.float32)  # 512 KiB
    b = rng.standard_normal(64).astype(np.float32)
    y = xconvt.conv_transpose3d(da.from_array(x, chunks=(1, 4, 4, 6, 12)), w, b,
                                stride=2, padding=1)
    assert y.shape == (2, 64, 24, 24, 24)
    assert y.chunks == ((1, 1), (64,), (8, 8, 8), (12, 12), (24,))
    graph = dict(y.__dask_graph__())
    assert sum(str(k).startswith("xconvt-weight-") for k in graph) == 1
    assert sum(str(k).startswith("xconvt-bias-") for k in graph) == 1
    # Twelve blocks, one copy of the weight (and of the input) in the graph.
    assert len(pickle.dumps(graph)) < x.nbytes + 1.5 * w.nbytes
    got = y.compute(scheduler="threads")
    assert got.shape == y.shape
    assert_close(got, xconvt.conv_transpose3d(x, w, b, stride=2, padding=1), tol=1e-6)


def test_dask_weight_and_unbatched_output_size():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 6, 7))
    w = rng.standard_normal((3, 2, 3, 2, 3))
    b = rng.standard_normal(2)
    xd = da.from_array(x, chunks=(3, 2, 4, 3))
    kw = dict(stride=(2, 1, 3), padding=(1, 0, 2), output_size=(10, 7, 18))
    y = xconvt.conv_transpose3d(xd, da.from_array(w, chunks=1), da.from_array(b, chunks=1),
                                **kw)
    want = xconvt.conv_transpose3d(x, w, b, **kw)
    assert y.shape == want.shape == (2, 10, 7, 18)
    assert_close(y.compute(scheduler="sync"), want, tol=1e-13)


def test_zero_batch():
    x = da.zeros((0, 2, 5, 5, 5), chunks=(1, 2, 2, 5, 3))
    w = np.ones((2, 3, 3, 3, 3))
    y = xconvt.conv_transpose3d(x, w, stride=2)
    assert y.shape == (0, 3, 11, 11, 11)
    assert y.compute(scheduler="sync").shape == y.shape


@pytest.mark.parametrize("kwargs", [
    dict(stride=0), dict(groups=3), dict(stride=2, output_padding=2),
    dict(padding=(1, 2)), dict(stride=1.5), dict(padding=9),
    dict(algorithm="nope"), dict(output_size=(1, 2, 3)),
])
def test_errors_match_the_core(kwargs):
    x = np.ones((1, 4, 5, 5, 5), np.float32)
    w = np.ones((4, 2, 3, 3, 3), np.float32)
    with pytest.raises((ValueError, TypeError)) as core:
        xconvt.conv_transpose3d(x, w, **kwargs)
    with pytest.raises(core.type) as lazy:
        xconvt.conv_transpose3d(da.from_array(x, chunks=2), w, **kwargs)
    assert str(lazy.value) == str(core.value)


def test_operand_errors():
    xd = da.ones((1, 2, 4, 4, 4), chunks=2, dtype=np.float32)
    w = np.ones((2, 2, 3, 3, 3), np.float32)
    with pytest.raises(TypeError, match="weight dtype float64"):
        xconvt.conv_transpose3d(xd, w.astype(np.float64))
    with pytest.raises(TypeError, match="weight must be a numpy.ndarray"):
        xconvt.conv_transpose3d(xd, w.tolist())
    with pytest.raises(TypeError, match="input must be a dask.array.Array"):
        xdask.conv_transpose3d(np.ones((1, 2, 4, 4, 4)), w)
    unknown = da.ones((2, 2, 4, 4, 4), chunks=2)[da.from_array(np.array([True, False]))]
    with pytest.raises(ValueError, match="unknown"):
        xconvt.conv_transpose3d(unknown, w.astype(unknown.dtype))


def test_precision_forwarding():
    xd = da.ones((1, 2, 4, 4, 4), chunks=2, dtype=np.float32)
    w = np.ones((2, 2, 3, 3, 3), np.float32)
    for precision in ("float32", "tf32"):  # tf32 runs float32 plans on the CPU
        y = xconvt.conv_transpose3d(xd, w, precision=precision)
        assert_close(y.compute(scheduler="sync"),
                     xconvt.conv_transpose3d(np.ones((1, 2, 4, 4, 4), np.float32), w),
                     tol=1e-6)
    with pytest.raises(ValueError, match="precision must be one of"):
        xdask.conv_transpose3d(xd, w, precision="fp8")


def test_zarr_round_trip_without_warnings(tmp_path):
    zarr = pytest.importorskip("zarr")
    from xconvt import pipeline

    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 20, 24, 28)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zin = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=x.shape,
                                chunks=(2, 8, 8, 10), dtype=x.dtype, zarr_format=3)
        zin[...] = x
        xd, added = pipeline.read_zarr(str(tmp_path / "in.zarr"))
        assert added == 1 and xd.chunks[2:] == ((8, 8, 4), (8, 8, 8), (10, 10, 8))
        pipeline.run(xd, w, None, dict(stride=2, padding=1, output_padding=1),
                     str(tmp_path / "out.zarr"), added=added, progress=False)
        zout = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
        assert zout.metadata.zarr_format == 3
        assert zout.chunks == (3, 16, 16, 20)
        got = zout[...]
    assert_close(got, xconvt.conv_transpose3d(x, w, stride=2, padding=1, output_padding=1),
                 tol=1e-6)


def test_write_zarr_rechunks_unaligned(tmp_path):
    pytest.importorskip("zarr")
    from xconvt import pipeline

    y = da.ones((10, 12), chunks=((4, 6), (5, 7)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z, store = pipeline.write_zarr(y, str(tmp_path / "o.zarr"))
        store.compute(scheduler="sync")
    assert z.chunks == (4, 5)
    assert np.array_equal(z[...], np.ones((10, 12)))


def test_pipeline_cli(tmp_path):
    pytest.importorskip("zarr")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "xconvt.pipeline", "--size", "24",
         "--chunk", "8", "--check", "--workdir", str(tmp_path), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check  max" in proc.stdout
    assert "shape (48, 48, 48) float32, Zarr v3 chunks (16, 16, 16)" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.parametrize("halo_rows", ["slices", "blocks"])
@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1), dict(stride=2)])
def test_blockwise_input_and_following_map_blocks(halo_rows, kw):
    import dask

    # An input made by a Blockwise layer (not persisted) and a map_blocks on
    # the result: Dask's layer fusion must keep the input blocks the
    # neighbours take, and fuse the following map_blocks into the block's task.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 8, 8, 8))
    w = rng.standard_normal((2, 3, 3, 3, 3))
    xd = da.from_array(x, chunks=(1, 2, 4, 4, 4)).map_blocks(np.negative)
    y = xdask.conv_transpose3d(xd, w, halo_rows=halo_rows, **kw)
    z = y.map_blocks(np.square)
    want = conv_transpose3d_ref(-x, w, **kw)
    assert_close(y.compute(scheduler="sync"), want, "float64", what="dask vs reference")
    assert_close(z.compute(scheduler="threads"), want**2, "float64", what="squared")
    (opt,) = dask.optimize(z)
    blocks = [k for k in dict(opt.__dask_graph__()) if isinstance(k, tuple)
              and str(k[0]).startswith(("square", "conv_transpose3d-"))
              and "-halo-" not in str(k[0])]
    assert len(blocks) == y.npartitions, blocks  # one task a block, no alias
