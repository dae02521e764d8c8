"""PyTorch: xconvt's convolutions as PyTorch operators, with autograd, and drop-in modules.

``import xconvt.torch`` registers four operators in the ``xconvt`` namespace with
``torch.library.custom_op``:

==============================================  ==========================================
``torch.ops.xconvt.conv_transpose3d``           :func:`xconvt.conv_transpose3d`
``torch.ops.xconvt.conv3d``                     :func:`xconvt.conv3d` (integer padding)
``torch.ops.xconvt.conv_transpose3d_weight``    :func:`xconvt.grad.conv_transpose3d_weight`
``torch.ops.xconvt.conv3d_weight``              :func:`xconvt.grad.conv3d_weight`
==============================================  ==========================================

each with a fake (meta) kernel that gives the result's shape, so that
``torch.compile(fullgraph=True)``, ``torch.export`` and ``torch.library.opcheck``
see them, and an autograd formula (``register_autograd``) written with the same
operators: the input gradient of one convolution is the other convolution, the
weight gradient is its own operator, the bias gradient a ``sum`` over batch and
space.  The weight-gradient operators are differentiable too (they are bilinear),
so second derivatives work.  Every operator runs on the tensors' device (CPU:
NumPy; CUDA: CuPy on PyTorch's current stream, zero-copy, see
:mod:`xconvt._interop`).

:func:`conv_transpose3d` and :func:`conv3d` take ``torch.nn.functional``'s
arguments (``output_size``; ``padding="same"``/``"valid"``).  Under
``torch.compile``, export and fake tensors they call the operators.  Eager calls
skip the dispatcher (host time: ``bench overhead``): when no tensor needs a
gradient they call :func:`xconvt.conv_transpose3d`/:func:`xconvt.conv3d`
directly, otherwise the operator's Python function inside a
``torch.autograd.Function`` with the same backward formulas (whose own kernel calls
take the same route, so ``create_graph=True`` builds a differentiable graph).

:class:`ConvTranspose3d` and :class:`Conv3d` subclass
``torch.nn.ConvTranspose3d``/``torch.nn.Conv3d``: same constructor, parameters,
initialization, state dict keys and ``repr``, and ``isinstance`` checks hold;
only the computation is xconvt's.

Examples
--------
Train a small decoder (the layers are drop-ins for PyTorch's):

>>> import torch, xconvt.torch as xt
>>> _ = torch.manual_seed(0)
>>> model = torch.nn.Sequential(
...     xt.ConvTranspose3d(4, 8, 3, stride=2, padding=1, output_padding=1),
...     torch.nn.ReLU(),
...     xt.Conv3d(8, 1, 3, padding="same"))
>>> opt = torch.optim.SGD(model.parameters(), lr=0.01)
>>> x, target = torch.randn(2, 4, 6, 6, 6), torch.randn(2, 1, 12, 12, 12)
>>> for step in range(3):
...     opt.zero_grad()
...     loss = torch.nn.functional.mse_loss(model(x), target)
...     loss.backward()
...     opt.step()
>>> compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
>>> compiled(x).shape
torch.Size([2, 1, 12, 12, 12])

A model's own PyTorch layers can be swapped in place, weights kept:

>>> layer = torch.nn.ConvTranspose3d(4, 8, 3, stride=2)
>>> mine = xt.ConvTranspose3d(4, 8, 3, stride=2)
>>> mine.load_state_dict(layer.state_dict())
<All keys matched successfully>
"""

from typing import Optional

import torch
from torch import Tensor

from . import _grad, _params
from ._dispatch import conv_transpose3d as _xconv_transpose3d

__all__ = ["Conv3d", "ConvTranspose3d", "conv3d", "conv_transpose3d"]

def _grad_algorithm(algorithm):
    """The gradients' ``algorithm`` for a forward's (they have no ``"measure"``)."""
    return algorithm if algorithm in _grad.ALGORITHMS else "auto"


# ------------------------------------------------------------------------------ shapes
def _concrete(*shapes):
    return all(type(v) is int for s in shapes for v in s)


def _transposed_shape(x, w, stride, padding, output_padding, groups, dilation):
    """conv_transpose3d's result shape (SymInts allowed; validated where concrete)."""
    if _concrete(x.shape, w.shape):
        from ._dispatch import output_shape

        return list(output_shape(tuple(x.shape), tuple(w.shape), stride, padding,
                                 output_padding, groups, dilation))
    return [*x.shape[:-4], w.shape[1] * groups] + [
        (i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, s, p, op, d, k in zip(
            x.shape[-3:], stride, padding, output_padding, dilation, w.shape[2:])]


def _direct_shape(x, w, stride, padding, dilation, groups):
    """conv3d's result shape (SymInts allowed; validated where concrete)."""
    if _concrete(x.shape, w.shape):
        params, crop = _params.conv3d_params(tuple(x.shape), tuple(w.shape), None, stride,
                                             padding, dilation, groups)
        shape = _grad._crop_shape(params.input_shape, crop)
        return list(shape[1:] if params.unbatched else shape)
    return [*x.shape[:-4], w.shape[0]] + [
        (i + 2 * p - d * (k - 1) - 1) // s + 1 for i, s, p, d, k in zip(
            x.shape[-3:], stride, padding, dilation, w.shape[2:])]


def _direct_output_padding(x_shape, w_shape, stride, padding, dilation):
    """The ``output_padding`` whose transposed convolution has conv3d input size ``x_shape``."""
    return [(i + 2 * p - d * (k - 1) - 1) % s for i, s, p, d, k in zip(
        x_shape[-3:], stride, padding, dilation, w_shape[2:])]


def _conj(t):
    """``t``'s complex conjugate (``t`` itself when real): PyTorch's gradients of
    complex functions are adjoints, the transposes with the saved operands conjugated."""
    return t.conj().resolve_conj() if t.is_complex() else t


def _bias_sum(g):
    return g.sum((0, 2, 3, 4) if g.dim() == 5 else (1, 2, 3))


# --------------------------------------------------------------------------- operators
def _conv_transpose3d_impl(input: Tensor, weight: Tensor, bias: Optional[Tensor],
                      stride: list[int], padding: list[int], output_padding: list[int],
                      groups: int, dilation: list[int], algorithm: str,
                      precision: Optional[str]) -> Tensor:
    return _xconv_transpose3d(input, weight, bias, stride, padding, output_padding, groups,
                              dilation, algorithm=algorithm, precision=precision)


def _conv3d_impl(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int],
            padding: list[int], dilation: list[int], groups: int, algorithm: str,
            precision: Optional[str]) -> Tensor:
    return _grad.conv3d(input, weight, bias, stride, padding, dilation, groups,
                        algorithm=algorithm, precision=precision)


def _conv_transpose3d_weight_impl(input: Tensor, grad_output: Tensor, weight_size: list[int],
                             stride: list[int], padding: list[int],
                             output_padding: list[int], groups: int, dilation: list[int],
                             algorithm: str) -> Tensor:
    return _grad.conv_transpose3d_weight(input, weight_size, grad_output, stride, padding,
                                         output_padding, groups, dilation,
                                         algorithm=_grad_algorithm(algorithm))


def _conv3d_weight_impl(input: Tensor, grad_output: Tensor, weight_size: list[int],
                   stride: list[int], padding: list[int], dilation: list[int], groups: int,
                   algorithm: str) -> Tensor:
    return _grad.conv3d_weight(input, weight_size, grad_output, stride, padding, dilation,
                               groups, algorithm=_grad_algorithm(algorithm))


_IMPLS = {}
"""Operator -> its Python function (what the operator runs)."""


def _register(name, impl):
    op = torch.library.custom_op(f"xconvt::{name}", mutates_args=())(impl)
    _IMPLS[op] = impl
    return op


_conv_transpose3d = _register("conv_transpose3d", _conv_transpose3d_impl)
_conv3d = _register("conv3d", _conv3d_impl)
_conv_transpose3d_weight = _register("conv_transpose3d_weight", _conv_transpose3d_weight_impl)
_conv3d_weight = _register("conv3d_weight", _conv3d_weight_impl)


@_conv_transpose3d.register_fake
def _(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm,
      precision):
    return input.new_empty(_transposed_shape(input, weight, stride, padding, output_padding,
                                             groups, dilation))


@_conv3d.register_fake
def _(input, weight, bias, stride, padding, dilation, groups, algorithm, precision):
    return input.new_empty(_direct_shape(input, weight, stride, padding, dilation, groups))


@_conv_transpose3d_weight.register_fake
def _(input, grad_output, weight_size, stride, padding, output_padding, groups, dilation,
      algorithm):
    return input.new_empty(weight_size)


@_conv3d_weight.register_fake
def _(input, grad_output, weight_size, stride, padding, dilation, groups, algorithm):
    return input.new_empty(weight_size)


# ---------------------------------------------------------------------------- autograd
# T is conv_transpose3d(x, w) with geometry (stride, padding, output_padding, groups,
# dilation); C is conv3d(x, w) with (stride, padding, dilation, groups).  Their
# adjoints, written with the operators above:
#   T's input gradient:  C(g, w), cut to x's size (larger where output_padding >= stride)
#   C's input gradient:  T(g, w) with the output_padding that gives x's size
# (for complex tensors with the saved operands conjugated, :func:`_conj`).
def _transposed_input_grad(g, w, x_shape, stride, padding, groups, dilation, algorithm,
                           precision):
    gx = _apply(_conv3d, g, w, None, stride, padding, dilation, groups,
                _grad_algorithm(algorithm), precision)
    if tuple(gx.shape[-3:]) != tuple(x_shape[-3:]):
        gx = gx[..., :x_shape[-3], :x_shape[-2], :x_shape[-1]]
    return gx


def _direct_input_grad(g, w, x_shape, stride, padding, groups, dilation, algorithm,
                       precision):
    op = _direct_output_padding(x_shape, w.shape, stride, padding, dilation)
    return _apply(_conv_transpose3d, g, w, None, stride, padding, op, groups, dilation,
                  algorithm, precision)


def _setup_conv(ctx, inputs, output):
    x, w, b = inputs[:3]
    ctx.save_for_backward(x, w)
    ctx.args = inputs[3:]
    ctx.has_bias = b is not None


def _backward_transposed(ctx, g):
    x, w = map(_conj, ctx.saved_tensors)
    stride, padding, output_padding, groups, dilation, algorithm, precision = ctx.args
    g = g.contiguous()  # sum().backward() hands an expanded (zero-stride) gradient
    need = ctx.needs_input_grad
    gx = gw = gb = None
    if need[0]:
        gx = _transposed_input_grad(g, w, x.shape, stride, padding, groups, dilation,
                                    algorithm, precision)
    if need[1]:
        gw = _apply(_conv_transpose3d_weight, x, g, list(w.shape), stride, padding,
                    output_padding, groups, dilation, algorithm)
    if ctx.has_bias and need[2]:
        gb = _bias_sum(g)
    return (gx, gw, gb) + (None,) * 7


def _backward_direct(ctx, g):
    x, w = map(_conj, ctx.saved_tensors)
    stride, padding, dilation, groups, algorithm, precision = ctx.args
    g = g.contiguous()
    need = ctx.needs_input_grad
    gx = gw = gb = None
    if need[0]:
        gx = _direct_input_grad(g, w, x.shape, stride, padding, groups, dilation, algorithm,
                                precision)
    if need[1]:
        gw = _apply(_conv3d_weight, x, g, list(w.shape), stride, padding, dilation, groups,
                    algorithm)
    if ctx.has_bias and need[2]:
        gb = _bias_sum(g)
    return (gx, gw, gb) + (None,) * 6


def _setup_weight(ctx, inputs, output):
    x, gy = inputs[:2]
    ctx.save_for_backward(x, gy)
    ctx.args = inputs[3:]


# The weight gradients dw = W(x, gy) are bilinear; with a cotangent G of dw's shape,
# d/dx is the input gradient of the convolution with weight G and d/dgy the
# convolution of x by G.
def _backward_transposed_weight(ctx, G):
    x, gy = map(_conj, ctx.saved_tensors)
    stride, padding, output_padding, groups, dilation, algorithm = ctx.args
    G = G.contiguous()
    need = ctx.needs_input_grad
    dx = dgy = None
    if need[0]:
        dx = _transposed_input_grad(gy, G, x.shape, stride, padding, groups, dilation,
                                    algorithm, None)
    if need[1]:
        dgy = _apply(_conv_transpose3d, x, G, None, stride, padding, output_padding, groups,
                     dilation, algorithm, None)
    return (dx, dgy) + (None,) * 7


def _backward_direct_weight(ctx, G):
    x, gy = map(_conj, ctx.saved_tensors)
    stride, padding, dilation, groups, algorithm = ctx.args
    G = G.contiguous()
    need = ctx.needs_input_grad
    dx = dgy = None
    if need[0]:
        dx = _direct_input_grad(gy, G, x.shape, stride, padding, groups, dilation, algorithm,
                                None)
    if need[1]:
        dgy = _apply(_conv3d, x, G, None, stride, padding, dilation, groups, algorithm, None)
    return (dx, dgy) + (None,) * 6


_EAGER = {}
"""Operator -> a ``torch.autograd.Function`` running its Python function with the
same autograd formula (eager calls: no dispatcher)."""



def _function(impl, setup, backward):
    """The ``autograd.Function`` of an operator's Python function ``impl``.

    ``forward`` takes ``ctx`` itself (with a separate ``setup_context``,
    ``Function.apply`` binds the arguments with ``inspect`` on every call)."""

    def forward(ctx, *inputs):
        out = impl(*inputs)
        setup(ctx, inputs, out)
        return out

    return type(f"{impl.__name__[1:-5]}_function", (torch.autograd.Function,), {
        "forward": staticmethod(forward), "backward": staticmethod(backward)})


for _op, _setup, _backward in (
        (_conv_transpose3d, _setup_conv, _backward_transposed),
        (_conv3d, _setup_conv, _backward_direct),
        (_conv_transpose3d_weight, _setup_weight, _backward_transposed_weight),
        (_conv3d_weight, _setup_weight, _backward_direct_weight)):
    _op.register_autograd(_backward, setup_context=_setup)
    _EAGER[_op] = _function(_IMPLS[_op], _setup, _backward)
del _op, _setup, _backward


# ------------------------------------------------------------------------- functional
def _dispatch_mode():
    """Whether a Python dispatch mode (tracing, fake tensors ...) is active."""
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode
    except ImportError:  # pragma: no cover - other PyTorch layouts: take the operator
        return True
    return _get_current_dispatch_mode() is not None


_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)


def _eager(tensors):
    """Whether a call on ``tensors`` is plain eager PyTorch (not compiling, exporting
    or tracing; no tensor subclasses)."""
    if torch.compiler.is_compiling():
        return False
    for t in tensors:
        if t is not None and type(t) not in _PLAIN_TYPES:
            return False
    return not _dispatch_mode()


def _needs_grad(tensors):
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _plain(*tensors):
    """Whether the call may skip the operator: eager, no gradient needed, plain tensors."""
    return _eager(tensors) and not _needs_grad(tensors)


def _apply(op, *args):
    """Operator ``op`` on ``args`` (two or three tensors first): in eager calls its
    Python function, wrapped in its ``autograd.Function`` where a gradient is
    needed; otherwise (``torch.compile``, export, fake tensors) the operator."""
    tensors = args[:3] if args[2] is None or isinstance(args[2], Tensor) else args[:2]
    if not _eager(tensors):
        return op(*args)
    if _needs_grad(tensors):
        return _EAGER[op].apply(*args)
    return _IMPLS[op](*args)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, output_size=None, algorithm="auto",
                     precision=None):
    """:func:`torch.nn.functional.conv_transpose3d` computed by xconvt, differentiable.

    Parameters
    ----------
    input : Tensor, (N, C_in, D, H, W) or (C_in, D, H, W)
    weight : Tensor, (C_in, C_out / groups, kD, kH, kW)
    bias : Tensor, (C_out,), optional
    stride, padding, output_padding, groups, dilation
        As for :func:`torch.nn.functional.conv_transpose3d`.
    output_size : sequence of int, optional
        Sets ``output_padding`` as ``torch.nn.ConvTranspose3d.forward`` does.
    algorithm, precision
        As for :func:`xconvt.conv_transpose3d`.

    Returns
    -------
    Tensor
        On the input's device, in its dtype; part of the autograd graph when an
        argument requires grad (``torch.ops.xconvt.conv_transpose3d``).
    """
    if _plain(input, weight, bias):
        return _xconv_transpose3d(input, weight, bias, stride, padding, output_padding,
                                  groups, dilation, output_size=output_size,
                                  algorithm=algorithm, precision=precision)
    stride = _params.as_triple("stride", stride)
    padding = _params.as_triple("padding", padding)
    output_padding = _params.as_triple("output_padding", output_padding)
    dilation = _params.as_triple("dilation", dilation)
    groups = _params.check_int("groups", groups)
    if output_size is not None:
        if _concrete(input.shape, weight.shape):
            from ._dispatch import _params as conv_params

            output_padding = conv_params(
                tuple(input.shape), tuple(weight.shape), None, stride, padding,
                output_padding, groups, dilation, output_size).output_padding
        else:
            size = list(output_size)[-3:]
            output_padding = tuple(o - ((i - 1) * s - 2 * p + d * (k - 1) + 1) for
                                   o, i, s, p, d, k in zip(size, input.shape[-3:], stride,
                                                           padding, dilation,
                                                           weight.shape[2:]))
    return _apply(_conv_transpose3d, input, weight, bias, list(stride), list(padding),
                  list(output_padding), groups, list(dilation), algorithm, precision)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", precision=None):
    """:func:`torch.nn.functional.conv3d` computed by xconvt, differentiable.

    ``padding`` is an int, 3 ints, ``"valid"`` or ``"same"`` (stride 1; an odd
    total padding puts the extra zero on the right, as PyTorch does: the input
    is padded by one there with ``torch.nn.functional.pad``).  ``algorithm`` and
    ``precision`` as for :func:`xconvt.conv3d`.
    """
    if _plain(input, weight, bias):
        return _grad.conv3d(input, weight, bias, stride, padding, dilation, groups,
                            algorithm=algorithm, precision=precision)
    stride = _params.as_triple("stride", stride)
    dilation = _params.as_triple("dilation", dilation)
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            msg = f"padding must be an int, a tuple of 3 ints, 'same' or 'valid', got {padding!r}"
            raise ValueError(msg)
        if padding == "same" and stride != (1, 1, 1):
            msg = f"padding='same' needs stride 1, got stride={stride}"
            raise ValueError(msg)
        total = ([d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
                 if padding == "same" else [0, 0, 0])
        extra = [t % 2 for t in total]
        if any(extra):  # pad (left, right) pairs, the last dimension first
            input = torch.nn.functional.pad(
                input, [0, extra[2], 0, extra[1], 0, extra[0]])
        padding = tuple(t // 2 for t in total)
    else:
        padding = _params.as_triple("padding", padding)
    groups = _params.check_int("groups", groups)
    return _apply(_conv3d, input, weight, bias, list(stride), list(padding), list(dilation),
                  groups, algorithm, precision)


# ----------------------------------------------------------------------------- modules
class ConvTranspose3d(torch.nn.ConvTranspose3d):
    """``torch.nn.ConvTranspose3d`` computed by xconvt (a drop-in subclass).

    The constructor, ``weight``/``bias`` Parameters and their initialization, the
    state dict, ``repr`` and the checks (``padding_mode`` other than ``"zeros"``
    raises ``ValueError``) are PyTorch's own; :meth:`forward` calls
    :func:`conv_transpose3d`.  The keyword-only ``algorithm`` and ``precision``
    are passed to it (attributes of the same names, changeable later).
    """

    def __init__(self, *args, algorithm="auto", precision=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.algorithm = algorithm
        self.precision = precision

    def forward(self, input, output_size=None):
        if self.padding_mode != "zeros":
            msg = "Only 'zeros' padding mode is supported for ConvTranspose3d"
            raise ValueError(msg)
        output_padding = self._output_padding(input, output_size, self.stride, self.padding,
                                              self.kernel_size, 3, self.dilation)
        return conv_transpose3d(input, self.weight, self.bias, self.stride, self.padding,
                                output_padding, self.groups, self.dilation,
                                algorithm=self.algorithm, precision=self.precision)


class Conv3d(torch.nn.Conv3d):
    """``torch.nn.Conv3d`` computed by xconvt (a drop-in subclass).

    Everything but the computation is PyTorch's (constructor, parameters,
    initialization, state dict, ``repr``, every ``padding_mode``: non-zero modes
    pad with ``torch.nn.functional.pad`` first, as PyTorch does); the convolution
    is :func:`conv3d`, with the keyword-only ``algorithm`` and ``precision``.
    """

    def __init__(self, *args, algorithm="auto", precision=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.algorithm = algorithm
        self.precision = precision

    def _conv_forward(self, input, weight, bias):
        padding = self.padding
        if self.padding_mode != "zeros":
            input = torch.nn.functional.pad(input, self._reversed_padding_repeated_twice,
                                            mode=self.padding_mode)
            padding = 0
        return conv3d(input, weight, bias, self.stride, padding, self.dilation, self.groups,
                      algorithm=self.algorithm, precision=self.precision)
