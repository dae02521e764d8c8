"""conv3d on the GPU's tuned transposed-convolution kernels.

conv3d ``x[c, i] = sum_{o, k} w[c, o, k] * ypad[o, i*s + k*d]`` (the adjoint of
``params``' transposed convolution, ``ypad[m] = y[m - p]``) is rewritten, per
spatial axis, as a stride-1 transposed convolution ``T'`` that
the best direct transposed-convolution plan computes (the FMA kernels, or
the tensor cores where the precision allows):

stride 1
    The axis keeps its kernel and dilation; ``y2[m] = ypad[m]`` for
    ``m < I + d(k - 1)``, the kernel is flipped and ``T'`` pads by
    ``d(k - 1)``: ``x[i] = sum_k' w[k - 1 - k'] y2[i - d(k - 1) + k'd]``.
stride ``s > 1`` (space to depth)
    ``y2[(o, r), m] = ypad[o, m*s + r]`` (``s`` times the channels, ``m < I +
    Q - 1``) and tap ``k`` with ``k*d = q*s + r`` moves to channel ``(o, r)``
    and position ``q`` of a dense kernel of ``Q = (k - 1)d div s + 1`` taps
    (zero where no tap lands), flipped, with dilation 1 and padding ``Q - 1``.

Channels swap roles (``T'`` reads ``y2``'s ``C_out * prod(s)`` channels per
group and writes ``x``'s ``C_in``): ``w'[g, (o, r), c, q'] = w2[g, c, (o, r), Q
- 1 - q']``.  When every stride is 1 and ``padding <= d(k - 1)``, ``y`` itself
is ``T'``'s input (no copy; ``T'`` pads by ``d(k - 1) - p`` and the extra
``output_padding`` planes of ``y`` are cut by a view).

The rearrangement is written for any array library, so the CPU tests check it
with a CPU transposed-convolution plan as the inner one, and the CPU has a
planner of its own for stride-1 layers (:func:`plan_conv3d_cpu`, no copy).
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import array_namespace, is_cupy_array

from .._plan import FunctionPlan
from .._params import ConvParams

__all__ = ["conv3d", "plan_conv3d", "plan_conv3d_cpu", "rearrange"]


def _axis(params, a, no_copy):
    """``(M, kernel', dilation', padding', s2)`` of axis ``a`` of ``T'``."""
    I, K = params.in_size[a], params.kernel[a]
    s, p, d = params.stride[a], params.padding[a], params.dilation[a]
    if no_copy:
        # y itself, cut to O - op planes: T' output = (O - op) - d(K-1) + 2p = I.
        return params.out_size[a] - params.output_padding[a], K, d, d * (K - 1) - p, 1
    if s == 1:
        return I + d * (K - 1), K, d, d * (K - 1), 1
    q = (K - 1) * d // s + 1
    return I + q - 1, q, 1, q - 1, s


def rearrange(params, y, w):
    """``(T', y2, w')`` with ``conv3d(params)(y, w) == T'(y2, w')`` (no bias).

    ``y`` is ``params.batched_output_shape``, ``w`` ``params.weight_shape``;
    ``y2`` and ``w'`` are new contiguous arrays, or ``y2`` a view of ``y``.
    """
    xp = array_namespace(y)
    tp = rearrange_params(params)
    no_copy = _no_copy(params)
    M, Kp, s2 = tp.in_size, tp.kernel, params.stride
    S = math.prod(s2)
    G, cig, cog = params.groups, params.in_channels_per_group, params.out_channels_per_group
    N = params.batch

    if no_copy:
        y2 = y[:, :, :M[0], :M[1], :M[2]]
    elif is_cupy_array(y):  # one kernel writes every element (zeros included)
        y2 = xp.empty((N, G * cog * S) + M, dtype=y.dtype)
        _space_to_depth(xp.ascontiguousarray(y), y2, N * G * cog, M, s2, params.padding,
                        params.out_size)
    else:
        y2 = xp.zeros((N, G * cog, s2[0], s2[1], s2[2]) + M, dtype=y.dtype)
        for r in ((rd, rh, rw) for rd in range(s2[0]) for rh in range(s2[1])
                  for rw in range(s2[2])):
            dst, src = [slice(None), slice(None), r[0], r[1], r[2]], [slice(None)] * 2
            for a in range(3):
                s, O = params.stride[a], params.out_size[a]
                off = r[a] - params.padding[a]
                lo = 0 if off >= 0 else -(off // s)
                hi = min(M[a], (O - 1 - off) // s + 1) if O - 1 - off >= 0 else 0
                if hi <= lo:
                    break
                dst.append(slice(lo, hi))
                src.append(slice(lo * s + off, (hi - 1) * s + off + 1, s))
            else:
                y2[tuple(dst)] = y[tuple(src)]
        y2 = y2.reshape((N, G * cog * S) + M)

    # w' by one gather through a per-geometry index table (no host transfer per call)
    idx = _weight_index(params, xp, _device_of(w))
    if is_cupy_array(w):
        wp = xp.empty((G * cog * S, cig) + Kp, dtype=w.dtype)
        _kernels()["gather"](xp.ascontiguousarray(w), idx.reshape(wp.shape),
                             np.int64(w.size), wp)
        return tp, y2, wp
    flat = xp.reshape(w, (-1,))
    wz = xp.concat([flat, xp.zeros((1,), dtype=w.dtype)])
    wp = xp.reshape(xp.take(wz, idx), (G * cog * S, cig) + Kp)
    return tp, y2, wp


_SPACE_TO_DEPTH = r"""
// y2 (NC, s0, s1, s2, M0, M1, M2) = ypad[nc, m*s + r] (zero outside y), one
// block per plane (nc, r0, r1, r2, m0) of M1 x M2 elements: the plane's
// coordinates are divided out once per thread, then rows m1 in turn, their
// elements by consecutive threads.  Elements move as words of the dtype's size
// (zero bits are 0).
extern "C" __global__ void xconvt_space_to_depth(const WORD* __restrict__ y,
    WORD* __restrict__ y2, long long planes, int M0, int M1, int M2, int s0, int s1,
    int s2, int p0, int p1, int p2, int O0, int O1, int O2) {
  for (long long plane = blockIdx.x; plane < planes; plane += gridDim.x) {
    long long t = plane;
    const int m0 = (int)(t % M0); t /= M0;
    const int r = (int)(t % (s0 * s1 * s2)); t /= (s0 * s1 * s2);
    const int r2 = r % s2, r1 = (r / s2) % s1, r0 = r / (s1 * s2);
    const int o0 = m0 * s0 + r0 - p0;
    const bool ok0 = o0 >= 0 && o0 < O0;
    const WORD* src = y + (t * O0 + (ok0 ? o0 : 0)) * (long long)O1 * O2;
    WORD* dst = y2 + plane * (long long)M1 * M2;
    for (int m1 = 0; m1 < M1; ++m1) {
      const int o1 = m1 * s1 + r1 - p1;
      const bool ok = ok0 && o1 >= 0 && o1 < O1;
      for (int m2 = threadIdx.x; m2 < M2; m2 += blockDim.x) {
        const int o2 = m2 * s2 + r2 - p2;
        WORD v;
        if (ok && o2 >= 0 && o2 < O2) v = src[(long long)o1 * O2 + o2];
        else memset(&v, 0, sizeof(v));
        dst[(long long)m1 * M2 + m2] = v;
      }
    }
  }
}
"""

_WORDS = {2: "unsigned short", 4: "unsigned int", 8: "unsigned long long", 16: "ulonglong2"}


def _space_to_depth(y, y2, nc, M, s, p, O):
    """Write ``y2`` (``(NC, s0, s1, s2) + M``) from ``y`` (``(NC,) + O``) on the GPU."""
    import cupy

    word = _WORDS[y.dtype.itemsize]
    kern = _KERNELS.get(word)
    if kern is None:
        kern = _KERNELS[word] = cupy.RawKernel(
            _SPACE_TO_DEPTH.replace("WORD", word), "xconvt_space_to_depth")
    planes = nc * math.prod(s) * M[0]
    threads = min(256, -(-M[2] // 32) * 32)
    grid = (max(1, min(planes, 2**31 - 1)),)
    kern(grid, (threads,), (y, y2, np.int64(planes), *(np.int32(v) for v in (*M, *s, *p, *O))))


def _kernels():
    """CuPy elementwise kernels of the rearrangement (built on first use)."""
    k = _KERNELS
    if "gather" not in k:
        import cupy

        k["gather"] = cupy.ElementwiseKernel(
            "raw T w, int64 idx, int64 size", "T out", "out = idx < size ? w[idx] : (T)0",
            "xconvt_gather_weight")
    return k


_KERNELS = {}


_INDEX = {}
"""``(params, library, device) -> index table`` of :func:`_weight_index`."""


def _device_of(a):
    """A hashable device key of array ``a`` (CuPy: its device id; else None)."""
    dev = getattr(a, "device", None)
    return getattr(dev, "id", None)


def _weight_index(params, xp, device):
    """Flat index table ``idx`` with ``w' = take(concat(ravel(w), [0]), idx)``
    (reshaped to ``(G*Cog*S, Cig) + Q``).

    ``w2[c_all, o, r_d, r_h, r_w, q_d, q_h, q_w] = w[c_all, o, k]`` for
    ``k*d = q*s + r`` (per axis), zero elsewhere (index ``w.size``); flipped
    along ``q`` and regrouped to ``w'``'s ``(G*Cog*S, Cig) + Q`` layout.
    Built once per geometry in NumPy, kept per array library and device.
    """
    key = (params, xp.__name__, device)
    idx = _INDEX.get(key)
    if idx is not None:
        return idx
    s2 = params.stride
    Kp = rearrange_params(params).kernel
    S = math.prod(s2)
    G, cig, cog = params.groups, params.in_channels_per_group, params.out_channels_per_group
    size = math.prod(params.weight_shape)
    src = np.arange(size).reshape(params.weight_shape)
    w2 = np.full((G * cig, cog) + s2 + Kp, size, dtype=np.int64)
    sel = []
    for a in range(3):
        k = params.kernel[a]
        if s2[a] == 1:
            r_, q_ = [0] * k, list(range(k))
        else:
            kd = [kk * params.dilation[a] for kk in range(k)]
            r_, q_ = [v % s2[a] for v in kd], [v // s2[a] for v in kd]
        shape = [1, 1, 1]
        shape[a] = k
        sel.append((np.reshape(r_, shape), np.reshape(q_, shape)))
    w2[:, :, sel[0][0], sel[1][0], sel[2][0], sel[0][1], sel[1][1], sel[2][1]] = src
    w2 = np.flip(w2, axis=(-3, -2, -1)).reshape((G, cig, cog * S) + Kp)
    host = np.ascontiguousarray(w2.transpose(0, 2, 1, 3, 4, 5)).reshape(-1)
    if len(_INDEX) > 64:
        _INDEX.clear()
    idx = _INDEX[key] = host if xp is np else xp.asarray(host)
    return idx


def conv3d(params, y, w, b, inner):
    """conv3d by the transposed convolution ``inner(y2, w', b)`` of ``T'``
    (a plan of :func:`rearrange_params`'s geometry)."""
    _, y2, wp = rearrange(params, y, w)
    return inner(y2, wp, b)


def plan_conv3d(problem):
    """Planner: conv3d on the GPU direct kernels (stride 1 after space to depth)."""
    if problem.op != "conv3d":
        return f"computes conv3d, not {problem.op}"
    if problem.device.kind != "cuda":
        return "needs a CUDA device"
    if problem.dtype not in ("float16", "float32", "float64", "complex64", "complex128"):
        return f"dtype {problem.dtype} is not supported by the direct kernels"
    itemsize = 8 if problem.dtype in ("float64", "complex128") else 4
    tp = rearrange_params(problem.params)
    copied = _copied(problem.params, tp)
    moved = 2 * itemsize * math.prod(tp.input_shape) if copied else 0
    return _rewrite_plan(problem, "cuda.conv3d_direct", moved / 2.5e12,
                         itemsize * math.prod(tp.input_shape) if copied else 0)


#: The CPU rewrite's own cost: the weight rearrangement (one cached-table
#: ``take``) and its calls, seconds (2-core CPU, bench/NOTES.md "conv3d on the
#: CPU's forward planners").
_CPU_REWRITE_S = 15e-6
_CPU_TAKE_S = 1.5e-9


def plan_conv3d_cpu(problem):
    """Planner: conv3d of a stride-1 layer on the CPU's transposed-convolution
    planners (``cpu.small``, ``cpu.channel_gemm``, ...): ``y`` itself is the
    rewritten input, the weights are rearranged by one gather.  Strided layers
    are left to the conv3d planners (their space-to-depth copy costs more on
    the CPU than it saves)."""
    if problem.op != "conv3d":
        return f"computes conv3d, not {problem.op}"
    if problem.device.kind != "cpu":
        return f"runs on the CPU, not on {problem.device.kind}"
    if problem.dtype not in ("float16", "float32", "float64", "complex64", "complex128"):
        return f"dtype {problem.dtype} is not supported"
    if not _no_copy(problem.params):
        return ("only stride-1 layers with padding <= dilation*(kernel - 1) (no copy of "
                "the output gradient)")
    extra = _CPU_REWRITE_S + _CPU_TAKE_S * math.prod(problem.params.weight_shape)
    return _rewrite_plan(problem, "cpu.conv3d_forward", extra, 0)


def _rewrite_plan(problem, name, extra_s, workspace):
    """conv3d by the best direct plan of :func:`rearrange_params`'s transposed
    convolution, ``extra_s`` seconds of rearrangement added to its estimate."""
    from dataclasses import replace

    from .._select import choose

    params = problem.params
    tp = rearrange_params(params)
    try:  # the best direct plan of the rewritten transposed convolution
        inner = choose(replace(problem, op="conv_transpose3d", params=tp), "direct")
    except ValueError as e:
        return f"no direct plan for the rewritten transposed convolution: {e}"
    # a bias is a call-time operand; plans may depend on it (has_bias is part of
    # the geometry), so the biased problem gets its own inner plan on first use
    inners = {False: inner}

    def run(y, w, b=None):
        biased = b is not None
        if biased not in inners:
            inners[biased] = choose(replace(problem, op="conv_transpose3d",
                                            params=replace(tp, has_bias=True)), "direct")
        return conv3d(params, y, w, b, inners[biased])

    return FunctionPlan(name, "direct", inner.estimate + extra_s, run, workspace,
                        detail=f"stride-1 transposed convolution by {inner.name}")


def _copied(params, tp):
    return tp.in_size != params.out_size or tp.in_channels != params.out_channels


def _no_copy(params):
    return params.stride == (1, 1, 1) and all(
        p <= d * (k - 1) for p, d, k in zip(params.padding, params.dilation, params.kernel))


def rearrange_params(params):
    """``T'`` of :func:`rearrange` without touching data."""
    no_copy = _no_copy(params)
    axes = [_axis(params, a, no_copy) for a in range(3)]
    S = math.prod(a[4] for a in axes)
    return ConvParams(
        batch=params.batch, in_channels=params.out_channels * S,
        out_channels=params.in_channels, groups=params.groups,
        in_size=tuple(a[0] for a in axes), kernel=tuple(a[1] for a in axes),
        stride=(1, 1, 1), padding=tuple(a[3] for a in axes), output_padding=(0, 0, 0),
        dilation=tuple(a[2] for a in axes),
    )
