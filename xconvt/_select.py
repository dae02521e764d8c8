"""Choosing a plan: ``auto`` (the lowest estimate), ``measure`` (time the
candidates once) and :func:`explain` (show the choice).

This module knows no backend's internals: it asks every planner registered
for the problem's array library (:mod:`xconvt.backends`) for a plan, keeps
the ones that apply, and compares their own estimates.  A plan is chosen
once per problem and kept (:func:`plan_for`), so a call costs one dictionary
lookup after the first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import backends
from ._plan import DEVICE_PRESETS, Device, Problem, cpu_device

__all__ = ["Explanation", "candidates", "choose", "explain_problem", "named_plan", "plan_for",
           "problem_for"]

AUTO_NAMES = ("auto", "measure")

#: ``measure`` times only the plans whose estimate is within this factor of
#: the lowest (a plan predicted 20x slower is not worth running to find out).
MEASURE_WITHIN = 20.0


def _upcast(entry, problem):
    """A bfloat16 problem as float32 for a planner that does not take bfloat16
    (:class:`xconvt._bf16.Upcast`), or the planner's reason."""
    import math
    from dataclasses import replace

    from ._bf16 import Upcast

    result = entry(replace(problem, dtype="float32", precision="float32"))
    if isinstance(result, str):
        return result
    p = problem.params
    nbytes = 2 * (math.prod(p.input_shape) + math.prod(p.weight_shape)
                  + math.prod(p.batched_output_shape))
    return Upcast(result, nbytes, 2e12 if problem.device.kind == "cuda" else 5e9)


def candidates(problem, algorithm=None):
    """``(applicable, rejected)`` for ``problem``: lists of ``(planner, plan)``
    and ``(planner, reason)``, optionally only planners of ``algorithm``.

    A planner that rejects a bfloat16 problem is asked for the float32 one,
    whose plan then runs with the operands widened and the result rounded
    (exact widening, one rounding: :class:`xconvt._bf16.Upcast`)."""
    ok, rejected = [], []
    for entry in backends.planners(problem.device.array_kind, problem.op):
        if algorithm is not None and entry.algorithm != algorithm:
            continue
        result = entry(problem)
        if isinstance(result, str) and problem.dtype == "bfloat16":
            result = _upcast(entry, problem)
        if isinstance(result, str):
            rejected.append((entry, result))
        else:
            ok.append((entry, result))
    return ok, rejected


def named_plan(name, problem):
    """The plan of the planner called ``name`` (``"cuda.tile"``, ...), or
    ``ValueError`` with its reason where it does not apply (tests and
    benchmarks force variants with it)."""
    entries = backends.planners(problem.device.array_kind, problem.op)
    for entry in entries:
        if entry.name == name:
            result = entry(problem)
            if isinstance(result, str):
                msg = f"{name} does not apply: {result}"
                raise ValueError(msg)
            return result
    msg = (f"no planner {name!r} for {problem.device.array_kind} arrays; there are "
           f"{', '.join(e.name for e in entries)}")
    raise ValueError(msg)


def problem_for(op, params, array, precision="float32", budget=None):
    """The :class:`Problem` of ``op`` on ``params`` with operands like ``array``
    (a NumPy or CuPy array: its dtype and device)."""
    from ._config import get_memory_budget
    from ._params import dtype_name

    if type(array).__module__.startswith("cupy"):
        from ._plan import cuda_device

        device = cuda_device(array.device.id)
    else:
        device = cpu_device()
    return Problem(op, params, dtype_name(array.dtype), device, precision,
                   get_memory_budget() if budget is None else budget)


def _no_plan(problem, algorithm, rejected):
    reasons = "; ".join(f"{entry.name}: {why}" for entry, why in rejected)
    what = f"algorithm={algorithm!r}" if algorithm not in (None, "auto") else "no algorithm"
    msg = (f"{what} cannot compute this {problem.op} ({problem.dtype} on "
           f"{problem.device.describe()}): {reasons or 'no planner is registered'}")
    return ValueError(msg)


def choose(problem, algorithm="auto"):
    """The applicable plan with the lowest estimate (``algorithm`` ``"auto"``,
    or ``"direct"``/``"fft"`` to choose among that algorithm's plans only);
    ``ValueError`` naming every planner's reason where none applies."""
    ok, rejected = candidates(problem, None if algorithm == "auto" else algorithm)
    if not ok:
        raise _no_plan(problem, algorithm, rejected)
    return min(ok, key=lambda c: c[1].estimate)[1]


def _timer(kind):
    if kind == "cupy":
        import cupy

        def now():
            cupy.cuda.get_current_stream().synchronize()
            return time.perf_counter()

        return now
    return time.perf_counter


def measure(problem, operands):
    """Time every applicable plan on ``operands`` (one warm-up call each, then
    one timed call; the CuPy stream is synchronized before reading the clock)
    and return the fastest.  Plans estimated more than :data:`MEASURE_WITHIN`
    times slower than the best estimate are not timed."""
    ok, rejected = candidates(problem)
    if not ok:
        raise _no_plan(problem, "measure", rejected)
    best_estimate = min(p.estimate for _, p in ok)
    now = _timer(problem.device.array_kind)
    times = {}
    for _, p in ok:
        if p.estimate > MEASURE_WITHIN * best_estimate:
            continue
        p(*operands)  # warm-up: kernels, caches
        t0 = now()
        p(*operands)
        times[p] = now() - t0
    return min(times, key=times.get)


_PLANS = {}
_PLANS_MAX = 4096


def plan_for(op, kind, params, dtype, precision, budget, algorithm, operands):
    """The plan a call runs: chosen (``auto``, forced algorithm) or measured
    (``measure``, on ``operands``) once per problem, then kept.  ``kind`` is
    ``"numpy"`` or ``"cupy"`` (the CUDA device is the first operand's)."""
    dev_index = operands[0].device.id if kind == "cupy" else -1
    key = (op, kind, params, dtype, precision, budget, algorithm, dev_index)
    plan = _PLANS.get(key)
    if plan is None:
        if kind == "cupy":
            from ._plan import cuda_device

            device = cuda_device(dev_index)
        else:
            device = cpu_device()
        problem = Problem(op, params, dtype, device, precision, budget)
        if algorithm == "measure":
            plan = measure(problem, operands)
        else:
            plan = choose(problem, algorithm)
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


# ------------------------------------------------------------------ explain
@dataclass
class Explanation:
    """What ``auto`` would do for one problem, and why.

    Attributes
    ----------
    problem : Problem
        The validated problem (operation, geometry, dtype, device, ...).
    candidates : list of Plan
        Every plan that applies, cheapest first (``estimate`` in seconds,
        ``workspace`` in bytes, ``detail``).
    rejected : list of (str, str, str)
        ``(planner, algorithm, reason)`` for every planner that does not apply.
    choice : Plan or None
        The plan ``auto`` (or the forced algorithm) runs; None if none applies.
    """

    problem: Problem
    candidates: list
    rejected: list
    choice: object
    algorithm: str = "auto"
    notes: list = field(default_factory=list)

    def __str__(self):
        p = self.problem.params
        shapes = {  # operands -> result, in each operation's own terms
            "conv3d": f"input {p.batched_output_shape}, weight {p.weight_shape}, "
                      f"output {p.input_shape}",
            "weight_grad": f"input {p.input_shape}, grad_output {p.batched_output_shape}, "
                           f"weight gradient {p.weight_shape}",
        }.get(self.problem.op, f"input {p.input_shape}, weight {p.weight_shape}, "
                               f"output {p.batched_output_shape}")
        head = [f"{self.problem.op}: {shapes}, {self.problem.dtype}"
                + (f" ({self.problem.precision})" if self.problem.dtype in ("float32", "complex64")
                   else ""),
                f"on {self.problem.device.describe()}, memory budget "
                f"{self.problem.budget / 2**20:.0f} MiB, algorithm={self.algorithm!r}",
                f"{p.flops / 1e9:.3g} GFLOP useful"]
        head += self.notes
        rows = [("", "plan", "algorithm", "estimate ms", "workspace MiB", "detail")]
        for c in self.candidates:
            rows.append(("*" if c is self.choice else "", c.name, c.algorithm,
                         f"{c.estimate * 1e3:.4g}", f"{c.workspace / 2**20:.1f}", c.detail))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r[:5], widths)) + "  " + r[5]
                 for r in rows]
        lines = [line.rstrip() for line in lines]
        out = head + [""] + lines
        if self.rejected:
            out += ["", "does not apply:"]
            out += [f"  {name} ({alg}): {why}" for name, alg, why in self.rejected]
        if self.choice is None:
            out += ["", "no plan applies"]
        return "\n".join(out)

    def _repr_pretty_(self, printer, cycle):  # IPython
        printer.text(str(self))


def explain_problem(problem, algorithm="auto"):
    """The :class:`Explanation` of ``problem``."""
    ok, rejected = candidates(problem)
    ok.sort(key=lambda c: c[1].estimate)
    allowed = [p for e, p in ok if algorithm == "auto" or e.algorithm == algorithm]
    choice = allowed[0] if allowed else None
    return Explanation(problem, [p for _, p in ok],
                       [(e.name, e.algorithm, why) for e, why in rejected], choice, algorithm)


def resolve_device(device):
    """A :class:`Device` from ``"cpu"``, ``"cuda"``, ``"cuda:N"``, a preset
    name of :data:`~xconvt._plan.DEVICE_PRESETS` or a :class:`Device`."""
    if isinstance(device, Device):
        return device
    if not isinstance(device, str):
        msg = (f"device must be 'cpu', 'cuda', 'cuda:N', one of "
               f"{', '.join(map(repr, DEVICE_PRESETS))} or an xconvt Device, got {device!r}")
        raise TypeError(msg)
    if device == "cpu":
        return cpu_device()
    if device in DEVICE_PRESETS:
        return DEVICE_PRESETS[device]
    if device == "cuda" or device.startswith("cuda:"):
        index = None
        if device != "cuda":
            try:
                index = int(device[5:])
            except ValueError:
                index = -1
            if index < 0:
                msg = f"device must be 'cuda:N' with N a device index >= 0, got {device!r}"
                raise ValueError(msg)
        try:
            from ._plan import cuda_device

            return cuda_device(index)
        except Exception as e:  # no CuPy, no driver, no such device
            msg = (f"device={device!r} needs CuPy and a visible CUDA device ({e}); to see "
                   f"the choice without one, pass a preset's limits: device="
                   f"{' or '.join(map(repr, DEVICE_PRESETS))}")
            raise ValueError(msg) from None
    msg = (f"device must be 'cpu', 'cuda', 'cuda:N' or one of "
           f"{', '.join(map(repr, DEVICE_PRESETS))}, got {device!r}")
    raise ValueError(msg)
