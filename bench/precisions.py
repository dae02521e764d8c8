"""``python -m bench gpu --precisions``: the GPU suite at every precision,
xconvt through its public function against cuDNN through PyTorch, one process,
the same device arrays (issue 11).

Per case: cuDNN float32 (TF32 off), TF32, float16 and bfloat16, and xconvt's
``conv_transpose3d`` with ``precision="float32"`` (auto: 3xTF32 tensor cores
or FMA kernels, whichever it estimates faster), ``precision="tf32"``, and on
float16 and bfloat16 arrays, plus the FMA plan auto chose before tensor cores
existed (``fma``: today's kernel, for "no case slower").  Times: CUDA events
around back-to-back calls, median of ``--repeat`` (default 11) after warm-up
(``bench.tc_probe.time_fn``).  Errors: relative L2 against cuDNN in float64 on
the float32 operands (float32, TF32) or on the rounded 16-bit operands
(float16, bfloat16).  Writes ``precisions.json`` under ``--out``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .cases import GPU_SUITE
from .tc_probe import rel_l2, time_fn

COLUMNS = (("float32", "cudnn_fp32", "xconvt_fp32"), ("tf32", "cudnn_tf32", "xconvt_tf32"),
           ("float16", "cudnn_fp16", "xconvt_fp16"), ("bfloat16", "cudnn_bf16", "xconvt_bf16"))


def _fma_plan(params, xd):
    """The FMA plan ``auto`` takes without the tensor-core planner."""
    from xconvt import _select

    problem = _select.problem_for("conv_transpose3d", params, xd)
    ok, _ = _select.candidates(problem)
    ok = [(e, p) for e, p in ok if e.name != "cuda.mma"]
    return min(ok, key=lambda c: c[1].estimate)[1]


def main(args, cases=GPU_SUITE):
    import cupy
    import torch

    import xconvt
    from xconvt._bf16 import dtype as bf16_dtype

    torch.backends.cudnn.benchmark = True
    bf16 = bf16_dtype()
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    card = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    print(f"bench gpu --precisions: {card}; torch {torch.__version__}, cuDNN "
          f"{torch.backends.cudnn.version()}, CuPy {cupy.__version__}", flush=True)
    reps = getattr(args, "repeat", None) or 11
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

        for prec, ck, xk in COLUMNS:
            a = ops["float32" if prec in ("float32", "tf32") else prec]
            torch.backends.cudnn.allow_tf32 = prec == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"

            def cudnn(a=a):
                with torch.no_grad():
                    out = F(*a, **kw)
                return cupy_of(out)

            put(ck, cudnn, refs[prec])
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            xa = tuple(cupy_of(t) for t in a)
            p = "tf32" if prec == "tf32" else "float32"
            e = xconvt.explain(params.input_shape, params.weight_shape, bd is not None,
                               params.stride, params.padding, params.output_padding,
                               params.groups, params.dilation, dtype=prec if prec in (
                                   "float16", "bfloat16") else "float32", device="cuda",
                               precision=p)
            row[xk + "_plan"] = e.choice.name
            put(xk, lambda xa=xa, p=p: xconvt.conv_transpose3d(*xa, **kw, precision=p),
                refs[prec])
        fma = _fma_plan(params, xd)
        row["fma_plan"] = fma.name
        put("fma", lambda: fma(xd, wd, bd), refs["float32"])
        rows.append(row)
        _print_row(row)
    _summary(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precisions.json").write_text(json.dumps({"card": card, "cases": rows}, indent=1))
    print(f"wrote {out / 'precisions.json'}")
    return 0


def _ms(row, key):
    v = row.get(key, {})
    return v.get("ms", float("nan"))


def _print_row(row):
    parts = [f"{row['case']:16s}"]
    for prec, ck, xk in COLUMNS:
        c, x = _ms(row, ck), _ms(row, xk)
        parts.append(f"{prec} {c:.3f}/{x:.3f}={c / x:.2f}x ({row.get(xk + '_plan', '?')}, "
                     f"err {row.get(xk, {}).get('err', float('nan')):.1e})")
    parts.append(f"fma {_ms(row, 'fma'):.3f} ({row['fma_plan']})")
    print("  ".join(parts), flush=True)


def _summary(rows):
    print("\nratio cuDNN / xconvt at each precision (geometric mean over the cases)")
    for prec, ck, xk in COLUMNS:
        r = [_ms(row, ck) / _ms(row, xk) for row in rows]
        r = [v for v in r if math.isfinite(v) and v > 0]
        if r:
            gm = math.exp(sum(map(math.log, r)) / len(r))
            print(f"  {prec:9s} geomean {gm:.2f}x, min {min(r):.2f}x, "
                  f"{sum(v >= 1 for v in r)}/{len(r)} cases >= 1.0x")
