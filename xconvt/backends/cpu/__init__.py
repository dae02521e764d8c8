"""The CPU planners: stride phases, im2col and BLAS, in NumPy.

Every output voxel is a *gather*: along each axis, output ``first + s*j`` of a
stride phase sums ``x[base + j + u*step] * w[taps[u]]`` (see
:mod:`xconvt._params`), so a stride-``s`` transposed convolution is ``s^3``
stride-1 correlations of the un-stuffed, zero-padded input with sub-kernels,
with no multiply-by-zero work.  Each is made BLAS-bound by folding channels
and some taps into one GEMM operand, of which the depth taps take slices (a
range of its columns or rows, which BLAS takes without a copy).
Two formulations share the phase driver and the workspace plan
(:mod:`.common`); each is a planner (:mod:`.channel_gemm`, :mod:`.toeplitz`),
and so are pure upsampling (:mod:`.upsample`) and small calls
(:mod:`.small`).

Channel GEMM (many channels)
    Per ``(D, H, W)`` phase with ``Td, Th, Tw`` taps, a partial im2col
    ``P[g, (c, uh, uw), (dd, jh, jw)]`` holds the ``Th*Tw`` shifted H/W
    windows of the padded input (one strided copy, shared by the depth
    phases; ``dd`` covers the chunk plus the depth taps' reach).  One GEMM
    per ``(H, W)`` unit stacks the weight blocks of every depth phase and tap,
    ``Cog`` rows each, and runs over every plane::

        Y[g] = Wst[g] (sum(Td)*Cog, Cig*Th*Tw)  @  P[g]

    (taller than one block per tap, which OpenBLAS runs faster: same_k3s1
    7.2 -> 6.0 ms on two cores), and each phase's output plane ``jd`` sums
    its taps' windows, ``Y[g][block (pd, ud), planes jd + ud*step_d]``, in
    place in ``Y``; that is written, with the bias, into the strided phase
    view of the output.  Groups are the batch dimension of the matmul.  The per-plane column grid
    is the exact ``(Oh, Ow)``, whole padded rows ``(Oh, Wp)`` or whole padded
    planes ``(Hp, Wp)``: padded grids compute a few junk columns (never
    written) but copy longer runs, and for a phase with one H and one W tap
    the padded-plane grid needs no copy at all: ``P`` is the input slab.

    That is the *channel-major* layout.  The *plane-major* one stores the
    slab and ``P`` plane by plane, ``P[g, dd, (c, uh, uw), (jh, jw)]``, so that
    with ``step_d == 1`` the rows an output plane needs, planes ``jd`` to
    ``jd + Td - 1``, are one matrix with a uniform row stride, and::

        acc[g, jd] = Wp[g] (Cog, Td*Cig*Th*Tw)  @  P[g, jd:jd + Td]

    folds the depth taps into the product: no accumulation passes, a deeper
    GEMM, and with unit H and W strides and the exact grid ``acc`` *is* the
    output plane (written in place).  One matmul call batches the GEMMs of all
    planes, groups and batch elements, but BLAS synchronizes its threads on
    each, which on a busy machine costs up to a scheduler time slice (and was
    no faster than channel-major on an idle one), so plane-major is used when
    BLAS runs them on the calling thread (``M*N*K`` under OpenBLAS's
    threshold), and then chunks go to worker threads (below).  Phases are
    computed and written a block of output planes at a time (``_BLOCK_BYTES``
    of accumulators), so that the strided W-phase writes meet in cache.

Toeplitz-W (few channels)
    With few output channels per group the channel GEMM has ``Cout/groups``
    rows and degenerates to a matrix-vector product.  Instead the whole W
    axis, all W phases at once, becomes a banded matrix: output blocks of
    ``Bw = m*s_w`` columns read windows of ``width`` input columns, and per
    H and D phase::

        C[(jd, jh, blk), (o, t)] = sum_ud  P[(jd + ud*step_d, jh, blk), (c, uh, q)] @ T[ud]

    with ``P`` the im2col of H taps and overlapping W windows and ``T[ud]``
    the ``(Cig*Th*width, Cog*Bw)`` banded weight, zero where no tap joins
    input ``q`` to output ``t``.  It spends about ``width*s_w/kW`` times the
    useful multiply-adds, but the GEMM is ``Cog*Bw`` wide and output rows
    are written whole, with no W interleave: it wins by far for depthwise
    and single-channel volumes.

Pure upsampling
    ``kernel == stride`` with no padding, dilation or output padding is one
    GEMM ``(D*H*W, Cig) @ (Cig, Cog*kD*kH*kW)`` per group and chunk of batch
    elements or input depth, then one reshuffle of the non-overlapping blocks
    that moves the ``kW`` W taps of a block as one item.

Choosing
    Each planner estimates its variants (three channel-GEMM grids,
    Toeplitz-W with ``m = 1, 2, 4, ..., 32``) in nanoseconds as GEMM time,
    ``flops * (0.0087 * (k + 64)/k + 0.0244/s)`` with ``k`` the inner
    dimension and ``s`` the thin outer one (shallow products are slow, thin
    ones are bound by reading the wide operand), plus ``0.72`` per element
    and ``8.2`` per contiguous run copied into the im2col, plus ``2.94`` per
    run of the output write.  The constants are a non-negative least-squares
    fit to single-thread timings of 19 configurations (the ten benchmark
    cases and nine others); with two BLAS threads the pick is on average
    within 2% of the fastest candidate, 11% at worst.  A plane-major channel
    GEMM run by ``n`` worker threads is credited ``1 + 0.6*(n - 1)`` times
    faster.  The estimates (nanoseconds of one thread) become seconds for
    comparison with the other planners.

Workspace
    The padded input slab, the im2col buffer and the accumulators are
    allocated once per call and reused for every chunk.  Chunks cover batch
    elements, groups and ``dc`` rows of the depth phases (which need
    ``dc + span`` input planes, ``span`` being the reach of the depth taps),
    sized so that the workspace fits ``min(get_memory_budget(), 16 MiB)``:
    the memory budget is a hard limit, except that one depth row of one
    group of one batch element is always processed, even when that alone
    exceeds a tiny budget (plane-major: ``min(budget/workers, 8 MiB)`` per
    worker, and at least four chunks per worker where batch, groups or depth
    allow).  Depth chunks of at least ``4*span`` rows are
    preferred (halo copies under 25%), splitting groups first.  The 16 MiB
    soft target trades cache locality (4 MiB was fastest on one thread)
    against fewer, larger BLAS calls, which matter with threaded BLAS: every
    call synchronizes its threads, and on a busy machine 4 MiB chunks made
    stride-2 cases several times slower.  The channel GEMM writes all phases
    of about 512 KiB of output at a time, so that the stride-interleaved
    writes of neighbouring W phases meet in cache.  The pure-upsampling
    column buffer is chunked over batch and input depth to 2 MiB (it is
    reshuffled right away).  The slab, im2col and accumulator buffers are kept
    per calling thread for the next call (while at most twice what a call
    needs): allocating and freeing megabytes per call made the C allocator
    return the pages to the system and fault them back in, zeroed, on every
    call, which cost up to as much as the convolution in small cases.

Precision, non-finite values, threads
    float16 is computed in float32 and rounded once at the end; complex
    types use complex BLAS.  Non-finite values follow PyTorch, which only
    multiplies existing inputs by taps: with an inf or NaN in the weight a
    slower per-tap scatter is used (zero padding times inf would be NaN),
    and with one in the input Toeplitz-W (zero band entries) is skipped; no
    floating-point warnings are raised.  Parallelism is mostly BLAS's own:
    copies are memory-bound or, when strided, would compete with BLAS threads
    that keep spinning between calls.  The exception is a plane-major channel
    GEMM whose GEMMs BLAS runs on the calling thread: its chunks (slab copy,
    im2col, GEMMs, writes) go to ``min(CPUs, 8)`` Python threads, each with its
    own workspace, taking the next chunk when done (NumPy releases the GIL in
    matmul and copies).  Right after a threaded BLAS call elsewhere, the BLAS
    threads still spinning take a CPU from them and such a call runs about
    as fast as the single-threaded channel-major one did; otherwise about
    twice as fast.
"""

from .common import all_finite, available_cpus

__all__ = ["all_finite", "available_cpus"]
