"""Problems and plans for conv3d and the weight gradient (local stand-in).

A minimal copy of the planner interface of issue 10 (``xconvt/_plan.py``,
being written meanwhile): the lead folds these planners into the shared
dispatcher and then deletes this module.  One :class:`~xconvt._params.ConvParams`
of the *transposed* convolution describes every operation:

``conv3d``
    ``plan(y, w, b) -> x``: ``y`` of ``params.batched_output_shape``, ``w`` of
    ``params.weight_shape``, ``b`` of ``(params.in_channels,)`` or None; the
    result has ``params.input_shape``.
``weight_grad``
    ``plan(x, gy) -> dw``: ``x`` of ``params.input_shape``, ``gy`` of
    ``params.batched_output_shape``; ``dw`` of ``params.weight_shape``, summed
    over batch and space in a fixed order.

A planner is ``plan(problem) -> Plan | str``, the string being the reason it
does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OPERATIONS", "Device", "Plan", "Problem", "select"]

OPERATIONS = ("conv_transpose3d", "conv3d", "weight_grad")


@dataclass(frozen=True)
class Device:
    """Where a problem runs (read from the device, never hard-coded)."""

    kind: str
    name: str = ""
    index: int = 0
    compute_capability: tuple = (0, 0)
    sm_count: int = 0
    smem_per_block: int = 0
    smem_per_sm: int = 0
    regs_per_sm: int = 0
    cpus: int = 1


@dataclass(frozen=True)
class Problem:
    """One operation on one geometry, dtype and device."""

    op: str
    params: object
    dtype: str
    device: Device
    precision: str = "float32"
    budget: int = 256 << 20


@dataclass
class Plan:
    """One way to compute one problem: ``plan(*operands)``."""

    name: str
    algorithm: str
    estimate: float
    workspace: int
    fn: object = field(repr=False)

    def __call__(self, *operands):
        return self.fn(*operands)


def select(problem, planners, algorithm="auto"):
    """The plan of lowest estimate among ``planners`` (of ``algorithm`` unless
    ``"auto"``); ``ValueError`` listing every planner's reason when none applies."""
    plans, reasons = [], []
    for planner in planners:
        plan = planner(problem)
        if isinstance(plan, str):
            reasons.append(f"{planner.__module__}.{planner.__name__}: {plan}")
        elif algorithm in ("auto", plan.algorithm):
            plans.append(plan)
        else:
            reasons.append(f"{plan.name}: algorithm {plan.algorithm!r}, not {algorithm!r}")
    if not plans:
        msg = (f"no {algorithm!r} plan applies to {problem.op} on {problem.device.kind} "
               f"({problem.dtype}): " + "; ".join(reasons))
        raise ValueError(msg)
    return min(plans, key=lambda p: p.estimate)
