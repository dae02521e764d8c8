"""Choosing between algorithms: a cost model (``auto``) and a timing cache (``measure``).

``choose`` prices both algorithms in seconds and takes the cheaper.  Each
price is linear in a few features of the call, FLOPs and bytes that the
backends' own plans determine, with constants in :data:`CONSTANTS`:

direct (:func:`direct_features`, from :class:`~xconvt._params.ConvParams`)
    ``gemm``   GEMM FLOPs * (1 + 64 / K), ``K`` the GEMM depth (shallow
               products run slower)
    ``thin``   GEMM FLOPs / (the thin side of the GEMM); thin products are
               bound by reading the wide operand
    ``copy``   im2col elements copied
    ``out``    output elements
    ``call``   1 (per-call overhead)

    computed for each formulation the CPU direct path chooses between: the
    channel GEMM (``K = C_in/g * taps_h * taps_w``, thin side ``C_out/g``,
    FLOPs the useful ones) and the Toeplitz-W form with ``m = 2 .. 32``
    output blocks (banded weights: ``width * m * s_w / kW`` times the FLOPs,
    thin side ``C_out/g * m * s_w``).  The direct price is the cheapest
    formulation's, as the direct path itself takes its cheapest.  On CuPy
    only the first (channel) form is priced.

fft (:func:`fft_features`, from the plan
:func:`xconvt.backends.fft.make_plan` makes for this call, so chunks, tiles,
pruning and FFT sizes are priced as they will run)
    ``fft``    butterfly work: sum over every 1-D transform stage of
               ``rows * n * log2(n)`` (real stages count half)
    ``mac1``   complex multiply-adds of the channel contraction, channels-first
               (broadcast multiply-add, memory bound)
    ``mac2``   the same for the channels-last batched matmul
    ``elem``   output elements written or added
    ``call``   array-library calls (transforms, products, adds)

float64 doubles every term but the calls; complex inputs count 4 real
multiply-adds per direct FLOP (their FFT work and MACs are counted as such).

Constants, ``numpy``: measured on this project's CPU machine (Intel Xeon,
2 cores shared with other agents' work, Python 3.11, NumPy 2.4 with
OpenBLAS, SciPy 1.17 pocketFFT with ``workers=2``) on 2026-11-25 with
:func:`calibrate` (``python -m xconvt._cost``): the 28 configurations of
:data:`CALIBRATION` (the kernel-size sweep up to k = 15, the CPU benchmark
suite, and small, depthwise, single-channel, batched and strided extras),
each timed with ``algorithm="direct"`` and ``"fft"`` in float32, interleaved,
the best of 7 runs after a warm-up; three passes, the best time kept (other
jobs on the machine inflated single timings up to 10x while the first two
ran).  FFT constants: non-negative least squares of ``predicted / measured -
1``; direct constants: least squares of ``log(predicted / measured)`` (the
min over formulations is not linear).  On that data the model picks the
faster algorithm in all 28 cases, and predicts every FFT time within 1.25x
and the direct times within 1.5x (2.1x on the fastest, a 0.1 ms 1^3 kernel).
The fitted ``thin``, ``out`` and direct ``call`` terms came out at zero.
Re-run the calibration when a backend changes, and paste its output here.

Constants, ``cupy``: measured on 2026-11-25 on an NVIDIA H200 (calibration,
``python -m xconvt._cost --kind cupy``) and checked on an H100 (the 64^3
kernel-size sweep of ``bench sweep --device gpu``).  The direct path is
priced by :func:`_cupy_direct` (the fused kernel's rate, 26 TFLOP/s with 4 or
more output channels per thread and 10 with one or two, scaled by the
fraction of the GPU its blocks fill, plus traffic and 40 us of launch and host
work).  Real-dtype FFT calls that fit the memory budget run the one-pass
path (:class:`xconvt.backends.fft.OnePassPlan`), priced as 121 us plus the
bytes its padded volumes and spectra move at 0.8 TB/s (fitted on 21 H100
runs on 2026-11-26, every prediction within 1.14x; the fixed part is host
work and the latency of small kernels and transforms; the padding kernels got
faster after that fit, so it now overestimates the FFT by about 25%, which only
errs toward the direct path near the crossover).  Other FFT calls run
the chunked path, whose contraction constants ``mac1``/``mac2`` are the
calibration's fit and whose ``fft`` and ``call`` were refitted on the 64^3
sweep of 2026-11-25.  With these the 64^3 sweep's choice is within 1.25x of
the faster algorithm at every k from 1 to 31 (direct up to k = 9, FFT beyond),
and direct on every GPU suite case.

``measure`` times each registered algorithm once per ``(kind, params,
dtype, device)`` after one warm-up call (synchronizing the CuPy stream before
reading the clock), caches the winner and returns it; later calls with the
same key return the cached name without timing.
"""

from __future__ import annotations

import functools
import math
import time

from ._config import get_memory_budget
from ._params import dtype_name

__all__ = ["CALIBRATION", "CONSTANTS", "calibrate", "choose", "estimate", "measure"]

DIRECT_FEATURES = ("gemm", "thin", "copy", "out", "call")
FFT_FEATURES = ("fft", "mac1", "mac2", "elem", "call")

#: Seconds per feature unit (see the module docstring).
CONSTANTS = {
    # Fitted on 2026-11-25 by calibrate("numpy") (module docstring).
    "numpy": {
        "direct": {"gemm": 8.33e-12, "thin": 0.0, "copy": 7.60e-10, "out": 0.0,
                   "call": 0.0},
        "fft": {"fft": 5.40e-10, "mac1": 8.23e-10, "mac2": 1.31e-9, "elem": 3.61e-10,
                "call": 2.92e-5},
    },
    # Measured on the GPU on 2026-11-25 (module docstring): mac1/mac2 from
    # calibrate("cupy"); "fft" and "call" refitted on the 64^3 sweep (the
    # calibration's small volumes could not separate them: it put all of the
    # time on per-call overhead).  The direct path is priced by _cupy_direct.
    "cupy": {
        "direct": {"rate": 26e12, "rate_narrow": 10e12, "sms": 132,
                   "bandwidth": 2.5e12, "call": 4e-5},
        "fft": {"fft": 1.8e-12, "mac1": 8.27e-11, "mac2": 5.43e-11, "elem": 0.0,
                "call": 6.5e-5},
        # The one-pass FFT (every phase at once, fft.OnePassPlan): fixed cost
        # (launches, host work, small-transform latency) plus the bytes its
        # padded volumes and spectra move.  Least-squares fit to 21 H100 runs
        # of 2026-11-26 (64^3 sweep k = 1..31 and 9 mixed shapes, 0.16-0.44
        # ms), every prediction within 1.14x.
        "fft_one_pass": {"call": 1.21e-4, "byte": 1.26e-12},
    },
}


def _cupy_direct(params, itemsize):
    """Seconds of the GPU direct path.

    Useful FLOPs at the fused kernel's rate when it fills the GPU (26 TFLOP/s
    float32 with 4 or more output channels per thread, 10 for one or two,
    which are shared-memory bound), scaled down by the fraction of the GPU
    its blocks occupy (a 32^3 sweep volume fills a sixth of an H100), plus
    input/output traffic and launch overhead.  Fitted to the H100/H200 runs
    of 2026-11-25 (bench/results).
    """
    from .backends.cuda import _fused_tables, fused_config

    c = CONSTANTS["cupy"]["direct"]
    cfg = fused_config(params, "float64" if itemsize == 8 else "float32")
    nblocks = _fused_tables(params, tuple(sorted(cfg.items())))[2]
    fill = min(1.0, nblocks / (c["sms"] * cfg["blocks_per_sm"]))
    rate = c["rate"] if cfg["ro"] >= 4 else c["rate_narrow"]
    nbytes = itemsize * (math.prod(params.input_shape) + math.prod(params.batched_output_shape))
    return c["call"] + params.flops / (rate * fill) + nbytes / c["bandwidth"]


def _log2(n):
    return math.log2(n) if n > 1 else 0.0


# ------------------------------------------------------------------ features
def direct_features(params):
    """Feature values of the direct path's two formulations for ``params``.

    Returns a list of feature dicts, one per formulation the direct path
    chooses between (see :mod:`xconvt.backends.cpu`): the channel GEMM, and
    the Toeplitz-W form (W taps as a banded matrix, ``m`` output blocks of
    ``m * s_w`` columns, for ``m`` in 2, 4, ..., 32).  The direct price is the
    cheapest formulation's.
    """
    n, g = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    axd, axh, axw = ([ph for ph in ax if ph.count and ph.taps] for ax in params.axis_phases)
    flops = params.flops
    out = n * params.out_channels * math.prod(params.out_size)
    taps_h = max((len(ph.taps) for ph in axh), default=1)
    taps_w = max((len(ph.taps) for ph in axw), default=1)
    depth = max(1, cig * taps_h * taps_w)
    forms = [{
        "gemm": flops * (1 + 64 / depth),
        "thin": flops / cog,
        "copy": n * params.in_channels * math.prod(params.in_size) * taps_h * taps_w
        * params.stride[1] * params.stride[2],
        "out": out,
        "call": 1.0,
    }]
    if params.is_pure_upsample or not (axd and axh and axw):
        return forms
    size_w, k_w = params.in_size[2], params.kernel[2]
    s_w, p_w, d_w = params.stride[2], params.padding[2], params.dilation[2]
    rows_d = sum(ph.count * len(ph.taps) for ph in axd)
    rows_h = sum(ph.count * len(ph.taps) for ph in axh)
    planes = params.in_size[0] + max(len(ph.taps) for ph in axd) * axd[0].step
    for m in (2, 4, 8, 16, 32):
        bw = m * s_w
        ilo = -(((k_w - 1) * d_w - p_w) // s_w)
        width = (bw - 1 + p_w) // s_w - ilo + 1
        blocks = -(-params.out_size[2] // bw)
        f_t = 2 * n * g * cig * cog * rows_d * rows_h * blocks * width * bw
        forms.append({
            "gemm": f_t * (1 + 64 / (cig * taps_h * width)),
            "thin": f_t / (cog * bw),
            "copy": n * params.in_channels * rows_h * blocks * width * planes,
            "out": out,
            "call": 1.0,
        })
        if bw >= params.out_size[2] or size_w <= m:
            break
    return forms


def _fwd_units(plan, batch, sizes):
    """Butterfly units of one forward transform of ``batch`` arrays of ``sizes``."""
    fd, fh, fw = plan.fft_shape
    half = 1.0 if plan.is_complex else 0.5
    frw = plan.spec_shape[2]
    if not plan.prune:
        sizes = plan.fft_shape
    td, th, _ = sizes
    return batch * (td * th * fw * _log2(fw) * half + td * frw * fh * _log2(fh)
                    + fh * frw * fd * _log2(fd))


def _inv_units(plan, batch, kept):
    fd, fh, fw = plan.fft_shape
    half = 1.0 if plan.is_complex else 0.5
    frw = plan.spec_shape[2]
    md, mh, _ = kept if plan.prune else plan.fft_shape
    return batch * (fh * frw * fd * _log2(fd) + md * frw * fh * _log2(fh)
                    + md * mh * fw * _log2(fw) * half)


def fft_features(params, plan):
    """Feature values of the FFT path running ``plan`` (see the docstring)."""
    from itertools import product

    from .backends.fft import _chunks, _tile_jobs

    n, g = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    spec = math.prod(plan.spec_shape)
    n_nb = len(_chunks(n, plan.nb))
    n_gc = len(_chunks(g, plan.gc))
    n_co = len(_chunks(cog, plan.co))
    n_cw = len(_chunks(cig, plan.cw))
    x_again = 1 if plan.ci == cig else None  # recomputed per job and output chunk
    f = dict.fromkeys(FFT_FEATURES, 0.0)
    f["elem"] = n * params.out_channels * math.prod(params.out_size)
    f["call"] = 2.0
    mac = "mac2" if plan.chan_last else "mac1"
    tiles = list(product(*plan.tiles))
    scale = 1.0
    if len(tiles) > 2048:  # estimate from a sample of the tiles
        scale, tiles = len(tiles) / 2048, tiles[:: max(1, len(tiles) // 2048)][:2048]
    w_done = set()
    for tile in tiles:
        jobs = _tile_jobs(plan, tile)
        if not jobs:
            continue
        sizes = tuple(t[1] for t in tile)
        t_units = t_mac = t_elem = t_call = 0.0
        per_x = x_again or len(jobs) * n_co
        t_units += per_x * _fwd_units(plan, n * g * cig, sizes)
        t_call += per_x * (n_nb * n_gc if x_again else n_nb * n_gc * n_cw)
        for p, crops, _ in jobs:
            kept = tuple(c.stop - c.start for c in crops)
            lengths = tuple(t.length for t in plan.phases[p])
            w_uses = 1 if plan.cache_weights else n_nb
            if not (plan.cache_weights and p in w_done):
                t_units += w_uses * _fwd_units(plan, g * cig * cog, lengths)
                t_call += w_uses * n_gc * n_co * n_cw
                w_done.add(p)
            t_units += _inv_units(plan, n * g * cog, kept)
            t_mac += n * g * cig * cog * spec
            t_elem += n * params.out_channels * math.prod(kept)
            calls_per_chunk = (n_cw * (1 if plan.chan_last else plan.cw)) + 4
            t_call += n_nb * n_gc * n_co * calls_per_chunk
        f["fft"] += scale * t_units
        f[mac] += scale * t_mac
        f["elem"] += scale * t_elem
        f["call"] += scale * t_call
    return f


# --------------------------------------------------------------------- model
def _constants(kind, algorithm):
    c = dict(CONSTANTS[kind][algorithm])
    if kind == "cupy" and algorithm == "fft" and c["fft"] is None:
        c["fft"] = _cupy_fft_constant()
    return c


def _cupy_fft_constant():
    """Seconds per butterfly unit from a 96^3 real round trip in 0.13 ms."""
    from .backends.fft import Plan

    plan = Plan((96, 96, 96), (((0, 96),),) * 3, 1, 1, 1, 1, 1, False, 0, False, False,
                False, ())
    units = _fwd_units(plan, 1, (96, 96, 96)) + _inv_units(plan, 1, (96, 96, 96))
    return 0.13e-3 / units


def _dtype_name(dtype):
    return dtype if isinstance(dtype, str) else dtype_name(dtype)


def estimate(kind, params, dtype, budget=None):
    """Predicted seconds ``{"direct": t, "fft": t}`` for one call."""
    from .backends.fft import make_plan

    name = _dtype_name(dtype)
    work = "float32" if name == "float16" else name
    wide = 2.0 if work in ("float64", "complex128") else 1.0
    cplx = 4.0 if work.startswith("complex") else 1.0  # complex MACs, real FFT halves
    if budget is None:
        from ._config import get_memory_budget

        budget = get_memory_budget()
    one_pass = None
    if kind == "cupy" and not work.startswith("complex"):
        from .backends.fft import one_pass_plan

        one_pass = one_pass_plan(params, work, budget)
    if one_pass is not None:
        c = CONSTANTS["cupy"]["fft_one_pass"]
        t_fft = c["call"] + one_pass.bytes * c["byte"]
    else:
        plan = make_plan(params, kind, work, budget)
        ff = fft_features(params, plan)
        fc = _constants(kind, "fft")
        t_fft = (wide * (ff["fft"] * fc["fft"] + ff["mac1"] * fc["mac1"]
                         + ff["mac2"] * fc["mac2"] + ff["elem"] * fc["elem"])
                 + ff["call"] * fc["call"])
    if kind == "cupy":
        return {"direct": wide * _cupy_direct(params, 8 if wide > 1 else 4), "fft": t_fft}
    dc = _constants(kind, "direct")
    t_direct = min(
        wide * cplx * (df["gemm"] * dc["gemm"] + df["thin"] * dc["thin"])
        + wide * (df["copy"] * dc["copy"] + df["out"] * dc["out"])
        + df["call"] * dc["call"]
        for df in direct_features(params)[:1 if kind == "cupy" else None])
    return {"direct": t_direct, "fft": t_fft}


def choose(kind, params, dtype):
    """``"direct"`` or ``"fft"``, whichever the cost model prices lower.

    Cached per ``(kind, params, dtype, memory budget)``: planning the FFT
    costs tens of microseconds, which small calls would notice.
    """
    return _choose_cached(kind, params, _dtype_name(dtype), get_memory_budget())


@functools.lru_cache(maxsize=4096)
def _choose_cached(kind, params, dtype, budget):
    t = estimate(kind, params, dtype, budget)
    return "fft" if t["fft"] < t["direct"] else "direct"


# ------------------------------------------------------------------- measure
_MEASURED = {}


def _device_key(kind, x):
    if kind == "cupy":
        return ("cupy", int(x.device.id))
    return ("cpu",)


def _timer(kind, x):
    """A function returning seconds, synchronizing CuPy's current stream first."""
    if kind == "cupy":
        import cupy

        def now():
            cupy.cuda.get_current_stream().synchronize()
            return time.perf_counter()

        return now
    return time.perf_counter


def measure(kind, params, x, w, b):
    """Time every registered algorithm once (after a warm-up call) and cache
    the fastest per ``(kind, params, dtype, device)``; return its name."""
    from . import backends

    key = (kind, params, _dtype_name(x.dtype), _device_key(kind, x))
    best = _MEASURED.get(key)
    if best is None:
        now = _timer(kind, x)
        times = {}
        for name in backends.algorithms(kind):
            fn = backends.get(kind, name)
            fn(params, x, w, b)  # warm-up: plans, kernels, caches
            t0 = now()
            fn(params, x, w, b)
            times[name] = now() - t0
        best = min(times, key=times.get)
        _MEASURED[key] = best
    return best


# ----------------------------------------------------------------- calibrate
#: Configurations timed by :func:`calibrate`:
#: ``(N, C_in, C_out, size, kernel, stride, padding, groups)``.
CALIBRATION = tuple(
    [(1, 4, 4, 32, k, 1, (k - 1) // 2, 1) for k in (1, 3, 5, 7, 9, 11, 15)]
    + [
        (1, 64, 32, 32, 2, 2, 0, 1),
        (1, 32, 16, 32, 3, 2, 1, 1),
        (1, 16, 16, 32, 3, 1, 1, 1),
        (1, 32, 32, 32, 7, 1, 3, 32),
        (1, 32, 32, 24, 3, 2, 1, 4),
        (1, 1, 1, 64, 5, 2, 2, 1),
        (2, 16, 33, (6, 20, 30), (3, 5, 2), (2, 1, 1), (0, 4, 2), 1),
        (1, 16, 16, 24, 5, 1, 2, 1),
        (1, 32, 32, 16, 3, 1, 1, 1),
        (1, 8, 8, 32, 5, 1, 2, 1),
        (1, 8, 8, 24, 9, 1, 4, 1),
        (1, 1, 1, 64, 3, 1, 1, 1),
        (1, 1, 1, 48, 9, 1, 4, 1),
        (1, 1, 1, 64, 2, 1, 0, 1),
        (1, 16, 16, 16, 3, 1, 1, 16),
        (1, 16, 16, 32, 3, 1, 1, 16),
        (4, 8, 8, 16, 3, 1, 1, 1),
        (1, 2, 2, 32, 7, 1, 3, 1),
        (1, 4, 4, 24, 4, 2, 1, 1),
        (1, 32, 16, 16, 4, 2, 1, 1),
        (2, 4, 4, 32, 2, 1, 0, 1),
    ]
)


def _case_params(case):
    from ._params import ConvParams

    n, cin, cout, size, k, s, p, g = case
    size = size if isinstance(size, tuple) else (size,) * 3
    k = k if isinstance(k, tuple) else (k,) * 3
    return ConvParams.from_shapes((n, cin) + size, (cin, cout // g) + k, None, s, p,
                                  groups=g)


def calibrate(kind="numpy", cases=CALIBRATION, dtype="float32", repeat=3, fit=True,
              max_seconds=5.0, log=print):
    """Time ``direct`` and ``fft`` over ``cases`` and fit :data:`CONSTANTS`.

    Returns ``(records, constants)``; ``records`` hold the features and the
    best time of each run.  A direct run estimated (from the running fit of
    earlier cases) above ``max_seconds`` is skipped.
    """
    import numpy as np

    from . import backends
    from .backends.fft import make_plan

    if kind == "cupy":
        import cupy as xp
    else:
        xp = np
    rng = np.random.default_rng(0)
    records = []
    for case in cases:
        params = _case_params(case)
        x = xp.asarray(rng.standard_normal(params.input_shape).astype(dtype))
        w = xp.asarray(rng.standard_normal(params.weight_shape).astype(dtype))
        now = _timer(kind, x)
        rec = {"case": case, "direct_f": direct_features(params),
               "fft_f": fft_features(params, make_plan(params, kind, dtype))}
        fns = {name: backends.get(kind, name) for name in ("direct", "fft")}
        for name, fn in fns.items():  # warm-up, and the first timing
            t0 = now()
            fn(params, x, w, None)
            rec[name] = now() - t0
        for _ in range(repeat):  # interleaved, so both see the same load
            for name, fn in fns.items():
                if rec[name] < max_seconds:
                    t0 = now()
                    fn(params, x, w, None)
                    rec[name] = min(rec[name], now() - t0)
        log(f"{case}: direct {rec['direct'] * 1e3:.2f} ms, fft {rec['fft'] * 1e3:.2f} ms")
        records.append(rec)
    constants = _fit(records) if fit else None
    return records, constants


def _nnls_relative(rows, times, feats):
    import numpy as np
    from scipy.optimize import nnls

    a = np.array([[row[f] / t for f in feats] for row, t in zip(rows, times)])
    scale = a.max(axis=0)
    scale[scale == 0] = 1
    coef, _ = nnls(a / scale, np.ones(len(rows)))
    return {f: float(c / s) for f, c, s in zip(feats, coef, scale)}


def _fit(records):
    """Fit the constants to timed records, per algorithm.

    FFT: non-negative least squares of the relative errors.  Direct: its
    price is the cheapest of its formulations, so the constants minimize the
    squared log ratio predicted / measured (``scipy.optimize.least_squares``
    over log-constants, started from the least-squares fit of the channel
    GEMM form alone).
    """
    import numpy as np
    from scipy.optimize import least_squares

    fft = _nnls_relative([r["fft_f"] for r in records], [r["fft"] for r in records],
                         FFT_FEATURES)
    forms = [r["direct_f"] if isinstance(r["direct_f"], list) else [r["direct_f"]]
             for r in records]
    times = np.array([r["direct"] for r in records])
    start = _nnls_relative([f[0] for f in forms], times, DIRECT_FEATURES)
    mats = [np.array([[d[f] for f in DIRECT_FEATURES] for d in fs]) for fs in forms]
    floor = 1e-30

    def resid(theta):
        c = np.exp(theta)
        return np.array([np.log((m @ c).min() / t) for m, t in zip(mats, times)])

    theta0 = np.log(np.array([max(start[f], floor) for f in DIRECT_FEATURES]))
    theta0 = np.maximum(theta0, np.log(1e-16))
    sol = least_squares(resid, theta0, method="trf")
    direct = {f: float(np.exp(v)) for f, v in zip(DIRECT_FEATURES, sol.x)}
    return {"direct": direct, "fft": fft}


def _price(constants, features):
    return sum(constants[f] * features[f] for f in constants)


def _predict(constants, rec):
    out = {"fft": _price(constants["fft"], rec["fft_f"])}
    forms = rec["direct_f"] if isinstance(rec["direct_f"], list) else [rec["direct_f"]]
    out["direct"] = min(_price(constants["direct"], d) for d in forms)
    return out


def _main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="python -m xconvt._cost",
                                 description="Time direct and fft and fit CONSTANTS.")
    ap.add_argument("--kind", default="numpy", choices=("numpy", "cupy"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    records, constants = calibrate(args.kind, repeat=args.repeat)
    print("CONSTANTS[%r] = %r" % (args.kind, constants))
    for r in records:
        t = _predict(constants, r)
        print(f"{r['case']}: direct {r['direct'] * 1e3:.2f} (model {t['direct'] * 1e3:.2f})"
              f" fft {r['fft'] * 1e3:.2f} (model {t['fft'] * 1e3:.2f}) ms")


if __name__ == "__main__":
    _main()
