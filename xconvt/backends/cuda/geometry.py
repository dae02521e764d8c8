"""Stride phases as the direct CUDA kernels iterate over them: every phase's
taps read consecutive input rows (dilation turned into sub-phases, and where
the dilation does not divide the stride, into a remapped input).  Shared by
the fused kernel (:mod:`.fused`), the remap (:mod:`.remap`) and the
tensor-core kernels."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import NamedTuple

from ..._params import AxisPhase

__all__ = ["Geometry", "kernel_geometry", "unit_step_phases"]


@lru_cache(maxsize=1024)
def unit_step_phases(params):
    """Stride phases whose taps read consecutive input positions.

    Returns ``(phases, out_stride, in_stride)``: ``phases`` a list of
    ``(AxisPhase, AxisPhase, AxisPhase)`` with ``step == 1``, and per axis the
    output stride between a phase's outputs and the input stride between its
    taps.  Where the dilation makes a phase's taps step by ``k > 1`` input
    positions (``k = d / gcd(s, d)``), each phase on that axis splits into
    ``k`` sub-phases by ``j mod k``: outputs ``first + s*r + (s*k)*j'`` read
    inputs ``base + r + k*(j' + u)``.  The fused kernel then stages dense
    slabs (no dilation holes) and reuses a register row across every tap.
    """
    axes = []
    for a in range(3):
        k = params.axis_phases[a][0].step
        s = params.stride[a]
        subs = [AxisPhase(ph.first + s * r, max(0, -(-(ph.count - r) // k)), ph.base + r,
                          1, ph.taps)
                for ph in params.axis_phases[a] for r in range(k)]
        axes.append([ph for ph in subs if ph.count > 0])
    phases = [(pd, ph, pw) for pd in axes[0] for ph in axes[1] for pw in axes[2]]
    steps = tuple(params.axis_phases[a][0].step for a in range(3))
    out_stride = tuple(s * k for s, k in zip(params.stride, steps))
    return phases, out_stride, steps


class Geometry(NamedTuple):
    """What the fused kernel iterates over (see :func:`kernel_geometry`)."""

    phases: list        # (AxisPhase, AxisPhase, AxisPhase), step 1
    out_stride: tuple   # per axis, between a phase's outputs
    in_stride: tuple    # per axis, between a phase's taps in the kernel's input
    in_size: tuple      # the kernel's input extent
    remap: tuple        # per axis, source index of each kernel input row (-1: zero), or None


@lru_cache(maxsize=4096)
def kernel_geometry(params):
    """:func:`unit_step_phases`, with dilation turned into contiguous reads.

    Where the dilation does not divide the stride (``k = d / gcd(s, d) > 1``
    on some axis), a sub-phase reads every ``k``-th input.  The input is
    then first rearranged (``xconvt_remap``) into ``k`` blocks per axis, block
    ``q`` holding rows ``q, q + k, q + 2k, ...`` between zero margins, so
    every sub-phase reads consecutive rows of one block: input stride 1 and
    16-byte staging as for an undilated layer (``dilated_k3d2`` 1.3x faster
    on an H100).  Block lengths along W are whole 16-byte chunks.
    """
    phases, out_stride, steps = unit_step_phases(params)
    if steps == (1, 1, 1):
        return Geometry(phases, out_stride, steps, params.in_size, None)
    new_base, sizes, remap = [], [], []
    for a in range(3):
        k, n_in = steps[a], params.in_size[a]
        axis = {ph[a] for ph in phases}
        if k == 1:
            new_base.append({ph: ph.base for ph in axis})
            sizes.append(n_in)
            remap.append(tuple(range(n_in)))
            continue
        used = [ph for ph in axis if ph.count and ph.taps]
        lo = min((ph.base // k for ph in used), default=0)
        hi = max((ph.base // k + ph.count + len(ph.taps) - 2 for ph in used), default=0)
        h_lo = max(0, -lo)
        counts = [-(-(n_in - q) // k) for q in range(k)]
        block = h_lo + max(max(counts), hi + 1)
        if a == 2:
            block = -(-block // 4) * 4
        new_base.append({ph: (ph.base % k) * block + h_lo + ph.base // k for ph in axis})
        sizes.append(k * block)
        remap.append(tuple(
            q + k * (t % block - h_lo) if 0 <= t % block - h_lo < counts[q] else -1
            for t in range(k * block) for q in (t // block,)))
    phases = [tuple(dataclasses.replace(ph, base=new_base[a][ph]) for a, ph in enumerate(tri))
              for tri in phases]
    return Geometry(phases, out_stride, (1, 1, 1), tuple(sizes), tuple(remap))

