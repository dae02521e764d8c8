// The weight-gradient kernels (xconvt/backends/cuda/wgrad.py).
#include "common.cuh"

// ---------------------------------------------------------------------------
// dw[g, c, o, k] = sum_{n, i} x[n, g*Cig + c, i] * gy[n, g*Cog + o, i*s - p + k*d]
// (gy zero outside the output) as one GEMM per group, split over the
// reduction:
//
//   C[m, j] = sum_l A[m, l] * B[l, j],  m = c (Cig rows), j = (o, kd, kh, kw)
//   (Cog * KD*KH*KW columns), l = input position of one batch element,
//   A[m, l] = x[n, g*Cig + m, l],  B[l, j] = gy[n, g*Cog + o, pos(l, k)].
//
// Block (tm, tn) of BM x BN outputs, group g, split z: batch element
// n = z / S and positions [z % S * chunk, ...) of it; the block's partial sum
// goes to part[z][g*Cig + m][j] (every output of every split written once,
// no atomics), and xconvt_wgrad_reduce adds the splits in order (batch chunks
// of one launch each, in order): the result does not depend on timing.  Each reduction step stages BK positions of A
// and B in shared memory; thread t loads position t % BK (consecutive
// threads read consecutive positions: coalesced, and only one position's
// coordinates (id, ih, iw) per thread, advanced by BK each step) for rows /
// columns t / BK + r * (256 / BK), with the columns' tap offsets and channel
// rows precomputed.  The next step's loads are issued before the current
// step's multiply (register double buffering); TM x TN outputs per thread,
// read from shared memory as 16-byte vectors.  MINB: blocks per SM the
// compiler must fit (registers).
// ---------------------------------------------------------------------------
namespace xconvt {
// groups, channels per group, taps; input and output sizes; kernel (KD is
// implied by T); stride, padding, dilation; splits per batch element and
// positions per split; column tiles (grid.x = row tiles * tiles_n)
struct WgradArgs {
  int G, Cig, Cog, T;
  int ID, IH, IW, OD, OH, OW;
  int KH, KW;
  int sd, sh, sw, pd, ph, pw, dd, dh, dw;
  int S, chunk;
  int tiles_n;
};
}  // namespace xconvt

template <typename T, int BM, int BN, int BK, int TM, int TN, int MINB>
__global__ void __launch_bounds__(256, MINB)
xconvt_wgrad(const T* __restrict__ x, const T* __restrict__ gy,
             typename xconvt::acc_of<T>::type* __restrict__ part, const xconvt::WgradArgs a) {
  using namespace xconvt;
  typedef typename acc_of<T>::type Acc;
  constexpr int NT = 256;
  constexpr int ROWS = NT / BK;           // rows (m) or columns (j) per load pass
  constexpr int LA = BM * BK / NT;        // A loads per thread per step (may be 0)
  constexpr int LA1 = LA > 0 ? LA : 1;
  constexpr int LB = BN * BK / NT;        // B loads per thread per step
  static_assert(BN * BK % NT == 0, "B tile must split evenly over the threads");
  static_assert((BM / TM) * (BN / TN) == NT, "256 threads");

  // rows padded by 4 (16 bytes): the stores of BK consecutive positions fall in
  // different banks, and rows stay 16-byte aligned for the vector reads
  __shared__ __align__(16) Acc As[BK][BM + 4];
  __shared__ __align__(16) Acc Bs[BK][BN + 4];

  const int tid = threadIdx.x;
  const int tile_m = blockIdx.x / a.tiles_n, tile_n = blockIdx.x % a.tiles_n;
  const int g = blockIdx.y;
  const int z = blockIdx.z;
  const int n = z / a.S;
  const int P = a.ID * a.IH * a.IW;
  const int p_begin = (z % a.S) * a.chunk;
  const int p_end = min(P, p_begin + a.chunk);
  const int NJ = a.Cog * a.T;
  const int m0 = tile_m * BM, j0 = tile_n * BN;
  const int OV = a.OD * a.OH * a.OW;

  // this thread's loads: position k = tid % BK, rows/columns tid / BK + r*ROWS
  const int k = tid % BK;
  // 32-bit offsets from the block's batch element and group (the host checks
  // that one batch element's group of x and of gy fits)
  const T* xg = x + ((long long)n * a.G + g) * a.Cig * P;
  const T* gyg = gy + ((long long)n * a.G + g) * a.Cog * OV;
  int xrow[LA1];
#pragma unroll
  for (int r = 0; r < LA1; ++r) {
    const int m = m0 + tid / BK + r * ROWS;
    xrow[r] = (m < a.Cig && tid / BK + r * ROWS < BM) ? m * P : -1;
  }
  int gyrow[LB], offd[LB], offh[LB], offw[LB];
#pragma unroll
  for (int r = 0; r < LB; ++r) {
    const int j = j0 + tid / BK + r * ROWS;
    if (j < NJ) {
      const int o = j / a.T, tap = j % a.T;
      const int kw = tap % a.KW, kh = (tap / a.KW) % a.KH, kd = tap / (a.KW * a.KH);
      gyrow[r] = o * OV;
      offd[r] = kd * a.dd - a.pd;
      offh[r] = kh * a.dh - a.ph;
      offw[r] = kw * a.dw - a.pw;
    } else {  // a column past the end: an offset no position reaches
      gyrow[r] = 0;
      offd[r] = offh[r] = offw[r] = -(1 << 29);
    }
  }
  // coordinates of position p = p_begin + k (advanced by BK each step)
  int p = p_begin + k;
  int iw = p % a.IW, ih = (p / a.IW) % a.IH, id = p / (a.IW * a.IH);

  Acc ra[LA1], rb[LB];
  auto load = [&]() {
    const bool in = p < p_end;
#pragma unroll
    for (int r = 0; r < LA1; ++r)
      ra[r] = (in && xrow[r] >= 0) ? to_acc(xg[xrow[r] + p]) : Acc(0);
    const int bd = id * a.sd, bh = ih * a.sh, bw = iw * a.sw;
#pragma unroll
    for (int r = 0; r < LB; ++r) {
      const int od = bd + offd[r], oh = bh + offh[r], ow = bw + offw[r];
      const bool ok = in && (unsigned)od < (unsigned)a.OD &&
                      (unsigned)oh < (unsigned)a.OH && (unsigned)ow < (unsigned)a.OW;
      rb[r] = ok ? to_acc(gyg[gyrow[r] + (od * a.OH + oh) * a.OW + ow]) : Acc(0);
    }
    // advance to the next step's position
    p += BK;
    iw += BK;
    while (iw >= a.IW) {
      iw -= a.IW;
      if (++ih == a.IH) { ih = 0; ++id; }
    }
  };
  auto store = [&]() {
#pragma unroll
    for (int r = 0; r < LA1; ++r)
      if (tid / BK + r * ROWS < BM) As[k][tid / BK + r * ROWS] = ra[r];
#pragma unroll
    for (int r = 0; r < LB; ++r) Bs[k][tid / BK + r * ROWS] = rb[r];
  };

  // thread (ty, tx)'s outputs: with TM >= 8 (float) rows ty*TM/2 + [0, TM/2) and
  // BM/2 + ty*TM/2 + [0, TM/2), each half one 16-byte read per step; else rows
  // ty*TM + [0, TM) (one 16-byte read where TM is 4).  Columns likewise.
  constexpr bool F = sizeof(Acc) == 4;
  constexpr bool SPLIT_M = F && TM >= 8, SPLIT_N = F && TN >= 8;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  auto row = [&](int i) {
    return SPLIT_M ? (i < TM / 2 ? ty * (TM / 2) + i : BM / 2 + ty * (TM / 2) + i - TM / 2)
                   : ty * TM + i;
  };
  auto col = [&](int jj) {
    return SPLIT_N ? (jj < TN / 2 ? tx * (TN / 2) + jj : BN / 2 + tx * (TN / 2) + jj - TN / 2)
                   : tx * TN + jj;
  };
  Acc acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int jj = 0; jj < TN; ++jj) acc[i][jj] = Acc(0);

  const int steps = (p_end - p_begin + BK - 1) / BK;
  if (steps > 0) load();
  for (int s = 0; s < steps; ++s) {
    __syncthreads();
    store();
    __syncthreads();
    if (s + 1 < steps) load();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      Acc av[TM], bv[TN];
      if constexpr (SPLIT_M) {
        float lo[TM / 2], hi[TM / 2];
        load_vec<TM / 2>(&As[kk][ty * (TM / 2)], lo);
        load_vec<TM / 2>(&As[kk][BM / 2 + ty * (TM / 2)], hi);
#pragma unroll
        for (int i = 0; i < TM / 2; ++i) { av[i] = lo[i]; av[TM / 2 + i] = hi[i]; }
      } else if constexpr (F && TM % 4 == 0) {
        load_vec<TM>(&As[kk][ty * TM], av);
      } else {
#pragma unroll
        for (int i = 0; i < TM; ++i) av[i] = As[kk][ty * TM + i];
      }
      if constexpr (SPLIT_N) {
        float lo[TN / 2], hi[TN / 2];
        load_vec<TN / 2>(&Bs[kk][tx * (TN / 2)], lo);
        load_vec<TN / 2>(&Bs[kk][BN / 2 + tx * (TN / 2)], hi);
#pragma unroll
        for (int jj = 0; jj < TN / 2; ++jj) { bv[jj] = lo[jj]; bv[TN / 2 + jj] = hi[jj]; }
      } else if constexpr (F && TN % 4 == 0) {
        load_vec<TN>(&Bs[kk][tx * TN], bv);
      } else {
#pragma unroll
        for (int jj = 0; jj < TN; ++jj) bv[jj] = Bs[kk][tx * TN + jj];
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int jj = 0; jj < TN; ++jj) acc[i][jj] = fma(av[i], bv[jj], acc[i][jj]);
    }
  }

  // write the partial sums of this split
  const long long Cin = (long long)a.G * a.Cig;
  Acc* dst = part + ((long long)z * Cin + (long long)g * a.Cig) * NJ;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + row(i);
    if (m >= a.Cig) continue;
#pragma unroll
    for (int jj = 0; jj < TN; ++jj) {
      const int j = j0 + col(jj);
      if (j < NJ) dst[(long long)m * NJ + j] = acc[i][jj];
    }
  }
}

// out[e] (+)= sum_z part[z][e] in order z = 0, 1, ... (deterministic), e < total;
// accumulate: add to out's previous value (the sums of earlier batch chunks).
template <typename Acc>
__global__ void __launch_bounds__(256)
xconvt_wgrad_reduce(const Acc* __restrict__ part, Acc* __restrict__ out, long long total,
                    int splits, int accumulate) {
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    Acc s = accumulate ? out[e] : Acc(0);
    for (int z = 0; z < splits; ++z) s += part[(long long)z * total + e];
    out[e] = s;
  }
}
