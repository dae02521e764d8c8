"""Per-step host time of the PyTorch CUDA fast path and of GPU gradient calls."""
import cProfile, pstats, sys, time, statistics, io
import numpy as np, cupy, torch
import xconvt
from xconvt import _interop, grad

def t_us(fn, n=3000, blocks=7):
    sync = cupy.cuda.runtime.deviceSynchronize
    for _ in range(200): fn()
    sync()
    meds = []
    for _ in range(blocks):
        ts = []
        for i in range(n // blocks):
            t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
            if i % 50 == 49: sync()
        sync()
        meds.append(statistics.median(ts))
    return 1e6 * statistics.median(meds)

rng = np.random.default_rng(0)
x = rng.standard_normal((1, 4, 4, 4, 4)).astype(np.float32)
w = rng.standard_normal((4, 4, 3, 3, 3)).astype(np.float32)
b = rng.standard_normal(4).astype(np.float32)
cx, cw, cb = (cupy.asarray(a) for a in (x, w, b))
tx, tw, tb = (torch.from_numpy(a).cuda() for a in (x, w, b))
conv = xconvt.conv_transpose3d
KW = dict(padding=1)
lib = _interop._library("input", tx)
dt = np.dtype(np.float32)
dev = 0
ptr = lib.raw_stream(dev)
xv = lib._input_view(tx, dt, dev)
wv, bv = lib.parameter(tw), lib.parameter(tb)
out_c = conv(cx, cw, cb, **KW)
stream = _interop.on_stream(ptr, dev)

def inside():
    with _interop.on_stream(ptr, dev):
        return conv(xv, wv, bv, **KW)

def ctx_only():
    with _interop.on_stream(ptr, dev):
        pass

def wrap_only():
    with _interop.on_stream(ptr, dev):
        return lib.wrap(out_c, tx)

rows = {
    "cupy call": lambda: conv(cx, cw, cb, **KW),
    "torch call (fast)": lambda: conv(tx, tw, tb, **KW),
    "raw_stream": lambda: lib.raw_stream(dev),
    "input view": lambda: lib._input_view(tx, dt, dev),
    "parameter(w)": lambda: lib.parameter(tw),
    "stream ctx enter/exit": ctx_only,
    "cupy call on views, in ctx": inside,
    "cupy call on views, no ctx": lambda: conv(xv, wv, bv, **KW),
    "wrap (cai) in ctx": wrap_only,
    "torch.empty": lambda: torch.empty((1, 4, 6, 6, 6), device="cuda"),
    "x.new_empty": lambda: tx.new_empty((1, 4, 6, 6, 6)),
    "cupy.empty": lambda: cupy.empty((1, 4, 6, 6, 6), cupy.float32),
    "torch.as_tensor(cai)": lambda: torch.as_tensor(out_c, device=tx.device),
    "torch.from_dlpack": lambda: torch.from_dlpack(out_c),
    "get_current_stream": lambda: cupy.cuda.get_current_stream(),
}
for _ in range(2):
    for k, f in rows.items():
        print(f"{k:32s} {t_us(f):8.2f} us", flush=True)
    print()

import os
if os.environ.get("PROBE_ROWS_ONLY"):
    sys.exit(0)


def prof(fn, n=20000, top=35):
    pr = cProfile.Profile()
    pr.enable()
    for i in range(n):
        fn()
        if i % 100 == 99: cupy.cuda.runtime.deviceSynchronize()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    print(s.getvalue())

print("=== cProfile torch fast call"); prof(lambda: conv(tx, tw, tb, **KW))
print("=== cProfile cupy call"); prof(lambda: conv(cx, cw, cb, **KW))

# gradients: host time per call and device time, small and medium cases
def grad_case(name, N, Ci, Co, I, K, s, p, op_, d=1):
    xs = (N, Ci) + (I,) * 3
    ws = (Ci, Co, K, K, K)
    O = (I - 1) * s - 2 * p + d * (K - 1) + op_ + 1
    ys = (N, Co) + (O,) * 3
    X = cupy.asarray(rng.standard_normal(xs).astype(np.float32))
    W = cupy.asarray(rng.standard_normal(ws).astype(np.float32))
    Y = cupy.asarray(rng.standard_normal(ys).astype(np.float32))
    kw = dict(stride=s, padding=p, output_padding=op_, dilation=d)
    fi = lambda: grad.conv_transpose3d_input(xs, W, Y, **kw)
    fw = lambda: grad.conv_transpose3d_weight(X, ws, Y, **kw)
    ff = lambda: conv(X, W, **kw)
    for label, f in (("forward", ff), ("input", fi), ("weight", fw)):
        for _ in range(3): f()
        cupy.cuda.runtime.deviceSynchronize()
        host = []
        for _ in range(20):
            t0 = time.perf_counter(); f(); host.append(time.perf_counter() - t0)
            cupy.cuda.runtime.deviceSynchronize()
        e0, e1 = cupy.cuda.Event(), cupy.cuda.Event()
        e0.record(); [f() for _ in range(20)]; e1.record(); e1.synchronize()
        print(f"{name:10s} {label:8s} host/call {1e3*statistics.median(host):8.3f} ms  "
              f"loop/call {cupy.cuda.get_elapsed_time(e0, e1)/20:8.3f} ms", flush=True)
    print(f"--- cProfile {name} input grad")
    pr = cProfile.Profile(); pr.enable()
    for _ in range(20): fi()
    cupy.cuda.runtime.deviceSynchronize(); pr.disable()
    s_ = io.StringIO(); pstats.Stats(pr, stream=s_).sort_stats("tottime").print_stats(20); print(s_.getvalue())
    print(f"--- cProfile {name} weight grad")
    pr = cProfile.Profile(); pr.enable()
    for _ in range(20): fw()
    cupy.cuda.runtime.deviceSynchronize(); pr.disable()
    s_ = io.StringIO(); pstats.Stats(pr, stream=s_).sort_stats("tottime").print_stats(20); print(s_.getvalue())

grad_case("sweep_k3", 1, 4, 4, 64, 3, 1, 1, 0)
grad_case("unet", 2, 128, 64, 32, 2, 2, 0, 0)
grad_case("same", 1, 32, 32, 64, 3, 1, 1, 0)
