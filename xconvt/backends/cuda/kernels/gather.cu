// The gather kernel (xconvt/backends/cuda/gather.py).
#include "common.cuh"

// ---------------------------------------------------------------------------
// Gather kernel for layers with few channels and no dilation: no staging, each
// thread computes RG outputs of one W stride phase (consecutive j) for CO
// output channels, reading the input through the caches.  tab holds, per D
// and H output index, the first tap k0 that reaches it, its input index i0
// and the number of taps (taps k0 + t*s, inputs i0 - t, as for col2im); then E
// entries per output row, in phase order so that a warp shares its taps:
// (first output o0, valid outputs nv, first input of the window, number of W
// taps nt, offset of the phase's taps); then the phases' W taps.  Output
// o0 + r*s_w sums x[win + r + u] * w[taps[u]] over u < nt.  Grid: x = blocks
// over OH x E, y = OD, z = (n, g, output-channel chunk), grid-stride.
// ---------------------------------------------------------------------------
namespace xconvt {
struct GatherArgs {
  int has_bias, G, Cig, Cog, n_oc, E;
  int ID, IH, IW, OD, OH, OW, KD, KH, KW, sd, sh, sw;
};
}  // namespace xconvt

template <typename T, typename I, int CO, int RG, int TW>
__global__ void __launch_bounds__(128)
xconvt_gather(const T* __restrict__ x, const T* __restrict__ w,
              const T* __restrict__ bias, T* __restrict__ out,
              const int* __restrict__ tab, const xconvt::GatherArgs a, int NZ) {
  using namespace xconvt;
  typedef typename acc_of<T>::type Acc;
  const int v = blockIdx.x * blockDim.x + threadIdx.x;
  if (v >= a.OH * a.E) return;
  const int oh = v / a.E, e = v - oh * a.E;
  const int* const hr = tab + 3 * (a.OD + oh);
  const int kh0 = hr[0], ih0 = hr[1], nh = hr[2];
  const int* const we = tab + 3 * (a.OD + a.OH) + 5 * e;
  const int o0 = we[0], nv = we[1], win0 = we[2], nt = we[3];
  const int* const taps = tab + 3 * (a.OD + a.OH) + 5 * a.E + we[4];
  const I IV = (I)a.ID * a.IH * a.IW;
  const I K = (I)a.KD * a.KH * a.KW;
  const I OV = (I)a.OD * a.OH * a.OW;
  for (int od = blockIdx.y; od < a.OD; od += gridDim.y) {
    const int kd0 = tab[3 * od], id0 = tab[3 * od + 1], nd = tab[3 * od + 2];
    for (int z = blockIdx.z; z < NZ; z += gridDim.z) {
      const int oc = (z % a.n_oc) * CO;
      const int q = z / a.n_oc;
      const int g = q % a.G, n = q / a.G;
      Acc acc[CO][RG];
#pragma unroll
      for (int j = 0; j < CO; ++j) {
        const Acc b0 = a.has_bias && oc + j < a.Cog ? to_acc(bias[g * a.Cog + oc + j]) : Acc(0);
#pragma unroll
        for (int r = 0; r < RG; ++r) acc[j][r] = b0;
      }
      for (int c = 0; c < a.Cig; ++c) {
        const T* const xc = x + ((I)n * a.G * a.Cig + (I)g * a.Cig + c) * IV;
        const T* const wc = w + ((I)(g * a.Cig + c) * a.Cog + oc) * K;
        for (int td = 0; td < nd; ++td) {
          const int kd = kd0 + td * a.sd, id = id0 - td;
          for (int tq = 0; tq < nh; ++tq) {
            const int kh = kh0 + tq * a.sh, ih = ih0 - tq;
            const T* const row = xc + ((I)id * a.IH + ih) * a.IW;
            const T* const wr = wc + ((I)kd * a.KH + kh) * a.KW;
            if constexpr (RG == 1) {  // one output: each input is read once
              for (int u = 0; u < nt; ++u) {
                const int iw = win0 + u, kw = taps[u];
                const Acc xv = iw >= 0 && iw < a.IW ? to_acc(row[iw]) : Acc(0);
#pragma unroll
                for (int j = 0; j < CO; ++j)
                  if (oc + j < a.Cog) acc[j][0] += xv * to_acc(wr[(I)j * K + kw]);
              }
            } else {  // a register window of RG + nt - 1 inputs, reused across the taps
              Acc win[RG + TW - 1];
#pragma unroll
              for (int i = 0; i < RG + TW - 1; ++i) {
                const int iw = win0 + i;
                win[i] = i < nt + RG - 1 && iw >= 0 && iw < a.IW ? to_acc(row[iw]) : Acc(0);
              }
#pragma unroll
              for (int u = 0; u < TW; ++u) {
                if (u < nt) {
                  const int kw = taps[u];
#pragma unroll
                  for (int j = 0; j < CO; ++j) {
                    const Acc wv = oc + j < a.Cog ? to_acc(wr[(I)j * K + kw]) : Acc(0);
#pragma unroll
                    for (int r = 0; r < RG; ++r) acc[j][r] += win[r + u] * wv;
                  }
                }
              }
            }
          }
        }
      }
      T* const ob = out + (((I)n * a.G + g) * a.Cog + oc) * OV + ((I)od * a.OH + oh) * a.OW + o0;
#pragma unroll
      for (int j = 0; j < CO; ++j) {
        if (oc + j < a.Cog) {
#pragma unroll
          for (int r = 0; r < RG; ++r)
            if (r < nv) ob[(I)j * OV + r * a.sw] = from_acc<T>(acc[j][r]);
        }
      }
    }
  }
}

