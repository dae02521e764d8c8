"""xconvt.torch: the custom operators, autograd, torch.compile and the drop-in modules.

Oracles: ``torch.autograd.gradcheck`` (finite differences, float64) for the
gradients, ``torch.library.opcheck`` for the operator registrations, the float64
references of ``tests/reference.py`` and PyTorch's own layers for the modules.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

torch = pytest.importorskip("torch")
xt = pytest.importorskip("xconvt.torch")

from .cases import DIRECT, TRANSPOSED  # noqa: E402
from .helpers import assert_close, cuda_device_count  # noqa: E402
from .reference import conv3d_ref, conv_transpose3d_ref  # noqa: E402
from .strategies import configs, seeds  # noqa: E402

F = torch.nn.functional


def _tensors(shapes, device="cpu", grad=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in shapes:
        if s is None:
            out.append(None)
            continue
        t = torch.randn(s, dtype=torch.float64, generator=g).to(device)
        out.append(t.requires_grad_(grad))
    return out


def _case(case, device="cpu", grad=True):
    xs, ws, bias, kw = case
    cout = ws[1] * kw.get("groups", 1) if case in TRANSPOSED else ws[0]
    return _tensors((xs, ws, (cout,) if bias else None), device, grad), kw


def _transposed_args(kw):
    """The operator's positional geometry from functional keyword arguments."""
    t = lambda v: [v] * 3 if isinstance(v, int) else list(v)  # noqa: E731
    return (t(kw.get("stride", 1)), t(kw.get("padding", 0)), t(kw.get("output_padding", 0)),
            kw.get("groups", 1), t(kw.get("dilation", 1)))


def _direct_args(kw):
    t = lambda v: [v] * 3 if isinstance(v, int) else list(v)  # noqa: E731
    return (t(kw.get("stride", 1)), t(kw.get("padding", 0)), t(kw.get("dilation", 1)),
            kw.get("groups", 1))


# ============================================================================ forward
@pytest.mark.parametrize("case", TRANSPOSED)
@pytest.mark.parametrize("grad", [True, False])
def test_conv_transpose3d_matches_reference(case, grad):
    (x, w, b), kw = _case(case, grad=grad)
    out = xt.conv_transpose3d(x, w, b, **kw)
    assert type(out) is torch.Tensor and out.dtype == torch.float64
    assert (out.grad_fn is not None) == grad
    n = lambda t: None if t is None else t.detach().numpy()  # noqa: E731
    assert_close(out.detach().numpy(), conv_transpose3d_ref(n(x), n(w), n(b), **kw), tol=1e-12)


@pytest.mark.parametrize("case", DIRECT)
@pytest.mark.parametrize("grad", [True, False])
def test_conv3d_matches_reference(case, grad):
    (x, w, b), kw = _case(case, grad=grad)
    out = xt.conv3d(x, w, b, **kw)
    assert (out.grad_fn is not None) == grad
    ref = F.conv3d(x.detach(), w.detach(), None if b is None else b.detach(), **kw)
    if not isinstance(kw.get("padding"), str):
        n = lambda t: None if t is None else t.detach().numpy()  # noqa: E731
        ref = conv3d_ref(n(x), n(w), n(b), **kw)
    assert_close(out.detach().numpy(), np.asarray(ref), tol=1e-12)


def test_eager_paths(monkeypatch):
    """Eager calls: no gradient needed -> xconvt directly (no operator, no autograd
    node); a gradient needed -> the operator's Python function in its
    ``autograd.Function``; the dispatcher only under compile/export/fake tensors."""
    calls = []
    real = xt._apply
    monkeypatch.setattr(xt, "_apply", lambda *a: calls.append(a[0]) or real(*a))
    (x, w, b), kw = _case(TRANSPOSED[0], grad=False)
    assert xt.conv_transpose3d(x, w, b, **kw).grad_fn is None
    with torch.no_grad():
        xt.conv_transpose3d(x.requires_grad_(), w, b, **kw)
    assert not calls
    out = xt.conv_transpose3d(x, w, b, **kw)  # x requires grad now
    assert calls == [xt._conv_transpose3d]
    assert out.grad_fn.name() == "conv_transpose3d_functionBackward"
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        fx = mode.from_tensor(x)
        assert xt._eager([fx]) is False


def test_output_size():
    (x, w, b), kw = _case(TRANSPOSED[0])
    kw = {**kw, "output_padding": 0}
    full = xt.conv_transpose3d(x, w, b, **{**kw, "output_padding": (1, 0, 0)})
    out = xt.conv_transpose3d(x, w, b, **kw, output_size=full.shape[2:])
    torch.testing.assert_close(out, full, rtol=0, atol=0)
    with pytest.raises(ValueError, match="output_size"):
        xt.conv_transpose3d(x, w, b, **kw, output_size=(50, 50, 50))


def test_invalid_arguments_raise_through_the_operator():
    (x, w, b), kw = _case(TRANSPOSED[0])
    with pytest.raises(ValueError, match="stride"):
        xt.conv_transpose3d(x, w, b, **{**kw, "stride": 0})
    with pytest.raises(TypeError, match="stride"):
        xt.conv_transpose3d(x, w, b, **{**kw, "stride": 1.5})
    (y, w3, _), _ = _case(DIRECT[0])
    with pytest.raises(ValueError, match="padding"):
        xt.conv3d(y, w3, None, padding="full")
    with pytest.raises(ValueError, match="stride 1"):
        xt.conv3d(y, w3, None, padding="same", stride=2, groups=2)


# ========================================================================== gradients
def _through_operator(name, kw):
    """``f(x, w, b=None)`` calling ``torch.ops.xconvt.<name>`` itself (the
    dispatcher and the registered autograd, not the eager Function)."""
    op = getattr(torch.ops.xconvt, name).default
    geo = _transposed_args(kw) if name == "conv_transpose3d" else _direct_args(kw)
    return lambda x, w, b=None: op(x, w, b, *geo, "auto", None)


@pytest.mark.parametrize("case", TRANSPOSED)
@pytest.mark.parametrize("path", ["eager", "operator"])
def test_gradcheck_conv_transpose3d(case, path):
    (x, w, b), kw = _case(case)
    args = (x, w) if b is None else (x, w, b)
    f = (_through_operator("conv_transpose3d", kw) if path == "operator" else
         lambda *a: xt.conv_transpose3d(*a, **kw))
    assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("case", DIRECT)
@pytest.mark.parametrize("path", ["eager", "operator"])
def test_gradcheck_conv3d(case, path):
    (x, w, b), kw = _case(case)
    if path == "operator" and isinstance(kw.get("padding"), str):
        pytest.skip("the operator takes integer padding")
    args = (x, w) if b is None else (x, w, b)
    f = (_through_operator("conv3d", kw) if path == "operator" else
         lambda *a: xt.conv3d(*a, **kw))
    assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("algorithm", ["measure", "direct", "fft"])
def test_gradients_with_a_forced_algorithm(algorithm):
    """The backward passes take the forward's algorithm (``"measure"``: auto)."""
    (x, w, b), kw = _case(TRANSPOSED[0])
    ref = torch.autograd.grad(F.conv_transpose3d(x, w, b, **kw).square().sum(), [x, w, b])
    out = xt.conv_transpose3d(x, w, b, **kw, algorithm=algorithm)
    for a, r in zip(torch.autograd.grad(out.square().sum(), [x, w, b]), ref):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)
    if algorithm != "measure":
        (y, w, b), kw = _case(DIRECT[0])
        ref = torch.autograd.grad(F.conv3d(y, w, b, **kw).square().sum(), [y, w, b])
        out = xt.conv3d(y, w, b, **kw, algorithm=algorithm)
        for a, r in zip(torch.autograd.grad(out.square().sum(), [y, w, b]), ref):
            torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


def test_complex_gradients():
    """complex128: gradcheck (PyTorch's conjugate convention) and gradgradcheck."""
    for case, fn in ((TRANSPOSED[0], xt.conv_transpose3d), (DIRECT[0], xt.conv3d)):
        (x, w, b), kw = _case(case)
        args = tuple((t.detach() + 1j * torch.randn_like(t)).requires_grad_() for t in (x, w, b))
        f = lambda *a, fn=fn, kw=kw: fn(*a, **kw)  # noqa: E731
        assert torch.autograd.gradcheck(f, args, fast_mode=True)
        assert torch.autograd.gradgradcheck(f, args[:2], fast_mode=True)


@pytest.mark.parametrize("path", ["eager", "operator"])
def test_gradgradcheck(path):
    """Second derivatives, through the weight-gradient operators' own autograd."""
    (x, w, b), kw = _case(TRANSPOSED[1])
    f = (_through_operator("conv_transpose3d", kw) if path == "operator" else
         lambda *a: xt.conv_transpose3d(*a, **kw))
    assert torch.autograd.gradgradcheck(f, (x, w), fast_mode=True)
    (x, w, b), kw = _case(DIRECT[0])
    f = (_through_operator("conv3d", kw) if path == "operator" else
         lambda *a: xt.conv3d(*a, **kw))
    assert torch.autograd.gradgradcheck(f, (x, w, b), fast_mode=True)


def test_gradients_match_torch_autograd():
    """Every gradient equals PyTorch's own (float64, 1e-10), one input at a time too."""
    for case, ours, theirs in ([(c, xt.conv_transpose3d, F.conv_transpose3d)
                                for c in TRANSPOSED] + [(c, xt.conv3d, F.conv3d)
                                                        for c in DIRECT]):
        (x, w, b), kw = _case(case)
        gy = torch.randn(theirs(x, w, b, **kw).shape, dtype=torch.float64)
        for wrt in ([x, w] + ([b] if b is not None else []), [w], [x]):
            mine = torch.autograd.grad(ours(x, w, b, **kw), wrt, gy)
            ref = torch.autograd.grad(theirs(x, w, b, **kw), wrt, gy)
            for a, r in zip(mine, ref):
                torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


OPS = ("conv_transpose3d", "conv3d", "conv_transpose3d_weight", "conv3d_weight")


def _op_samples(device="cpu"):
    """``(operator, args)`` for every operator on every case (inputs that require
    grad: opcheck then checks the autograd registration too)."""
    out = []
    for grad in (True,):
        for case in TRANSPOSED:
            (x, w, b), kw = _case(case, device, grad)
            geo = _transposed_args(kw)
            out.append(("conv_transpose3d", (x, w, b, *geo, "auto", None)))
            gy = torch.randn(F.conv_transpose3d(x, w, None, **kw).shape,
                             dtype=torch.float64, device=device).requires_grad_(grad)
            out.append(("conv_transpose3d_weight", (x, gy, list(w.shape), *geo, "auto")))
        for case in DIRECT:
            (x, w, b), kw = _case(case, device, grad)
            if isinstance(kw.get("padding"), str):
                continue  # the operator takes integer padding; "same" pads first
            geo = _direct_args(kw)
            out.append(("conv3d", (x, w, b, *geo, "auto", None)))
            gy = torch.randn(F.conv3d(x, w, None, **kw).shape, dtype=torch.float64,
                             device=device).requires_grad_(grad)
            out.append(("conv3d_weight", (x, gy, list(w.shape), *geo, "auto")))
    return out


def test_opcheck():
    seen = set()
    for name, args in _op_samples():
        torch.library.opcheck(getattr(torch.ops.xconvt, name).default, args)
        seen.add(name)
    assert seen == set(OPS)


def test_torch_compile_fullgraph():
    """A small model of both layers compiles without graph breaks (inductor, CPU);
    forward and gradients equal the eager ones."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        xt.ConvTranspose3d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
        torch.nn.ReLU(),
        xt.Conv3d(6, 2, 3, padding="same", dilation=(1, 2, 1))).double()
    x = torch.randn(2, 4, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x)
    out.square().sum().backward()
    got = [x.grad] + [p.grad for p in model.parameters()]
    x.grad = None
    model.zero_grad()
    ref = model(x)
    ref.square().sum().backward()
    want = [x.grad] + [p.grad for p in model.parameters()]
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)


def test_torch_export_dynamic_batch():
    """torch.export sees the operators (not the NumPy calls), with a dynamic batch."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        xt.ConvTranspose3d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
        torch.nn.ReLU(), xt.Conv3d(6, 2, 3, padding="same"))
    x = torch.randn(2, 4, 3, 4, 5)
    batch = torch.export.Dim("batch", min=1, max=8)
    ep = torch.export.export(model, (x,), dynamic_shapes={"input": {0: batch}})
    ops = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert torch.ops.xconvt.conv_transpose3d.default in ops
    assert torch.ops.xconvt.conv3d.default in ops
    x5 = torch.randn(5, 4, 3, 4, 5)
    torch.testing.assert_close(ep.module()(x5), model(x5), rtol=0, atol=0)


# ============================================================================ modules
MODULES = [
    dict(in_channels=4, out_channels=6, kernel_size=(3, 2, 3), stride=(2, 1, 2),
         padding=(1, 0, 1), output_padding=(1, 0, 0), groups=2, dilation=(1, 2, 1)),
    dict(in_channels=3, out_channels=2, kernel_size=2, stride=2, bias=False),
]


def _pair(cls_ours, cls_torch, kw):
    torch.manual_seed(1)
    theirs = cls_torch(**kw, dtype=torch.float64)
    ours = cls_ours(**kw, dtype=torch.float64)
    assert ours.load_state_dict(theirs.state_dict()) is not None
    return ours, theirs


@pytest.mark.parametrize("kw", MODULES)
def test_module_state_dict_and_init(kw):
    torch.manual_seed(3)
    ours = xt.ConvTranspose3d(**kw)
    torch.manual_seed(3)
    theirs = torch.nn.ConvTranspose3d(**kw)
    assert isinstance(ours, torch.nn.ConvTranspose3d)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].shape == b[k].shape
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)  # same init, same RNG draws
    assert isinstance(ours.weight, torch.nn.Parameter)
    assert repr(ours).replace(type(ours).__name__, "") == repr(theirs).replace(
        type(theirs).__name__, "")


@pytest.mark.parametrize("kw", MODULES)
def test_module_forward_and_backward_match_torch(kw):
    ours, theirs = _pair(xt.ConvTranspose3d, torch.nn.ConvTranspose3d, kw)
    x = torch.randn(2, kw["in_channels"], 3, 4, 3, dtype=torch.float64, requires_grad=True)
    out, ref = ours(x), theirs(x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    gy = torch.randn_like(ref)
    g1 = torch.autograd.grad(out, [x, *ours.parameters()], gy)
    g2 = torch.autograd.grad(ref, [x, *theirs.parameters()], gy)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # output_size picks output_padding as PyTorch's forward does (unbatched too)
    size = [s + 1 for s in theirs(x[0], output_size=None).shape[-3:]]
    if all(s > 1 for s in ours.stride):
        torch.testing.assert_close(ours(x[0], output_size=size),
                                   theirs(x[0], output_size=size), rtol=1e-10, atol=1e-10)


def test_module_padding_mode_raises_like_torch():
    with pytest.raises(ValueError) as theirs:
        torch.nn.ConvTranspose3d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError) as ours:
        xt.ConvTranspose3d(2, 2, 3, padding_mode="reflect")
    assert str(ours.value) == str(theirs.value)
    m = xt.ConvTranspose3d(2, 2, 3)
    m.padding_mode = "reflect"
    with pytest.raises(ValueError, match="zeros"):
        m(torch.randn(1, 2, 3, 3, 3))


@pytest.mark.parametrize("kw", [
    dict(in_channels=4, out_channels=6, kernel_size=3, padding="same", groups=2,
         dilation=(1, 2, 1)),
    dict(in_channels=3, out_channels=2, kernel_size=(2, 3, 2), stride=2, padding=1,
         padding_mode="reflect", bias=False),
    dict(in_channels=2, out_channels=2, kernel_size=3, padding=(1, 0, 2),
         padding_mode="circular"),
])
def test_conv3d_module_matches_torch(kw):
    ours, theirs = _pair(xt.Conv3d, torch.nn.Conv3d, kw)
    assert isinstance(ours, torch.nn.Conv3d)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, kw["in_channels"], 5, 6, 5, dtype=torch.float64, requires_grad=True)
    out, ref = ours(x), theirs(x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    gy = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, [x, *ours.parameters()], gy),
                    torch.autograd.grad(ref, [x, *theirs.parameters()], gy)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_sgd_training_matches_torch_step_by_step():
    """Three SGD steps (momentum, weight decay) of a two-layer model: xconvt's
    layers and PyTorch's stay equal after every step."""
    def model(transposed, conv):
        torch.manual_seed(5)
        return torch.nn.Sequential(
            transposed(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
            torch.nn.Tanh(), conv(6, 1, 3, padding="same")).double()

    ours = model(xt.ConvTranspose3d, xt.Conv3d)
    theirs = model(torch.nn.ConvTranspose3d, torch.nn.Conv3d)
    ours.load_state_dict(theirs.state_dict())
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
            for m in (ours, theirs)]
    g = torch.Generator().manual_seed(0)
    for step in range(3):
        x = torch.randn(2, 4, 3, 4, 3, dtype=torch.float64, generator=g)
        target = torch.randn(2, 1, 6, 8, 6, dtype=torch.float64, generator=g)
        losses = []
        for m, opt in zip((ours, theirs), opts):
            opt.zero_grad()
            loss = F.mse_loss(m(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert abs(losses[0] - losses[1]) <= 1e-10 * abs(losses[1]), step
        for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f"{k} step {step}")


# ================================================================================ GPU
def _cuda():
    if not torch.cuda.is_available() or cuda_device_count() == 0:
        pytest.skip("needs a CUDA device visible to PyTorch and CuPy")


@pytest.mark.gpu
def test_gpu_gradcheck_and_opcheck():
    _cuda()
    for name, cases in (("conv_transpose3d", TRANSPOSED), ("conv3d", DIRECT)):
        for case in cases:
            (x, w, b), kw = _case(case, "cuda")
            args = (x, w) if b is None else (x, w, b)
            eager = lambda *a, fn=getattr(xt, name), kw=kw: fn(*a, **kw)  # noqa: E731
            assert torch.autograd.gradcheck(eager, args)
            if not isinstance(kw.get("padding"), str):
                assert torch.autograd.gradcheck(_through_operator(name, kw), args)
    for name, args in _op_samples("cuda"):
        torch.library.opcheck(getattr(torch.ops.xconvt, name).default, args)


@pytest.mark.gpu
def test_gpu_module_and_compile_on_a_side_stream():
    """The layer on CUDA (float32, TF32 off on both sides) equals PyTorch's, eager and
    compiled, also inside ``torch.cuda.stream`` (the ops run on the current stream)."""
    _cuda()
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        _gpu_module_and_compile()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def _gpu_module_and_compile():
    ours, theirs = _pair(xt.ConvTranspose3d, torch.nn.ConvTranspose3d, MODULES[0])
    ours, theirs = ours.float().cuda(), theirs.float().cuda()
    x = torch.randn(4, 4, 8, 9, 8, device="cuda", requires_grad=True)
    compiled = torch.compile(ours, fullgraph=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for m in (ours, compiled):
            out = m(x)
            gx, gw = torch.autograd.grad(out.square().sum(), [x, m.weight])
            ref = theirs(x)
            rx, rw = torch.autograd.grad(ref.square().sum(), [x, theirs.weight])
            for a, r, what in ((out, ref, "out"), (gx, rx, "gx"), (gw, rw, "gw")):
                assert_close(a.detach().cpu().numpy(), r.detach().cpu().numpy().astype(
                    np.float64), "float32", what=what)
    torch.cuda.current_stream().wait_stream(side)


# ========================================================== random valid geometries

@settings(max_examples=12)
@given(cfg=configs(max_spatial=3, max_kernel=3, batches=(None, 1, 2), max_channels=2,
                   max_dilation=2), seed=seeds)
def test_gradcheck_random_geometries(cfg, seed):
    """gradcheck (fast mode) of both operations on random valid geometries: the
    transposed convolution's, and conv3d with the same weight and geometry."""
    x, w, b = (None if a is None else torch.from_numpy(a).requires_grad_()
               for a in cfg.arrays(seed, "float64"))
    kw = cfg.kwargs
    args = (x, w) if b is None else (x, w, b)
    assert torch.autograd.gradcheck(lambda *a: xt.conv_transpose3d(*a, **kw), args,
                                    fast_mode=True)
    y = torch.randn(cfg.output_shape, dtype=torch.float64, requires_grad=True)
    kw3 = {k: v for k, v in kw.items() if k != "output_padding"}
    b3 = None if b is None else torch.randn(cfg.in_channels, dtype=torch.float64,
                                            requires_grad=True)
    args = (y, w) if b3 is None else (y, w, b3)
    assert torch.autograd.gradcheck(lambda *a: xt.conv3d(*a, **kw3), args, fast_mode=True)
