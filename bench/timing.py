"""Timers: wall clock on the CPU, device events on the GPU.

:func:`time_cpu` and :func:`time_events` time one callable; the paired timers
time an xconvt call and its PyTorch anchor alternately so that the machine's
changes of state fall on both (:func:`time_cpu_paired` call by call on the CPU,
:func:`time_events_paired` block by block on the GPU), and the ratio is taken
from those pairs (:func:`ratio_stats`).

The single timers run ``warmup`` untimed calls, then timed calls until at least ``repeat``
runs *and* ``min_time`` seconds of measured time are collected (capped at
``max_runs`` runs, and stopped early once ``max_time`` seconds were measured,
after at least one run).  The output of the first call is kept for the
correctness check; the others are dropped as soon as they are made.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["EventClock", "PairedTiming", "Timing", "ratio_stats", "time_cpu",
           "time_cpu_paired", "time_events", "time_events_paired"]

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


# ------------------------------------------------------------------ paired, GPU
@dataclass
class EventClock:
    """How one library times a stretch of work on its stream.

    ``new_event()`` makes a timing event, ``record(ev)`` records it on the
    stream the library launches on, ``elapsed_ms(a, b)`` waits for ``b`` and
    returns the milliseconds between ``a`` and ``b``.
    """

    new_event: Callable
    record: Callable
    elapsed_ms: Callable


def ratio_stats(ratios):
    """Median, quartiles and IQR of per-pair ratios ``anchor / xconvt``.

    Quartiles by :func:`statistics.quantiles` with ``method="inclusive"`` (no
    extrapolation beyond the observed values); with fewer than two ratios the
    quartiles are the median itself and the IQR is NaN.  Non-finite ratios
    (a block measured as 0 ms) are left out.
    """
    ratios = [r for r in ratios if math.isfinite(r)]
    if not ratios:
        nan = float("nan")
        return {"median": nan, "q1": nan, "q3": nan, "iqr": nan}
    med = statistics.median(ratios)
    if len(ratios) < 2:
        return {"median": med, "q1": med, "q3": med, "iqr": float("nan")}
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return {"median": med, "q1": q1, "q3": q3, "iqr": q3 - q1}


@dataclass
class PairedTiming:
    """An xconvt call and its anchor timed in alternating blocks.

    ``mine`` and ``theirs`` hold one time per block, in milliseconds *per
    call* (the block's event interval over its number of calls), so their
    medians read like :class:`Timing`'s; ``ratios`` holds, per pair of
    adjacent blocks, ``anchor per-call time / xconvt per-call time``.

    **The ratio is the median of the per-pair ratios** (:attr:`ratio`), not
    the ratio of the two medians (:attr:`ratio_of_medians`, kept for
    information).  A pair's two blocks run within a few milliseconds of each
    other, so the card's state during the pair (boost clock, temperature,
    power cap, another tenant, the host thread's scheduling) is, to first
    order, the same factor on both and cancels *inside* each ratio; the median
    over pairs then discards pairs that straddled a change of state.  The
    ratio of medians cancels such a factor only on average over the run: a
    slow spell that falls on more of one side's blocks than the other's, or
    a bimodal side (e.g. cuDNN alternating between two kernels' speeds), moves
    the two medians independently.  The spread reported with it is the IQR of
    the per-pair ratios (:attr:`ratio_iqr`): the run-to-run noise a single
    ratio carries, which a reproducibility criterion ("within 3%") must be
    compared with.
    """

    mine: Timing
    theirs: Timing
    ratios: list = field(default_factory=list)
    calls: int = 1  # xconvt calls per block
    anchor_calls: int = 1  # anchor calls per block

    @property
    def pairs(self):
        return len(self.ratios)

    @property
    def stats(self):
        return ratio_stats(self.ratios)

    @property
    def ratio(self):
        return self.stats["median"]

    @property
    def ratio_iqr(self):
        return self.stats["iqr"]

    @property
    def ratio_of_medians(self):
        return self.theirs.median / self.mine.median

    def fields(self):
        """The record fields this timing adds (``bench.measure``, ``precisions``)."""
        st = self.stats
        return {
            "timing": "paired-blocks",
            "ratio_paired": st["median"], "ratio_q1": st["q1"], "ratio_q3": st["q3"],
            "ratio_iqr": st["iqr"],
            "ratio_iqr_pct": 100 * st["iqr"] / st["median"] if st["median"] else None,
            "ratio_of_medians": self.ratio_of_medians,
            "pairs": self.pairs, "calls_per_block": self.calls,
            "torch_calls_per_block": self.anchor_calls,
            "torch_ms_paired": self.theirs.median, "torch_ms_min_paired": self.theirs.min,
            "torch_ms_iqr_paired": self.theirs.iqr, "torch_first_ms": self.theirs.first_ms,
        }


def _calls_for(per_call_ms, block_ms, max_calls):
    if not per_call_ms > 0:
        return max_calls
    return max(1, min(max_calls, round(block_ms / per_call_ms)))


def time_events_paired(fn, anchor, *, clock, anchor_clock, synchronize, same_stream=True,
                       warmup=3, min_time=0.2, max_time=10.0, block_ms=5.0, min_pairs=10,
                       max_pairs=MAX_RUNS, max_calls=256):
    """Time ``fn`` (xconvt) and ``anchor`` (cuDNN) in alternating blocks of
    back-to-back calls, each block bracketed by its library's events.

    Warm-up: one call of each, wall-clock timed into ``first_ms`` (the call
    that compiles xconvt's kernels and runs cuDNN's ``benchmark`` autotuner;
    ``fn``'s output is kept in ``mine.output`` and the anchor's in
    ``theirs.output``), then ``warmup - 1`` more calls of each, then a
    calibration: one call of each timed by events gives a first per-call
    time, a block of about ``block_ms`` ms then the per-call time that fixes
    each side's calls per block (about ``block_ms`` of GPU time, at most
    ``max_calls``).  Each side thus gets its own count, so both sides' blocks
    last about as long and sample the same stretches of time.

    Then pairs of blocks, ``fn``'s block first in even pairs and the anchor's
    first in odd ones (so an effect of going second, such as caches warmed or
    clocks raised by the other block, falls on both equally), until each side
    measured ``min_time`` seconds and at least ``min_pairs`` pairs ran, or
    ``max_pairs`` pairs ran, or both sides together measured ``max_time``
    seconds (after at least 3 pairs).

    Within a block the calls are launched back to back without waiting, so the
    block measures the GPU's throughput on the call (host launch overhead only
    counts where it leaves the GPU idle).  When both libraries launch on the
    same stream (``same_stream``) a pair's two blocks are enqueued without a
    host synchronization between them, and the next pair is enqueued before
    this one's events are read, so no block starts on an idle GPU (which
    would add the first launch's latency to whichever side goes first);
    otherwise ``synchronize()`` separates the blocks so that each block's
    events bracket only its own library's work.

    ``block_ms <= 0``: one call per block and a synchronization after every
    block, i.e. each call timed alone as :func:`time_events` does (host
    overhead counts in full), but paired; for comparisons with results timed
    that way.

    Returns a :class:`PairedTiming`.
    """
    one_by_one = not block_ms > 0
    sides = ((fn, clock), (anchor, anchor_clock))
    mine, theirs = Timing(), Timing()
    timings = (mine, theirs)
    pc = time.perf_counter
    for (f, _), t in zip(sides, timings):
        synchronize()
        t0 = pc()
        t.output = f()
        synchronize()
        t.first_ms = (pc() - t0) * 1e3
    for _ in range(max(0, warmup - 1)):
        fn()
        anchor()
    synchronize()
    # two sets of events (pairs alternate between them), so that a pair can be
    # enqueued before the previous one is read
    events = [[(c.new_event(), c.new_event()) for _, c in sides] for _ in range(2)]

    def block(i, calls, k=0):
        f, c = sides[i]
        start, end = events[k][i]
        c.record(start)
        for _ in range(calls):
            f()
        c.record(end)

    def read(i, k=0):
        return sides[i][1].elapsed_ms(*events[k][i])

    calls = [1, 1]
    # each side's count: one call, then a block of about block_ms
    for _ in range(0 if one_by_one else 2):
        for i in (0, 1):
            block(i, calls[i])
            per_call = read(i) / calls[i]
            calls[i] = _calls_for(per_call, block_ms, max_calls)
        synchronize()
    ratios = []
    totals = [0.0, 0.0]

    def complete(k):
        ms = [read(0, k), read(1, k)]
        per_call = [ms[0] / calls[0], ms[1] / calls[1]]
        for i in (0, 1):
            timings[i].times_ms.append(per_call[i])
            totals[i] += ms[i]
        ratios.append(per_call[1] / per_call[0] if per_call[0] > 0 else float("nan"))

    pipelined = same_stream and not one_by_one
    pending = None  # the events set of a pair enqueued and not yet read
    started = 0
    while True:
        n = len(ratios)
        done = n >= min_pairs and min(totals) >= min_time * 1e3
        if n >= max_pairs or done or (n >= 3 and sum(totals) >= max_time * 1e3):
            break
        k = started % 2
        order = (0, 1) if started % 2 == 0 else (1, 0)
        started += 1
        block(order[0], calls[order[0]], k)
        if one_by_one:
            read(order[0], k)  # waits for the block's end, as time_events does
        elif not same_stream:
            synchronize()
        block(order[1], calls[order[1]], k)
        if pipelined:  # the GPU works on this pair while the previous one is read
            if pending is not None:
                complete(pending)
            pending = k
        else:
            complete(k)
    if pending is not None:
        complete(pending)
    synchronize()
    return PairedTiming(mine, theirs, ratios, calls[0], calls[1])
