// The dilation remap (xconvt/backends/cuda/remap.py).
#include "common.cuh"

// ---------------------------------------------------------------------------
// remap: xr[b, td, th, tw] = x[b, tab[td], tab[RD + th], tab[RD + RH + tw]], 0
// where an entry is -1 (b = n * Cin + c; x contiguous).  Rearranges a
// dilated layer's input into per-residue blocks so that every sub-phase of
// the fused kernel reads consecutive rows (xconvt/backends/cuda/geometry.py,
// kernel_geometry).
// ---------------------------------------------------------------------------
template <typename T, typename I>
__global__ void __launch_bounds__(256)
xconvt_remap(const T* __restrict__ x, T* __restrict__ xr, const int* __restrict__ tab,
             I total, int ID, int IH, int IW, int RD, int RH, int RW) {
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (I)gridDim.x * blockDim.x) {
    const int tw = (int)(i % RW);
    const I r = i / RW;
    const int th = (int)(r % RH);
    const I r2 = r / RH;
    const int td = (int)(r2 % RD);
    const I b = r2 / RD;
    const int sd = tab[td], sh = tab[RD + th], sw = tab[RD + RH + tw];
    T v = T(0);
    if (sd >= 0 && sh >= 0 && sw >= 0) v = x[((b * ID + sd) * IH + sh) * IW + sw];
    xr[i] = v;
  }
}

