"""Problems, devices and plans: the vocabulary every algorithm is written against.

A :class:`Problem` is one call, validated: the operation, its geometry (a
:class:`~xconvt._params.ConvParams`), the storage dtype, the float32 precision
setting, the device (with the limits read from it) and the memory budget.  A
*planner* is a function ``plan(problem) -> Plan | str``: a :class:`Plan` when
its algorithm can compute the problem, or a sentence saying why it cannot.  A
plan owns its cost estimate (predicted seconds, comparable across planners),
its workspace size and its call.  :mod:`xconvt._select` compares the plans
that apply; :mod:`xconvt.backends` lists the planners per operation and array
library.  Nothing here imports an array library.

Operations and their operands (one ``ConvParams`` describes all three: that
of the transposed convolution; conv3d is its adjoint with respect to the
input and uses the same weight array)::

    "conv_transpose3d"  plan(x, w, b) -> out   x: params.input_shape (5-D),
                        w: params.weight_shape, b: (out_channels,) or None,
                        out: params.batched_output_shape
    "conv3d"            plan(y, w, b) -> x     y: params.batched_output_shape,
                        b: (in_channels,) or None, result: params.input_shape
    "weight_grad"       plan(x, gy) -> dw      dw: params.weight_shape

Operands are native arrays of one library (NumPy or CuPy), in native byte
order, of the problem's dtype, any strides; the result is a new C-contiguous
array of that library and dtype.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ._params import ConvParams

__all__ = ["ALGORITHMS", "DEVICE_PRESETS", "OPERATIONS", "PRECISIONS", "Device", "Plan",
           "Problem", "cpu_device", "cuda_device"]

OPERATIONS = ("conv_transpose3d", "conv3d", "weight_grad")
PRECISIONS = ("float32", "tf32")
ALGORITHMS = ("direct", "fft")


@dataclass(frozen=True)
class Device:
    """Where a problem runs, with the limits plans are sized to.

    ``kind`` is ``"cpu"`` (NumPy arrays) or ``"cuda"`` (CuPy arrays).  For
    CUDA devices the limits come from the device itself (:func:`cuda_device`)
    or, to replay a choice without a GPU, from :data:`DEVICE_PRESETS`.
    """

    kind: str
    name: str
    index: int = 0
    compute_capability: tuple = (0, 0)
    sm_count: int = 0
    smem_per_block: int = 0      # opt-in maximum of dynamic shared memory per block, bytes
    smem_per_sm: int = 0
    regs_per_sm: int = 0
    cpus: int = 1

    @property
    def array_kind(self):
        """The array library the device's plans run on: ``"numpy"`` or ``"cupy"``."""
        return "numpy" if self.kind == "cpu" else "cupy"

    def describe(self):
        if self.kind == "cpu":
            return f"cpu ({self.cpus} threads)"
        cc = ".".join(map(str, self.compute_capability))
        return (f"{self.name} (cuda:{self.index}, sm_{cc.replace('.', '')}, {self.sm_count} SMs, "
                f"{self.smem_per_block // 1024} KiB shared memory per block)")


#: CUDA device limits by name, for :func:`xconvt.explain` without a GPU and for
#: tests that replay choices (values from the vendors' specifications: opt-in
#: shared memory per block, per SM, registers per SM).
DEVICE_PRESETS = {
    "h100": Device("cuda", "NVIDIA H100 (preset)", 0, (9, 0), 132, 232448, 233472, 65536),
    "h200": Device("cuda", "NVIDIA H200 (preset)", 0, (9, 0), 132, 232448, 233472, 65536),
    "a100": Device("cuda", "NVIDIA A100 (preset)", 0, (8, 0), 108, 166912, 167936, 65536),
    "l4": Device("cuda", "NVIDIA L4 (preset)", 0, (8, 9), 58, 101376, 102400, 65536),
}


@functools.lru_cache(maxsize=None)
def cpu_device(cpus=None):
    """The CPU as a :class:`Device` (``cpus``: threads the plans may use)."""
    if cpus is None:
        from .backends.cpu.common import available_cpus

        cpus = available_cpus()
    return Device("cpu", "cpu", cpus=cpus)


_CUDA_DEVICES = {}


def cuda_device(index=None):
    """The CUDA device ``index`` (default: CuPy's current device) as a
    :class:`Device`, its limits read from the device once and cached."""
    import cupy

    if index is None:
        index = cupy.cuda.runtime.getDevice()
    dev = _CUDA_DEVICES.get(index)
    if dev is None:
        props = cupy.cuda.runtime.getDeviceProperties(index)
        name = props["name"]
        dev = _CUDA_DEVICES[index] = Device(
            "cuda", name.decode() if isinstance(name, bytes) else str(name), index,
            (int(props["major"]), int(props["minor"])), int(props["multiProcessorCount"]),
            int(props["sharedMemPerBlockOptin"]), int(props["sharedMemPerMultiprocessor"]),
            int(props["regsPerMultiprocessor"]))
    return dev


@dataclass(frozen=True)
class Problem:
    """One validated call: what is computed, on what, where and how precisely.

    ``dtype`` is the storage dtype's name; ``precision`` is the float32
    setting (``"float32"``: as accurate as float32 arithmetic; ``"tf32"``:
    TF32 tensor cores allowed) and is ``"float32"`` for other dtypes;
    ``budget`` is the workspace a plan may hold, in bytes.
    """

    op: str
    params: ConvParams
    dtype: str
    device: Device
    precision: str = "float32"
    budget: int = 256 << 20

    @property
    def itemsize(self):
        return {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "complex64": 8,
                "complex128": 16}[self.dtype]

    @property
    def is_complex(self):
        return self.dtype.startswith("complex")

    @property
    def real_dtype(self):
        """The dtype of the real arithmetic (complex runs as real parts)."""
        return {"complex64": "float32", "complex128": "float64"}.get(self.dtype, self.dtype)


class Plan:
    """One way to compute one :class:`Problem`.

    Subclasses set ``name`` (``"<backend>.<variant>"``), ``algorithm``
    (``"direct"`` or ``"fft"``: what ``algorithm=`` forces), ``estimate``
    (predicted seconds of one call), ``workspace`` (temporary bytes) and
    optionally ``detail`` (one line for :func:`xconvt.explain`), and
    implement ``__call__`` with the operands of the problem's operation.
    """

    name = "plan"
    algorithm = "direct"
    estimate = float("inf")
    workspace = 0
    detail = ""

    def __call__(self, *operands):
        raise NotImplementedError

    def __repr__(self):
        return (f"<{type(self).__name__} {self.name} ({self.algorithm}): "
                f"{self.estimate * 1e3:.3g} ms estimated, {self.workspace} bytes>")


class FunctionPlan(Plan):
    """A plan whose call is a function of the operands (and nothing cached)."""

    def __init__(self, name, algorithm, estimate, fn, workspace=0, detail=""):
        self.name, self.algorithm, self.estimate = name, algorithm, float(estimate)
        self.fn, self.workspace, self.detail = fn, int(workspace), detail

    def __call__(self, *operands):
        return self.fn(*operands)
