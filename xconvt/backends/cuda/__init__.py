"""The direct CUDA planners: CuPy ``RawModule`` kernels in gather form, and cuBLAS + col2im.

Five variants, each a planner (``plan(problem) -> Plan | str``) in its own
module with its kernel family in ``kernels/<family>.cu`` (one common header,
``kernels/common.cuh``); all compute every output element in one thread with
no atomics (bit-for-bit repeatable), launch on the current stream and never
synchronize the host:

``cuda.fused`` (:mod:`.fused`)
    one launch covers every stride phase: staged slabs and weights,
    register tiles of output channels x W outputs.  Rejected where a block's
    tiles would need more shared memory than the device gives.
``cuda.gemm`` (:mod:`.gemm`)
    cuBLAS strided-batched GEMM of every tap, then a col2im gather.
``cuda.pointwise`` (:mod:`.pointwise`)
    1x1x1 kernels with few channels: one thread per output position.
``cuda.tile`` (:mod:`.tile`)
    strided layers with few channels per group: one staged input box serves
    every stride phase.
``cuda.gather`` (:mod:`.gather`)
    few channels and few multiply-adds per output: no staging.

The tensor-core planners (:mod:`.mma`): ``cuda.mma`` (``mma.sync``, sm_80
and later) and ``cuda.wgmma`` (``wgmma``, sm_90a: H100/H200; compiled with
NVRTC for that target, :func:`.runtime.kernel`'s ``arch``), an implicit GEMM
per stride phase in 3xTF32, TF32, float16 and bfloat16, and their conv3d
planners ``cuda.mma_conv3d`` and ``cuda.wgmma_conv3d``.

:mod:`.runtime` holds what they share (compilation cache per device and
specialization, argument structs, index width, the plan classes and the FMA
cost model); :mod:`.geometry` and :mod:`.remap` the phase geometry the fused
kernel iterates over.  Each planner sizes its kernel from the device's
limits (:class:`xconvt._plan.Device`, read from the device), so choices can
be replayed on the CPU with a preset device.  The estimates: the fused
kernel's is the FMA model (:func:`.runtime.fma_estimate`); the others are
that model times their measured speed relative to the fused kernel in the
regime where they were measured (each module's ``RELATIVE``).  float16
accumulates in float32; complex runs as four real convolutions
(:class:`.runtime.ComplexPlan`).
"""

__all__ = []
