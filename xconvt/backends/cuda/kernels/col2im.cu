// col2im of the GEMM variant (xconvt/backends/cuda/gemm.py).
#include "common.cuh"

// ---------------------------------------------------------------------------
// col2im in gather form for the GEMM path.  C is the column type (float for
// __half and float, double for double).  cols holds, for batch elements
// n0 + n (n < NZ / (G * Cg)) and output channels o0 + o (o < Cg) of each
// group, cols[((n*G + g)*Cg + o)*K + tap][v] = sum_c W[g*Cig + c, o0 + o, tap]
// * x[n0 + n, g*Cig + c, v] (K = KD*KH*KW taps, v < V = ID*IH*IW).  One thread
// per output element sums the taps that reach it (no atomics) and adds the
// bias.  tab holds, per axis and output index, the first tap k0 that reaches
// it, the matching input index i0 and the number of taps: the taps are
// k0 + t*ks with inputs i0 - t*dg (ks = s/gcd(s,d), dg = d/gcd(s,d)), so no
// division is needed per tap.  Grid: x = blocks of 128 over the OH x OW
// plane, y = OD, z = (n, g, o).
// ---------------------------------------------------------------------------
namespace xconvt {
struct Col2imArgs {
  int has_bias, G, Cog;
  int ID, IH, IW, OD, OH, OW;
  int KD, KH, KW, ksd, ksh, ksw, dgd, dgh, dgw;
};
}  // namespace xconvt

template <typename T, typename C, typename I>
__global__ void __launch_bounds__(128)
xconvt_col2im(const C* __restrict__ cols, const T* __restrict__ bias,
              T* __restrict__ out, const int* __restrict__ tab,
              const xconvt::Col2imArgs a, int NZ, int Cg, int n0, int o0) {
  using namespace xconvt;
  const int OD = a.OD, OH = a.OH, OW = a.OW, IH = a.IH, IW = a.IW;
  const int KH = a.KH, KW = a.KW, G = a.G;
  const int hw = blockIdx.x * blockDim.x + threadIdx.x;
  if (hw >= OH * OW) return;
  const int oh = hw / OW, ow = hw % OW;
  const I V = (I)a.ID * IH * IW;
  const I K = (I)a.KD * KH * KW;
  const int* const th_ = tab + 3 * (OD + oh);
  const int* const tw_ = tab + 3 * (OD + OH + ow);
  const int kh0 = th_[0], ih0 = th_[1], nh = th_[2];
  const int kw0 = tw_[0], iw0 = tw_[1], nw = tw_[2];
  for (int od = blockIdx.y; od < OD; od += gridDim.y) {
    const int kd0 = tab[3 * od], id0 = tab[3 * od + 1], nd = tab[3 * od + 2];
    for (int z = blockIdx.z; z < NZ; z += gridDim.z) {
      const int o = z % Cg;
      const int q = z / Cg;
      const int g = q % G, n = q / G;
      const C* const cg = cols + (I)z * K * V;
      C acc = a.has_bias ? (C)to_acc(bias[g * a.Cog + o0 + o]) : C(0);
      for (int td = 0; td < nd; ++td) {
        const int kd = kd0 + td * a.ksd, id = id0 - td * a.dgd;
        for (int th = 0; th < nh; ++th) {
          const int kh = kh0 + th * a.ksh, ih = ih0 - th * a.dgh;
          const C* const crow = cg + ((I)kd * KH + kh) * KW * V + ((I)id * IH + ih) * IW;
          for (int tw = 0; tw < nw; ++tw)
            acc += crow[(I)(kw0 + tw * a.ksw) * V + (iw0 - tw * a.dgw)];
        }
      }
      out[((((I)(n0 + n) * G + g) * a.Cog + o0 + o) * OD + od) * (I)OH * OW +
          (I)oh * OW + ow] = from_acc<T>(acc);
    }
  }
}

