"""FFT planners, written once for NumPy (``scipy.fft``) and CuPy (``cupyx.scipy.fft``).

Two planners: ``fft.chunked`` (:mod:`.chunked`, NumPy and CuPy, any dtype)
and ``fft.one_pass`` (:mod:`.one_pass`, CuPy, real dtypes, within the memory
budget); sizes and phase terms in :mod:`.sizes`, the exact inf/NaN path in
:mod:`.exact`, the CUDA kernels in ``kernels.cu``.

The pipeline, per call::

    plan      FFT sizes per axis, spatial tiles, batch/group/channel chunks,
              all chosen so the spectra fit ``xconvt.get_memory_budget()``
    forward   transform each input tile (all channels of a chunk) once
    weights   per stride phase, the phase's sub-kernel (taps ``w[ks[0]::s']``
              placed ``step`` apart, which is the dilation) transformed at the
              same size; once per call where the spectra fit, else per chunk
    contract  per frequency, ``Y[n, g, o] = sum_c X[n, g, c] * W[g, c, o]``
              (block-diagonal over groups): a broadcast multiply-add over
              ``c`` on channels-first spectra ``(n, g, c, *freq)`` for few
              channels, a batched complex matmul on channels-last spectra
              ``(*freq, g, n, c)`` for many (:func:`use_matmul`; the
              transforms then run over the leading axes, so no spectrum is
              ever transposed)
    inverse   transform back, keeping only the rows the phase outputs
    add       into the strided output view ``out[..., first::s]`` (overlap-add
              across tiles), on top of the bias

Phase geometry (see :mod:`xconvt._params`): along one axis a phase outputs
``out[first + s*j] = sum_u x[base + j + u*step] * w[taps[u]]``.  With ``ks``
the phase's kernel indices in ascending order (``taps`` reversed) and
``g[v*step] = w[ks[v]]`` (length ``L = (len(ks) - 1)*step + 1``), that is row
``n = base + L - 1 + j`` of the full linear convolution ``c = x * g`` (length
``I + L - 1``), so no zero-stuffed input is ever formed: stride ``s`` costs
``s^3`` phases of the un-stuffed volume, not an ``s^3`` larger volume.

FFT sizes.  A circular convolution of length ``F`` returns
``c[m] + c[m + F]`` at row ``m``; for the kept rows ``[a, b]`` that is exact
when ``F > b`` and ``F >= I + L - 1 - a``.  Cropping ("same" padding) therefore
allows ``F`` below ``I + L - 1`` (48 rather than 64 for ``I = 32``, ``k = 31``).
Sizes come from the running library's ``next_fast_len``.  On NumPy the
transforms are pruned: the forward runs axis by axis starting where the data
is (only the ``I`` non-zero rows, then planes, are transformed) and the inverse
crops after each axis.  On CuPy, real-dtype calls that fit the budget run the
one-pass plan below (where it fits the budget); others use one ``rfftn``/``irfftn`` per array (cuFFT 3-D
plans, cached by CuPy).

One pass on CuPy (:class:`OnePassPlan`).  All active phases at once: the
padded input and every phase's zero-extended sub-kernel are written by two
kernels into buffers zeroed with ``cudaMemsetAsync``, transformed by two cached
cuFFT R2C plans, contracted per frequency by one kernel into every phase's
output spectrum, transformed back by one C2R plan and cropped, scaled and
biased into the output by one kernel (``xconvt_fft_*`` in
``kernels.cu``): the same handful of launches whatever the
number of phases and channels.

Workspace.  :func:`make_plan` estimates the peak bytes of one chunk (input
spectra, one weight spectrum, the output spectrum and a temporary) and shrinks
pieces until it fits the budget: output-channel, group and batch chunks and
the weight chunk of the contraction first (they only add loop overhead), then
spatial tiles no smaller than the sub-kernel, then input-channel chunks
(whose spectra are then recomputed per phase), then smaller tiles.  Weight
spectra are kept for the call when they are used more than once and fit.
Peak NumPy allocations stay under the estimate (tests check it with
``tracemalloc``).

Overlap-add.  When one channel's spectra do not fit the budget, the input is
cut into tiles of ``T`` voxels per axis; each tile is convolved in full
(``F >= T + L - 1``) and its rows added where they land.  The output is
initialized with the bias once, and every contribution is added, so one tile
and many tiles share the code.

Non-finite values.  A transform would spread one inf or NaN over the whole
volume; PyTorch's result has it only where it scatters.  A one-pass check
(the sum of ``x`` and of ``w``; on the one-pass path a flag the padding
kernels set) sends such inputs to an exact slow path (:func:`.exact.non_finite`).
On CuPy reading that flag, after everything is queued, is the path's only
host synchronization.

Precision.  float32 and complex64 transform in single precision (pocketFFT /
cuFFT): relative L2 error about 2.5e-7 (max-abs error about 2e-5 on outputs
of magnitude 50 to 70) for 31^3 kernels, far below 1e-5; float64 about 2e-15.
float16 is computed in float32 and rounded once at the end.
"""

from __future__ import annotations

from .chunked import Plan, make_plan, use_matmul
from .one_pass import OnePassPlan, one_pass_plan

__all__ = ["OnePassPlan", "Plan", "make_plan", "one_pass_plan", "use_matmul"]
