"""PyTorch's semantics for inf and NaN on the FFT path (see
:func:`non_finite`), which a transform would smear over the volume."""

from __future__ import annotations

from array_api_compat import array_namespace

from .chunked import Call

__all__ = ["non_finite"]


def non_finite(params, x, w, b):
    """PyTorch's semantics for inf and NaN, which a transform would smear.

    PyTorch only multiplies existing inputs by taps, so an output becomes
    non-finite only if a non-finite product ``x[i] * w[k]`` reaches it.  The
    finite products come from the FFT of the inputs with their non-finite
    entries zeroed; the non-finite ones are counted per output by FFT
    transposed convolutions of indicator arrays (in float64, exact after
    rounding): NaN where some product is NaN (NaN times anything, inf times
    0) or where +inf and -inf products meet, else +-inf.  Complex results
    reached by any non-finite product become NaN + NaN j.  The bias is added
    last, so an infinite bias meets infinite products as in PyTorch.
    """
    xp = array_namespace(x)
    work = xp.float32 if x.dtype == xp.float16 else x.dtype
    zero = xp.zeros((), dtype=x.dtype)
    xf = xp.where(xp.isfinite(x), x, zero)
    wf = xp.where(xp.isfinite(w), w, zero)
    out = Call(params, xf, wf, None).run()
    xf = wf = None

    def ind(mask):
        return xp.astype(mask, xp.float64)

    def conv(a, k):
        return Call(params, a, k, None).run() > 0.5

    if xp.isdtype(x.dtype, "complex floating"):
        x_bad, w_bad = ind(~xp.isfinite(x)), ind(~xp.isfinite(w))
        reach = conv(x_bad, xp.ones_like(w_bad)) | conv(xp.ones_like(x_bad), w_bad)
        out[reach] = complex("nan+nanj")
    else:
        xs, ws = [], []
        for a, acc in ((x, xs), (w, ws)):
            finite = xp.isfinite(a)
            acc.extend(ind(m) for m in (
                a == xp.inf, a == -xp.inf, xp.isnan(a),
                finite & (a > 0), finite & (a < 0), a == 0))
        (xpi, xni, xnan, xpos, xneg, xzero), (wpi, wni, wnan, wpos, wneg, wzero) = xs, ws
        pos = conv(xpi, wpos + wpi) | conv(xni, wneg + wni) | conv(xpos, wpi) | conv(xneg, wni)
        neg = conv(xpi, wneg + wni) | conv(xni, wpos + wpi) | conv(xpos, wni) | conv(xneg, wpi)
        nan = (conv(xnan, xp.ones_like(wnan)) | conv(xp.ones_like(xnan), wnan)
               | conv(xpi + xni, wzero) | conv(xzero, wpi + wni))
        nan |= pos & neg
        out[nan] = xp.nan
        out[pos & ~nan] = xp.inf
        out[neg & ~nan] = -xp.inf
    if b is not None:
        g, cog = params.groups, params.out_channels_per_group
        out6 = xp.reshape(out, (params.batch, g, cog) + params.out_size)
        out6 += xp.reshape(xp.astype(b, work), (1, g, cog, 1, 1, 1))
    return out

