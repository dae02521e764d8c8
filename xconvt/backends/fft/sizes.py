"""FFT sizes and the per-axis phase terms every FFT plan is built from (see
:mod:`xconvt.backends.fft`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AxisTerm", "active_phases", "axis_term", "cuda_fast_len", "fast_len_fn",
           "single_tile_len", "smooth7_len"]


# --------------------------------------------------------------------- sizes
def smooth7_len(target, real=False):
    """Smallest ``n >= target`` whose prime factors are 2, 3, 5, 7 (cuFFT's
    fast radices); the base of :func:`cuda_fast_len`."""
    best = 2 * max(1, target)
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                n = p3
                while n < target:
                    n *= 2
                best = min(best, n)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


def cuda_fast_len(target, real=False):
    """cuFFT sizes: 7-smooth, and a multiple of 4 beyond 16 (radix-3/5-only
    sizes such as 75 run about 1.5x slower per point than 80 on an H100)."""
    n = smooth7_len(target)
    while target > 16 and n % 4:
        n = smooth7_len(n + 1)
    return n


def fast_len_fn(kind):
    if kind == "cupy":
        return cuda_fast_len
    from scipy.fft import next_fast_len

    return next_fast_len


# ---------------------------------------------------------------- phase data
@dataclass(frozen=True)
class AxisTerm:
    """One axis of one active phase, in full-convolution coordinates."""

    first: int    # first output index
    stride: int   # output step
    count: int    # outputs in the phase
    n0: int       # full-convolution row of output j = 0
    length: int   # L, extent of the dilated sub-kernel
    step: int     # spacing of the taps inside the sub-kernel
    k_slice: slice  # kernel indices, ascending


def axis_term(ph, stride):
    ks = ph.taps[::-1]
    kstep = ks[1] - ks[0] if len(ks) > 1 else 1
    length = (len(ks) - 1) * ph.step + 1
    return AxisTerm(
        first=ph.first,
        stride=stride,
        count=ph.count,
        n0=ph.base + length - 1,
        length=length,
        step=ph.step,
        k_slice=slice(ks[0], ks[-1] + 1, kstep),
    )


def active_phases(params):
    """Phases with taps on every axis, as triples of :class:`AxisTerm`.

    The others (an axis where no tap reaches the phase) get only the bias.
    """
    return [
        tuple(axis_term(ph, params.stride[a]) for a, ph in enumerate(triple))
        for triple in params.phases()
        if all(ph.taps for ph in triple)
    ]




def single_tile_len(in_size, terms, fast_len, real):
    """Smallest fast ``F`` that keeps every phase's cropped rows alias-free."""
    need = 1
    for t in terms:
        need = max(need, in_size, t.length)
        a = max(0, t.n0)
        b = min(in_size + t.length - 2, t.n0 + t.count - 1)
        if a <= b:
            need = max(need, b + 1, in_size + t.length - 1 - a)
    return fast_len(need, real)


