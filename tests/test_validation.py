"""One test per validation rule: the exception type, and a message that names
the argument and the offending value.

Shape rules are checked through both ``conv_transpose3d`` and
``output_shape`` (which validates the same way without computing).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import xconvt

from .helpers import algorithms
from .reference import conv_transpose3d_ref

X_SHAPE = (2, 4, 3, 3, 3)
W_SHAPE = (4, 3, 2, 2, 2)


def _arrays(x_shape=X_SHAPE, w_shape=W_SHAPE, b_shape=None, dtype=np.float64):
    x = np.ones(x_shape, dtype)
    w = np.ones(w_shape, dtype)
    b = None if b_shape is None else np.ones(b_shape, dtype)
    return x, w, b


def _call(entry, x_shape=X_SHAPE, w_shape=W_SHAPE, **kw):
    """Run one of the two validating entry points on shapes (arrays for conv)."""
    if entry == "output_shape":
        return xconvt.output_shape(x_shape, w_shape, **kw)
    x, w, _ = _arrays(x_shape, w_shape)
    return xconvt.conv_transpose3d(x, w, **kw)


both = pytest.mark.parametrize("entry", ["conv_transpose3d", "output_shape"])
E = re.escape


# ------------------------------------------------------------------ shapes
@both
@pytest.mark.parametrize("shape", [(4, 3, 3), (1, 2, 4, 3, 3, 3), (3,)])
def test_input_rank(entry, shape):
    w_shape = (shape[-4] if len(shape) >= 4 else 4,) + W_SHAPE[1:]
    with pytest.raises(ValueError, match=rf"input.*{len(shape)}-D.*{E(str(shape))}"):
        _call(entry, shape, w_shape)


@both
@pytest.mark.parametrize("groups", [0, -2])
def test_groups_positive(entry, groups):
    with pytest.raises(ValueError, match=rf"groups.*groups={groups}\b"):
        _call(entry, groups=groups)


@both
@pytest.mark.parametrize("value", [-1, (0, -2, 0)])
def test_negative_padding(entry, value):
    shown = "(-1, -1, -1)" if value == -1 else "(0, -2, 0)"
    with pytest.raises(ValueError, match=rf"padding.*padding={E(shown)}"):
        _call(entry, padding=value)


@both
def test_negative_output_padding(entry):
    with pytest.raises(ValueError, match=rf"output_padding.*output_padding={E('(0, 0, -1)')}"):
        _call(entry, output_padding=(0, 0, -1))


@both
@pytest.mark.parametrize("value,shown", [(0, "(0, 0, 0)"), ((1, -1, 1), "(1, -1, 1)")])
def test_stride_positive(entry, value, shown):
    with pytest.raises(ValueError, match=rf"stride.*stride={E(shown)}"):
        _call(entry, stride=value)


@both
@pytest.mark.parametrize("value,shown", [(0, "(0, 0, 0)"), ((1, 1, -3), "(1, 1, -3)")])
def test_dilation_positive(entry, value, shown):
    with pytest.raises(ValueError, match=rf"dilation.*dilation={E(shown)}"):
        _call(entry, dilation=value)


@both
@pytest.mark.parametrize("w_shape", [(4, 3, 2, 2), (4, 3, 2, 2, 2, 2)])
def test_weight_rank(entry, w_shape):
    with pytest.raises(ValueError, match=rf"weight.*{len(w_shape)}-D.*{E(str(w_shape))}"):
        _call(entry, w_shape=w_shape)


@both
def test_weight_not_divisible_by_groups(entry):
    with pytest.raises(ValueError, match=rf"groups=3.*{E(str(W_SHAPE))}"):
        _call(entry, groups=3)


@both
def test_channel_mismatch(entry):
    with pytest.raises(ValueError, match=rf"input has 5 channels.*{E(str(W_SHAPE))}"):
        _call(entry, x_shape=(2, 5, 3, 3, 3))


@pytest.mark.parametrize("b_shape", [(5,), (1, 3), (), (6,)])
def test_bias_shape(b_shape):
    x, w, b = _arrays(b_shape=b_shape)
    with pytest.raises(ValueError, match=rf"bias.*shape {E(str(b_shape))}"):
        xconvt.conv_transpose3d(x, w, b)


@both
@pytest.mark.parametrize("x_shape", [(2, 4, 0, 3, 3), (4, 3, 3, 0), (1, 4, 3, 0, 3)])
def test_empty_spatial_input(entry, x_shape):
    with pytest.raises(ValueError, match=rf"input.*{E(str(x_shape))}"):
        _call(entry, x_shape=x_shape)


@both
@pytest.mark.parametrize("w_shape", [(4, 0, 2, 2, 2), (4, 3, 0, 2, 2), (4, 3, 2, 2, 0)])
def test_empty_weight(entry, w_shape):
    with pytest.raises(ValueError, match=rf"weight.*{E(str(w_shape))}"):
        _call(entry, w_shape=w_shape)


@both
def test_zero_input_channels(entry):
    with pytest.raises(ValueError, match=rf"weight.*{E(str((0, 3, 2, 2, 2)))}"):
        _call(entry, x_shape=(2, 0, 3, 3, 3), w_shape=(0, 3, 2, 2, 2))


@both
@pytest.mark.parametrize("kw,shown", [
    (dict(output_padding=1), "output_padding=(1, 1, 1)"),
    (dict(output_padding=(0, 2, 0), stride=2), "output_padding=(0, 2, 0)"),
    (dict(output_padding=(0, 0, 2), stride=2, dilation=2), "output_padding=(0, 0, 2)"),
])
def test_output_padding_smaller_than_stride_or_dilation(entry, kw, shown):
    with pytest.raises(ValueError, match=rf"output_padding.*stride or dilation.*{E(shown)}"):
        _call(entry, **kw)


@both
def test_output_padding_below_dilation_is_accepted(entry):
    # PyTorch's rule is "smaller than stride OR dilation".
    res = _call(entry, output_padding=1, dilation=2)
    assert tuple(getattr(res, "shape", res)) == (2, 3, 6, 6, 6)


@both
@pytest.mark.parametrize("kw", [dict(padding=2), dict(padding=(0, 3, 0))])
def test_output_size_below_one(entry, kw):
    with pytest.raises(ValueError, match=r"output size \(.*-?\d.*\).*must be >= 1"):
        _call(entry, x_shape=(1, 4, 1, 2, 1), **kw)


def test_zero_batch_still_validates():
    x, w, _ = _arrays(x_shape=(0, 4, 1, 1, 1))
    with pytest.raises(ValueError, match="output size"):
        xconvt.conv_transpose3d(x, w, padding=2)


# ------------------------------------------------------------- output_size
@pytest.mark.parametrize("size", [(3, 4, 4), (4, 4, 6), (2, 4, 4)])
def test_output_size_out_of_range(size):
    # x (2, 4, 3, 3, 3), k 2, stride 1 -> only (4, 4, 4) is reachable.
    x, w, _ = _arrays()
    with pytest.raises(ValueError, match=rf"output_size={E(str(size))}.*not reachable"):
        xconvt.conv_transpose3d(x, w, output_size=size)


@pytest.mark.parametrize("size", [(4, 4), (1, 4, 4, 4), (9, 9, 9, 4, 4, 4)])
def test_output_size_wrong_length(size):
    x, w, _ = _arrays()
    with pytest.raises(ValueError, match=rf"output_size.*{len(size)} elements"):
        xconvt.conv_transpose3d(x, w, output_size=size)


def test_output_size_unbatched_takes_4():
    x, w, _ = _arrays()
    out = xconvt.conv_transpose3d(x[0], w, output_size=(3, 7, 6, 7), stride=2)
    assert out.shape == (3, 7, 6, 7)
    with pytest.raises(ValueError, match="output_size.*5 elements"):
        xconvt.conv_transpose3d(x[0], w, output_size=(1, 3, 7, 6, 7), stride=2)


@pytest.mark.parametrize("size", [5, "555", (4.0, 4, 4)])
def test_output_size_bad_type(size):
    x, w, _ = _arrays()
    with pytest.raises(TypeError, match="output_size"):
        xconvt.conv_transpose3d(x, w, output_size=size)


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("which", ["weight", "bias"])
@pytest.mark.parametrize("other", [np.float32, np.float16, np.complex128])
def test_dtype_mismatch(which, other):
    x, w, b = _arrays(b_shape=(3,))
    if which == "weight":
        w = w.astype(other)
    else:
        b = b.astype(other)
    name = np.dtype(other).name
    with pytest.raises(TypeError, match=rf"{which} dtype {name}.*float64"):
        xconvt.conv_transpose3d(x, w, b)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.bool_,
                                   np.longdouble, np.object_, "datetime64[s]"])
def test_unsupported_dtypes(dtype):
    if np.dtype(dtype) == np.float64:  # longdouble is float64 on some platforms
        pytest.skip("longdouble is float64 here")
    x = np.ones(X_SHAPE).astype(dtype) if np.dtype(dtype).kind != "M" else \
        np.zeros(X_SHAPE, dtype)
    w = np.ones(W_SHAPE).astype(dtype) if np.dtype(dtype).kind != "M" else \
        np.zeros(W_SHAPE, dtype)
    with pytest.raises(TypeError, match=rf"dtype {E(np.dtype(dtype).name)}"):
        xconvt.conv_transpose3d(x, w)


def test_python_lists_rejected():
    x, w, _ = _arrays()
    with pytest.raises(TypeError, match=r"input must be a numpy.ndarray.*list"):
        xconvt.conv_transpose3d(x.tolist(), w)
    with pytest.raises(TypeError, match=r"weight must be a numpy.ndarray.*list"):
        xconvt.conv_transpose3d(x, w.tolist())
    with pytest.raises(TypeError, match=r"bias must be a numpy.ndarray.*list"):
        xconvt.conv_transpose3d(x, w, [0.0, 0.0, 0.0])


def test_scalars_and_matrix_rejected():
    x, w, _ = _arrays()
    with pytest.raises(TypeError, match="input"):
        xconvt.conv_transpose3d(1.0, w)
    with pytest.raises(TypeError, match="bias"):
        xconvt.conv_transpose3d(x, w, 1.0)


def test_mixed_libraries_rejected():
    torch = pytest.importorskip("torch")
    x, w, _ = _arrays()
    with pytest.raises(TypeError, match=r"input is a torch array but weight is a numpy"):
        xconvt.conv_transpose3d(torch.from_numpy(x), w)
    with pytest.raises(TypeError, match=r"input is a numpy array but weight is a torch"):
        xconvt.conv_transpose3d(x, torch.from_numpy(w))


# ---------------------------------------------------------- int arguments
@both
@pytest.mark.parametrize("name", ["stride", "padding", "output_padding", "dilation"])
@pytest.mark.parametrize("value", [True, 1.0, "1", None, (1, 1.5, 1), (1, True, 1),
                                   np.float64(1.0), np.True_])
def test_int_params_reject_non_ints(entry, name, value):
    with pytest.raises(TypeError, match=rf"{name} must be an int"):
        _call(entry, **{name: value})


@both
@pytest.mark.parametrize("value", [True, 1.0, "1", None, np.float32(2)])
def test_groups_rejects_non_int(entry, value):
    with pytest.raises(TypeError, match=rf"groups must be an int.*{E(repr(value))}"):
        _call(entry, groups=value)


@both
@pytest.mark.parametrize("name", ["stride", "padding", "output_padding", "dilation"])
@pytest.mark.parametrize("value", [(1, 1), [1, 1, 1, 1], ()])
def test_wrong_length_tuples(entry, name, value):
    with pytest.raises(ValueError, match=rf"{name}.*3.*{len(value)} elements"):
        _call(entry, **{name: value})


@pytest.mark.parametrize("algorithm", algorithms("numpy"))
def test_list_of_three_and_numpy_ints_accepted(algorithm):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(X_SHAPE)
    w = rng.standard_normal(W_SHAPE)
    ref = conv_transpose3d_ref(x, w, stride=(2, 1, 2), padding=(1, 0, 0))
    for stride, padding in [([2, 1, 2], [1, 0, 0]),
                            ((np.int64(2), np.int32(1), np.uint8(2)), (np.int16(1), 0, 0))]:
        assert xconvt.output_shape(x.shape, w.shape, stride, padding) == ref.shape
        out = xconvt.conv_transpose3d(x, w, None, stride, padding, groups=np.int64(1),
                                      algorithm=algorithm)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------- algorithm
@pytest.mark.parametrize("name", ["fast", "DIRECT", "", None, 3])
def test_unknown_algorithm(name):
    x, w, _ = _arrays()
    with pytest.raises(ValueError, match=rf"algorithm={E(repr(name))}") as info:
        xconvt.conv_transpose3d(x, w, algorithm=name)
    for known in ("auto",) + algorithms("numpy"):
        assert repr(known) in str(info.value)


def test_error_order_follows_pytorch():
    """With several problems, the first in PyTorch's order is reported."""
    x, w, _ = _arrays()
    with pytest.raises(ValueError, match="padding"):
        xconvt.conv_transpose3d(x, w, padding=-1, stride=0)
    with pytest.raises(ValueError, match="groups"):
        xconvt.conv_transpose3d(x, w, groups=0, padding=-1)
    with pytest.raises(ValueError, match="^input must be 4-D"):
        xconvt.conv_transpose3d(x[0, 0], w, groups=0)
    with pytest.raises(TypeError, match="stride"):  # argument types come first
        xconvt.conv_transpose3d(x[0, 0], w, stride=1.5)


# ----------------------------------------------------------- memory budget
@pytest.mark.parametrize("value", [0, -1, -2**40])
def test_memory_budget_rejects_non_positive(value):
    before = xconvt.get_memory_budget()
    with pytest.raises(ValueError, match=rf"nbytes.*nbytes={value}\b"):
        xconvt.set_memory_budget(value)
    with pytest.raises(ValueError, match=rf"nbytes={value}\b"):
        with xconvt.memory_budget(value):
            pass  # pragma: no cover
    assert xconvt.get_memory_budget() == before


@pytest.mark.parametrize("value", [1.5, "1024", True, None])
def test_memory_budget_rejects_non_int(value):
    with pytest.raises(TypeError, match="nbytes"):
        xconvt.set_memory_budget(value)


# ------------------------------------------------------------------- layer
@pytest.mark.parametrize("cin,cout,groups,bad", [(4, 6, 3, "in_channels=4"),
                                                 (6, 4, 3, "out_channels=4")])
def test_layer_groups_must_divide(cin, cout, groups, bad):
    with pytest.raises(ValueError, match=rf"{bad}.*groups={groups}"):
        xconvt.ConvTranspose3d(cin, cout, 3, groups=groups)


@pytest.mark.parametrize("kw,match", [
    (dict(groups=0), "groups=0"),
    (dict(in_channels=0), "in_channels=0"),
    (dict(out_channels=-1), "out_channels=-1"),
    (dict(kernel_size=(3, 0, 3)), "kernel_size"),
])
def test_layer_positive_sizes(kw, match):
    args = dict(in_channels=4, out_channels=6, kernel_size=3)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        xconvt.ConvTranspose3d(**args)


@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate", "same"])
def test_layer_padding_mode(mode):
    with pytest.raises(ValueError, match=rf"padding_mode={E(repr(mode))}"):
        xconvt.ConvTranspose3d(2, 2, 3, padding_mode=mode)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu", "cuda:-1", -1, 1.0, "CUDA"])
def test_layer_bad_device(device):
    with pytest.raises(ValueError, match=rf"device={E(repr(device))}"):
        xconvt.ConvTranspose3d(2, 2, 3, device=device)


@pytest.mark.parametrize("dtype", ["int32", np.int64, bool, "not-a-dtype", object])
def test_layer_bad_dtype(dtype):
    with pytest.raises(TypeError, match="dtype"):
        xconvt.ConvTranspose3d(2, 2, 3, dtype=dtype)


@pytest.mark.parametrize("name,value", [("kernel_size", 2.0), ("stride", True),
                                        ("in_channels", 2.0), ("bias", 1)])
def test_layer_bad_types(name, value):
    args = dict(in_channels=2, out_channels=2, kernel_size=3)
    args[name] = value
    with pytest.raises(TypeError, match=name):
        xconvt.ConvTranspose3d(**args)


def test_layer_wrong_length_kernel():
    with pytest.raises(ValueError, match=r"kernel_size.*2 elements"):
        xconvt.ConvTranspose3d(2, 2, (3, 3))


def test_layer_load_state_dict_shape_mismatch():
    m = xconvt.ConvTranspose3d(2, 4, 3, rng=0)
    sd = {"weight": np.zeros((2, 4, 3, 3, 2), np.float32), "bias": np.zeros(4, np.float32)}
    with pytest.raises(ValueError, match=r"weight.*\(2, 4, 3, 3, 2\)"):
        m.load_state_dict(sd)
