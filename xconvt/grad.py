"""Gradients of the convolutions, named as in :mod:`torch.nn.grad`.

conv_transpose3d_input    gradient of :func:`xconvt.conv_transpose3d` w.r.t. its input
conv_transpose3d_weight   ... w.r.t. its weight
conv3d_input              gradient of :func:`xconvt.conv3d` w.r.t. its input
conv3d_weight             ... w.r.t. its weight
bias_grad                 gradient w.r.t. the bias of either (a sum of grad_output)

Each is a pure function of arrays and geometry, deterministic; the arrays are
NumPy, CuPy, PyTorch, JAX (also traced, under ``jit``) or any library
:func:`xconvt.conv_transpose3d` takes, and the result is in theirs.

Examples
--------
>>> import numpy as np, xconvt
>>> x = np.ones((1, 2, 3, 3, 3)); w = np.ones((2, 4, 2, 2, 2))
>>> gy = np.ones(xconvt.output_shape(x.shape, w.shape, stride=2))
>>> xconvt.grad.conv_transpose3d_input(x.shape, w, gy, stride=2).shape
(1, 2, 3, 3, 3)
>>> xconvt.grad.conv_transpose3d_weight(x, w.shape, gy, stride=2).shape
(2, 4, 2, 2, 2)
"""

from ._grad import (bias_grad, conv3d_input, conv3d_weight, conv_transpose3d_input,
                    conv_transpose3d_weight)

__all__ = ["bias_grad", "conv3d_input", "conv3d_weight", "conv_transpose3d_input",
           "conv_transpose3d_weight"]
