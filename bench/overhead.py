"""``python -m bench overhead``: host time per call of each array library's path.

One tiny layer (1 x 4 x 4^3 -> 4 channels, kernel 3, padding 1, float32, bias) is
called many times through every path that applies on the device:

* CPU: NumPy (the anchor), PyTorch CPU tensors, JAX CPU arrays (eager), JAX under
  ``jit`` (``buffer_callback``).
* GPU: CuPy (the anchor), PyTorch CUDA tensors on the default stream and on a side
  stream (both through the public function, i.e. the CUDA fast path ``_Torch.fast``,
  whose repeated calls write into a new PyTorch tensor), the
  same call through the general path (``torch cuda (general path)``: ``_interop.call``,
  what every PyTorch CUDA call took before the fast path), JAX GPU arrays (eager),
  JAX under ``jit``; and, for reference, the handshakes alone (``cupy.from_dlpack``
  of a tensor against the pointer wraps xconvt uses: the general path's
  ``native``, the fast path's input view and its cached parameter view).
* PyTorch rows ``... xconvt.torch op``: the same call through the registered
  operator ``torch.ops.xconvt.conv_transpose3d`` (what ``torch.compile`` runs: the
  dispatcher's cost over the plain call, which ``xconvt.torch.conv_transpose3d``
  takes when nothing needs a gradient), and ``... xconvt.torch grad``:
  ``xconvt.torch.conv_transpose3d`` with a weight that requires grad (its eager
  ``autograd.Function``; forward only).
* ``(boundary) ...`` rows: the library's conversions alone, around a stub that
  returns a ready native result (no kernel, no allocation); ``(boundary) torch cuda``
  is the general path's, ``(boundary) torch cuda fast`` the fast path's.  The difference of a
  whole call to the anchor can exceed it: a tiny CPU call also pays for the caches
  the extra Python objects evict.

Each call is timed alone with ``time.perf_counter`` (the host time: on the GPU the
kernels are only queued; the device is synchronized between blocks of calls,
outside the timed calls, so the queue never fills).  Paths are interleaved in
rounds so that drift and noise hit them alike; the table reports the median, the
interquartile range, and the difference of medians to the anchor's path (NumPy on
the CPU, CuPy on the GPU).  Every path's result is checked against the anchor's.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "paths"]

SHAPE_X, SHAPE_W, KW = (1, 4, 4, 4, 4), (4, 4, 3, 3, 3), dict(padding=1)


def _problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE_X).astype(np.float32)
    w = (rng.standard_normal(SHAPE_W) / 10).astype(np.float32)
    b = rng.standard_normal(SHAPE_W[1]).astype(np.float32)
    return x, w, b


def _try_import(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def _boundary(table, name, native_result, operands, sync):
    """Add ``(boundary) name``: the conversions alone, around a stub that returns
    ``native_result`` (no kernel, no allocation)."""
    from xconvt import _interop

    def stub(*args, **kwargs):
        return native_result

    stub.__name__ = "conv_transpose3d"
    table[f"(boundary) {name}"] = (lambda: _interop.call(stub, *operands, **KW), None, sync)


def paths(device):
    """``{name: (call, to_host, sync)}`` for the paths available on ``device``."""
    import xconvt

    conv = xconvt.conv_transpose3d
    x, w, b = _problem()
    out = {}
    boundary = {}
    torch, jax = _try_import("torch"), _try_import("jax")
    if jax is not None:
        import jax.numpy as jnp  # noqa: F401 - jax.numpy must be loaded for jax.jit
    nosync = lambda: None  # noqa: E731
    if device == "cpu":
        out["numpy"] = (lambda: conv(x, w, b, **KW), np.asarray, nosync)
        if torch is not None:
            tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
            out["torch cpu"] = (lambda: conv(tx, tw, tb, **KW), lambda t: t.numpy(), nosync)
            _torch_op_paths(out, "torch cpu", tx, tw, tb, lambda t: t.numpy(), nosync)
            _boundary(boundary, "torch cpu", conv(x, w, b, **KW), (tx, tw, tb), nosync)
        if jax is not None:
            _jax_paths(out, boundary, jax.devices("cpu")[0], conv(x, w, b, **KW), nosync)
        return {**out, **boundary}

    import cupy

    from xconvt import _interop

    cx, cw, cb = (cupy.asarray(a) for a in (x, w, b))
    csync = cupy.cuda.runtime.deviceSynchronize
    out["cupy"] = (lambda: conv(cx, cw, cb, **KW), cupy.asnumpy, csync)
    if torch is not None and torch.cuda.is_available():
        tx, tw, tb = (torch.from_numpy(a).cuda() for a in (x, w, b))
        host = lambda t: t.cpu().numpy()  # noqa: E731

        out["torch cuda"] = (lambda: conv(tx, tw, tb, **KW), host, csync)
        side = torch.cuda.Stream()

        def on_side():
            with torch.cuda.stream(side):
                return conv(tx, tw, tb, **KW)

        out["torch cuda side stream"] = (on_side, host, csync)
        out["torch cuda (general path)"] = (
            lambda: _interop.call(conv, tx, tw, tb, **KW), host, csync)
        _torch_op_paths(out, "torch cuda", tx, tw, tb, host, csync)
        ready = conv(cx, cw, cb, **KW)
        _boundary(boundary, "torch cuda", ready, (tx, tw, tb), csync)

        def stub(*args, **kwargs):
            return ready

        lib = _interop._library("input", tx)
        boundary["(boundary) torch cuda fast"] = (
            lambda: lib.fast(stub, tx, tw, tb, (), KW), None, csync)
        out["(handshake) cupy.from_dlpack(t)"] = (lambda: cupy.from_dlpack(tx), None, csync)
        out["(handshake) xconvt wrap(t)"] = (lambda: lib.native(tx), None, csync)
        xdtype = np.dtype(np.float32)
        out["(handshake) xconvt input view(t)"] = (
            lambda: lib._input_view(tx, xdtype, tx.get_device()), None, csync)
        out["(handshake) cached parameter view(w)"] = (lambda: lib.parameter(tw), None, csync)
        r = cupy.empty(SHAPE_X, cupy.float32)
        out["(handshake) torch.from_dlpack(c)"] = (lambda: torch.from_dlpack(r), None, csync)
        out["(handshake) torch.as_tensor(c)"] = (
            lambda: torch.as_tensor(r, device=tx.device), None, csync)
    if jax is not None:
        try:
            gpu = jax.devices("gpu")[0]
        except RuntimeError:
            gpu = None
        if gpu is not None:
            _jax_paths(out, boundary, gpu, conv(cx, cw, cb, **KW), csync)
    return {**out, **boundary}


def _torch_op_paths(table, name, tx, tw, tb, host, sync):
    """The custom-operator rows (see the module docstring) for tensors ``tx, tw, tb``."""
    import torch

    import xconvt.torch as xt

    op = torch.ops.xconvt.conv_transpose3d
    geo = ([1] * 3, [KW["padding"]] * 3, [0] * 3, 1, [1] * 3, "auto", None)
    table[f"{name} xconvt.torch op"] = (lambda: op(tx, tw, tb, *geo), host, sync)
    gw = tw.detach().clone().requires_grad_()
    table[f"{name} xconvt.torch grad"] = (lambda: xt.conv_transpose3d(tx, gw, tb, **KW),
                                          lambda t: host(t.detach()), sync)


def _jax_paths(table, boundary, device, native_result, sync):
    """JAX eager and ``jit`` rows, and the boundary row, for JAX ``device``."""
    import jax

    import xconvt

    conv = xconvt.conv_transpose3d
    jx, jw, jb = (jax.device_put(a, device) for a in _problem())
    name = f"jax {'cpu' if device.platform == 'cpu' else 'gpu'}"
    table[name] = (lambda: conv(jx, jw, jb, **KW), np.asarray, sync)
    f = jax.jit(lambda x, w, b: conv(x, w, b, **KW))
    table[f"{name} jit"] = (lambda: f(jx, jw, jb), np.asarray, sync)
    _boundary(boundary, name, native_result, (jx, jw, jb), sync)


def measure(table, calls, rounds, block=50):
    """Host times (seconds) of every path, interleaved in ``rounds``: ``(per_call,
    per_block)``, each ``{name: [...]}``.

    ``per_call``: each call timed alone (its result freed outside the timing);
    ``per_block``: the mean call of each block of ``block`` back-to-back calls,
    one timing around the block (each result freed by the next call, as in a
    loop: the steady state, including the frees, with fewer timer reads).
    The device is synchronized between blocks, outside both timings.
    """
    times = {name: [] for name in table}
    blocks = {name: [] for name in table}
    per_round = max(1, calls // rounds)
    for name, (call, _, sync) in table.items():  # warm up: compile, caches
        for _ in range(20):
            call()
        sync()
    for _ in range(rounds):
        for name, (call, _, sync) in table.items():
            done = 0
            while done < per_round:
                n = min(block, per_round - done)
                sync()
                for _ in range(n):
                    t0 = time.perf_counter()
                    r = call()
                    times[name].append(time.perf_counter() - t0)
                    del r
                sync()
                t0 = time.perf_counter()
                for _ in range(n):
                    r = call()
                del r
                blocks[name].append((time.perf_counter() - t0) / n)
                done += n
            sync()
    return times, blocks


def _check(table):
    """Max |path - anchor| for each path that returns a result."""
    anchor = None
    errs = {}
    for name, (call, host, sync) in table.items():
        if host is None:
            continue
        r = np.asarray(host(call()), np.float64)
        sync()
        if anchor is None:
            anchor = r
        errs[name] = float(np.max(np.abs(r - anchor)))
    return errs


def main(args, argv):
    """Run the overhead table for ``args.device``; write JSON to ``args.out``."""
    from .report import print_table, write_json

    device = args.device
    if device == "gpu":
        try:
            import cupy

            cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # noqa: BLE001 - ImportError, CUDARuntimeError
            print(f"bench overhead: no CuPy/CUDA device ({e})", file=sys.stderr)
            return 2
    table = paths(device)
    calls = args.repeat or 3000
    rounds = 10
    errs = _check(table)
    times, blocks = measure(table, calls, rounds)
    anchor = next(iter(table))
    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    bmed = {k: statistics.median(v) * 1e6 for k, v in blocks.items()}
    rows, records = [], []
    for name, ts in times.items():
        q = statistics.quantiles([t * 1e6 for t in ts], n=4)
        bq = statistics.quantiles([t * 1e6 for t in blocks[name]], n=4)
        boundary = name.startswith("(")
        diff = med[name] - med[anchor] if not boundary else float("nan")
        bdiff = bmed[name] - bmed[anchor] if not boundary else float("nan")
        rows.append([name, f"{med[name]:.1f}", f"{q[2] - q[0]:.1f}",
                     "" if name == anchor or diff != diff else f"{diff:+.1f}",
                     f"{bmed[name]:.1f}", f"{bq[2] - bq[0]:.1f}",
                     "" if name == anchor or bdiff != bdiff else f"{bdiff:+.1f}",
                     "" if name not in errs else f"{errs[name]:.1e}", len(ts)])
        records.append(dict(path=name, median_us=med[name], iqr_us=q[2] - q[0],
                            minus_anchor_us=diff, block_median_us=bmed[name],
                            block_iqr_us=bq[2] - bq[0], block_minus_anchor_us=bdiff,
                            max_abs_diff=errs.get(name), calls=len(ts)))
    print(f"bench overhead ({device}): host time per call, {SHAPE_X} x {SHAPE_W} "
          f"float32, padding 1, bias; {calls} calls per path in {rounds} interleaved rounds, "
          "timed one by one (call) and as blocks of 50 back-to-back calls (block mean)")
    cols = ["path", "call us", "IQR", f"- {anchor}", "block us", "IQR ", f"- {anchor} ",
            "max |diff|", "calls"]
    print_table(f"overhead ({device}): microseconds per call", cols, rows,
                right=tuple(cols[1:]), plain=args.plain)
    out = Path(args.out) / f"overhead_{device}.json"
    try:
        write_json(out, {"suite": "overhead", "device": device, "argv": list(argv),
                         "shape_x": SHAPE_X, "shape_w": SHAPE_W, "records": records})
        print(f"wrote {out}")
    except OSError as e:
        print(f"bench: could not write {out}: {e}", file=sys.stderr)
        return 1
    return 0
