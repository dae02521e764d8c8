"""Choosing a plan: ``auto``'s decisions, ``measure``'s cache, ``explain``, the
float32 precision setting, and the planner architecture's rules.

These check decisions and bookkeeping, never timings.  GPU choices are
replayed on the CPU with preset device limits (:data:`xconvt._plan.DEVICE_PRESETS`).
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import xconvt
from xconvt import _select
from xconvt._params import ConvParams
from xconvt._plan import DEVICE_PRESETS, Problem, cpu_device


REPO = Path(__file__).resolve().parents[1]


def params(n, cin, cout, size, k, stride=1, padding=0, groups=1, dilation=1):
    size = size if isinstance(size, tuple) else (size,) * 3
    k = k if isinstance(k, tuple) else (k,) * 3
    return ConvParams.from_shapes((n, cin) + size, (cin, cout // groups) + k, None,
                                  stride, padding, 0, groups, dilation)


DEVICES = ["cpu", "h100"]

DECISIONS = [
    # (description, params, expected algorithm)
    ("4ch 32^3 k15", params(1, 4, 4, 32, 15, padding=7), "fft"),
    ("4ch 32^3 k21", params(1, 4, 4, 32, 21, padding=10), "fft"),
    ("4ch 32^3 k31", params(1, 4, 4, 32, 31, padding=15), "fft"),
    ("4ch 64^3 k15", params(1, 4, 4, 64, 15, padding=7), "fft"),
    ("1ch 256^3 k31", params(1, 1, 1, 256, 31, padding=15), "fft"),
    ("k2 s2 unet", params(1, 64, 32, 32, 2, stride=2), "direct"),
    ("k2 s1", params(1, 16, 16, 16, 2), "direct"),
    ("k1", params(1, 4, 4, 32, 1), "direct"),
    ("depthwise k3", params(1, 32, 32, 32, 3, padding=1, groups=32), "direct"),
    ("wide k3 s2", params(2, 64, 32, 32, 3, stride=2, padding=1), "direct"),
]


def problem(p, dtype="float32", device="cpu", budget=256 << 20, op="conv_transpose3d"):
    dev = cpu_device() if device == "cpu" else DEVICE_PRESETS[device]
    return Problem(op, p, dtype, dev, "float32", budget)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("what", "p", "expect"), DECISIONS, ids=[d[0] for d in DECISIONS])
def test_auto_decisions(device, what, p, expect):
    assert _select.choose(problem(p, device=device)).algorithm == expect


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("device", DEVICES)
def test_estimates_are_finite_for_every_dtype(dtype, device):
    for _, p, _ in DECISIONS[:3] + DECISIONS[5:7]:
        ok, rejected = _select.candidates(problem(p, dtype, device))
        assert ok, rejected
        for _, plan in ok:
            assert math.isfinite(plan.estimate) and plan.estimate > 0
            assert plan.workspace >= 0
            assert plan.algorithm in ("direct", "fft")


# The calls of issue 10 that raised under auto: the fused kernel's blocks need
# more shared memory than a block can have.
LARGE_KERNELS = [
    ("64ch k21", (1, 64, 16, 16, 16), (64, 64, 21, 21, 21), 10),
    ("32ch k27", (1, 32, 16, 16, 16), (32, 32, 27, 27, 27), 13),
    ("32ch k31", (1, 32, 16, 16, 16), (32, 32, 31, 31, 31), 15),
]


@pytest.mark.parametrize("device", ["h100", "h200", "a100", "l4"])
@pytest.mark.parametrize(("what", "xs", "ws", "pad"), LARGE_KERNELS,
                         ids=[c[0] for c in LARGE_KERNELS])
def test_large_kernels_choose_fft_where_fused_does_not_fit(device, what, xs, ws, pad):
    e = xconvt.explain(xs, ws, padding=pad, device=device)
    assert e.choice is not None and e.choice.algorithm == "fft"
    reasons = dict((name, why) for name, _, why in e.rejected)
    assert "shared memory" in reasons["cuda.fused"]
    assert str(DEVICE_PRESETS[device].smem_per_block) in reasons["cuda.fused"]
    # the chosen plan applies when asked again by name
    _select.named_plan(e.choice.name, e.problem)


def test_fused_fit_follows_the_device():
    """A100 blocks have 163 KiB of shared memory, H100 blocks 227 KiB: a layer
    between the two runs the fused kernel on one and not on the other."""
    from xconvt.backends.cuda.fused import fused_config

    p = params(1, 32, 32, 16, 15, padding=7)
    need = fused_config(p, "float32", DEVICE_PRESETS["a100"]).smem
    h100 = _select.candidates(problem(p, device="h100"))[0]
    a100_rejected = dict((e.name, why) for e, why in _select.candidates(problem(p, device="a100"))[1])
    if need > DEVICE_PRESETS["a100"].smem_per_block:
        assert "cuda.fused" in a100_rejected
    assert any(e.name == "cuda.fused" for e, _ in h100)


DTYPES = ["float16", "float32", "float64", "complex64"]


@st.composite
def layers(draw):
    """Geometries from tiny to large (channels up to 128, kernels up to 31):
    no arrays are made, only plans."""
    groups = draw(st.sampled_from([1, 1, 2, 4]))
    cin_g = draw(st.sampled_from([1, 2, 4, 16, 64, 128]))
    cout_g = draw(st.sampled_from([1, 2, 4, 16, 64, 128]))
    size = draw(st.tuples(*[st.integers(1, 24)] * 3))
    kernel = draw(st.one_of(st.tuples(*[st.integers(1, 5)] * 3),
                            st.integers(1, 31).map(lambda k: (k, k, k))))
    stride = draw(st.tuples(*[st.integers(1, 3)] * 3))
    dilation = draw(st.tuples(*[st.sampled_from([1, 1, 2, 3])] * 3))
    padding = tuple(draw(st.integers(0, (d * (k - 1)) // 2)) for k, d in zip(kernel, dilation))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    try:
        return ConvParams.from_shapes((draw(st.integers(1, 2)), groups * cin_g) + size,
                                      (groups * cin_g, cout_g) + kernel, None, stride,
                                      padding, output_padding, groups, dilation)
    except ValueError:
        assume(False)


@settings(max_examples=60)
@given(p=layers(), dtype=st.sampled_from(DTYPES),
       device=st.sampled_from(["cpu", "h100", "a100", "l4"]),
       budget=st.sampled_from([1 << 16, 1 << 22, 256 << 20]),
       algorithm=st.sampled_from(["auto", "direct", "fft"]))
def test_chosen_plan_always_applies(p, dtype, device, budget, algorithm):
    """auto (and a forced algorithm) never choose a plan whose own planner
    rejects the problem; CUDA plans fit the device's shared memory."""
    prob = problem(p, dtype, device, budget)
    chosen = _select.choose(prob, algorithm)
    again = _select.named_plan(chosen.name, prob)
    assert again.algorithm == chosen.algorithm
    assert algorithm == "auto" or chosen.algorithm == algorithm
    ok, rejected = _select.candidates(prob)
    assert chosen.estimate == min(q.estimate for e, q in ok
                                  if algorithm == "auto" or e.algorithm == algorithm)
    if chosen.name == "cuda.fused":
        from xconvt.backends.cuda.fused import fused_config

        work = "float64" if prob.real_dtype == "float64" else "float32"
        assert fused_config(p, work, prob.device).smem <= prob.device.smem_per_block
    if chosen.name == "cuda.tile":
        from xconvt.backends.cuda.tile import tile_config

        cfg_t = tile_config(p, 8 if prob.real_dtype == "float64" else 4)
        assert cfg_t is not None and cfg_t.smem <= prob.device.smem_per_block
    if chosen.name == "fft.one_pass":
        assert chosen.workspace <= budget


def test_forced_algorithm_without_a_plan_names_the_reasons():
    p = params(1, 4, 4, 8, 3)
    with pytest.raises(ValueError, match="algorithm='fft' cannot compute this weight_grad.*"
                                         "cpu.fft_weight_grad: .*memory budget"):
        _select.choose(problem(p, op="weight_grad", budget=1), "fft")
    with pytest.raises(ValueError, match="no planner 'cuda.nope'"):
        _select.named_plan("cuda.nope", problem(p, device="h100"))
    with pytest.raises(ValueError, match="cuda.pointwise does not apply: needs a 1x1x1 kernel"):
        _select.named_plan("cuda.pointwise", problem(p, device="h100"))


# -------------------------------------------------------------------- explain
def test_explain_reports_candidates_rejections_and_choice():
    e = xconvt.explain((1, 64, 16, 16, 16), (64, 64, 21, 21, 21), padding=10, device="h100")
    names = [c.name for c in e.candidates]
    assert e.choice is e.candidates[0] and e.choice.name == "fft.chunked"
    assert [c.estimate for c in e.candidates] == sorted(c.estimate for c in e.candidates)
    assert "cuda.fused" not in names and "cuda.gemm" in names
    text = str(e)
    assert "does not apply" in text and "cuda.fused" in text and "estimate ms" in text
    assert "* " in text.splitlines()[5] or any(line.startswith("*") for line in text.splitlines())


def test_explain_on_cpu_matches_the_call():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 9, 9, 9)).astype(np.float32)
    w = rng.standard_normal((2, 3, 7, 7, 7)).astype(np.float32)
    e = xconvt.explain(x.shape, w.shape, padding=3, dtype="float32")
    plan = _select.plan_for("conv_transpose3d", "numpy", e.problem.params, "float32", "float32",
                            xconvt.get_memory_budget(), "auto", (x, w, None))
    assert plan.name == e.choice.name
    forced = xconvt.explain(x.shape, w.shape, padding=3, algorithm="fft")
    assert forced.choice.algorithm == "fft"


def test_explain_gradients_match_the_calls():
    """``operation="input_grad"`` / ``"weight_grad"``: the plans the gradient
    functions run (the CPU's, the call's own choice), and the GPU's conv3d and
    weight-gradient planners on a preset."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 5, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3, 3)).astype(np.float32)
    kw = dict(stride=2, padding=1, output_padding=1)
    gy = rng.standard_normal(xconvt.conv_transpose3d(x, w, **kw).shape).astype(np.float32)
    for operation, op, ops in (("input_grad", "conv3d", (gy, w, None)),
                               ("weight_grad", "weight_grad", (x, gy))):
        e = xconvt.explain(x.shape, w.shape, **kw, operation=operation)
        assert e.problem.op == op
        plan = _select.plan_for(op, "numpy", e.problem.params, "float32", "float32",
                                xconvt.get_memory_budget(), "auto", ops)
        assert plan.name == e.choice.name
    text = str(xconvt.explain(x.shape, w.shape, **kw, operation="input_grad"))
    assert text.startswith(f"conv3d: input {gy.shape}") and f"output {x.shape}" in text
    gpu = xconvt.explain((2, 64, 32, 32, 32), (64, 32, 3, 3, 3), stride=2, padding=1,
                         output_padding=1, device="h200", operation="input_grad")
    assert {c.name for c in gpu.candidates} >= {"cuda.mma_conv3d", "cuda.conv3d_fma"}
    wg = xconvt.explain((8, 256, 8, 8, 8), (256, 128, 4, 4, 4), stride=2, padding=1,
                        device="h200", operation="weight_grad")
    assert wg.choice.name == "cuda.wgrad" and "weight gradient (256, 128, 4, 4, 4)" in str(wg)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    (dict(device="tpu"), ValueError, "device must be"),
    (dict(device=3), TypeError, "device must be"),
    (dict(device="cuda:x"), ValueError, "cuda:N"),
    (dict(dtype="int32"), TypeError, "dtype int32 is not supported"),
    (dict(dtype=object()), TypeError, "dtype must be"),
    (dict(algorithm="measure"), ValueError, "algorithm must be"),
    (dict(bias=1), TypeError, "bias must be True or False"),
    (dict(precision="fp8"), ValueError, "precision must be"),
    (dict(memory_budget=0), ValueError, "nbytes must be a positive"),
    (dict(stride=0), ValueError, "stride must be >= 1"),
    (dict(operation="backward"), ValueError, "operation must be"),
    (dict(operation=None), ValueError, "operation must be"),
])
def test_explain_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        xconvt.explain((1, 2, 4, 4, 4), (2, 2, 3, 3, 3), **kwargs)


def test_explain_cuda_without_a_gpu_says_how_to_replay():
    from .helpers import cuda_device_count

    if cuda_device_count():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="preset"):
        xconvt.explain((1, 2, 4, 4, 4), (2, 2, 3, 3, 3), device="cuda")


@pytest.mark.gpu
def test_cuda_device_limits_come_from_the_device():
    import cupy

    from xconvt._plan import cuda_device

    dev = cuda_device()
    attrs = cupy.cuda.Device().attributes
    assert dev.smem_per_block == attrs["MaxSharedMemoryPerBlockOptin"]
    assert dev.sm_count == attrs["MultiProcessorCount"]
    assert "".join(map(str, dev.compute_capability)) == cupy.cuda.Device().compute_capability


# -------------------------------------------------------------------- measure
def test_measure_times_once_and_caches(monkeypatch):
    calls = []
    real = _select.measure

    def counted(problem, operands):
        calls.append(problem)
        return real(problem, operands)

    monkeypatch.setattr(_select, "measure", counted)
    monkeypatch.setattr(_select, "_PLANS", {})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 5, 5))  # unbatched
    w = rng.standard_normal((2, 3, 3, 3, 3))
    first = xconvt.conv_transpose3d(x, w, stride=2, algorithm="measure")
    second = xconvt.conv_transpose3d(x, w, stride=2, algorithm="measure")
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    ref = xconvt.conv_transpose3d(x, w, stride=2, algorithm="direct")
    np.testing.assert_allclose(first, ref, rtol=1e-12, atol=1e-12)
    xconvt.conv_transpose3d(x.astype(np.float32), w.astype(np.float32), stride=2,
                            algorithm="measure")
    assert len(calls) == 2  # another dtype is another problem


def test_auto_result_matches_forced_algorithm():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 9, 9, 9))
    w = rng.standard_normal((2, 3, 7, 7, 7))
    auto = xconvt.conv_transpose3d(x, w, padding=3)
    fft = xconvt.conv_transpose3d(x, w, padding=3, algorithm="fft")
    np.testing.assert_allclose(auto, fft, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ precision
def test_float32_precision_setting():
    assert xconvt.get_float32_precision() == "float32"
    with xconvt.float32_precision("tf32"):
        assert xconvt.get_float32_precision() == "tf32"
    assert xconvt.get_float32_precision() == "float32"
    old = xconvt.set_float32_precision("tf32")
    try:
        assert old == "float32" and xconvt.get_float32_precision() == "tf32"
    finally:
        xconvt.set_float32_precision(old)
    with pytest.raises(ValueError, match="precision must be one of 'float32', 'tf32'"):
        xconvt.set_float32_precision("bf16")
    with pytest.raises(TypeError, match="precision must be"):
        xconvt.conv_transpose3d(np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 2, 2, 2)),
                                precision=32)


def test_tf32_on_the_cpu_is_float32_exact():
    """Without a TF32 plan the float32 plans run: "tf32" never makes a call
    less accurate than the plans that exist."""
    from .reference import conv_transpose3d_ref

    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 6, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3, 3)).astype(np.float32)
    out = xconvt.conv_transpose3d(x, w, stride=2, precision="tf32")
    ref = conv_transpose3d_ref(x, w, stride=2)
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-6


# --------------------------------------------------------------- architecture
def _private_imports(path):
    """(module, name) pairs of private names that ``path`` imports from a backend."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            mod = ("." * node.level) + node.module
            for alias in node.names:
                if alias.name.startswith("_") and "backends" in (mod + str(path)):
                    found.append((mod, alias.name))
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("cuda", "cpu", "fft", "backends"):
                found.append((base.id, node.attr))
    return found


def _backend_of(path):
    parts = path.relative_to(REPO / "xconvt").parts
    return parts[1] if parts[0] == "backends" and len(parts) > 2 else None


def test_no_module_imports_a_private_name_of_another_backend():
    """Backends share only public names (runtime modules, _params, _plan);
    nothing outside a backend imports its private names."""
    offenders = []
    for path in sorted((REPO / "xconvt").rglob("*.py")):
        own = _backend_of(path)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                target = node.module.split(".")
                if node.level:  # resolve relative to the importing package
                    here = list(path.relative_to(REPO).with_suffix("").parts[:-1])
                    target = here[:len(here) - node.level + 1] + target
                if "backends" not in target:
                    continue
                i = target.index("backends")
                backend = target[i + 1] if len(target) > i + 1 else None
                for alias in node.names:
                    private = alias.name.startswith("_")
                    if private and backend is not None and backend != own:
                        offenders.append(f"{path.relative_to(REPO)}: {alias.name} from "
                                         f"{'.'.join(target)}")
    for path in sorted((REPO / "bench").rglob("*.py")):
        for mod, name in _private_imports(path):
            offenders.append(f"{path.relative_to(REPO)}: {name} from {mod}")
    assert offenders == []


def test_bias_only_geometry_on_every_cpu_plan():
    """A layer whose stride phases have no taps (every output is the bias):
    every planner prices it without dividing by empty runs."""
    from .reference import conv_transpose3d_ref

    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 1, 2, 1, 1))
    w = rng.standard_normal((1, 1, 1, 1, 2))
    b = rng.standard_normal(1)
    kw = dict(stride=(2, 1, 1), padding=(1, 0, 0))
    for algorithm in ("auto", "direct", "fft"):
        out = xconvt.conv_transpose3d(x, w, b, **kw, algorithm=algorithm)
        np.testing.assert_allclose(out, conv_transpose3d_ref(x, w, b, **kw), atol=1e-12)
