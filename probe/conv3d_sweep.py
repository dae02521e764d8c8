"""conv3d configurations on the GPU suite: every tensor-core candidate (mode
given) and FMA (COB, WB) variants, ms, against the planner's pick.

python probe/conv3d_sweep.py MODE CASES   (MODE: 3xtf32, tf32, float16; fma)
"""
import sys
import numpy as np, cupy
sys.path.insert(0, ".")
from bench import cases as C
from xconvt._params import conv3d_params
from xconvt.backends.cuda import mma, conv3d

def ev(fn, reps=20):
    for _ in range(3): fn()
    cupy.cuda.runtime.deviceSynchronize()
    e0, e1 = cupy.cuda.Event(), cupy.cuda.Event()
    best = 1e9
    for _ in range(3):
        e0.record()
        for _ in range(reps): fn()
        e1.record(); e1.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(e0, e1) / reps)
    return best

mode, want = sys.argv[1], sys.argv[2].split(",")
for c in C.GPU_SUITE:
    if c.name not in want:
        continue
    p = c.params()
    ys, ws = p.batched_output_shape, p.weight_shape
    params, _ = conv3d_params(ys, ws, None, c.stride, c.padding, c.dilation, c.groups)
    rng = np.random.default_rng(0)
    dt = "float16" if mode == "float16" else "float32"
    y = cupy.asarray(rng.standard_normal(ys).astype(dt))
    w = cupy.asarray((rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(dt))
    res = []
    if mode == "fma":
        for cob in (1, 2, 4, 8, 16):
            for wb in (2, 4, 8):
                plan = conv3d.Conv3dFmaPlan(params, "float32", cob, wb, 0.0)
                if plan._smem > 48 * 1024:
                    continue
                try:
                    t = ev(lambda: plan(y, w, None))
                except Exception as e:
                    continue
                res.append((t, f"cob{cob} wb{wb}"))
        pick = conv3d.config(params, "float32")
        print(f"{c.name:16s} pick {pick} | " + " | ".join(f"{n} {t:.3f}" for t, n in sorted(res)[:8]), flush=True)
        continue
    geo = mma.Conv3dGemm(params)
    prec = "tf32" if mode == "tf32" else "float32"
    pick, est = mma.mma_config(geo, dt, prec, 132, 232448)
    for cfg in mma._candidates(geo, dt, prec, 232448, "auto"):
        try:
            t = ev(lambda: mma.mma_direct(geo, y, w, None, prec, config=cfg))
        except Exception as e:
            print("  fail", cfg.name, str(e)[:100]); continue
        e_ = mma.estimate(geo, cfg, mma._mode(dt, prec)[1], 132)
        res.append((t, f"{cfg.bm}x{cfg.bn}x{cfg.bk} s{cfg.slab} w{cfg.wm}x{cfg.wn} est {e_*1e3:.3f}"))
    tp = [t for t, n in res if n.startswith(f"{pick.bm}x{pick.bn}x{pick.bk} s{pick.slab} w{pick.wm}x{pick.wn}")]
    print(f"{c.name:16s} {mode} pick {pick.bm}x{pick.bn}x{pick.bk} s{pick.slab} est {est*1e3:.3f} meas {tp[0] if tp else -1:.3f} | "
          + " | ".join(f"{n} {t:.3f}" for t, n in sorted(res)[:6]), flush=True)
