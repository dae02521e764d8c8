"""One call of an xconvt_wgmma configuration (or cuDNN), for Nsight Compute:
the last call sits in the NVTX range "prof".
python probe/one_wg.py CASE MODE VARIANT [BM BN BK STAGES]   (VARIANT cudnn: PyTorch)"""
import sys, math
import numpy as np, cupy, torch
sys.path.insert(0, ".")
from bench import cases as C
from xconvt.backends.cuda import mma

name, mode, variant = sys.argv[1:4]
c = [c for c in C.GPU_SUITE if c.name == name][0]
p = c.params()
dt = {"tf32": "float32", "3xtf32": "float32", "float16": "float16", "bfloat16": "bfloat16"}[mode]
prec = "tf32" if mode == "tf32" else "float32"
tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dt]
tx = torch.randn(p.input_shape, device="cuda").to(tdt)
tw = (torch.randn(p.weight_shape, device="cuda") / math.sqrt(np.prod(p.weight_shape[1:]))).to(tdt)
if variant == "cudnn":
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    fn = lambda: torch.nn.functional.conv_transpose3d(tx, tw, None, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
else:
    x, w = cupy.asarray(tx.view(torch.int16) if dt != "float32" else tx), cupy.asarray(tw.view(torch.int16) if dt != "float32" else tw)
    if dt != "float32":
        import ml_dtypes
        npdt = np.float16 if dt == "float16" else ml_dtypes.bfloat16
        x, w = x.view(npdt), w.view(npdt)
    if len(sys.argv) > 4:
        bm, bn, bk, st = map(int, sys.argv[4:8])
        cands = [k for k in mma._candidates(p, dt, prec, 232448, variant) if (k.bm, k.bn, k.bk) == (bm, bn, bk)]
        cfg = cands[0]
        if cfg.slab != 7:
            cfg = cfg._replace(stages=st, smem=mma._smem(bm, bn, bk, st, mma.DTYPES[dt][1], cfg.sc, cfg.mode, cfg.slab))
    else:
        cfg = mma.mma_config(p, dt, prec, 132, 232448, variant)[0]
    print(cfg, flush=True)
    fn = lambda: mma.mma_direct(p, x, w, None, prec, config=cfg)
for _ in range(3):
    fn()
torch.cuda.synchronize()
torch.cuda.nvtx.range_push("prof")
fn()
torch.cuda.nvtx.range_pop()
torch.cuda.synchronize()
