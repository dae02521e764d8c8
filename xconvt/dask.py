"""``conv_transpose3d`` on Dask arrays: halo'd blocks, a lazy result.

Each output block is computed from one input block plus a halo by the
single-array :func:`xconvt.conv_transpose3d` (NumPy or CuPy chunks), so a
volume larger than one device's memory runs block by block on any Dask
scheduler (threads, ``distributed``, ``dask_cuda``).

Chunking rule, per spatial axis (input size ``I``, kernel ``K``, stride ``s``,
padding ``p``, dilation ``d``, output size ``O``).  Input chunk ``j`` covers
``[a_j, b_j)``; output chunk ``j`` covers ``[s*a_j, s*b_j)``, except that the
last one ends at ``O`` (output chunks are ``stride`` times the input chunks).
Output ``o`` gathers the inputs ``i`` with ``i*s + k*d == o + p``, so output
chunk ``j`` needs the inputs ``[a_j - L, b_j + R)`` with the halo::

    L = max(0, floor((d*(K - 1) - p) / s))      R = max(0, ceil(p / s))

Each block is transposed-convolved with its own padding and output padding
(chosen so that the core computes only the rows the block owns, see
:func:`_block_crop`), which puts the global ``padding`` and
``output_padding`` into the crop offsets; the bias is added per block.  Axes
with one chunk take no halo; input chunks smaller than the halo are merged
with their neighbours first, as are trailing chunks that would own no output
(large padding); input channels become one chunk and the batch axis keeps its
chunks.  The weight and bias travel as task arguments under one shared key
each.

Dask is imported lazily: ``import xconvt`` never needs it.
"""

from __future__ import annotations

import math
import uuid

__all__ = ["conv_transpose3d", "plan_chunks"]


def _halo(kernel, stride, padding, dilation):
    """``(left, right)`` input halo of one axis (see the module docstring)."""
    left = max(0, (dilation * (kernel - 1) - padding) // stride)
    right = max(0, -(-padding // stride))
    return left, right


def _merge_small(chunks, size):
    """Merge chunks smaller than ``size`` into their neighbours (in order)."""
    out, acc = [], 0
    for c in chunks:
        acc += c
        if acc >= size:
            out.append(acc)
            acc = 0
    if acc:
        if out:
            out[-1] += acc
        else:
            out.append(acc)
    return out


def plan_chunks(chunks, in_size, kernel, stride, padding, dilation, out_size):
    """Input chunks, output chunks and halo of one spatial axis.

    Parameters
    ----------
    chunks : tuple of int
        The input's chunks along the axis (they sum to ``in_size``).
    in_size, kernel, stride, padding, dilation, out_size : int
        The axis' geometry (``out_size`` includes the output padding).

    Returns
    -------
    in_chunks : tuple of int
        ``chunks`` with too-small and empty-output chunks merged.
    out_chunks : tuple of int
        ``stride * in_chunks``, the last one ending at ``out_size``.
    halo : tuple of int
        ``(left, right)``; ``(0, 0)`` when the axis has one chunk.

    Examples
    --------
    >>> plan_chunks((4, 4, 2), 10, 3, 2, 1, 1, 20)
    ((4, 4, 2), (8, 8, 4), (0, 1))
    >>> plan_chunks((4, 1, 5), 10, 5, 1, 0, 1, 14)
    ((4, 6), (4, 10), (4, 0))
    """
    left, right = _halo(kernel, stride, padding, dilation)
    merged = list(chunks)
    if len(merged) > 1:
        merged = _merge_small(merged, max(left, right, 1))
    # The last chunk must own at least one output: its first output s*a < out_size.
    while len(merged) > 1 and stride * (in_size - merged[-1]) >= out_size:
        last = merged.pop()
        merged[-1] += last
    if len(merged) == 1:
        return (in_size,), (out_size,), (0, 0)
    out = [stride * c for c in merged[:-1]]
    out.append(out_size - stride * (in_size - merged[-1]))
    return tuple(merged), tuple(out), (left, right)


def _block_crop(lo, hi, first_in, n_in, kernel, stride, padding, dilation):
    """How one block computes output rows ``[lo, hi)`` of one axis.

    The block holds input rows ``[first_in, first_in + n_in)``.  Its uncropped
    (padding 0) result has ``F = (n_in - 1)*s + d*(K - 1) + 1`` rows, local row
    ``t`` being global output row ``t + first_in*s - p``; the block needs local
    rows ``[t_lo, t_hi)``.  The core's symmetric padding ``pc`` and output
    padding ``opc`` (``< max(s, d)``, PyTorch's rule) produce local rows
    ``[pc, F - pc + opc)``, as many of the unwanted rows left out as the rule
    allows; the rest is sliced off.

    Returns
    -------
    pc, opc : int
        Padding and output padding for the block's core call.
    start, stop : int
        The slice of the core's result that is output ``[lo, hi)``.
    """
    full = (n_in - 1) * stride + dilation * (kernel - 1) + 1
    t_lo = lo + padding - first_in * stride
    t_hi = hi + padding - first_in * stride
    op_max = max(stride, dilation) - 1
    pc = max(0, min(t_lo, full - t_hi + op_max))
    opc = max(0, t_hi - (full - pc))
    return pc, opc, t_lo - pc, t_hi - pc


def _conv_block(x, w, b, *, kernel, stride, padding, dilation, groups, halo_left,
                algorithm, extra, block_info=None):
    """One output block: the core call on the halo'd input block, then a crop."""
    from ._dispatch import conv_transpose3d as core

    loc = block_info[None]["array-location"]
    pcs, opcs, cut = [], [], [slice(None), slice(None)]
    for ax in range(3):
        lo, hi = loc[2 + ax]
        first_in = max(0, lo // stride[ax] - halo_left[ax])
        pc, opc, start, stop = _block_crop(
            lo, hi, first_in, x.shape[2 + ax], kernel[ax], stride[ax], padding[ax],
            dilation[ax],
        )
        pcs.append(pc)
        opcs.append(opc)
        cut.append(slice(start, stop))
    out = core(x, w, b, stride, tuple(pcs), tuple(opcs), groups, dilation,
               algorithm=algorithm, **extra)
    if any(c.start != 0 or c.stop != out.shape[i + 2] for i, c in enumerate(cut[2:])):
        out = out[tuple(cut)]
    return out


def _chunk_kind(a, name):
    """``"numpy"``/``"cupy"`` for the chunk type of Dask array ``a``."""
    from ._dispatch import _kind_of

    meta = getattr(a, "_meta", None)
    try:
        return _kind_of(name, meta)
    except TypeError:
        msg = (
            f"{name} is a Dask array of {type(meta).__module__}.{type(meta).__qualname__} "
            "chunks; xconvt computes Dask arrays of numpy.ndarray or cupy.ndarray chunks"
        )
        raise TypeError(msg) from None


def _operand(a, name, kind):
    """``(array-like for validation, task argument)`` for the weight or bias.

    A NumPy/CuPy array becomes one Delayed key shared by every block; a Dask
    array is rechunked to one chunk and its key is used.
    """
    import dask
    from array_api_compat import is_dask_array

    from ._dispatch import _kind_of

    if a is None:
        return None, None
    if is_dask_array(a):
        other = _chunk_kind(a, name)
        if any(math.isnan(n) for n in a.shape):
            msg = f"{name} has unknown (NaN) chunk sizes; call {name}.compute_chunk_sizes()"
            raise ValueError(msg)
        arg = a.rechunk(a.shape).to_delayed().ravel()[0]
    else:
        other = _kind_of(name, a)
        # NumPy data is hashed (equal weights share a key); Dask has no
        # tokenizer for CuPy arrays, so a device array gets a fresh key.
        token = dask.base.tokenize(a) if other == "numpy" else uuid.uuid4().hex
        arg = dask.delayed(a, name=f"xconvt-{name}-{token}", pure=True)
    if other != kind:
        msg = f"input has {kind} chunks but {name} is a {other} array; use one library"
        raise TypeError(msg)
    return a, arg


def _precision_kwargs(precision):
    """``{"precision": precision}`` (validated) where given, else nothing: the
    blocks then follow the process setting where they run."""
    if precision is None:
        return {}
    from ._config import check_precision

    return {"precision": check_precision(precision)}


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, output_size=None, algorithm="auto",
                     precision=None):
    r"""3-D transposed convolution of a Dask array, as a lazy Dask array.

    The same arguments and result as :func:`xconvt.conv_transpose3d` (which
    hands Dask input to this function); each output block is computed by
    that function on one input block plus a halo (see the module docstring
    for the chunking rule).

    Parameters
    ----------
    input : dask.array.Array, shape (N, C_in, D, H, W) or (C_in, D, H, W)
        Chunks of ``numpy.ndarray`` (computed on the CPU) or ``cupy.ndarray``
        (on the GPU of the worker that runs the task).  Any batch and
        spatial chunks; input channels are rechunked to one chunk.
    weight : ndarray or dask.array.Array, shape (C_in, C_out / groups, kD, kH, kW)
        Same library as the chunks; a task argument (one key for all blocks).
    bias : ndarray or dask.array.Array, shape (C_out,), optional
    stride, padding, output_padding, groups, dilation, output_size
        As in :func:`xconvt.conv_transpose3d`, validated the same way.
    algorithm : {"auto", "measure", "direct", "fft"}
        The per-block algorithm.  ``"auto"`` chooses per block shape, so
        blocks of different shapes may use different algorithms.
    precision : str, optional
        Forwarded to the per-block call when given.

    Returns
    -------
    out : dask.array.Array, shape (N, C_out, D_out, H_out, W_out) or (C_out, ...)
        Lazy; its chunks are ``stride`` times the (merged) input chunks per
        spatial axis, the last one ending at the output size; batch chunks
        as the input's, output channels one chunk; chunks of the input's
        library and dtype.

    Examples
    --------
    >>> import numpy as np, dask.array as da, xconvt
    >>> x = da.ones((1, 2, 8, 8, 8), chunks=(1, 2, 4, 4, 4), dtype=np.float32)
    >>> w = np.ones((2, 3, 3, 3, 3), np.float32)
    >>> y = xconvt.conv_transpose3d(x, w, stride=2, padding=1, output_padding=1)
    >>> y.chunks[2:]
    ((8, 8), (8, 8), (8, 8))
    """
    import dask.array as da
    from array_api_compat import is_dask_array
    from dask.base import tokenize

    from ._dispatch import _check_algorithm, _check_dtypes, _params

    if not is_dask_array(input):
        msg = f"input must be a dask.array.Array, got {type(input).__module__}." \
              f"{type(input).__qualname__}; use xconvt.conv_transpose3d for other arrays"
        raise TypeError(msg)
    kind = _chunk_kind(input, "input")
    weight, w_arg = _operand(weight, "weight", kind)
    bias, b_arg = _operand(bias, "bias", kind)
    _check_algorithm(kind, algorithm)
    if any(math.isnan(n) for n in input.shape):
        msg = "input has unknown (NaN) chunk sizes; call input.compute_chunk_sizes() first"
        raise ValueError(msg)
    params = _params(
        input.shape, weight.shape, None if bias is None else bias.shape,
        stride, padding, output_padding, groups, dilation, output_size,
    )
    dtype = _check_dtypes(input, weight, bias)
    extra = _precision_kwargs(precision)

    x = input[None] if params.unbatched else input
    if x.dtype != dtype:
        x = x.astype(dtype)
    axes = [
        plan_chunks(x.chunks[2 + a], params.in_size[a], params.kernel[a],
                    params.stride[a], params.padding[a], params.dilation[a],
                    params.out_size[a])
        for a in range(3)
    ]
    x = x.rechunk((x.chunks[0], (params.in_channels,)) + tuple(a[0] for a in axes))
    depth = {2 + a: axes[a][2] for a in range(3) if axes[a][2] != (0, 0)}
    if depth:
        x = da.overlap.overlap(x, depth, boundary="none", allow_rechunk=False)
    out_chunks = (x.chunks[0], (params.out_channels,)) + tuple(a[1] for a in axes)
    meta = da.utils.meta_from_array(x._meta, ndim=5, dtype=dtype)
    static = dict(
        kernel=params.kernel, stride=params.stride, padding=params.padding,
        dilation=params.dilation, groups=params.groups,
        halo_left=tuple(a[2][0] for a in axes), algorithm=algorithm, extra=extra,
    )
    name = "conv_transpose3d-" + tokenize(
        x.name, getattr(w_arg, "key", None), getattr(b_arg, "key", None), params, static
    )
    out = da.map_blocks(
        _conv_block, x, w_arg, b_arg, name=name, chunks=out_chunks, dtype=dtype,
        meta=meta, **static,
    )
    return out[0] if params.unbatched else out
