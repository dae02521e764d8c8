"""xconvt_wgmma's preparation (issue 11): the weight pack and the channels-last
copy, the tile copy (VEC 0) against the 16-byte vector copy (VEC 1), each
alone and in the prep launch, beside a device-to-device memcpy of the copy's
bytes (the floor) and the whole call with either copy, against cuDNN in the
same process.  The two copies' outputs are compared bit for bit.
python probe/prep_probe.py MODES CASES   (writes $OUT/prep_probe.json)"""
import sys, math, json, os
import numpy as np, cupy, torch
sys.path.insert(0, ".")
from bench import cases as C
from xconvt.backends.cuda import mma
from xconvt._plan import Problem, DEVICE_PRESETS
from xconvt._select import choose

torch.backends.cudnn.benchmark = True


def ev(fn, reps=30):
    for _ in range(3): fn()
    cupy.cuda.runtime.deviceSynchronize()
    e0, e1 = cupy.cuda.Event(), cupy.cuda.Event()
    best = 1e9
    for _ in range(5):
        e0.record()
        for _ in range(reps): fn()
        e1.record(); e1.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(e0, e1) / reps)
    return best


def main():
    modes, want = sys.argv[1].split(","), sys.argv[2].split(",")
    records = []
    for mode in modes:
        dt = {"tf32": "float32", "3xtf32": "float32", "float16": "float16",
              "bfloat16": "bfloat16"}[mode]
        prec = "tf32" if mode == "tf32" else "float32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
        tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dt]
        item = mma.DTYPES[dt][1]
        for c in C.GPU_SUITE:
            if c.name not in want:
                continue
            p = c.params()
            tx = torch.randn(p.input_shape, device="cuda").to(tdt)
            tw = (torch.randn(p.weight_shape, device="cuda")
                  / math.sqrt(np.prod(p.weight_shape[1:]))).to(tdt)
            ref_fn = lambda: torch.nn.functional.conv_transpose3d(
                tx, tw, None, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
            ref = torch.nn.functional.conv_transpose3d(
                tx.double(), tw.double(), None, c.stride, c.padding, c.output_padding, c.groups,
                c.dilation)
            x = cupy.asarray(tx.view(torch.int16) if item == 2 else tx)
            w = cupy.asarray(tw.view(torch.int16) if item == 2 else tw)
            if item == 2:
                import ml_dtypes
                npdt = np.float16 if dt == "float16" else ml_dtypes.bfloat16
                x, w = x.view(npdt), w.view(npdt)
            plan = choose(Problem("conv_transpose3d", p, dt, DEVICE_PRESETS["h200"], prec))
            if not hasattr(plan, "cfg") or plan.cfg.slab < 3:
                print(c.name, mode, "pick is", getattr(plan, "cfg", plan), flush=True)
                continue
            cfg = plan.cfg
            pl = mma.pair_params(p) if cfg.pair else p
            L = mma._launch_getter()(pl, cfg)
            r = dict(case=c.name, mode=mode, cfg=cfg.name)
            wp = cupy.zeros(L.wp_size, dtype=x.dtype)
            u = cupy.uint32 if x.dtype.itemsize == 4 else cupy.uint16
            fill = 0x7fc1 if item == 2 else 0x7fc00001  # a NaN no copy writes
            xo = cupy.full(L.cl_size, fill, dtype=u).view(x.dtype)
            wg = L.prep is not None
            r["vec_ok"] = L.vec_ok
            tab = lambda k, g, pk, y: lambda: k(g, (256,), (x, y, L.args[0]) + (
                (w, L.pack_tabs, wp, pk) if wg else ()))
            outs = {}
            for vec in range(4):
                if vec & ~L.vec_ok:
                    continue
                k, g, rest = L.prep_launch(vec)
                y = cupy.full(L.cl_size, fill, dtype=u).view(x.dtype)
                wp.fill(0)
                tab(k, g, rest, y)()
                outs[vec] = (y.view(u).copy(), wp.view(u).copy())
                r[f"prep{vec}"] = ev(tab(k, g, rest, y))
                if wg:  # the pack's blocks alone, then the copy's alone
                    npk = math.prod(int(rest[f]) for f in ("px", "py", "pz"))
                    r[f"pack{vec >> 1}"] = ev(tab(k, (npk,), rest, y))
            for vec in (0, 1):
                if vec & ~L.vec_ok:
                    continue
                kc = L.to_cl if vec == 0 else mma.rt.kernel(
                    mma._SOURCE_PATH, f"xconvt_mma_to_cl<{L._tmpl}{', 1' if vec else ''}>")
                gc = L.cl_grid if vec == 0 else (L._cl_vec_grid,)
                r[f"copy{vec}"] = ev(lambda: kc(gc, (256,), (x, xo, L.args[0])))
            r["same_bits"] = all(bool(cupy.array_equal(o[0], outs[0][0]))
                                 and bool(cupy.array_equal(o[1], outs[0][1]))
                                 for o in outs.values())
            r["unwritten"] = int((outs[max(outs)][0] == fill).sum())
            nbytes = x.nbytes + xo.nbytes
            dst = cupy.empty_like(xo)
            r["memcpy"] = ev(lambda: dst.data.copy_from_device_async(xo.data, xo.nbytes))
            r["copy_bytes"] = nbytes
            for k_ in ("copy0", "copy1"):
                if k_ in r:
                    r[k_ + "_tbs"] = nbytes / r[k_] / 1e9
            r["memcpy_tbs"] = 2 * xo.nbytes / r["memcpy"] / 1e9
            call = lambda: mma.mma_direct(p, x, w, None, prec, config=cfg)
            out = call()
            o = torch.as_tensor(out.view(cupy.int16) if item == 2 else out, device="cuda")
            if item == 2:
                o = o.view(tdt)
            r["err"] = float(torch.linalg.norm(o.double() - ref) / torch.linalg.norm(ref))
            r["call_vec"] = ev(call)
            sv = L.vec_ok
            L.vec_ok = 0
            r["call_old"] = ev(call)
            L.vec_ok = sv
            r["cudnn"] = ev(ref_fn)
            records.append(r)
            print(json.dumps({k_: (round(v, 4) if isinstance(v, float) else v)
                              for k_, v in r.items()}), flush=True)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "prep_probe.json"), "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
