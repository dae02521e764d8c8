"""Pure upsampling on the CPU (``kernel == stride``, no padding, dilation or
output padding: U-Net's layers): one GEMM ``(D*H*W, Cig) @ (Cig,
Cog*kD*kH*kW)`` per group and chunk of batch elements or input depth, then one
reshuffle of the non-overlapping blocks that moves the ``kW`` W taps of a
block as one item.  Every output is exactly one product, so inf/NaN are
placed as PyTorch places them."""

from __future__ import annotations

import math

import numpy as np

from ..._plan import FunctionPlan
from .common import UPSAMPLE_CHUNK_BYTES, gemm_ns, reject, run, workspace_limit

__all__ = ["plan"]

#: The estimate's two parts, measured on the 2-core CPU machine (unet_k2s2,
#: 2026-12-02): its one wide GEMM ran at 0.45 of :func:`.common.gemm_ns`'s
#: single-thread price (8.3 ms, two BLAS threads), and the block reshuffle cost
#: 1.2 ns per output element (10 ms for 8.4M outputs).
GEMM_SHARE = 0.45
RESHUFFLE_NS = 1.2


# ------------------------------------------------------------- pure upsample
def upsample(params, x, w, b, out):
    """kernel == stride: one GEMM per chunk of batch and input depth, then a reshuffle.

    The GEMM is ``(voxels, Cig) @ (Cig, Cog*kD*kH*kW)``: each voxel's output
    block has its ``kW`` W taps side by side, so the reshuffle moves runs of
    ``kW`` elements (viewed as one ``kW*itemsize``-byte item) instead of
    interleaving single elements.
    """
    N, G = params.batch, params.groups
    Cig, Cog = params.in_channels_per_group, params.out_channels_per_group
    kd, kh, kw = params.kernel
    D, H, W = params.in_size
    T = kd * kh * kw
    wm = w.reshape(G, Cig, Cog * T)  # columns (o, a, b, c)
    bias = None if b is None else np.repeat(b.reshape(G, 1, Cog), T, axis=2)
    run = np.dtype((np.void, kw * out.itemsize))
    outv = out.reshape(N, G, Cog, D, kd, H, kh, W * kw).view(run)
    plane = params.out_channels * T * H * W * out.itemsize
    limit = workspace_limit(UPSAMPLE_CHUNK_BYTES)
    dc = max(1, min(D, limit // plane))
    nc = max(1, min(N, limit // (plane * D))) if dc == D else 1
    cols = np.empty(nc * G * dc * H * W * Cog * T, out.dtype)
    for n0 in range(0, N, nc):
        n1 = min(N, n0 + nc)
        nn = n1 - n0
        xn = x[n0:n1].reshape(nn, G, Cig, D * H * W)
        for d0 in range(0, D, dc):
            d1 = min(D, d0 + dc)
            xs = xn[..., d0 * H * W:d1 * H * W].astype(out.dtype, copy=False)
            c = cols[:nn * G * (d1 - d0) * H * W * Cog * T].reshape(nn, G, -1, Cog * T)
            np.matmul(xs.transpose(0, 1, 3, 2), wm, out=c)
            if bias is not None:
                c += bias
            blocks = c.view(run).reshape(nn, G, d1 - d0, H, W, Cog, kd, kh)
            np.copyto(outv[n0:n1, :, :, d0:d1], blocks.transpose(0, 1, 5, 2, 6, 3, 7, 4))



def plan(problem):
    """The upsampling plan, where ``kernel == stride`` with no padding,
    dilation or output padding."""
    p = problem.params
    why = reject(problem)
    if why:
        return why
    if not p.is_pure_upsample:
        return "needs kernel == stride and no padding, dilation or output padding"
    out = p.batch * p.out_channels * math.prod(p.out_size)
    wide = 2.0 if problem.real_dtype == "float64" else 1.0
    cplx = 4.0 if problem.is_complex else 1.0
    gemm = gemm_ns(p.flops, p.out_channels_per_group * p.taps, p.in_channels_per_group)
    ns = wide * (cplx * GEMM_SHARE * gemm + RESHUFFLE_NS * out)
    return FunctionPlan("cpu.upsample", "direct", ns * 1e-9,
                        lambda x, w, b: run(p, x, w, b, lambda *a: upsample(p, *a)),
                        workspace=min(problem.budget, UPSAMPLE_CHUNK_BYTES),
                        detail="one GEMM per chunk, then a block reshuffle")
