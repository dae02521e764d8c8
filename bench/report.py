"""Tables (plain text, or ``rich`` where importable and printing to a terminal),
CSV and JSON output, geometric means, and the run's metadata."""

from __future__ import annotations

import csv
import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

__all__ = [
    "CSV_COLUMNS",
    "detail_table",
    "fmt_ms",
    "geomeans",
    "metadata",
    "print_table",
    "spread_line",
    "summary_table",
    "write_csv",
    "write_json",
]

CSV_COLUMNS = [
    "suite", "device", "dtype", "case", "shape", "method", "chosen", "status",
    "ms", "ms_min", "ms_iqr", "runs", "first_ms", "ratio",
    "gflop", "gflop_nominal", "bytes", "gflops", "gbps", "pct_peak_flops", "pct_peak_bw",
    "err", "err_max", "err_vs", "tol",
    "N", "Cin", "Cout", "size", "kernel", "stride", "padding", "output_padding", "groups",
    "dilation", "bias", "out_shape", "seed", "torch_ms_issue", "note", "error",
    # paired timing (GPU suite; bench.timing.PairedTiming.fields), after the old columns
    "timing", "ratio_paired", "ratio_q1", "ratio_q3", "ratio_iqr", "ratio_iqr_pct",
    "ratio_of_medians", "pairs", "calls_per_block", "torch_calls_per_block",
    "torch_ms_paired",
]

ANCHORS = ("torch", "torch_tf32")


# ------------------------------------------------------------------ formatting
def fmt_ms(v):
    if v is None or not math.isfinite(v):
        return "-"
    for lim, fmt in ((1, ".4f"), (10, ".3f"), (100, ".2f"), (1000, ".1f")):
        if v < lim:
            return format(v, fmt)
    return format(v, ".0f")


def _num(v, fmt=".3g"):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _short(text, n=70):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _use_rich(plain):
    if plain or not sys.stdout.isatty():
        return None
    try:
        import rich.console
        import rich.table
    except ImportError:
        return None
    return rich


def print_table(title, headers, rows, right=(), plain=False, file=None):
    """Print an aligned table; columns named in ``right`` are right-aligned."""
    file = file or sys.stdout
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    rich = _use_rich(plain) if file is sys.stdout else None
    if rich is not None:
        t = rich.table.Table(title=title, box=rich.box.SIMPLE_HEAD)
        for h in headers:
            t.add_column(h, justify="right" if h in right else "left", no_wrap=True)
        for r in cells:
            t.add_row(*r)
        console = rich.console.Console()
        console.width = max(console.width, sum(widths) + 3 * len(widths) + 4)
        console.print(t)
        return

    def line(r):
        parts = [c.rjust(w) if h in right else c.ljust(w)
                 for c, w, h in zip(r, widths, headers)]
        return "  ".join(parts).rstrip()

    if title:
        print(title, file=file)
    print(line(headers), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in cells:
        print(line(r), file=file)
    file.flush()


# ------------------------------------------------------------------ tables
def _method_label(r):
    if r["method"] == "auto" and r.get("chosen"):
        return f"auto->{r['chosen']}"
    return r["method"]


def detail_table(records, device, peak_tflops=None, peak_gbps=None):
    """One row per (case, method): ms, ratio, throughput, error, notes."""
    gpu = device == "gpu"
    thr = "TFLOP/s" + (f" (%{peak_tflops:g})" if gpu and peak_tflops else "") if gpu \
        else "GFLOP/s"
    bw = "GB/s" + (f" (%{peak_gbps:g})" if gpu and peak_gbps else "")
    paired = any(r.get("ratio_iqr_pct") is not None for r in records)
    headers = ["case", "shape", "GFLOP", "method", "ms", "torch/x"]
    headers += ["IQR %"] if paired else []
    headers += [thr, bw, "err", "note"]
    rows, prev = [], None
    for r in records:
        first = r["case"] != prev
        prev = r["case"]
        st = r["status"]
        ms = fmt_ms(r.get("ms")) if st in ("ok", "wrong") else st
        if st == "wrong":
            ms += "!"
        if r.get("gflops") is not None:
            t = r["gflops"] / 1e3 if gpu else r["gflops"]
            t = _num(t, ".3g")
            if r.get("pct_peak_flops") is not None:
                t += f" ({r['pct_peak_flops']:.0f}%)"
            g = _num(r["gbps"], ".3g")
            if r.get("pct_peak_bw") is not None:
                g += f" ({r['pct_peak_bw']:.0f}%)"
        else:
            t = g = "-"
        if r.get("err") is not None:
            err = _num(r["err"], ".1e")
        elif r.get("err_vs") == "anchor":
            err = "anchor"
        else:
            err = "-"
        note = r.get("note", "")
        if st == "wrong":
            note = (f"WRONG: err {_num(r.get('err'), '.1e')} > tol {_num(r.get('tol'), '.0e')}"
                    f" vs {r.get('err_vs')}" if r.get("err") is not None
                    else "WRONG: " + _short(r.get("error", ""), 60))
        elif st == "error":
            note = "ERROR " + _short(r.get("error", ""), 80)
        row = [
            r["case"] if first else "", r["shape"] if first else "",
            _num(r["gflop"], ".3g") if first else "",
            _method_label(r), ms, _num(r.get("ratio"), ".2f") if r.get("ratio") else "-",
        ]
        if paired:  # the spread of the per-pair ratios, % of the ratio
            row.append(_num(r.get("ratio_iqr_pct"), ".1f"))
        rows.append(row + [t, g, err, note])
    right = ("GFLOP", "ms", "torch/x", "IQR %", thr, bw, "err")
    return headers, rows, right


def _by_case(records):
    cases = {}
    for r in records:
        cases.setdefault(r["case"], []).append(r)
    return cases


def best_of(recs):
    """The fastest xconvt record of one case whose result passed its check."""
    ok = [r for r in recs if r["method"] not in ANCHORS and r["status"] == "ok"
          and r.get("ms")]
    return min(ok, key=lambda r: r["ms"]) if ok else None


def summary_table(records, methods, anchors, extra=None):
    """One row per case: ms per method, the best xconvt method and torch/best."""
    cases = _by_case(records)
    extra = extra or {}
    headers = ["case", "GFLOP"] + [f"{m} ms" for m in anchors + methods]
    headers += ["best", "torch/best"] + list(extra)
    rows = []
    for name, recs in cases.items():
        by_m = {r["method"]: r for r in recs}
        row = [name, _num(recs[0]["gflop"], ".3g")]
        for m in anchors + methods:
            r = by_m.get(m)
            if r is None:
                row.append("")
            elif r["status"] in ("ok", "wrong"):
                c = fmt_ms(r["ms"]) + ("!" if r["status"] == "wrong" else "")
                if m == "auto" and r.get("chosen"):
                    c += f" ({r['chosen']})"
                row.append(c)
            else:
                row.append(r["status"])
        b = best_of(recs)
        row.append(_method_label(b) if b else "-")
        row.append(_num(b.get("ratio"), ".2f") + "x" if b and b.get("ratio") else "-")
        for fn in extra.values():
            row.append(fn(name, recs))
        rows.append(row)
    right = tuple(h for h in headers if h.endswith("ms") or h in ("GFLOP", "torch/best"))
    return headers, rows, right


def _gmean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def geomeans(records, methods):
    """Geometric means of torch/xconvt per method and for the best method per case."""
    out = {}
    cases = _by_case(records)
    for m in list(methods) + ["best"]:
        xs = []
        for recs in cases.values():
            r = best_of(recs) if m == "best" else next(
                (r for r in recs if r["method"] == m and r["status"] == "ok"), None)
            if r is not None and r.get("ratio"):
                xs.append(r["ratio"])
        out[m] = {"geomean": _gmean(xs), "cases": len(xs)}
    return out


def spread_line(records):
    """One line on the paired ratios' spread (IQR of the per-pair ratios as %
    of the ratio): its median and maximum over the methods that were paired,
    or ``None`` where nothing was paired."""
    xs = [(r["ratio_iqr_pct"], r["case"], r["method"]) for r in records
          if r.get("ratio_iqr_pct") is not None and r.get("status") == "ok"]
    if not xs:
        return None
    xs.sort()
    med = xs[len(xs) // 2][0] if len(xs) % 2 else (xs[len(xs) // 2 - 1][0]
                                                   + xs[len(xs) // 2][0]) / 2
    top = xs[-1]
    return (f"paired ratios: IQR of the per-pair ratios {med:.1f}% of the ratio (median "
            f"over {len(xs)} case-methods), at most {top[0]:.1f}% ({top[1]} {top[2]})")


def geomean_line(gm, n_cases):
    parts = []
    for m, g in gm.items():
        if g["geomean"] is None:
            parts.append(f"{m} -")
        else:
            parts.append(f"{m} {g['geomean']:.2f}x ({g['cases']}/{n_cases})")
    return "geomean torch/xconvt (higher is better): " + ", ".join(parts)


# ------------------------------------------------------------------ files
def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def write_csv(path, records):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in records:
            row = {}
            for k, v in r.items():
                if v is None or (isinstance(v, float) and not math.isfinite(v)):
                    v = ""
                elif isinstance(v, float):
                    v = f"{v:.6g}"
                row[k] = v
            if row.get("error"):
                row["error"] = _short(row["error"], 300)
            w.writerow(row)
    return path


def write_json(path, payload):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(payload), indent=1, default=str) + "\n",
                    encoding="utf-8")
    return path


# ------------------------------------------------------------------ metadata
def _dist_version(*names):
    for n in names:
        try:
            return importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _module_version(mod, *dists):
    m = sys.modules.get(mod)
    if m is not None and getattr(m, "__version__", None):
        return str(m.__version__)
    return _dist_version(*dists) if dists else _dist_version(mod)


def versions():
    import numpy
    import scipy

    v = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "array_api_compat": _module_version("array_api_compat", "array-api-compat"),
        "cupy": _module_version("cupy", "cupy-cuda13x", "cupy-cuda12x", "cupy"),
        "torch": _module_version("torch"),
        "cudnn": None,
        "matplotlib": _module_version("matplotlib"),
    }
    try:
        import xconvt

        v["xconvt"] = xconvt.__version__
        v["xconvt_path"] = str(Path(xconvt.__file__).parent)
    except Exception as e:  # noqa: BLE001
        v["xconvt"] = f"import failed: {type(e).__name__}: {e}"
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            v["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        except Exception:  # noqa: BLE001
            pass
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        v["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}".strip()
    except Exception:  # noqa: BLE001
        pass
    return v


def _git():
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def metadata(device, argv):
    md = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "argv": list(argv),
        "cwd": os.getcwd(),
        "git": _git(),
        "versions": versions(),
    }
    md.update(device.describe())
    if device.torch is not None:
        md["torch_settings"] = device.torch_info()
    return md
