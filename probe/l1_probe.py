"""xconvt_wgmma: A through L1 (``l1a``, cp.async.ca) and 256-row tiles against
the planner's pick and cuDNN, same process, same arrays (issue 11).
python probe/l1_probe.py MODES CASES   (writes $OUT/l1_probe.json)

Per case and mode: the pick; the pick with l1a (default carveout, and the
carveout at 50% shared memory); the pick's tile at 256 rows (512 threads)
with and without l1a; the non-fold pick where the pick folds.  Each
variant's error against float64 is checked."""
import sys, math, json, os
import numpy as np, cupy, torch
sys.path.insert(0, ".")
from bench import cases as C
from xconvt.backends.cuda import mma
from xconvt._plan import Problem, DEVICE_PRESETS
from xconvt._select import choose

torch.backends.cudnn.benchmark = True


def ev(fn, reps=30):
    for _ in range(3): fn()
    cupy.cuda.runtime.deviceSynchronize()
    e0, e1 = cupy.cuda.Event(), cupy.cuda.Event()
    best = 1e9
    for _ in range(5):
        e0.record()
        for _ in range(reps): fn()
        e1.record(); e1.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(e0, e1) / reps)
    return best


def variants(geo, pick, dt, item):
    """(name, config, carveout) to time: the pick, with A through L1, and its
    tile with more rows per warpgroup (MW) or per block."""
    out = [("pick", pick, None), ("pick+l1", pick._replace(l1a=1), None)]
    if pick.fold and pick.bm == 128:
        out += [("fold mw2 256", mma.with_rows(geo, pick, 256, 2), None)]
    if pick.fold:
        fp, mma.fold_params = mma.fold_params, lambda params: None
        mma.mma_config.cache_clear()
        plain = mma.mma_config(geo, dt, prec_of(pick), 132, 232448, "wgmma")
        mma.fold_params = fp
        mma.mma_config.cache_clear()
        if isinstance(plain, str):
            return out
        pick = plain[0]
        out += [("plain", pick, None)]
    if pick.bm != 128 or pick.slab != 5:
        return out
    rows = [("mw2 256", 256, 2)]
    if pick.bn <= 64:
        rows += [("mw4 512", 512, 4)]
    rows += [("mw1 256", 256, 1)]
    for name, bm, mw in rows:
        for st in (pick.stages, 3):
            c = mma.with_rows(geo, pick, bm, mw, st)
            if c.smem <= 232448 and (c.smem <= 116 * 1024 or st == 3):
                out.append((name + f" s{st}", c, None))
                if name == "mw2 256":
                    out.append((name + f" s{st}+l1", c._replace(l1a=1), None))
                break
    return out


def parts(p, cfg, x, w):
    """(prep ms, main kernel ms) of cfg: the pack and copy launch alone, the
    GEMM alone on their results."""
    import cupy
    if cfg.pair:
        p = mma.pair_params(p)
    L = mma._launch_getter()(p, cfg)
    out = cupy.empty(p.batched_output_shape, dtype=x.dtype)
    wp = cupy.zeros(L.wp_size, dtype=x.dtype)
    xcl = cupy.empty(L.cl_size, dtype=x.dtype)
    prep = lambda: L.prep(L.prep_grid, (256,), (x, xcl, L.args[0], w, L.pack_tabs, wp, L.prep_pack))
    prep()
    main = lambda: L.kern(L.grid, L.block, (xcl, wp, xcl, out, L.meta, L.btab, L.args[0]), shared_mem=L.smem)
    return ev(prep), ev(main)


def prec_of(cfg):
    return "tf32" if cfg.dt == 0 and cfg.mode == 0 else "float32"


def main():
    modes, want = sys.argv[1].split(","), sys.argv[2].split(",")
    records = []
    for mode in modes:
        dt = {"tf32": "float32", "3xtf32": "float32", "float16": "float16", "bfloat16": "bfloat16"}[mode]
        prec = "tf32" if mode == "tf32" else "float32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
        tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dt]
        item = mma.DTYPES[dt][1]
        for c in C.GPU_SUITE:
            if c.name not in want:
                continue
            p = c.params()
            tx = torch.randn(p.input_shape, device="cuda").to(tdt)
            tw = (torch.randn(p.weight_shape, device="cuda") / math.sqrt(np.prod(p.weight_shape[1:]))).to(tdt)
            ref_fn = lambda: torch.nn.functional.conv_transpose3d(tx, tw, None, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
            ref = torch.nn.functional.conv_transpose3d(tx.double(), tw.double(), None, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
            x = cupy.asarray(tx.view(torch.int16) if item == 2 else tx)
            w = cupy.asarray(tw.view(torch.int16) if item == 2 else tw)
            if item == 2:
                import ml_dtypes
                npdt = np.float16 if dt == "float16" else ml_dtypes.bfloat16
                x, w = x.view(npdt), w.view(npdt)
            plan = choose(Problem("conv_transpose3d", p, dt, DEVICE_PRESETS["h200"], prec))
            if not hasattr(plan, "cfg"):
                print(c.name, mode, "pick is", plan, flush=True)
                continue
            line = []
            for name, cfg, carve in variants(p, plan.cfg, dt, item):
                try:
                    out = mma.mma_direct(p, x, w, None, prec, config=cfg)
                    if carve is not None:
                        k = mma.rt.kernel(mma._SOURCE_PATH, cfg.name, arch="sm_90a")
                        k.preferred_shared_memory_carveout = carve
                    t = ev(lambda: mma.mma_direct(p, x, w, None, prec, config=cfg))
                    tc = ev(ref_fn)
                    if carve is not None:
                        k.preferred_shared_memory_carveout = -1
                except Exception as e:
                    print("  fail", name, cfg.name, str(e)[:300], flush=True)
                    continue
                o = torch.as_tensor(out.view(cupy.int16) if item == 2 else out, device="cuda")
                if item == 2: o = o.view(tdt)
                err = float(torch.linalg.norm(o.double() - ref) / torch.linalg.norm(ref))
                extra = ""
                if name in ("pick", "pick+l1") and not cfg.fold:
                    try:
                        tp, tm = parts(p, cfg, x, w)
                        extra = f" [prep {tp:.4f} main {tm:.4f}]"
                    except Exception as e:
                        extra = f" [parts failed: {str(e)[:100]}]"
                line.append(f"{name} {t:.4f} (x{tc / t:.2f}, {err:.0e}){extra}")
                records.append(dict(case=c.name, mode=mode, variant=name, cfg=cfg.name, ms=t,
                                    cudnn_ms=tc, err=err, carveout=carve))
            print(f"{c.name:14s} {mode:8s} " + " | ".join(line), flush=True)
    with open(f"{os.environ.get('OUT', '.')}/l1_probe.json", "w") as f:
        json.dump(records, f)


main()
