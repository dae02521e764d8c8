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

Gradients: :func:`conv_transpose3d` and :func:`conv3d` are ``jax.custom_vjp``
functions (so are the public :func:`xconvt.conv_transpose3d` and
:func:`xconvt.conv3d` on traced JAX arrays, which come here), whose backward
passes call :mod:`xconvt.grad` (the input gradient of one is the other
convolution; the weight gradient is its own operation; the bias gradient a
``jnp.sum``).  Every kernel call, forward or backward, is a ``buffer_callback``
under ``jit`` (:func:`buffer_op`) and a DLPack exchange eagerly.  The gradient
functions of :mod:`xconvt.grad` take JAX arrays too (not differentiable
themselves: no second derivatives).

Where the installed JAX has no ``buffer_callback``, traced input raises
``TypeError``; eager calls work regardless.
"""

from __future__ import annotations

import functools

import numpy as np

from . import _interop

__all__ = ["buffer_op", "conv3d", "conv_transpose3d"]


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


# ------------------------------------------------------------------ buffer_callback forms
# Each public operation on traced arrays: its operands' names (positional, None for
# arguments that are not arrays) and a function of the arguments that validates them
# from shapes alone (nothing is computed) and returns the result's shape.
def _conv_transpose3d_shape(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                            groups=1, dilation=1, *, output_size=None, algorithm="auto",
                            precision=None):
    from ._dispatch import _check_algorithm, _params

    _check_algorithm("numpy", algorithm)
    _check_precision(precision)
    return _params(tuple(input.shape), tuple(weight.shape),
                   None if bias is None else tuple(bias.shape), stride, padding,
                   output_padding, groups, dilation, output_size).output_shape


def _conv3d_shape(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
                  algorithm="auto", precision=None):
    from . import _grad

    _grad._check_algorithm(algorithm)
    _check_precision(precision)
    params, crop = _grad._conv3d_params(tuple(input.shape), tuple(weight.shape),
                                        None if bias is None else tuple(bias.shape),
                                        stride, padding, dilation, groups)
    shape = _grad._crop_shape(params.input_shape, crop)
    return shape[1:] if params.unbatched else shape


def _transposed_grad_shape(input, weight, grad_output, stride=1, padding=0,
                           output_padding=0, groups=1, dilation=1, *, algorithm="auto",
                           result):
    """The gradients of conv_transpose3d: ``input`` and ``weight`` are arrays or sizes."""
    from . import _grad

    _grad._check_algorithm(algorithm)
    size = _grad._size(f"{result}_size", (input if result == "input" else weight))
    ishape = size if result == "input" else tuple(input.shape)
    wshape = size if result == "weight" else tuple(weight.shape)
    params = _grad._transposed_params(ishape, wshape, stride, padding, output_padding,
                                      groups, dilation)
    _grad._check_shape("grad_output", grad_output.shape, params.output_shape,
                       "the forward's output shape")
    return size


def _conv3d_grad_shape(input, weight, grad_output, stride=1, padding=0, dilation=1,
                       groups=1, *, algorithm="auto", result):
    """The gradients of conv3d: ``input`` and ``weight`` are arrays or sizes."""
    from . import _grad

    _grad._check_algorithm(algorithm)
    size = _grad._size(f"{result}_size", (input if result == "input" else weight))
    ishape = size if result == "input" else tuple(input.shape)
    wshape = size if result == "weight" else tuple(weight.shape)
    params, crop = _grad._conv3d_params(ishape, wshape, None, stride, padding, dilation,
                                        groups)
    expected = _grad._crop_shape(params.input_shape, crop)
    _grad._check_shape("grad_output", grad_output.shape,
                       expected[1:] if params.unbatched else expected,
                       "the forward's output shape")
    return size


def _bias_grad_shape(grad_output):
    if grad_output.ndim not in (4, 5):
        msg = ("grad_output must be 4-D (C, D, H, W) or 5-D (N, C, D, H, W), got "
               f"shape {tuple(grad_output.shape)}")
        raise ValueError(msg)
    return (grad_output.shape[1 if grad_output.ndim == 5 else 0],)


def _check_precision(precision):
    from ._config import check_precision

    if precision is not None:
        check_precision(precision)


_INPUT = (None, "weight", "grad_output")
_WEIGHT = ("input", None, "grad_output")
_SPECS = {
    "conv_transpose3d": (_interop.OPERANDS, _conv_transpose3d_shape, "xconvt:conv_transpose3d"),
    "conv3d": (_interop.OPERANDS, _conv3d_shape, "xconvt:conv3d"),
    "conv_transpose3d_input": (_INPUT, functools.partial(_transposed_grad_shape,
                                                         result="input"),
                               "xconvt.grad:conv_transpose3d_input"),
    "conv_transpose3d_weight": (_WEIGHT, functools.partial(_transposed_grad_shape,
                                                           result="weight"),
                                "xconvt.grad:conv_transpose3d_weight"),
    "conv3d_input": (_INPUT, functools.partial(_conv3d_grad_shape, result="input"),
                     "xconvt.grad:conv3d_input"),
    "conv3d_weight": (_WEIGHT, functools.partial(_conv3d_grad_shape, result="weight"),
                      "xconvt.grad:conv3d_weight"),
    "bias_grad": (("grad_output",), _bias_grad_shape, "xconvt.grad:bias_grad"),
}
"""Public operation -> (operand names, shape function, ``module:function``)."""


def _public(name):
    module, _, attr = _SPECS[name][2].partition(":")
    import importlib

    return getattr(importlib.import_module(module), attr)


@functools.lru_cache(maxsize=256)
def _op(name, shape, dtype, template, slots, kwargs):
    """The ``buffer_op`` of public operation ``name`` with static arguments
    ``template`` (operands at positions ``slots``) and keyword arguments ``kwargs``."""
    import jax

    public = _public(name)
    kw = dict(kwargs)

    def run(out, *arrays):
        args = list(template)
        for i, a in zip(slots, arrays):
            args[i] = a
        out[...] = public(*args, **kw)

    return buffer_op(run, jax.ShapeDtypeStruct(shape, dtype))


def _buffer_form(name, *args, **kwargs):
    """Public operation ``name`` as a ``buffer_callback`` (any JAX arrays, traced or not)."""
    import jax.numpy as jnp

    names, shape_of, _ = _SPECS[name]
    slots = tuple(i for i, (n, a) in enumerate(zip(names, args))
                  if n is not None and a is not None)
    first = names[slots[0]]
    dtype = np.dtype(args[slots[0]].dtype)
    for i in slots:
        _interop.check_dtype(names[i], np.dtype(args[i].dtype).name)
    for i in slots[1:]:
        if np.dtype(args[i].dtype) != dtype:
            msg = (f"{names[i]} dtype {np.dtype(args[i].dtype).name} differs from {first} "
                   f"dtype {dtype.name}; {', '.join(names[j] for j in slots)} must share "
                   "one dtype")
            raise TypeError(msg)
    shape = tuple(shape_of(*args, **kwargs))
    if 0 in shape:
        return jnp.zeros(shape, dtype)
    if dtype.name == "bfloat16":
        # XLA's buffers export no bfloat16 through DLPack: the callback computes
        # in float32 and XLA rounds the result once (to nearest even).
        wide = list(args)
        for i in slots:
            wide[i] = args[i].astype(jnp.float32)
        return _buffer_form(name, *wide, **kwargs).astype(jnp.bfloat16)
    template = tuple(None if i in slots else a for i, a in enumerate(args))
    arrays = [args[i] for i in slots]
    try:
        op = _op(name, shape, dtype, _key(template), slots,
                 tuple(sorted((k, _key(v)) for k, v in kwargs.items())))
    except TypeError:  # unhashable arguments (validated above): build uncached
        op = _op.__wrapped__(name, shape, dtype, template, slots, tuple(kwargs.items()))
    return op(*arrays)


def _run(name, *args, **kwargs):
    """Public operation ``name``: DLPack for concrete arrays, a ``buffer_callback``
    where an operand is traced."""
    names = _SPECS[name][0]
    tracer = _interop._named(_interop._Jax, "jax").tracer
    if any(isinstance(a, tracer) for n, a in zip(names, args) if n is not None):
        return _buffer_form(name, *args, **kwargs)
    return _public(name)(*args, **kwargs)


def traced(name):
    """The form of public operation ``name`` for traced JAX arrays (for
    :mod:`xconvt._interop`): the differentiable one for ``conv_transpose3d`` and
    ``conv3d``, the ``buffer_callback`` for the gradients."""
    if name == "conv_transpose3d":
        return conv_transpose3d
    if name == "conv3d":
        return conv3d
    return functools.partial(_buffer_form, name)


# ----------------------------------------------------------------------------- gradients
def _grad_algorithm(algorithm):
    """The gradients' ``algorithm`` for a forward's (they have no ``"measure"``)."""
    from . import _grad

    return algorithm if algorithm in _grad.ALGORITHMS else "auto"


def _bias_sum(g):
    return g.sum(axis=(0, 2, 3, 4) if g.ndim == 5 else (1, 2, 3))


@functools.lru_cache(maxsize=None)
def _vjp(name):
    """The ``jax.custom_vjp`` function of ``"conv_transpose3d"`` or ``"conv3d"``
    (built on first use: JAX is imported lazily): its backward pass calls
    ``xconvt.grad.<name>_input`` and ``<name>_weight``."""
    import jax

    from . import grad

    input_grad = getattr(grad, f"{name}_input")
    weight_grad = getattr(grad, f"{name}_weight")

    @functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
    def op(x, w, b, cfg):
        args, algorithm, precision = cfg
        return _run(name, x, w, b, *args, algorithm=algorithm, precision=precision)

    def fwd(x, w, b, cfg):
        return op(x, w, b, cfg), (x, w, b)

    def bwd(cfg, res, g):
        x, w, b = res
        g = jax.numpy.asarray(g)  # a cotangent may arrive as a NumPy array
        args, algorithm, _ = cfg
        algorithm = _grad_algorithm(algorithm)
        gx = input_grad(x.shape, w, g, *args, algorithm=algorithm)
        gw = weight_grad(x, w.shape, g, *args, algorithm=algorithm)
        return gx, gw, None if b is None else _bias_sum(g)

    op.defvjp(fwd, bwd)
    return op


def _check_operands(operands):
    """One library (JAX) for every ``(name, array)`` pair; dtypes and devices of
    concrete arrays (traced ones are checked by the operation)."""
    operands = [(n, a) for n, a in operands if a is not None]
    lib = _interop._library(operands[0][0], operands[0][1])
    _interop._check_one(lib, operands)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, output_size=None, algorithm="auto",
                     precision=None):
    """:func:`xconvt.conv_transpose3d` for JAX arrays, differentiable, also inside
    ``jax.jit``/``vmap``.

    The same arguments and result as :func:`xconvt.conv_transpose3d` (which hands
    traced JAX arrays here itself): concrete arrays are exchanged through DLPack,
    traced ones run as an XLA ``buffer_callback`` on XLA's stream.  A
    ``jax.custom_vjp`` gives ``jax.grad``/``jax.vjp`` the gradients with respect
    to ``input`` (:func:`xconvt.grad.conv_transpose3d_input`, a conv3d),
    ``weight`` (:func:`xconvt.grad.conv_transpose3d_weight`) and ``bias`` (a sum
    over batch and space), computed the same way.  ``output_size`` is resolved
    to ``output_padding`` here.  Higher derivatives are not defined.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, xconvt.jax
    >>> x = jnp.ones((1, 2, 3, 3, 3), jnp.float32)
    >>> w = jnp.ones((2, 4, 2, 2, 2), jnp.float32)
    >>> f = jax.jit(lambda x, w: xconvt.jax.conv_transpose3d(x, w, stride=2))
    >>> f(x, w).shape
    (1, 4, 6, 6, 6)
    >>> loss = lambda w: (xconvt.jax.conv_transpose3d(x, w, stride=2) ** 2).sum()
    >>> jax.jit(jax.grad(loss))(w).shape
    (2, 4, 2, 2, 2)
    """
    from ._dispatch import _params

    _check_operands(zip(_interop.OPERANDS, (input, weight, bias)))
    params = _params(tuple(input.shape), tuple(weight.shape),
                     None if bias is None else tuple(bias.shape), stride, padding,
                     output_padding, groups, dilation, output_size)
    args = (params.stride, params.padding, params.output_padding, params.groups,
            params.dilation)
    return _vjp("conv_transpose3d")(input, weight, bias, (args, algorithm, precision))


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", precision=None):
    """:func:`xconvt.conv3d` for JAX arrays, differentiable, also inside
    ``jax.jit``/``vmap``.

    As :func:`conv_transpose3d` here: DLPack for concrete arrays, a
    ``buffer_callback`` for traced ones, and a ``jax.custom_vjp`` whose input
    gradient is :func:`xconvt.grad.conv3d_input` (a transposed convolution),
    weight gradient :func:`xconvt.grad.conv3d_weight`, bias gradient a sum.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, xconvt.jax
    >>> y = jnp.ones((1, 4, 6, 6, 6), jnp.float32)
    >>> w = jnp.ones((2, 4, 3, 3, 3), jnp.float32)
    >>> jax.grad(lambda y: xconvt.jax.conv3d(y, w, padding="same").sum())(y).shape
    (1, 4, 6, 6, 6)
    """
    _check_operands(zip(_interop.OPERANDS, (input, weight, bias)))
    _conv3d_shape(input, weight, bias, stride, padding, dilation, groups,
                  algorithm=algorithm, precision=precision)  # validates
    args = _key((stride, padding, dilation, groups))
    return _vjp("conv3d")(input, weight, bias, (args, algorithm, precision))
