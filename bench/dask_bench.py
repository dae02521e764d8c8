"""``python -m bench dask``: xconvt on Dask, throughput and parallel efficiency.

CPU (``--device cpu``): the chunked transposed convolution on a
``distributed.LocalCluster`` of 1 and of 2 single-threaded worker processes
(each pinned to its own CPU with ``--pin``, so the NumPy path's own helper
threads do not spread one worker over both cores), on a volume with at least
1 GiB of output.  Throughput is output bytes per second of wall time for
computing every output block (the blocks are reduced to one element each, so
nothing travels back but the timing); parallel efficiency is
``T(1 worker) / (2 * T(2 workers))``.  The input is generated on the workers
and persisted first; with ``--worker-saturation inf`` (the default) the
scheduler hands its blocks to the workers in equal contiguous groups, so that
each worker owns the same share of the work (each output block runs where its
input block is).  The halo modes of ``--halo-rows`` and the worker counts
are timed alternately; one more run of each under distributed's task stream
splits its wall time into computing and receiving per worker (the rest is
scheduling, graph submission and idle time).  The single-array call on the
same volume in this process (all cores) is timed beside it.

GPU (``--device gpu``): the single-array call on the whole CuPy volume
(timed with CUDA events) against the chunked run on a
``dask_cuda.LocalCUDACluster`` of one worker per GPU (``--gpus``) on the same
volume, generated on the workers and persisted there first (wall time to
every block's result); and the same blocks computed in this process by the
synchronous scheduler (the decomposition's GPU work without the workers).

Every run checks sampled output blocks against the single-array call.
Results: a table on stdout and ``dask_<device>.json`` / ``.txt`` under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["CPU_CASES", "GPU_CASES", "main"]

DEFAULT_OUT = Path(__file__).resolve().parent / "out"

# name: (input shape, weight shape, keyword arguments, input chunk edge)
CPU_CASES = {
    # U-Net upsampling: 1 GiB of float32 output, memory-bound (one GEMM of depth 8).
    "unet_k2s2": ((1, 8, 128, 128, 128), (8, 16, 2, 2, 2), dict(stride=2), 32),
    # V-Net upsampling: 1 GiB of output, 29 GFLOP.
    "vnet_k3s2": ((1, 16, 128, 128, 128), (16, 16, 3, 3, 3),
                  dict(stride=2, padding=1, output_padding=1), 32),
}
GPU_CASES = {
    # 464 GFLOP, 4 GiB of output: compute-bound blocks of about 3 ms.
    "vnet_k3s2_c64": ((1, 64, 128, 128, 128), (64, 64, 3, 3, 3),
                      dict(stride=2, padding=1, output_padding=1), 64),
    # The same layer 8x larger (32 GiB of output, blocks of ~12 ms on an H200):
    # the per-task overhead (~1-1.5 ms a task in distributed, ~6 tasks a block)
    # against blocks that each take as long as the whole small case.
    "vnet_k3s2_c64_big": ((1, 64, 256, 256, 256), (64, 64, 3, 3, 3),
                          dict(stride=2, padding=1, output_padding=1), 128),
    # 2 GiB of output, memory-bound: the per-task overhead shows here.
    "unet_k2s2_c32": ((1, 32, 128, 128, 128), (32, 32, 2, 2, 2), dict(stride=2), 64),
    # One channel, 4 GiB of output (imaging upsampling).
    "imaging_k5s2": ((1, 1, 512, 512, 512), (1, 1, 5, 5, 5),
                     dict(stride=2, padding=2, output_padding=1), 256),
}


def _corner(block):
    """One element of a block (a copy, so the block itself is freed)."""
    return block[:1, :1, :1, :1, :1].copy()


def _random_block(seed, dtype, xp_name, block_info=None):
    """Seeded standard-normal data for one input block (NumPy or CuPy)."""
    shape = block_info[None]["chunk-shape"]
    loc = tuple(lo for lo, _ in block_info[None]["array-location"])
    a = np.random.default_rng([seed, *loc]).standard_normal(shape, np.float32)
    a = a.astype(dtype, copy=False)
    if xp_name == "cupy":
        import cupy

        return cupy.asarray(a)
    return a


def _volume(shape, chunk, dtype, xp_name, seed=0):
    """A lazy seeded volume, generated block by block where it is computed."""
    import dask.array as da

    chunks = ((1,) * shape[0], (shape[1],)) + tuple(
        (chunk,) * (n // chunk) + ((n % chunk,) if n % chunk else ()) for n in shape[2:])
    if xp_name == "cupy":
        import cupy

        meta = cupy.empty((0,) * 5, dtype)
    else:
        meta = np.empty((0,) * 5, dtype)
    return da.map_blocks(_random_block, seed, dtype, xp_name, chunks=chunks, dtype=dtype,
                         meta=meta)


def _weight(shape, dtype, seed=1):
    fan = shape[0] * math.prod(shape[2:])
    return (np.random.default_rng(seed).standard_normal(shape)
            / math.sqrt(fan)).astype(dtype)


def _stats(times):
    return dict(median=statistics.median(times), min=min(times), max=max(times),
                runs=len(times), all=times)


def _time_wall(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _sample_check(y, single, n=3, seed=0, rows=None, **compute):
    """Max relative error of ``n`` sampled blocks of ``y`` against ``single``
    (with ``rows``, only each block's first and last ``rows`` depth rows, so
    that large GPU blocks need not travel to the client whole)."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(n):
        idx = tuple(int(rng.integers(len(c))) for c in y.chunks)
        sl = [slice(sum(c[:i]), sum(c[:i]) + c[i]) for c, i in zip(y.chunks, idx)]
        parts = [(slice(None), sl[2])]
        if rows is not None and y.chunks[2][idx[2]] > 2 * rows:
            parts = [(slice(0, rows), slice(sl[2].start, sl[2].start + rows)),
                     (slice(-rows, None), slice(sl[2].stop - rows, sl[2].stop))]
        for local, glob in parts:
            got = y.blocks[idx][:, :, local].compute(**compute)
            want = single[(sl[0], sl[1], glob, sl[3], sl[4])]
            scale = float(abs(want).max()) or 1.0
            worst = max(worst, float(abs(got - want).max()) / scale)
    return worst


def _pin_process(cpu):
    """Pin every thread of this process (and those it starts later) to ``cpu``."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), {cpu})


def _pin_workers(client):
    """Pin each worker process to its own CPU (round robin over this process's)."""
    cpus = sorted(os.sched_getaffinity(0))
    for i, addr in enumerate(sorted(client.scheduler_info()["workers"])):
        client.run(_pin_process, cpus[i % len(cpus)], workers=[addr])


def _wait_for_load(limit, patience=600.0):
    """Wait (up to ``patience`` s) until the 1-minute load average is below
    ``limit``; return the load average when measuring starts."""
    t0 = time.monotonic()
    while os.getloadavg()[0] >= limit and time.monotonic() - t0 < patience:
        time.sleep(5)
    return os.getloadavg()


# ----------------------------------------------------------------------------- CPU
def run_cpu(name, args):
    import dask
    from distributed import Client, LocalCluster, wait

    import xconvt
    import xconvt.dask as xdask

    shape, wshape, kw, chunk = CPU_CASES[name]
    chunk = args.chunk or chunk
    dtype = np.dtype(args.dtype)
    w = _weight(wshape, dtype)
    xl = _volume(shape, chunk, dtype, "numpy")
    x_full = xl.compute(scheduler="threads")
    out_shape = xconvt.output_shape(shape, wshape, **kw)
    out_bytes = math.prod(out_shape) * dtype.itemsize
    single_out = None

    def single():
        nonlocal single_out
        single_out = xconvt.conv_transpose3d(x_full, w, algorithm=args.algorithm, **kw)

    rec = dict(case=name, device="cpu", input=shape, weight=wshape, kwargs=kw,
               chunk=chunk, dtype=dtype.name, algorithm=args.algorithm,
               out_bytes=out_bytes)
    # For reference, three runs each: the single-array call and the threaded scheduler.
    rec["single"] = _stats(_time_wall(single, min(3, args.repeat)))
    y_threads = xdask.conv_transpose3d(xl.persist(scheduler="threads"), w,
                                       algorithm=args.algorithm, **kw)
    rec["blocks"] = y_threads.npartitions
    rec["threads"] = _stats(_time_wall(
        lambda: dask.compute(y_threads.map_blocks(_corner, chunks=(1,) * 5),
                             scheduler="threads"), min(3, args.repeat)))
    # One cluster per worker count, all started first; their runs alternate
    # (1, 2, 1, 2, ...; per halo mode) so that all see the same load on a
    # shared machine.
    with contextlib.ExitStack() as stack:
        runs = {}
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        if args.worker_malloc == "reuse":
            # distributed's MALLOC_TRIM_THRESHOLD_=65536 turns off glibc's
            # dynamic mmap threshold: every 16 MiB block is a fresh mapping
            # whose pages fault in again (13 ms a unet_k2s2 block against 5).
            environ.update(MALLOC_TRIM_THRESHOLD_=2**32, MALLOC_MMAP_THRESHOLD_=2**30)
        rec["worker_environ"] = environ
        rec["worker_saturation"] = args.worker_saturation
        for n in args.workers:
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                                  "distributed.scheduler.worker-saturation":
                                      args.worker_saturation}):
                cluster = stack.enter_context(LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True,
                    dashboard_address=":0"))
            client = stack.enter_context(Client(cluster, set_as_default=False))
            if args.pin:
                _pin_workers(client)
            x = client.persist(xl)
            with client.as_current():
                wait(x)
            for mode in args.halo_rows:
                y = xdask.conv_transpose3d(x, w, algorithm=args.algorithm, halo_rows=mode,
                                           **kw)
                rec[f"tasks_{mode}"] = len(y.__dask_graph__()) - len(x.__dask_graph__())
                corners = y.map_blocks(_corner, chunks=(1,) * 5)
                client.compute(corners).result()  # warm-up
                runs[_key(n, mode)] = (client, corners, [])
                rec[f"{_key(n, mode)}_check"] = _sample_check(y, single_out,
                                                              scheduler=client)
        load = _wait_for_load(args.max_load)
        for _ in range(args.repeat):
            for key, (client, corners, times) in runs.items():
                t0 = time.perf_counter()
                client.compute(corners).result()
                times.append(time.perf_counter() - t0)
        for key, (client, corners, times) in runs.items():
            rec[key] = _stats(times)
            rec[f"{key}_busy"] = _busy(client, corners)
        rec["loadavg_before"], rec["loadavg_after"] = load, os.getloadavg()
    _derive(rec, args.workers, args.halo_rows)
    return rec


def _key(n, mode):
    """The record key of a worker count and halo mode (the default mode keeps
    the earlier name ``workers<n>``)."""
    return f"workers{n}" if mode == "slices" else f"workers{n}_{mode}"


def _busy(client, corners):
    """One more run under distributed's task stream: wall time, and per worker
    the seconds spent computing tasks and receiving data (where the rest of
    the wall time goes: scheduling, waiting for data, event-loop work)."""
    from distributed import get_task_stream

    with get_task_stream(client=client) as ts:
        t0 = time.perf_counter()
        client.compute(corners).result()
        wall = time.perf_counter() - t0
    compute, transfer, tasks = {}, {}, 0
    for t in ts.data:
        for ss in t["startstops"]:
            d = ss["stop"] - ss["start"]
            if ss["action"] == "compute":
                compute[t["worker"]] = compute.get(t["worker"], 0.0) + d
                tasks += 1
            elif ss["action"] == "transfer":
                transfer[t["worker"]] = transfer.get(t["worker"], 0.0) + d
    return dict(wall=wall, tasks=tasks, compute=sorted(compute.values()),
                transfer=sorted(transfer.values()))


def _derive(rec, workers, modes=("slices",)):
    gb = rec["out_bytes"] / 1e9
    keys = ["single", "threads"] + [_key(n, m) for n in workers for m in modes]
    for key in keys:
        if key in rec:
            rec[key]["gbps"] = gb / rec[key]["median"]
    for m in modes:
        one = _key(1, m)
        if one not in rec:
            continue
        t1 = rec[one]["median"]
        sfx = "" if m == "slices" else f"_{m}"
        for n in workers:
            if n > 1:
                tn = rec[_key(n, m)]["median"]
                rec[f"efficiency{n}{sfx}"] = t1 / (n * tn)
                # Spread: the efficiency of each pair of consecutive runs.
                pairs = [a / (n * b) for a, b in zip(rec[one]["all"],
                                                     rec[_key(n, m)]["all"])]
                rec[f"efficiency{n}{sfx}_pairs"] = pairs
                rec[f"efficiency{n}{sfx}_range"] = (min(pairs), max(pairs))


# ----------------------------------------------------------------------------- GPU
def run_gpu(name, args):
    import cupy
    import dask
    import dask.array as da
    from dask_cuda import LocalCUDACluster
    from distributed import Client, wait

    import xconvt
    import xconvt.dask as xdask

    shape, wshape, kw, chunk = GPU_CASES[name]
    chunk = args.chunk or chunk
    dtype = np.dtype(args.dtype)
    w = _weight(wshape, dtype)
    wd = cupy.asarray(w)
    out_shape = xconvt.output_shape(shape, wshape, **kw)
    out_bytes = math.prod(out_shape) * dtype.itemsize
    rec = dict(case=name, device="gpu", input=shape, weight=wshape, kwargs=kw,
               chunk=chunk, dtype=dtype.name, algorithm=args.algorithm,
               out_bytes=out_bytes, gpu=cupy.cuda.runtime.getDeviceProperties(0)[
                   "name"].decode())
    visible = ",".join(str(i) for i in range(args.gpus))
    rec["worker_saturation"] = args.worker_saturation
    with dask.config.set({"distributed.scheduler.worker-saturation":
                          args.worker_saturation}), \
            LocalCUDACluster(CUDA_VISIBLE_DEVICES=visible,
                             dashboard_address=":0") as cluster, Client(cluster) as client:
        x = _volume(shape, chunk, dtype, "cupy").persist()
        wait(x)
        x_full = x.compute()  # the same volume, on this process's GPU 0
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        for _ in range(2):
            single_out = xconvt.conv_transpose3d(x_full, wd, algorithm=args.algorithm, **kw)
        times = []
        for _ in range(args.repeat):
            start.record()
            single_out = xconvt.conv_transpose3d(x_full, wd, algorithm=args.algorithm, **kw)
            stop.record()
            stop.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
        rec["single"] = _stats(times)
        key = f"gpus{args.gpus}"
        runs = {}
        for mode in args.halo_rows:
            y = xdask.conv_transpose3d(x, wd, algorithm=args.algorithm, halo_rows=mode, **kw)
            rec["blocks"] = y.npartitions
            rec[f"tasks_{mode}"] = len(y.__dask_graph__()) - len(x.__dask_graph__())
            corners = y.map_blocks(_corner, chunks=(1,) * 5)
            client.compute(corners).result()  # warm-up
            runs[mode] = (corners, [])
            rec[f"{key}_{mode}_check"] = _sample_check(y, single_out, rows=8)
        # The modes alternate run by run.
        for _ in range(args.repeat):
            for mode, (corners, times) in runs.items():
                t0 = time.perf_counter()
                client.compute(corners).result()
                times.append(time.perf_counter() - t0)
        for mode, (corners, times) in runs.items():
            rec[f"{key}_{mode}"] = _stats(times)
        # The same blocks in this process on the synchronous scheduler (no
        # workers, no transfers): the GPU work of the decomposition itself.
        xs = da.from_array(x_full, chunks=x.chunks, asarray=False, name=False).map_blocks(
            cupy.ascontiguousarray).persist(scheduler="sync")  # as the workers' blocks
        ys = xdask.conv_transpose3d(xs, wd, algorithm=args.algorithm, **kw)
        cs = ys.map_blocks(_corner, chunks=(1,) * 5)

        def local():
            dask.compute(cs, scheduler="sync")
            cupy.cuda.get_current_stream().synchronize()

        rec["sync_in_process"] = _stats(_time_wall(local, args.repeat))
    gb = out_bytes / 1e9
    rec["single"]["gbps"] = gb / rec["single"]["median"]
    rec["sync_in_process"]["gbps"] = gb / rec["sync_in_process"]["median"]
    for mode in args.halo_rows:
        r = rec[f"{key}_{mode}"]
        r["gbps"] = gb / r["median"]
        rec[f"chunked_over_single_{mode}"] = r["gbps"] / rec["single"]["gbps"]
        if mode == "slices":  # the earlier names
            rec[key], rec[f"{key}_check"] = r, rec[f"{key}_{mode}_check"]
            rec["chunked_over_single"] = rec[f"chunked_over_single_{mode}"]
    return rec


# ----------------------------------------------------------------------------- report
def _fmt_stats(s):
    return (f"{s['median']:.3f} s [{s['min']:.3f}-{s['max']:.3f}] "
            f"{s['gbps']:.2f} GB/s")


def _table(records, args):
    lines = []
    for r in records:
        head = (f"{r['case']}: {r['input']} * {r['weight']} {r['kwargs']} -> "
                f"{r['out_bytes'] / 2**30:.2f} GiB of {r['dtype']} output, input chunks "
                f"{r['chunk']}^3, {r['blocks']} blocks, algorithm={r['algorithm']}")
        lines.append(head)
        if r["device"] == "cpu":
            lines.append(f"  single-array call (in process, all cores): "
                         f"{_fmt_stats(r['single'])}")
            lines.append(f"  dask threaded scheduler:                   "
                         f"{_fmt_stats(r['threads'])}")
            for m in args.halo_rows:
                for n in args.workers:
                    k = _key(n, m)
                    b = r[f"{k}_busy"]
                    lines.append(f"  LocalCluster {n} worker(s) x 1 thread, halo_rows={m} "
                                 f"({r[f'tasks_{m}']} tasks): {_fmt_stats(r[k])}  (sampled "
                                 f"blocks max rel err {r[f'{k}_check']:.1e}); one more run "
                                 f"{b['wall']:.3f} s: computing "
                                 f"{', '.join(f'{v:.3f}' for v in b['compute'])} s, receiving "
                                 f"{', '.join(f'{v:.3f}' for v in b['transfer']) or '0'} s")
            lines.append(f"  worker environment {r['worker_environ']}, worker-saturation "
                         f"{r['worker_saturation']}")
            lines.append(f"  1-minute load average {r['loadavg_before'][0]:.2f} before, "
                         f"{r['loadavg_after'][0]:.2f} after the worker runs")
            for m in args.halo_rows:
                sfx = "" if m == "slices" else f"_{m}"
                for n in args.workers:
                    if n > 1 and f"efficiency{n}{sfx}" in r:
                        lo, hi = r[f"efficiency{n}{sfx}_range"]
                        pairs = r[f"efficiency{n}{sfx}_pairs"]
                        lines.append(f"  parallel efficiency {n} workers, halo_rows={m}: "
                                     f"{100 * r[f'efficiency{n}{sfx}']:.0f}% of medians; "
                                     f"median of paired runs "
                                     f"{100 * statistics.median(pairs):.0f}% "
                                     f"(range {100 * lo:.0f}-{100 * hi:.0f}%)")
        else:
            key = f"gpus{args.gpus}"
            lines.append(f"  single-array call ({r['gpu']}): {_fmt_stats(r['single'])}")
            lines.append(f"  the same blocks in process, sync scheduler: "
                         f"{_fmt_stats(r['sync_in_process'])}")
            for m in args.halo_rows:
                lines.append(f"  LocalCUDACluster, {args.gpus} GPU worker(s), halo_rows={m} "
                             f"({r[f'tasks_{m}']} tasks): {_fmt_stats(r[f'{key}_{m}'])}  "
                             f"(sampled blocks max rel err {r[f'{key}_{m}_check']:.1e}); "
                             f"chunked / single-array throughput "
                             f"{100 * r[f'chunked_over_single_{m}']:.0f}%")
    return "\n".join(lines)


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m bench dask",
        description="xconvt on Dask: output throughput and parallel efficiency (CPU: "
                    "LocalCluster of 1 and 2 workers; GPU: LocalCUDACluster against "
                    "the single-array call).",
    )
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--cases", default=None,
                   help="comma-separated cases (cpu: %s; gpu: %s)" % (
                       ", ".join(CPU_CASES), ", ".join(GPU_CASES)))
    p.add_argument("--workers", default="1,2", help="cpu: worker counts (default 1,2)")
    p.add_argument("--gpus", type=int, default=1, help="gpu: workers, one per GPU (1)")
    p.add_argument("--chunk", type=int, default=None, help="input chunk edge (per case)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--algorithm", default="direct",
                   help="per-block algorithm (default direct, as the single-array call)")
    p.add_argument("--halo-rows", default="slices",
                   help="comma-separated halo modes of xconvt.dask.conv_transpose3d "
                        "(slices, blocks), timed alternately (default slices)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="cpu: pin each worker process to its own CPU (default on)")
    p.add_argument("--worker-malloc", choices=("dask", "reuse"), default="dask",
                   help="cpu: worker allocator settings: dask's (MALLOC_TRIM_THRESHOLD_="
                        "65536, the default) or reuse (large trim and mmap thresholds, "
                        "so freed block buffers are reused without page faults)")
    p.add_argument("--worker-saturation", type=float, default=float("inf"),
                   help="distributed.scheduler.worker-saturation of the clusters (default "
                        "inf: the input blocks are assigned to the workers in equal "
                        "contiguous groups when they are generated; with distributed's "
                        "1.1 they go to whichever worker is free first, 45 and 19 of 64 "
                        "blocks were measured on a loaded 2-core machine, and each "
                        "output block is computed where its input block is)")
    p.add_argument("--max-load", type=float, default=float("inf"),
                   help="cpu: before timing a worker count, wait (up to 10 min) until "
                        "the 1-minute load average is below this")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    args.workers = [int(v) for v in args.workers.split(",")]
    args.halo_rows = args.halo_rows.split(",")
    bad = [m for m in args.halo_rows if m not in ("slices", "blocks")]
    if bad:
        print(f"bench dask: unknown --halo-rows {', '.join(bad)}; choose from slices, "
              "blocks", file=sys.stderr)
        return 2
    table = CPU_CASES if args.device == "cpu" else GPU_CASES
    names = list(table) if args.cases is None else args.cases.split(",")
    bad = [n for n in names if n not in table]
    if bad:
        print(f"bench dask: unknown case(s) {', '.join(bad)}; choose from "
              f"{', '.join(table)}", file=sys.stderr)
        return 2
    from .report import versions

    run = run_cpu if args.device == "cpu" else run_gpu
    records = []
    for name in names:
        records.append(run(name, args))
        print(_table(records[-1:], args), flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    payload = dict(suite="dask", device=args.device, argv=sys.argv,
                   date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), loadavg=load,
                   cpus=len(os.sched_getaffinity(0)), versions=versions(),
                   options={k: str(v) if isinstance(v, Path) else v
                            for k, v in vars(args).items()},
                   records=records)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"dask_{args.device}"
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print(f"bench dask --device {args.device}: {time.strftime('%Y-%m-%d %H:%M')}, "
              f"load average {load}")
        print(_table(records, args))
    stem.with_suffix(".txt").write_text(buf.getvalue())
    print(f"wrote {stem}.json, {stem}.txt")
    return 0
