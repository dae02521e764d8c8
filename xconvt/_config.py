"""Process-wide settings (per thread and context, in contextvars): the workspace
memory budget every plan is sized to, and the float32 precision."""

from __future__ import annotations

import contextlib
import contextvars

from ._params import check_int

__all__ = ["float32_precision", "get_float32_precision", "get_memory_budget", "memory_budget",
           "set_float32_precision", "set_memory_budget"]

DEFAULT_MEMORY_BUDGET = 256 * 2**20


@contextlib.contextmanager
def _scoped(var, value):
    """``var`` set to ``value`` for the enclosed block (restored on exit)."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)

_budget = contextvars.ContextVar("xconvt_memory_budget", default=DEFAULT_MEMORY_BUDGET)


def get_memory_budget():
    """Bytes of temporary workspace (column buffers, spectra) a call may hold.

    The default is 256 MiB.  Backends chunk batch, channels and volume to stay
    under it; a single indivisible piece (one output plane of one channel
    group, one FFT tile) may exceed it when the budget is tiny.
    """
    return _budget.get()


def _check_budget(nbytes):
    nbytes = check_int("nbytes", nbytes)
    if nbytes < 1:
        msg = f"nbytes must be a positive number of bytes, got nbytes={nbytes}"
        raise ValueError(msg)
    return nbytes


def set_memory_budget(nbytes):
    """Set the workspace budget in bytes for this thread/context (see
    :func:`get_memory_budget`).  Returns the previous value."""
    old = _budget.get()
    _budget.set(_check_budget(nbytes))
    return old


@contextlib.contextmanager
def memory_budget(nbytes):
    """Context manager that sets the workspace budget for the enclosed block.

    Examples
    --------
    >>> import xconvt
    >>> with xconvt.memory_budget(16 * 2**20):
    ...     xconvt.get_memory_budget()
    16777216
    """
    with _scoped(_budget, _check_budget(nbytes)):
        yield


PRECISIONS = ("float32", "tf32")
DEFAULT_FLOAT32_PRECISION = "float32"

_precision = contextvars.ContextVar("xconvt_float32_precision",
                                    default=DEFAULT_FLOAT32_PRECISION)


def check_precision(precision):
    """``precision`` if it is one of :data:`PRECISIONS`, else ``ValueError``/``TypeError``."""
    if not isinstance(precision, str):
        msg = (f"precision must be one of {', '.join(map(repr, PRECISIONS))} or None, "
               f"got {precision!r} of type {type(precision).__name__}")
        raise TypeError(msg)
    if precision not in PRECISIONS:
        msg = (f"precision must be one of {', '.join(map(repr, PRECISIONS))} or None, "
               f"got precision={precision!r}")
        raise ValueError(msg)
    return precision


def get_float32_precision():
    """How float32 and complex64 calls may compute: ``"float32"`` (the
    default: as accurate as float32 arithmetic) or ``"tf32"`` (TF32 tensor
    cores allowed, PyTorch's default for convolutions on the GPU).  A plan
    that is at least as accurate may always run: with no TF32 plan for a
    problem, ``"tf32"`` runs the float32 plans.  Other dtypes ignore it."""
    return _precision.get()


def set_float32_precision(precision):
    """Set the float32 precision for this thread/context (see
    :func:`get_float32_precision`).  Returns the previous value."""
    old = _precision.get()
    _precision.set(check_precision(precision))
    return old


@contextlib.contextmanager
def float32_precision(precision):
    """Context manager that sets the float32 precision for the enclosed block.

    Examples
    --------
    >>> import xconvt
    >>> with xconvt.float32_precision("tf32"):
    ...     xconvt.get_float32_precision()
    'tf32'
    """
    with _scoped(_precision, check_precision(precision)):
        yield
