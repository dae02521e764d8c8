"""Fits _FIT[(mode, 5)] (xconvt_wgmma's estimate) to probe/wg_sweep.py's
records: non-negative relative least squares of (ms - copy) over the five
terms.  python probe/wg_fit.py DIR"""
import json, sys, glob, collections
import numpy as np
from scipy.optimize import nnls

recs = collections.defaultdict(list)
for f in glob.glob(sys.argv[1] + "/wg_sweep_*.json"):
    mode = f.split("wg_sweep_")[1].split(".json")[0].replace("_conv3d", "")
    for r in json.load(open(f)):
        if r["stages"] in (3, 4):  # the planner's stage counts
            recs[mode].append(r)
for mode, rs in sorted(recs.items()):
    t = np.array([r["ms"] * 1e-3 for r in rs])
    c = np.array([r["copy_s"] for r in rs])
    X = np.array([r["terms"] for r in rs])
    scale = X.max(axis=0); scale[scale == 0] = 1
    A = (X / scale) / t[:, None]
    b = (t - c) / t
    f, _ = nnls(A, b)
    f = f / scale
    pred = c + X @ f
    ratio = pred / t
    print(f'("{mode}", 5): ({", ".join(f"{v:.3g}" for v in f)}),  # n={len(t)} pred/meas {ratio.min():.2f}-{ratio.max():.2f}')
    # how often the fit's pick per case is within 5% of the case's best
    by = collections.defaultdict(list)
    for r, p in zip(rs, pred):
        by[(r["case"], r["terms"][1] > 0, r["cudnn_ms"])].append((p, r["ms"], r["cfg"]))
    miss = []
    for k, v in by.items():
        pick = min(v)[1]; best = min(x[1] for x in v)
        if pick > 1.05 * best:
            miss.append(f"{k[0]} {pick/best:.2f}")
    print("   picks >5% off best:", miss)
