"""Run one xconvt_mma configuration a few times (for ncu).
python probe/one_cfg.py CASE MODE BM BN BK WM WN STAGES SLAB [conv3d]"""
import sys, math
import numpy as np, cupy
sys.path.insert(0, ".")
from bench import cases as C
from xconvt.backends.cuda import mma
from xconvt._params import conv3d_params
name, mode = sys.argv[1], sys.argv[2]
bm, bn, bk, wm, wn, stages, slab = map(int, sys.argv[3:10])
conv3d = len(sys.argv) > 10
c = [c for c in C.GPU_SUITE if c.name == name][0]
p = c.params()
if conv3d:
    params, _ = conv3d_params(p.batched_output_shape, p.weight_shape, None, c.stride, c.padding, c.dilation, c.groups)
    geo, xs = mma.Conv3dGemm(params), p.batched_output_shape
else:
    geo, xs = p, p.input_shape
dt = {"tf32": "float32", "3xtf32": "float32", "float16": "float16"}[mode]
prec = "tf32" if mode == "tf32" else "float32"
dtc, item = mma.DTYPES[dt]
mcode = mma._mode(dt, prec)[0]
rng = np.random.default_rng(0)
x = cupy.asarray(rng.standard_normal(xs).astype(dt))
w = cupy.asarray((rng.standard_normal(p.weight_shape) / 30).astype(dt))
threads = (bm // wm) * (bn // wn) * 32
if slab == 4:
    box = mma.slab_box(geo, bm)[0]
    sc = max([math.prod(d) for d in mma._slab_dims(geo, box)] + [1])
else:
    box, sc = (0, 0, 0), 0
smem = mma._smem(bm, bn, bk, stages, item, sc, mcode, slab)
cfg = mma.MmaConfig(dtc, mcode, "int", bm, bn, bk, wm, wn, stages, threads, smem,
                    mma._minb(mcode, wm, threads, slab, wn), slab, box, sc)
for _ in range(4):
    mma.mma_direct(geo, x, w, None, prec, config=cfg)
cupy.cuda.runtime.deviceSynchronize()
print(cfg.name)
