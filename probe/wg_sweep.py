"""xconvt_wgmma (issue 11): correctness, then every candidate configuration on
the dense suite cases, against cuDNN and the mma.sync planner's pick in the
same process.  python probe/wg_sweep.py MODES CASES [conv3d]
Writes $OUT/wg_sweep_<mode>[_conv3d].json (times and estimate features, for the fit)."""
import sys, math, json, os, functools
import numpy as np, cupy, torch
sys.path.insert(0, ".")
from bench import cases as C
from xconvt.backends.cuda import mma
from xconvt._params import conv3d_params

torch.backends.cudnn.benchmark = True
VARIANT = os.environ.get("WG_VARIANT", "wgmma")  # wgmma_slab: box staging, "mma" is then wgmma's pick


def ev(fn, reps=20):
    for _ in range(2): fn()
    cupy.cuda.runtime.deviceSynchronize()
    e0, e1 = cupy.cuda.Event(), cupy.cuda.Event()
    best = 1e9
    for _ in range(3):
        e0.record()
        for _ in range(reps): fn()
        e1.record(); e1.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(e0, e1) / reps)
    return best


def smoke():
    """A small layer in float16 through every candidate of VARIANT against float64."""
    c = (C.Case("t", 2, 40, 24, (6, 7, 9), 3, 2, 1, 1, 1) if VARIANT == "wgmma" else
         C.Case("t", 2, 24, 24, (6, 7, 11), 3, 2, 1, 1, 1) if VARIANT == "wgmma_taps" else
         C.Case("t", 2, 40, 24, (6, 7, 11), 2, 2, 0, 0, 1) if VARIANT == "wgmma_pair" else
         C.Case("t", 2, 40, 24, (6, 7, 12), 3, 2, 1, 1, 1) if VARIANT == "wgmma_fold" else
         C.Case("t", 2, 40, 24, (6, 7, 11), 3, 1, 1))
    p = c.params()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(p.input_shape).astype(np.float16)
    w = rng.standard_normal(p.weight_shape).astype(np.float16)
    ref = torch.nn.functional.conv_transpose3d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64), None, c.stride, c.padding, c.output_padding)
    errs = []
    for cfg in mma._candidates(p, "float16", "float32", 232448, VARIANT):
        out = mma.mma_direct(p, cupy.asarray(x), cupy.asarray(w), None, config=cfg)
        o = torch.tensor(out.get().astype(np.float64))
        errs.append((float(torch.linalg.norm(o - ref) / torch.linalg.norm(ref)), cfg.name))
    print("smoke", max(errs), len(errs), flush=True)
    return max(errs)[0] < 2e-3


def main():
    modes, want = sys.argv[1].split(","), sys.argv[2].split(",")
    conv3d = len(sys.argv) > 3 and sys.argv[3] == "conv3d"
    if not smoke():
        print("wgmma wrong; stopping", flush=True)
        return
    for mode in modes:
        dt = {"tf32": "float32", "3xtf32": "float32", "float16": "float16", "bfloat16": "bfloat16"}[mode]
        prec = "tf32" if mode == "tf32" else "float32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dt]
        item = mma.DTYPES[dt][1]
        records = []
        for c in C.GPU_SUITE:
            if c.name not in want:
                continue
            p = c.params()
            if conv3d:
                params, _ = conv3d_params(p.batched_output_shape, p.weight_shape, None, c.stride, c.padding, c.dilation, c.groups)
                geo = mma.Conv3dGemm(params); xs = p.batched_output_shape
            else:
                geo = p; xs = p.input_shape
            tx = torch.randn(xs, device="cuda", dtype=torch.float32).to(tdt)
            tw = (torch.randn(p.weight_shape, device="cuda") / math.sqrt(np.prod(p.weight_shape[1:]))).to(tdt)
            if conv3d:
                zx = torch.zeros(params.input_shape, device="cuda", dtype=tdt)
                ref_fn = lambda: torch.ops.aten.convolution_backward(tx, zx, tw, None, list(c.stride), list(c.padding), list(c.dilation), True, list(c.output_padding), c.groups, [True, False, False])[0]
                ref = torch.ops.aten.convolution_backward(tx.double(), zx.double(), tw.double(), None, list(c.stride), list(c.padding), list(c.dilation), True, list(c.output_padding), c.groups, [True, False, False])[0]
            else:
                ref_fn = lambda: torch.nn.functional.conv_transpose3d(tx, tw, None, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
                ref = torch.nn.functional.conv_transpose3d(tx.double(), tw.double(), None, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
            tc = ev(ref_fn)
            x = cupy.asarray(tx.view(torch.int16) if item == 2 else tx)
            w = cupy.asarray(tw.view(torch.int16) if item == 2 else tw)
            if item == 2:
                import ml_dtypes
                npdt = np.float16 if dt == "float16" else ml_dtypes.bfloat16
                x, w = x.view(npdt), w.view(npdt)
            if VARIANT == "wgmma_fold":  # the planner's pick without the fold
                fp, mma.fold_params = mma.fold_params, lambda params: None
                mma.mma_config.cache_clear()
                old = mma.mma_config(geo, dt, prec, 132, 232448, "wgmma")
                mma.fold_params = fp
                mma.mma_config.cache_clear()
            else:
                old = mma.mma_config(geo, dt, prec, 132, 232448, "wgmma" if VARIANT != "wgmma" else "auto")
            if isinstance(old, str):
                print(c.name, mode, "no config:", old, flush=True); continue
            t_old = ev(lambda: mma.mma_direct(geo, x, w, None, prec, config=old[0]))
            res = []
            cands = []
            for c0 in mma._candidates(geo, dt, prec, 232448, VARIANT):
                if c0.slab == 7:
                    cands.append(c0); continue
                for st in ((c0.stages,) if os.environ.get("WG_STAGES") == "own" else (3, 4, 5, 6)):
                    sm = mma._smem(c0.bm, c0.bn, c0.bk, st, item, sc=c0.sc, mode=c0.mode, slab=c0.slab,
                                   ntaps=mma._max_taps(geo), tpk=c0.tpk)
                    if c0.vec:  # the epilogue's tile in the stages' shared memory
                        sm = max(sm, mma.vec_smem(c0.bm, c0.bn, item))
                    if c0.fold:
                        sm = max(sm, mma.fold_smem(c0.bm, c0.bn))
                    if sm <= 232448 and (st <= c0.stages or st == 6):
                        cands.append(c0._replace(stages=st, smem=sm))
            for cfg in cands:
                try:
                    out = mma.mma_direct(geo, x, w, None, prec, config=cfg)
                    t = ev(lambda: mma.mma_direct(geo, x, w, None, prec, config=cfg))
                except Exception as e:
                    print("  fail", cfg.name, str(e)[:300], flush=True); continue
                o = torch.as_tensor(out.view(cupy.int16) if item == 2 else out, device="cuda")
                if item == 2: o = o.view(tdt)
                err = float(torch.linalg.norm(o.double() - ref) / torch.linalg.norm(ref))
                copy, terms = mma.features(geo, cfg, mode, 132)
                est = mma.estimate(geo, cfg, mode, 132)
                res.append((t, cfg, err, est))
                records.append(dict(case=c.name, cfg=cfg.name, bm=cfg.bm, bn=cfg.bn, bk=cfg.bk, stages=cfg.stages,
                                    ms=t, err=err, est_ms=est * 1e3, copy_s=copy, terms=terms, cudnn_ms=tc, mma_ms=t_old))
            res.sort(key=lambda r: r[0])
            pick = mma.mma_config(geo, dt, prec, 132, 232448, "wgmma")
            pk = pick[0].name if not isinstance(pick, str) else pick
            print(f"{c.name:14s} {mode:8s} cudnn {tc:.3f} mma {t_old:.3f} (est {old[1]*1e3:.3f}) | est-pick {pk.split('<')[1][:-1] if '<' in pk else pk}: "
                  + " | ".join(f"{r[1].bm}x{r[1].bn}x{r[1].bk} s{r[1].stages} {r[0]:.3f} (e{r[3]*1e3:.3f}, x{tc/r[0]:.2f}, {r[2]:.0e})" for r in res[:4])
                  + f" | worst err {max((r[2] for r in res), default=0):.1e}", flush=True)
        out = os.environ.get("OUT", ".")
        with open(f"{out}/wg_sweep_{mode}{'_conv3d' if conv3d else ''}{'_box' if VARIANT != 'wgmma' else ''}.json", "w") as f:
            json.dump(records, f)


main()
