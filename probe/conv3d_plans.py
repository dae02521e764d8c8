"""Each GPU conv3d plan (the input gradient) on the suite: ms, TFLOP/s, error, against cuDNN dgrad.

python probe/conv3d_plans.py [cases] -- float32 (TF32 off), then mma_conv3d in tf32 and float16
against cuDNN in the same precision.
"""
import sys
import numpy as np, cupy, torch
sys.path.insert(0, ".")
from dataclasses import replace
from bench import cases as C
from xconvt import _select
from xconvt._params import conv3d_params
from xconvt._plan import Problem, cuda_device

torch.backends.cudnn.benchmark = True

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

def tev(fn, reps=20):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = 1e9
    for _ in range(3):
        e0.record()
        for _ in range(reps): fn()
        e1.record(); torch.cuda.synchronize()
        best = min(best, e0.elapsed_time(e1) / reps)
    return best

dev = cuda_device(0)
names = ("cuda.conv3d_fma", "cuda.mma_conv3d", "cuda.conv3d_direct")
want = sys.argv[1].split(",") if len(sys.argv) > 1 else None
for c in C.GPU_SUITE:
    if want and c.name not in want:
        continue
    p = c.params()
    ys, ws = p.batched_output_shape, p.weight_shape
    params, _ = conv3d_params(ys, ws, None, c.stride, c.padding, c.dilation, c.groups)
    rng = np.random.default_rng(0)
    y64 = rng.standard_normal(ys)
    w64 = rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))
    ty64, tw64 = torch.as_tensor(y64, device="cuda"), torch.as_tensor(w64, device="cuda")
    ref = torch.nn.functional.conv3d(ty64, tw64, None, c.stride, c.padding, c.dilation, c.groups)
    ref = ref[(Ellipsis,) + tuple(slice(0, s) for s in params.in_size)]
    flops = 2.0 * np.prod(params.input_shape) * np.prod(params.kernel) * params.out_channels_per_group
    line = [f"{c.name:16s} {flops/1e9:6.2f} GF"]
    for dt, prec, tf32 in (("float32", "float32", False), ("float32", "tf32", True),
                           ("float16", "float32", False)):
        torch.backends.cudnn.allow_tf32 = tf32
        tdt = getattr(torch, dt)
        ty, tw = ty64.to(tdt), tw64.to(tdt)
        tx = torch.zeros(params.input_shape, device="cuda", dtype=tdt)
        bw = lambda: torch.ops.aten.convolution_backward(
            ty, tx, tw, None, list(c.stride), list(c.padding), list(c.dilation), True,
            list(c.output_padding), c.groups, [True, False, False])[0]
        t_cd = tev(bw)
        got = bw().double()
        e_cd = float(torch.linalg.norm(got - ref) / torch.linalg.norm(ref))
        line.append(f"[{dt}/{prec}] cudnn {t_cd:.3f} ({e_cd:.0e})")
        y, w = cupy.asarray(ty), cupy.asarray(tw)
        prob = Problem("conv3d", params, dt, dev, prec, 2**30)
        try:
            auto = _select.choose(prob, "auto")
            line.append(f"auto={auto.name}")
        except ValueError as e:
            line.append(f"auto: {e}")
        for name in names if dt == "float32" and prec == "float32" else ("cuda.mma_conv3d",):
            try:
                plan = _select.named_plan(name, prob)
            except ValueError as e:
                line.append(f"{name[5:]}: n/a")
                continue
            out = plan(y, w, None)
            err = float(cupy.linalg.norm(out.astype(cupy.float64) - cupy.asarray(ref)) /
                        cupy.linalg.norm(cupy.asarray(ref)))
            t = ev(lambda: plan(y, w, None))
            line.append(f"{name[5:]} {t:.3f} est {plan.estimate*1e3:.3f} x{t_cd/t:.2f} {flops/t/1e9:.0f}TF ({err:.0e})")
    print(" | ".join(line), flush=True)
