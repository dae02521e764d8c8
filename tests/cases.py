"""Named explicit configurations shared by the CPU and GPU tests.

Each pins down a geometry that has broken transposed convolutions before:
stride phases, output_padding past the written region, dilation sharing a
factor with the stride, kernels larger than the input, pure upsampling.
"""

from __future__ import annotations

import zlib

import numpy as np

from .helpers import random_array

# (input shape, weight shape, bias?, kwargs)
CASES = {
    "seed_example": ((2, 16, 5, 10, 12), (16, 33, 3, 5, 2), True,
                     dict(stride=(2, 1, 1), padding=(0, 4, 2))),
    "seed_example_unbatched": ((16, 4, 6, 8), (16, 33, 3, 5, 2), True,
                               dict(stride=(2, 1, 1), padding=(0, 4, 2))),
    "unet_upsample_k2s2": ((2, 4, 3, 4, 5), (4, 3, 2, 2, 2), True, dict(stride=2)),
    "upsample_k3s3": ((1, 2, 2, 3, 2), (2, 2, 3, 3, 3), False, dict(stride=3)),
    "kernel_1x1x1_stride2": ((2, 3, 3, 3, 3), (3, 4, 1, 1, 1), True,
                             dict(stride=2, output_padding=1)),
    "stride_gt_kernel": ((1, 2, 3, 2, 4), (2, 3, 2, 2, 2), True,
                         dict(stride=3, output_padding=2)),
    "dilation_shares_stride_factor": ((1, 3, 4, 3, 5), (3, 2, 3, 3, 3), True,
                                      dict(stride=(2, 2, 3), dilation=(2, 4, 2),
                                           padding=(1, 2, 0))),
    "output_padding_past_full": ((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), True,
                                 dict(stride=3, padding=1, output_padding=2)),
    "heavy_padding": ((2, 2, 4, 4, 4), (2, 3, 3, 3, 3), True, dict(padding=2)),
    "depthwise_groups4": ((2, 4, 3, 4, 3), (4, 1, 3, 2, 3), True,
                          dict(groups=4, stride=2, padding=1, output_padding=1)),
    "groups_cout_gt_cin": ((1, 2, 3, 3, 3), (2, 3, 2, 3, 2), False, dict(groups=2)),
    "long_thin_dilated": ((1, 1, 1, 1, 40), (1, 1, 1, 1, 9), True,
                          dict(dilation=(1, 1, 3), padding=(0, 0, 5))),
    "asymmetric_everything": ((2, 3, 1, 7, 2), (3, 2, 4, 1, 3), True,
                              dict(stride=(3, 1, 2), padding=(1, 0, 2),
                                   dilation=(1, 2, 3), output_padding=(2, 0, 1))),
    "kernel_bigger_than_input": ((1, 2, 2, 2, 2), (2, 2, 7, 7, 7), True,
                                 dict(padding=3)),
    "large_kernel_fft_regime": ((2, 3, 6, 6, 6), (3, 4, 5, 5, 5), True,
                                dict(padding=2)),
    "realistic_decoder": ((2, 8, 8, 8, 8), (8, 8, 3, 3, 3), True,
                          dict(stride=2, padding=1, output_padding=1)),
    "single_voxel": ((1, 1, 1, 1, 1), (1, 1, 1, 1, 1), True, {}),
}


def case_arrays(name, dtype, seed=0):
    """Host arrays ``(x, w, b)`` and the kwargs of case ``name``."""
    xs, ws, has_bias, kw = CASES[name]
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    x = random_array(rng, xs, dtype)
    w = random_array(rng, ws, dtype)
    groups = kw.get("groups", 1)
    b = random_array(rng, (ws[1] * groups,), dtype) if has_bias else None
    return x, w, b, kw


# Small geometries for the framework integrations' gradients (gradcheck, opcheck,
# check_grads), (input shape, weight shape, bias?, kwargs): groups, stride, padding,
# output_padding (also >= stride, below dilation), dilation, unbatched input, bias or none.
TRANSPOSED = [
    ((2, 4, 2, 3, 2), (4, 1, 2, 2, 3), True,
     dict(stride=(2, 1, 2), padding=(1, 0, 1), output_padding=(1, 0, 0), groups=2,
          dilation=(1, 2, 1))),
    ((2, 2, 3, 2), (2, 2, 3, 1, 2), False,
     dict(stride=1, padding=(1, 0, 0), output_padding=(1, 0, 1), dilation=2)),
    ((1, 3, 2, 2, 2), (3, 2, 3, 3, 3), True, dict(stride=3, padding=2, output_padding=2)),
]
# conv3d: integer padding, "same" with odd total padding on some axes, "valid"
DIRECT = [
    ((1, 4, 3, 4, 5), (6, 2, 2, 2, 3), True,
     dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1), groups=2)),
    ((3, 4, 5, 4), (2, 3, 2, 3, 2), False, dict(padding="same", dilation=(1, 2, 1))),
    ((1, 2, 5, 5, 4), (3, 2, 3, 2, 2), True, dict(stride=2, padding="valid")),
]
