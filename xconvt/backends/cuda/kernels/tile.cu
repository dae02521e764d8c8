// The tile kernel (xconvt/backends/cuda/tile.py).
#include "common.cuh"

// ---------------------------------------------------------------------------
// Tile kernel for strided layers with few channels per group (no dilation):
// a block stages, once, the input box that one tile of phase coordinates
// (TD x TH x TW, the same j range in every stride phase) reads in all phases,
// for every input channel of its group, and every weight of the group; then
// it computes the phases one after another from shared memory.  Phase p's
// output first + s*j reads input base_p + j + u along each axis, so its slab
// offset is base_p - lo (lo: the smallest base of the axis).  A thread owns
// RO output channels x 4 values of j along W, TW/4 apart, so that the lanes
// of a warp store consecutive j; the taps are looped outermost and the input
// channels innermost.  ptab holds per phase: first,
// count, slab offset and number of taps for D, H and W, then the offsets of
// its D, H and W taps in the taps list that follows the phases.
// ---------------------------------------------------------------------------
namespace xconvt {
struct TileArgs {
  int has_bias, G, Cig, Cog, CogP, n_og, nph;
  int ID, IH, IW, OD, OH, OW, KH, KW, K;
  int sd, sh, sw, TD, TH, TW, XD, XH, XW;
  int ntd, nth, ntw, lod, loh, low, nptab;
};
enum { P_FIRST = 0, P_COUNT = 3, P_OFF = 6, P_NT = 9, P_TAPS = 12, P_FIELDS = 15 };
}  // namespace xconvt

template <typename T, typename I, int RO>
__global__ void __launch_bounds__(256, 2)
xconvt_tile(const T* __restrict__ x, const T* __restrict__ w,
            const T* __restrict__ bias, T* __restrict__ out,
            const int* __restrict__ ptab, const xconvt::TileArgs a) {
  using namespace xconvt;
  typedef typename acc_of<T>::type Acc;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Acc* const ws = reinterpret_cast<Acc*>(smem_raw);  // [Cig][K][CogP]
  Acc* const xs = ws + a.Cig * a.K * a.CogP;          // [Cig][XD][XH][XW]
  int b = blockIdx.x;
  const int tw_ = b % a.ntw; b /= a.ntw;
  const int th_ = b % a.nth; b /= a.nth;
  const int td_ = b % a.ntd; b /= a.ntd;
  const int g = b % a.G, n = b / a.G;
  const int jd0 = td_ * a.TD, jh0 = th_ * a.TH, jw0 = tw_ * a.TW;

  // Staging: the group's weights in their global order (coalesced reads), then
  // the input box with W fastest; SB loads are issued before their stores so
  // their latencies overlap.
  constexpr int SB = 8;
  const int CK = a.Cog * a.K;
  const int n_w = a.Cig * CK;
  const T* const wg = w + (I)g * n_w;
  for (int i0 = threadIdx.x; i0 < n_w; i0 += SB * blockDim.x) {
    Acc v[SB];
#pragma unroll
    for (int u = 0; u < SB; ++u) {
      const int i = i0 + u * blockDim.x;
      v[u] = i < n_w ? to_acc(wg[i]) : Acc(0);
    }
#pragma unroll
    for (int u = 0; u < SB; ++u) {
      const int i = i0 + u * blockDim.x;
      if (i < n_w) {
        const int c = i / CK, r = i - c * CK;
        const int o = r / a.K, k = r - o * a.K;
        ws[(c * a.K + k) * a.CogP + o] = v[u];
      }
    }
  }
  for (int i = threadIdx.x; i < a.Cig * a.K * (a.CogP - a.Cog); i += blockDim.x) {
    const int pad = a.CogP - a.Cog;
    ws[(i / pad) * a.CogP + a.Cog + i % pad] = Acc(0);
  }
  const I IV = (I)a.ID * a.IH * a.IW;
  const T* const xg = x + ((I)n * a.G + g) * a.Cig * IV;
  const int XV = a.XD * a.XH * a.XW;
  const int n_x = a.Cig * XV;
  for (int i0 = threadIdx.x; i0 < n_x; i0 += SB * blockDim.x) {
    Acc v[SB];
#pragma unroll
    for (int u = 0; u < SB; ++u) {
      int r = i0 + u * blockDim.x;
      const bool in = r < n_x;
      const int xw = r % a.XW; r /= a.XW;
      const int xh = r % a.XH; r /= a.XH;
      const int xd = r % a.XD, c = r / a.XD;
      const int id = a.lod + jd0 + xd, ih = a.loh + jh0 + xh, iw = a.low + jw0 + xw;
      v[u] = in && id >= 0 && id < a.ID && ih >= 0 && ih < a.IH && iw >= 0 && iw < a.IW
                 ? to_acc(xg[c * IV + ((I)id * a.IH + ih) * a.IW + iw])
                 : Acc(0);
    }
#pragma unroll
    for (int u = 0; u < SB; ++u) {
      const int i = i0 + u * blockDim.x;
      if (i < n_x) xs[i] = v[u];
    }
  }
  int* const ps = reinterpret_cast<int*>(xs + n_x);  // the phase table
  for (int i = threadIdx.x; i < a.nptab; i += blockDim.x) ps[i] = ptab[i];
  __syncthreads();

  const int per_og = blockDim.x / a.n_og;
  const int og = threadIdx.x / per_og, t = threadIdx.x % per_og;
  const int LG = a.TW >> 2;
  const int lg = t % LG, row = t / LG;
  const int ld = row / a.TH, lh = row % a.TH;
  const int o0 = og * RO;
  if (o0 >= a.Cog || ld >= a.TD) return;
  const I OV = (I)a.OD * a.OH * a.OW;
  T* const og_out = out + (((I)n * a.G + g) * a.Cog + o0) * OV;
  const int* const taps = ps + P_FIELDS * a.nph;
  for (int p = 0; p < a.nph; ++p) {
    const int* const pt = ps + P_FIELDS * p;
    // the thread's outputs along W are j = jw + LG*r (r < 4): a warp's stores
    // of one r then cover consecutive j
    const int jd = jd0 + ld, jh = jh0 + lh, jw = jw0 + lg;
    if (jd >= pt[P_COUNT] || jh >= pt[P_COUNT + 1] || jw >= pt[P_COUNT + 2]) continue;
    const int nd = pt[P_NT], nh = pt[P_NT + 1], nw = pt[P_NT + 2];
    const int* const tapd = taps + pt[P_TAPS];
    const int* const taph = taps + pt[P_TAPS + 1];
    const int* const tapw = taps + pt[P_TAPS + 2];
    Acc acc[RO][4];
#pragma unroll
    for (int o = 0; o < RO; ++o) {
      const Acc b0 = a.has_bias && o0 + o < a.Cog ? to_acc(bias[g * a.Cog + o0 + o]) : Acc(0);
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[o][r] = b0;
    }
    const Acc* const xb = xs + ((ld + pt[P_OFF]) * a.XH + lh + pt[P_OFF + 1]) * a.XW +
                          lg + pt[P_OFF + 2];
    // taps outermost (their offsets are uniform), input channels innermost:
    // the channel loop has no dependent index loads and unrolls
    const int WC = a.K * a.CogP;
    for (int ud = 0; ud < nd; ++ud) {
      for (int uh = 0; uh < nh; ++uh) {
        const int krow = (tapd[ud] * a.KH + taph[uh]) * a.KW;
        for (int uw = 0; uw < nw; ++uw) {
          const Acc* xc = xb + (ud * a.XH + uh) * a.XW + uw;
          const Acc* wc = ws + (krow + tapw[uw]) * a.CogP + o0;
#pragma unroll 4
          for (int c = 0; c < a.Cig; ++c, xc += XV, wc += WC) {
            Acc wv[RO], xv[4];
            load_w<RO>(wc, wv);
#pragma unroll
            for (int r = 0; r < 4; ++r) xv[r] = xc[LG * r];
#pragma unroll
            for (int o = 0; o < RO; ++o)
#pragma unroll
              for (int r = 0; r < 4; ++r) acc[o][r] += xv[r] * wv[o];
          }
        }
      }
    }
    const int od = pt[P_FIRST] + a.sd * jd, oh = pt[P_FIRST + 1] + a.sh * jh;
    T* const orow = og_out + ((I)od * a.OH + oh) * a.OW + pt[P_FIRST + 2] + a.sw * jw;
#pragma unroll
    for (int o = 0; o < RO; ++o) {
      if (o0 + o < a.Cog) {
#pragma unroll
        for (int r = 0; r < 4; ++r)
          if (jw + LG * r < pt[P_COUNT + 2])
            orow[(I)o * OV + LG * r * a.sw] = from_acc<T>(acc[o][r]);
      }
    }
  }
}

