"""An independent float64 / complex128 reference for ``conv_transpose3d``.

Written from the definition, sharing no code with :mod:`xconvt` (which this
module must never import)::

    out[n, g*Cog + o, i*s - p + k*d] += x[n, g*Cig + c, i] * w[g*Cig + c, o, k]

per spatial axis, summed over the input channels ``c`` of group ``g``, input
positions ``i`` and kernel taps ``k``; the result is cropped to ``[0, out)``
with ``out = (in - 1)*s - 2*p + d*(k - 1) + output_padding + 1`` and the bias
is added.  The sum is computed by scatter-adds into an uncropped buffer, one
kernel tap at a time, vectorized over batch and channels.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["conv3d_ref", "conv_transpose3d_ref", "conv_transpose3d_weight_ref", "out_size_ref",
           "triple"]


def triple(v):
    """An int or a length-3 sequence -> a 3-tuple of Python ints."""
    if isinstance(v, (tuple, list)):
        assert len(v) == 3, v
        return tuple(int(a) for a in v)
    return (int(v),) * 3


def out_size_ref(in_size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    """Spatial output size from PyTorch's documented formula."""
    return tuple(
        (i - 1) * s - 2 * p + d * (k - 1) + op + 1
        for i, k, s, p, op, d in zip(
            in_size, kernel, triple(stride), triple(padding),
            triple(output_padding), triple(dilation),
        )
    )


def conv_transpose3d_ref(x, w, b=None, stride=1, padding=0, output_padding=0,
                         groups=1, dilation=1):
    """Transposed 3-D convolution in float64 (complex128 if any operand is complex).

    ``x`` is ``(N, Cin, D, H, W)`` or unbatched ``(Cin, D, H, W)``; ``w`` is
    ``(Cin, Cout/groups, kD, kH, kW)``; ``b`` is ``(Cout,)`` or None.  Inputs
    may be any array-like on the host (views, any strides, any float dtype).
    """
    x = np.asarray(x)
    w = np.asarray(w)
    b = None if b is None else np.asarray(b)
    is_complex = any(
        np.iscomplexobj(a) for a in (x, w) + (() if b is None else (b,))
    )
    ct = np.complex128 if is_complex else np.float64
    unbatched = x.ndim == 4
    if unbatched:
        x = x[None]
    assert x.ndim == 5 and w.ndim == 5, (x.shape, w.shape)
    x = x.astype(ct)
    w = w.astype(ct)

    s, p, op, d = triple(stride), triple(padding), triple(output_padding), triple(dilation)
    n, cin = x.shape[:2]
    in_size = x.shape[2:]
    cin_w, cog = w.shape[:2]
    kernel = w.shape[2:]
    g = int(groups)
    assert cin == cin_w and cin % g == 0, (x.shape, w.shape, groups)
    cig = cin // g
    out = out_size_ref(in_size, kernel, s, p, op, d)
    assert min(out) >= 1, out
    # Uncropped buffer index j = i*s + k*d corresponds to output o = j - p.
    # The crop [p, p + out) may end past the last written index when
    # output_padding > padding, so size the buffer to cover it.
    full = tuple((i - 1) * ss + dd * (k - 1) + 1
                 for i, k, ss, dd in zip(in_size, kernel, s, d))
    buf_size = tuple(max(f, pp + o) for f, pp, o in zip(full, p, out))

    xg = x.reshape((n, g, cig) + tuple(in_size))
    wg = w.reshape((g, cig, cog) + tuple(kernel))
    buf = np.zeros((n, g, cog) + buf_size, dtype=ct)
    for kd, kh, kw in itertools.product(*(range(k) for k in kernel)):
        # (n, g, c, D, H, W) x (g, c, o) -> (n, g, o, D, H, W)
        contrib = np.einsum("ngcdhw,gco->ngodhw", xg, wg[..., kd, kh, kw])
        idx = tuple(
            slice(k * dd, k * dd + (i - 1) * ss + 1, ss)
            for k, dd, ss, i in zip((kd, kh, kw), d, s, in_size)
        )
        buf[(Ellipsis,) + idx] += contrib
    crop = tuple(slice(pp, pp + o) for pp, o in zip(p, out))
    res = buf[(Ellipsis,) + crop].reshape((n, g * cog) + out)
    if b is not None:
        res = res + b.astype(ct).reshape((1, -1, 1, 1, 1))
    res = np.ascontiguousarray(res)
    return res[0] if unbatched else res


def conv3d_ref(y, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution in float64 (complex128) from the definition.

    ``out[n, g*Cog + o, i] = sum_{c, k} w[g*Cog + o, c, k] * ypad[n, g*Cig + c, i*s + k*d]``
    with ``ypad`` zero-padded by ``padding`` per side, or for ``"same"`` by
    ``d*(k - 1) // 2`` on the left and the rest on the right; ``"valid"`` is 0.
    ``y`` is ``(N, C_in, D, H, W)`` or unbatched; ``w`` is ``(C_out, C_in/g, k...)``.
    """
    y, w = np.asarray(y), np.asarray(w)
    is_complex = np.iscomplexobj(y) or np.iscomplexobj(w) or (
        b is not None and np.iscomplexobj(b))
    ct = np.complex128 if is_complex else np.float64
    unbatched = y.ndim == 4
    if unbatched:
        y = y[None]
    s, d = triple(stride), triple(dilation)
    kernel = w.shape[2:]
    if isinstance(padding, str):
        total = [dd * (k - 1) for dd, k in zip(d, kernel)] if padding == "same" else [0] * 3
        lo = [t // 2 for t in total]
        hi = [t - a for t, a in zip(total, lo)]
    else:
        lo = hi = list(triple(padding))
    ypad = np.pad(y.astype(ct), [(0, 0), (0, 0)] + list(zip(lo, hi)))
    n, cin = y.shape[:2]
    cout, cig = w.shape[:2]
    g = int(groups)
    cog = cout // g
    out = tuple((ypad.shape[2 + a] - d[a] * (kernel[a] - 1) - 1) // s[a] + 1 for a in range(3))
    yg = ypad.reshape((n, g, cig) + ypad.shape[2:])
    wg = w.astype(ct).reshape((g, cog, cig) + tuple(kernel))
    res = np.zeros((n, g, cog) + out, dtype=ct)
    for kd, kh, kw in itertools.product(*(range(k) for k in kernel)):
        idx = tuple(slice(k * dd, k * dd + (o - 1) * ss + 1, ss)
                    for k, dd, ss, o in zip((kd, kh, kw), d, s, out))
        res += np.einsum("ngcdhw,goc->ngodhw", yg[(Ellipsis,) + idx], wg[..., kd, kh, kw])
    res = res.reshape((n, cout) + out)
    if b is not None:
        res = res + np.asarray(b).astype(ct).reshape((1, -1, 1, 1, 1))
    return res[0] if unbatched else res


def conv_transpose3d_weight_ref(x, gy, kernel, stride=1, padding=0, groups=1, dilation=1):
    """Weight gradient of ``conv_transpose3d`` in float64 (complex128).

    ``dw[g*Cig + c, o, k] = sum_{n, i} x[n, g*Cig + c, i] * gy[n, g*Cog + o, i*s - p + k*d]``
    with ``gy`` zero outside its extent.  ``x`` is ``(N, C_in, ...)`` or unbatched
    and ``gy`` the output gradient of the matching shape.
    """
    x, gy = np.asarray(x), np.asarray(gy)
    ct = np.complex128 if (np.iscomplexobj(x) or np.iscomplexobj(gy)) else np.float64
    if x.ndim == 4:
        x, gy = x[None], gy[None]
    s, p, d = triple(stride), triple(padding), triple(dilation)
    n, cin = x.shape[:2]
    cout = gy.shape[1]
    g = int(groups)
    cig, cog = cin // g, cout // g
    in_size, out = x.shape[2:], gy.shape[2:]
    # gpad[j] = gy[j - p], covering j = i*s + k*d for every i, k
    full = [(i - 1) * ss + dd * (k - 1) + 1 for i, k, ss, dd in zip(in_size, kernel, s, d)]
    gpad = np.zeros((n, cout) + tuple(max(f, pp + o) for f, pp, o in zip(full, p, out)), ct)
    gpad[(Ellipsis,) + tuple(slice(pp, pp + o) for pp, o in zip(p, out))] = gy
    xg = x.astype(ct).reshape((n, g, cig) + tuple(in_size))
    gg = gpad.reshape((n, g, cog) + gpad.shape[2:])
    dw = np.zeros((g, cig, cog) + tuple(kernel), ct)
    for kd, kh, kw in itertools.product(*(range(k) for k in kernel)):
        idx = tuple(slice(k * dd, k * dd + (i - 1) * ss + 1, ss)
                    for k, dd, ss, i in zip((kd, kh, kw), d, s, in_size))
        dw[..., kd, kh, kw] = np.einsum("ngcdhw,ngodhw->gco", xg, gg[(Ellipsis,) + idx])
    return dw.reshape((cin, cog) + tuple(kernel))
