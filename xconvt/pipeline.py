"""Zarr in, transposed convolution on Dask, Zarr out: ``python -m xconvt.pipeline``.

Reads a Zarr v3 volume (3-D ``(D, H, W)``, 4-D ``(C, D, H, W)`` or 5-D
``(N, C, D, H, W)``), transposed-convolves it block by block with
:func:`xconvt.dask.conv_transpose3d` and writes a Zarr v3 array whose
regular chunks are the output's Dask chunks (``stride`` times the input
chunks), so that every Dask chunk covers whole Zarr chunks and blocks are
written without locks.  Without ``--input`` it first writes a default volume
(smooth blobs plus noise, ``--size`` cubed, one channel) and runs a depthwise
trilinear 2x upsampling (kernel 4, stride 2, padding 1), the transposed
convolution that upsamples imaging volumes.

Examples
--------
::

    python -m xconvt.pipeline                        # 64^3 default volume -> 128^3
    python -m xconvt.pipeline --size 256 --workers 2 # a LocalCluster of 2 processes
    python -m xconvt.pipeline --input in.zarr --output out.zarr --kernel random \
        --out-channels 8 --stride 2 --padding 0 --kernel-size 2
    python -m xconvt.pipeline --gpu                  # CuPy chunks on LocalCUDACluster
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time

import numpy as np

__all__ = ["default_volume", "main", "output_zarr_chunks", "read_zarr", "run",
           "trilinear_weight", "write_zarr"]


def default_volume(size, chunk, dtype="float32", seed=0):
    """A ``(1, 1, size, size, size)`` Dask volume (chunks of ``chunk``): Gaussian blobs plus noise.

    Generated block by block (never whole in memory), reproducible from
    ``seed``.
    """
    import dask.array as da

    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, size, (8, 3))
    widths = rng.uniform(size / 16, size / 6, 8)

    def blob_block(block_info=None):
        (d0, d1), (h0, h1), (w0, w1) = block_info[None]["array-location"][2:]
        z, y, x = np.ogrid[d0:d1, h0:h1, w0:w1]
        out = np.zeros((d1 - d0, h1 - h0, w1 - w0))
        for (cz, cy, cx), s in zip(centers, widths):
            out += np.exp(-((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
        noise = np.random.default_rng([seed, d0, h0, w0]).standard_normal(out.shape)
        return (out + 0.05 * noise).astype(dtype)[None, None]

    chunks = ((1,), (1,)) + (_regular(size, chunk),) * 3
    return da.map_blocks(blob_block, chunks=chunks, dtype=dtype,
                         meta=np.empty((0,) * 5, dtype))


def _regular(n, c):
    return (c,) * (n // c) + ((n % c,) if n % c else ())


def trilinear_weight(channels, dtype="float32"):
    """Depthwise ``(C, 1, 4, 4, 4)`` weight of trilinear 2x upsampling
    (use with ``stride=2, padding=1, groups=C``)."""
    t = np.array([0.25, 0.75, 0.75, 0.25])
    k = t[:, None, None] * t[None, :, None] * t[None, None, :]
    return np.broadcast_to(k, (channels, 1, 4, 4, 4)).astype(dtype)


def read_zarr(path):
    """A Zarr v3 array at ``path`` as a 5-D Dask array with its Zarr chunks,
    and the number of leading axes that were added (0, 1 or 2)."""
    import dask.array as da
    import zarr

    z = zarr.open_array(path, mode="r")
    if z.ndim not in (3, 4, 5):
        msg = f"the Zarr array at {path} must be 3-, 4- or 5-D, got shape {z.shape}"
        raise ValueError(msg)
    x = da.from_zarr(z)
    added = 5 - z.ndim
    return x[(None,) * added], added


def output_zarr_chunks(chunks):
    """The regular Zarr chunk shape for Dask ``chunks``: the first chunk per axis.

    The Dask chunks cover whole Zarr chunks when every chunk but the last is
    a multiple of it; otherwise the caller rechunks to it.
    """
    return tuple(c[0] for c in chunks)


def _aligned(chunks, zchunks):
    return all(all(c % z == 0 for c in cs[:-1]) for cs, z in zip(chunks, zchunks))


def write_zarr(y, path, zchunks=None):
    """Create a Zarr v3 array at ``path`` for ``y`` and return ``(array, store)``
    where ``store`` is the lazy write (``y`` rechunked to the Zarr chunks
    if its chunks do not cover whole Zarr chunks)."""
    import dask.array as da
    import zarr

    zchunks = zchunks or output_zarr_chunks(y.chunks)
    if not _aligned(y.chunks, zchunks):
        y = y.rechunk(zchunks)
    z = zarr.create_array(store=path, shape=y.shape, chunks=zchunks, dtype=y.dtype,
                          zarr_format=3, overwrite=True)
    return z, da.store(y, z, lock=False, compute=False)


def _dropped(added, out_channels):
    """Leading output axes to drop: those added to the input, except a channel
    axis that now holds several channels."""
    return 1 if added == 2 and out_channels > 1 else added


def _to_host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a


def run(x, weight, bias, conv, output, *, added=0, client=None, progress=True,
        to_host=None):
    """Build ``conv(x, weight, bias)``, write it to Zarr at ``output``, compute.

    ``added`` leading axes of length 1 are dropped before the write (see
    :func:`read_zarr`); ``to_host`` maps device chunks to NumPy before the
    write (CuPy chunks).  Returns ``(y, zarr_array, seconds)``.
    """
    from . import dask as xdask

    y = xdask.conv_transpose3d(x, weight, bias, **conv)
    ystore = y[(0,) * _dropped(added, y.shape[1])]
    if to_host is not None:
        ystore = ystore.map_blocks(to_host, meta=np.empty((0,) * ystore.ndim, y.dtype))
    z, store = write_zarr(ystore, output)
    t0 = time.perf_counter()
    if client is not None:
        fut = client.compute(store)
        if progress:
            from distributed import progress as dprogress

            dprogress(fut)
        fut.result()
    else:
        from dask.diagnostics import ProgressBar

        with ProgressBar() if progress else contextlib.nullcontext():
            store.compute(scheduler="threads")
    return y, z, time.perf_counter() - t0


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m xconvt.pipeline",
        description="Read a Zarr v3 volume, transposed-convolve it on Dask "
                    "(xconvt.dask), write Zarr v3 with regular chunks.",
    )
    p.add_argument("--input", help="Zarr v3 array (3-, 4- or 5-D); default: generate "
                   "a volume of --size^3 into the work directory")
    p.add_argument("--output", help="output Zarr path (default: out.zarr in the work dir)")
    p.add_argument("--workdir", help="where the default volume and output go "
                   "(default: a temporary directory, removed at the end)")
    p.add_argument("--size", type=int, default=64, help="edge of the default volume (64)")
    p.add_argument("--chunk", type=int, default=32,
                   help="chunk edge of the default volume's Zarr array (32)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--kernel", default="trilinear", choices=["trilinear", "random"],
                   help="trilinear: depthwise 2x upsampling (k4 s2 p1); random: "
                        "a dense random weight with --kernel-size/--stride/--padding")
    p.add_argument("--kernel-size", type=int, default=2)
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--padding", type=int, default=0)
    p.add_argument("--out-channels", type=int, default=1, help="for --kernel random")
    p.add_argument("--algorithm", default="auto")
    p.add_argument("--workers", type=int, default=0,
                   help="0: Dask's threaded scheduler (default); N: a distributed "
                        "LocalCluster of N single-threaded processes")
    p.add_argument("--gpu", action="store_true",
                   help="CuPy chunks on dask_cuda.LocalCUDACluster (one worker per GPU)")
    p.add_argument("--device-memory-limit", default=None,
                   help="with --gpu: spill device memory past this (e.g. 8GB)")
    p.add_argument("--check", action="store_true",
                   help="compare the output with the single-array call (small volumes)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None):
    """The command line; returns the exit status."""
    args = _parser().parse_args(argv)
    import dask.array as da
    import zarr

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="xconvt-pipeline-"))
        if args.input is None:
            src = os.path.join(workdir, "input.zarr")
            vol = default_volume(args.size, args.chunk, args.dtype)[0, 0]
            z_in = zarr.create_array(store=src, shape=vol.shape, chunks=vol.chunksize,
                                     dtype=vol.dtype, zarr_format=3, overwrite=True)
            da.store(vol, z_in, lock=False)
            print(f"wrote the default volume {vol.shape} {vol.dtype} to {src}")
        else:
            src = args.input
        x, added = read_zarr(src)
        channels = x.shape[1]
        dtype = np.dtype(x.dtype)
        if args.kernel == "trilinear":
            w = trilinear_weight(channels, dtype)
            conv = dict(stride=2, padding=1, groups=channels, algorithm=args.algorithm)
            what = f"depthwise trilinear 2x upsampling (k4 s2 p1, groups={channels})"
        else:
            rng = np.random.default_rng(1)
            k = args.kernel_size
            w = (rng.standard_normal((channels, args.out_channels, k, k, k))
                 / math.sqrt(channels * k ** 3)).astype(dtype)
            conv = dict(stride=args.stride, padding=args.padding, algorithm=args.algorithm)
            what = (f"random {channels}->{args.out_channels} channels, k{k} "
                    f"s{args.stride} p{args.padding}")
        output = args.output or os.path.join(workdir, "out.zarr")

        client = None
        to_host = None
        if args.gpu:
            import cupy
            from dask_cuda import LocalCUDACluster
            from distributed import Client

            limit = {} if args.device_memory_limit is None else dict(
                device_memory_limit=args.device_memory_limit)
            cluster = stack.enter_context(LocalCUDACluster(dashboard_address=":0", **limit))
            client = stack.enter_context(Client(cluster))
            x = x.map_blocks(cupy.asarray, meta=cupy.empty((0,) * 5, dtype))
            w = cupy.asarray(w)
            to_host = _to_host
            where = f"dask_cuda.LocalCUDACluster ({len(cluster.workers)} GPU workers)"
        elif args.workers > 0:
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True,
                dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
            where = f"distributed.LocalCluster ({args.workers} processes x 1 thread)"
        else:
            where = "Dask's threaded scheduler"

        print(f"input  {src}: shape {x.shape[added:]} {dtype}, chunks {x.chunksize[added:]}")
        print(f"op     {what}, algorithm={args.algorithm}, on {where}")
        y, z, secs = run(x, w, None, conv, output, added=added, client=client,
                         progress=not args.no_progress, to_host=to_host)
        nbytes = math.prod(y.shape) * dtype.itemsize
        print(f"output {output}: shape {z.shape} {z.dtype}, Zarr v3 chunks "
              f"{z.chunks}, {y.npartitions} Dask blocks")
        print(f"time   {secs:.2f} s, {nbytes / 2**20:.1f} MiB of output, "
              f"{nbytes / secs / 1e9:.3f} GB/s (read, convolve, write)")
        if args.check:
            from . import conv_transpose3d

            xs = _to_host(x.compute(scheduler="sync"))
            ref = conv_transpose3d(xs, _to_host(w), None, **conv)
            got = zarr.open_array(output, mode="r")[...]
            err = float(np.max(np.abs(got - ref[(0,) * _dropped(added, ref.shape[1])])))
            print(f"check  max |zarr - single-array call| = {err:.3g}")
            if not err <= 1e-4 * max(1.0, float(np.max(np.abs(ref)))):
                print("check  FAILED", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
