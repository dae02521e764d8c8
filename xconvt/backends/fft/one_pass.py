"""The one-pass CuPy FFT: every active stride phase at once, in a handful of
kernels and three cached cuFFT plans (see :mod:`xconvt.backends.fft`)."""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..._plan import Plan
from .sizes import axis_term, fast_len_fn, single_tile_len

__all__ = ["OnePass", "OnePassPlan", "one_pass_plan", "plan"]

KERNELS = Path(__file__).with_name("kernels.cu")


# ------------------------------------------------------- CuPy, all phases
class OnePassPlan:
    """Geometry of the one-pass CuPy FFT: every active phase at once.

    ``fft_shape`` is the single-tile transform size (alias-free for the kept
    rows of every phase, as in :func:`make_plan`).  Tables, as the kernels in
    ``kernels.cu`` read them (``xconvt_fft_*``):

    ``wtab``  per axis, one row of ``F`` entries per active axis phase: the
              kernel tap at that position of the dilated sub-kernel, or -1;
              D rows, then H, then W (``offsets`` gives where H and W start).
    ``otab``  per axis and output index, ``(axis phase, full-convolution
              row)``, both -1 where no tap reaches the output (bias only) and
              the row -1 where the output lies outside the phase's full
              convolution (it is 0 there).

    The active phases are the product of the per-axis active phases, numbered
    ``(pd * NH + ph) * NW + pw``.  ``workspace`` is the peak bytes of the
    call's buffers (padded volumes, the three spectra, cuFFT's work area),
    ``bytes`` what the call moves (the cost model's feature) and ``macs`` the
    complex multiply-adds of the contraction.
    """

    def __init__(self, params, dtype_name, fast_len=None):
        fast_len = fast_len or fast_len_fn("cupy")
        self.counts = []
        wrows, otab = [], []
        fshape, lengths = [], []
        for a in range(3):
            terms = [axis_term(ph, params.stride[a]) for ph in params.axis_phases[a]
                     if ph.count and ph.taps]
            f = single_tile_len(params.in_size[a], terms, fast_len, a == 2) if terms else 1
            fshape.append(f)
            lengths.append(max((t.length for t in terms), default=1))
            self.counts.append(len(terms))
            ot = [(-1, -1)] * params.out_size[a]
            for i, t in enumerate(terms):
                row = [-1] * f
                for v in range(0, t.length, t.step):
                    row[v] = t.k_slice.start + (v // t.step) * (t.k_slice.step or 1)
                wrows.append(row)
                last = params.in_size[a] + t.length - 2
                for j in range(t.count):
                    r = t.n0 + j
                    ot[t.first + t.stride * j] = (i, r if 0 <= r <= last else -1)
            otab.extend(ot)
        self.fft_shape = tuple(fshape)
        self.lengths = tuple(lengths)  # longest sub-kernel per axis (pad_w's extent)
        self.n_phases = math.prod(self.counts)
        fd, fh, fw = fshape
        self.offsets = (0, self.counts[0] * fd, self.counts[0] * fd + self.counts[1] * fh)
        self.wtab = [v for row in wrows for v in row]
        self.otab = [v for pair in otab for v in pair]
        n, g = params.batch, params.groups
        cig, cog = params.in_channels_per_group, params.out_channels_per_group
        p = self.n_phases
        self.spec = fd * fh * (fw // 2 + 1)
        vol = fd * fh * fw
        r = 8 if dtype_name == "float64" else 4
        xs, ws, ys = (2 * r * self.spec * k for k in (n * g * cig, p * g * cig * cog,
                                                       p * n * g * cog))
        xp_, wp, yr = (r * vol * k for k in (n * g * cig, p * g * cig * cog, p * n * g * cog))
        # cuFFT's work area is about one transform's output; it is freed with
        # the plan cache, so count the largest.
        self.workspace = (max(2 * xp_ + xs, xs + 2 * wp + ws, xs + ws + ys, 2 * ys + yr)
                          + r * math.prod(params.batched_output_shape))
        self.volumes = n * g * cig + p * g * cig * cog + p * n * g * cog
        self.macs = p * n * g * cig * cog * self.spec
        self.bytes = r * (2 * vol * self.volumes + 2 * self.spec * self.volumes
                          + math.prod(params.batched_output_shape)
                          + math.prod(params.input_shape) + math.prod(params.weight_shape))


@lru_cache(maxsize=512)
def one_pass_plan(params, dtype_name, budget):
    """The :class:`OnePassPlan` of a real-dtype call, or None where the call
    has no active phase, an empty batch or needs more than ``budget`` bytes
    (then the chunked path of :class:`Call` runs)."""
    if dtype_name not in ("float32", "float64") or params.batch == 0:
        return None
    if not any(all(ph.taps for ph in t) for t in params.phases()):
        return None
    plan = OnePassPlan(params, dtype_name)
    if sum(f > 1 for f in plan.fft_shape) < 2:
        # cuFFT's multi-dimensional real plans reject arrays that are also
        # F-contiguous (one non-trivial axis); such lines take the chunked path.
        return None
    return plan if plan.workspace <= budget else None


class _DevicePlan:
    """Kernels, cuFFT plans and device tables of one :class:`OnePassPlan` on
    the current device.  A call is then four kernels, three cuFFT executions
    and five allocations from CuPy's pool, with no per-call planning."""

    def __init__(self, params, dtype_name, budget):
        import cupy
        from cupy.cuda import cufft
        from cupyx.scipy.fft import get_fft_plan

        from ..cuda import runtime as rt

        self.plan = plan = one_pass_plan(params, "float32" if dtype_name == "float16"
                                         else dtype_name, budget)
        work = "float64" if dtype_name == "float64" else "float32"
        ctype = rt.CTYPES[dtype_name]
        n, g = params.batch, params.groups
        cig, cog = params.in_channels_per_group, params.out_channels_per_group
        p = plan.n_phases
        fd, fh, fw = fs = plan.fft_shape
        vol = fd * fh * fw
        self.ob = 4 if cog >= 4 else 1
        n_mac = p * n * g * -(-cog // self.ob) * plan.spec
        n_out = math.prod(params.batched_output_shape)
        index_t = rt.index_type(n * g * cig * vol, p * g * cig * cog * vol,
                                   p * n * g * cog * vol, n_mac, n_out,
                                   math.prod(params.input_shape))
        it = np.int32 if index_t == "int" else np.int64
        self.pad_x = rt.kernel(KERNELS, f"xconvt_fft_pad_x<{ctype}, {index_t}>")
        self.pad_w = rt.kernel(KERNELS, f"xconvt_fft_pad_w<{ctype}, {index_t}>")
        self.mac = rt.kernel(KERNELS, f"xconvt_fft_mac<{rt.CTYPES[work]}, {index_t}, {self.ob}>")
        self.crop = rt.kernel(KERNELS, f"xconvt_fft_crop<{ctype}, {index_t}>")
        self.wtab = cupy.asarray(np.asarray(plan.wtab, np.int32))
        self.otab = cupy.asarray(np.asarray(plan.otab, np.int32))
        self.work = np.dtype(work)
        self.cwork = np.dtype("complex128" if work == "float64" else "complex64")
        self.shapes = dict(x=(n * g * cig,) + fs, w=(p * g * cig * cog,) + fs,
                           xs=(n * g * cig, fd, fh, fw // 2 + 1),
                           ws=(p * g * cig * cog, fd, fh, fw // 2 + 1),
                           y=(p * n * g * cog, fd, fh, fw // 2 + 1),
                           yr=(p * n * g * cog,) + fs)
        axes = (-3, -2, -1)

        def make(shape, dtype, value_type):
            probe = cupy.empty(shape, dtype=dtype)  # planning reads only shape and dtype
            return get_fft_plan(probe, shape=fs, axes=axes, value_type=value_type)

        self.fft_x = make(self.shapes["x"], self.work, "R2C")
        self.fft_w = make(self.shapes["w"], self.work, "R2C")
        self.ifft_y = make(self.shapes["y"], self.cwork, "C2R")
        self.forward, self.inverse = cufft.CUFFT_FORWARD, cufft.CUFFT_INVERSE
        i32 = np.int32
        nd, nh, nw = plan.counts
        n_x = n * g * cig * math.prod(params.in_size)
        n_w = p * g * cig * cog * math.prod(plan.lengths)
        self.launch = dict(
            x=(rt.grid_1d(n_x),
               (it(n_x), *(i32(v) for v in params.in_size), i32(fd), i32(fh), i32(fw))),
            w=(rt.grid_1d(n_w),
               (it(n_w), i32(g * cig * cog), *(i32(v) for v in params.kernel),
                *(i32(v) for v in plan.lengths), i32(fd), i32(fh), i32(fw), i32(nh), i32(nw),
                i32(plan.offsets[1]), i32(plan.offsets[2]))),
            mac=(rt.grid_1d(n_mac),
                 (it(n_mac), it(plan.spec), i32(n), i32(g), i32(cig), i32(cog))),
            crop=(rt.grid_1d(n_out),
                  (it(n_out), i32(n), i32(g), i32(cog), *(i32(v) for v in params.out_size),
                   i32(fd), i32(fh), i32(fw), i32(nh), i32(nw))),
        )
        self.scale = np.dtype(work).type(1.0 / vol)

    def __call__(self, params, x, w, b):
        """Queue the whole call; return the output and a device flag that is
        set where an input or weight is not finite."""
        import cupy

        x = cupy.ascontiguousarray(x)
        w = cupy.ascontiguousarray(w)
        sh, la, empty = self.shapes, self.launch, cupy.empty
        stream = cupy.cuda.get_current_stream().ptr
        memset = cupy.cuda.runtime.memsetAsync
        bad = empty(1, dtype=cupy.int32)
        memset(bad.data.ptr, 0, 4, stream)
        xpad = empty(sh["x"], dtype=self.work)
        memset(xpad.data.ptr, 0, xpad.nbytes, stream)  # the kernels write the data only
        grid, args = la["x"]
        self.pad_x(grid, (256,), (x, xpad, bad, *args))
        xs = empty(sh["xs"], dtype=self.cwork)
        self.fft_x.fft(xpad, xs, self.forward)
        del xpad
        wpad = empty(sh["w"], dtype=self.work)
        memset(wpad.data.ptr, 0, wpad.nbytes, stream)
        grid, args = la["w"]
        self.pad_w(grid, (256,), (w, wpad, self.wtab, bad, *args))
        ws = empty(sh["ws"], dtype=self.cwork)
        self.fft_w.fft(wpad, ws, self.forward)
        del wpad
        ys = empty(sh["y"], dtype=self.cwork)
        grid, args = la["mac"]
        self.mac(grid, (256,), (xs, ws, ys, *args))
        del xs, ws
        yr = empty(sh["yr"], dtype=self.work)
        self.ifft_y.fft(ys, yr, self.inverse)  # C2R: unnormalized, overwrites ys
        del ys
        out = empty(params.batched_output_shape, dtype=x.dtype)
        grid, args = la["crop"]
        self.crop(grid, (256,), (yr, x if b is None else b, out, self.otab, self.scale,
                                 np.int32(b is not None), *args))
        return out, bad


# Device plans hold cuFFT work areas, so only the few most recent are kept.
_DEVICE_PLANS = OrderedDict()
_DEVICE_PLANS_MAX = 8


def _device_plan(params, dtype_name, budget):
    import cupy

    key = (cupy.cuda.runtime.getDevice(), params, dtype_name, budget)
    plan = _DEVICE_PLANS.get(key)
    if plan is None:
        plan = _DevicePlan(params, dtype_name, budget)
        _DEVICE_PLANS[key] = plan
        while len(_DEVICE_PLANS) > _DEVICE_PLANS_MAX:
            _DEVICE_PLANS.popitem(last=False)
    else:
        _DEVICE_PLANS.move_to_end(key)
    return plan


#: The one-pass call's price: a fixed part (launches, host work, the latency
#: of small kernels and transforms) plus the bytes its padded volumes and
#: spectra move (:attr:`OnePassPlan.bytes`).  Least-squares fit to 21 H100 runs
#: of 2026-11-26 (64^3 sweep k = 1..31 and 9 mixed shapes, 0.16-0.44 ms),
#: every prediction within 1.14x; it overestimates by about 25% since the
#: padding kernels got faster, which errs toward the direct path.
COST = {"call": 1.21e-4, "byte": 1.26e-12}


class OnePass(Plan):
    """The one-pass plan of one problem; its call queues the whole
    computation and reads one flag back, then takes the exact path
    (:func:`.exact.non_finite`) if an input or weight was not finite."""

    algorithm = "fft"

    def __init__(self, problem, geometry):
        self.name = "fft.one_pass"
        self.params, self.dtype, self.budget = problem.params, problem.dtype, problem.budget
        self.estimate = COST["call"] + geometry.bytes * COST["byte"]
        self.workspace = geometry.workspace
        self.detail = (f"transforms {'x'.join(map(str, geometry.fft_shape))}, "
                       f"{geometry.n_phases} phase(s)")

    def __call__(self, x, w, b):
        from .exact import non_finite

        with x.device:
            out, bad = _device_plan(self.params, self.dtype, self.budget)(self.params, x, w, b)
            if int(bad.get()[0]):
                return non_finite(self.params, x, w, b)
        return out


def plan(problem):
    """The one-pass CuPy FFT, where the call's buffers fit the memory budget."""
    if problem.op != "conv_transpose3d":
        return f"computes conv_transpose3d only, not {problem.op}"
    if problem.device.kind != "cuda":
        return "runs on CUDA devices only"
    if problem.dtype not in ("float16", "float32", "float64"):
        return f"real float16/32/64 only, not {problem.dtype} (the chunked FFT takes it)"
    work = "float32" if problem.dtype == "float16" else problem.dtype
    if not any(all(ph.taps for ph in t) for t in problem.params.phases()):
        return "no stride phase has taps (every output is bias only)"
    geometry = OnePassPlan(problem.params, work)
    if sum(f > 1 for f in geometry.fft_shape) < 2:
        return "cuFFT's 3-D real plans reject single lines (the chunked FFT takes them)"
    if geometry.workspace > problem.budget:
        return (f"needs {geometry.workspace} bytes of buffers, over the memory budget of "
                f"{problem.budget}")
    return OnePass(problem, geometry)
