"""Argument normalization, validation and geometry shared by every backend.

Nothing here touches array data: :class:`ConvParams` is built from shapes and
Python arguments once per call, validated in PyTorch's order, and then handed
to a backend, which never re-checks it.

Geometry of a transposed convolution, per spatial axis (input size ``I``,
kernel ``K``, stride ``s``, padding ``p``, dilation ``d``, output padding
``op``)::

    full   = (I - 1) * s + d * (K - 1) + 1        # the uncropped result
    out    = full - 2 * p + op                     # what is returned
    out[o] = sum over (i, k) with i*s + k*d == o + p of x[i] * w[k]

Stride phases.  Output ``o`` only receives taps ``k`` with
``(k*d) % s == (o + p) % s``.  Grouping outputs by that residue ``r`` turns
the transposed convolution into ``s`` ordinary correlations of the *un-stuffed*
input with a sub-kernel, with no multiply-by-zero work.  For a phase,
:class:`AxisPhase` gives the outputs ``o = first + s*j`` (``j < count``), and::

    out[first + s*j] = sum_{u < len(taps)} x[base + j + u*step] * w[taps[u]]

where ``x`` is zero outside ``[0, I)``.  In 3-D a phase is the product of one
:class:`AxisPhase` per axis.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import cached_property

__all__ = ["AxisPhase", "ConvParams", "as_triple", "check_int", "conv3d_params", "dtype_name"]

_PARAM_NAMES = ("stride", "padding", "output_padding", "dilation")


def check_int(name, value):
    """Return ``value`` as a Python int; ``TypeError`` for bools, floats, others."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        msg = (
            f"{name} must be an int or a tuple of 3 ints, "
            f"got {value!r} of type {type(value).__name__}"
        )
        raise TypeError(msg)
    return operator.index(value)


def as_triple(name, value):
    """Normalize an int or a length-3 sequence of ints to a 3-tuple of ints.

    Lists are accepted, as PyTorch accepts them; bools and floats are not.
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            msg = (
                f"{name} must be an int or a sequence of 3 ints (one per spatial "
                f"dimension D, H, W), got {value!r} with {len(value)} elements"
            )
            raise ValueError(msg)
        return tuple(check_int(name, v) for v in value)
    return (check_int(name, value),) * 3


_DTYPE_NAMES = {}


def dtype_name(dtype):
    """``dtype.name``, memoized: NumPy computes the name on every access
    (about 2 us), which per-call dispatch would otherwise pay several times."""
    try:
        return _DTYPE_NAMES[dtype]
    except KeyError:
        name = _DTYPE_NAMES[dtype] = getattr(dtype, "name", None) or str(dtype)
        return name


def _fmt(t):
    return "(" + ", ".join(str(v) for v in t) + ")"


def _check_groups_and_ranges(groups, **triples):
    """``groups > 0``, then each 3-tuple in PyTorch's bounds (padding and
    output_padding >= 0, stride and dilation >= 1), in the order given."""
    if groups <= 0:
        msg = f"groups must be a positive integer, got groups={groups}"
        raise ValueError(msg)
    for name, value in triples.items():
        low = 1 if name in ("stride", "dilation") else 0
        if min(value) < low:
            msg = (f"{name} must be >= {low} in every dimension, "
                   f"got {name}={_fmt(value)}")
            raise ValueError(msg)


@dataclass(frozen=True)
class AxisPhase:
    """One stride phase along one axis (see the module docstring).

    Attributes
    ----------
    first : int
        First output index of the phase.
    count : int
        Number of output indices in the phase (``first + s*j``, ``j < count``).
    base : int
        Input index read by ``j = 0`` and ``u = 0``; may be negative.
    step : int
        Input-index step between successive taps, ``d / gcd(s, d)``.
    taps : tuple of int
        Kernel indices, ``taps[u]`` pairs with input ``base + j + u*step``.
    """

    first: int
    count: int
    base: int
    step: int
    taps: tuple

    @property
    def pad_lo(self):
        """Zeros needed before input index 0."""
        return max(0, -self.base)

    def pad_hi(self, in_size):
        """Zeros needed after input index ``in_size - 1``."""
        last = self.base + self.count - 1 + (len(self.taps) - 1) * self.step
        return max(0, last - (in_size - 1))


def _axis_phases(in_size, k, s, p, d, out_size):
    g = math.gcd(s, d)
    step = d // g
    phases = []
    for r in range(s):
        first = (r - p) % s
        count = max(0, -(-(out_size - first) // s))
        ks = [kk for kk in range(k) if (kk * d) % s == r]
        if ks:
            m0 = (ks[0] * d - r) // s
            q = (first + p - r) // s
            base = q - m0 - (len(ks) - 1) * step
        else:
            base = 0
        phases.append(AxisPhase(first, count, base, step, tuple(reversed(ks))))
    return tuple(phases)


@dataclass(frozen=True)
class ConvParams:
    """A validated, hashable description of one transposed convolution.

    Build it with :meth:`from_shapes`; the constructor does not validate.
    ``in_size``, ``kernel``, ``stride``, ``padding``, ``output_padding`` and
    ``dilation`` are 3-tuples ``(D, H, W)``.
    """

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    in_size: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    output_padding: tuple
    dilation: tuple
    unbatched: bool = False
    has_bias: bool = False

    def __hash__(self):
        # Computed once: every cached plan and choice is keyed on the
        # parameters, and hashing a dozen fields costs about a microsecond.
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.batch, self.in_channels, self.out_channels, self.groups,
                      self.in_size, self.kernel, self.stride, self.padding,
                      self.output_padding, self.dilation, self.unbatched, self.has_bias))
            object.__setattr__(self, "_hash", h)
        return h

    # ------------------------------------------------------------------ build
    @classmethod
    def from_shapes(
        cls,
        input_shape,
        weight_shape,
        bias_shape=None,
        stride=1,
        padding=0,
        output_padding=0,
        groups=1,
        dilation=1,
        output_size=None,
    ):
        """Normalize and validate; raise ``ValueError``/``TypeError`` like PyTorch.

        The checks run in PyTorch's order: argument types, input rank, groups,
        padding, output_padding, stride, dilation, weight rank, weight size,
        groups divisibility, channels, bias, empty dimensions, output_size,
        output_padding against stride/dilation, output size.
        """
        # Argument types first (PyTorch's argument parser rejects these before
        # looking at any tensor).
        stride = as_triple("stride", stride)
        padding = as_triple("padding", padding)
        output_padding = as_triple("output_padding", output_padding)
        dilation = as_triple("dilation", dilation)
        groups = check_int("groups", groups)
        input_shape = tuple(int(v) for v in input_shape)
        weight_shape = tuple(int(v) for v in weight_shape)
        if bias_shape is not None:
            bias_shape = tuple(int(v) for v in bias_shape)

        if len(input_shape) not in (4, 5):
            msg = (
                "input must be 4-D (C, D, H, W) unbatched or 5-D (N, C, D, H, W), "
                f"got a {len(input_shape)}-D input of shape {input_shape}"
            )
            raise ValueError(msg)
        unbatched = len(input_shape) == 4
        if unbatched:
            input_shape = (1,) + input_shape

        _check_groups_and_ranges(groups, padding=padding, output_padding=output_padding,
                                 stride=stride, dilation=dilation)

        if len(weight_shape) != 5:
            msg = (
                "weight must be 5-D (in_channels, out_channels/groups, kD, kH, kW), "
                f"got a {len(weight_shape)}-D weight of shape {weight_shape}"
            )
            raise ValueError(msg)
        if weight_shape[0] < 1:
            msg = (
                f"weight.shape[0] (in_channels) must be at least 1, "
                f"got weight of shape {weight_shape}"
            )
            raise ValueError(msg)
        if weight_shape[0] % groups:
            msg = (
                f"weight.shape[0] (in_channels) must be divisible by groups={groups}, "
                f"got weight of shape {weight_shape}"
            )
            raise ValueError(msg)
        if input_shape[1] != weight_shape[0]:
            msg = (
                f"input has {input_shape[1]} channels but weight of shape "
                f"{weight_shape} expects weight.shape[0]={weight_shape[0]} "
                f"(input shape {input_shape[1:] if unbatched else input_shape})"
            )
            raise ValueError(msg)
        out_channels = weight_shape[1] * groups
        if bias_shape is not None and bias_shape != (out_channels,):
            msg = (
                f"bias must be 1-D with weight.shape[1] * groups = {out_channels} "
                f"elements for weight of shape {weight_shape}, got bias of shape {bias_shape}"
            )
            raise ValueError(msg)
        if min(input_shape[2:]) < 1:
            shown = input_shape[1:] if unbatched else input_shape
            msg = (
                "input spatial dimensions must be non-empty (only a zero batch is "
                f"allowed), got input of shape {shown}"
            )
            raise ValueError(msg)
        if min(weight_shape[1:]) < 1:
            msg = (
                "weight must be non-empty: out_channels/groups and every kernel size "
                f"must be >= 1, got weight of shape {weight_shape}"
            )
            raise ValueError(msg)

        kernel = weight_shape[2:]
        in_size = input_shape[2:]
        if output_size is not None:
            output_padding = _output_padding_from_size(
                output_size, len(input_shape) - unbatched, in_size, kernel,
                stride, padding, dilation,
            )

        for ax in range(3):
            if not (output_padding[ax] < stride[ax] or output_padding[ax] < dilation[ax]):
                msg = (
                    "output_padding must be smaller than either stride or dilation in "
                    f"every dimension, got output_padding={_fmt(output_padding)}, "
                    f"stride={_fmt(stride)}, dilation={_fmt(dilation)}"
                )
                raise ValueError(msg)

        params = cls(
            batch=input_shape[0],
            in_channels=input_shape[1],
            out_channels=out_channels,
            groups=groups,
            in_size=in_size,
            kernel=kernel,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            unbatched=unbatched,
            has_bias=bias_shape is not None,
        )
        if min(params.out_size) < 1:
            msg = (
                f"the output size {_fmt(params.out_size)} must be >= 1 in every "
                f"dimension: (in - 1)*stride - 2*padding + dilation*(kernel - 1) + "
                f"output_padding + 1 with in={_fmt(in_size)}, stride={_fmt(stride)}, "
                f"padding={_fmt(padding)}, dilation={_fmt(dilation)}, "
                f"kernel={_fmt(kernel)}, output_padding={_fmt(output_padding)}"
            )
            raise ValueError(msg)
        return params

    # ------------------------------------------------------------ derived sizes
    @property
    def in_channels_per_group(self):
        return self.in_channels // self.groups

    @property
    def out_channels_per_group(self):
        return self.out_channels // self.groups

    @cached_property
    def full_size(self):
        """Uncropped spatial size ``(I - 1)*s + d*(K - 1) + 1``."""
        return tuple(
            (i - 1) * s + d * (k - 1) + 1
            for i, k, s, d in zip(self.in_size, self.kernel, self.stride, self.dilation)
        )

    @cached_property
    def out_size(self):
        """Returned spatial size ``full - 2*p + op``."""
        return tuple(
            f - 2 * p + op
            for f, p, op in zip(self.full_size, self.padding, self.output_padding)
        )

    @property
    def output_shape(self):
        """Shape of the result, without the batch axis for unbatched input."""
        shape = (self.batch, self.out_channels) + self.out_size
        return shape[1:] if self.unbatched else shape

    @cached_property
    def batched_output_shape(self):
        return (self.batch, self.out_channels) + self.out_size

    @cached_property
    def input_shape(self):
        """Batched input shape ``(N, Cin, D, H, W)``."""
        return (self.batch, self.in_channels) + self.in_size

    @property
    def weight_shape(self):
        return (self.in_channels, self.out_channels_per_group) + self.kernel

    @property
    def taps(self):
        return math.prod(self.kernel)

    @cached_property
    def flops(self):
        """Useful floating-point operations: 2 per multiply-add that reaches the output.

        Counts every (input voxel, tap) pair whose target lands inside the
        cropped output, so padding and stride zeros are not counted.
        """
        reach = 1
        for ax in range(3):
            n = 0
            for ph in self.axis_phases[ax]:
                for u in range(len(ph.taps)):
                    lo = max(0, -(ph.base + u * ph.step))
                    hi = min(ph.count, self.in_size[ax] - ph.base - u * ph.step)
                    n += max(0, hi - lo)
            reach *= n
        return 2 * self.batch * self.in_channels * self.out_channels_per_group * reach

    @property
    def nominal_flops(self):
        """``2 * N * Cin * Cout/groups * prod(in) * prod(kernel)`` (the usual count)."""
        return (
            2 * self.batch * self.in_channels * self.out_channels_per_group
            * math.prod(self.in_size) * self.taps
        )

    # ------------------------------------------------------------ stride phases
    @cached_property
    def axis_phases(self):
        """Per axis, the tuple of :class:`AxisPhase` (one per residue mod stride)."""
        return tuple(
            _axis_phases(self.in_size[a], self.kernel[a], self.stride[a],
                         self.padding[a], self.dilation[a], self.out_size[a])
            for a in range(3)
        )

    def phases(self):
        """All 3-D phases with at least one output, as ``(pd, ph, pw)`` triples.

        Phases whose tap list is empty on some axis are included: their
        outputs receive only the bias.
        """
        out = []
        for pd in self.axis_phases[0]:
            if pd.count == 0:
                continue
            for ph in self.axis_phases[1]:
                if ph.count == 0:
                    continue
                for pw in self.axis_phases[2]:
                    if pw.count == 0:
                        continue
                    out.append((pd, ph, pw))
        return out

    @property
    def is_pure_upsample(self):
        """kernel == stride, no padding/dilation: outputs never overlap (U-Net)."""
        return (
            self.kernel == self.stride
            and self.padding == (0, 0, 0)
            and self.output_padding == (0, 0, 0)
            and self.dilation == (1, 1, 1)
        )


def _output_padding_from_size(output_size, ndim, in_size, kernel, stride, padding,
                              dilation):
    """PyTorch's ``_ConvTransposeNd._output_padding``: size -> output_padding."""
    if isinstance(output_size, (str, bytes)) or not hasattr(output_size, "__len__"):
        msg = (
            f"output_size must be a sequence of 3 spatial sizes (or {ndim} sizes "
            f"including the leading ones), got {output_size!r}"
        )
        raise TypeError(msg)
    sizes = [check_int("output_size", v) for v in output_size]
    if len(sizes) == ndim:
        sizes = sizes[-3:]
    if len(sizes) != 3:
        msg = (
            f"output_size must have 3 or {ndim} elements for a {ndim}-D input, "
            f"got {tuple(output_size)} with {len(sizes)} elements"
        )
        raise ValueError(msg)
    lo = [
        (i - 1) * s - 2 * p + d * (k - 1) + 1
        for i, k, s, p, d in zip(in_size, kernel, stride, padding, dilation)
    ]
    hi = [m + s - 1 for m, s in zip(lo, stride)]
    for ax in range(3):
        if not lo[ax] <= sizes[ax] <= hi[ax]:
            msg = (
                f"output_size={tuple(sizes)} is not reachable: valid sizes range from "
                f"{tuple(lo)} to {tuple(hi)} (per dimension, the minimum plus up to "
                f"stride - 1) for an input of spatial size {tuple(in_size)}"
            )
            raise ValueError(msg)
    return tuple(sz - m for sz, m in zip(sizes, lo))


def conv3d_params(input_shape, weight_shape, bias_shape=None, stride=1, padding=0,
                  dilation=1, groups=1):
    """Validate ``conv3d`` arguments; the transposed convolution it is the adjoint of.

    Checks run in :func:`torch.nn.functional.conv3d`'s order (argument types,
    input rank, padding string, groups, padding, stride, dilation, weight
    rank, weight size, groups divisibility, channels, bias, kernel against the
    padded input) and raise ``ValueError``/``TypeError`` naming the argument,
    its value and the rule.

    Returns
    -------
    params : ConvParams
        The transposed convolution ``T`` whose input is conv3d's *output* and
        whose output is conv3d's *input*: ``T.input_shape`` is conv3d's
        (batched) result shape, ``T.batched_output_shape`` its (batched)
        input shape, ``T.weight_shape`` the conv3d weight shape, and
        ``output_padding = (D_in + 2p - d(k - 1) - 1) mod s`` per axis.
        ``params.has_bias`` is False (conv3d's bias has ``T.in_channels``
        elements).
    crop : tuple of 3 ints
        Leading elements to drop, per axis, from the result computed with
        ``params``.  Zero except for ``padding="same"`` with an odd total
        padding ``d(k - 1)``: PyTorch then pads one more zero on the right
        than on the left, which is computed here as the symmetric padding
        ``ceil(d(k - 1)/2)`` (one extra output at the front) and a crop.
    """
    stride = as_triple("stride", stride)
    dilation = as_triple("dilation", dilation)
    same = False
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            msg = f"padding must be an int, a tuple of 3 ints, 'same' or 'valid', got {padding!r}"
            raise ValueError(msg)
        same = padding == "same"
        padding = (0, 0, 0)
    else:
        padding = as_triple("padding", padding)
    groups = check_int("groups", groups)
    input_shape = tuple(int(v) for v in input_shape)
    weight_shape = tuple(int(v) for v in weight_shape)
    if bias_shape is not None:
        bias_shape = tuple(int(v) for v in bias_shape)

    if len(input_shape) not in (4, 5):
        msg = (
            "input must be 4-D (C_in, D, H, W) unbatched or 5-D (N, C_in, D, H, W), "
            f"got a {len(input_shape)}-D input of shape {input_shape}"
        )
        raise ValueError(msg)
    unbatched = len(input_shape) == 4
    if unbatched:
        input_shape = (1,) + input_shape
    if min(input_shape[2:]) < 1:
        shown = input_shape[1:] if unbatched else input_shape
        msg = (
            "input spatial dimensions must be non-empty (only a zero batch is "
            f"allowed), got input of shape {shown}"
        )
        raise ValueError(msg)
    if same and stride != (1, 1, 1):
        msg = (f"padding='same' needs stride 1 in every dimension, "
               f"got stride={_fmt(stride)}")
        raise ValueError(msg)
    _check_groups_and_ranges(groups, padding=padding, stride=stride, dilation=dilation)
    if len(weight_shape) != 5:
        msg = (
            "weight must be 5-D (out_channels, in_channels/groups, kD, kH, kW), "
            f"got a {len(weight_shape)}-D weight of shape {weight_shape}"
        )
        raise ValueError(msg)
    if weight_shape[0] < groups or weight_shape[0] % groups:
        msg = (
            f"weight.shape[0] (out_channels) must be a positive multiple of "
            f"groups={groups}, got weight of shape {weight_shape}"
        )
        raise ValueError(msg)
    if input_shape[1] != weight_shape[1] * groups:
        msg = (
            f"input has {input_shape[1]} channels but weight of shape {weight_shape} "
            f"with groups={groups} expects weight.shape[1] * groups = "
            f"{weight_shape[1] * groups} (input shape "
            f"{input_shape[1:] if unbatched else input_shape})"
        )
        raise ValueError(msg)
    if bias_shape is not None and bias_shape != (weight_shape[0],):
        msg = (
            f"bias must be 1-D with weight.shape[0] = {weight_shape[0]} elements for "
            f"weight of shape {weight_shape}, got bias of shape {bias_shape}"
        )
        raise ValueError(msg)
    if min(weight_shape[1:]) < 1:
        msg = (
            "weight must be non-empty: in_channels/groups and every kernel size must "
            f"be >= 1, got weight of shape {weight_shape}"
        )
        raise ValueError(msg)

    kernel = weight_shape[2:]
    in_size = input_shape[2:]
    crop = (0, 0, 0)
    if same:
        total = tuple(d * (k - 1) for d, k in zip(dilation, kernel))
        padding = tuple(-(-t // 2) for t in total)
        crop = tuple(t % 2 for t in total)
    span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
    padded = tuple(i + 2 * p - c for i, p, c in zip(in_size, padding, crop))
    if any(sp > pd for sp, pd in zip(span, padded)):
        msg = (
            f"the dilated kernel dilation*(kernel - 1) + 1 = {_fmt(span)} must fit the "
            f"padded input size {_fmt(padded)} in every dimension (input "
            f"{_fmt(in_size)}, padding {_fmt(padding)}, kernel {_fmt(kernel)}, "
            f"dilation {_fmt(dilation)})"
        )
        raise ValueError(msg)
    out_size = tuple(
        (i + 2 * p - d * (k - 1) - 1) // s + 1
        for i, p, d, k, s in zip(in_size, padding, dilation, kernel, stride)
    )
    output_padding = tuple(
        (i + 2 * p - d * (k - 1) - 1) % s
        for i, p, d, k, s in zip(in_size, padding, dilation, kernel, stride)
    )
    params = ConvParams(
        batch=input_shape[0],
        in_channels=weight_shape[0],
        out_channels=input_shape[1],
        groups=groups,
        in_size=out_size,
        kernel=kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        unbatched=unbatched,
        has_bias=False,
    )
    return params, crop
