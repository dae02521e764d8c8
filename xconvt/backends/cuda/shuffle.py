"""One-tap transposed convolutions on CUDA: a GEMM, then a depth-to-space
shuffle.

Where the kernel equals the stride on every axis, with no padding, output
padding or dilation (the k = s = 2 upsampling of U-Nets), every output
position gets exactly one tap: the layer is one GEMM of x's channels against
the weight read as ``(Cin, Cout/groups * T)`` (T = taps), a 1x1x1 transposed
convolution to ``Cout * T`` channels at the input's size, followed by a
shuffle (``xconvt_shuffle``, ``kernels/shuffle.cu``) that moves channel
``c * T + t`` to tap t's output phase.  The GEMM goes to the plan ``auto``
picks for it (tensor cores or FMA kernels, at the call's precision) and
writes whole rows; the phase kernels write each phase at the stride, half
of every 32-byte sector per store (cuDNN too moves only 0.7 TB/s there).
The price is the intermediate's round trip: twice the output's bytes.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..._params import ConvParams
from ..._plan import Plan
from . import runtime as rt

__all__ = ["plan", "ShufflePlan"]

SOURCE = rt.KERNELS / "shuffle.cu"

#: The shuffle's cost: (launch seconds, bytes moved per second, read plus
#: written).  Prediction before measuring: a strided copy near 3 TB/s.
_SHUFFLE = (6e-6, 3.0e12)

#: Not yet run on a GPU (2026-12-03): the estimate carries this margin so that
#: ``auto`` keeps the measured plans until a device run times it (the GPU tests
#: and probe/shuffle_probe.py are written); by name it runs as is.
_UNMEASURED = 1.5

#: Element bits copied per storage dtype.
_BITS = {2: "unsigned short", 4: "unsigned", 8: "unsigned long long", 16: "uint4"}


def one_tap(params):
    """The reason ``params`` is not a one-tap layer, or None."""
    if params.kernel != params.stride:
        return f"needs kernel_size == stride, got {params.kernel} and {params.stride}"
    if params.padding != (0, 0, 0) or params.output_padding != (0, 0, 0):
        return "needs padding and output_padding 0"
    if params.dilation != (1, 1, 1):
        return "needs dilation 1"
    if math.prod(params.kernel) == 1:
        return "a 1x1x1 kernel is already one GEMM"
    return None


def inner_params(params):
    """The GEMM as a 1x1x1 transposed convolution: ``Cout * T`` output channels."""
    taps = math.prod(params.kernel)
    return ConvParams.from_shapes(
        (params.batch, params.in_channels) + tuple(params.in_size),
        (params.in_channels, params.out_channels_per_group * taps, 1, 1, 1),
        (params.out_channels * taps,) if params.has_bias else None,
        groups=params.groups)


class ShufflePlan(Plan):
    """``plan(x, w, b) -> out``: the inner plan's GEMM into a temporary, then
    the shuffle into a new output."""

    algorithm = "direct"
    name = "cuda.shuffle"

    def __init__(self, params, inner, estimate, workspace, dtype_name):
        self.params, self.inner = params, inner
        self.estimate, self.workspace = float(estimate), int(workspace)
        self.dtype_name = dtype_name
        self.detail = (f"GEMM to {params.out_channels * math.prod(params.kernel)} channels "
                       f"({inner.name}: {inner.detail}), then the depth-to-space shuffle")
        self._kernels = {}

    def _kernel(self, itemsize):
        """``(kernel, index type)`` of the shuffle for ``itemsize``-byte elements."""
        got = self._kernels.get(itemsize)
        if got is None:
            index_t = rt.index_type(math.prod(self.params.batched_output_shape))
            got = self._kernels[itemsize] = (
                rt.kernel(SOURCE, f"xconvt_shuffle<{_BITS[itemsize]}, {index_t}>"),
                np.int32 if index_t == "int" else np.int64)
        return got

    def __call__(self, x, w, b=None):
        cp = rt.cupy()
        p = self.params
        taps = math.prod(p.kernel)
        with x.device:
            x = x.reshape((p.batch, p.in_channels) + tuple(p.in_size))
            w2 = cp.ascontiguousarray(w).reshape(
                p.in_channels, p.out_channels_per_group * taps, 1, 1, 1)
            b2 = None if b is None else cp.repeat(cp.ascontiguousarray(b).reshape(-1), taps)
            y = self.inner(x, w2, b2)
            out = cp.empty(p.batched_output_shape, dtype=x.dtype)
            kern, ityp = self._kernel(out.dtype.itemsize)
            od, oh, ow = p.out_size
            planes = p.batch * p.out_channels * od
            sd, sh, sw = p.stride
            kern((-(-(oh * ow) // 256), min(planes, 65535)), (256,),
                 (y, out, ityp(planes), *(np.int32(v) for v in p.in_size),
                  np.int32(sd), np.int32(sh), np.int32(sw)))
        return out


def plan(problem):
    """Planner: a one-tap layer (kernel == stride, no padding, output padding
    or dilation) as a GEMM (the plan ``auto`` picks for the 1x1x1 transposed
    convolution to ``Cout * taps`` channels) and the depth-to-space shuffle;
    a :class:`ShufflePlan` or the reason it does not apply."""
    if problem.op != "conv_transpose3d":
        return f"computes conv_transpose3d only, not {problem.op}"
    if problem.device.kind != "cuda":
        return "runs on CUDA devices only"
    p = problem.params
    why = one_tap(p)
    if why:
        return why
    od, oh, ow = p.out_size
    if oh * ow > rt.INT32_MAX - 256:
        return "an output plane beyond 32-bit indexing"
    nbytes = math.prod(p.batched_output_shape) * problem.itemsize
    if nbytes > problem.budget:
        return (f"its intermediate takes {nbytes} bytes, over the memory budget of "
                f"{problem.budget}")
    from ..._select import choose

    try:
        inner = choose(replace(problem, params=inner_params(p), budget=problem.budget - nbytes),
                       "direct")
    except ValueError as e:
        return f"no plan for its GEMM: {e}"
    t = _UNMEASURED * (inner.estimate + _SHUFFLE[0] + 2 * nbytes / _SHUFFLE[1])
    return ShufflePlan(p, inner, t, inner.workspace + nbytes, problem.dtype)
