"""Fits _FIT[(mode, 7)] (xconvt_wgmma's resident box staging) to
probe/wg_sweep.py's records of WG_VARIANT=wgmma_box (wg_sweep_<mode>_box.json):
non-negative relative least squares of (ms - copy) over the terms the sweep
recorded (mma.features).  python probe/wg_fit_box.py DIR"""
import json, sys, glob, collections
import numpy as np
from scipy.optimize import nnls

recs = collections.defaultdict(list)
for f in glob.glob(sys.argv[1] + "/wg_sweep_*_box.json"):
    mode = f.rsplit("/", 1)[-1].split("wg_sweep_")[1].split("_box.json")[0].replace("_conv3d", "")
    recs[mode] += json.load(open(f))
for mode, rs in sorted(recs.items()):
    rs = [r for r in rs if r["err"] < 0.02]
    t = np.array([r["ms"] * 1e-3 for r in rs])
    c = np.array([r["copy_s"] for r in rs])
    X = np.array([r["terms"] for r in rs])
    scale = X.max(axis=0); scale[scale == 0] = 1
    f, _ = nnls((X / scale) / t[:, None], (t - c) / t)
    f = f / scale
    pred = c + X @ f
    ratio = pred / t
    print(f'("{mode}", 7): ({", ".join(f"{v:.3g}" for v in f)}),  # n={len(t)} pred/meas {ratio.min():.2f}-{ratio.max():.2f}')
    by = collections.defaultdict(list)
    for r, p in zip(rs, pred):
        by[r["case"]].append((p, r["ms"], r["cfg"], r["mma_ms"], r["cudnn_ms"]))
    for k, v in sorted(by.items()):
        pick = min(v); best = min(v, key=lambda x: x[1])
        print(f"   {k:14s} pick {pick[1]:.3f} best {best[1]:.3f} {best[2]} | slab5 pick {pick[3]:.3f} cudnn {pick[4]:.3f}")
