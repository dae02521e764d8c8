"""Where a benchmark runs: NumPy on the CPU or CuPy on a CUDA GPU.

A device puts the seeded host inputs where the library computes, hands
PyTorch the *same* memory (``torch.from_numpy`` / ``torch.from_dlpack``,
zero-copy), times calls (wall clock / device events) and compares results in
float64 where they live.  CuPy and PyTorch are imported lazily.
"""

from __future__ import annotations

import gc
import os
import platform
import subprocess

import numpy as np

from .timing import EventClock, time_cpu, time_events, time_events_paired

__all__ = ["CpuDevice", "DeviceUnavailable", "GpuDevice", "available_threads", "make_device"]


class DeviceUnavailable(RuntimeError):
    """The requested device (or library) is missing; the message says what to do."""


def available_threads():
    """CPU cores this process may run on (its affinity mask where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rel_errors(xp, out, ref):
    """(relative L2, max-abs / max|ref|) of ``out`` against ``ref``, in float64."""
    if tuple(out.shape) != tuple(ref.shape):
        msg = f"shape {tuple(out.shape)} differs from the oracle's {tuple(ref.shape)}"
        raise ValueError(msg)
    a = out.astype(xp.float64)
    r = ref.astype(xp.float64)
    diff = a - r
    den = float(xp.sqrt(xp.sum(r * r)))
    num = float(xp.sqrt(xp.sum(diff * diff)))
    rmax = float(xp.max(xp.abs(r))) if r.size else 0.0
    dmax = float(xp.max(xp.abs(diff))) if r.size else 0.0
    if not (np.isfinite(num) and np.isfinite(dmax)):
        return float("inf"), float("inf")
    return (num / den if den else num), (dmax / rmax if rmax else dmax)


class CpuDevice:
    """NumPy arrays, ``time.perf_counter``, PyTorch CPU with the same thread count."""

    name = "cpu"
    kind = "numpy"

    def __init__(self, threads=None):
        self.threads = threads or available_threads()
        self.torch = None

    # arrays --------------------------------------------------------------
    def put(self, a):
        return None if a is None else np.ascontiguousarray(a)

    def to_host(self, a):
        return np.asarray(a)

    def rel_errors(self, out, ref):
        return _rel_errors(np, np.asarray(out), np.asarray(ref))

    def release(self):
        gc.collect()

    # timing --------------------------------------------------------------
    def time(self, fn, opts):
        return time_cpu(fn, warmup=opts.warmup, repeat=opts.repeat,
                        min_time=opts.min_time, max_time=opts.max_time)

    time_torch = time

    # torch ---------------------------------------------------------------
    def setup_torch(self):
        """Import PyTorch and use this device's thread count; ``None`` if absent."""
        try:
            import torch
        except ImportError:
            return None
        torch.set_num_threads(self.threads)
        self.torch = torch
        return torch

    def torch_tensor(self, a):
        return None if a is None else self.torch.from_numpy(a)

    def from_torch(self, t):
        return t.numpy()

    def set_tf32(self, on):  # no TF32 on the CPU
        pass

    def torch_info(self):
        t = self.torch
        return {"torch_threads": t.get_num_threads(),
                "torch_interop_threads": t.get_num_interop_threads()}

    # description -----------------------------------------------------------
    def describe(self):
        env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                           "MKL_NUM_THREADS") if k in os.environ}
        info = {"device": "cpu", "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
                "threads": self.threads, "thread_env": env}
        try:  # BLAS threading, where threadpoolctl is installed
            from threadpoolctl import threadpool_info

            info["threadpools"] = [
                {k: p.get(k) for k in ("internal_api", "num_threads", "version")}
                for p in threadpool_info()
            ]
        except ImportError:
            pass
        return info

    def label(self):
        return f"{_cpu_model()}, {self.threads} threads"


class GpuDevice:
    """CuPy arrays on the current device, timed with CUDA events on the current stream.

    PyTorch gets the same device memory through DLPack and is timed with
    ``torch.cuda.Event`` on its current stream.  Both libraries use the legacy
    default stream unless configured otherwise; :meth:`streams` reports them,
    and the device is synchronized whenever the timed library changes.
    """

    name = "gpu"
    kind = "cupy"

    def __init__(self, threads=None):
        try:
            import cupy
        except Exception as e:  # ImportError, or a broken CUDA install
            msg = (
                f"the GPU benchmark needs CuPy and a CUDA device, but `import cupy` failed "
                f"({type(e).__name__}: {e}).  Install cupy-cuda12x or cupy-cuda13x "
                "(pip install -e .[cuda12] / .[cuda13]), or run it on the GPU machine as "
                "bench/README.md describes; CPU suites: python -m bench cpu | quick | "
                "sweep --device cpu"
            )
            raise DeviceUnavailable(msg) from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:
            count, err = 0, f" ({type(e).__name__}: {e})"
        else:
            err = ""
        if count < 1:
            msg = f"CuPy is installed but finds no CUDA device{err}; nothing to benchmark"
            raise DeviceUnavailable(msg)
        self.cp = cupy
        self.device = cupy.cuda.Device()
        self.threads = threads or available_threads()
        self.torch = None
        self.zero_copy = None

    # arrays --------------------------------------------------------------
    def put(self, a):
        return None if a is None else self.cp.asarray(a)

    def to_host(self, a):
        return self.cp.asnumpy(a)

    def rel_errors(self, out, ref):
        return _rel_errors(self.cp, self.cp.asarray(out), self.cp.asarray(ref))

    def release(self):
        gc.collect()
        self.cp.cuda.Device().synchronize()
        self.cp.get_default_memory_pool().free_all_blocks()
        self.cp.get_default_pinned_memory_pool().free_all_blocks()
        if self.torch is not None:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()

    def synchronize(self):
        self.cp.cuda.Device().synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()

    # timing --------------------------------------------------------------
    def time(self, fn, opts):
        """CuPy events on CuPy's current stream."""
        cp = self.cp

        def elapsed(a, b):
            b.synchronize()
            return cp.cuda.get_elapsed_time(a, b)

        self.synchronize()
        return time_events(
            fn, new_event=cp.cuda.Event, record=lambda ev: ev.record(),
            elapsed_ms=elapsed, synchronize=self.synchronize, warmup=opts.warmup,
            repeat=opts.repeat, min_time=opts.min_time, max_time=opts.max_time,
        )

    def time_torch(self, fn, opts):
        """``torch.cuda.Event`` on PyTorch's current stream."""
        torch = self.torch

        def elapsed(a, b):
            b.synchronize()
            return a.elapsed_time(b)

        self.synchronize()
        return time_events(
            fn, new_event=lambda: torch.cuda.Event(enable_timing=True),
            record=lambda ev: ev.record(torch.cuda.current_stream()),
            elapsed_ms=elapsed, synchronize=self.synchronize, warmup=opts.warmup,
            repeat=opts.repeat, min_time=opts.min_time, max_time=opts.max_time,
        )

    def clocks(self):
        """(CuPy's, PyTorch's) :class:`~bench.timing.EventClock`: events on each
        library's current stream."""
        cp, torch = self.cp, self.torch

        def cupy_elapsed(a, b):
            b.synchronize()
            return cp.cuda.get_elapsed_time(a, b)

        def torch_elapsed(a, b):
            b.synchronize()
            return a.elapsed_time(b)

        mine = EventClock(cp.cuda.Event, lambda ev: ev.record(), cupy_elapsed)
        theirs = EventClock(lambda: torch.cuda.Event(enable_timing=True),
                            lambda ev: ev.record(torch.cuda.current_stream()), torch_elapsed)
        return mine, theirs

    def time_paired(self, fn, anchor, opts):
        """``fn`` (CuPy) and ``anchor`` (PyTorch) in alternating blocks of
        back-to-back calls (:func:`bench.timing.time_events_paired`): each side
        measured for at least ``opts.min_time`` s, blocks of about
        ``opts.block_ms`` ms (default 5; 0: one call per block, each waited
        for), the pair's blocks separated by a synchronization only where the
        two libraries' streams differ."""
        mine, theirs = self.clocks()
        block_ms = getattr(opts, "block_ms", None)
        self.synchronize()
        return time_events_paired(
            fn, anchor, clock=mine, anchor_clock=theirs, synchronize=self.synchronize,
            same_stream=bool(self.streams().get("same_stream")), warmup=opts.warmup,
            min_time=opts.min_time, max_time=opts.max_time,
            block_ms=5.0 if block_ms is None else block_ms,
        )

    # torch ---------------------------------------------------------------
    def setup_torch(self):
        """PyTorch on the same device, cuDNN autotuning on, TF32 off (the anchor)."""
        try:
            import torch
        except ImportError:
            return None
        if not torch.cuda.is_available():
            return None
        torch.cuda.set_device(self.device.id)
        torch.set_num_threads(self.threads)
        torch.backends.cudnn.benchmark = True
        self.torch = torch
        self.set_tf32(False)
        return torch

    def set_tf32(self, on):
        torch = self.torch
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on

    def torch_tensor(self, a):
        if a is None:
            return None
        t = self.torch.from_dlpack(a)
        same = t.data_ptr() == a.data.ptr
        self.zero_copy = same if self.zero_copy is None else (self.zero_copy and same)
        return t

    def from_torch(self, t):
        return self.cp.from_dlpack(t)

    def streams(self):
        """Raw handles of CuPy's and PyTorch's current streams (0: legacy default)."""
        s = {"cupy_stream": int(self.cp.cuda.get_current_stream().ptr)}
        if self.torch is not None:
            s["torch_stream"] = int(self.torch.cuda.current_stream().cuda_stream)
            s["same_stream"] = s["cupy_stream"] == s["torch_stream"]
        return s

    def torch_info(self):
        t = self.torch
        b = t.backends
        info = {
            "cudnn": b.cudnn.version(),
            "cudnn_benchmark": b.cudnn.benchmark,
            "cudnn_allow_tf32": b.cudnn.allow_tf32,
            "matmul_allow_tf32": b.cuda.matmul.allow_tf32,
            "torch_cuda": t.version.cuda,
            "float32_matmul_precision": t.get_float32_matmul_precision(),
            "torch_device": t.cuda.get_device_name(self.device.id),
            "dlpack_zero_copy": self.zero_copy,
        }
        for name, obj in (("cudnn_conv_fp32_precision", getattr(b.cudnn, "conv", None)),
                          ("matmul_fp32_precision", b.cuda.matmul)):
            prec = getattr(obj, "fp32_precision", None)
            if prec is not None:
                info[name] = prec
        info.update(self.streams())
        return info

    # description -----------------------------------------------------------
    def gpu_name(self):
        props = self.cp.cuda.runtime.getDeviceProperties(self.device.id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def describe(self):
        cp = self.cp
        props = cp.cuda.runtime.getDeviceProperties(self.device.id)
        info = {
            "device": "gpu",
            "gpu_index": self.device.id,
            "gpu_name": self.gpu_name(),
            "compute_capability": self.device.compute_capability,
            "gpu_memory_bytes": int(props.get("totalGlobalMem", 0)),
            "sm_count": int(props.get("multiProcessorCount", 0)),
            "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
            "cuda_driver": cp.cuda.runtime.driverGetVersion(),
            "cpu_model": _cpu_model(),
            "threads": self.threads,
        }
        try:
            smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=20, check=False)
            info["nvidia_smi_L"] = smi.stdout.strip().splitlines()
        except (OSError, subprocess.SubprocessError) as e:
            info["nvidia_smi_L"] = f"unavailable ({type(e).__name__})"
        info.update(self.streams())
        return info

    def label(self):
        return f"{self.gpu_name()} (GPU {self.device.id})"


def make_device(name, threads=None):
    if name == "cpu":
        return CpuDevice(threads)
    if name == "gpu":
        return GpuDevice(threads)
    msg = f"device must be 'cpu' or 'gpu', got {name!r}"
    raise ValueError(msg)
