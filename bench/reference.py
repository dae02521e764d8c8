"""The float64 oracle of the benchmarks: the test suite's reference
(:mod:`tests.reference`, written from the definition and sharing no code with
xconvt), so that tests and benchmarks check against one implementation."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from tests.reference import conv_transpose3d_ref
except ImportError:  # run from elsewhere than the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.reference import conv_transpose3d_ref

__all__ = ["conv_transpose3d_ref"]
