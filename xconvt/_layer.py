"""``ConvTranspose3d``: a layer that holds weight and bias, like PyTorch's module."""

from __future__ import annotations

import math

import numpy as np

from . import _interop
from ._dispatch import SUPPORTED_DTYPES, conv_transpose3d
from ._params import as_triple, check_int

__all__ = ["ConvTranspose3d"]


def _parse_device(device):
    """``None``/``"cpu"`` -> ``None`` (NumPy); ``"cuda"``/``"cuda:N"`` -> N; a
    ``torch.device`` or JAX ``Device`` -> its placement."""
    if device is None:
        return None
    where = _interop.placement(device)
    if where is not None:
        return where
    if isinstance(device, str):
        if device == "cpu":
            return None
        if device == "cuda":
            return 0
        if device.startswith("cuda:") and device[5:].isdigit():
            return int(device[5:])
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return device
    msg = (f"device must be None, 'cpu', 'cuda', 'cuda:N', a torch.device or a JAX "
           f"Device, got device={device!r}")
    raise ValueError(msg)


def _parse_dtype(dtype):
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in SUPPORTED_DTYPES:
        msg = f"dtype must be one of {', '.join(SUPPORTED_DTYPES)}, got dtype={dtype!r}"
        raise TypeError(msg)
    return dt


def _check_positive(name, value):
    if value < 1:
        msg = f"{name} must be a positive integer, got {name}={value}"
        raise ValueError(msg)


class ConvTranspose3d:
    r"""3-D transposed convolution layer, PyTorch's ``torch.nn.ConvTranspose3d``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the result; both divisible by ``groups``.
    kernel_size, stride, padding, output_padding, dilation : int or tuple of 3 ints
    groups : int
    bias : bool
        Whether the layer adds a learnable bias.
    padding_mode : {"zeros"}
        The only mode PyTorch supports for transposed convolutions.
    device : None, "cpu", "cuda", "cuda:N", torch.device or jax.Device
        Where ``weight`` and ``bias`` live and in which library: ``None``/``"cpu"``
        NumPy arrays; ``"cuda[:N]"`` CuPy arrays on GPU N; a ``torch.device``
        (``torch.device("cuda", 0)``) PyTorch tensors on it; a JAX device
        (``jax.devices("gpu")[0]``) JAX arrays on it.  Whatever their library,
        the parameters follow the input's: called on arrays of another library
        that live on the same device (a PyTorch CPU tensor for a NumPy layer, a
        JAX GPU array for a CuPy layer ...), the layer passes zero-copy views of
        its parameters and returns the input's library; parameters on another
        device raise ``ValueError`` (nothing is transferred).
    dtype : dtype, optional
        float16, float32 (default), float64, complex64 or complex128.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights (a seed is passed to ``default_rng``).

    Attributes
    ----------
    weight : ndarray, shape (in_channels, out_channels / groups, kD, kH, kW)
    bias : ndarray, shape (out_channels,), or None
        Both drawn from ``U(-sqrt(k), sqrt(k))``, ``k = groups / (out_channels *
        prod(kernel_size))``, as PyTorch's ``reset_parameters`` does.
    algorithm : str
        Passed to :func:`xconvt.conv_transpose3d` (default ``"auto"``).
    precision : str or None
        Passed to :func:`xconvt.conv_transpose3d` (default None: the process
        setting, :func:`xconvt.get_float32_precision`).
    requires_grad : bool
        When True (default False), :meth:`forward` keeps its input for
        :meth:`backward`.
    weight_grad, bias_grad : ndarray or None
        Gradients accumulated by :meth:`backward` (None until then, or after
        :meth:`zero_grad`).

    Notes
    -----
    Training without a framework: switch on ``requires_grad`` (or pass
    ``keep_input=True`` to one forward call), run the forward, then
    :meth:`backward` with the loss gradient; it fills ``weight_grad`` and
    ``bias_grad`` and returns the input gradient.  With CuPy arrays
    (``device="cuda"``) everything stays on the GPU.

    Examples
    --------
    >>> import numpy as np, xconvt
    >>> m = xconvt.ConvTranspose3d(16, 33, (3, 5, 2), stride=(2, 1, 1),
    ...                            padding=(0, 4, 2), rng=0)
    >>> x = np.random.default_rng(1).standard_normal((2, 16, 4, 6, 8), np.float32)
    >>> m(x).shape
    (2, 33, 9, 2, 5)

    A training loop (mean squared error, plain gradient descent):

    >>> rng = np.random.default_rng(0)
    >>> layer = xconvt.ConvTranspose3d(4, 2, 3, stride=2, padding=1, rng=0)
    >>> layer.requires_grad = True
    >>> x = rng.standard_normal((2, 4, 5, 5, 5), np.float32)
    >>> target = np.zeros((2, 2, 9, 9, 9), np.float32)
    >>> for step in range(3):
    ...     y = layer(x)                                # keeps x
    ...     layer.zero_grad()
    ...     gx = layer.backward(2 * (y - target) / y.size)   # d mean((y - target)^2)
    ...     layer.weight -= 0.1 * layer.weight_grad
    ...     layer.bias -= 0.1 * layer.bias_grad
    >>> gx.shape, layer.weight_grad.shape
    ((2, 4, 5, 5, 5), (4, 2, 3, 3, 3))
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1,
                 padding_mode="zeros", device=None, dtype=None, *, rng=None):
        in_channels = check_int("in_channels", in_channels)
        out_channels = check_int("out_channels", out_channels)
        groups = check_int("groups", groups)
        _check_positive("groups", groups)
        _check_positive("in_channels", in_channels)
        _check_positive("out_channels", out_channels)
        if in_channels % groups:
            msg = f"in_channels={in_channels} must be divisible by groups={groups}"
            raise ValueError(msg)
        if out_channels % groups:
            msg = f"out_channels={out_channels} must be divisible by groups={groups}"
            raise ValueError(msg)
        if padding_mode != "zeros":
            msg = (
                f"padding_mode={padding_mode!r} is not supported: only 'zeros' is "
                "defined for transposed convolutions (as in PyTorch)"
            )
            raise ValueError(msg)
        if not isinstance(bias, bool):
            msg = f"bias must be True or False, got bias={bias!r}"
            raise TypeError(msg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = as_triple("kernel_size", kernel_size)
        for k in self.kernel_size:
            _check_positive("kernel_size", k)
        self.stride = as_triple("stride", stride)
        self.padding = as_triple("padding", padding)
        self.output_padding = as_triple("output_padding", output_padding)
        self.dilation = as_triple("dilation", dilation)
        self.groups = groups
        self.padding_mode = padding_mode
        self.transposed = True
        self.algorithm = "auto"
        self.precision = None
        self.requires_grad = False
        self.weight_grad = None
        self.bias_grad = None
        self._saved = None
        self._device = _parse_device(device)
        self._dtype = _parse_dtype(dtype)
        shape = (in_channels, out_channels // groups) + self.kernel_size
        self.weight = self._to_array(np.zeros(shape, self._dtype))
        self.bias = self._to_array(np.zeros(out_channels, self._dtype)) if bias else None
        self.reset_parameters(rng)

    # -------------------------------------------------------------- arrays
    @property
    def device(self):
        """``"cpu"``, ``"cuda:N"``, or the ``torch.device``/JAX device given."""
        if isinstance(self._device, _interop.Placement):
            return self._device.device
        return "cpu" if self._device is None else f"cuda:{self._device}"

    @property
    def dtype(self):
        return self._dtype

    def _to_array(self, host):
        host = np.asarray(host, dtype=self._dtype)
        if self._device is None:
            return _interop.host_copy(host)  # aligned: JAX CPU arrays can share it
        if isinstance(self._device, _interop.Placement):
            return self._device.from_host(host)
        import cupy

        with cupy.cuda.Device(self._device):
            return cupy.asarray(host)

    def _uniform(self, rng, bound, shape):
        if self._dtype.kind == "c":
            return rng.uniform(-bound, bound, shape) + 1j * rng.uniform(-bound, bound, shape)
        return rng.uniform(-bound, bound, shape)

    def reset_parameters(self, rng=None):
        """Redraw weight and bias from ``U(-sqrt(k), sqrt(k))`` (PyTorch's rule)."""
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        fan_in = (self.out_channels // self.groups) * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = self._to_array(self._uniform(rng, bound, tuple(self.weight.shape)))
        if self.bias is not None:
            self.bias = self._to_array(self._uniform(rng, bound, (self.out_channels,)))

    # -------------------------------------------------------------- forward
    def forward(self, input, output_size=None, *, keep_input=None):
        """Apply the layer; ``output_size`` picks ``output_padding`` like PyTorch.

        ``input`` may be any library's array; the parameters follow its library
        (see ``device``) and the result is in it.  ``keep_input`` (default:
        ``requires_grad``) keeps a reference to ``input`` for :meth:`backward`.
        """
        weight, bias = self.weight, self.bias
        if type(input) is not type(weight):
            weight, bias = _interop.follow(input, weight, bias)
        out = conv_transpose3d(
            input, weight, bias, self.stride, self.padding,
            self.output_padding, self.groups, self.dilation,
            output_size=output_size, algorithm=self.algorithm, precision=self.precision,
        )
        if self.requires_grad if keep_input is None else keep_input:
            # the output_padding this call used (output_size may have set it)
            full = tuple((i - 1) * s - 2 * p + d * (k - 1) + 1 for i, s, p, d, k in zip(
                input.shape[-3:], self.stride, self.padding, self.dilation,
                self.kernel_size))
            self._saved = (input, tuple(o - f for o, f in zip(out.shape[-3:], full)))
        return out

    __call__ = forward

    def backward(self, grad_output, *, input_grad=True):
        """Gradients of the last forward that kept its input.

        Adds the weight gradient to ``weight_grad`` and the bias gradient to
        ``bias_grad`` (as PyTorch accumulates ``.grad``; see :meth:`zero_grad`),
        then releases the kept input.

        Parameters
        ----------
        grad_output : ndarray
            Gradient of the loss with respect to that forward's result (its shape).
        input_grad : bool
            Whether to compute the input gradient (skip it for a first layer).

        Returns
        -------
        ndarray or None
            Gradient with respect to the input, or None with ``input_grad=False``.
        """
        from . import grad

        if self._saved is None:
            msg = ("backward needs a forward that kept its input: set "
                   "layer.requires_grad = True or call layer(x, keep_input=True) first")
            raise RuntimeError(msg)
        input, output_padding = self._saved
        kw = dict(stride=self.stride, padding=self.padding, output_padding=output_padding,
                  groups=self.groups, dilation=self.dilation)
        dw = grad.conv_transpose3d_weight(input, self.weight.shape, grad_output, **kw)
        self.weight_grad = dw if self.weight_grad is None else self.weight_grad + dw
        if self.bias is not None:
            db = grad.bias_grad(grad_output)
            self.bias_grad = db if self.bias_grad is None else self.bias_grad + db
        weight = self.weight
        if type(input) is not type(weight):  # the weight viewed in the input's library
            weight = _interop.follow(input, weight, None)[0]
        gx = (grad.conv_transpose3d_input(input.shape, weight, grad_output, **kw)
              if input_grad else None)
        self._saved = None
        return gx

    def zero_grad(self):
        """Forget accumulated gradients (``weight_grad = bias_grad = None``)."""
        self.weight_grad = None
        self.bias_grad = None

    # -------------------------------------------------------------- state
    def state_dict(self):
        """``{"weight": ..., "bias": ...}`` (no ``"bias"`` key without bias), as PyTorch."""
        d = {"weight": self.weight}
        if self.bias is not None:
            d["bias"] = self.bias
        return d

    def load_state_dict(self, state_dict, strict=True):
        """Load arrays (NumPy, CuPy, or anything ``numpy.asarray`` accepts, such as
        a CPU ``torch.Tensor``) into ``weight`` and ``bias``, cast to the layer's
        dtype and device.

        With ``strict=True`` the keys must be exactly those of :meth:`state_dict`.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        expected = set(self.state_dict())
        given = set(state_dict)
        missing = sorted(expected - given)
        unexpected = sorted(given - expected)
        if strict and (missing or unexpected):
            msg = (
                f"state_dict keys do not match: missing {missing}, unexpected "
                f"{unexpected} (expected exactly {sorted(expected)})"
            )
            raise KeyError(msg)
        new = {}
        for key in sorted(expected & given):
            value = state_dict[key]
            current = getattr(self, key)
            if tuple(value.shape) != tuple(current.shape):
                msg = (
                    f"state_dict[{key!r}] has shape {tuple(value.shape)}, but the "
                    f"layer's {key} has shape {tuple(current.shape)}"
                )
                raise ValueError(msg)
            if hasattr(value, "get") and type(value).__module__.startswith("cupy"):
                value = value.get()
            new[key] = self._to_array(np.asarray(value))
        for key, value in new.items():
            setattr(self, key, value)
        return missing, unexpected

    def extra_repr(self):
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"
