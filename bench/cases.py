"""Benchmark cases: the CPU suite (issue 2), the GPU suite (issue 3), the kernel-size
sweep (issue 4) and a tiny self-checking ``quick`` suite.

A :class:`Case` is one ``conv_transpose3d`` configuration; its inputs are drawn
from a seeded NumPy ``Generator`` (never zeros), so every run of every method
sees the same data.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "CPU_SUITE",
    "GPU_SUITE",
    "QUICK_SUITE",
    "SMALL_SUITE",
    "SWEEP_KS",
    "SWEEP_VOLUME",
    "Case",
    "select",
    "sweep_cases",
]


def _triple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * 3


def _fmt(t, cube=False):
    """``(3,3,3)`` -> ``"3"`` (or ``"3^3"`` with ``cube``), else ``"3x5x2"``."""
    if len(set(t)) == 1:
        return f"{t[0]}^3" if cube else str(t[0])
    return "x".join(str(v) for v in t) if cube else "(" + ",".join(str(v) for v in t) + ")"


@dataclass(frozen=True)
class Case:
    """One transposed convolution: ``input (N, Cin, *size)``, ``weight (Cin, Cout/g, *k)``."""

    name: str
    batch: int
    in_channels: int
    out_channels: int
    size: tuple
    kernel: tuple
    stride: tuple = (1, 1, 1)
    padding: tuple = (0, 0, 0)
    output_padding: tuple = (0, 0, 0)
    groups: int = 1
    dilation: tuple = (1, 1, 1)
    bias: bool = False

    def __post_init__(self):
        for f in ("size", "kernel", "stride", "padding", "output_padding", "dilation"):
            object.__setattr__(self, f, _triple(getattr(self, f)))

    # ------------------------------------------------------------------ shapes
    @property
    def input_shape(self):
        return (self.batch, self.in_channels) + self.size

    @property
    def weight_shape(self):
        return (self.in_channels, self.out_channels // self.groups) + self.kernel

    @property
    def kwargs(self):
        """Keyword arguments shared by xconvt and ``torch.nn.functional``."""
        return dict(stride=self.stride, padding=self.padding,
                    output_padding=self.output_padding, groups=self.groups,
                    dilation=self.dilation)

    def params(self):
        """The validated :class:`xconvt._params.ConvParams` (FLOPs, output shape)."""
        from xconvt._params import ConvParams

        return ConvParams.from_shapes(
            self.input_shape, self.weight_shape,
            (self.out_channels,) if self.bias else None, **self.kwargs,
        )

    def summary(self):
        """Short shape description, e.g. ``1x64x32^3->32 k2 s2``."""
        s = (f"{self.batch}x{self.in_channels}x{_fmt(self.size, cube=True)}"
             f"->{self.out_channels} k{_fmt(self.kernel)} s{_fmt(self.stride)}")
        if any(self.padding):
            s += f" p{_fmt(self.padding)}"
        if any(self.output_padding):
            s += f" op{_fmt(self.output_padding)}"
        if self.groups != 1:
            s += f" g{self.groups}"
        if self.dilation != (1, 1, 1):
            s += f" d{_fmt(self.dilation)}"
        if self.bias:
            s += " +b"
        return s

    def as_dict(self):
        return asdict(self)

    # ------------------------------------------------------------------ data
    def make_inputs(self, dtype, seed=0):
        """Seeded host arrays ``(x, w, b)`` in ``dtype`` (``b`` is None without bias).

        ``x ~ N(0, 1)``; ``w ~ N(0, 1/fan_in)`` with ``fan_in = Cin/g * taps`` so
        outputs stay O(1) in every dtype (float16 included) at every kernel size.
        """
        rng = np.random.default_rng([seed, *map(ord, self.name)])
        dtype = np.dtype(dtype)
        fan_in = (self.in_channels // self.groups) * math.prod(self.kernel)
        x = rng.standard_normal(self.input_shape, dtype=np.float32).astype(dtype)
        w = (rng.standard_normal(self.weight_shape, dtype=np.float32)
             / np.float32(math.sqrt(fan_in))).astype(dtype)
        b = rng.standard_normal(self.out_channels).astype(dtype) if self.bias else None
        return x, w, b


# ----------------------------------------------------------------------- suites
# Issue 2: the CPU suite (dilation 1).
CPU_SUITE = (
    Case("unet_k2s2", 1, 64, 32, 32, 2, 2, 0, 0, 1),
    Case("vnet_k3s2", 1, 32, 16, 32, 3, 2, 1, 1, 1),
    Case("same_k3s1", 1, 16, 16, 32, 3, 1, 1, 0, 1),
    Case("depthwise_k7", 1, 32, 32, 32, 7, 1, 3, 0, 32),
    Case("grouped_g4", 1, 32, 32, 24, 3, 2, 1, 1, 4),
    Case("imaging_c1_k5s2", 1, 1, 1, 64, 5, 2, 2, 1, 1),
    Case("seed_small", 2, 16, 33, (6, 20, 30), (3, 5, 2), (2, 1, 1), (0, 4, 2), 0, 1),
) + tuple(
    Case(f"sweep_k{k}", 1, 4, 4, 32, k, 1, (k - 1) // 2, 0, 1)
    for k in (3, 5, 7, 9, 11, 15, 21)
)

# Issue 3: the GPU suite, with the cuDNN float32 (TF32 off) medians measured on an
# H100 on 2026-11-25 (ms), kept for comparison with a new run.
GPU_SUITE = (
    Case("seed_example", 20, 16, 33, (10, 50, 100), (3, 5, 2), (2, 1, 1), (0, 4, 2), 0, 1),
    Case("unet_k2s2", 2, 128, 64, 32, 2, 2, 0, 0, 1),
    Case("unet_k2s2_big", 1, 64, 32, 64, 2, 2, 0, 0, 1),
    Case("vnet_k3s2", 2, 64, 32, 32, 3, 2, 1, 1, 1),
    Case("gan_k4s2", 8, 256, 128, 8, 4, 2, 1, 0, 1),
    Case("same_k3s1", 1, 32, 32, 64, 3, 1, 1, 0, 1),
    Case("dilated_k3d2", 1, 32, 32, 48, 3, 1, 2, 0, 1, 2),
    Case("grouped_g4", 2, 64, 64, 32, 3, 2, 1, 1, 4),
    Case("depthwise_k7", 1, 64, 64, 48, 7, 1, 3, 0, 64),
    Case("imaging_c1_k5s2", 1, 1, 1, 128, 5, 2, 2, 1, 1),
) + tuple(
    Case(f"sweep_k{k}", 1, 4, 4, 64, k, 1, (k - 1) // 2, 0, 1) for k in (3, 5, 7)
)

GPU_SUITE_CUDNN_MS_H100 = {
    "seed_example": 5.125, "unet_k2s2": 0.676, "unet_k2s2_big": 1.231,
    "vnet_k3s2": 0.764, "gan_k4s2": 0.579, "same_k3s1": 0.648, "dilated_k3d2": 0.296,
    "grouped_g4": 1.456, "depthwise_k7": 2.952, "imaging_c1_k5s2": 2.524,
    "sweep_k3": 0.127, "sweep_k5": 0.721, "sweep_k7": 1.825,
}

# Tiny cases that cover every feature; checked against bench.reference in float64.
QUICK_SUITE = (
    Case("unet_k2s2", 1, 8, 4, 8, 2, 2, 0, 0, 1),
    Case("vnet_k3s2_op1", 1, 6, 3, 8, 3, 2, 1, 1, 1, bias=True),
    Case("seed_tiny", 2, 4, 5, (3, 6, 7), (3, 5, 2), (2, 1, 1), (0, 4, 2), 0, 1),
    Case("grouped_dilated", 1, 4, 6, 6, 3, 2, 1, 1, 2, 2, bias=True),
    Case("depthwise_k5", 1, 4, 4, 8, 5, 1, 2, 0, 4),
    Case("large_k9", 1, 2, 2, 12, 9, 1, 4, 0, 1),
    Case("anisotropic", 1, 3, 2, (5, 7, 4), (2, 3, 4), (3, 1, 2), (1, 0, 2), (2, 0, 1), 1,
         (1, 2, 1)),
)

# Issue 15: small layers (at most 1 MFLOP, nominal, except issue_c16), timed per
# call against PyTorch CPU on 2 threads; the first three are the issue's.
SMALL_SUITE = (
    Case("issue_vnet", 1, 6, 3, 8, 3, 2, 1, 1, 1, bias=True),
    Case("issue_seed", 2, 4, 5, (3, 6, 7), (3, 5, 2), (2, 1, 1), (0, 4, 2), 0, 1),
    Case("issue_c16", 1, 16, 16, 16, 3, 2, 1, 1, 1),
    Case("tiny_k3", 1, 1, 1, 4, 3, 1, 0, 0, 1),
    Case("tiny_k3s2", 1, 1, 1, 4, 3, 2, 1, 1, 1),
    Case("one_ch_16", 1, 1, 1, 16, 3, 2, 1, 1, 1),
    Case("unet_8", 1, 8, 4, 8, 2, 2, 0, 0, 1),
    Case("same_k3", 1, 4, 4, 8, 3, 1, 1, 0, 1, bias=True),
    Case("k5_s1", 1, 2, 2, 8, 5, 1, 2, 0, 1),
    Case("grouped_g4", 1, 8, 8, 6, 3, 2, 1, 1, 4),
    Case("depthwise_k5", 1, 4, 4, 8, 5, 1, 2, 0, 4),
    Case("dilated_d2", 1, 4, 4, 6, 3, 1, 2, 0, 1, 2),
    Case("grouped_dilated", 1, 4, 6, 6, 3, 2, 1, 1, 2, 2, bias=True),
    Case("outpad_k4s3", 1, 4, 4, 5, 4, 3, 1, 2, 1),
    Case("batch4_k3s2", 4, 4, 4, 5, 3, 2, 1, 1, 1, bias=True),
    Case("anisotropic", 1, 3, 2, (5, 7, 4), (2, 3, 4), (3, 1, 2), (1, 0, 2), (2, 0, 1), 1,
         (1, 2, 1)),
)

# Issue 4: the kernel-size sweep, 1 x 4 -> 4 channels, stride 1, padding (k-1)/2.
SWEEP_KS = tuple(range(1, 32, 2))
SWEEP_VOLUME = {"cpu": 32, "gpu": 64}


def sweep_cases(ks, volume):
    """One case per kernel size ``k`` (odd ``k`` keeps the output size)."""
    return tuple(
        Case(f"k{k}", 1, 4, 4, volume, k, 1, (k - 1) // 2, 0, 1) for k in ks
    )


def select(cases, patterns):
    """Cases whose name matches one of the comma-separated glob ``patterns``."""
    if not patterns:
        return tuple(cases)
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    names = [c.name for c in cases]
    unknown = [p for p in pats if not fnmatch.filter(names, p)]
    if unknown:
        msg = f"no case matches {', '.join(unknown)}; cases: {', '.join(names)}"
        raise ValueError(msg)
    return tuple(c for c in cases if any(fnmatch.fnmatchcase(c.name, p) for p in pats))
