"""conv3d and the gradients: the public functions, on NumPy and CuPy arrays
(PyTorch, JAX and other libraries' arrays cross :mod:`xconvt._interop` first).

Every operation here is described by the :class:`~xconvt._params.ConvParams`
of a *transposed* convolution ``T`` (see :mod:`xconvt._plan`):

=======================================  ==========================================
``conv3d(y, w)``                         ``T``'s adjoint (op ``"conv3d"``)
``grad.conv_transpose3d_input``          ``conv3d`` of ``grad_output`` by ``w``
``grad.conv_transpose3d_weight``         ``weight_grad(x, grad_output)``
``grad.conv3d_input``                    ``T`` itself (``conv_transpose3d``), with
                                         ``output_padding`` from ``input_size``
``grad.conv3d_weight``                   ``weight_grad(grad_output, input)``
=======================================  ==========================================

Plans come from the planners registered for each operation
(:mod:`xconvt.backends`), chosen by :mod:`xconvt._select` like
:func:`xconvt.conv_transpose3d`'s.
"""

from __future__ import annotations

import functools

import numpy as np
from array_api_compat import array_namespace

from . import _dispatch, _interop, _select
from ._config import check_precision, get_float32_precision, get_memory_budget
from ._params import conv3d_params, dtype_name

__all__ = ["bias_grad", "conv3d", "conv3d_input", "conv3d_weight",
           "conv_transpose3d_input", "conv_transpose3d_weight"]

ALGORITHMS = ("auto", "measure", "direct", "fft")

def _check_algorithm(algorithm):
    if not (isinstance(algorithm, str) and algorithm in ALGORITHMS):
        msg = (f"algorithm={algorithm!r} is not available; choose one of "
               f"{', '.join(map(repr, ALGORITHMS))}")
        raise ValueError(msg)


def _check_precision(precision):
    """The call's float32 precision: ``precision`` validated, or the process
    setting (:func:`xconvt.get_float32_precision`) where None."""
    return get_float32_precision() if precision is None else check_precision(precision)


def _run(op, kind, params, operands, algorithm, precision):
    """Run the plan chosen for ``op`` (:func:`xconvt._select.plan_for`) on
    batched operands."""
    a = operands[0]
    name = dtype_name(a.dtype)
    plan = _select.plan_for(op, kind, params, name,
                            precision if name in ("float32", "complex64") else "float32",
                            get_memory_budget(), algorithm, operands)
    if kind == "cupy":
        with a.device:
            return plan(*operands)
    return plan(*operands)


def _zeros(kind, like, shape, dtype):
    xp = array_namespace(like)
    if kind == "cupy":
        with like.device:
            return xp.zeros(shape, dtype=dtype)
    return xp.zeros(shape, dtype=dtype)


def _crop(a, crop):
    if not any(crop):
        return a
    return a[..., crop[0]:, crop[1]:, crop[2]:].copy()


def _uncrop(kind, a, crop, shape):
    """``a`` placed at the end of zeros of ``shape`` (the inverse of :func:`_crop`)."""
    if not any(crop):
        return a
    out = _zeros(kind, a, shape, a.dtype)
    out[..., crop[0]:, crop[1]:, crop[2]:] = a
    return out


_INPUT_GRAD = (None, "weight", "grad_output")
_WEIGHT_GRAD = ("input", None, "grad_output")
"""Operand names of the input and weight gradients (:func:`xconvt._interop.call`)."""


def _foreign(*arrays):
    """Whether any array is not a NumPy/CuPy array (then the boundary converts)."""
    native = _interop.NATIVE
    return any(a is not None and type(a) not in native for a in arrays)


def _size(name, size):
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__"):
        msg = f"{name} must be a sequence of 4 or 5 ints (a shape), got {size!r}"
        raise TypeError(msg)
    out = []
    for v in size:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            msg = f"{name} must be a sequence of ints (a shape), got {tuple(size)!r}"
            raise TypeError(msg)
        out.append(int(v))
    return tuple(out)


def _same_kind(names_arrays):
    kind = None
    for name, a in names_arrays:
        if a is None:
            continue
        k = _dispatch._kind_of(name, a)
        if kind is None:
            kind, first = k, name
        elif k != kind:
            msg = f"{first} is a {kind} array but {name} is a {k} array; use one library"
            raise TypeError(msg)
    return kind


def _prepare(kind, arrays):
    """One dtype, one device, native byte order (the checks of ``conv_transpose3d``)."""
    a, b, c = (arrays + (None, None))[:3]
    dtype = _dispatch._check_dtypes(a, b, c)
    _dispatch._check_devices(kind, a, b, c)
    return dtype, tuple(_dispatch._native(v) for v in arrays)


def _check_shape(name, shape, expected, rule):
    if tuple(shape) != tuple(expected):
        msg = f"{name} must have shape {tuple(expected)} ({rule}), got {tuple(shape)}"
        raise ValueError(msg)


@functools.lru_cache(maxsize=1024)
def _conv3d_params_cached(*key):
    return conv3d_params(*key)


def _conv3d_params(input_shape, weight_shape, bias_shape, stride, padding, dilation,
                   groups):
    try:
        plain = tuple(a if isinstance(a, str) else _dispatch._plain(a)
                      for a in (stride, padding, dilation, groups))
    except TypeError:
        return conv3d_params(input_shape, weight_shape, bias_shape, stride, padding,
                             dilation, groups)
    return _conv3d_params_cached(tuple(input_shape), tuple(weight_shape),
                                 None if bias_shape is None else tuple(bias_shape), *plain)


# ------------------------------------------------------------------ conv3d
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", precision=None):
    r"""3-D convolution with PyTorch's semantics, on any array library's arrays.

    The adjoint of :func:`xconvt.conv_transpose3d` with respect to its input:
    ``<conv_transpose3d(x, w), y> = <x, conv3d(y, w)>`` for equal ``stride``,
    ``padding``, ``dilation`` and ``groups`` (and the transposed convolution's
    ``output_padding`` chosen so that the shapes match).

    Parameters
    ----------
    input : array, shape (N, C_in, D, H, W) or (C_in, D, H, W)
        NumPy or CuPy array, or a PyTorch/JAX/array-API array (as for
        :func:`xconvt.conv_transpose3d`: same library out, zero-copy).
    weight : array, shape (C_out, C_in / groups, kD, kH, kW)
        PyTorch's ``Conv3d.weight`` layout (also ``ConvTranspose3d.weight``'s).
    bias : ndarray, shape (C_out,), optional
    stride, dilation : int or tuple of 3 ints
    padding : int, tuple of 3 ints, "valid" or "same"
        ``"same"`` needs stride 1; an odd total padding ``dilation*(k - 1)``
        puts the extra zero on the right, as PyTorch does.
    groups : int
    algorithm : {"auto", "direct", "fft"}
        ``"auto"`` takes the plan of lowest estimated time; the others force
        an algorithm (``ValueError`` with the reasons if none applies).
    precision : {None, "float32", "tf32"}
        As for :func:`xconvt.conv_transpose3d`: float32 inputs compute
        float32-accurate (FMA, or 3xTF32 tensor cores on the GPU) by default,
        TF32 tensor cores with ``"tf32"``.

    Returns
    -------
    out : ndarray, shape (N, C_out, D_out, H_out, W_out) or unbatched
        ``out = (in + 2*padding - dilation*(k - 1) - 1) // stride + 1`` per
        dimension; the input's library, device and dtype.

    Examples
    --------
    >>> import numpy as np, xconvt
    >>> y = np.ones((1, 4, 6, 6, 6), np.float32)
    >>> w = np.ones((2, 4, 3, 3, 3), np.float32)
    >>> xconvt.conv3d(y, w, stride=2, padding=1).shape
    (1, 2, 3, 3, 3)
    """
    if _foreign(input, weight, bias):
        return _interop.call(conv3d, input, weight, bias, stride, padding, dilation, groups,
                             algorithm=algorithm, precision=precision)
    kind = _same_kind((("input", input), ("weight", weight), ("bias", bias)))
    _check_algorithm(algorithm)
    precision = _check_precision(precision)
    params, crop = _conv3d_params(input.shape, weight.shape,
                                  None if bias is None else bias.shape,
                                  stride, padding, dilation, groups)
    dtype, (input, weight, bias) = _prepare(kind, (input, weight, bias))
    y = input[None] if params.unbatched else input
    if params.batch == 0:
        x = _zeros(kind, input, params.input_shape, dtype)
    else:
        x = _run("conv3d", kind, params, (y, weight, bias), algorithm, precision)
    x = _crop(x, crop)
    return x[0] if params.unbatched else x


# --------------------------------------------------------------- gradients
def _transposed_params(input_shape, weight_shape, stride, padding, output_padding,
                       groups, dilation):
    return _dispatch._params(input_shape, weight_shape, None, stride, padding,
                             output_padding, groups, dilation, None)


def conv_transpose3d_input(input_size, weight, grad_output, stride=1, padding=0,
                           output_padding=0, groups=1, dilation=1, *, algorithm="auto"):
    """Gradient of :func:`xconvt.conv_transpose3d` with respect to its input.

    ``conv3d(grad_output, weight, stride, padding, dilation, groups)`` cropped
    to ``input_size``, on the plans of :func:`conv3d`.

    Parameters
    ----------
    input_size : sequence of int
        Shape of the forward input, ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``.
    weight : ndarray, shape (C_in, C_out / groups, kD, kH, kW)
    grad_output : ndarray
        Gradient with respect to the forward output (its shape).
    stride, padding, output_padding, groups, dilation
        The forward's arguments.

    Returns
    -------
    ndarray of shape ``input_size``, ``grad_output``'s library and dtype.
    """
    if _foreign(weight, grad_output):
        return _interop.call(conv_transpose3d_input, input_size, weight, grad_output, stride,
                             padding, output_padding, groups, dilation, names=_INPUT_GRAD,
                             algorithm=algorithm)
    kind = _same_kind((("weight", weight), ("grad_output", grad_output)))
    _check_algorithm(algorithm)
    input_size = _size("input_size", input_size)
    params = _transposed_params(input_size, weight.shape, stride, padding,
                                output_padding, groups, dilation)
    _check_shape("grad_output", grad_output.shape, params.output_shape,
                 "the forward's output shape")
    dtype, (grad_output, weight) = _prepare(kind, (grad_output, weight))
    gy = grad_output[None] if params.unbatched else grad_output
    if params.batch == 0:
        gx = _zeros(kind, gy, params.input_shape, dtype)
    else:
        gx = _run("conv3d", kind, params, (gy, weight, None), algorithm, "float32")
    return gx[0] if params.unbatched else gx


def conv_transpose3d_weight(input, weight_size, grad_output, stride=1, padding=0,
                            output_padding=0, groups=1, dilation=1, *, algorithm="auto"):
    """Gradient of :func:`xconvt.conv_transpose3d` with respect to its weight.

    ``dw[c, o, k] = sum_{n, i} input[n, c, i] * grad_output[n, o, i*s - p + k*d]``
    (channels within a group), summed in a fixed order (deterministic).

    Parameters
    ----------
    input : ndarray
        The forward input, ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``.
    weight_size : sequence of int
        ``(C_in, C_out / groups, kD, kH, kW)``.
    grad_output : ndarray
        Gradient with respect to the forward output.

    Returns
    -------
    ndarray of shape ``weight_size``, ``input``'s library and dtype.
    """
    if _foreign(input, grad_output):
        return _interop.call(conv_transpose3d_weight, input, weight_size, grad_output, stride,
                             padding, output_padding, groups, dilation, names=_WEIGHT_GRAD,
                             algorithm=algorithm)
    kind = _same_kind((("input", input), ("grad_output", grad_output)))
    _check_algorithm(algorithm)
    weight_size = _size("weight_size", weight_size)
    params = _transposed_params(input.shape, weight_size, stride, padding,
                                output_padding, groups, dilation)
    _check_shape("grad_output", grad_output.shape, params.output_shape,
                 "the forward's output shape")
    dtype, (input, grad_output) = _prepare(kind, (input, grad_output))
    if params.batch == 0:
        return _zeros(kind, input, params.weight_shape, dtype)
    x = input[None] if params.unbatched else input
    gy = grad_output[None] if params.unbatched else grad_output
    return _run("weight_grad", kind, params, (x, gy), algorithm, "float32")


def conv3d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1,
                 groups=1, *, algorithm="auto"):
    """Gradient of :func:`conv3d` with respect to its input (``torch.nn.grad.conv3d_input``).

    The transposed convolution of ``grad_output`` by ``weight`` with the
    ``output_padding`` that gives ``input_size``.

    Parameters
    ----------
    input_size : sequence of int
        Shape of the forward input, ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``.
    weight : ndarray, shape (C_out, C_in / groups, kD, kH, kW)
    grad_output : ndarray
        Gradient with respect to the forward output (its shape).

    Returns
    -------
    ndarray of shape ``input_size``.
    """
    from ._dispatch import conv_transpose3d

    if _foreign(weight, grad_output):
        return _interop.call(conv3d_input, input_size, weight, grad_output, stride, padding,
                             dilation, groups, names=_INPUT_GRAD, algorithm=algorithm)
    kind = _same_kind((("weight", weight), ("grad_output", grad_output)))
    input_size = _size("input_size", input_size)
    params, crop = _conv3d_params(input_size, weight.shape, None, stride, padding,
                                  dilation, groups)
    expected = _crop_shape(params.input_shape, crop)
    _check_shape("grad_output", grad_output.shape,
                 expected[1:] if params.unbatched else expected,
                 "the forward's output shape")
    _prepare(kind, (grad_output, weight))
    gy = grad_output[None] if params.unbatched else grad_output
    gy = _uncrop(kind, gy, crop, params.input_shape)
    gx = conv_transpose3d(gy, weight, None, params.stride, params.padding,
                          params.output_padding, params.groups, params.dilation,
                          algorithm=algorithm)
    return gx[0] if params.unbatched else gx


def conv3d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1,
                  groups=1, *, algorithm="auto"):
    """Gradient of :func:`conv3d` with respect to its weight (``torch.nn.grad.conv3d_weight``).

    ``dw[o, c, k] = sum_{n, i} grad_output[n, o, i] * input[n, c, i*s - p + k*d]``
    (channels within a group): the weight gradient of the transposed
    convolution that conv3d is the adjoint of, with the roles of the two
    volumes exchanged.

    Parameters
    ----------
    input : ndarray
        The forward input, ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``.
    weight_size : sequence of int
        ``(C_out, C_in / groups, kD, kH, kW)``.
    grad_output : ndarray
        Gradient with respect to the forward output (its shape).
    stride, padding, dilation, groups
        The forward's arguments (``padding`` may be ``"same"`` or ``"valid"``).

    Returns
    -------
    ndarray of shape ``weight_size``, summed over batch and space in a fixed order.
    """
    if _foreign(input, grad_output):
        return _interop.call(conv3d_weight, input, weight_size, grad_output, stride, padding,
                             dilation, groups, names=_WEIGHT_GRAD, algorithm=algorithm)
    kind = _same_kind((("input", input), ("grad_output", grad_output)))
    _check_algorithm(algorithm)
    weight_size = _size("weight_size", weight_size)
    params, crop = _conv3d_params(input.shape, weight_size, None, stride, padding,
                                  dilation, groups)
    expected = _crop_shape(params.input_shape, crop)
    _check_shape("grad_output", grad_output.shape,
                 expected[1:] if params.unbatched else expected,
                 "the forward's output shape")
    dtype, (input, grad_output) = _prepare(kind, (input, grad_output))
    if params.batch == 0:
        return _zeros(kind, input, params.weight_shape, dtype)
    y = input[None] if params.unbatched else input
    gx = grad_output[None] if params.unbatched else grad_output
    gx = _uncrop(kind, gx, crop, params.input_shape)
    return _run("weight_grad", kind, params, (gx, y), algorithm, "float32")


def _crop_shape(shape, crop):
    return shape[:2] + tuple(v - c for v, c in zip(shape[2:], crop))


def bias_grad(grad_output):
    """Gradient with respect to the bias: ``grad_output`` summed over batch and space.

    ``grad_output`` is ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``; the
    result is ``(C,)`` in its dtype (float16 summed in float32).
    """
    if _foreign(grad_output):
        return _interop.call(bias_grad, grad_output, names=("grad_output",))
    kind = _dispatch._kind_of("grad_output", grad_output)
    if grad_output.ndim not in (4, 5):
        msg = ("grad_output must be 4-D (C, D, H, W) or 5-D (N, C, D, H, W), got "
               f"shape {tuple(grad_output.shape)}")
        raise ValueError(msg)
    xp = array_namespace(grad_output)
    axes = (0, 2, 3, 4) if grad_output.ndim == 5 else (1, 2, 3)
    wide = np.float32 if grad_output.dtype == np.float16 else None
    if kind == "cupy":
        with grad_output.device:
            return xp.sum(grad_output, axis=axes, dtype=wide).astype(grad_output.dtype)
    return xp.sum(grad_output, axis=axes, dtype=wide).astype(grad_output.dtype)
