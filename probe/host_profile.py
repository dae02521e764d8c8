"""Where the host's time per call goes (issue 11): cProfile of back-to-back
``conv_transpose3d`` calls on CuPy arrays (the device keeps up: the host
bounds these), sorted by own time.
python probe/host_profile.py DTYPE CASE [N]   (writes $OUT/host_profile_CASE.txt)"""
import cProfile
import io
import os
import pstats
import sys

import cupy
import numpy as np

sys.path.insert(0, ".")
from bench import cases as C  # noqa: E402
import xconvt  # noqa: E402


def main():
    dt, name = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    c = next(c for c in C.GPU_SUITE if c.name == name)
    p = c.params()
    if dt == "bfloat16":
        import ml_dtypes
        npdt = ml_dtypes.bfloat16
    else:
        npdt = np.dtype(dt)
    rng = np.random.default_rng(0)
    x = cupy.asarray(rng.standard_normal(p.input_shape).astype(np.float32).astype(npdt))
    w = cupy.asarray((rng.standard_normal(p.weight_shape) / 30).astype(np.float32).astype(npdt))
    f = lambda: xconvt.conv_transpose3d(  # noqa: E731
        x, w, None, stride=c.stride, padding=c.padding, output_padding=c.output_padding,
        groups=c.groups, dilation=c.dilation)
    for _ in range(50):
        f()
    cupy.cuda.Device().synchronize()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        f()
    pr.disable()
    cupy.cuda.Device().synchronize()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(45)
    text = s.getvalue()
    print(text)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], f"host_profile_{name}.txt"), "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
