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

The graph.  Each output block is one task: it takes its input block and its
neighbours' halo rows, copies them into one buffer (no nested
concatenation), calls the single-array function and crops (a view).  The
halo rows come from one small task per input block that hands out views of
its edge rows for every neighbour (``halo_rows="slices"``, the default: only
thin slices travel between workers), or each output block takes its
neighbour blocks whole and slices them itself (``halo_rows="blocks"``: one
task per output block and nothing else, for blocks that live on one worker).
``dask.array.map_overlap`` builds the same blocks with about six tasks per
block in 3-D (slices of every neighbour, concatenations, the block call);
in ``distributed`` each task costs about 1-3 ms of scheduling and
event-loop time, as much as a GPU block's kernels.

Dask is imported lazily: ``import xconvt`` never needs it.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
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


def _shifts(halo):
    """The neighbour offsets ``d`` (one of -1, 0, 1 per spatial axis, not all 0)
    that a block takes halo rows from: -1 where the axis has a left halo, +1
    where it has a right halo."""
    opts = [(0,) + ((-1,) if lo else ()) + ((1,) if hi else ()) for lo, hi in halo]
    return tuple(d for d in itertools.product(*opts) if any(d))


def _piece(d, halo):
    """The spatial index, in the neighbour at offset ``d``, of the rows the
    receiving block takes: its last ``left`` rows along an axis where
    ``d = -1``, its first ``right`` rows where ``d = 1``, all where ``d = 0``."""
    return tuple(
        slice(None) if di == 0 else slice(-lo, None) if di < 0 else slice(0, hi)
        for di, (lo, hi) in zip(d, halo)
    )


def _halo_export(block, pieces):
    """The halo rows that block hands its neighbours: ``{d: rows}`` (views).

    One small task per input block; a block's neighbours take their rows from
    its result, so that only thin slices travel between workers."""
    sp = (slice(None), slice(None))
    return {d: block[sp + sl] for d, sl in pieces}


def _conv_block(x, info, w, b, *halos, shifts, halo, whole, kernel, stride, padding,
                dilation, groups, algorithm, extra):
    """One output block: assemble the input block and its halo rows, run the
    single-array call with the block's own padding, crop.

    ``halos`` holds, per offset in ``shifts``, the neighbour's
    :func:`_halo_export` result, or (``whole``) the neighbour block itself;
    ``info`` is ``(have, loc)``: whether each of those neighbours exists (a
    missing one's entry is unused) and the output block's ``(lo, hi)`` per
    spatial axis.
    """
    from ._dispatch import conv_transpose3d as core

    have, loc = info
    halos = [h for h, ok in zip(halos, have) if ok]
    shifts = [d for d, ok in zip(shifts, have) if ok]

    left = [0, 0, 0]
    right = [0, 0, 0]
    for d in shifts:
        for ax in range(3):
            if d[ax] < 0:
                left[ax] = halo[ax][0]
            elif d[ax] > 0:
                right[ax] = halo[ax][1]
    if shifts:
        # One buffer, one copy of each piece (no nested concatenation).
        n = x.shape[2:]
        shape = x.shape[:2] + tuple(left[a] + n[a] + right[a] for a in range(3))
        xp = sys.modules[type(x).__module__.split(".")[0]]
        buf = xp.empty(shape, x.dtype)
        sp = (slice(None), slice(None))
        buf[sp + tuple(slice(left[a], left[a] + n[a]) for a in range(3))] = x
        for d, part in zip(shifts, halos):
            part = part[sp + _piece(d, halo)] if whole else part[d]
            dst = tuple(
                slice(0, left[a]) if d[a] < 0 else slice(left[a] + n[a], None) if d[a] > 0
                else slice(left[a], left[a] + n[a])
                for a in range(3)
            )
            buf[sp + dst] = part
        x = buf
    pcs, opcs, cut = [], [], [slice(None), slice(None)]
    for ax in range(3):
        lo, hi = loc[ax]
        first_in = lo // stride[ax] - left[ax]
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


def _graph(x, w_arg, b_arg, out_chunks, halo, static, token, meta, whole):
    """The lazy result: a ``Blockwise`` layer of one task per output block
    (plus, with ``whole`` false, one :func:`_halo_export` task per input block
    that has a neighbour with a halo).

    ``x`` is the rechunked input, ``halo`` the ``(left, right)`` per spatial
    axis (``(0, 0)`` on one-chunk axes).  The neighbours' keys reach the
    blocks through ``ArrayValuesDep`` arguments that declare them as
    dependencies (one per neighbour offset; a block without that neighbour
    gets its own input block's key, unused), so that the layer stays
    ``Blockwise`` and Dask fuses what follows it (a reduction, a Zarr store)
    into the same task instead of adding an alias task per block.  (Dask's
    ``TaskRef`` is imported from ``dask._task_spec``, where ``dask.array``
    itself takes it.)
    """
    import dask.array as da
    from dask._task_spec import TaskRef
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
    from dask.layers import ArrayValuesDep

    class Keys(ArrayValuesDep):
        """Per-block values that are keys of other tasks (dependencies)."""

        @property
        def produces_keys(self):
            return True

    name = "conv_transpose3d-" + token
    export = "conv_transpose3d-halo-" + token
    nb = x.numblocks
    shifts = _shifts(halo)
    starts = [tuple(itertools.accumulate(c, initial=0)) for c in out_chunks[2:]]
    info, refs, exports = {}, [{} for _ in shifts], {}
    for n in range(nb[0]):
        for idx in itertools.product(*(range(k) for k in nb[2:])):
            have = []
            for j, d in enumerate(shifts):
                src = (n, 0) + tuple(i + di for i, di in zip(idx, d))
                if all(0 <= i < k for i, k in zip(src[2:], nb[2:])):
                    have.append(True)
                    if whole:
                        refs[j][(n, 0) + idx] = TaskRef((x.name,) + src)
                    else:
                        exports.setdefault(src, []).append(d)
                        refs[j][(n, 0) + idx] = TaskRef((export,) + src)
                else:
                    have.append(False)
                    refs[j][(n, 0) + idx] = TaskRef((x.name, n, 0) + idx)
            loc = tuple((st[i], st[i + 1]) for st, i in zip(starts, idx))
            info[(n, 0) + idx] = (tuple(have), loc)
    ind = "nczyx"
    if shifts:
        # The input block is a key argument too: with x as an indexed array,
        # Dask would fuse a Blockwise layer that produces x into this one and
        # the neighbours' references to x's keys would dangle.  (Dask fuses a
        # layer into its only dependent layer: the halo layer, empty where
        # whole blocks are taken, is x's second dependent.)
        core = Keys(x.chunks, {i: TaskRef((x.name,) + i) for i in info})
    else:  # no halo: x fuses with what produced it, as in map_blocks
        core = x
    args = [core, ind, ArrayValuesDep(x.chunks, info), ind, w_arg, None, b_arg, None]
    for r in refs:
        args += [Keys(x.chunks, r), ind]
    fn = functools.partial(_conv_block, shifts=shifts, halo=halo, whole=whole, **static)
    out = da.blockwise(
        fn, ind, *args, name=name, dtype=meta.dtype, meta=meta, concatenate=False,
        align_arrays=False,
        adjust_chunks={ind[i]: out_chunks[i] for i in range(1, 5)},
    )
    if not shifts:
        return out
    graph = out.__dask_graph__()
    layers = dict(graph.layers)
    dependencies = dict(graph.dependencies)
    layers.update(x.__dask_graph__().layers)
    dependencies.update(x.__dask_graph__().dependencies)
    ex = {(export,) + src: (_halo_export, (x.name,) + src,
                            tuple((d, _piece(d, halo)) for d in ds))
          for src, ds in exports.items()}
    layers[export] = MaterializedLayer(ex)
    dependencies[export] = {x.name}
    dependencies[name] = set(dependencies[name]) | {x.name, export}
    return da.Array(HighLevelGraph(layers, dependencies), name, out.chunks, meta=meta)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, output_size=None, algorithm="auto",
                     precision=None, halo_rows="slices"):
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
    halo_rows : {"slices", "blocks"}
        How a block gets its neighbours' halo rows.  ``"slices"`` (default):
        each input block first hands out its thin halo slices in one small
        task, so that only those rows travel between workers (two tasks per
        output block where there is a halo).  ``"blocks"``: each output block
        is one task that takes its neighbour blocks whole and slices them
        itself: fewest tasks, best where the blocks and their neighbours live
        on one worker (one GPU), but whole neighbour blocks travel between
        workers otherwise.  The result is the same.

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
    if halo_rows not in ("slices", "blocks"):
        msg = f"halo_rows must be 'slices' or 'blocks', got {halo_rows!r}"
        raise ValueError(msg)
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
    out_chunks = (x.chunks[0], (params.out_channels,)) + tuple(a[1] for a in axes)
    meta = da.utils.meta_from_array(x._meta, ndim=5, dtype=dtype)
    static = dict(
        kernel=params.kernel, stride=params.stride, padding=params.padding,
        dilation=params.dilation, groups=params.groups, algorithm=algorithm, extra=extra,
    )
    halo = tuple(a[2] for a in axes)
    token = tokenize(
        x.name, getattr(w_arg, "key", None), getattr(b_arg, "key", None), params, static,
        halo_rows,
    )
    out = _graph(x, w_arg, b_arg, out_chunks, halo, static, token, meta,
                 whole=halo_rows == "blocks")
    return out[0] if params.unbatched else out
