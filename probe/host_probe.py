"""Host time against device time of whole calls (issue 11): per case and
dtype, the wall time per call of 200 back-to-back ``conv_transpose3d`` calls
(the host's launch rate), the CUDA-event time per call of the same loop, and
cuDNN's (PyTorch's) both ways, same arrays.  Where the wall time per call
reaches the event time, the host bounds the call.
python probe/host_probe.py DTYPES CASES   (writes $OUT/host_probe.json)"""
import json
import os
import sys
import time

import cupy
import numpy as np
import torch

sys.path.insert(0, ".")
from bench import cases as C  # noqa: E402
import xconvt  # noqa: E402


def rates(fn, n=200):
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    e0, e1 = cupy.cuda.Event(), cupy.cuda.Event()
    best_w, best_e = 1e9, 1e9
    for _ in range(3):
        e0.record()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t1 = time.perf_counter()
        e1.record()
        e1.synchronize()
        best_w = min(best_w, (t1 - t0) / n * 1e3)
        best_e = min(best_e, cupy.cuda.get_elapsed_time(e0, e1) / n)
    return best_w, best_e


def main():
    dtypes, want = sys.argv[1].split(","), sys.argv[2].split(",")
    torch.backends.cudnn.benchmark = True
    recs = []
    for dt in dtypes:
        tdt = {"float16": torch.float16, "bfloat16": torch.bfloat16,
               "float32": torch.float32}[dt]
        for c in C.GPU_SUITE:
            if c.name not in want:
                continue
            p = c.params()
            tx = torch.randn(p.input_shape, device="cuda").to(tdt)
            tw = (torch.randn(p.weight_shape, device="cuda") / 30).to(tdt)
            f_t = lambda: torch.nn.functional.conv_transpose3d(  # noqa: E731
                tx, tw, None, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
            if dt == "bfloat16":
                import ml_dtypes
                x = cupy.asarray(tx.view(torch.int16)).view(ml_dtypes.bfloat16)
                w = cupy.asarray(tw.view(torch.int16)).view(ml_dtypes.bfloat16)
            else:
                x, w = cupy.asarray(tx), cupy.asarray(tw)
            f_x = lambda: xconvt.conv_transpose3d(  # noqa: E731
                x, w, None, stride=c.stride, padding=c.padding,
                output_padding=c.output_padding, groups=c.groups, dilation=c.dilation,
                precision="tf32" if dt == "float32" else None)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = dt == "float32"
            xw, xe = rates(f_x)
            tw_, te = rates(f_t)
            r = dict(case=c.name, dtype=dt, xconvt_wall_ms=xw, xconvt_event_ms=xe,
                     torch_wall_ms=tw_, torch_event_ms=te)
            recs.append(r)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in r.items()}), flush=True)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "host_probe.json"), "w") as f:
            json.dump(recs, f, indent=1)


if __name__ == "__main__":
    main()
