"""The exact path for non-finite weights on the CPU.

The gather formulations multiply zero padding by every weight, and ``0 *
inf`` is NaN where PyTorch, which only forms products of existing inputs, has
an inf or a finite value.  This path never touches padding: per tap, one
channel GEMM added where its outputs land.  The formulation plans switch to it
at run time when a weight is not finite (a property of the data, not of the
problem)."""

from __future__ import annotations

import numpy as np

from .common import workspace_limit

__all__ = ["scatter"]


# ------------------------------------------------------- non-finite weights
def scatter(params, x, w, b, out):
    """Exact for inf/NaN weights: per tap, a channel GEMM added where its outputs land.

    The gather formulations multiply zero padding by every weight, and
    ``0 * inf`` is NaN where PyTorch, which only forms products of existing
    inputs, has an inf or a finite value; this path never touches padding.
    """
    N, G = params.batch, params.groups
    Cig, Cog = params.in_channels_per_group, params.out_channels_per_group
    D, H, W = params.in_size
    out6 = out.reshape(N, G, Cog, *params.out_size)
    out6[...] = 0 if b is None else b.reshape(1, G, Cog, 1, 1, 1)
    dc = max(1, min(D, workspace_limit() // (params.out_channels * H * W * out.itemsize)))
    wt = w.reshape(G, Cig, Cog, -1).transpose(3, 0, 2, 1)  # (taps, G, Cog, Cig)

    def reach(axis, k, lo, hi):
        """Inputs ``[i0, i1)`` within ``[lo, hi)`` that tap ``k`` maps into the output."""
        s, p, d = params.stride[axis], params.padding[axis], params.dilation[axis]
        i0 = max(lo, -((k * d - p) // s))
        i1 = min(hi, (params.out_size[axis] - 1 + p - k * d) // s + 1)
        return slice(i0, i1), slice(i0 * s - p + k * d, (i1 - 1) * s - p + k * d + 1, s)

    for n in range(N):
        xn = x[n].reshape(G, Cig, D * H * W)
        for d0 in range(0, D, dc):
            d1 = min(D, d0 + dc)
            xs = xn[:, :, d0 * H * W:d1 * H * W].astype(out.dtype, copy=False)
            for t, (kd, kh, kw) in enumerate(np.ndindex(*params.kernel)):
                (id_, od), (ih, oh), (iw, ow) = (
                    reach(0, kd, d0, d1), reach(1, kh, 0, H), reach(2, kw, 0, W))
                if min(id_.stop - id_.start, ih.stop - ih.start, iw.stop - iw.start) <= 0:
                    continue
                cols = np.matmul(wt[t], xs).reshape(G, Cog, d1 - d0, H, W)
                out6[n, :, :, od, oh, ow] += cols[:, :, id_.start - d0:id_.stop - d0, ih, iw]
