"""cuda.shuffle (one-tap layers: GEMM + depth-to-space) against auto's other
plans and cuDNN, each precision, with errors against float64.
python probe/shuffle_probe.py [CASES]"""
import sys, math
import numpy as np, cupy, torch
sys.path.insert(0, ".")
from bench import cases as C
from xconvt._plan import Problem, cuda_device
from xconvt._select import candidates
from xconvt.backends.cuda import shuffle

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


want = sys.argv[1].split(",") if len(sys.argv) > 1 else ["unet_k2s2", "unet_k2s2_big"]
extra = [C.Case("k2s2_g2_bias", 2, 32, 48, (9, 10, 11), 2, 2, groups=2, bias=True),
         C.Case("k123", 1, 24, 20, (7, 9, 12), (1, 2, 3), (1, 2, 3), bias=True)]
dev = cuda_device()
for c in [c for c in C.GPU_SUITE if c.name in want] + extra:
    p = c.params()
    for dt, prec in (("float32", "float32"), ("float32", "tf32"), ("float16", "float32"), ("bfloat16", "float32")):
        torch.backends.cudnn.allow_tf32 = prec == "tf32"
        tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dt]
        tx = torch.randn(p.input_shape, device="cuda").to(tdt)
        tw = (torch.randn(p.weight_shape, device="cuda") / math.sqrt(p.in_channels_per_group)).to(tdt)
        tb = torch.randn(p.out_channels, device="cuda").to(tdt) if c.bias else None
        f = lambda: torch.nn.functional.conv_transpose3d(tx, tw, tb, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
        ref = torch.nn.functional.conv_transpose3d(tx.double(), tw.double(), None if tb is None else tb.double(), c.stride, c.padding, c.output_padding, c.groups, c.dilation)
        tc = ev(f)
        def cp_(t):
            if t is None: return None
            if t.dtype == torch.bfloat16:
                import ml_dtypes
                return cupy.asarray(t.view(torch.int16)).view(ml_dtypes.bfloat16)
            return cupy.asarray(t)
        x, w, b = cp_(tx), cp_(tw), cp_(tb)
        prob = Problem("conv_transpose3d", p, dt, dev, prec)
        ok, _ = candidates(prob)
        ok = sorted(ok, key=lambda e: e[1].estimate)
        line = f"{c.name:14s} {dt:8s} {prec:7s} cudnn {tc:.3f}"
        for _, pl in ok[:3] + [e for e in ok[3:] if e[1].name == "cuda.shuffle"]:
            try:
                out = pl(x, w, b)
                t = ev(lambda: pl(x, w, b))
            except Exception as e:
                line += f" | {pl.name} FAIL {str(e)[:200]}"; continue
            o = torch.as_tensor(out.view(cupy.int16) if out.dtype.itemsize == 2 and dt == "bfloat16" else out, device="cuda")
            if dt == "bfloat16": o = o.view(torch.bfloat16)
            err = float(torch.linalg.norm(o.double() - ref) / torch.linalg.norm(ref))
            line += f" | {pl.name} {t:.3f} (e{pl.estimate*1e3:.3f}, x{tc/t:.2f}, {err:.0e})"
            if pl.name == "cuda.shuffle":
                ti = ev(lambda: pl.inner(x.reshape(p.input_shape), cupy.ascontiguousarray(w).reshape(p.in_channels, -1, 1, 1, 1), None))
                line += f" [inner {pl.inner.name} {ti:.3f} e{pl.inner.estimate*1e3:.3f}]"
        print(line, flush=True)
