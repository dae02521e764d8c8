"""PyTorch on the CPU as a second oracle (skipped cleanly where torch is absent).

A table of configurations modelled on PyTorch's own ConvTranspose3d tests
(``common_methods_invocations.sample_inputs_conv_transpose3d``,
``common_nn`` and ``common_modules.module_inputs_torch_nn_ConvNd``), then a
seeded fuzz over valid *and* invalid configurations: where torch raises,
xconvt must raise ``ValueError``/``TypeError``; where torch succeeds, xconvt
must return torch's shape and values.
"""

from __future__ import annotations

import numpy as np
import pytest

import xconvt

from .helpers import algorithms, assert_close

torch = pytest.importorskip("torch")
F = torch.nn.functional

ALGORITHMS = algorithms("numpy")
TORCH_TOL = {"float64": 1e-10, "float32": 1e-5}

# (input shape, weight shape, bias shape or None, kwargs)
TORCH_CASES = [
    # sample_inputs_conv_transpose3d
    ((1, 3, 4, 4, 4), (3, 3, 3, 3, 3), (3,),
     dict(stride=(2, 2, 2), padding=2, output_padding=(1, 1, 1), groups=1)),
    ((2, 2, 4, 4, 4), (2, 2, 4, 5, 6), (4,),
     dict(stride=(3, 2, 1), padding=(1, 2, 3), output_padding=(2, 3, 1), groups=2,
          dilation=(4, 4, 4))),
    ((1, 1, 4, 5, 2), (1, 1, 4, 3, 1), (1,),
     dict(stride=2, padding=1, output_padding=1, groups=1, dilation=(2, 3, 2))),
    ((1, 1, 4, 3, 4), (1, 2, 3, 4, 5), None,
     dict(stride=2, padding=1, output_padding=1, groups=1)),
    ((1, 4, 5, 5, 5), (4, 8, 3, 3, 3), None, {}),
    # common_nn: ConvTranspose3d(2, 3, (2, 3, 2)) and its dilated variant
    ((1, 2, 4, 5, 4), (2, 3, 2, 3, 2), (3,), {}),
    ((1, 2, 4, 5, 4), (2, 3, 2, 3, 2), (3,), dict(dilation=(2, 2, 2))),
    # module_inputs_torch_nn_ConvNd: C_in=4, C_out=5, kernel 3, input (2, 4, 3, 4, 5)
    ((2, 4, 3, 4, 5), (4, 5, 3, 3, 3), (5,), {}),
    # test_nn: the documentation's seed example, groups, stride > kernel
    ((2, 16, 5, 10, 12), (16, 33, 3, 5, 2), (33,), dict(stride=(2, 1, 1), padding=(0, 4, 2))),
    ((2, 6, 3, 3, 3), (6, 2, 3, 3, 3), (6,), dict(groups=3, stride=2, padding=1,
                                                   output_padding=1)),
    ((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), None, dict(stride=3, output_padding=2)),
    ((1, 2, 3, 4, 3), (2, 2, 3, 2, 3), (2,), dict(stride=2, dilation=3, output_padding=2)),
    ((2, 3, 3, 3, 3), (3, 2, 1, 1, 1), (2,), dict(stride=(1, 2, 3), output_padding=(0, 1, 2))),
    ((1, 2, 6, 6, 6), (2, 3, 6, 5, 4), (3,), dict(padding=(2, 2, 1))),
]


def _ids():
    return [f"case{i}" for i in range(len(TORCH_CASES))]


def _torch(a):
    return None if a is None else torch.from_numpy(np.array(a, copy=True))


def _arrays(rng, xs, ws, bs, dtype):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = None if bs is None else rng.standard_normal(bs).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", range(len(TORCH_CASES)), ids=_ids())
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_torch_table(algorithm, case, dtype, unbatched):
    xs, ws, bs, kw = TORCH_CASES[case]
    if unbatched:
        xs = xs[1:]
    x, w, b = _arrays(np.random.default_rng(case), xs, ws, bs, dtype)
    expected = F.conv_transpose3d(_torch(x), _torch(w), _torch(b), **kw).numpy()
    out = xconvt.conv_transpose3d(x, w, b, **kw, algorithm=algorithm)
    assert type(out) is np.ndarray and out.dtype == np.dtype(dtype)
    assert out.shape == expected.shape
    assert_close(out, expected, tol=TORCH_TOL[dtype])


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("full", [False, True], ids=["spatial", "full"])
def test_output_size_matches_torch_module(full, unbatched):
    """Functional ``output_size`` equals the module's ``forward(x, output_size)``."""
    m = torch.nn.ConvTranspose3d(4, 6, (3, 2, 3), stride=(2, 3, 2), padding=(1, 0, 1),
                                 groups=2, dilation=(1, 2, 1)).double()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3, 4, 2) if not unbatched else (4, 3, 4, 2))
    w = m.weight.detach().numpy()
    b = m.bias.detach().numpy()
    lead = (2, 6) if not unbatched else (6,)
    for spatial in [(5, 12, 3), (6, 14, 4), (5, 13, 4)]:
        size = lead + spatial if full else spatial
        expected = m(torch.from_numpy(x), output_size=list(size)).detach().numpy()
        out = xconvt.conv_transpose3d(x, w, b, stride=(2, 3, 2), padding=(1, 0, 1),
                                      groups=2, dilation=(1, 2, 1), output_size=size)
        assert out.shape == expected.shape == lead + spatial
        assert_close(out, expected, tol=1e-10)


# ------------------------------------------------------------------- fuzz
_MUTATIONS = (
    "neg_padding", "neg_output_padding", "zero_stride", "zero_dilation", "zero_groups",
    "neg_groups", "groups_not_dividing", "channel_mismatch", "bias_wrong_len",
    "bias_2d", "zero_spatial", "zero_cout", "zero_kernel", "output_padding_too_big",
    "output_too_small", "input_3d", "input_6d", "weight_4d", "weight_6d", "zero_cin",
    "weight_float32", "bias_float32",
)


def _fuzz_config(seed):
    """A configuration from ``seed``: valid ~half of the time, else one rule broken."""
    rng = np.random.default_rng([2024, seed])
    ri = lambda lo, hi, n=None: (int(rng.integers(lo, hi + 1)) if n is None  # noqa: E731
                                 else tuple(int(v) for v in rng.integers(lo, hi + 1, n)))
    groups = ri(1, 3)
    cig, cog = ri(1, 3), ri(1, 3)
    n = ri(0, 2) if rng.random() < 0.8 else None
    in_size, kernel = ri(1, 5, 3), ri(1, 4, 3)
    stride, dilation, padding = ri(1, 3, 3), ri(1, 3, 3), ri(0, 3, 3)
    op = tuple(ri(0, max(s, d) - 1) for s, d in zip(stride, dilation))
    xs = ((groups * cig,) if n is None else (n, groups * cig)) + in_size
    ws = (groups * cig, cog) + kernel
    bs = (groups * cog,) if rng.random() < 0.5 else None
    kw = dict(stride=stride, padding=padding, output_padding=op, groups=groups,
              dilation=dilation)
    mutation = None
    if rng.random() < 0.5:
        mutation = _MUTATIONS[int(rng.integers(len(_MUTATIONS)))]
        ax = int(rng.integers(3))

        def at(t, v):
            t = list(t)
            t[ax] = v
            return tuple(t)

        if mutation == "neg_padding":
            kw["padding"] = at(padding, -ri(1, 2))
        elif mutation == "neg_output_padding":
            kw["output_padding"] = at(op, -1)
        elif mutation == "zero_stride":
            kw["stride"] = at(stride, 0)
        elif mutation == "zero_dilation":
            kw["dilation"] = at(dilation, 0)
        elif mutation == "zero_groups":
            kw["groups"] = 0
        elif mutation == "neg_groups":
            kw["groups"] = -groups
        elif mutation == "groups_not_dividing":
            kw["groups"] = groups * cig + 1
        elif mutation == "channel_mismatch":
            xs = xs[:-4] + (xs[-4] + 1,) + xs[-3:]
        elif mutation == "bias_wrong_len":
            bs = (groups * cog + ri(1, 2),)
        elif mutation == "bias_2d":
            bs = (1, groups * cog)
        elif mutation == "zero_spatial":
            xs = xs[:-3 + ax] + (0,) + xs[len(xs) - 3 + ax + 1:]
        elif mutation == "zero_cout":
            ws = (ws[0], 0) + ws[2:]
        elif mutation == "zero_kernel":
            ws = ws[:2 + ax] + (0,) + ws[3 + ax:]
        elif mutation == "output_padding_too_big":
            kw["output_padding"] = at(op, max(stride[ax], dilation[ax]) + ri(0, 1))
        elif mutation == "output_too_small":
            kw["padding"] = at(padding, ri(3, 6))
        elif mutation == "input_3d":
            xs = xs[-3:]
        elif mutation == "input_6d":
            xs = (1,) + xs if len(xs) == 5 else (1, 1) + xs
        elif mutation == "weight_4d":
            ws = ws[:4]
        elif mutation == "weight_6d":
            ws = ws + (1,)
        elif mutation == "zero_cin":
            xs = xs[:-4] + (0,) + xs[-3:]
            ws = (0,) + ws[1:]
    dtypes = {"weight_float32": ("float64", "float32", "float64"),
              "bias_float32": ("float64", "float64", "float32")}.get(mutation)
    if mutation == "bias_float32" and bs is None:
        bs = (groups * cog,)
    return xs, ws, bs, kw, mutation, dtypes


def test_fuzz_is_balanced():
    muts = [_fuzz_config(s)[4] for s in range(200)]
    assert 60 <= sum(m is None for m in muts) <= 140
    assert len(set(muts) - {None}) >= 15


def _torch_outcome(xs, ws, bs, kw, rng, dtypes=None):
    """``(arrays, result, error)`` of torch on random data of these shapes."""
    x, w, b = _arrays(rng, xs, ws, bs, "float64")
    if dtypes is not None:
        x, w = x.astype(dtypes[0]), w.astype(dtypes[1])
        b = None if b is None else b.astype(dtypes[2])
    try:
        return (x, w, b), F.conv_transpose3d(_torch(x), _torch(w), _torch(b), **kw).numpy(), None
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, ValueError, ...
        return (x, w, b), None, exc


@pytest.mark.parametrize("seed", range(200))
def test_fuzz_against_torch(seed):
    xs, ws, bs, kw, mutation, dtypes = _fuzz_config(seed)
    rng = np.random.default_rng(seed)
    (x, w, b), expected, torch_error = _torch_outcome(xs, ws, bs, kw, rng, dtypes)
    # torch skips its argument checks for a zero batch (it returns an empty
    # tensor even for dilation 0 or a zero-size output); xconvt applies the
    # rules regardless, so judge validity on the same configuration with N=1.
    _, _, rules_error = (_torch_outcome((1,) + xs[1:], ws, bs, kw, rng, dtypes)
                         if len(xs) == 5 and xs[0] == 0 else (None, None, torch_error))
    # output_shape takes no bias: judge it on the configuration without one.
    probe = (1,) + xs[1:] if len(xs) == 5 and xs[0] == 0 else xs
    _, _, shape_error = _torch_outcome(probe, ws, None, kw, rng)

    if shape_error is not None:
        with pytest.raises((ValueError, TypeError)):
            xconvt.output_shape(xs, ws, **kw)
    for algorithm in ALGORITHMS:
        if rules_error is not None:
            with pytest.raises((ValueError, TypeError)):
                xconvt.conv_transpose3d(x, w, b, **kw, algorithm=algorithm)
            continue
        out = xconvt.conv_transpose3d(x, w, b, **kw, algorithm=algorithm)
        assert out.shape == expected.shape, (mutation, xs, ws, kw)
        assert xconvt.output_shape(xs, ws, **kw) == expected.shape
        assert_close(out, expected, tol=TORCH_TOL["float64"], what=f"{algorithm} {mutation}")
