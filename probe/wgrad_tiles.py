"""Each wgrad tile on the GPU suite's layers: ms, TFLOP/s, against cuDNN's wgrad."""
import math, sys
import numpy as np, cupy, torch
sys.path.insert(0, ".")
from bench import cases as C
from xconvt.backends.cuda import wgrad
from xconvt._dispatch import _params
from xconvt._plan import Problem, cuda_device

torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = False
def ev(fn, reps=10):
    for _ in range(3): fn()
    cupy.cuda.runtime.deviceSynchronize()
    e0, e1 = cupy.cuda.Event(), cupy.cuda.Event()
    e0.record()
    for _ in range(reps): fn()
    e1.record(); e1.synchronize()
    return cupy.cuda.get_elapsed_time(e0, e1) / reps

dev = cuda_device(0)
for c in [c for c in C.GPU_SUITE if len(sys.argv) < 3 or c.name in sys.argv[2].split(',')]:
    xs = (c.batch, c.in_channels) + tuple(c.size)
    ws = (c.in_channels, c.out_channels // c.groups) + tuple(c.kernel)
    params = _params(xs, ws, None, c.stride, c.padding, c.output_padding, c.groups, c.dilation, None)
    prob = Problem("weight_grad", params, "float32", dev, "float32", 2**28)
    rng = np.random.default_rng(0)
    x = cupy.asarray(rng.standard_normal(xs, dtype=np.float32))
    gy = cupy.asarray(rng.standard_normal(params.batched_output_shape, dtype=np.float32))
    tx, tgy = torch.as_tensor(x, device="cuda"), torch.as_tensor(gy, device="cuda")
    tw = torch.zeros(ws, device="cuda")
    bw = lambda: torch.ops.aten.convolution_backward(tgy, tx, tw, None, list(c.stride), list(c.padding), list(c.dilation), True, list(c.output_padding), c.groups, [False, True, False])
    for _ in range(3): bw()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(10): bw()
    e1.record(); torch.cuda.synchronize()
    t_cudnn = e0.elapsed_time(e1) / 10
    ref = bw()[1]; torch.cuda.synchronize()
    flops = params.flops
    auto = wgrad.plan(prob)
    line = [f"{c.name:16s} cudnn {t_cudnn:7.3f} ms | auto {auto.detail[:40]:40s} est {auto.estimate*1e3:7.3f}"]
    for tile in (sys.argv[1].split(',') if len(sys.argv) > 1 else wgrad.TILES):
        S, chunk, nb = wgrad.splits(params, tile, dev.sm_count, prob.budget, 4)
        p = wgrad.WgradPlan(prob, tile, S, chunk, nb, 0, 0)
        out = p(x, gy)
        err = float(cupy.linalg.norm(out - cupy.asarray(ref)) / cupy.linalg.norm(cupy.asarray(ref)))
        t = ev(lambda: p(x, gy))
        line.append(f"{tile} {t:7.3f} ms {flops/t/1e9:5.1f} TF/s S={S} err {err:.1e}")
    print(" | ".join(line), flush=True)
