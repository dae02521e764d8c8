"""Where the tensor-core kernel's time goes (issue 11): per dense suite case and
mode, CUDA-event times of the whole ``mma_direct`` call and of its parts on the
same arrays: the weight pack, the channels-last copy (variants cl/cl_slab),
the main kernel alone, and a plain write of the output's bytes (``fill``: the
memory floor of the epilogue), with the planner's configuration or the one
named by ``--variant``.  Usage::

    python bench/mma_parts.py [--cases gan_k4s2,...] [--variant cl] [--modes float16,tf32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cases import GPU_SUITE  # noqa: E402

DENSE = ("seed_example", "unet_k2s2", "unet_k2s2_big", "vnet_k3s2", "gan_k4s2",
         "same_k3s1", "dilated_k3d2")


def time_fn(fn, reps=20, inner=5):
    import cupy

    fn()
    cupy.cuda.Device().synchronize()
    out = []
    for _ in range(reps):
        a, b = cupy.cuda.Event(), cupy.cuda.Event()
        a.record()
        for _ in range(inner):
            fn()
        b.record()
        b.synchronize()
        out.append(cupy.cuda.get_elapsed_time(a, b) / inner)
    return statistics.median(out)


def main(argv=None):
    import cupy
    import numpy as np

    from xconvt._params import ConvParams
    from xconvt.backends.cuda import mma

    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(DENSE))
    ap.add_argument("--variant", default=None)
    ap.add_argument("--modes", default="float16,tf32")
    args = ap.parse_args(argv)
    cases = {c.name: c for c in GPU_SUITE}
    rows = []
    for name in args.cases.split(","):
        case = cases[name]
        params = ConvParams.from_shapes(case.input_shape, case.weight_shape, None,
                                        **case.kwargs)
        for mode in args.modes.split(","):
            dtype = "float32" if mode in ("tf32", "3xtf32") else mode
            prec = "tf32" if mode == "tf32" else "float32"
            x, w, _ = case.make_inputs("float32")
            xd, wd = cupy.asarray(x), cupy.asarray(w)
            if dtype != "float32":
                xd, wd = xd.astype(np.float16), wd.astype(np.float16)
            cfg, est = mma.mma_config(params, dtype, prec, variant=args.variant)
            lau = mma._launch_getter()(params, cfg)
            out = cupy.empty(params.batched_output_shape, xd.dtype)
            wp = cupy.zeros(lau.wp_size, dtype=xd.dtype)
            r = {"case": name, "mode": mode, "config": cfg.name, "est_ms": est * 1e3}
            r["call"] = time_fn(lambda: mma.mma_direct(params, xd, wd, None, prec, config=cfg,
                                                       out=out))
            r["pack"] = time_fn(lambda: lau.pack(lau.pack_grid, (256,),
                                                 (wd, *lau.pack_tables, wp, *lau.pack_rest)))
            xin = xd
            if lau.to_cl is not None:
                xcl = cupy.empty(lau.cl_size, dtype=xd.dtype)
                r["copy"] = time_fn(lambda: lau.to_cl(lau.cl_grid, (256,),
                                                      (xd, xcl, lau.args[0])))
                xin = xcl
            r["kernel"] = time_fn(lambda: lau.kern(
                lau.grid, lau.block, (xin, wp, xin, out, lau.meta, lau.btab, lau.args[0]),
                shared_mem=lau.smem))
            r["fill_out"] = time_fn(lambda: out.view(cupy.uint32 if out.dtype.itemsize == 4
                                                     else cupy.uint16).fill(1))
            r["blocks"] = lau.grid[0]
            r["gflop"] = 2 * params.macs / 1e9 if hasattr(params, "macs") else None
            rows.append(r)
            print(json.dumps(r), flush=True)
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / f"mma_parts_{args.variant or 'auto'}.json").write_text(
            json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
