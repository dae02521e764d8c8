"""Hypothesis strategies for valid ``conv_transpose3d`` configurations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from .helpers import random_array
from .reference import conv_transpose3d_ref, out_size_ref

triples = st.tuples


@dataclass(frozen=True)
class Config:
    """One convolution: shapes and (possibly int / list / tuple) arguments."""

    batch: object  # None = unbatched 4-D input
    groups: int
    cin_g: int
    cout_g: int
    in_size: tuple
    kernel: tuple
    stride: object
    padding: object
    output_padding: object
    dilation: object
    bias: bool

    @property
    def in_channels(self):
        return self.groups * self.cin_g

    @property
    def out_channels(self):
        return self.groups * self.cout_g

    @property
    def input_shape(self):
        lead = (self.in_channels,) if self.batch is None else (self.batch, self.in_channels)
        return lead + self.in_size

    @property
    def weight_shape(self):
        return (self.in_channels, self.cout_g) + self.kernel

    @property
    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding,
                    output_padding=self.output_padding, groups=self.groups,
                    dilation=self.dilation)

    @property
    def out_size(self):
        return out_size_ref(self.in_size, self.kernel, self.stride, self.padding,
                            self.output_padding, self.dilation)

    @property
    def output_shape(self):
        lead = ((self.out_channels,) if self.batch is None
                else (self.batch, self.out_channels))
        return lead + self.out_size

    def arrays(self, seed, dtype):
        """Host arrays ``(x, w, b)`` of ``dtype`` from ``seed`` (b may be None)."""
        rng = np.random.default_rng(seed)
        x = random_array(rng, self.input_shape, dtype)
        w = random_array(rng, self.weight_shape, dtype)
        b = random_array(rng, (self.out_channels,), dtype) if self.bias else None
        return x, w, b

    def reference(self, x, w, b, **overrides):
        kw = self.kwargs
        kw.update(overrides)
        return conv_transpose3d_ref(x, w, b, **kw)


def _as_arg(draw, value):
    """Pass a 3-tuple as itself, as a list, or (when uniform) as a plain int."""
    forms = ["tuple", "list"] + (["int"] if len(set(value)) == 1 else [])
    form = draw(st.sampled_from(forms))
    if form == "int":
        return value[0]
    return list(value) if form == "list" else tuple(value)


@st.composite
def configs(draw, max_spatial=5, max_kernel=4, batches=(None, 0, 1, 2), bias=None,
            kernel=None, max_channels=3, max_dilation=3):
    """Random *valid* configurations (those with an output size < 1 are rejected);
    ``kernel`` fixes the kernel size; ``max_channels`` and ``max_dilation`` bound
    the channels per group and the dilation."""
    groups = draw(st.integers(1, 3))
    cin_g = draw(st.integers(1, max_channels))
    cout_g = draw(st.integers(1, max_channels))
    batch = draw(st.sampled_from(batches))
    in_size = draw(triples(*[st.integers(1, max_spatial)] * 3))
    if kernel is None:
        kernel = draw(st.one_of(
            st.just((1, 1, 1)), triples(*[st.integers(1, max_kernel)] * 3)))
    stride = draw(triples(*[st.integers(1, 3)] * 3))
    dilation = draw(triples(*[st.integers(1, max_dilation)] * 3))
    padding = draw(triples(*[st.integers(0, 3)] * 3))
    output_padding = tuple(
        draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    has_bias = draw(st.booleans()) if bias is None else bias
    assume(min(out_size_ref(in_size, kernel, stride, padding, output_padding,
                            dilation)) >= 1)
    return Config(
        batch=batch, groups=groups, cin_g=cin_g, cout_g=cout_g, in_size=in_size,
        kernel=kernel, stride=_as_arg(draw, stride), padding=_as_arg(draw, padding),
        output_padding=_as_arg(draw, output_padding),
        dilation=_as_arg(draw, dilation), bias=has_bias,
    )


seeds = st.integers(0, 2**32 - 1)
