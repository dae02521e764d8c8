"""Paired cuDNN / xconvt ratios of the GPU suite for whichever xconvt is first on
sys.path (issue 10: the planner refactor against the code before it, same card,
same session).  Prints one line per case and method; JSON to argv[1]."""
import json, sys, types
import numpy as np
# bench from the working tree, xconvt from PYTHONPATH (its first entry wins)
import xconvt
from bench import cases as C
from bench.devices import make_device

dev = make_device("gpu")
torch = dev.setup_torch() if dev.torch is None else dev.torch
opts = types.SimpleNamespace(warmup=3, min_time=0.3, max_time=5.0, block_ms=5.0)
out = {"xconvt": str(xconvt.__file__), "records": []}
for c in C.GPU_SUITE:
    hx, hw, hb = c.make_inputs(np.dtype(np.float32), 0)
    x, w = dev.put(hx), dev.put(hw)
    tx, tw = dev.torch_tensor(x), dev.torch_tensor(w)
    kw = c.kwargs
    F = torch.nn.functional
    anchor = lambda: F.conv_transpose3d(tx, tw, None, **kw)  # noqa: E731
    for method in ("auto",):
        fn = lambda: xconvt.conv_transpose3d(x, w, None, **kw, algorithm=method)  # noqa: E731
        with torch.inference_mode():
            t = dev.time_paired(fn, anchor, opts)
        ref = anchor()
        got = fn()
        err = float(np.linalg.norm(dev.to_host(got) - ref.cpu().numpy())
                    / np.linalg.norm(ref.cpu().numpy()))
        rec = dict(case=c.name, method=method, ratio=t.ratio, iqr=t.ratio_iqr,
                   xconvt_ms=t.mine.median, torch_ms=t.theirs.median, err=err)
        out["records"].append(rec)
        print(f"{c.name:16s} {method:6s} ratio {t.ratio:6.3f} (IQR {100 * t.ratio_iqr / t.ratio:.1f}%)"
              f"  xconvt {t.mine.median:.4f} ms  cudnn {t.theirs.median:.4f} ms  err {err:.1e}",
              flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1)
