"""Tensor-core probe (issue 11): correctness and speed of ``xconvt_mma`` against cuDNN.

One process, one GPU.  For the seven dense GPU-suite cases (and a few random
small ones for correctness), on the same device arrays:

* errors (relative L2) against float64 (cuDNN in float64 through PyTorch):
  xconvt FMA fused float32, 3xTF32, TF32, float16 and bfloat16 (these two
  against the float64 result of the rounded operands), and cuDNN at each
  precision;
* times: CUDA events around ``inner`` back-to-back calls, median of
  ``--reps`` after warm-up, of xconvt (FMA fused, each tensor-core mode with
  the planner's tile and, with ``--sweep``, every candidate tile) and of
  ``torch.nn.functional.conv_transpose3d`` (cuDNN, ``cudnn.benchmark``) at
  float32 (TF32 off), TF32, float16 and bfloat16; arrays shared zero-copy
  through DLPack.

Prints a table (ms, TFLOP/s of useful FLOPs, cuDNN/xconvt ratio, error) and
writes ``tc_probe.json`` under ``$OUT`` when set.  Usage::

    python bench/tc_probe.py [--cases seed_example,...] [--sweep all|slab|tap] [--reps 15]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cases import GPU_SUITE  # noqa: E402

DENSE = ("seed_example", "unet_k2s2", "unet_k2s2_big", "vnet_k3s2", "gan_k4s2",
         "same_k3s1", "dilated_k3d2")
MODES = ("3xtf32", "tf32", "float16", "bfloat16")


def rel_l2(out, ref):
    import cupy

    if out.dtype.name == "bfloat16":
        from xconvt._bf16 import to_float32

        out = to_float32(out)
    d = out.astype(cupy.float64) - ref
    return float(cupy.linalg.norm(d.ravel()) / cupy.linalg.norm(ref.ravel()))


def torch_nan(a):
    """NaN mask of a 16-bit CuPy array (float16 or bfloat16 bits)."""
    import cupy

    bits = a.view(cupy.uint16)
    if a.dtype.name == "bfloat16":
        return ((bits & 0x7F80) == 0x7F80) & ((bits & 0x007F) != 0)
    return ((bits & 0x7C00) == 0x7C00) & ((bits & 0x03FF) != 0)


def time_fn(fn, reps, target_ms=2.0):
    """Median ms per call: events around ``inner`` calls, ``reps`` times."""
    import cupy

    fn()
    cupy.cuda.Device().synchronize()
    t0 = time.perf_counter()
    fn()
    cupy.cuda.Device().synchronize()
    one = max(time.perf_counter() - t0, 1e-5) * 1e3
    inner = max(1, min(50, int(target_ms / one)))
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(reps):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / inner)
    return statistics.median(times), (max(times) - min(times))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(DENSE))
    ap.add_argument("--sweep", default="",
                    choices=("", "all", "slab", "tap", "cl", "cl_slab", "cls", "new"),
                    help="time every candidate tile (of one A staging)")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--variants", default="tap,cl",
                    help="A stagings timed beside the planner's choice (tap, slab, cl)")
    ap.add_argument("--no-anchors", action="store_true",
                    help="skip cuDNN and the FMA kernel (a second process for new variants)")
    ap.add_argument("--planner", action=argparse.BooleanOptionalAction, default=True,
                    help="time the planner's choice")
    ap.add_argument("--random", type=int, default=6, help="random small correctness cases")
    ap.add_argument("--tag", default="", help="suffix of the JSON file's name")
    ap.add_argument("--modes", default=",".join(MODES), help="tensor-core modes timed")
    args = ap.parse_args(argv)

    import cupy
    import ml_dtypes  # noqa: F401 - bfloat16 arrays need it
    import torch

    from xconvt import _select
    from xconvt.backends.cuda import mma as cuda_mma

    torch.backends.cudnn.benchmark = True
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    card = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    cc, sms, smem = cuda_mma._limits_cached(dev.id)
    print(f"card: {card}, cc {cc}, {sms} SMs, {smem} B smem/block; torch {torch.__version__}, "
          f"cudnn {torch.backends.cudnn.version()}, cupy {cupy.__version__}", flush=True)

    results = {"card": card, "cases": [], "random": [], "sweep": []}
    names = [n for n in args.cases.split(",") if n]
    cases = [c for c in GPU_SUITE if c.name in names]

    def torch_conv(case, xt, wt, bt):
        f = torch.nn.functional.conv_transpose3d
        return lambda: f(xt, wt, bt, **case.kwargs)

    for case in cases:
        params = case.params()
        flops = params.flops
        x, w, b = case.make_inputs(np.float32)
        xd, wd = cupy.asarray(x), cupy.asarray(w)
        bd = None if b is None else cupy.asarray(b)
        xt, wt = torch.from_dlpack(xd), torch.from_dlpack(wd)
        bt = None if bd is None else torch.from_dlpack(bd)
        row = {"case": case.name, "summary": case.summary(), "gflop": flops / 1e9}
        # float64 references: of the float32 operands, and of the rounded 16-bit ones
        refs = {}
        with torch.no_grad():
            f64 = torch.nn.functional.conv_transpose3d
            refs["float32"] = cupy.from_dlpack(f64(xt.double(), wt.double(),
                                                   None if bt is None else bt.double(),
                                                   **case.kwargs))
            ops16 = {}
            for name, tdt in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
                x16, w16 = xt.to(tdt), wt.to(tdt)
                b16 = None if bt is None else bt.to(tdt)
                ops16[name] = (x16, w16, b16)
                refs[name] = cupy.from_dlpack(f64(x16.double(), w16.double(),
                                                  None if b16 is None else b16.double(),
                                                  **case.kwargs))
        entries = {}

        def record(key, fn, ref, out=None):
            try:
                res = fn() if out is None else out
                err = rel_l2(res, ref)
                ms, spread = time_fn(fn, args.reps)
            except Exception as exc:  # noqa: BLE001  (reported, the probe goes on)
                print(f"  {case.name} {key}: FAILED {type(exc).__name__}: {exc}", flush=True)
                entries[key] = {"error": f"{type(exc).__name__}: {exc}"}
                return
            entries[key] = {"ms": ms, "spread_ms": spread, "tflops": flops / ms / 1e9,
                            "err": err}

        # xconvt FMA fused float32
        if not args.no_anchors:
            fused = _select.named_plan("cuda.fused", _select.problem_for(
                "conv_transpose3d", params, xd))
            record("xconvt_fma", lambda: fused(xd, wd, bd),
                   refs["float32"])
        # xconvt tensor cores, planner's tile
        ins = {"3xtf32": (xd, wd, bd, "float32"), "tf32": (xd, wd, bd, "tf32")}
        for name in ("float16", "bfloat16"):
            x16, w16, b16 = ops16[name]
            ins[name] = (cupy.from_dlpack(x16), cupy.from_dlpack(w16),
                         None if b16 is None else cupy.from_dlpack(b16), "float32")
        for mode in [m for m in MODES if m in args.modes.split(",")]:
            xi, wi, bi, prec = ins[mode]
            ref = refs["float32" if mode in ("3xtf32", "tf32") else mode]
            got = cuda_mma.mma_config(params, cuda_mma.dtype_name(xi.dtype), prec, sms, smem)
            if isinstance(got, str):
                entries[f"mma_{mode}"] = {"error": got}
                continue
            cfg, est = got
            if args.planner:
                record(f"mma_{mode}",
                       lambda xi=xi, wi=wi, bi=bi, prec=prec: cuda_mma.mma_direct(
                           params, xi, wi, bi, prec), ref)
                entries[f"mma_{mode}"].update(est_ms=est * 1e3, config=cfg.name)
            for var in [v for v in args.variants.split(",") if v]:
                vc = cuda_mma.mma_config(params, cuda_mma.dtype_name(xi.dtype), prec, sms,
                                         smem, var)
                if isinstance(vc, str):
                    continue
                record(f"mma_{mode}_{var}",
                       lambda xi=xi, wi=wi, bi=bi, prec=prec, c=vc[0]: cuda_mma.mma_direct(
                           params, xi, wi, bi, prec, config=c), ref)
                entries[f"mma_{mode}_{var}"].update(est_ms=vc[1] * 1e3, config=vc[0].name,
                                                    box=vc[0].box)
                # the other K depth with the same tile (not a planner candidate
                # for narrow tiles): data for the BK rule
                c0 = vc[0]
                bk = 48 - c0.bk
                if params.in_channels_per_group > 16 or bk == 16:
                    isz = 4 if c0.dt == 0 else 2
                    sm = cuda_mma._smem(c0.bm, c0.bn, bk, c0.stages, isz, c0.sc, c0.mode,
                                        c0.slab)
                    if sm <= smem:
                        alt = c0._replace(bk=bk, smem=sm)
                        record(f"mma_{mode}_{var}_bk{bk}",
                               lambda xi=xi, wi=wi, bi=bi, prec=prec, c=alt:
                               cuda_mma.mma_direct(params, xi, wi, bi, prec, config=c), ref)
            if args.sweep:
                for cand in cuda_mma._candidates(params, cuda_mma.dtype_name(xi.dtype), prec,
                                                 smem, None):
                    if args.sweep != "all" and cand.slab not in {
                            "tap": (0,), "slab": (1,), "cl": (3,), "cl_slab": (4,),
                            "cls": (3, 4), "new": (0, 3, 4)}[args.sweep]:
                        continue
                    t_est = cuda_mma.estimate(params, cand, mode if mode != "3xtf32"
                                              else "3xtf32", sms)
                    try:
                        fn = (lambda c=cand, xi=xi, wi=wi, bi=bi, prec=prec:
                              cuda_mma.mma_direct(params, xi, wi, bi, prec, config=c))
                        err = rel_l2(fn(), ref)
                        ms, _ = time_fn(fn, max(5, args.reps // 3))
                    except Exception as exc:  # noqa: BLE001
                        print(f"  sweep {case.name} {cand.name}: {exc}", flush=True)
                        continue
                    results["sweep"].append({"case": case.name, "mode": mode,
                                             "config": cand.name, "ms": ms,
                                             "est_ms": t_est * 1e3, "err": err})
        # cuDNN
        anchors = (("cudnn_float32", False, (xt, wt, bt)),
                   ("cudnn_tf32", True, (xt, wt, bt)),
                   ("cudnn_float16", True, ops16["float16"]),
                   ("cudnn_bfloat16", True, ops16["bfloat16"]))
        with torch.no_grad():
            for key, allow, ops in () if args.no_anchors else anchors:
                torch.backends.cudnn.allow_tf32 = allow
                ref = refs[{"cudnn_float16": "float16",
                            "cudnn_bfloat16": "bfloat16"}.get(key, "float32")]
                fn = torch_conv(case, *ops)
                record(key, lambda fn=fn: cupy.from_dlpack(fn()), ref)
        torch.backends.cudnn.allow_tf32 = False
        row.update(entries)
        results["cases"].append(row)
        if os.environ.get("OUT"):  # after every case: a time-out keeps what was measured
            (Path(os.environ["OUT"]) / f"tc_probe{args.tag}.json").write_text(
                json.dumps(results, indent=1, default=str))
        print(f"{case.name}: " + ", ".join(
            f"{k} {v['ms']:.3f}ms/{v['err']:.1e}" if "ms" in v else f"{k} {v['error'][:60]}"
            for k, v in entries.items()), flush=True)
        del refs, ops16, ins
        cupy.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()

    # random small correctness cases
    rng = np.random.default_rng(11)
    for i in range(args.random):
        g = int(rng.integers(1, 3))
        cin, cout = g * int(rng.integers(1, 40)), g * int(rng.integers(1, 40))
        k = tuple(int(v) for v in rng.integers(1, 5, 3))
        s = tuple(int(v) for v in rng.integers(1, 4, 3))
        d = tuple(int(v) for v in rng.integers(1, 3, 3))
        p = tuple(int(v) for v in rng.integers(0, 3, 3))
        op = tuple(int(rng.integers(0, max(a, c))) for a, c in zip(s, d))
        size = tuple(int(v) for v in rng.integers(3, 12, 3))
        kw = dict(stride=s, padding=p, output_padding=op, groups=g, dilation=d)
        from xconvt._params import ConvParams
        try:
            params = ConvParams.from_shapes((2, cin) + size, (cin, cout // g) + k, (cout,), **kw)
        except ValueError:
            continue
        x = cupy.asarray(rng.standard_normal((2, cin) + size), dtype=cupy.float32)
        w = cupy.asarray(rng.standard_normal((cin, cout // g) + k) / math.sqrt(cin / g * np.prod(k)),
                         dtype=cupy.float32)
        b = cupy.asarray(rng.standard_normal(cout), dtype=cupy.float32)
        f64 = torch.nn.functional.conv_transpose3d
        entry = {"shape": [(2, cin) + size, (cin, cout // g) + k], **kw}
        for mode in MODES:
            if mode in ("3xtf32", "tf32"):
                xi, wi, bi = x, w, b
            else:
                xi, wi, bi = (torch.from_dlpack(a).to(getattr(torch, mode)) for a in (x, w, b))
                xi, wi, bi = (cupy.from_dlpack(a) for a in (xi, wi, bi))
            tx, tw, tb = (torch.from_dlpack(a).double() for a in (xi, wi, bi))
            ref = cupy.from_dlpack(f64(tx, tw, tb, **kw))
            out = cupy.empty(params.batched_output_shape, dtype=xi.dtype)
            out.view({2: cupy.uint16, 4: cupy.uint32}[out.dtype.itemsize]).fill(
                {2: 0x7E00 if mode == "float16" else 0x7FC0, 4: 0x7FC00000}[out.dtype.itemsize])
            only = [v for v in args.variants.split(",") if v]
            cuda_mma.mma_direct(params, xi, wi, bi, "tf32" if mode == "tf32" else "float32",
                                out=out, variant=only[0] if len(only) == 1 else None)
            entry[mode] = rel_l2(out, ref)
            nan = cupy.isnan(out) if out.dtype.itemsize == 4 else torch_nan(out)
            entry[mode + "_unwritten"] = int(nan.sum())
        results["random"].append(entry)
        print("random", entry, flush=True)

    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"]) / f"tc_probe{args.tag}.json"
        path.write_text(json.dumps(results, indent=1, default=str))
        print(f"wrote {path}")
    # table
    print(f"\n{card}: ms (TFLOP/s), ratio = cuDNN at the same precision / xconvt; "
          "err = rel L2 vs float64")
    hdr = (f"{'case':14s} {'GFLOP':>6s} | {'fma':>13s} | {'cudnn32':>7s} {'3xtf32':>15s} "
           f"{'x':>5s} | {'cudnnTF':>7s} {'tf32':>15s} {'x':>5s} | {'cudnn16':>7s} "
           f"{'fp16':>15s} {'x':>5s} | {'cudnnBF':>7s} {'bf16':>15s} {'x':>5s}")
    print(hdr)
    for row in results["cases"]:
        def ms(k):
            return row.get(k, {}).get("ms", float("nan"))

        def cell(k):
            v = row.get(k, {})
            return (f"{v['ms']:7.3f}({v['tflops']:5.1f})" if "ms" in v else f"{'fail':>13s}")

        parts = [f"{row['case']:14s} {row['gflop']:6.1f} | {cell('xconvt_fma'):>13s} |"]
        for c, m in (("cudnn_float32", "mma_3xtf32"), ("cudnn_tf32", "mma_tf32"),
                     ("cudnn_float16", "mma_float16"), ("cudnn_bfloat16", "mma_bfloat16")):
            parts.append(f" {ms(c):7.3f} {cell(m):>15s} {ms(c) / ms(m):5.2f} |")
        print("".join(parts))
    shown = [v for v in args.variants.split(",") if v][:2] or ["tap"]
    print(f"\nvariants, ms (estimate): {' | '.join(shown)}, per mode")
    for row in results["cases"]:
        cells = []
        for mode in MODES:
            for var in shown:
                v = row.get(f"mma_{mode}_{var}", {})
                cells.append(f"{v['ms']:6.3f}({v['est_ms']:6.3f})" if "ms" in v else "   -   ")
        print(f"{row['case']:14s} " + " ".join(cells))
    print("\nother BK, ms: " + " ".join(f"{m}_{v}" for m in MODES for v in shown))
    for row in results["cases"]:
        cells = []
        for mode in MODES:
            for var in shown:
                v = next((row[k] for k in row if k.startswith(f"mma_{mode}_{var}_bk")), {})
                cells.append(f"{v['ms']:6.3f}/{v['err']:.0e}" if "ms" in v else "   -   ")
        print(f"{row['case']:14s} " + " ".join(cells))
    print("\nerrors (rel L2): " + ", ".join(("fma",) + MODES + ("cudnn32", "cudnnTF", "cudnn16",
                                                              "cudnnBF")))
    for row in results["cases"]:
        keys = ["xconvt_fma"] + [f"mma_{m}" for m in MODES] + [
            "cudnn_float32", "cudnn_tf32", "cudnn_float16", "cudnn_bfloat16"]
        print(f"{row['case']:14s} " + " ".join(
            f"{row.get(k, {}).get('err', float('nan')):8.1e}" for k in keys))


if __name__ == "__main__":
    main()
