"""The benchmark's paired GPU timing and ``bench compare``, on the CPU with a
simulated clock: every call advances a fake time by a chosen cost, and fake
"events" record that time, so nothing here measures real time."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import compare as cmp
from bench.timing import EventClock, ratio_stats, time_events, time_events_paired

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


class FakeGpu:
    """A simulated device: ``now`` in ms, advanced by the wrapped calls; events
    record ``now``; ``slow(t)`` scales every cost (the machine's state)."""

    def __init__(self, slow=None):
        self.now = 0.0
        self.slow = slow or (lambda t: 1.0)
        self.log = []  # ("call", name) / ("sync",)
        self.syncs = 0

    def call(self, name, cost_ms, result=None):
        def f():
            self.now += cost_ms * self.slow(self.now)
            self.log.append(name)
            return result

        return f

    def clock(self):
        def new_event():
            return {"t": None}

        def record(ev):
            ev["t"] = self.now

        return EventClock(new_event, record, lambda a, b: b["t"] - a["t"])

    def synchronize(self):
        self.syncs += 1
        self.log.append("sync")


def _paired(gpu, a_ms, b_ms, **kw):
    kw.setdefault("warmup", 2)
    kw.setdefault("min_time", 0.05)
    return time_events_paired(gpu.call("a", a_ms, "out-a"), gpu.call("b", b_ms, "out-b"),
                              clock=gpu.clock(), anchor_clock=gpu.clock(),
                              synchronize=gpu.synchronize, **kw)


def test_ratio_stats():
    st = ratio_stats([1.0, 2.0, 3.0, 4.0, 5.0])
    assert st["median"] == 3.0 and st["q1"] == 2.0 and st["q3"] == 4.0 and st["iqr"] == 2.0
    assert math.isnan(ratio_stats([2.0])["iqr"]) and ratio_stats([2.0])["median"] == 2.0
    assert ratio_stats([2.0, float("nan"), 2.0])["median"] == 2.0
    assert math.isnan(ratio_stats([])["median"])


def test_paired_constant_costs():
    gpu = FakeGpu()
    t = _paired(gpu, 1.0, 3.0, block_ms=5.0)
    assert t.mine.output == "out-a" and t.theirs.output == "out-b"
    assert (t.calls, t.anchor_calls) == (5, 2)  # about 5 ms of GPU time a block
    assert t.ratio == pytest.approx(3.0) and t.ratio_iqr == pytest.approx(0.0)
    assert t.mine.median == pytest.approx(1.0) and t.theirs.median == pytest.approx(3.0)
    assert t.ratio_of_medians == pytest.approx(3.0)
    # each side measured at least min_time, and at least min_pairs pairs
    assert sum(t.mine.times_ms) * t.calls >= 50 and sum(t.theirs.times_ms) * 2 >= 50
    assert t.pairs >= 10
    f = t.fields()
    assert f["timing"] == "paired-blocks" and f["ratio_paired"] == pytest.approx(3.0)
    assert f["pairs"] == t.pairs and f["torch_ms_paired"] == pytest.approx(3.0)


def test_paired_blocks_alternate_order_and_run_back_to_back():
    gpu = FakeGpu()
    t = _paired(gpu, 1.0, 3.0, block_ms=5.0, min_pairs=4, min_time=0.0)
    syncs = [i for i, k in enumerate(gpu.log) if k == "sync"]
    timed = gpu.log[syncs[-2] + 1:syncs[-1]]  # after the calibration, before the end
    a, b = ["a"] * t.calls, ["b"] * t.anchor_calls
    # ABBA..., no synchronization in between (the next pair is enqueued before the
    # previous one is read, hence one pair beyond min_pairs)
    assert t.pairs == 5
    assert timed == sum(((a + b) if i % 2 == 0 else (b + a) for i in range(5)), [])


def test_paired_cancels_a_slow_spell_shared_by_both():
    # the machine runs 1.5x slower in every other 37 ms: a pair inside one spell
    # sees the same factor on both sides; the median over pairs ignores the
    # pairs that straddle a change
    gpu = FakeGpu(slow=lambda t: 1.5 if int(t // 37) % 2 else 1.0)
    t = _paired(gpu, 1.0, 3.0, block_ms=5.0, min_time=0.5)
    assert t.ratio == pytest.approx(3.0)
    assert t.stats["q1"] == pytest.approx(3.0) and t.stats["q3"] == pytest.approx(3.0)
    assert max(t.mine.times_ms) == pytest.approx(1.5)  # the spells did happen


def test_paired_one_call_per_block():
    gpu = FakeGpu()
    t = _paired(gpu, 0.2, 0.4, block_ms=0, min_pairs=3, min_time=0.0)
    assert (t.calls, t.anchor_calls) == (1, 1) and t.ratio == pytest.approx(2.0)


def test_paired_separate_streams_synchronize_between_blocks():
    gpu = FakeGpu()
    t = _paired(gpu, 1.0, 1.0, block_ms=2.0, min_pairs=2, min_time=0.0, same_stream=False)
    syncs = [i for i, k in enumerate(gpu.log) if k == "sync"]
    # the two pairs: a a sync b b | b b sync a a | final sync
    assert gpu.log[syncs[-4] + 1:] == ["a", "a", "sync", "b", "b", "b", "b", "sync", "a",
                                       "a", "sync"]
    assert t.ratio == pytest.approx(1.0)


def test_paired_max_time_caps_the_run():
    gpu = FakeGpu()
    t = _paired(gpu, 2.0, 2.0, block_ms=5.0, min_time=100.0, max_time=0.2)
    assert 3 <= t.pairs < 100


def test_time_events_with_the_fake_clock():
    gpu = FakeGpu()
    c = gpu.clock()
    t = time_events(gpu.call("a", 0.5, 1), new_event=c.new_event, record=c.record,
                    elapsed_ms=c.elapsed_ms, synchronize=gpu.synchronize, warmup=1,
                    repeat=5, min_time=0.0)
    assert t.output == 1 and t.runs == 5 and t.median == pytest.approx(0.5)


# ---------------------------------------------------------------- measure_case
class FakeGpuDevice:
    """``bench.devices.CpuDevice`` (NumPy, PyTorch CPU) that calls itself the
    GPU and times with the simulated clock: xconvt calls cost 1 ms, PyTorch's
    2.5 ms."""

    def __new__(cls):
        from bench.devices import CpuDevice

        class _Dev(CpuDevice):
            name = "gpu"

            def __init__(self):
                super().__init__(threads=1)
                self.gpu = FakeGpu()

            def _wrap(self, fn, cost):
                def f():
                    self.gpu.now += cost
                    return fn()

                return f

            def _events(self, fn, opts, cost):
                c = self.gpu.clock()
                return time_events(self._wrap(fn, cost), new_event=c.new_event,
                                   record=c.record, elapsed_ms=c.elapsed_ms,
                                   synchronize=self.gpu.synchronize, warmup=opts.warmup,
                                   repeat=opts.repeat, min_time=opts.min_time,
                                   max_time=opts.max_time)

            def time(self, fn, opts):
                return self._events(fn, opts, 1.0)

            def time_torch(self, fn, opts):
                return self._events(fn, opts, 2.5)

            def time_paired(self, fn, anchor, opts):
                return time_events_paired(
                    self._wrap(fn, 1.0), self._wrap(anchor, 2.5), clock=self.gpu.clock(),
                    anchor_clock=self.gpu.clock(), synchronize=self.gpu.synchronize,
                    warmup=opts.warmup, min_time=opts.min_time, max_time=opts.max_time,
                    block_ms=opts.block_ms, min_pairs=3)

        return _Dev()


def _opts(**kw):
    base = dict(seed=0, dtype="float32", no_torch=False, tf32=False, warmup=1, repeat=3,
                min_time=0.0, max_time=1.0, peak_tflops=None, peak_gbps=None, block_ms=5.0)
    base.update(kw)
    return SimpleNamespace(**base)


def test_measure_case_pairs_on_the_gpu_path(tmp_path):
    pytest.importorskip("torch")
    from bench import cases as C
    from bench.measure import measure_case
    from bench.report import detail_table, spread_line, write_csv, write_json

    dev = FakeGpuDevice()
    assert dev.setup_torch() is not None
    case = C.QUICK_SUITE[0]
    recs = measure_case("gpu", case, dev, ["direct"], _opts(), paired=True)
    by = {r["method"]: r for r in recs}
    assert by["torch"]["status"] == "ok" and by["torch"]["ms"] == pytest.approx(2.5)
    r = by["direct"]
    assert r["status"] == "ok", r
    assert r["timing"] == "paired-blocks" and r["pairs"] >= 3
    assert r["ratio"] == r["ratio_paired"] == pytest.approx(2.5)
    assert r["ms"] == pytest.approx(1.0) and r["torch_ms_paired"] == pytest.approx(2.5)
    assert r["ratio_iqr"] == pytest.approx(0.0) and r["err"] < 1e-4
    # unpaired: the old fields only, ratio from the anchor's own row
    recs2 = measure_case("gpu", case, dev, ["direct"], _opts(), paired=False)
    r2 = next(x for x in recs2 if x["method"] == "direct")
    assert "timing" not in r2 and r2["ratio"] == pytest.approx(2.5)
    h, rows, _ = detail_table(recs, "gpu")
    assert "IQR %" in h and "IQR %" not in detail_table(recs2, "gpu")[0]
    assert "paired ratios" in spread_line(recs) and spread_line(recs2) is None
    write_csv(tmp_path / "gpu.csv", recs)
    new = write_json(tmp_path / "gpu.json", {"suite": "gpu", "records": recs,
                                            "options": {"dtype": "float32"}})
    old = write_json(tmp_path / "old.json", {"suite": "gpu", "records": recs2,
                                            "options": {"dtype": "float32"}})
    rows, only_old, only_new = cmp.compare(cmp.load_ratios(old)[0], cmp.load_ratios(new)[0])
    assert [(x["case"], x["method"]) for x in rows] == [(case.name, "direct")]
    assert rows[0]["change_pct"] == pytest.approx(0.0) and not rows[0]["flag"]
    assert rows[0]["new_paired"] and not rows[0]["old_paired"]


# ---------------------------------------------------------------- bench compare
def _suite_file(path, ratios, **extra):
    recs = []
    for case, r in ratios.items():
        recs.append({"case": case, "method": "torch", "status": "ok", "ms": 1.0, "ratio": 1.0})
        recs.append({"case": case, "method": "auto", "status": "ok", "ms": 1.0 / r,
                     "ratio": r, "chosen": "cuda.fused", **extra})
    path.write_text(json.dumps({"suite": "gpu", "options": {"dtype": "float32"},
                                "metadata": {"gpu_name": "H"}, "records": recs}))
    return path


def test_compare_flags_changes_above_the_threshold(tmp_path, capsys):
    old = _suite_file(tmp_path / "old.json", {"a": 2.0, "b": 3.0, "c": 1.0})
    new = _suite_file(tmp_path / "new.json", {"a": 2.05, "b": 2.85, "d": 1.0},
                      timing="paired-blocks", ratio_iqr_pct=1.5)
    rows, only_old, only_new = cmp.compare(cmp.load_ratios(old)[0], cmp.load_ratios(new)[0])
    got = {r["case"]: r for r in rows}
    assert got["a"]["change_pct"] == pytest.approx(2.5) and not got["a"]["flag"]
    assert got["b"]["change_pct"] == pytest.approx(-5.0) and got["b"]["flag"]
    assert only_old == [("c", "auto")] and only_new == [("d", "auto")]
    assert cmp.main([str(old), str(new), "--plain"]) == 0
    out = capsys.readouterr().out
    assert "> 3%" in out and "2 compared, 1 flagged" in out
    assert cmp.main([str(old), str(new), "--plain", "--strict"]) == 1
    assert cmp.main([str(old), str(new), "--plain", "--strict", "--threshold", "6"]) == 0
    assert cmp.main([str(old), str(new), "--plain", "--cases", "a", "--strict"]) == 0
    assert cmp.main([str(old), str(tmp_path / "missing.json")]) == 2


@pytest.mark.parametrize("name", ["gpu_h200_2026-12-02b.json", "precisions_h200_2026-12-02c.json"])
def test_compare_reads_the_committed_gpu_results(name):
    path = RESULTS / name
    if not path.exists():
        pytest.skip(f"{name} not in bench/results")
    rows, info = cmp.load_ratios(path)
    assert info["card"] == "NVIDIA H200"
    assert len({case for case, _ in rows}) == 13
    assert all(v["ratio"] is None or v["ratio"] > 0 for v in rows.values())
    same, _, _ = cmp.compare(rows, rows)
    assert all(r["change_pct"] == 0 for r in same if r["change_pct"] is not None)


def test_gpu_device_time_paired_wiring():
    """``GpuDevice.clocks``/``time_paired`` against stand-ins for CuPy's and
    PyTorch's event and stream APIs (a simulated clock; no CUDA)."""
    from bench.devices import GpuDevice

    sim = FakeGpu()

    class Event:
        def __init__(self, *a, **k):
            self.t = None

        def record(self, stream=None):
            self.t = sim.now

        def synchronize(self):
            pass

        def elapsed_time(self, other):  # torch.cuda.Event
            return other.t - self.t

    stream = SimpleNamespace(ptr=0, cuda_stream=0)
    cuda = SimpleNamespace(Event=Event, get_elapsed_time=lambda a, b: b.t - a.t,
                           get_current_stream=lambda: stream,
                           Device=lambda: SimpleNamespace(synchronize=sim.synchronize))
    torch_cuda = SimpleNamespace(Event=Event, current_stream=lambda: stream,
                                 synchronize=sim.synchronize)
    dev = object.__new__(GpuDevice)
    dev.cp, dev.torch = SimpleNamespace(cuda=cuda), SimpleNamespace(cuda=torch_cuda)
    assert dev.streams()["same_stream"]
    t = dev.time_paired(sim.call("x", 0.5, "mine"), sim.call("t", 2.0, "theirs"),
                        SimpleNamespace(warmup=2, min_time=0.02, max_time=1.0, block_ms=4.0))
    assert t.mine.output == "mine" and (t.calls, t.anchor_calls) == (8, 2)
    assert t.ratio == pytest.approx(4.0) and t.pairs >= 10


def test_fma_column_excludes_every_tensor_core_planner():
    """``bench gpu --precisions``' ``fma`` column (today's FMA kernel, for "no
    case slower") leaves out every planner of the tensor-core module: each
    conv_transpose3d planner of ``xconvt.backends.cuda.mma`` is listed."""
    from bench.precisions import TENSOR_CORE_PLANNERS
    from xconvt.backends import _REGISTRY

    tc = {p.name for p in _REGISTRY["cupy"]
          if p.module.endswith(".mma") and "conv_transpose3d" in p.ops}
    assert tc and tc == set(TENSOR_CORE_PLANNERS)
