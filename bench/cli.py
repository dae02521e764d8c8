"""``python -m bench``: the command line (see bench/README.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import cases as C
from .devices import DeviceUnavailable, available_threads, make_device
from .measure import TORCH, TORCH_TF32, auto_choice, case_error, measure_case
from .report import (detail_table, geomean_line, geomeans, metadata, print_table,
                     spread_line, summary_table, write_csv, write_json)
from .sweep import SweepSkipper, crossover, plot_sweep, series

__all__ = ["main"]

DEFAULT_OUT = Path(__file__).resolve().parent / "out"

# Ceilings of the H100 this project measures on, from /work/shared/gpu/README.md
# ("Ceilings measured on that H100 (2026-11-25)"): an 8192^3 matmul reached
# 51 TFLOP/s in float32 (407 TF32, 755 float16 on tensor cores) and a
# device-to-device copy 2.98 TB/s (bytes read + written).  float64 was not
# measured there: no %-of-peak unless --peak-tflops is given.  Override both
# with --peak-tflops / --peak-gbps on other cards (an H200 has more bandwidth).
PEAK_TFLOPS = {"float32": 51.0, "float16": 755.0, "float64": None}
PEAK_GBPS = 2980.0

# Defaults per device: (repeat, warmup, min_time s, max_time s).
TIMING_DEFAULTS = {
    "cpu": (5, 1, 0.0, 30.0),
    "gpu": (20, 3, 1.0, 10.0),
    # quick: enough calls for a median of sub-millisecond calls (3 runs were
    # dominated by whichever thread woke up late)
    "quick": (30, 5, 0.05, 5.0),
    # small calls: a median of many, after enough warm-up calls that spinning
    # threads of the previous method have gone to sleep
    "small": (200, 20, 0.2, 5.0),
    "sweep-cpu": (3, 1, 0.0, 30.0),
}


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark xconvt.conv_transpose3d against PyTorch "
                    "(torch.nn.functional.conv_transpose3d) on the same inputs.",
    )
    p.add_argument("suite", nargs="?", default="quick",
                   choices=("quick", "cpu", "small", "gpu", "sweep", "overhead", "grad",
                            "dask", "compare"),
                   help="quick: tiny self-checking CPU cases (default); cpu: issue 2's "
                        "suite (NumPy); small: issue 15's small layers (NumPy, per-call "
                        "medians); gpu: issue 3's suite (CuPy; --precisions for every "
                        "precision); sweep: time vs kernel size k; overhead: host time per "
                        "call of each array library's path; grad: forward, input and "
                        "weight gradients; dask: throughput on Dask (python -m bench dask "
                        "--help); compare: two result files' ratios (python -m bench "
                        "compare --help)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="device of the sweep and of overhead (default cpu)")
    p.add_argument("--algorithms", default=None,
                   help="comma-separated xconvt algorithms (default: every algorithm "
                        "registered for the array library, plus auto)")
    p.add_argument("--cases", default=None,
                   help="comma-separated case names or glob patterns (e.g. 'sweep_k*')")
    p.add_argument("--ks", default=None,
                   help="sweep kernel sizes, comma-separated (default 1,3,...,31)")
    p.add_argument("--volume", type=int, default=None,
                   help="sweep input edge (default 32 on cpu, 64 on gpu)")
    p.add_argument("--dtype", choices=("float32", "float64", "float16"), default="float32")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed runs per method (default: cpu 5, gpu 20, quick 30, small 200, "
                        "cpu sweep 3)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls first (default: cpu 1, gpu 3)")
    p.add_argument("--min-time", type=float, default=None,
                   help="keep timing until this many seconds were measured "
                        "(default: gpu 1, cpu 0)")
    p.add_argument("--max-time", type=float, default=None,
                   help="stop timing a method once this many seconds were measured "
                        "(default: cpu 30, gpu 10)")
    p.add_argument("--max-seconds", type=float, default=10.0,
                   help="sweep: skip a method at k when its call is estimated (from "
                        "the previous k) to take longer than this (default 10)")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    p.add_argument("--precisions", action="store_true",
                   help="gpu: xconvt at float32 (3xTF32 or FMA), tf32, float16 and bfloat16 "
                        "against cuDNN at the same precisions (bench/precisions.py)")
    p.add_argument("--no-pair", dest="pair", action="store_false",
                   help="gpu: time each method alone (each call synchronized), not in "
                        "blocks alternating with cuDNN's")
    p.add_argument("--block-ms", type=float, default=5.0,
                   help="gpu, paired: GPU milliseconds per block of back-to-back calls "
                        "(default 5; 0: one call per block, each waited for, as --no-pair "
                        "times them)")
    p.add_argument("--no-tf32", dest="tf32", action="store_false",
                   help="GPU float32: skip the TF32-on PyTorch column")
    p.add_argument("--threads", type=int, default=None,
                   help=f"PyTorch CPU threads (default: available cores, "
                        f"{available_threads()} here)")
    p.add_argument("--seed", type=int, default=0, help="input seed (default 0)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="compute ceiling for %%-of-peak (default: H100 float32 51, "
                        "float16 755)")
    p.add_argument("--peak-gbps", type=float, default=PEAK_GBPS,
                   help=f"memory ceiling in GB/s (default: H100 {PEAK_GBPS:g})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="directory for CSV/JSON/PNG (default bench/out/)")
    p.add_argument("--no-plot", action="store_true", help="sweep: do not draw the PNG")
    p.add_argument("--plain", action="store_true", help="plain-text tables, never rich")
    p.add_argument("--list", action="store_true", help="list the suite's cases and exit")
    return p


class _Progress:
    """A tqdm bar where installed (else one line per step), on stderr."""

    def __init__(self, total, desc, use_tqdm, quiet=False):
        self.n, self.total, self.bar, self.quiet = 0, total, None, quiet
        if use_tqdm:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="run", file=sys.stderr)
            except ImportError:
                pass

    def __call__(self, case, method):
        self.n += 1
        if self.bar is not None:
            if self.n > 1:
                self.bar.update(1)
            self.bar.set_postfix_str(f"{case.name} {method}")
        elif not self.quiet:
            print(f"  [{self.n}/{self.total}] {case.name} {method}", file=sys.stderr,
                  flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.update(self.total - self.bar.n)
            self.bar.close()


def _methods(arg, kind):
    from xconvt import backends
    from xconvt._dispatch import AUTO_NAMES

    registered = list(backends.algorithms(kind))
    if arg is None:
        return registered + ["auto"]
    names = [a.strip() for a in arg.split(",") if a.strip()]
    allowed = registered + list(AUTO_NAMES)
    bad = [n for n in names if n not in allowed]
    if bad:
        msg = (f"unknown algorithm(s) {', '.join(bad)} for {kind}; "
               f"choose from {', '.join(allowed)}")
        raise ValueError(msg)
    return names


def _suite_cases(args, device_name):
    if args.suite == "quick":
        return C.QUICK_SUITE
    if args.suite == "cpu":
        return C.CPU_SUITE
    if args.suite == "small":
        return C.SMALL_SUITE
    if args.suite == "gpu":
        return C.GPU_SUITE
    ks = C.SWEEP_KS if args.ks is None else tuple(int(k) for k in args.ks.split(","))
    if any(k < 1 for k in ks):
        msg = f"--ks must be positive kernel sizes, got {args.ks}"
        raise ValueError(msg)
    return C.sweep_cases(ks, args.volume or C.SWEEP_VOLUME[device_name])


def _apply_defaults(args, device_name):
    key = (args.suite if args.suite in ("quick", "small")
           else "sweep-cpu" if args.suite == "sweep" and device_name == "cpu"
           else device_name)
    repeat, warmup, min_time, max_time = TIMING_DEFAULTS[key]
    args.repeat = repeat if args.repeat is None else max(1, args.repeat)
    args.warmup = warmup if args.warmup is None else max(0, args.warmup)
    args.min_time = min_time if args.min_time is None else args.min_time
    args.max_time = max_time if args.max_time is None else args.max_time
    if args.peak_tflops is None:
        args.peak_tflops = PEAK_TFLOPS.get(args.dtype)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grad"]:  # forward and gradients: bench/grad.py
        from .grad import main as grad_main

        return grad_main(argv[1:])
    if argv[:1] == ["compare"]:  # two result files' ratios: bench/compare.py
        from .compare import main as compare_main

        return compare_main(argv[1:])
    if argv[:1] == ["dask"]:  # its own options: python -m bench dask --help
        from .dask_bench import main as dask_main

        return dask_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.suite == "overhead":
        from .overhead import main as overhead

        return overhead(args, argv)
    if args.suite == "gpu" and args.precisions:
        from .precisions import main as precisions

        return precisions(args, C.select(C.GPU_SUITE, args.cases))
    device_name = {"gpu": "gpu", "sweep": args.device}.get(args.suite, "cpu")
    try:
        cases = C.select(_suite_cases(args, device_name), args.cases)
    except ValueError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    if args.list:
        for c in cases:
            print(f"{c.name:18s} {c.summary()}")
        return 0
    _apply_defaults(args, device_name)
    if args.suite == "small" and args.threads is None:
        args.threads = 2  # issue 15's comparison: PyTorch CPU on two threads
    try:
        device = make_device(device_name, args.threads)
    except DeviceUnavailable as e:  # e.g. `bench gpu` without CuPy: say so, exit 2
        print(f"bench {args.suite}: {e}", file=sys.stderr)
        return 2
    try:
        methods = _methods(args.algorithms, device.kind)
    except ValueError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    if not args.no_torch and device.setup_torch() is None:
        print("bench: PyTorch (with CUDA, on the GPU) is not available: no anchor, "
              "results checked against the float64 reference where small enough",
              file=sys.stderr)
    return _run(args, argv, device, cases, methods)


def _run(args, argv, device, cases, methods):
    suite = args.suite
    anchors = []
    if device.torch is not None:
        anchors.append(TORCH)
        if device.name == "gpu" and args.dtype == "float32" and args.tf32:
            anchors.append(TORCH_TF32)
    label = device.label()
    print(f"bench {suite}: {label}; dtype {args.dtype}; methods {', '.join(methods)}; "
          f"anchor {'PyTorch ' + device.torch.__version__ if device.torch else 'none'}; "
          f"repeat {args.repeat}, warmup {args.warmup}, min-time {args.min_time:g} s",
          flush=True)
    if device.name == "gpu" and device.torch is not None:
        st = device.streams()
        how = ("the same stream" if st["same_stream"] else
               "DIFFERENT streams: the device is synchronized between methods")
        print(f"streams: CuPy {st['cupy_stream']:#x}, PyTorch {st['torch_stream']:#x} "
              f"({how}); cuDNN {device.torch.backends.cudnn.version()}, benchmark=True, "
              "anchor TF32 off", flush=True)
        if suite == "gpu" and args.pair:
            print(f"paired: each method in blocks of ~{args.block_ms:g} ms of back-to-back "
                  f"calls alternating with cuDNN's, >= {args.min_time:g} s a side; "
                  "torch/x = median over pairs of cuDNN block / xconvt block (per call)",
                  flush=True)
    progress = _Progress(len(cases) * (len(methods) + len(anchors)), f"bench {suite}",
                         use_tqdm=suite == "sweep", quiet=suite == "quick")
    skipper = SweepSkipper(args.max_seconds) if suite == "sweep" else None
    oracle_mode = "reference" if suite in ("quick", "small") else "torch"
    records = []
    try:
        for case in cases:
            skip = None
            if skipper is not None:
                params = case.params()
                chosen = auto_choice(device.kind, params, np.dtype(args.dtype), "auto")
                skip = skipper.skips(case, params, anchors + methods, chosen)
            try:
                recs = measure_case(suite, case, device, methods, args,
                                    oracle_mode=oracle_mode, skip=skip, progress=progress,
                                    paired=suite in ("small", "quick")
                                    or (suite == "gpu" and args.pair))
            except Exception as e:  # noqa: BLE001 - a broken case must not end the suite
                recs = case_error(suite, case, device, anchors + methods, args, e)
            if skipper is not None:
                skipper.update(params, recs)
            if suite == "gpu":
                for r in recs:
                    r["torch_ms_issue"] = C.GPU_SUITE_CUDNN_MS_H100.get(case.name)
            records.extend(recs)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting the cases measured so far", file=sys.stderr)
    finally:
        progress.close()
    return _report(args, argv, device, records, methods, anchors, cases)


def _small_path(case, dtype):
    """Which CPU path ``auto``'s direct call takes: the small-problem one or the
    per-phase one (``?`` where that cannot be told)."""
    chosen = auto_choice("numpy", case.params(), np.dtype(dtype), "auto")
    if chosen is None:
        return "?"
    return "small" if chosen == "cpu.small" else chosen


def _small_table(records, device):
    """Per case: nominal MFLOP, PyTorch's and each method's microseconds, torch/auto
    (PyTorch's column and the ratios from the calls alternating with auto's
    where the suite timed them paired)."""
    by_case = {}
    for r in records:
        by_case.setdefault(r["case"], {})[r["method"]] = r
    methods = [m for m in dict.fromkeys(r["method"] for r in records) if m != TORCH]
    headers = (["case", "shape", "MFLOP", "torch us"] + [f"{m} us" for m in methods]
               + ["torch/auto", "min: torch/auto", "path"])
    rows = []
    for name, recs in by_case.items():
        first = next(iter(recs.values()))
        row = [name, first["shape"], f"{first['gflop_nominal'] * 1e3:.3f}"]
        paired = (recs.get("auto") or {}).get("torch_ms_paired")
        for m in [TORCH] + methods:
            r = recs.get(m)
            if m == TORCH and paired:  # PyTorch in the rounds alternating with auto
                row.append(f"{paired * 1e3:.1f}")
                continue
            ok = r is not None and r["status"] in ("ok", "wrong") and r.get("ms")
            row.append(f"{r['ms'] * 1e3:.1f}" + ("!" if r["status"] == "wrong" else "")
                       if ok else (r["status"] if r else ""))
        auto, torch = recs.get("auto"), recs.get(TORCH)
        row.append(f"{auto['ratio']:.2f}x" if auto and auto.get("ratio") else "-")
        # the fastest calls: what each does when no other process takes its CPU
        tmin = (auto or {}).get("torch_ms_min_paired") or (torch or {}).get("ms_min")
        row.append(f"{tmin / auto['ms_min']:.2f}x" if auto and tmin and auto.get("ms_min")
                   else "-")
        case = next((c for c in C.SMALL_SUITE if c.name == name), None)
        chosen = auto.get("chosen") if auto else None
        row.append(chosen if chosen != "direct" or case is None
                   else "direct/" + _small_path(case, first["dtype"]))
        rows.append(row)
    right = tuple(h for h in headers if h.endswith("us") or h.endswith("torch/auto")
                  or h == "MFLOP")
    return headers, rows, right


def _report(args, argv, device, records, methods, anchors, cases):
    suite = args.suite
    peak_tf = args.peak_tflops if device.name == "gpu" else None
    peak_bw = args.peak_gbps if device.name == "gpu" else None
    print()
    h, rows, right = detail_table(records, device.name, peak_tf, peak_bw)
    print_table(f"{suite} ({device.label()}, {args.dtype}): per method", h, rows, right,
                plain=args.plain)
    extra = {}
    if suite == "gpu":
        extra["cuDNN ms (H100, issue 3)"] = lambda name, recs: (
            f"{C.GPU_SUITE_CUDNN_MS_H100[name]:.3f}" if name in C.GPU_SUITE_CUDNN_MS_H100
            else "")
    print()
    h, rows, right = summary_table(records, methods, anchors, extra)
    print_table(f"{suite}: summary (ms; '!' = result failed its check)", h, rows, right,
                plain=args.plain)
    if suite == "small" and TORCH in anchors:
        print()
        h, rows, right = _small_table(records, device)
        print_table("small: microseconds per call (median) and torch/xconvt", h, rows, right,
                    plain=args.plain)
    gm = geomeans(records, methods) if TORCH in anchors else {}
    n_cases = len({r["case"] for r in records})
    if gm:
        print(geomean_line(gm, n_cases))
    spread = spread_line(records)
    if spread:
        print(spread)
    else:
        print("geomean torch/xconvt: - (no PyTorch anchor)")

    bad = [r for r in records if r["method"] not in (TORCH, TORCH_TF32)
           and r["status"] in ("error", "wrong")]
    if suite == "quick":
        print()
        for r in records:
            if r["method"] in (TORCH, TORCH_TF32):
                continue
            verdict = {"ok": "PASS", "wrong": "FAIL", "error": "ERROR"}.get(
                r["status"], r["status"].upper())
            detail = (f"rel err {r['err']:.1e} (tol {r['tol']:.0e}) vs float64 reference"
                      if r.get("err") is not None else r.get("error", r.get("note", "")))
            print(f"{verdict:5s} {r['case']:16s} {r['method']:8s} "
                  f"{' '.join(str(detail).split())[:110]}")
        n_pass = sum(r["status"] == "ok" for r in records
                     if r["method"] not in (TORCH, TORCH_TF32))
        print(f"{n_pass} passed, {len(bad)} failed")

    # ---- files
    stem = suite if suite != "sweep" else f"sweep_{device.name}"
    if args.dtype != "float32":
        stem += f"_{args.dtype}"
    out = args.out
    payload = {
        "suite": suite,
        "metadata": metadata(device, ["python", "-m", "bench", *argv]),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "methods": methods,
        "anchors": anchors,
        "ceilings": {"peak_tflops": peak_tf, "peak_gbps": peak_bw,
                     "source": "/work/shared/gpu/README.md (H100, 2026-11-25)"
                     if device.name == "gpu" else None},
        "geomean_torch_over_xconvt": gm,
        "records": records,
    }
    files = []
    if suite == "sweep":
        ks, d = series(records, "direct")
        _, f = series(records, "fft")
        payload["crossover_direct_fft_k"] = crossover(ks, d, f) if d and f else None
        kx = payload["crossover_direct_fft_k"]
        print(f"direct/fft crossover: {'k ~ %.1f' % kx if kx is not None else 'none found'}")
    try:
        files.append(write_csv(out / f"{stem}.csv", records))
        files.append(write_json(out / f"{stem}.json", payload))
        if suite == "sweep" and not args.no_plot:
            title = (f"xconvt sweep: 1 x 4 -> 4 x {cases[0].size[0]}^3, stride 1, "
                     f"padding (k-1)/2, {args.dtype}\n{device.label()}")
            path, why = plot_sweep(records, anchors + methods, out / f"{stem}.png", title,
                                   device.name)
            if path:
                files.append(path)
            else:
                print(f"bench: {why}", file=sys.stderr)
    except OSError as e:
        print(f"bench: could not write results to {out}: {e}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(p) for p in files))
    if suite == "quick" and bad:
        return 1
    return 0
