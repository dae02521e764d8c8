// The pointwise kernel (xconvt/backends/cuda/pointwise.py).
#include "common.cuh"

// ---------------------------------------------------------------------------
// Pointwise layers (1x1x1 kernel, any stride, padding and groups) with few
// channels: memory-bound, so one thread per output position and group reads
// the Cig inputs once and writes CO output channels (a chunk of the group's
// Cog), with no staging.  Output o = i*s - p along each axis, so position o
// is reached by input (o + p)/s when s divides o + p and that is inside the
// input; other positions get the bias alone.  Grid: x = blocks of 256 over
// the output volume, y = (n, g, output-channel chunk), grid-stride.
// ---------------------------------------------------------------------------
namespace xconvt {
struct PointwiseArgs {
  int has_bias, G, Cig, Cog, n_oc;
  int ID, IH, IW, OD, OH, OW;
  int sd, sh, sw, pd, ph, pw;
};
}  // namespace xconvt

template <typename T, typename I, int CO>
__global__ void __launch_bounds__(256)
xconvt_pointwise(const T* __restrict__ x, const T* __restrict__ w,
                 const T* __restrict__ bias, T* __restrict__ out,
                 const xconvt::PointwiseArgs a, int NZ) {
  using namespace xconvt;
  typedef typename acc_of<T>::type Acc;
  const int OV = a.OD * a.OH * a.OW;
  const int v = blockIdx.x * blockDim.x + threadIdx.x;
  if (v >= OV) return;
  const int ow = v % a.OW, r = v / a.OW;
  const int oh = r % a.OH, od = r / a.OH;
  const int td = od + a.pd, th = oh + a.ph, tw = ow + a.pw;
  const int id = td / a.sd, ih = th / a.sh, iw = tw / a.sw;
  const bool hit = td == id * a.sd && th == ih * a.sh && tw == iw * a.sw &&
                   id < a.ID && ih < a.IH && iw < a.IW;
  const I IV = (I)a.ID * a.IH * a.IW;
  const I iv = ((I)id * a.IH + ih) * a.IW + iw;
  for (int z = blockIdx.y; z < NZ; z += gridDim.y) {
    const int oc = (z % a.n_oc) * CO;
    const int q = z / a.n_oc;
    const int g = q % a.G, n = q / a.G;
    Acc acc[CO];
#pragma unroll
    for (int j = 0; j < CO; ++j)
      acc[j] = a.has_bias && oc + j < a.Cog ? to_acc(bias[g * a.Cog + oc + j]) : Acc(0);
    if (hit) {
      const T* xc = x + ((I)n * a.G + g) * a.Cig * IV + iv;
      const T* wc = w + (I)g * a.Cig * a.Cog + oc;
      for (int c = 0; c < a.Cig; ++c, xc += IV, wc += a.Cog) {
        const Acc xv = to_acc(*xc);
#pragma unroll
        for (int j = 0; j < CO; ++j)
          if (oc + j < a.Cog) acc[j] += xv * to_acc(wc[j]);
      }
    }
    T* o = out + (((I)n * a.G + g) * a.Cog + oc) * OV + v;
#pragma unroll
    for (int j = 0; j < CO; ++j)
      if (oc + j < a.Cog) o[(I)j * OV] = from_acc<T>(acc[j]);
  }
}

