"""``python -m bench grad`` on the CPU: records, plan names, the small suite.

Timings are not asserted (they belong to bench/); the records' structure, the
plans ``auto`` ran and xconvt's agreement with PyTorch are.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="bench grad times against PyTorch")

from bench import grad as bench_grad  # noqa: E402


def test_bench_grad_small_suite_records(tmp_path, capsys):
    out = tmp_path / "grad.json"
    rc = bench_grad.main(["--suite", "small", "--cases", "tiny_k3,grouped_g4",
                          "--ops", "forward,input,weight", "--repeat", "3", "--warmup", "1",
                          "--threads", "1", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "single calls" in text and "geometric mean input" in text
    data = json.loads(out.read_text())
    assert data["timing"] == "single"
    recs = {(r["case"], r["op"]): r for r in data["records"]}
    assert set(recs) == {(c, o) for c in ("tiny_k3", "grouped_g4")
                         for o in ("forward", "input", "weight")}
    for (case, op), r in recs.items():
        assert r["rel_l2"] < 1e-5, (case, op, r["rel_l2"])
        assert r["ratio"][0] > 0 and len(r["torch_ms"]) == 1
    assert recs["tiny_k3", "input"]["plan"] == "cpu.small_conv3d"
    assert recs["tiny_k3", "weight"]["plan"] == "cpu.small_weight_grad"
    assert recs["tiny_k3", "forward"]["plan"] == "cpu.small"


def test_bench_grad_rejects_unknown_ops(capsys):
    assert bench_grad.main(["--suite", "small", "--ops", "backward"]) == 2
    assert "unknown op" in capsys.readouterr().err
