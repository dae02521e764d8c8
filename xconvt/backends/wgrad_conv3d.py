"""The weight gradient as a conv3d of rearranged operands, on any conv3d plan.

``dw[g*Cig + c, o, k] = sum_{n, i} x[n, g*Cig + c, i] gy[n, g*Cog + o, i*s + k*d - p]``
is a conv3d in which batch, channels, taps and positions trade places: the
output channels ``o`` become the batch, the kernel taps ``k`` the positions,
the input positions ``i`` (D and H) the taps, and the batch ``n`` with the
input's W positions the channels.  With ``T`` (:func:`rewrite_params`)::

    y'[o, (g, n, iw), D, H, kw] = gy[n, g*Cog + o, D, H, kw*dw + iw*sw - pw]  (0 outside)
    w'[g*Cig + c, (n, iw), id, ih, 0] = x[n, g*Cig + c, id, ih, iw]
    conv3d_T(y', w')[o, g*Cig + c, kd, kh, kw] = dw[g*Cig + c, o, kd, kh, kw]

(D: ``y'`` index ``kd*dd + id*sd - pd``, so ``T`` has stride ``dd``, dilation
``sd``, padding ``pd`` and ``ID`` taps; likewise H; W is folded into the
channels, ``T``'s W axis one tap wide.)  One GEMM of ``Cog * KD*KH*KW`` rows,
``Cig`` columns, deep in ``N * IW * ID * IH``: the layers with few input
positions and many channels (a GAN's upsampling), whose split-reduction FMA
kernel runs at cuDNN's speed, get the tensor cores (3xTF32: float32-accurate)
through ``cuda.mma_conv3d``.

The rearrangement is written for any array library (``take``, ``permute``),
so the CPU tests check it with a CPU conv3d plan as the inner one.

Not in the planner registry yet: written on 2026-12-02 after the session's
GPU time was spent, it has run on the CPU only.  Its estimate (the inner
plan's and the copies at :data:`_BANDWIDTH`) predicts 0.61 ms on ``gan_k4s2``
against the FMA kernel's 0.52 measured (0.71 estimated), and 1.1 ms on
``depthwise_k7`` against 4.9 measured; register it (``backends/__init__.py``)
once a GPU run has timed it (bench/NOTES.md).
"""

from __future__ import annotations

import math
from dataclasses import replace

from array_api_compat import array_namespace

from .._params import ConvParams
from .._plan import FunctionPlan

__all__ = ["plan", "rearrange", "rewrite_params", "weight_grad"]

#: Bytes per second of the rearranging copies (gathers and permutes by the
#: array library's generic kernels: a conservative figure).
_BANDWIDTH = 1.0e12
_CALL = 30e-6


def rewrite_params(params):
    """``T``: the transposed convolution whose conv3d is ``params``' weight gradient."""
    N, G = params.batch, params.groups
    ID, IH, IW = params.in_size
    return ConvParams(
        batch=params.out_channels_per_group, in_channels=params.in_channels,
        out_channels=G * N * IW, groups=G, in_size=params.kernel, kernel=(ID, IH, 1),
        stride=(params.dilation[0], params.dilation[1], 1),
        padding=(params.padding[0], params.padding[1], 0),
        output_padding=(params.output_padding[0], params.output_padding[1], 0),
        dilation=(params.stride[0], params.stride[1], 1))


_INDEX = {}


def _w_index(params, xp, device):
    """Flat W index into ``gy`` padded with one zero column at the end, for
    ``(iw, kw)`` (the zero column where ``kw*dw + iw*sw - pw`` leaves it); made
    once per geometry, library and device (no host-to-device copy per call)."""
    key = (params.in_size[2], params.kernel[2], params.out_size[2], params.stride[2],
           params.dilation[2], params.padding[2], xp.__name__, getattr(device, "id", device))
    got = _INDEX.get(key)
    if got is None:
        if len(_INDEX) > 256:
            _INDEX.clear()
        got = _INDEX[key] = _make_w_index(params, xp, device)
    return got


def _make_w_index(params, xp, device):
    IW, KW = params.in_size[2], params.kernel[2]
    OW = params.out_size[2]
    sw, dw, pw = params.stride[2], params.dilation[2], params.padding[2]
    idx = []
    for iw in range(IW):
        for kw in range(KW):
            w = kw * dw + iw * sw - pw
            idx.append(w if 0 <= w < OW else OW)
    if device is None or xp.__name__.endswith("numpy"):
        return xp.asarray(idx, dtype=xp.int64)
    with device:
        return xp.asarray(idx, dtype=xp.int64)


def rearrange(params, x, gy):
    """``(T, y', w')`` with ``dw = permute(conv3d_T(y', w'), (1, 0, 2, 3, 4))``."""
    xp = array_namespace(x, gy)
    t = rewrite_params(params)
    N, G = params.batch, params.groups
    cig, cog = params.in_channels_per_group, params.out_channels_per_group
    ID, IH, IW = params.in_size
    OD, OH, _ = params.out_size
    KW = params.kernel[2]
    # y': gy's W gathered at every (iw, kw), the zero column for taps outside
    padded = xp.concat([gy, xp.zeros_like(gy[..., :1])], axis=4)
    g = xp.take(padded, _w_index(params, xp, getattr(gy, "device", None)), axis=4)
    g = xp.reshape(g, (N, G, cog, OD, OH, IW, KW))
    y2 = xp.reshape(xp.permute_dims(g, (2, 1, 0, 5, 3, 4, 6)), t.batched_output_shape)
    # w': x with its channels first and (n, iw) as the kernel's input channels
    w2 = xp.reshape(xp.permute_dims(x, (1, 0, 4, 2, 3)), (G * cig, N * IW, ID, IH, 1))
    return t, y2, w2


def weight_grad(params, x, gy, inner):
    """The weight gradient of ``params`` by ``inner``, a conv3d plan of
    :func:`rewrite_params`; ``params.weight_shape``, contiguous."""
    xp = array_namespace(x, gy)
    _, y2, w2 = rearrange(params, x, gy)
    out = inner(y2, w2, None)
    return xp.ascontiguousarray(xp.permute_dims(out, (1, 0, 2, 3, 4)))


def plan(problem):
    """Planner: the weight gradient by the best direct conv3d plan of the rewrite."""
    if problem.op != "weight_grad":
        return f"computes weight_grad, not {problem.op}"
    if problem.device.kind != "cuda":
        return "the rewrite is for the GPU's conv3d plans"
    if problem.dtype not in ("float16", "float32", "bfloat16"):
        return f"dtype {problem.dtype} goes to the FMA weight-gradient kernel"
    from .._select import choose

    p = problem.params
    t = rewrite_params(p)
    itemsize = 2 if problem.dtype in ("float16", "bfloat16") else 4
    copies = itemsize * (math.prod(t.batched_output_shape) + math.prod(p.input_shape)
                         + math.prod(p.weight_shape))
    if copies > problem.budget:
        return (f"the rearranged operands take {copies} bytes, over the memory budget of "
                f"{problem.budget}")
    try:
        inner = choose(replace(problem, op="conv3d", params=t,
                               budget=problem.budget - copies), "direct")
    except ValueError as e:
        return f"no direct conv3d plan of the rewrite: {e}"
    moved = 2 * copies + itemsize * (math.prod(p.batched_output_shape)
                                     + math.prod(t.input_shape))
    t_est = inner.estimate + moved / _BANDWIDTH + _CALL

    def run(x, gy):
        return weight_grad(p, x, gy, inner)

    return FunctionPlan("cuda.wgrad_conv3d", "direct", t_est, run,
                        copies + inner.workspace,
                        detail=f"conv3d of the rearranged operands by {inner.name}")
