"""``python -m bench gpu --precisions``: the GPU suite at every precision,
xconvt through its public function against cuDNN through PyTorch, one process,
the same device arrays (issue 11).

Per case: cuDNN float32 (TF32 off), TF32, float16 and bfloat16, and xconvt's
``conv_transpose3d`` with ``precision="float32"`` (auto: 3xTF32 tensor cores
or FMA kernels, whichever it estimates faster), ``precision="tf32"``, and on
float16 and bfloat16 arrays, plus the FMA plan auto chose before tensor cores
existed (``fma``: today's kernel, for "no case slower").

Times (default, paired): each xconvt column is timed in blocks of
back-to-back calls alternating with its cuDNN counterpart (``fma`` with cuDNN
float32), each block bracketed by CUDA events, at least ``--min-time`` s a
side (default 0.25), blocks of ``--block-ms`` (default 5 ms)
(:meth:`bench.devices.GpuDevice.time_paired`,
:func:`bench.timing.time_events_paired`).  The xconvt entry's ``ratio`` is the
median over the pairs of cuDNN / xconvt (``ratio_iqr``: the IQR of those
per-pair ratios, ``ratio_iqr_pct`` the same as % of the ratio); each entry's
``ms`` is the median per-call time of its blocks.  The cuDNN entry's ``ms``
comes from its pairing with the xconvt column of the same precision.
``--no-pair``: each column alone, CUDA events around back-to-back calls,
median of ``--repeat`` (default 11) after warm-up (``bench.tc_probe.time_fn``),
as before.  Errors: relative L2 against cuDNN in float64 on the float32
operands (float32, TF32) or on the rounded 16-bit operands (float16,
bfloat16).  Writes ``precisions.json`` under ``--out``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .cases import GPU_SUITE
from .devices import DeviceUnavailable, make_device
from .report import _git
from .tc_probe import rel_l2, time_fn

COLUMNS = (("float32", "cudnn_fp32", "xconvt_fp32"), ("tf32", "cudnn_tf32", "xconvt_tf32"),
           ("float16", "cudnn_fp16", "xconvt_fp16"), ("bfloat16", "cudnn_bf16", "xconvt_bf16"))


#: The planners of tensor-core kernels (every other CUDA planner is FMA).
TENSOR_CORE_PLANNERS = ("cuda.mma", "cuda.wgmma")


def _fma_plan(params, xd):
    """The FMA plan ``auto`` takes without the tensor-core planners
    (``cuda.mma``, ``cuda.wgmma``: :data:`TENSOR_CORE_PLANNERS`)."""
    from xconvt import _select

    problem = _select.problem_for("conv_transpose3d", params, xd)
    ok, _ = _select.candidates(problem)
    ok = [(e, p) for e, p in ok if e.name not in TENSOR_CORE_PLANNERS]
    return min(ok, key=lambda c: c[1].estimate)[1]


def _set_tf32_of(torch):
    def set_tf32(on):
        torch.backends.cudnn.allow_tf32 = on
        torch.backends.cuda.matmul.allow_tf32 = on

    return set_tf32


def main(args, cases=GPU_SUITE):
    try:
        dev = make_device("gpu")
    except DeviceUnavailable as e:
        print(f"bench gpu --precisions: {e}", file=sys.stderr)
        return 2
    import cupy
    import torch

    import xconvt
    from xconvt._bf16 import dtype as bf16_dtype

    dev.setup_torch()  # cudnn.benchmark on, TF32 off
    torch.backends.cudnn.benchmark = True
    pair = getattr(args, "pair", True)
    topts = SimpleNamespace(
        warmup=getattr(args, "warmup", None) or 3,
        min_time=0.25 if getattr(args, "min_time", None) is None else args.min_time,
        max_time=getattr(args, "max_time", None) or 10.0,
        block_ms=getattr(args, "block_ms", 5.0))
    set_tf32 = _set_tf32_of(torch)
    bf16 = bf16_dtype()
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    card = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    print(f"bench gpu --precisions: {card}; torch {torch.__version__}, cuDNN "
          f"{torch.backends.cudnn.version()}, CuPy {cupy.__version__}", flush=True)
    reps = getattr(args, "repeat", None) or 11
    if pair:
        print(f"paired: each xconvt column in blocks of ~{topts.block_ms:g} ms alternating "
              f"with cuDNN's at the same precision, >= {topts.min_time:g} s a side; ratio = "
              "median over pairs", flush=True)
    F = torch.nn.functional.conv_transpose3d
    rows = []
    for case in cases:
        params = case.params()
        x, w, b = case.make_inputs(np.float32)
        xd, wd = cupy.asarray(x), cupy.asarray(w)
        bd = None if b is None else cupy.asarray(b)
        xt, wt = torch.from_dlpack(xd), torch.from_dlpack(wd)
        bt = None if bd is None else torch.from_dlpack(bd)
        kw = case.kwargs
        row = {"case": case.name, "gflop": params.flops / 1e9}
        ops = {"float32": (xt, wt, bt)}
        for name, tdt in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
            ops[name] = tuple(None if t is None else t.to(tdt) for t in (xt, wt, bt))
        refs = {}
        with torch.no_grad():
            for name in ("float32", "float16", "bfloat16"):
                a = ops[name]
                refs[name] = cupy.from_dlpack(F(*(None if t is None else t.double()
                                                  for t in a), **kw))
        refs["tf32"] = refs["float32"]

        def cupy_of(t):
            if t is None:
                return None
            if t.dtype == torch.bfloat16:
                return cupy.from_dlpack(t.view(torch.int16)).view(bf16)
            return cupy.from_dlpack(t)

        def put(key, fn, ref):
            try:
                out = fn()
                err = rel_l2(out, ref)
                ms, spread = time_fn(fn, reps)
                row[key] = {"ms": ms, "spread_ms": spread, "err": err,
                            "tflops": params.flops / ms / 1e9}
            except Exception as exc:  # noqa: BLE001 - reported, the suite goes on
                row[key] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"  {case.name} {key}: {row[key]['error'][:200]}", flush=True)

        def put_pair(ck, xk, cudnn, mine, ref, tf32=False):
            """``cudnn`` and ``mine`` paired into ``row[ck]``, ``row[xk]``; where
            one of them fails, the other is timed alone (``put``)."""
            set_tf32(tf32)
            try:
                if not pair:
                    put(ck, cudnn, ref)
                    set_tf32(False)  # xconvt ignores PyTorch's flags; as before
                    put(xk, mine, ref)
                    return
                errs = {}
                for key, fn in ((ck, cudnn), (xk, mine)):
                    try:
                        errs[key] = rel_l2(fn(), ref)
                    except Exception as exc:  # noqa: BLE001 - reported, the suite goes on
                        row[key] = {"error": f"{type(exc).__name__}: {exc}"}
                        print(f"  {case.name} {key}: {row[key]['error'][:200]}", flush=True)
                if len(errs) < 2:  # time the one that ran alone
                    for key, fn in ((ck, cudnn), (xk, mine)):
                        if key in errs:
                            put(key, fn, ref)
                    return
                try:
                    t = dev.time_paired(mine, cudnn, topts)
                except Exception as exc:  # noqa: BLE001
                    for key in (ck, xk):
                        row[key] = {"error": f"{type(exc).__name__}: {exc}"}
                    print(f"  {case.name} {xk}: {row[xk]['error'][:200]}", flush=True)
                    return
                for key, tm in ((ck, t.theirs), (xk, t.mine)):
                    row[key] = {"ms": tm.median, "spread_ms": max(tm.times_ms) - min(tm.times_ms),
                                "iqr_ms": tm.iqr, "err": errs[key],
                                "tflops": params.flops / tm.median / 1e9}
                fields = t.fields()
                row[xk].update({k: v for k, v in fields.items() if not k.startswith("torch_")},
                               ratio=t.ratio, cudnn_first_ms=t.theirs.first_ms)
            finally:
                set_tf32(False)

        for prec, ck, xk in COLUMNS:
            a = ops["float32" if prec in ("float32", "tf32") else prec]

            def cudnn(a=a):
                with torch.no_grad():
                    out = F(*a, **kw)
                return cupy_of(out)

            xa = tuple(cupy_of(t) for t in a)
            p = "tf32" if prec == "tf32" else "float32"
            e = xconvt.explain(params.input_shape, params.weight_shape, bd is not None,
                               params.stride, params.padding, params.output_padding,
                               params.groups, params.dilation, dtype=prec if prec in (
                                   "float16", "bfloat16") else "float32", device="cuda",
                               precision=p)
            row[xk + "_plan"] = e.choice.name
            put_pair(ck, xk, cudnn,
                     lambda xa=xa, p=p: xconvt.conv_transpose3d(*xa, **kw, precision=p),
                     refs[prec], tf32=prec == "tf32")
        fma = _fma_plan(params, xd)
        row["fma_plan"] = fma.name
        if pair:  # information: its own pairing with cuDNN float32, row["fma"]["ratio"]
            fp32 = ops["float32"]

            def cudnn_fp32():
                with torch.no_grad():
                    return cupy_of(F(*fp32, **kw))

            put_pair("_cudnn_fma", "fma", cudnn_fp32, lambda: fma(xd, wd, bd),
                     refs["float32"])
            row.pop("_cudnn_fma", None)
        else:
            put("fma", lambda: fma(xd, wd, bd), refs["float32"])
        rows.append(row)
        _print_row(row)
    _summary(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import datetime

    meta = {"card": card,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": (_git() or {}).get("commit"),
            "timing": ({"mode": "paired-blocks", "min_time_s": topts.min_time,
                        "block_ms": topts.block_ms, "warmup": topts.warmup} if pair
                       else {"mode": "alone", "repeat": reps})}
    (out / "precisions.json").write_text(json.dumps({**meta, "cases": rows}, indent=1))
    print(f"wrote {out / 'precisions.json'}")
    return 0


def _ms(row, key):
    v = row.get(key, {})
    return v.get("ms", float("nan"))


def _ratio(row, ck, xk):
    """cuDNN / xconvt: the paired median over pairs where timed paired, else
    the ratio of the two medians."""
    r = row.get(xk, {}).get("ratio")
    return r if r is not None else _ms(row, ck) / _ms(row, xk)


def _print_row(row):
    parts = [f"{row['case']:16s}"]
    for prec, ck, xk in COLUMNS:
        c, x = _ms(row, ck), _ms(row, xk)
        iqr = row.get(xk, {}).get("ratio_iqr_pct")
        spread = f" (IQR {iqr:.1f}%)" if iqr is not None else ""
        parts.append(f"{prec} {c:.3f}/{x:.3f}={_ratio(row, ck, xk):.2f}x{spread} "
                     f"({row.get(xk + '_plan', '?')}, "
                     f"err {row.get(xk, {}).get('err', float('nan')):.1e})")
    parts.append(f"fma {_ms(row, 'fma'):.3f} ({row['fma_plan']})")
    print("  ".join(parts), flush=True)


def _summary(rows):
    print("\nratio cuDNN / xconvt at each precision (geometric mean over the cases)")
    for prec, ck, xk in COLUMNS:
        r = [_ratio(row, ck, xk) for row in rows]
        r = [v for v in r if math.isfinite(v) and v > 0]
        if r:
            gm = math.exp(sum(map(math.log, r)) / len(r))
            print(f"  {prec:9s} geomean {gm:.2f}x, min {min(r):.2f}x, "
                  f"{sum(v >= 1 for v in r)}/{len(r)} cases >= 1.0x")
