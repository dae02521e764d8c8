"""An independent float64 reference for ``conv_transpose3d``, written from the
definition and sharing no code with xconvt (the quick suite's oracle, and the
fallback oracle where PyTorch is absent)::

    out[n, g*Cog + o, i*s - p + k*d] += x[n, g*Cig + c, i] * w[g*Cig + c, o, k]

One channel contraction per kernel tap, scatter-added into the uncropped
("full") output with a strided slice, then cropped by ``padding`` and extended
by ``output_padding``.  Cost: one small GEMM per tap; fine for the quick suite.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["conv_transpose3d_ref"]


def _t3(v):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * 3


def conv_transpose3d_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                         dilation=1):
    """Float64 result of PyTorch's ``conv_transpose3d`` for 5-D host arrays."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    s, p, op, d = map(_t3, (stride, padding, output_padding, dilation))
    n, cin = x.shape[:2]
    size = x.shape[2:]
    cog = w.shape[1]
    kern = w.shape[2:]
    cig = cin // groups
    full = [(i - 1) * st + dl * (k - 1) + 1 for i, k, st, dl in zip(size, kern, s, d)]
    out = [f - 2 * pa + o for f, pa, o in zip(full, p, op)]
    # Room for the output_padding region past the full extent.
    buf = np.zeros((n, groups, cog, *[max(f, pa + o) for f, pa, o in zip(full, p, out)]))
    xg = x.reshape(n, groups, cig, *size)
    wg = w.reshape(groups, cig, cog, *kern)
    for tap in itertools.product(*(range(k) for k in kern)):
        contrib = np.einsum("ngcdhw,gco->ngodhw", xg, wg[(..., *tap)])
        sl = tuple(
            slice(t * dl, t * dl + (i - 1) * st + 1, st)
            for t, dl, i, st in zip(tap, d, size, s)
        )
        buf[(slice(None),) * 3 + sl] += contrib
    crop = tuple(slice(pa, pa + o) for pa, o in zip(p, out))
    res = buf[(slice(None),) * 3 + crop].reshape(n, groups * cog, *out)
    if b is not None:
        res = res + np.asarray(b, dtype=np.float64).reshape(1, -1, 1, 1, 1)
    return res
