"""The GEMM variant: ``cols = W^T @ X`` per group and chunk with cuBLAS's
strided-batched GEMM through CuPy's bindings (true float32: the legacy SGEMM
does not use TF32 unless CuPy's handle is switched to it), reading ``x`` and
``w`` in place, then ``xconvt_col2im`` (``kernels/col2im.cu``) gathers the
kernel blocks into the output and adds the bias, with per-axis tap tables
instead of divisions.  The column buffer is chunked over batch and output
channels within the memory budget.  It computes every tap, border taps
included, so it pays where the channel contraction is wide enough for cuBLAS
to run near its float32 peak and each stride phase has many taps."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from . import runtime as rt

__all__ = ["col2im_table", "plan"]

SOURCE = rt.KERNELS / "col2im.cu"


@lru_cache(maxsize=1024)
def col2im_table(params):
    """Per axis and output index: first tap, its input index, number of taps."""
    rows = []
    for a in range(3):
        size, k, s, p, d = (params.in_size[a], params.kernel[a], params.stride[a],
                            params.padding[a], params.dilation[a])
        for o in range(params.out_size[a]):
            taps = [(kk, (o + p - kk * d) // s) for kk in range(k)
                    if (o + p - kk * d) % s == 0 and 0 <= (o + p - kk * d) // s < size]
            rows.append((taps[0][0], taps[0][1], len(taps)) if taps else (0, 0, 0))
    return np.asarray(rows, np.int32).ravel()


# Column-buffer chunk (within the memory budget).  With cuBLAS called
# directly, larger chunks won: gan_k4s2 0.593 ms in 8 MiB chunks, 0.500 in
# 16-64 MiB, 0.484 in one 128 MiB chunk (H100, 2026-11-26).  Through
# cupy.matmul, whose host time per call left gaps, 16 MiB chunks had been best.
_GEMM_CHUNK = 128 << 20


def _gemm_chunks(params, itemsize, budget):
    """``(batch chunk, output-channel chunk)`` of the column buffer under
    ``budget`` bytes: whole samples while they fit, else output channels of
    one sample (chunking the output channels of the whole batch first
    measured slower on gan_k4s2)."""
    N, G = params.batch, params.groups
    cog, K = params.out_channels_per_group, params.taps
    V = math.prod(params.in_size)
    budget = max(1, min(budget, _GEMM_CHUNK))
    per_o = G * K * V * itemsize  # one output channel of one sample
    per_sample = cog * per_o
    nn = max(1, min(N, budget // per_sample))
    return nn, (cog if per_sample <= budget else max(1, budget // per_o))


# Fields of the kernel's Col2imArgs struct, in order (all int32).
_COL2IM_FIELDS = ("has_bias", "G", "Cog", "ID", "IH", "IW", "OD", "OH", "OW",
                  "KD", "KH", "KW", "ksd", "ksh", "ksw", "dgd", "dgh", "dgw")

_BLAS = {"float32": ("sgemmStridedBatched", np.float32),
         "float64": ("dgemmStridedBatched", np.float64)}


class _Launcher:
    """The GEMM variant's launch plan for one geometry, dtype and device.

    Per chunk of batch elements and output channels and per group, one
    strided-batched cuBLAS call (batched over the chunk's samples)::

        cols[n, g, (o, tap), v] = sum_c w[g*Cig + c, o0 + o, tap] * x[n0 + n, g*Cig + c, v]

    reads ``x`` and ``w`` where they lie (column-major, ``cols^T = x^T w``:
    no transposed copies), then ``xconvt_col2im`` gathers the taps.  cuBLAS
    is called through CuPy's bindings with precomputed arguments, a few
    microseconds a call: ``cupy.matmul`` took 20-40 us of host time per chunk,
    enough to leave the GPU idle between chunks.  float16 is computed in
    float32 (``cols`` is float32).
    """

    def __init__(self, params, dtype_name, budget):
        cupy = rt.cupy()
        from cupy_backends.cuda.libs import cublas

        self.cublas = cublas
        G, cig, cog = params.groups, params.in_channels_per_group, params.out_channels_per_group
        K, V = params.taps, math.prod(params.in_size)
        gemm_dtype = "float64" if dtype_name == "float64" else "float32"
        name, self.col_dtype = _BLAS[gemm_dtype]
        self.gemm = getattr(cublas, name)
        self.one = np.ones(1, self.col_dtype)
        self.zero = np.zeros(1, self.col_dtype)
        csz = np.dtype(self.col_dtype).itemsize
        nn, no = _gemm_chunks(params, csz, budget)
        self.cols_size = nn * G * no * K * V
        index_t = rt.index_type(math.prod(params.input_shape),
                              math.prod(params.batched_output_shape), self.cols_size)
        self.kern = rt.kernel(SOURCE, f"xconvt_col2im<{rt.CTYPES[dtype_name]}, {rt.CTYPES[gemm_dtype]}, "
                            f"{index_t}>")
        self.tab = cupy.asarray(col2im_table(params))
        gs = [math.gcd(s, d) for s, d in zip(params.stride, params.dilation)]
        values = dict(
            rt.layer_fields(params),
            **dict(zip(("ksd", "ksh", "ksw"), (s // g for s, g in zip(params.stride, gs)))),
            **dict(zip(("dgd", "dgh", "dgw"), (d // g for d, g in zip(params.dilation, gs)))))
        self.args = [rt.struct(_COL2IM_FIELDS, {**values, "has_bias": hb}) for hb in (0, 1)]
        OD, OH, OW = params.out_size
        i32 = np.int32
        cin = params.in_channels
        # Per chunk: the GEMMs' (m, n, k) and element offsets/strides, then the
        # col2im launch.
        self.steps = []
        for n0 in range(0, params.batch, nn):
            nc = min(nn, params.batch - n0)
            for o0 in range(0, cog, no):
                oc = min(no, cog - o0)
                gemms = [(V, oc * K, cig,
                          (n0 * cin + g * cig) * V, V, cin * V,            # x
                          g * cig * cog * K + o0 * K, cog * K,              # w
                          g * oc * K * V, V, G * oc * K * V, nc)            # cols
                         for g in range(G)]
                nz = nc * G * oc
                launch = ((-(-(OH * OW) // 128), min(OD, 65535), min(nz, 65535)),
                          (i32(nz), i32(oc), i32(n0), i32(o0)))
                self.steps.append((gemms, launch))

    def __call__(self, x, w, b, out):
        cupy, cublas = rt.cupy(), self.cublas
        if x.dtype != self.col_dtype:  # float16: the GEMM in float32
            x, w = x.astype(self.col_dtype), w.astype(self.col_dtype)
        cols = cupy.empty(self.cols_size, self.col_dtype)
        handle = cupy.cuda.device.get_cublas_handle()
        cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
        isz = cols.itemsize
        xp, wp, cp_ = x.data.ptr, w.data.ptr, cols.data.ptr
        one, zero = self.one.ctypes.data, self.zero.ctypes.data
        args = self.args[b is not None]
        bias = out if b is None else b
        for gemms, (grid, tail) in self.steps:
            for m, n, k, xo, lda, sa, wo, ldb, co, ldc, sc, batch in gemms:
                # column-major: cols^T (m x n) = x^T (m x k) @ (w^T)^T
                self.gemm(handle, cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T, m, n, k, one,
                          xp + xo * isz, lda, sa, wp + wo * isz, ldb, 0, zero,
                          cp_ + co * isz, ldc, sc, batch)
            self.kern(grid, (128,), (cols, bias, out, self.tab, args, *tail))


def preferred(params):
    """Where the GEMM variant measured faster than the fused kernel: strided
    layers (stride > 1 on every axis, at least 8 taps per stride phase) with at
    least 128 input and 64 output channels per group (gan_k4s2: 0.49 ms
    against 0.57 ms fused on an H100, 2026-11-26).  U-Net upsampling lost
    (unet_k2s2 0.51 against 0.45 ms fused; vnet_k3s2 0.50 against 0.40)."""
    taps_per_phase = params.taps / math.prod(params.stride)
    return (min(params.stride) > 1 and taps_per_phase >= 8
            and params.in_channels_per_group >= 128
            and params.out_channels_per_group >= 64)


#: Estimate relative to the fused kernel's model (:func:`.fused.model_estimate`),
#: from the measurements in :func:`preferred`'s docstring.
RELATIVE = {True: 0.88, False: 1.15}


@rt.planner
def plan(problem):
    """cuBLAS GEMM + col2im (float16 computes in float32)."""
    from .fused import model_estimate

    p, dtype, budget = problem.params, problem.dtype, problem.budget
    gemm_dtype = "float64" if dtype == "float64" else "float32"
    nn, no = _gemm_chunks(p, np.dtype(gemm_dtype).itemsize, budget)
    cols = nn * p.groups * no * p.taps * math.prod(p.in_size) * np.dtype(gemm_dtype).itemsize
    est = RELATIVE[preferred(p)] * model_estimate(problem)
    chunks = -(-p.batch // nn) * -(-p.out_channels_per_group // no)
    return rt.DirectPlan(problem, "cuda.gemm", est, lambda: _Launcher(p, dtype, budget),
                         workspace=cols, detail=f"{chunks} chunk(s)")
