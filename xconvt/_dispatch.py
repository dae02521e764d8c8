"""The public functional API: find the array library, validate, pick and run a backend."""

from __future__ import annotations

import functools

import numpy as np
from array_api_compat import array_namespace, is_cupy_array, is_dask_array, is_numpy_array

from . import _cost, backends
from ._params import ConvParams, dtype_name

__all__ = ["conv_transpose3d", "output_shape"]

SUPPORTED_DTYPES = ("float16", "float32", "float64", "complex64", "complex128")
AUTO_NAMES = ("auto", "measure")


_KINDS = {np.ndarray: "numpy"}
"""Exact array types seen before -> kind (``cupy.ndarray`` is added on first use)."""


def _kind_of(name, a):
    """``"numpy"`` or ``"cupy"`` for a supported array, else ``TypeError``."""
    kind = _KINDS.get(type(a))
    if kind is not None:
        return kind
    if isinstance(a, np.ndarray) and is_numpy_array(a):
        return "numpy"
    if is_cupy_array(a):
        if type(a).__name__ == "ndarray":
            _KINDS[type(a)] = "cupy"
        return "cupy"
    msg = (
        f"{name} must be a numpy.ndarray or a cupy.ndarray, got {type(a).__module__}."
        f"{type(a).__qualname__}; convert it first (for example numpy.asarray, or "
        "cupy.from_dlpack for GPU tensors of other libraries)"
    )
    raise TypeError(msg)


def _check_arrays(input, weight, bias):
    kind = _kind_of("input", input)
    for name, a in (("weight", weight), ("bias", bias)):
        if a is None:
            continue
        other = _kind_of(name, a)
        if other != kind:
            msg = f"input is a {kind} array but {name} is a {other} array; use one library"
            raise TypeError(msg)
    return kind


def _plain(v):
    """An int or a tuple/list of ints, exactly (no bools, floats or objects)."""
    if type(v) is int:
        return v
    if type(v) in (tuple, list) and all(type(e) is int for e in v):
        return tuple(v)
    raise TypeError


@functools.lru_cache(maxsize=1024)
def _params_cached(*key):
    return ConvParams.from_shapes(*key)


def _params(input_shape, weight_shape, bias_shape, *args):
    """:meth:`ConvParams.from_shapes`, cached where every argument is a plain
    int or tuple/list of ints (validating a call costs tens of microseconds,
    which small GPU calls notice); anything else is validated afresh."""
    try:
        plain = tuple(None if a is None else _plain(a) for a in args)
    except TypeError:
        return ConvParams.from_shapes(input_shape, weight_shape, bias_shape, *args)
    return _params_cached(tuple(input_shape), tuple(weight_shape),
                          None if bias_shape is None else tuple(bias_shape), *plain)


def _check_dtypes(input, weight, bias):
    """The shared dtype; byte order is not part of it (non-native arrays are
    converted by :func:`_native`)."""
    dtype = input.dtype
    name = dtype_name(dtype)
    if name not in SUPPORTED_DTYPES:
        msg = (
            f"input dtype {name} is not supported; use one of "
            f"{', '.join(SUPPORTED_DTYPES)}"
        )
        raise TypeError(msg)
    for arg, a in (("weight", weight), ("bias", bias)):
        if a is not None and dtype_name(a.dtype) != name:
            msg = (
                f"{arg} dtype {dtype_name(a.dtype)} differs from input dtype {name}; "
                "input, weight and bias must share one dtype"
            )
            raise TypeError(msg)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _native(a):
    """``a`` in native byte order (a copy only where it is not)."""
    if a is None or a.dtype.isnative:
        return a
    return a.astype(a.dtype.newbyteorder("="))


def _check_devices(kind, input, weight, bias):
    if kind != "cupy":
        return
    dev = input.device
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None and a.device != dev:
            msg = (
                f"input is on {dev} but {name} is on {a.device}; "
                "input, weight and bias must be on one device"
            )
            raise ValueError(msg)


def _check_algorithm(kind, algorithm):
    if isinstance(algorithm, str) and algorithm in _algorithm_names(kind):
        return
    names = _algorithm_names(kind)
    msg = (
        f"algorithm={algorithm!r} is not available for {kind} arrays; "
        f"choose one of {', '.join(map(repr, names))}"
    )
    raise ValueError(msg)


@functools.lru_cache(maxsize=None)
def _algorithm_names(kind):
    return AUTO_NAMES + tuple(backends.algorithms(kind))


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, output_size=None, algorithm="auto"):
    r"""3-D transposed convolution with PyTorch's semantics, on NumPy or CuPy arrays.

    Parameters
    ----------
    input : ndarray, shape (N, C_in, D, H, W) or (C_in, D, H, W)
        NumPy array (computed on the CPU) or CuPy array (computed on its GPU).
    weight : ndarray, shape (C_in, C_out / groups, kD, kH, kW)
        PyTorch's ``ConvTranspose3d.weight`` layout.
    bias : ndarray, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or tuple of 3 ints
        As in :func:`torch.nn.functional.conv_transpose3d`.  ``output_padding``
        must be smaller than ``stride`` or ``dilation`` in each dimension.
    groups : int
        ``C_in`` and ``C_out`` are split into ``groups`` independent groups.
    output_size : sequence of int, optional
        Spatial output size (3 values, or the full 5 / 4 values whose leading
        entries are ignored); sets ``output_padding`` exactly as
        ``torch.nn.ConvTranspose3d.forward(x, output_size)`` does, overriding
        the ``output_padding`` argument.
    algorithm : {"auto", "measure", "direct", "fft"}
        ``"auto"`` chooses by a cost model; ``"measure"`` times the candidates
        once per configuration and caches the winner; others force a backend.

    Returns
    -------
    out : ndarray, shape (N, C_out, D_out, H_out, W_out) or (C_out, D_out, H_out, W_out)
        Same array library, device and dtype as ``input``, where per dimension
        ``out = (in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.

    Notes
    -----
    The result is ``out[n, g*Cg_out + o, i*s - p + k*d] += x[n, g*Cg_in + c, i] *
    weight[g*Cg_in + c, o, k]`` summed over channels ``c`` of group ``g``, input
    positions ``i`` and taps ``k``, plus ``bias[g*Cg_out + o]``.

    Examples
    --------
    >>> import numpy as np, xconvt
    >>> x = np.ones((1, 2, 3, 3, 3), np.float32)
    >>> w = np.ones((2, 4, 2, 2, 2), np.float32)
    >>> xconvt.conv_transpose3d(x, w, stride=2).shape
    (1, 4, 6, 6, 6)
    """
    if is_dask_array(input):  # a lazy result, block by block (xconvt/dask.py)
        from . import dask

        return dask.conv_transpose3d(
            input, weight, bias, stride, padding, output_padding, groups, dilation,
            output_size=output_size, algorithm=algorithm,
        )
    kind = _check_arrays(input, weight, bias)
    _check_algorithm(kind, algorithm)
    params = _params(
        input.shape, weight.shape, None if bias is None else bias.shape,
        stride, padding, output_padding, groups, dilation, output_size,
    )
    dtype = _check_dtypes(input, weight, bias)
    _check_devices(kind, input, weight, bias)
    input, weight, bias = _native(input), _native(weight), _native(bias)
    x = input[None] if params.unbatched else input

    if params.batch == 0:
        xp = array_namespace(input)
        if kind == "cupy":
            with input.device:
                out = xp.zeros(params.batched_output_shape, dtype=dtype)
        else:
            out = xp.zeros(params.batched_output_shape, dtype=dtype)
    else:
        if algorithm == "auto":
            algorithm = _cost.choose(kind, params, dtype)
        elif algorithm == "measure":
            algorithm = _cost.measure(kind, params, x, weight, bias)
        out = backends.get(kind, algorithm)(params, x, weight, bias)
    return out[0] if params.unbatched else out


def output_shape(input_shape, weight_shape, stride=1, padding=0, output_padding=0,
                 groups=1, dilation=1):
    """Shape of :func:`conv_transpose3d`'s result, validating like it does.

    Examples
    --------
    >>> import xconvt
    >>> xconvt.output_shape((20, 16, 10, 50, 100), (16, 33, 3, 5, 2),
    ...                     stride=(2, 1, 1), padding=(0, 4, 2))
    (20, 33, 21, 46, 97)
    """
    return ConvParams.from_shapes(
        input_shape, weight_shape, None, stride, padding, output_padding, groups, dilation
    ).output_shape
