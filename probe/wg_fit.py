"""Fits _FIT[(mode, 5)] (xconvt_wgmma's estimate) to probe/wg_sweep.py's
records: non-negative relative least squares of (ms - copy) over the five
terms of mma.features (six for 3xTF32: the features recomputed with the
current code).  python probe/wg_fit.py DIR"""
import json, sys, glob, collections
import numpy as np
from scipy.optimize import nnls

sys.path.insert(0, ".")


def _terms(r, mode):
    """mma.features of the record's case and tile (recomputed: the sweep
    recorded five terms)."""
    from bench.cases import GPU_SUITE
    from xconvt._params import conv3d_params
    from xconvt.backends.cuda import mma

    c = next(c for c in GPU_SUITE if c.name == r["case"])
    p = c.params()
    if r.get("conv3d"):
        p3, _ = conv3d_params(p.batched_output_shape, p.weight_shape, None, c.stride,
                              c.padding, c.dilation, c.groups)
        p = mma.Conv3dGemm(p3)
    dt = {"3xtf32": "float32", "tf32": "float32"}.get(mode, mode)
    dtc, item = mma.DTYPES[dt]
    mcode = mma._mode(dt, "tf32" if mode == "tf32" else "float32")[0]
    threads = r["bm"] // 64 * 128
    smem = mma._smem(r["bm"], r["bn"], r["bk"], r["stages"], item, mode=mcode, slab=5)
    cfg = mma.MmaConfig(dtc, mcode, "int", r["bm"], r["bn"], r["bk"], 64, r["bn"], r["stages"],
                        threads, smem, mma._wg_minb(r["bn"], threads, mcode), 5)
    terms = list(mma.features(p, cfg, mode, 132)[1])
    return terms if mode == "3xtf32" else terms[:5]


from xconvt.backends.cuda.mma import WG_TILES  # noqa: E402

recs = collections.defaultdict(list)
for f in glob.glob(sys.argv[1] + "/wg_sweep_*.json"):
    mode = f.rsplit("/", 1)[-1].split("wg_sweep_")[1].split(".json")[0].replace("_conv3d", "")
    for r in json.load(open(f)):
        # the planner's stage counts and tiles
        if r["stages"] in (3, 4) and (r["bm"], r["bn"]) in WG_TILES:
            recs[mode].append(dict(r, conv3d="conv3d" in f))
for mode, rs in sorted(recs.items()):
    t = np.array([r["ms"] * 1e-3 for r in rs])
    c = np.array([r["copy_s"] for r in rs])
    X = np.array([_terms(r, mode) for r in rs])
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
        # ties (3 and 4 stages often estimate alike) go to 4, as in the planner
        by[(r["case"], r["conv3d"])].append((p, -r["stages"], r["ms"], r["cfg"]))
    miss = []
    for k, v in by.items():
        pick = min(v)[2]; best = min(x[2] for x in v)
        if pick > 1.05 * best:
            miss.append(f"{k[0]}{' conv3d' if k[1] else ''} {pick/best:.2f}")
    print("   picks >5% off best:", miss)
