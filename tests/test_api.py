"""The public surface: ``__all__``, lazy CuPy import, ``output_shape``, the
memory budget, and the docstring examples."""

from __future__ import annotations

import doctest
import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import xconvt

from .reference import out_size_ref

REPO = Path(__file__).resolve().parents[1]


def test_all_matches_public_names():
    public = {
        name for name, value in vars(xconvt).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(xconvt.__all__) == sorted(set(xconvt.__all__)), "duplicates in __all__"
    assert set(xconvt.__all__) == public
    for name in xconvt.__all__:
        assert getattr(xconvt, name).__doc__, f"{name} has no docstring"


def test_expected_api_present():
    assert {"conv_transpose3d", "output_shape", "ConvTranspose3d", "get_memory_budget",
            "set_memory_budget", "memory_budget"} <= set(xconvt.__all__)
    assert isinstance(xconvt.__version__, str)


def test_registry_lists_planners():
    import xconvt.backends as backends

    assert set(backends.kinds()) == {"numpy", "cupy"}
    for kind in backends.kinds():
        assert {"direct", "fft"} <= set(backends.algorithms(kind))
        names = [p.name for p in backends.planners(kind)]
        assert len(names) == len(set(names))
    # the planner modules import without CuPy
    import importlib

    for kind in backends.kinds():
        for p in backends.planners(kind):
            assert callable(getattr(importlib.import_module(p.module), p.function))


def _python(code):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def test_import_does_not_import_cupy():
    res = _python(
        "import sys, xconvt, xconvt.backends; "
        "import numpy as np; "
        "x = np.zeros((0, 2, 3, 3, 3)); w = np.zeros((2, 1, 2, 2, 2)); "
        "xconvt.conv_transpose3d(x, w); xconvt.ConvTranspose3d(2, 2, 3); "
        "print(sorted(m for m in sys.modules if m == 'cupy' or m.startswith('cupy.')))"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_numpy_compute_does_not_import_cupy():
    """Running every NumPy backend must not pull in CuPy either."""
    res = _python(
        "import sys, numpy as np, xconvt, xconvt.backends as b\n"
        "x = np.ones((1, 2, 3, 3, 3)); w = np.ones((2, 1, 2, 2, 2))\n"
        "for a in b.algorithms('numpy'):\n"
        "    xconvt.conv_transpose3d(x, w, algorithm=a)\n"
        "print('cupy' in sys.modules)\n"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


@pytest.mark.parametrize("args,kw,expected", [
    (((20, 16, 10, 50, 100), (16, 33, 3, 5, 2)), dict(stride=(2, 1, 1), padding=(0, 4, 2)),
     (20, 33, 21, 46, 97)),
    (((16, 10, 50, 100), (16, 33, 3, 5, 2)), dict(stride=(2, 1, 1), padding=(0, 4, 2)),
     (33, 21, 46, 97)),
    (((1, 2, 3, 3, 3), (2, 4, 2, 2, 2)), dict(stride=2), (1, 4, 6, 6, 6)),
    (((0, 6, 3, 4, 5), (6, 2, 3, 3, 3)), dict(groups=3, stride=2, padding=1,
                                              output_padding=1), (0, 6, 6, 8, 10)),
    (((1, 1, 4, 4, 4), (1, 1, 3, 3, 3)), dict(dilation=2, padding=(0, 1, 2),
                                              output_padding=(1, 0, 1)),
     (1, 1, 9, 6, 5)),
    (((2, 4, 1, 1, 1), (4, 2, 1, 1, 1)), {}, (2, 2, 1, 1, 1)),
])
def test_output_shape_examples(args, kw, expected):
    assert xconvt.output_shape(*args, **kw) == expected
    geometry = {k: v for k, v in kw.items() if k != "groups"}
    assert expected[-3:] == out_size_ref(args[0][-3:], args[1][2:], **geometry)
    assert all(type(v) is int for v in xconvt.output_shape(*args, **kw))


def test_output_shape_accepts_any_int_sequence():
    import numpy as np

    shape = xconvt.output_shape(np.array([1, 2, 3, 3, 3]), [2, 4, 2, 2, 2], stride=2)
    assert shape == (1, 4, 6, 6, 6)


def test_memory_budget_context_manager_restores():
    before = xconvt.get_memory_budget()
    assert isinstance(before, int) and before > 0
    with xconvt.memory_budget(12345):
        assert xconvt.get_memory_budget() == 12345
        with xconvt.memory_budget(2**30):
            assert xconvt.get_memory_budget() == 2**30
        assert xconvt.get_memory_budget() == 12345
    assert xconvt.get_memory_budget() == before


def test_memory_budget_restores_after_exception():
    before = xconvt.get_memory_budget()
    with pytest.raises(RuntimeError):
        with xconvt.memory_budget(1):
            raise RuntimeError("boom")
    assert xconvt.get_memory_budget() == before


def test_set_memory_budget_returns_previous():
    before = xconvt.get_memory_budget()
    assert xconvt.set_memory_budget(4096) == before
    assert xconvt.get_memory_budget() == 4096
    assert xconvt.set_memory_budget(before) == 4096
    assert xconvt.get_memory_budget() == before


def test_memory_budget_is_per_thread():
    import threading

    before = xconvt.get_memory_budget()
    seen = []
    with xconvt.memory_budget(777):
        t = threading.Thread(target=lambda: seen.append(xconvt.get_memory_budget()))
        t.start()
        t.join()
    assert seen == [before]


@pytest.mark.parametrize("module", [
    "xconvt", "xconvt._dispatch", "xconvt._layer", "xconvt._config", "xconvt._params",
    "xconvt._select",
])
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {module}"
