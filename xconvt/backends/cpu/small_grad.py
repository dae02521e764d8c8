"""Small conv3d and weight gradients on the CPU: one gather and one GEMM.

Both adjoint operations of a transposed convolution ``T`` read the same
im2col of ``y`` (conv3d's input, the output gradient)::

    cols[g, (o, k), (n, i)] = y[n, g*Cog + o, i*s + k*d - p]      (0 outside y)
    conv3d       x[n, g*Cig + c, i] = sum_{(o,k)} w[g*Cig + c, o, k] cols[g, (o,k), (n,i)]  (+ b)
    weight_grad  dw[g*Cig + c, o, k] = sum_{(n,i)} x[n, g*Cig + c, i] cols[g, (o,k), (n,i)]

so each is one ``take`` through an index table built once per geometry (a
zero appended to ``y`` stands for the positions outside it) and one GEMM
batched over the groups.  The per-depth-tap GEMM path of
:mod:`xconvt.backends.adjoint` spends small layers' time in Python (0.2-0.5 ms
where PyTorch takes 0.01-0.1 ms on a 2-core machine); this path is for them,
within :data:`MAX_TABLE` gathered elements and :data:`MAX_GEMM_FLOPS`.

Non-finite values: the zero slots multiply weights (conv3d) or inputs (the
weight gradient), so an inf there could make a NaN that the exact path does
not; a result that is not all finite is computed again by the GEMM path.
float16 is computed in float32 and rounded once.
"""

from __future__ import annotations

import math

import numpy as np

from ..._plan import FunctionPlan

__all__ = ["MAX_GEMM_FLOPS", "MAX_TABLE", "cols_table", "plan_conv3d", "plan_weight_grad"]

MAX_TABLE = 1 << 20
"""Most elements of the gathered im2col (its index table is cached)."""

MAX_GEMM_FLOPS = 16e6
"""Largest GEMM this path takes."""

_SUPPORTED = ("float16", "float32", "float64", "complex64", "complex128")

# Cost model, seconds per unit, fitted to float32 timings on the 2-core CPU
# (bench/NOTES.md, "Small gradients on the CPU"): the call, gathered elements,
# GEMM FLOPs.
_CALL_S = 12e-6
_TAKE_S = 1.1e-9
_GEMM_S = 0.01e-9

_TABLES = {}
_TABLES_BYTES = 64 << 20
"""Most bytes of index tables kept (all are dropped when a new one would pass it)."""


def cols_table(params):
    """Flat index of ``y`` (``y.size`` for the appended zero) of each element
    of ``cols``, shape ``(G, Cog*K3, N*I3)`` (cached per geometry)."""
    hit = _TABLES.get(params)
    if hit is not None:
        return hit
    N, G = params.batch, params.groups
    cog = params.out_channels_per_group
    isz, osz, K = params.in_size, params.out_size, params.kernel
    size = N * params.out_channels * math.prod(osz)
    pos, ok = [], []
    for a in range(3):  # [k, i] -> y index along axis a
        z = (np.arange(isz[a])[None, :] * params.stride[a]
             + np.arange(K[a])[:, None] * params.dilation[a] - params.padding[a])
        pos.append(z)
        ok.append((z >= 0) & (z < osz[a]))
    # spatial part, axes (kd, kh, kw, id, ih, iw)
    e = [(slice(None), None, None, slice(None), None, None),
         (None, slice(None), None, None, slice(None), None),
         (None, None, slice(None), None, None, slice(None))]
    sp = (pos[0][e[0]] * osz[1] + pos[1][e[1]]) * osz[2] + pos[2][e[2]]
    inside = ok[0][e[0]] & ok[1][e[1]] & ok[2][e[2]]
    # full table, axes (g, o, kd, kh, kw, n, id, ih, iw)
    chan = (np.arange(N)[None, None, :] * params.out_channels
            + np.arange(G)[:, None, None] * cog + np.arange(cog)[None, :, None])  # [g, o, n]
    idx = (chan[:, :, None, None, None, :, None, None, None] * math.prod(osz)
           + sp[None, None, :, :, :, None, :, :, :])
    idx = np.where(inside[None, None, :, :, :, None, :, :, :], idx, size)
    idx = idx.reshape(G, cog * math.prod(K), N * math.prod(isz))
    idx = np.ascontiguousarray(idx, dtype=np.intp)  # intp: no conversion per gather
    if sum(t.nbytes for t in _TABLES.values()) + idx.nbytes > _TABLES_BYTES:
        _TABLES.clear()
    _TABLES[params] = idx
    return idx


def _cols(params, y, work):
    flat = np.concatenate([np.ascontiguousarray(y, dtype=work).reshape(-1),
                           np.zeros(1, work)])
    return flat[cols_table(params)]


def conv3d(params, y, w, b=None):
    """conv3d of ``params`` (the transposed convolution it is the adjoint of)."""
    out_dtype = y.dtype
    work = np.float32 if out_dtype == np.float16 else out_dtype
    G, cig = params.groups, params.in_channels_per_group
    N, isz = params.batch, params.in_size
    cols = _cols(params, y, work)
    wm = np.asarray(w, dtype=work).reshape(G, cig, -1)
    out = np.matmul(wm, cols)                                    # [G, cig, N*I3]
    x = out.reshape(G, cig, N, math.prod(isz)).transpose(2, 0, 1, 3)
    x = np.ascontiguousarray(x).reshape((N, params.in_channels) + isz)
    if b is not None:
        x += np.asarray(b, dtype=work).reshape(-1, 1, 1, 1)
    return x.astype(out_dtype, copy=False)


def weight_grad(params, x, gy):
    """The weight gradient of ``params``."""
    out_dtype = gy.dtype
    work = np.float32 if out_dtype == np.float16 else out_dtype
    G, cig = params.groups, params.in_channels_per_group
    N, I3 = params.batch, math.prod(params.in_size)
    cols = _cols(params, gy, work)
    xm = np.asarray(x, dtype=work).reshape(N, G, cig, I3).transpose(1, 2, 0, 3)
    xm = xm.reshape(G, cig, N * I3)
    dw = np.matmul(xm, cols.transpose(0, 2, 1))                  # [G, cig, cog*K3]
    return np.ascontiguousarray(dw.reshape(params.weight_shape), dtype=out_dtype)


def _plan(problem, op):
    if problem.op != op:
        return f"computes {op}, not {problem.op}"
    if problem.device.kind != "cpu":
        return f"runs on the CPU, not on {problem.device.kind}"
    if problem.dtype not in _SUPPORTED:
        return f"does not support dtype {problem.dtype}"
    p = problem.params
    if p.batch == 0:
        return "needs a non-empty batch"
    table = p.out_channels * math.prod(p.kernel) * p.batch * math.prod(p.in_size)
    if table > MAX_TABLE:
        return f"its im2col of {table} elements exceeds {MAX_TABLE}"
    flops = 2 * p.in_channels_per_group * table
    if flops > MAX_GEMM_FLOPS:
        return f"its GEMM of {flops:.3g} FLOPs exceeds {MAX_GEMM_FLOPS:.3g}"
    itemsize = np.dtype("float32" if problem.dtype == "float16" else problem.dtype).itemsize
    wide = itemsize / 4 * (2 if problem.dtype.startswith("complex") else 1)
    est = _CALL_S + wide * (table * _TAKE_S + flops * _GEMM_S)
    from .. import adjoint

    exact = (adjoint.plan_conv3d if op == "conv3d" else adjoint.plan_weight_grad)(problem)
    name = "cpu.small_" + op
    if op == "conv3d":
        def run(y, w, b=None):
            x = conv3d(p, y, w, b)
            return x if _finite(x) else exact(y, w, b)
    else:
        def run(x, gy):
            dw = weight_grad(p, x, gy)
            return dw if _finite(dw) else exact(x, gy)
    return FunctionPlan(name, "direct", est, run, 2 * table * itemsize,
                        detail="one gather of the output gradient and one GEMM")


def _finite(a):
    return bool(np.isfinite(a).all())


def plan_conv3d(problem):
    """Planner: conv3d of a small layer by one gather and one GEMM."""
    return _plan(problem, "conv3d")


def plan_weight_grad(problem):
    """Planner: the weight gradient of a small layer by one gather and one GEMM."""
    return _plan(problem, "weight_grad")
