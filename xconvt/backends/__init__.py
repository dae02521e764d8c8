"""Backend registry: which algorithms exist for which array library.

Entries name a module and a function; modules are imported on first use, so
``import xconvt`` never imports CuPy.  Every backend function has the
signature ``fn(params, x, w, b) -> out`` where ``params`` is a validated
:class:`~xconvt._params.ConvParams`, ``x`` the batched 5-D input, ``w`` the
weight, ``b`` the bias or ``None`` (all of one supported dtype, any strides),
and ``out`` a new batched 5-D array of ``params.batched_output_shape`` with the
input's dtype, in the input's library.  Backends never re-validate.
"""

from __future__ import annotations

import importlib

__all__ = ["algorithms", "get", "kinds"]

_REGISTRY = {
    "numpy": {
        "direct": ("xconvt.backends.cpu", "direct"),
        "fft": ("xconvt.backends.fft", "fft"),
    },
    "cupy": {
        "direct": ("xconvt.backends.cuda", "direct"),
        "fft": ("xconvt.backends.fft", "fft"),
    },
}


def kinds():
    """Array libraries with at least one backend, e.g. ``("numpy", "cupy")``."""
    return tuple(_REGISTRY)


def algorithms(kind):
    """Names of the algorithms registered for array library ``kind``."""
    return tuple(_REGISTRY[kind])


_RESOLVED = {}


def get(kind, name):
    """The backend function for ``kind`` (``"numpy"``/``"cupy"``) and ``name``."""
    fn = _RESOLVED.get((kind, name))
    if fn is None:  # first use: import the module (import_module costs ~4 us a call)
        module, attr = _REGISTRY[kind][name]
        fn = _RESOLVED[kind, name] = getattr(importlib.import_module(module), attr)
    return fn
