// xconvt: the header every CUDA kernel family includes.
//
// Kernels are compiled at run time by NVRTC through cupy.RawModule, one module
// per family source (fused.cu, col2im.cu, pointwise.cu, gather.cu, tile.cu,
// remap.cu here; the FFT's in backends/fft/kernels.cu) and specialization; the
// host code (xconvt/backends/cuda/runtime.py) names each instantiation with
// name_expressions.  Every kernel computes each output element in exactly one
// thread, with no atomics, so the results are bit-for-bit repeatable.
//
//   T    storage type: __half, float or double
//   Acc  accumulation type: float for __half/float, double for double
//   I    index type: int where every array's element count fits, else long long
//
// Geometry (see xconvt/_params.py): per axis, stride phase r holds the outputs
// o = first + s*j (j < count) and out[first + s*j] = sum_u x[base + j + u*step]
// * w[taps[u]], x being zero outside the input.  A phase is a stride-1
// correlation of the un-stuffed input with a smaller (dilated by step) kernel.
#pragma once

#include <cuda_fp16.h>

namespace xconvt {

template <typename T> struct acc_of { typedef float type; };
template <> struct acc_of<double> { typedef double type; };

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ double to_acc(double v) { return v; }

template <typename T> __device__ __forceinline__ T from_acc(float v);
template <> __device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <typename T> __device__ __forceinline__ T from_acc(double v);
template <> __device__ __forceinline__ double from_acc<double>(double v) { return v; }

// Load N consecutive values from 16-byte-aligned shared memory into registers,
// 16 bytes at a time.  N is a multiple of the vector width.
template <int N>
__device__ __forceinline__ void load_vec(const float* p, float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; i += 4) {
    const float4 v = *reinterpret_cast<const float4*>(p + i);
    r[i] = v.x; r[i + 1] = v.y; r[i + 2] = v.z; r[i + 3] = v.w;
  }
}
template <int N>
__device__ __forceinline__ void load_vec(const double* p, double (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; i += 2) {
    const double2 v = *reinterpret_cast<const double2*>(p + i);
    r[i] = v.x; r[i + 1] = v.y;
  }
}

// A register row of N inputs: 16-byte loads where the row is aligned
// (shift == 0), element loads where staging left it shift elements off.
template <int N, typename A>
__device__ __forceinline__ void load_row(const A* p, A (&r)[N], int shift) {
  if (shift == 0) {
    load_vec<N>(p, r);
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) r[i] = p[i];
  }
}

// Load RO weights; vectorized when RO is a multiple of the vector width (the
// host aligns every RO-chunk then), scalar otherwise.
template <int RO, typename A>
__device__ __forceinline__ void load_w(const A* p, A (&r)[RO]) {
  constexpr int VW = 16 / sizeof(A);
  if constexpr (RO % VW == 0) {
    load_vec<RO>(p, r);
  } else {
#pragma unroll
    for (int i = 0; i < RO; ++i) r[i] = p[i];
  }
}

}  // namespace xconvt

namespace xconvt {

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return (unsigned)__cvta_generic_to_shared(p);
}

// Copy BYTES from global to shared memory asynchronously; zero-fill if !valid.
template <int BYTES>
__device__ __forceinline__ void cp_async(void* dst, const void* src, bool valid) {
  const unsigned d = smem_addr(dst);
  const int n = valid ? BYTES : 0;
  if constexpr (BYTES == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(n));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(d), "l"(src),
                 "n"(BYTES), "r"(n));
  }
}
// 16-byte copy of which only the first nbytes come from global memory; the
// rest of the 16 shared-memory bytes are zero-filled.
__device__ __forceinline__ void cp_async16_n(void* dst, const void* src, int nbytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)),
               "l"(src), "r"(nbytes));
}
// The same with the destination as a shared-space address (hoisted by callers).
__device__ __forceinline__ void cp_async16_s(unsigned dst, const void* src, int nbytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(nbytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// One staged element: asynchronous when shared memory holds T itself.
template <typename T, typename Acc>
__device__ __forceinline__ void stage1(Acc* dst, const T* src, bool valid) {
  if constexpr (sizeof(T) == sizeof(Acc)) {
    cp_async<sizeof(T)>(dst, src, valid);
  } else {
    *dst = valid ? to_acc(*src) : Acc(0);
  }
}

}  // namespace xconvt
