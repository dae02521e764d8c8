"""The kernel-size sweep (issue 4): time against k for every method, skip
methods whose next call is estimated to exceed ``--max-seconds``, find the
direct/FFT crossover and draw it."""

from __future__ import annotations

import math

from .measure import TORCH, TORCH_TF32, Skip

__all__ = ["SweepSkipper", "crossover", "plot_sweep"]

# Methods whose cost grows with the padded volume rather than with the taps.
_FFT_LIKE = {"fft"}


def _scale(method, prev, now):
    """Estimated cost ratio now/prev for ``method`` (prev, now: ConvParams)."""
    if method in _FFT_LIKE:
        return math.prod(now.full_size) / math.prod(prev.full_size)
    return now.nominal_flops / prev.nominal_flops


class SweepSkipper:
    """Decides, before each k, which methods to skip: those whose time, scaled from
    the last k they ran at, would exceed ``max_seconds`` per call.  Once skipped,
    a method stays skipped for larger k."""

    def __init__(self, max_seconds):
        self.max_ms = max_seconds * 1e3
        self.last = {}  # method -> (params, ms)
        self.dropped = {}  # method -> reason

    def estimate(self, method, params, chosen=None):
        key = chosen if method == "auto" and chosen in self.last else method
        if key not in self.last:
            return None
        prev, ms = self.last[key]
        return ms * _scale(key, prev, params)

    def skips(self, case, params, methods, chosen=None):
        out = {}
        for m in methods:
            if m in self.dropped:
                out[m] = Skip(self.dropped[m])
                continue
            est = self.estimate(m, params, chosen if m == "auto" else None)
            if est is not None and est > self.max_ms:
                self.dropped[m] = (
                    f"skipped from {case.name}: ~{est / 1e3:.3g} s per call estimated "
                    f"(> --max-seconds {self.max_ms / 1e3:g})"
                )
                out[m] = Skip(self.dropped[m])
        return out

    def update(self, params, records):
        for r in records:
            if r["status"] in ("ok", "wrong") and r.get("ms"):
                self.last[r["method"]] = (params, r["ms"])


def crossover(ks, a_ms, b_ms):
    """First k where ``b`` becomes faster than ``a`` (log-interpolated), or None.

    ``a_ms``/``b_ms`` are lists aligned with ``ks`` (None where missing).
    """
    pts = [(k, math.log(a / b)) for k, a, b in zip(ks, a_ms, b_ms)
           if a and b and a > 0 and b > 0]
    for (k0, r0), (k1, r1) in zip(pts, pts[1:]):
        if r0 <= 0 < r1:
            return k0 + (k1 - k0) * (-r0) / (r1 - r0) if r1 != r0 else k1
    if pts and pts[0][1] > 0:
        return pts[0][0]  # b already faster at the first k
    return None


def series(records, method):
    """(ks, ms) for one method; ms None where it did not run or was wrong."""
    ks, ms = [], []
    for r in records:
        if r["method"] != method:
            continue
        ks.append(int(r["kernel"].split("x")[0]))
        ms.append(r["ms"] if r["status"] == "ok" else None)
    return ks, ms


_STYLE = {
    "direct": dict(marker="o", color="C0"),
    "fft": dict(marker="s", color="C1"),
    "auto": dict(marker="^", color="C2", linestyle="--"),
    "measure": dict(marker="v", color="C4", linestyle="--"),
    TORCH: dict(marker="x", color="C3"),
    TORCH_TF32: dict(marker="+", color="C3", linestyle=":"),
}


def plot_sweep(records, methods, path, title, device="cpu"):
    """Draw log-time against k; returns the path, or a message if skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed: no plot (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    drawn = False
    for m in methods:
        ks, ms = series(records, m)
        pts = [(k, v) for k, v in zip(ks, ms) if v]
        if not pts:
            continue
        label = {TORCH: "PyTorch (cuDNN, TF32 off)" if device == "gpu" else "PyTorch CPU",
                 TORCH_TF32: "PyTorch (cuDNN, TF32 on)"}.get(m, f"xconvt {m}")
        ax.plot(*zip(*pts), label=label, **_STYLE.get(m, {}))
        drawn = True
    ks, d = series(records, "direct")
    _, f = series(records, "fft")
    kx = crossover(ks, d, f) if d and f else None
    if kx is not None:
        ax.axvline(kx, color="0.4", linestyle="-.", linewidth=1)
        ax.annotate(f"direct/fft crossover\nk ~ {kx:.1f}", xy=(kx, 0.92),
                    xycoords=("data", "axes fraction"), xytext=(6, 0),
                    textcoords="offset points", fontsize=9, va="top")
    if drawn:
        ax.set_yscale("log")
    ax.set_xlabel("kernel size k (k^3 taps)")
    ax.set_ylabel("time per call (ms, median)")
    ax.set_xticks(sorted({k for r in records for k in [int(r["kernel"].split("x")[0])]}))
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    if drawn:
        ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path, None
