"""Run the weight-gradient kernel of one suite case with one tile a few times (for ncu).
python probe/one_wgrad.py CASE TILE"""
import sys
import numpy as np, cupy
sys.path.insert(0, ".")
from bench import cases as C
from xconvt.backends.cuda import wgrad
from xconvt._plan import Problem, cuda_device
name, tile = sys.argv[1], sys.argv[2]
c = [c for c in C.GPU_SUITE if c.name == name][0]
params = c.params()
prob = Problem("weight_grad", params, "float32", cuda_device(0), "float32", 2**28)
rng = np.random.default_rng(0)
x = cupy.asarray(rng.standard_normal(params.input_shape, dtype=np.float32))
gy = cupy.asarray(rng.standard_normal(params.batched_output_shape, dtype=np.float32))
S, chunk, nb = wgrad.splits(params, tile, 132, prob.budget, 4)
p = wgrad.WgradPlan(prob, tile, S, chunk, nb, 0, 0)
for _ in range(4):
    p(x, gy)
cupy.cuda.runtime.deviceSynchronize()
print(p.detail)
