"""Timers: wall clock on the CPU, device events on the GPU.

Both run ``warmup`` untimed calls, then timed calls until at least ``repeat``
runs *and* ``min_time`` seconds of measured time are collected (capped at
``max_runs`` runs, and stopped early once ``max_time`` seconds were measured,
after at least one run).  The output of the first call is kept for the
correctness check; the others are dropped as soon as they are made.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

__all__ = ["Timing", "time_cpu", "time_cpu_paired", "time_events"]

MAX_RUNS = 2000


@dataclass
class Timing:
    """Per-run times in milliseconds and the output of the first call."""

    times_ms: list = field(default_factory=list)
    output: object = None
    first_ms: float = float("nan")  # the first (cold) call, wall clock

    @property
    def median(self):
        return statistics.median(self.times_ms)

    @property
    def min(self):
        return min(self.times_ms)

    @property
    def iqr(self):
        if len(self.times_ms) < 4:
            return float("nan")
        q = statistics.quantiles(self.times_ms, n=4)
        return q[2] - q[0]

    @property
    def runs(self):
        return len(self.times_ms)


def _keep_going(times, total_ms, repeat, min_time, max_time, max_runs):
    n = len(times)
    if n == 0:
        return True
    if n >= max_runs or total_ms >= max_time * 1e3:
        return False
    return n < repeat or total_ms < min_time * 1e3


def time_cpu(fn, *, warmup=1, repeat=5, min_time=0.0, max_time=60.0, max_runs=MAX_RUNS):
    """Median-ready wall-clock times of ``fn()`` with :func:`time.perf_counter`."""
    res = Timing()
    t0 = time.perf_counter()
    res.output = fn()
    res.first_ms = (time.perf_counter() - t0) * 1e3
    timed_first = warmup < 1
    if timed_first:
        res.times_ms.append(res.first_ms)
    for _ in range(max(0, warmup - 1)):
        fn()
    total = sum(res.times_ms)
    while _keep_going(res.times_ms, total, repeat, min_time, max_time, max_runs):
        t0 = time.perf_counter()
        fn()
        dt = (time.perf_counter() - t0) * 1e3
        res.times_ms.append(dt)
        total += dt
    return res


def time_cpu_paired(fn, anchor, *, warmup=1, repeat=5, min_time=0.0, max_time=60.0,
                    max_runs=MAX_RUNS):
    """:func:`time_cpu` of ``fn`` with every call followed by a timed call of
    ``anchor``: ``(Timing of fn, Timing of anchor)`` over the same rounds.

    Tiny calls on a shared machine see its state change between blocks of
    calls, which lands on one side when the two are timed one after the
    other; alternating the calls puts every spell on both.
    """
    pc = time.perf_counter
    res, other = Timing(), Timing()
    t0 = pc()
    res.output = fn()
    res.first_ms = (pc() - t0) * 1e3
    anchor()
    for _ in range(max(0, warmup - 1)):
        fn()
        anchor()
    total = 0.0
    while _keep_going(res.times_ms, total, repeat, min_time, max_time, max_runs):
        t0 = pc()
        fn()
        t1 = pc()
        anchor()
        t2 = pc()
        res.times_ms.append((t1 - t0) * 1e3)
        other.times_ms.append((t2 - t1) * 1e3)
        total += (t2 - t0) * 1e3
    return res, other


def time_events(fn, *, new_event, record, elapsed_ms, synchronize, warmup=3, repeat=20,
                min_time=1.0, max_time=60.0, max_runs=MAX_RUNS):
    """Device-event times of ``fn()`` on the current stream.

    ``new_event()`` makes a timing event, ``record(ev)`` records it on the
    stream that ``fn`` launches on, ``elapsed_ms(a, b)`` reads the interval
    once ``b`` completed, ``synchronize()`` waits for the device.  Each run is
    bracketed by its own event pair and waited for (as
    ``cupyx.profiler.benchmark`` does), so runs do not overlap and launch
    overhead that leaves the GPU idle is counted.
    """
    res = Timing()
    synchronize()
    t0 = time.perf_counter()
    res.output = fn()
    synchronize()
    res.first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(max(0, warmup - 1)):
        fn()
    synchronize()
    start, end = new_event(), new_event()
    total = 0.0
    while _keep_going(res.times_ms, total, repeat, min_time, max_time, max_runs):
        record(start)
        fn()
        record(end)
        dt = elapsed_ms(start, end)  # synchronizes on `end`
        res.times_ms.append(dt)
        total += dt
    synchronize()
    return res
