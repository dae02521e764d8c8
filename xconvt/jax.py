"""JAX: xconvt's operations on JAX arrays, also inside ``jax.jit`` and ``jax.vmap``.

Concrete JAX arrays (eager calls) cross the boundary through DLPack
(:mod:`xconvt._interop`).  Traced arrays (inside ``jit``, ``vmap``, ``lax.scan``
...) have no memory yet: the operation becomes an XLA custom call through
``jax.experimental.buffer_callback``.  When the compiled program runs, XLA calls
back into Python with its buffers, which are viewed zero-copy as NumPy arrays
(CPU) or CuPy arrays (GPU) and computed by the same backends on XLA's stream
(``ctx.stream``), so the work is ordered with the rest of the program and the
host is never synchronized.  ``vmap`` runs the callback once per batch element
(``vmap_method="sequential"``).  The result is written into the buffer XLA
allocated for it (one device copy of the result until the planners write into
a given output).

Gradients are not defined yet (``jax.grad`` raises JAX's "Buffer callbacks do
not support JVP"); :func:`buffer_op` is the one helper that later
``jax.custom_vjp`` rules (conv3d, the weight gradient) wrap as well.

Where the installed JAX has no ``buffer_callback``, traced input raises
``TypeError``; eager calls work regardless.
"""

from __future__ import annotations

import functools

import numpy as np

from . import _interop

__all__ = ["buffer_op", "conv_transpose3d"]


@functools.lru_cache(maxsize=None)
def _buffer_callback():
    try:
        from jax.experimental.buffer_callback import buffer_callback
    except ImportError:
        import jax

        msg = (f"xconvt on traced JAX arrays (inside jax.jit, vmap, scan ...) needs "
               f"jax.experimental.buffer_callback, which JAX {jax.__version__} lacks; "
               "upgrade JAX, or call xconvt outside the transformation")
        raise TypeError(msg) from None
    return buffer_callback


def _host_view(buf):
    return np.from_dlpack(buf)


def _device_view(buf, device_id):
    cai = buf.__cuda_array_interface__
    strides = cai.get("strides")
    return _interop.cupy_view(cai["data"][0], tuple(cai["shape"]), np.dtype(buf.dtype),
                              None if strides is None else tuple(strides), buf, device_id)


def buffer_op(fn, result):
    """A JAX function computing ``fn`` on XLA's buffers, usable under ``jit``/``vmap``.

    Parameters
    ----------
    fn : callable
        ``fn(out, *operands)``: writes its result into ``out``; ``out`` and the
        operands are NumPy arrays on the CPU and CuPy arrays on the GPU (the
        operands read-only), all C-contiguous; on the GPU it runs with XLA's
        stream as CuPy's current stream and must not synchronize the host.
    result : jax.ShapeDtypeStruct
        Shape and dtype of ``out``.

    Returns
    -------
    callable
        ``op(*operands) -> jax.Array`` for JAX arrays (traced or concrete).
    """
    buffer_callback = _buffer_callback()

    def callback(ctx, out, *args):
        kind, dev = out.__dlpack_device__()
        if kind == 1:  # kDLCPU
            fn(_host_view(out), *map(_host_view, args))
            return
        with _interop.on_stream(int(ctx.stream), dev):
            fn(_device_view(out, dev), *(_device_view(a, dev) for a in args))

    return buffer_callback(callback, result, vmap_method="sequential")


def _key(v):
    """``v`` with lists turned into tuples (hashable op-cache keys)."""
    return tuple(_key(e) for e in v) if isinstance(v, (list, tuple)) else v


@functools.lru_cache(maxsize=256)
def _conv_transpose3d_op(shape, dtype, args, output_size, algorithm, precision):
    import jax

    from ._dispatch import conv_transpose3d as native

    def run(out, x, w, b=None):
        out[...] = native(x, w, b, *args, output_size=output_size, algorithm=algorithm,
                          precision=precision)

    return buffer_op(run, jax.ShapeDtypeStruct(shape, dtype))


def _traced_conv_transpose3d(input, weight, bias=None, stride=1, padding=0,
                             output_padding=0, groups=1, dilation=1, *,
                             output_size=None, algorithm="auto", precision=None):
    """:func:`conv_transpose3d` as a ``buffer_callback`` (any JAX arrays, traced or not)."""
    import jax.numpy as jnp

    from ._config import check_precision
    from ._dispatch import _check_algorithm, _check_dtypes, _params

    for arg, a in (("input", input), ("weight", weight), ("bias", bias)):
        if a is not None:
            _interop.check_dtype(arg, np.dtype(a.dtype).name)
    _check_algorithm("numpy", algorithm)
    if precision is not None:
        check_precision(precision)
    args = (stride, padding, output_padding, groups, dilation)
    params = _params(tuple(input.shape), tuple(weight.shape),
                     None if bias is None else tuple(bias.shape), *args, output_size)
    dtype = _check_dtypes(input, weight, bias)
    if params.batch == 0:
        return jnp.zeros(params.output_shape, dtype)
    if dtype.name == "bfloat16":
        # XLA's buffers export no bfloat16 through DLPack: the callback computes
        # in float32 and XLA rounds the result once (to nearest even).
        wide = [None if a is None else a.astype(jnp.float32) for a in (input, weight, bias)]
        out = _traced_conv_transpose3d(*wide, stride, padding, output_padding, groups,
                                       dilation, output_size=output_size, algorithm=algorithm,
                                       precision=precision)
        return out.astype(jnp.bfloat16)
    try:
        op = _conv_transpose3d_op(params.output_shape, dtype, _key(args), _key(output_size),
                                  algorithm, precision)
    except TypeError:  # unhashable arguments (validated above): build uncached
        op = _conv_transpose3d_op.__wrapped__(params.output_shape, dtype, args, output_size,
                                              algorithm, precision)
    return op(input, weight) if bias is None else op(input, weight, bias)


_TRACED = {"conv_transpose3d": _traced_conv_transpose3d}


def traced(name):
    """The ``buffer_callback`` form of public operation ``name`` (for :mod:`xconvt._interop`)."""
    return _TRACED[name]


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, output_size=None, algorithm="auto",
                     precision=None):
    """:func:`xconvt.conv_transpose3d` for JAX arrays, also inside ``jax.jit``/``vmap``.

    The same arguments and result as :func:`xconvt.conv_transpose3d` (which hands
    JAX arrays here itself): concrete arrays are exchanged through DLPack, traced
    ones run as an XLA ``buffer_callback`` on XLA's stream.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, xconvt.jax
    >>> x = jnp.ones((1, 2, 3, 3, 3), jnp.float32)
    >>> w = jnp.ones((2, 4, 2, 2, 2), jnp.float32)
    >>> f = jax.jit(lambda x, w: xconvt.jax.conv_transpose3d(x, w, stride=2))
    >>> f(x, w).shape
    (1, 4, 6, 6, 6)
    """
    from ._dispatch import conv_transpose3d as public

    return public(input, weight, bias, stride, padding, output_padding, groups, dilation,
                  output_size=output_size, algorithm=algorithm, precision=precision)
