"""Process-wide settings: the workspace memory budget shared by every backend."""

from __future__ import annotations

import contextlib
import contextvars

from ._params import check_int

__all__ = ["get_memory_budget", "memory_budget", "set_memory_budget"]

DEFAULT_MEMORY_BUDGET = 256 * 2**20

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
    token = _budget.set(_check_budget(nbytes))
    try:
        yield
    finally:
        _budget.reset(token)
