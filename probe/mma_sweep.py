"""Forward tensor-core configurations beyond the planner's table: BK up to 64,
3-5 stages, stagings cl (3) / cl_slab (4) / tap (0); ms against cuDNN in the
same precision.  python probe/mma_sweep.py MODE CASES [conv3d]
(MODE: tf32, 3xtf32, float16, bfloat16)"""
import sys, math, itertools
import numpy as np, cupy, torch
sys.path.insert(0, ".")
from bench import cases as C
from xconvt.backends.cuda import mma
from xconvt._params import conv3d_params

torch.backends.cudnn.benchmark = True

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

mode, want = sys.argv[1], sys.argv[2].split(",")
conv3d = len(sys.argv) > 3 and sys.argv[3] == "conv3d"
dt = {"tf32": "float32", "3xtf32": "float32", "float16": "float16", "bfloat16": "bfloat16"}[mode]
prec = "tf32" if mode == "tf32" else "float32"
torch.backends.cudnn.allow_tf32 = mode == "tf32"
tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dt]
dtc, item = mma.DTYPES[dt]
mcode = mma._mode(dt, prec)[0]
for c in C.GPU_SUITE:
    if c.name not in want:
        continue
    p = c.params()
    if conv3d:
        params, _ = conv3d_params(p.batched_output_shape, p.weight_shape, None, c.stride, c.padding, c.dilation, c.groups)
        geo = mma.Conv3dGemm(params)
        xs = p.batched_output_shape
    else:
        geo = p
        xs = p.input_shape
    rng = np.random.default_rng(0)
    tx = torch.randn(xs, device="cuda", dtype=torch.float32).to(tdt)
    tw = (torch.randn(p.weight_shape, device="cuda") / math.sqrt(np.prod(p.weight_shape[1:]))).to(tdt)
    if conv3d:
        zx = torch.zeros(params.input_shape, device="cuda", dtype=tdt)
        ref_fn = lambda: torch.ops.aten.convolution_backward(tx, zx, tw, None, list(c.stride), list(c.padding), list(c.dilation), True, list(c.output_padding), c.groups, [True, False, False])[0]
    else:
        ref_fn = lambda: torch.nn.functional.conv_transpose3d(tx, tw, None, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
    for _ in range(3): ref_fn()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    tc = 1e9
    for _ in range(3):
        e0.record()
        for _ in range(20): ref_fn()
        e1.record(); torch.cuda.synchronize(); tc = min(tc, e0.elapsed_time(e1) / 20)
    ref = ref_fn().double()
    x = cupy.asarray(tx.view(torch.int16) if item == 2 else tx)
    w = cupy.asarray(tw.view(torch.int16) if item == 2 else tw)
    if item == 2:
        import ml_dtypes
        npdt = np.float16 if dt == "float16" else ml_dtypes.bfloat16
        x, w = x.view(npdt), w.view(npdt)
    pick = mma.mma_config(geo, dt, prec, 132, 232448)
    res = []
    tiles = ((128, 128, 64, 32), (128, 64, 64, 32), (256, 128, 64, 64), (128, 32, 32, 32))
    for (bm, bn, wm, wn), bk, stages, slab in itertools.product(tiles, (16, 32, 64), (3, 4), (0, 3, 4)):
        if bn > 32 and -(-geo.out_channels_per_group // bn) * bn >= 2 * max(geo.out_channels_per_group, 32): continue
        if mcode == 1 and wm * wn >= 4096: continue
        if slab == 0 and bk == 64: continue
        if slab == 4 and mma._in_step(geo) != (1, 1, 1): continue
        if bk > 16 and geo.in_channels_per_group <= 16: continue
        threads = (bm // wm) * (bn // wn) * 32
        if slab == 4:
            box = mma.slab_box(geo, bm)[0]
            sc = max([math.prod(d) for d in mma._slab_dims(geo, box)] + [1])
        else:
            box, sc = (0, 0, 0), 0
        smem = mma._smem(bm, bn, bk, stages, item, sc, mcode, slab)
        if smem > 232448: continue
        minb = mma._minb(mcode, wm, threads, slab, wn)
        cfg = mma.MmaConfig(dtc, mcode, "int", bm, bn, bk, wm, wn, stages, threads, smem, minb, slab, box, sc)
        try:
            out = mma.mma_direct(geo, x, w, None, prec, config=cfg)
            t = ev(lambda: mma.mma_direct(geo, x, w, None, prec, config=cfg))
        except Exception as e:
            print("  fail", cfg.name, str(e)[:80], flush=True); continue
        o = torch.as_tensor(out.view(cupy.int16) if item == 2 else out, device="cuda")
        if item == 2: o = o.view(tdt)
        err = float(torch.linalg.norm(o.double() - ref) / torch.linalg.norm(ref))
        res.append((t, f"{bm}x{bn}x{bk} w{wm}x{wn} st{stages} s{slab} ({err:.0e})"))
    res.sort()
    pk = pick[0] if not isinstance(pick, str) else None
    print(f"{c.name:14s} {mode} cudnn {tc:.3f} | pick {pk.bm}x{pk.bn}x{pk.bk} st{pk.stages} s{pk.slab} | " + " | ".join(f"{n} {t:.3f} x{tc/t:.2f}" for t, n in res[:5]), flush=True)
