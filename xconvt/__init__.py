"""xconvt: PyTorch's ConvTranspose3d for NumPy and CuPy arrays, without PyTorch.

Public API
----------
conv_transpose3d   the functional form (NumPy on the CPU, CuPy on the GPU)
conv3d             its adjoint, torch.nn.functional.conv3d's semantics
grad               gradients (torch.nn.grad's names): xconvt.grad.conv3d_input, ...
output_shape       the result's shape, validated, without computing anything
ConvTranspose3d    a layer holding weight and bias, initialized like PyTorch's
explain            how a call would be computed: candidates, estimates, reasons
get_memory_budget, set_memory_budget, memory_budget
                   the workspace budget every plan is sized to
get_float32_precision, set_float32_precision, float32_precision
                   "float32" (exact float32 arithmetic) or "tf32" (TF32 tensor cores)
"""

from . import grad
from ._config import (float32_precision, get_float32_precision, get_memory_budget, memory_budget,
                      set_float32_precision, set_memory_budget)
from ._dispatch import conv_transpose3d, explain, output_shape
from ._grad import conv3d
from ._layer import ConvTranspose3d

__version__ = "0.1.0"

__all__ = [
    "ConvTranspose3d",
    "conv3d",
    "conv_transpose3d",
    "explain",
    "float32_precision",
    "get_float32_precision",
    "get_memory_budget",
    "memory_budget",
    "output_shape",
    "set_float32_precision",
    "set_memory_budget",
]
