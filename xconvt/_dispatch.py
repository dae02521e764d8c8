"""The public functional API: find the array library, validate once, take the
plan chosen for the problem (:mod:`xconvt._select`), run it, return the
caller's array type."""

from __future__ import annotations

import functools

import numpy as np
from array_api_compat import array_namespace, is_cupy_array, is_dask_array, is_numpy_array

from . import _interop, _select, backends
from ._config import _budget, check_precision, get_float32_precision, get_memory_budget
from ._config import _precision as _precision_var
from ._params import ConvParams, dtype_name

__all__ = ["conv_transpose3d", "explain", "output_shape"]

SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128")
AUTO_NAMES = _select.AUTO_NAMES
PRECISE_DTYPES = ("float32", "complex64")  # dtypes the float32 precision applies to


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


def _plain_arg(v):
    """``v`` when it is an int, a tuple of ints as itself, a list of ints as a
    tuple; else None (the call is not cached).  Exact types only: ``1.0``,
    ``True`` and ``numpy.int64(1)`` compare and hash equal to ``1`` but are
    validated differently, so they never share an entry with it."""
    t = type(v)
    if t is int:
        return v
    if t is tuple or t is list:
        for e in v:
            if type(e) is not int:
                return None
        return tuple(v)
    return None


def _plain(v):
    """:func:`_plain_arg`, raising ``TypeError`` where ``v`` is not plain."""
    p = _plain_arg(v)
    if p is None:
        raise TypeError
    return p


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


def _precision(precision, dtype):
    """The float32 precision of a call of ``dtype`` (``"float32"`` for dtypes
    it does not apply to)."""
    precision = get_float32_precision() if precision is None else check_precision(precision)
    return precision if dtype_name(dtype) in PRECISE_DTYPES else "float32"


_CALLS = {}
"""The call cache: :func:`_call_key` of a call that validated and planned
-> ``(plans, unbatched, plan)``.  ``plans`` is the :data:`xconvt._select._PLANS`
dictionary the plan was chosen under: an entry is used only while that is
still the planner cache (code and tests that replace it to plan afresh get a
fresh choice here too)."""

_CALLS_MAX = 4096


def _plain_geometry(args):
    """:func:`_plain_arg` of each geometry argument (ints or 3 ints each: other
    lengths fail validation and are not cached), or None; unrolled, as a call
    with four tuple arguments would otherwise spend microseconds here."""
    out = []
    for v in args:
        t = type(v)
        if t is int:
            out.append(v)
        elif ((t is tuple or t is list) and len(v) == 3 and type(v[0]) is int
              and type(v[1]) is int and type(v[2]) is int):
            out.append(v if t is tuple else tuple(v))
        else:
            return None
    return tuple(out)


def _call_key(input, weight, bias, stride, padding, output_padding, groups, dilation,
              output_size, algorithm, precision):
    """The call cache's key, or None where an argument is not plain (see
    :func:`_plain_arg`; ``algorithm`` and ``precision`` exact ``str``).

    It holds everything validation and the plan choice read: the array type,
    shapes and dtypes of the three operands (byte order is part of a dtype),
    their CUDA devices, the geometry arguments, ``algorithm``, ``precision``
    and the process settings in effect (memory budget, float32 precision).
    Strides and contiguity are not in it: neither validation nor the choice
    reads them, and the plan takes the arrays as they are.
    """
    geometry = (stride, padding, output_padding, groups, dilation)
    if (type(stride) is not int or type(padding) is not int or type(output_padding) is not int
            or type(groups) is not int or type(dilation) is not int):
        geometry = _plain_geometry(geometry)
        if geometry is None:
            return None
    if output_size is not None:
        output_size = _plain_arg(output_size)
        if output_size is None:
            return None
    if type(algorithm) is not str or (precision is not None and type(precision) is not str):
        return None
    kind = type(input)
    if kind is np.ndarray:
        devices = None
    else:  # CuPy: every operand's device
        devices = (input.device.id, weight.device.id,
                   None if bias is None else bias.device.id)
    return (kind, input.shape, input.dtype, weight.shape, weight.dtype,
            None if bias is None else (bias.shape, bias.dtype), geometry, output_size,
            algorithm, precision, _budget.get(), _precision_var.get(), devices)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, output_size=None, algorithm="auto",
                     precision=None):
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
        ``"auto"`` runs the applicable plan with the lowest estimate (see
        :func:`explain`); ``"measure"`` times the applicable plans once per
        problem and keeps the fastest; ``"direct"``/``"fft"`` choose among
        that algorithm's plans only (``ValueError`` naming each plan's
        reason where none applies).
    precision : {None, "float32", "tf32"}
        For float32 and complex64 inputs: ``"float32"`` computes as
        accurately as float32 arithmetic, ``"tf32"`` allows TF32 tensor
        cores; None takes :func:`xconvt.get_float32_precision`.

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
    kind = type(input)
    if kind in _interop.NATIVE and type(weight) is kind and (bias is None or type(bias) is kind):
        # the call cache: a call like one that validated before is planned already
        key = _call_key(input, weight, bias, stride, padding, output_padding, groups,
                        dilation, output_size, algorithm, precision)
        hit = _CALLS.get(key)
        if hit is not None and hit[0] is _select._PLANS:
            if hit[1]:  # unbatched
                return hit[2](input[None], weight, bias)[0]
            return hit[2](input, weight, bias)
        return _conv_transpose3d(input, weight, bias, stride, padding, output_padding, groups,
                                 dilation, output_size, algorithm, precision, key)
    fast = _interop.FAST.get(kind)
    if fast is not None:  # PyTorch CUDA tensors (xconvt._interop._Torch.fast)
        out = fast(conv_transpose3d, input, weight, bias,
                   (stride, padding, output_padding, groups, dilation),
                   {"output_size": output_size, "algorithm": algorithm, "precision": precision})
        if out is not NotImplemented:
            return out
    native = _interop.NATIVE
    if type(input) not in native or type(weight) not in native or (
            bias is not None and type(bias) not in native):
        if is_dask_array(input):  # a lazy result, block by block (xconvt/dask.py)
            from . import dask

            return dask.conv_transpose3d(
                input, weight, bias, stride, padding, output_padding, groups, dilation,
                output_size=output_size, algorithm=algorithm, precision=precision,
            )
        return _interop.call(conv_transpose3d, input, weight, bias, stride, padding,
                             output_padding, groups, dilation, output_size=output_size,
                             algorithm=algorithm, precision=precision)
    return _conv_transpose3d(input, weight, bias, stride, padding, output_padding, groups,
                             dilation, output_size, algorithm, precision, None)


def _conv_transpose3d(input, weight, bias, stride, padding, output_padding, groups, dilation,
                      output_size, algorithm, precision, key):
    """:func:`conv_transpose3d` on NumPy/CuPy operands: validate, plan, run; a
    call that validates and runs a plan is entered in :data:`_CALLS` under
    ``key`` (None: not cached)."""
    kind = _check_arrays(input, weight, bias)
    _check_algorithm(kind, algorithm)
    if precision is not None:
        check_precision(precision)
    params = _params(
        input.shape, weight.shape, None if bias is None else bias.shape,
        stride, padding, output_padding, groups, dilation, output_size,
    )
    dtype = _check_dtypes(input, weight, bias)
    _check_devices(kind, input, weight, bias)
    # a cache hit hands the operands to the plan as they are: native byte order only
    cacheable = dtype is input.dtype and weight.dtype.isnative and (
        bias is None or bias.dtype.isnative)
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
        plans = _select._PLANS
        plan = _select.plan_for("conv_transpose3d", kind, params, dtype_name(dtype),
                                _precision(precision, dtype), get_memory_budget(), algorithm,
                                (x, weight, bias))
        out = plan(x, weight, bias)
        if key is not None and cacheable:
            if len(_CALLS) >= _CALLS_MAX:
                _CALLS.clear()
            _CALLS[key] = (plans, params.unbatched, plan)
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


_OPERATIONS = {"forward": "conv_transpose3d", "input_grad": "conv3d",
               "weight_grad": "weight_grad"}


def explain(input_shape, weight_shape, bias=False, stride=1, padding=0, output_padding=0,
            groups=1, dilation=1, *, output_size=None, dtype="float32", device="cpu",
            algorithm="auto", precision=None, memory_budget=None, operation="forward"):
    """How :func:`conv_transpose3d` would compute a call, and why.

    Asks every planner of the device's array library for a plan and returns
    the candidates with their estimates, the planners that do not apply with
    their reasons, and the choice of ``algorithm``; nothing is computed or
    allocated, and no GPU is needed for a preset device.

    Parameters
    ----------
    input_shape, weight_shape : tuple of int
        As the arrays' shapes (PyTorch's layouts); validated like the call.
    bias : bool
        Whether the call has a bias.
    stride, padding, output_padding, groups, dilation, output_size
        As for :func:`conv_transpose3d`.
    dtype : str or dtype
        The arrays' dtype.
    device : str or Device
        ``"cpu"`` (NumPy), ``"cuda"`` / ``"cuda:N"`` (CuPy, limits read from
        that device), or a preset's limits without a GPU: ``"h100"``,
        ``"h200"``, ``"a100"``, ``"l4"``.
    algorithm : {"auto", "direct", "fft"}
        The choice to explain.
    precision : {None, "float32", "tf32"}
        As for :func:`conv_transpose3d`.
    memory_budget : int, optional
        Workspace bytes (default :func:`xconvt.get_memory_budget`).
    operation : {"forward", "input_grad", "weight_grad"}
        Which computation of the layer the shapes describe: the transposed
        convolution, its input gradient (a conv3d of the output gradient, as
        :func:`xconvt.grad.conv_transpose3d_input` runs it) or its weight
        gradient (:func:`xconvt.grad.conv_transpose3d_weight`).

    Returns
    -------
    Explanation
        ``.candidates`` (plans, cheapest first: ``name``, ``algorithm``,
        ``estimate`` in seconds, ``workspace`` in bytes, ``detail``),
        ``.rejected`` (``(planner, algorithm, reason)``), ``.choice``;
        ``print()`` shows a table.

    Examples
    --------
    >>> import xconvt
    >>> e = xconvt.explain((1, 64, 16, 16, 16), (64, 64, 21, 21, 21), padding=10,
    ...                    device="h100")
    >>> e.choice.algorithm
    'fft'
    >>> [why for name, _, why in e.rejected if name == "cuda.fused"]  # doctest: +ELLIPSIS
    ['a block needs ... bytes of shared memory ...']
    """
    from ._config import _check_budget
    from ._params import dtype_name as _name
    from ._plan import Problem

    if not isinstance(bias, bool):
        msg = f"bias must be True or False (whether the call has a bias), got {bias!r}"
        raise TypeError(msg)
    if algorithm not in ("auto", "direct", "fft"):
        msg = f"algorithm must be 'auto', 'direct' or 'fft', got algorithm={algorithm!r}"
        raise ValueError(msg)
    if not isinstance(operation, str) or operation not in _OPERATIONS:
        msg = (f"operation must be 'forward', 'input_grad' or 'weight_grad', got "
               f"operation={operation!r}")
        raise ValueError(msg)
    dev = _select.resolve_device(device)
    try:
        name = "bfloat16" if isinstance(dtype, str) and dtype == "bfloat16" else _name(
            np.dtype(dtype))
    except TypeError:
        msg = f"dtype must be a dtype or its name, got dtype={dtype!r}"
        raise TypeError(msg) from None
    if name not in SUPPORTED_DTYPES:
        msg = f"dtype {name} is not supported; use one of {', '.join(SUPPORTED_DTYPES)}"
        raise TypeError(msg)
    params = ConvParams.from_shapes(
        input_shape, weight_shape, (int(weight_shape[1]) * groups,) if bias else None,
        stride, padding, output_padding, groups, dilation, output_size)
    budget = get_memory_budget() if memory_budget is None else _check_budget(memory_budget)
    prec = get_float32_precision() if precision is None else check_precision(precision)
    op = _OPERATIONS[operation]
    if op != "conv_transpose3d":  # the gradients take no bias (the layer's own is summed)
        from dataclasses import replace

        params = replace(params, has_bias=False)
    problem = Problem(op, params, name, dev,
                      prec if name in PRECISE_DTYPES else "float32", budget)
    return _select.explain_problem(problem, algorithm)
