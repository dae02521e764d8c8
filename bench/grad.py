"""``python -m bench grad``: forward, input gradient and weight gradient against PyTorch.

Per case of the CPU suite (NumPy, PyTorch CPU with the same thread count) or
the GPU suite (CuPy, cuDNN through PyTorch, float32 with TF32 off), three
operations on the same seeded inputs ``x``, ``w`` and ``gy`` (the output
gradient, ``N(0, 1)``):

forward   ``xconvt.conv_transpose3d``        vs ``torch.nn.functional.conv_transpose3d``
input     ``xconvt.grad.conv_transpose3d_input``  vs ``aten.convolution_backward``
          with output mask ``(True, False, False)``
weight    ``xconvt.grad.conv_transpose3d_weight`` vs the same with ``(False, True, False)``
autograd  (``--ops ...,autograd``) one forward and backward through PyTorch's autograd:
          ``xconvt.torch.conv_transpose3d`` vs ``F.conv_transpose3d``, then
          ``torch.autograd.grad`` for the input and the weight; both timed on
          PyTorch's stream.  Against forward + input + weight above it shows what
          the PyTorch integration adds.

On the GPU, xconvt and cuDNN are timed in alternating blocks of back-to-back
calls, as ``bench gpu`` times the forward (``--no-pair``: each call alone,
waited for, so host launch time that leaves the GPU idle counts; the autograd
op is always timed that way, on PyTorch's stream).

Each line gives both medians (ms), the ratio PyTorch / xconvt (above 1:
xconvt faster) and xconvt's relative L2 difference from PyTorch; the last
lines give the geometric mean of the ratios per operation.  ``--rounds R``
repeats the whole suite ``R`` times (cases interleaved) and reports each
ratio's median and its spread (min-max over rounds), for noisy machines.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np

from . import cases as C
from .devices import DeviceUnavailable, make_device

__all__ = ["main"]

OPS = ("forward", "input", "weight", "autograd")
DEFAULT_OPS = OPS[:3]


def _parser():
    p = argparse.ArgumentParser(prog="python -m bench grad", description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--suite", choices=("default", "small"), default="default",
                   help="default: the device's suite; small: issue 15's small layers (CPU)")
    p.add_argument("--cases", default=None, help="comma-separated case names or globs")
    p.add_argument("--ops", default=",".join(DEFAULT_OPS),
                   help="comma-separated: forward,input,weight,autograd")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (cpu 5, gpu 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs (cpu 1, gpu 3)")
    p.add_argument("--rounds", type=int, default=1, help="repeat the whole suite")
    p.add_argument("--algorithm", default="auto", help="xconvt algorithm (auto, direct, fft)")
    p.add_argument("--json", type=Path, default=None, help="write the records here")
    p.add_argument("--no-pair", dest="pair", action="store_false",
                   help="gpu: time each call alone, waited for (host launch time counts), "
                        "instead of alternating blocks of back-to-back calls with cuDNN")
    p.add_argument("--block-ms", type=float, default=5.0,
                   help="gpu, paired: GPU time per block of calls (default 5 ms)")
    return p


class _Opts:
    def __init__(self, device, args):
        gpu = device == "gpu"
        small = args.suite == "small"  # microsecond calls: many of them, as bench small
        self.block_ms = args.block_ms
        self.repeat = args.repeat or (200 if small else 20 if gpu else 5)
        self.warmup = args.warmup if args.warmup is not None else (
            20 if small else 3 if gpu else 1)
        self.min_time = 1.0 if gpu else 0.2 if small else 0.0
        self.max_time = 10.0 if gpu else 5.0 if small else 30.0


def _functions(case, dev, torch, x, w, gy, algorithm):
    """``{op: (xconvt_fn, torch_fn)}`` on device arrays / tensors."""
    import xconvt
    import xconvt.torch as xt
    from xconvt import grad

    kw = case.kwargs
    tx, tw, tgy = dev.torch_tensor(x), dev.torch_tensor(w), dev.torch_tensor(gy)
    F = torch.nn.functional
    bw = torch.ops.aten.convolution_backward
    t_args = (list(case.stride), list(case.padding), list(case.dilation), True,
              list(case.output_padding), case.groups)

    def autograd(conv):
        """One forward and backward through PyTorch's autograd; the weight gradient."""
        xg, wg = tx.detach().requires_grad_(), tw.detach().requires_grad_()

        def step():
            out = conv(xg, wg, **kw)
            return torch.autograd.grad(out, (xg, wg), tgy)[1]
        return step

    ours_autograd = autograd(lambda *a, **k: xt.conv_transpose3d(*a, **k,
                                                                 algorithm=algorithm))
    return {
        "autograd": (lambda: dev.from_torch(ours_autograd()), autograd(F.conv_transpose3d)),
        "forward": (lambda: xconvt.conv_transpose3d(x, w, **kw, algorithm=algorithm),
                    lambda: F.conv_transpose3d(tx, tw, **kw)),
        "input": (lambda: grad.conv_transpose3d_input(x.shape, w, gy, **kw,
                                                      algorithm=algorithm),
                  lambda: bw(tgy, tx, tw, None, *t_args, (True, False, False))[0]),
        "weight": (lambda: grad.conv_transpose3d_weight(x, w.shape, gy, **kw,
                                                        algorithm=algorithm),
                   lambda: bw(tgy, tx, tw, None, *t_args, (False, True, False))[1]),
    }


def _rel_l2(dev, a, b):
    a = dev.to_host(a).astype(np.float64)
    b = np.asarray(b).astype(np.float64)
    den = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / den) if den else float(np.linalg.norm(a))


_OPERATION = {"forward": "forward", "input": "input_grad", "weight": "weight_grad"}


def _plan_name(case, op, args):
    """The plan ``auto`` (or the forced algorithm) runs for ``op``
    (:func:`xconvt.explain` of the case on this device); None for autograd."""
    import xconvt

    if op not in _OPERATION:
        return None
    p = case.params()
    try:
        e = xconvt.explain(p.input_shape, p.weight_shape, bias=bool(case.bias) and op == "forward",
                           stride=p.stride, padding=p.padding,
                           output_padding=p.output_padding, groups=p.groups,
                           dilation=p.dilation, dtype=args.dtype,
                           device="cuda" if args.device == "gpu" else "cpu",
                           algorithm=args.algorithm if args.algorithm != "measure" else "auto",
                           operation=_OPERATION[op])
    except Exception:  # noqa: BLE001 - a name for the report; the timing stands without it
        return None
    return None if e.choice is None else e.choice.name


def run(args):
    if args.suite == "small":
        suite = C.SMALL_SUITE
    else:
        suite = C.GPU_SUITE if args.device == "gpu" else C.CPU_SUITE
    cases = C.select(suite, args.cases)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad:
        msg = f"unknown op(s) {', '.join(bad)}; choose from {', '.join(OPS)}"
        raise ValueError(msg)
    dev = make_device(args.device, args.threads)
    torch = dev.setup_torch()
    if torch is None:
        msg = "PyTorch (with CUDA on the GPU) is needed as the anchor"
        raise DeviceUnavailable(msg)
    opts = _Opts(args.device, args)
    records = {}
    for rnd in range(args.rounds):
        for case in cases:
            x, w, _ = case.make_inputs(args.dtype)
            rng = np.random.default_rng([1, *map(ord, case.name)])
            gy = rng.standard_normal(case.params().batched_output_shape).astype(args.dtype)
            dx, dw, dgy = dev.put(x), dev.put(w), dev.put(gy)
            fns = _functions(case, dev, torch, dx, dw, dgy, args.algorithm)
            for op in ops:
                ours, theirs = fns[op]
                if args.device == "gpu" and args.pair and op != "autograd":
                    # as bench gpu: blocks of back-to-back calls, alternating
                    # with cuDNN's (bench/timing.py, time_events_paired)
                    t = dev.time_paired(ours, theirs, opts)
                    t_ours, t_ref = t.mine, t.theirs
                else:
                    t_ref = dev.time_torch(theirs, opts)
                    t_ours = (dev.time_torch if op == "autograd" else dev.time)(ours, opts)
                rec = records.setdefault((case.name, op), {
                    "case": case.name, "summary": case.summary(), "op": op,
                    "torch_ms": [], "xconvt_ms": [], "ratio": []})
                rec["torch_ms"].append(t_ref.median)
                rec["xconvt_ms"].append(t_ours.median)
                rec["ratio"].append(t_ref.median / t_ours.median)
                if rnd == 0:
                    ref = dev.from_torch(t_ref.output)
                    rec["rel_l2"] = _rel_l2(dev, t_ours.output, dev.to_host(ref))
                    rec["plan"] = _plan_name(case, op, args)
                print(f"  round {rnd + 1} {case.name:16s} {op:8s} torch {t_ref.median:9.3f} "
                      f"ms  xconvt {t_ours.median:9.3f} ms  ratio "
                      f"{t_ref.median / t_ours.median:6.2f}", file=sys.stderr, flush=True)
            del fns, dx, dw, dgy
            dev.release()
    return dev, list(records.values()), ops


def report(dev, records, ops, rounds, timing="single calls"):
    lines = [f"# bench grad on {dev.label()}, {rounds} round(s), {timing}; ratio = torch / "
             "xconvt (median over rounds, [min, max])"]
    lines.append(f"{'case':16s} {'op':7s} {'torch ms':>9s} {'xconvt ms':>10s} "
                 f"{'ratio':>6s} {'spread':>13s} {'rel L2':>8s}  plan")
    for r in records:
        ratio = statistics.median(r["ratio"])
        lines.append(
            f"{r['case']:16s} {r['op']:7s} {statistics.median(r['torch_ms']):9.3f} "
            f"{statistics.median(r['xconvt_ms']):10.3f} {ratio:6.2f} "
            f"[{min(r['ratio']):5.2f},{max(r['ratio']):5.2f}] {r.get('rel_l2', math.nan):8.1e}"
            f"  {r.get('plan') or ''}")
    for op in ops:
        rs = [statistics.median(r["ratio"]) for r in records if r["op"] == op]
        if rs:
            gm = math.exp(sum(math.log(v) for v in rs) / len(rs))
            lines.append(f"geometric mean {op:7s} {gm:.2f}x over {len(rs)} cases "
                         f"(min {min(rs):.2f}x)")
    return "\n".join(lines)


def main(argv=None):
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        dev, records, ops = run(args)
    except (ValueError, DeviceUnavailable) as e:
        print(f"bench grad: {e}", file=sys.stderr)
        return 2
    paired = args.device == "gpu" and args.pair
    print(report(dev, records, ops, args.rounds,
                 "paired blocks of back-to-back calls" if paired else "single calls"))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": dev.describe(), "records": records,
                                         "timing": "paired" if paired else "single"},
                                        indent=1, default=str))
    return 0
