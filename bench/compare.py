"""``python -m bench compare OLD.json NEW.json``: per case and method, the
ratio anchor / xconvt (cuDNN or PyTorch over xconvt, > 1: xconvt faster) in two
result files, its change, and a flag where it moved by more than a threshold
(default 3%: issue 10's "within 3% of the previous run's ratios to cuDNN").

Reads both kinds of result file:

* a suite's JSON (``python -m bench gpu|cpu|small|... --out``, e.g.
  ``bench/results/gpu_h200_2026-12-02b.json``): one row per (case, xconvt
  method), the record's ``ratio`` (from paired timing where the run paired:
  then also its ``ratio_iqr_pct``);
* ``precisions.json`` (``python -m bench gpu --precisions``, e.g.
  ``bench/results/precisions_h200_2026-12-02c.json``): one row per (case,
  precision), ``cudnn ms / xconvt ms`` at that precision (or the paired
  ``ratio`` where present), and ``fma`` against cuDNN float32.

Change = new / old - 1; beside it the change of xconvt's and of the anchor's
own time (which side moved: cuDNN's ``benchmark`` autotuner may pick another
kernel in another process).  Rows whose plan differs between the runs (``auto``'s
choice) are marked, as are rows timed differently (paired against unpaired).
Exit status 0, or with ``--strict`` 1 when a row is flagged; 2 on bad input.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from pathlib import Path

from .report import print_table, write_json

__all__ = ["compare", "load_ratios", "main"]

ANCHOR_METHODS = ("torch", "torch_tf32")
# (precision, cuDNN key, xconvt key) of precisions.json, and fma against cuDNN float32
PRECISION_KEYS = (("float32", "cudnn_fp32", "xconvt_fp32"), ("tf32", "cudnn_tf32", "xconvt_tf32"),
                  ("float16", "cudnn_fp16", "xconvt_fp16"),
                  ("bfloat16", "cudnn_bf16", "xconvt_bf16"), ("fma", "cudnn_fp32", "fma"))


def _pos(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _from_suite(payload):
    """Rows of a suite's JSON: {(case, method): entry}."""
    records = payload.get("records", [])
    anchors = {}
    for r in records:
        if r.get("method") == "torch" and r.get("status") == "ok" and _pos(r.get("ms")):
            anchors[r["case"]] = r["ms"]
    rows = {}
    for r in records:
        m = r.get("method")
        if m in ANCHOR_METHODS:
            continue
        ratio = r.get("ratio")
        if not _pos(ratio) and _pos(r.get("ms")) and r["case"] in anchors:
            ratio = anchors[r["case"]] / r["ms"]
        rows[(r["case"], m)] = {
            "ratio": ratio if _pos(ratio) and r.get("status") == "ok" else None,
            "status": r.get("status"), "plan": r.get("chosen"), "ms": r.get("ms"),
            "anchor_ms": r.get("torch_ms_paired") or anchors.get(r["case"]),
            "iqr_pct": r.get("ratio_iqr_pct"), "paired": r.get("timing") == "paired-blocks",
        }
    return rows


def _from_precisions(payload):
    """Rows of a ``precisions.json``: {(case, precision): entry}."""
    rows = {}
    for row in payload.get("cases", []):
        for prec, ck, xk in PRECISION_KEYS:
            c, x = row.get(ck) or {}, row.get(xk) or {}
            if not c and not x:
                continue
            ratio = x.get("ratio")
            if not _pos(ratio) and _pos(c.get("ms")) and _pos(x.get("ms")):
                ratio = c["ms"] / x["ms"]
            plan = row.get(f"{xk}_plan") if xk != "fma" else row.get("fma_plan")
            rows[(row["case"], prec)] = {
                "ratio": ratio if _pos(ratio) else None,
                "status": "error" if ("error" in x or "error" in c) else "ok",
                "plan": plan, "ms": x.get("ms"), "anchor_ms": c.get("ms"),
                "iqr_pct": x.get("ratio_iqr_pct"), "paired": x.get("timing") == "paired-blocks",
            }
    return rows


def load_ratios(path):
    """``(rows, info)`` of a result file: rows ``{(case, method or precision):
    {"ratio", "status", "plan", "ms", "anchor_ms", "iqr_pct", "paired"}}`` and
    ``info`` (kind, card, dtype, date, commit) for the header."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    if "records" in payload:
        md = payload.get("metadata", {})
        opts = payload.get("options", {})
        info = {"kind": payload.get("suite", "?"), "card": md.get("gpu_name")
                or md.get("cpu_model"), "dtype": opts.get("dtype"), "date": md.get("date"),
                "commit": (md.get("git") or {}).get("commit")}
        return _from_suite(payload), info
    if "cases" in payload:
        info = {"kind": "precisions", "card": payload.get("card"), "dtype": None,
                "date": payload.get("date"), "commit": payload.get("commit")}
        return _from_precisions(payload), info
    msg = f"{path}: neither a suite's JSON ('records') nor precisions.json ('cases')"
    raise ValueError(msg)


def _change(old, new):
    return 100 * (new / old - 1) if _pos(old) and _pos(new) else None


def compare(old, new, threshold=3.0):
    """Rows ``{case, method, old, new, change_pct, flag, ...}`` for the keys both
    ``old`` and ``new`` (from :func:`load_ratios`) have, in ``new``'s order, and
    the keys found in only one of them."""
    out = []
    for key, n in new.items():
        o = old.get(key)
        if o is None:
            continue
        row = {"case": key[0], "method": key[1], "old": o["ratio"], "new": n["ratio"],
               "old_plan": o["plan"], "new_plan": n["plan"], "new_iqr_pct": n["iqr_pct"],
               "old_iqr_pct": o["iqr_pct"], "old_paired": o["paired"],
               "new_paired": n["paired"], "change_pct": None, "flag": False,
               "xconvt_change_pct": _change(o["ms"], n["ms"]),
               "anchor_change_pct": _change(o["anchor_ms"], n["anchor_ms"])}
        if o["ratio"] and n["ratio"]:
            row["change_pct"] = 100 * (n["ratio"] / o["ratio"] - 1)
            row["flag"] = abs(row["change_pct"]) > threshold
        else:
            row["flag"] = True  # ran in one run, failed or missing in the other
        out.append(row)
    only_old = [k for k in old if k not in new]
    only_new = [k for k in new if k not in old]
    return out, only_old, only_new


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m bench compare",
        description="Per case and method: the anchor/xconvt ratio in OLD and NEW, the "
                    "change in %, flagged where |change| > --threshold.")
    p.add_argument("old", type=Path, help="the earlier result file (suite JSON or "
                                          "precisions.json)")
    p.add_argument("new", type=Path, help="the later result file")
    p.add_argument("--threshold", type=float, default=3.0,
                   help="flag |change| above this many percent (default 3)")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods or precisions to compare (default all)")
    p.add_argument("--cases", default=None, help="comma-separated case names or globs")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("--strict", action="store_true", help="exit 1 when a row is flagged")
    p.add_argument("--plain", action="store_true", help="plain-text table, never rich")
    return p


def _fmt(v, f):
    return "-" if v is None else format(v, f)


def _keep(key, methods, cases):
    if methods and key[1] not in methods:
        return False
    return not cases or any(fnmatch.fnmatchcase(key[0], c) for c in cases)


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        old, oi = load_ratios(args.old)
        new, ni = load_ratios(args.new)
    except (OSError, ValueError) as e:
        print(f"bench compare: {e}", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    cases = [c.strip() for c in args.cases.split(",")] if args.cases else None
    old = {k: v for k, v in old.items() if _keep(k, methods, cases)}
    new = {k: v for k, v in new.items() if _keep(k, methods, cases)}
    for tag, path, info in (("old", args.old, oi), ("new", args.new, ni)):
        print(f"{tag}: {path} ({info['kind']}, {info['card']}, {info['dtype'] or '-'}, "
              f"{info['date'] or '?'}, commit {(info['commit'] or '?')[:10]})")
    if oi["kind"] != ni["kind"] or oi["dtype"] != ni["dtype"]:
        print("warning: the files are of different suites or dtypes", file=sys.stderr)
    if oi["card"] != ni["card"]:
        print(f"warning: different cards ({oi['card']} / {ni['card']})", file=sys.stderr)
    rows, only_old, only_new = compare(old, new, args.threshold)
    headers = ["case", "method", "plan", "old", "new", "change %", "new IQR %", "xconvt ms %",
               "anchor ms %", "flag"]
    table = []
    for r in rows:
        plan = r["new_plan"] or ""
        if r["old_plan"] != r["new_plan"]:
            plan = f"{r['old_plan']} -> {r['new_plan']}"
        flag = ""
        if r["flag"]:
            flag = f"> {args.threshold:g}%" if r["change_pct"] is not None else "missing"
        if r["old_paired"] != r["new_paired"]:
            flag = (flag + " timing").strip()
        table.append([r["case"], r["method"], plan, _fmt(r["old"], ".3f"),
                      _fmt(r["new"], ".3f"), _fmt(r["change_pct"], "+.1f"),
                      _fmt(r["new_iqr_pct"], ".1f"), _fmt(r["xconvt_change_pct"], "+.1f"),
                      _fmt(r["anchor_change_pct"], "+.1f"), flag])
    print_table(f"ratio anchor / xconvt: old -> new (flag: |change| > {args.threshold:g}%; "
                "the last two: change of each side's ms)", headers, table,
                ("old", "new", "change %", "new IQR %", "xconvt ms %", "anchor ms %"),
                plain=args.plain)
    changes = [r["change_pct"] for r in rows if r["change_pct"] is not None]
    flagged = [r for r in rows if r["flag"]]
    if changes:
        worst = max(rows, key=lambda r: abs(r["change_pct"] or 0))
        gm = math.exp(sum(math.log(1 + c / 100) for c in changes) / len(changes))
        print(f"{len(changes)} compared, {len(flagged)} flagged; largest change "
              f"{worst['change_pct']:+.1f}% ({worst['case']} {worst['method']}); geometric "
              f"mean of new/old {100 * (gm - 1):+.2f}%")
    else:
        print("nothing to compare: no case and method in both files")
    if any(r["old_paired"] != r["new_paired"] for r in rows):
        print("note: 'timing' rows were timed paired (blocks alternating with the anchor) "
              "in one file and alone in the other: the change includes the method's")
    for tag, keys in (("only in old", only_old), ("only in new", only_new)):
        if keys:
            print(f"{tag}: " + ", ".join(f"{c} {m}" for c, m in keys))
    if args.json:
        write_json(args.json, {"old": str(args.old), "new": str(args.new),
                               "threshold_pct": args.threshold, "rows": rows,
                               "only_old": only_old, "only_new": only_new})
        print(f"wrote {args.json}")
    return 1 if args.strict and flagged else 0
