"""xconvt: PyTorch's ConvTranspose3d for NumPy and CuPy arrays, without PyTorch.

Public API
----------
conv_transpose3d   the functional form (NumPy on the CPU, CuPy on the GPU)
output_shape       the result's shape, validated, without computing anything
ConvTranspose3d    a layer holding weight and bias, initialized like PyTorch's
get_memory_budget, set_memory_budget, memory_budget
                   the workspace budget every backend chunks to
"""

from ._config import get_memory_budget, memory_budget, set_memory_budget
from ._dispatch import conv_transpose3d, output_shape
from ._layer import ConvTranspose3d

__version__ = "0.1.0"

__all__ = [
    "ConvTranspose3d",
    "conv_transpose3d",
    "get_memory_budget",
    "memory_budget",
    "output_shape",
    "set_memory_budget",
]
