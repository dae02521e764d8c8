"""CuPy and PyTorch-CUDA calls of bench overhead's layer, interleaved alone (no other
paths in the process): per-call host time, median over rounds."""
import statistics, time
import numpy as np, cupy, torch
import xconvt
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 4, 4, 4, 4)).astype(np.float32)
w = (rng.standard_normal((4, 4, 3, 3, 3)) / 10).astype(np.float32)
b = rng.standard_normal(4).astype(np.float32)
cx, cw, cb = (cupy.asarray(a) for a in (x, w, b))
tx, tw, tb = (torch.from_numpy(a).cuda() for a in (x, w, b))
conv = xconvt.conv_transpose3d
paths = {"cupy": lambda: conv(cx, cw, cb, padding=1), "torch": lambda: conv(tx, tw, tb, padding=1)}
sync = cupy.cuda.runtime.deviceSynchronize
times = {k: [] for k in paths}
for f in paths.values():
    for _ in range(50):
        f()
for _ in range(10):
    for k, f in paths.items():
        for _ in range(4):
            sync()
            for _ in range(50):
                t0 = time.perf_counter(); r = f(); times[k].append(time.perf_counter() - t0); del r
        sync()
m = {k: 1e6 * statistics.median(v) for k, v in times.items()}
print(f"two paths interleaved: cupy {m['cupy']:.1f} us, torch {m['torch']:.1f} us, "
      f"torch - cupy {m['torch'] - m['cupy']:+.1f} us")
