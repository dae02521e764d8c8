// xconvt: CUDA kernels for the direct 3-D transposed convolution (gather form).
//
// Compiled at run time by NVRTC through cupy.RawModule, one module per
// specialization; the host code in xconvt/backends/cuda.py picks the template
// arguments and names each instantiation with name_expressions.  Every kernel
// computes each output element in exactly one thread, with no atomics, so the
// results are bit-for-bit repeatable.
//
//   T    storage type: __half, float or double
//   Acc  accumulation type: float for __half/float, double for double
//   I    index type: int where every array's element count fits, else long long
//
// Geometry (see xconvt/_params.py): per axis, stride phase r holds the outputs
// o = first + s*j (j < count) and out[first + s*j] = sum_u x[base + j + u*step]
// * w[taps[u]], x being zero outside the input.  A phase is a stride-1
// correlation of the un-stuffed input with a smaller (dilated by step) kernel.

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

// Per-phase metadata, META int64 values per phase (written by cuda.py).
enum {
  M_BLOCK0 = 0, M_TILES_W, M_TILES_H, M_TILES_D,
  M_FIRST_D, M_FIRST_H, M_FIRST_W,
  M_COUNT_D, M_COUNT_H, M_COUNT_W,
  M_BASE_D, M_BASE_H, M_BASE_W,
  M_NT_D, M_NT_H, M_NT_W,
  M_WSHIFT, M_VEC, M_WOFF,
  // Weight offset of the phase's first tap (kd, kh, kw in w's last three
  // axes) and the offset between successive taps along D, H and W.
  M_WTAP0, M_WSTEP_D, M_WSTEP_H, M_WSTEP_W,
  META
};

// Scalar arguments of the fused kernel, passed by value as one struct (one
// kernel parameter instead of thirty keeps the host launch cost low).  The
// host builds it as a NumPy structured scalar with these int32 fields in this
// order (cuda.py, _FUSED_FIELDS).  packed: w is the per-call packed copy
// (xconvt_pack) rather than PyTorch's layout.
struct FusedArgs {
  int nphase, interleave, has_bias, vec, packed;
  int G, Cig, Cog, n_ob;
  int ID, IH, IW, OD, OH, OW;
  int sd, sh, sw, isd, ish, isw;
  int TWT, TH, TD, OG, CC, TDC;
  int P, PP, CP, BUF;
  int KD, KH, KW;
};

}  // namespace xconvt

// ---------------------------------------------------------------------------
// Fused direct kernel: one launch covers every stride phase.
//
// A block computes a tile of TD x TH x (TWT*RW) outputs of one phase for
// OG*RO output channels of one (batch, group).  Thread (og, dt, ht, wt) owns
// RO channels x RW consecutive outputs along W, accumulated in registers.
// The reduction runs in stages over chunks of CC input channels and TDC
// depth taps.  A stage stages the input slab (CC x TDP x HH x WW, zero-filled
// at the borders) and the weights (CC x TDC x Th x Tw x OG*RO, from a packed
// copy or from w) in shared memory, double-buffered: cp.async copies of stage
// s+1 fly while stage s is computed (float and double; __half converts
// through registers).
// Per (channel, d tap, h tap) every thread loads a register row of
// RW + TWX - 1 inputs with 16-byte loads and reuses it across the W taps; TWX
// is the compile-time W-tap block (a wider kernel loops over blocks).  Taps
// are consecutive in a phase: where the dilation makes them step by k > 1
// input positions, the host splits the phase into k sub-phases that read the
// input with stride k (isd, ish, isw) and write the output with stride s*k.
// ---------------------------------------------------------------------------
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

#ifndef XCONVT_WIDE_MINB
#define XCONVT_WIDE_MINB 2
#endif
// Wide register tiles (RO >= 12) need ~145 registers: XCONVT_WIDE_MINB = 1
// lets ptxas use them (one 256-thread block per SM), 2 caps them at 128.
// Narrow tiles fit in 80 (RO <= 4) or 128 (RO = 8) registers.
template <typename T, typename I, int RO, int RW, int TWX>
__global__ void __launch_bounds__(256, (RO >= 12 ? XCONVT_WIDE_MINB : RO > 4 ? 2 : 3))
xconvt_fused(const T* __restrict__ x, const T* __restrict__ w,
             const T* __restrict__ bias, T* __restrict__ out,
             const long long* __restrict__ meta, const xconvt::FusedArgs a) {
  using namespace xconvt;
  const int nphase = a.nphase, interleave = a.interleave, has_bias = a.has_bias;
  const int G = a.G, Cig = a.Cig, Cog = a.Cog, n_ob = a.n_ob;
  const int ID = a.ID, IH = a.IH, IW = a.IW, OD = a.OD, OH = a.OH, OW = a.OW;
  const int sd = a.sd, sh = a.sh, sw = a.sw, isd = a.isd, ish = a.ish, isw = a.isw;
  const int TWT = a.TWT, TH = a.TH, TD = a.TD, OG = a.OG, CC = a.CC, TDC = a.TDC;
  const int P = a.P, PP = a.PP, CP = a.CP, BUF = a.BUF, vec = a.vec;
  typedef typename acc_of<T>::type Acc;
  constexpr int VW = 16 / sizeof(Acc);
  constexpr int XL = ((RW + TWX - 1 + VW - 1) / VW) * VW;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Acc* const smem = reinterpret_cast<Acc*>(smem_raw);

  // Which phase, tile, output-channel block and (n, g) this block computes.
  // When every phase has the same number of blocks (interleave != 0) the
  // phase varies fastest, so sibling phases write the same output sectors
  // close together in time; otherwise phases follow each other.
  // 32-bit arithmetic: the grid has fewer than 2^31 blocks (64-bit
  // divisions cost hundreds of instructions).
  unsigned b = blockIdx.x;
  int lo = 0;
  if (interleave) {
    lo = (int)(b % (unsigned)nphase);
    b /= (unsigned)nphase;
  } else {
    int hi = nphase - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) >> 1;
      if (meta[mid * META + M_BLOCK0] <= (long long)b) lo = mid; else hi = mid - 1;
    }
    b -= (unsigned)meta[lo * META + M_BLOCK0];
  }
  const long long* m = meta + lo * META;
  const unsigned tiles_w = (unsigned)m[M_TILES_W], tiles_h = (unsigned)m[M_TILES_H];
  const unsigned tiles_d = (unsigned)m[M_TILES_D];
  const int ob = (int)(b % (unsigned)n_ob); b /= (unsigned)n_ob;
  const unsigned ntile = tiles_w * tiles_h * tiles_d;
  const unsigned tile = b % ntile;
  const int ng = (int)(b / ntile);
  const int g = ng % G, n = ng / G;
  const int tx = (int)(tile % tiles_w);
  const int ty = (int)((tile / tiles_w) % tiles_h);
  const int tz = (int)(tile / (tiles_w * tiles_h));

  const int TW = TWT * RW;
  // The W tiles of a phase start wshift outputs early so that, with unit
  // input stride, every tile's first input column is 16-byte aligned.
  const int jw0 = tx * TW - (int)m[M_WSHIFT], jh0 = ty * TH, jd0 = tz * TD;
  const int Td = (int)m[M_NT_D], Th = (int)m[M_NT_H], Tw = (int)m[M_NT_W];
  const int BO = OG * RO;

  const int tid = threadIdx.x;
  const int nthreads = blockDim.x;
  const int wt = tid % TWT;
  const int ht = (tid / TWT) % TH;
  const int dt = (tid / (TWT * TH)) % TD;
  const int og = tid / (TWT * TH * TD);
  // The block is rounded up to whole warps (the staging loops rely on it);
  // threads past the last output-channel group only help staging.
  const bool active = og < OG;

  Acc acc[RO][RW];
#pragma unroll
  for (int r = 0; r < RO; ++r)
#pragma unroll
    for (int i = 0; i < RW; ++i) acc[r][i] = Acc(0);

  if (Td > 0 && Th > 0 && Tw > 0) {
    const int HH = TH + Th - 1;             // staged rows this phase
    const int WWn = TW + Tw - 1;            // staged columns this phase
    // Input index of slab position q along an axis: base + is * q.
    const int base_d = (int)m[M_BASE_D] + isd * jd0;
    const int base_h = (int)m[M_BASE_H] + ish * jh0;
    const int base_w = (int)m[M_BASE_W] + isw * jw0;
    const I x_plane = (I)IH * IW;
    const I x_chan = (I)ID * x_plane;
    const T* const xg = x + ((I)n * G + g) * (I)Cig * x_chan;
    // Weight rows are padded to whole vectors when a block has one channel.
    const int TwP = BO == 1 ? (Tw + VW - 1) / VW * VW : Tw;
    const int tap_sz = Th * TwP * BO;        // weights per (c, d tap)
    // Weights are staged per channel as [td][th][tw][o in block] (tw padded
    // to TwP, o to BO, zeros there).  Packed (a.packed): w already holds
    // that layout per phase, [g][ob][c][td][th][tw][BO] from M_WOFF, copied
    // 16 bytes at a time.  Otherwise w is in PyTorch's layout
    // w[g*Cig + c][o][kd][kh][kw], read element by element; the strides of
    // the staged digits there:
    const int KT = a.KD * a.KH * a.KW;
    const int obase = ob * BO;
    const I w_c = a.packed ? (I)Td * tap_sz : (I)Cog * KT;   // input channel
    const int w_td = a.packed ? tap_sz : (int)m[M_WSTEP_D];
    const int w_th = (int)m[M_WSTEP_H], w_tw = (int)m[M_WSTEP_W];
    const T* const wg = a.packed
        ? w + m[M_WOFF] + ((I)g * n_ob + ob) * (I)Cig * Td * tap_sz
        : w + ((I)g * Cig * Cog + obase) * KT + m[M_WTAP0];
    const int n_cs = (Cig + CC - 1) / CC;
    const int n_ts = (Td + TDC - 1) / TDC;
    const int nstage = n_cs * n_ts;
    // A row is staged in units of one element, or with vec 16-byte chunks of
    // CW elements (aligned rows).
    constexpr int CW = 16 / sizeof(T);
    const bool vecp = vec && m[M_VEC];   // aligned tiles in this phase
    // With vec, rows are staged from the 16-byte boundary at or before the
    // tile's first input column; compute then reads them xsh elements in
    // (xsh != 0 only where the host did not shift the tile to align it).
    const int xsh = vecp ? (base_w & (CW - 1)) : 0;
    const int nunit = vecp ? (xsh + WWn + CW - 1) / CW : WWn;
    constexpr int WVE = 16 / sizeof(T);     // elements per 16-byte weight copy
    // Staging layout: R rows of L lanes per sweep (see issue); this thread's
    // first row and unit, and with vec the unit's first input column and
    // element count (before the row's bounds).
    const int L = min(nunit, 32), R = nthreads / L;   // rows over 32 units: whole warps
    const int srow0 = tid < R * L ? tid / L : (1 << 30), su = tid % L;
    const int su_gw = base_w - xsh + su * CW;
    const int su_nv = su_gw >= 0 ? max(0, min(CW, IW - su_gw)) : 0;

    auto issue = [&](int s) {
      Acc* const xs = smem + (s & 1) * BUF;
      const int c0 = (s / n_ts) * CC, td0 = (s % n_ts) * TDC;
      const int cc = min(CC, Cig - c0), tdc = min(TDC, Td - td0);
      const int TDP = TD + tdc - 1;
      // Rows (c, dd, hh) of nunit units each.  Threads are laid out as R rows
      // of L lanes; the lane's unit u = su is fixed, so its W position and
      // chunk size are computed once, and the row digits advance by R with
      // carries (no division per row).  Rows of more than 32 units take one
      // warp each, its lanes looping over the units.
      const int nrows = cc * TDP * HH;
      int hh = srow0 % HH, dd = (srow0 / HH) % TDP, c = srow0 / (HH * TDP);
      const int ihh = R % HH, idd = (R / HH) % TDP, ic = R / (HH * TDP);
      const unsigned xs_s = smem_addr(xs) + su * CW * (int)sizeof(Acc);
      for (int r = srow0; r < nrows; r += R) {
        const int gd = base_d + isd * (dd + td0);
        const int gh = base_h + ish * hh;
        const bool row_ok = (unsigned)gd < (unsigned)ID && (unsigned)gh < (unsigned)IH;
        // One index, then one pointer addition (adding each term to the
        // pointer would widen each to 64 bits).
        const I off = (I)(c0 + c) * x_chan + (I)gd * x_plane + (I)gh * IW;
        const T* const src = xg + off;
        const int drow = c * CP + dd * PP + hh * P;
        Acc* const dst = xs + drow;
        bool done = false;
        if constexpr (sizeof(T) == sizeof(Acc)) {
          if (vecp) {
            const int nv = row_ok ? su_nv : 0;
            cp_async16_s(xs_s + drow * (int)sizeof(Acc), nv ? xg + (off + su_gw) : x,
                         nv * (int)sizeof(T));
            for (int u = su + L; u < nunit; u += L) {
              const int gw = base_w - xsh + u * CW;
              const int nvu = (row_ok && gw >= 0) ? max(0, min(CW, IW - gw)) : 0;
              cp_async16_n(dst + u * CW, nvu ? src + gw : x, nvu * (int)sizeof(T));
            }
            done = true;
          }
        }
        if (!done) {
          for (int u = su; u < nunit; u += L) {
            const int gw = base_w + isw * u;
            const bool ok = row_ok && (unsigned)gw < (unsigned)IW;
            stage1<T, Acc>(dst + u, ok ? src + gw : x, ok);
          }
        }
        hh += ihh;
        int carry = hh >= HH; if (carry) hh -= HH;
        dd += idd + carry;
        carry = dd >= TDP; if (carry) dd -= TDP;
        c += ic + carry;
      }
      // Weights: element e = (((c*tdc + td)*Th + th)*TwP + tw)*BO + o of the
      // stage goes to ws[c*TDC*tap_sz + (e - c*tdc*tap_sz)].  Its digits are
      // advanced by those of nthreads with carries (no division per element).
      Acc* const ws = xs + CC * CP;
      const T* const wsrc = wg + (I)c0 * w_c + (I)td0 * w_td;
      if (a.packed) {
        // cc segments of tdc * tap_sz contiguous elements
        const int seg = tdc * tap_sz;
        if constexpr (sizeof(T) == sizeof(Acc)) {
          if ((tap_sz % WVE) == 0) {
            const int nv = seg / WVE;
            for (int e = tid; e < cc * nv; e += nthreads) {
              const int c = e / nv, v = e % nv;
              cp_async<16>(ws + c * (TDC * tap_sz) + v * WVE, wsrc + (I)c * w_c + v * WVE, true);
            }
            return;
          }
        }
        for (int e = tid; e < cc * seg; e += nthreads) {
          const int c = e / seg, v = e % seg;
          stage1<T, Acc>(ws + c * (TDC * tap_sz) + v, wsrc + (I)c * w_c + v, true);
        }
        return;
      }
      {
        int q = tid;
        int o = q % BO; q /= BO;
        int tw = q % TwP; q /= TwP;
        int th = q % Th; q /= Th;
        int td = q % tdc;
        int c = q / tdc;
        q = nthreads;
        const int io = q % BO; q /= BO;
        const int itw = q % TwP; q /= TwP;
        const int ith = q % Th; q /= Th;
        const int itd = q % tdc;
        const int ic = q / tdc;
        const int gap = (TDC - tdc) * tap_sz;
        const int total = cc * tdc * tap_sz;
        for (int e = tid; e < total; e += nthreads) {
          const bool ok = tw < Tw && obase + o < Cog;
          const T* src = wsrc + (I)c * w_c + (I)o * KT + td * w_td + th * w_th + tw * w_tw;
          stage1<T, Acc>(ws + e + c * gap, ok ? src : w, ok);
          o += io;
          int carry = o >= BO; if (carry) o -= BO;
          tw += itw + carry;
          carry = tw >= TwP; if (carry) tw -= TwP;
          th += ith + carry;
          carry = th >= Th; if (carry) th -= Th;
          td += itd + carry;
          carry = td >= tdc; if (carry) td -= tdc;
          c += ic + carry;
        }
      }
    };

    issue(0);
    cp_async_commit();
    for (int s = 0; s < nstage; ++s) {
      if (s + 1 < nstage) issue(s + 1);
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();
      const Acc* const xs = smem + (s & 1) * BUF;
      const Acc* const ws = xs + CC * CP;
      const int c0 = (s / n_ts) * CC, td0 = (s % n_ts) * TDC;
      const int cc = active ? min(CC, Cig - c0) : 0;
      const int tdc = min(TDC, Td - td0);
      for (int c = 0; c < cc; ++c) {
        for (int td = 0; td < tdc; ++td) {
          const Acc* const xplane = xs + c * CP + (dt + td) * PP + ht * P + wt * RW + xsh;
          const Acc* const wtap = ws + (c * TDC + td) * tap_sz + og * RO;
          for (int th = 0; th < Th; ++th) {
            const Acc* const xrow = xplane + th * P;
            const Acc* const wrw = wtap + th * TwP * BO;
            if (Tw == TWX) {
              Acc xr[XL];
              load_row<XL>(xrow, xr, xsh);
              if constexpr (RO == 1) {
                // The whole W row of weights in a few 16-byte loads.
                constexpr int TWP = (TWX + VW - 1) / VW * VW;
                Acc wr[TWP];
                load_vec<TWP>(wrw, wr);
#pragma unroll
                for (int t = 0; t < TWX; ++t)
#pragma unroll
                  for (int i = 0; i < RW; ++i)
                    acc[0][i] = fma(wr[t], xr[i + t], acc[0][i]);
              } else {
#pragma unroll
                for (int t = 0; t < TWX; ++t) {
                  Acc wv[RO];
                  load_w<RO>(wrw + t * BO, wv);
#pragma unroll
                  for (int r = 0; r < RO; ++r)
#pragma unroll
                    for (int i = 0; i < RW; ++i)
                      acc[r][i] = fma(wv[r], xr[i + t], acc[r][i]);
                }
              }
            } else {
              for (int tw0 = 0; tw0 < Tw; tw0 += TWX) {
                Acc xr[XL];
                load_row<XL>(xrow + tw0, xr, xsh);
#pragma unroll
                for (int t = 0; t < TWX; ++t) {
                  if (tw0 + t < Tw) {
                    Acc wv[RO];
                    load_w<RO>(wrw + (tw0 + t) * BO, wv);
#pragma unroll
                    for (int r = 0; r < RO; ++r)
#pragma unroll
                      for (int i = 0; i < RW; ++i)
                        acc[r][i] = fma(wv[r], xr[i + t], acc[r][i]);
                  }
                }
              }
            }
          }
        }
      }
      __syncthreads();
    }
  }

  // Epilogue through shared memory: the accumulators go to a tile
  // [r][og][dt][ht][W] and each warp then writes whole rows, consecutive lanes
  // on consecutive outputs of the phase (coalesced for stride 1, half-sector
  // for stride 2), adding the bias.
  __syncthreads();
  Acc* const otile = smem;
  const int S = OG * TD * TH;               // spatial rows per channel of the block
  if (active) {
#pragma unroll
    for (int r = 0; r < RO; ++r) {
      Acc* const dst = otile + (r * S + (og * TD + dt) * TH + ht) * TW + wt * RW;
#pragma unroll
      for (int i = 0; i < RW; i += VW) {
        if constexpr (VW == 4) {
          *reinterpret_cast<float4*>(dst + i) =
              make_float4(acc[r][i], acc[r][i + 1], acc[r][i + 2], acc[r][i + 3]);
        } else {
          *reinterpret_cast<double2*>(dst + i) = make_double2(acc[r][i], acc[r][i + 1]);
        }
      }
    }
  }
  __syncthreads();
  const int count_d = (int)m[M_COUNT_D], count_h = (int)m[M_COUNT_H];
  const int count_w = (int)m[M_COUNT_W];
  const int first_d = (int)m[M_FIRST_D], first_h = (int)m[M_FIRST_H];
  const int first_w = (int)m[M_FIRST_W];
  const I o_chan = (I)OD * OH * OW;
  const int lane_e = tid & 31, warp_e = tid >> 5, nwarps_e = (nthreads + 31) >> 5;
  const int wlim = min(TW, count_w - jw0), wlo = max(0, -jw0);
  // Row digits (hl fastest, then dl, ogl) advance by nwarps_e with carries.
  int hl = warp_e % TH, dl = (warp_e / TH) % TD, ogl = warp_e / (TH * TD);
  const int ihl = nwarps_e % TH, idl = (nwarps_e / TH) % TD, iogl = nwarps_e / (TH * TD);
  const int ostride = S * TW;                // between channels in the tile
  for (int row = warp_e; row < S; row += nwarps_e) {
    const int jd = jd0 + dl, jh = jh0 + hl;
    if (jd < count_d && jh < count_h) {
      const int o0 = ob * BO + ogl * RO;
      T* dst = out + ((I)n * G + g) * (I)Cog * o_chan + (I)o0 * o_chan +
               ((I)(first_d + sd * jd) * OH + (first_h + sh * jh)) * OW +
               first_w + (I)sw * jw0;
      const Acc* src = otile + row * TW;
      const T* const bp = bias + g * Cog + o0;
      const int rmax = min(RO, Cog - o0);
      if (TW <= 32) {
        // One output per lane and channel: no inner loop (the common case).
        const int jw = wlo + lane_e;
        if (jw < wlim) {
          dst += (I)sw * jw;
          src += jw;
          if (rmax == RO && !has_bias) {
#pragma unroll
            for (int r = 0; r < RO; ++r, dst += o_chan, src += ostride)
              *dst = from_acc<T>(*src);
          } else if (rmax == RO) {
#pragma unroll
            for (int r = 0; r < RO; ++r, dst += o_chan, src += ostride)
              *dst = from_acc<T>(*src + to_acc(bp[r]));
          } else {
            for (int r = 0; r < rmax; ++r, dst += o_chan, src += ostride) {
              const Acc bv = has_bias ? to_acc(bp[r]) : Acc(0);
              *dst = from_acc<T>(*src + bv);
            }
          }
        }
      } else {
        for (int r = 0; r < rmax; ++r, dst += o_chan, src += ostride) {
          const Acc bv = has_bias ? to_acc(bp[r]) : Acc(0);
          for (int jw = wlo + lane_e; jw < wlim; jw += 32)
            dst[(I)sw * jw] = from_acc<T>(src[jw] + bv);
        }
      }
    }
    hl += ihl;
    int carry = hl >= TH; if (carry) hl -= TH;
    dl += idl + carry;
    carry = dl >= TD; if (carry) dl -= TD;
    ogl += iogl + carry;
  }
}

// ---------------------------------------------------------------------------
// Weight packing for the fused kernel: dst[e] = src[idx[e]], or 0 where
// idx[e] < 0 (output channels padded to a multiple of the block's channels).
// ---------------------------------------------------------------------------
template <typename T, typename I>
__global__ void xconvt_pack(const T* __restrict__ src, const I* __restrict__ idx,
                            T* __restrict__ dst, I n) {
  for (I e = (I)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (I)gridDim.x * blockDim.x) {
    const I k = idx[e];
    dst[e] = k >= 0 ? src[k] : T(0);
  }
}

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

// ---------------------------------------------------------------------------
// Helpers of the FFT path on CuPy (xconvt/backends/fft.py, _CupyFFT): every
// stride phase in one pass, so a call is five launches and three cuFFT plans
// whatever the number of phases or channels.  R is the real work type (float
// for __half and float, double for double); spectra are interleaved (re, im)
// pairs of R, cuFFT's layout.  All four are element-wise over grid-stride
// loops; the finiteness flag is written without atomics (every writer stores
// the same 1).
//
// pad_x: xp[b, d, h, w] = x[b, d, h, w] for every input element (b = n * Cin
// + c; x contiguous) into the transform-sized volume, which the host has
// zeroed (cudaMemsetAsync); sets *bad where an input is not finite.
// ---------------------------------------------------------------------------
template <typename T, typename I>
__global__ void __launch_bounds__(256)
xconvt_fft_pad_x(const T* __restrict__ x, typename xconvt::acc_of<T>::type* __restrict__ xp,
                 int* __restrict__ bad, I total, int ID, int IH, int IW,
                 int FD, int FH, int FW) {
  using namespace xconvt;
  typedef typename acc_of<T>::type R;
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (I)gridDim.x * blockDim.x) {
    const int iw = (int)(i % IW);
    const I r = i / IW;
    const int ih = (int)(r % IH);
    const I r2 = r / IH;
    const int id = (int)(r2 % ID);
    const I b = r2 / ID;
    const R v = to_acc(x[i]);
    if (!isfinite(v)) *bad = 1;
    xp[((b * FD + id) * FH + ih) * FW + iw] = v;
  }
}

// pad_w: the dense (dilated) sub-kernel of every active phase in the
// transform-sized volume, which the host has zeroed: for positions
// (ld, lh, lw) < (LD, LH, LW), wp[p, q, ld, lh, lw] = w[q, kd, kh, kw] where
// k = tab(axis phase, position) >= 0.  q = (g * Cig + c) * Cog + o runs over
// the weight's leading dimensions (w contiguous); p = (pd * NH + ph) * NW + pw.
// tab holds, per axis, NA rows of FA taps (-1: no tap at that position):
// the D rows first, then H (from offh), then W (from offw).  Sets *bad where
// a weight is not finite.
// ---------------------------------------------------------------------------
template <typename T, typename I>
__global__ void __launch_bounds__(256)
xconvt_fft_pad_w(const T* __restrict__ w, typename xconvt::acc_of<T>::type* __restrict__ wp,
                 const int* __restrict__ tab, int* __restrict__ bad, I total, int Q,
                 int KD, int KH, int KW, int LD, int LH, int LW, int FD, int FH, int FW,
                 int NH, int NW, int offh, int offw) {
  using namespace xconvt;
  typedef typename acc_of<T>::type R;
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (I)gridDim.x * blockDim.x) {
    const int lw = (int)(i % LW);
    const I r = i / LW;
    const int lh = (int)(r % LH);
    const I r2 = r / LH;
    const int ld = (int)(r2 % LD);
    const I r3 = r2 / LD;
    const int q = (int)(r3 % Q);
    const int p = (int)(r3 / Q);
    const int pw = p % NW, ph = (p / NW) % NH, pd = p / (NW * NH);
    const int kd = tab[pd * FD + ld];
    const int kh = tab[offh + ph * FH + lh];
    const int kw = tab[offw + pw * FW + lw];
    if (kd >= 0 && kh >= 0 && kw >= 0) {
      const R v = to_acc(w[(((I)q * KD + kd) * KH + kh) * KW + kw]);
      if (!isfinite(v)) *bad = 1;
      wp[((((I)p * Q + q) * FD + ld) * FH + lh) * FW + lw] = v;
    }
  }
}

// mac: ys[p, n, g, o, f] = sum_c xs[n, g, c, f] * ws[p, g, c, o, f] (complex),
// OB output channels per thread; S spectrum elements per volume.
// ---------------------------------------------------------------------------
template <typename R> struct cplx_of;
template <> struct cplx_of<float> { typedef float2 type; };
template <> struct cplx_of<double> { typedef double2 type; };

template <typename R, typename I, int OB>
__global__ void __launch_bounds__(256)
xconvt_fft_mac(const typename cplx_of<R>::type* __restrict__ xs,
               const typename cplx_of<R>::type* __restrict__ ws,
               typename cplx_of<R>::type* __restrict__ ys, I total, I S,
               int N, int G, int Cig, int Cog) {
  typedef typename cplx_of<R>::type C;
  const int nob = (Cog + OB - 1) / OB;
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (I)gridDim.x * blockDim.x) {
    const I f = i % S;
    const I r = i / S;
    const int ob = (int)(r % nob);
    const I r2 = r / nob;
    const int g = (int)(r2 % G);
    const I r3 = r2 / G;
    const int n = (int)(r3 % N);
    const int p = (int)(r3 / N);
    const int o0 = ob * OB;
    R re[OB], im[OB];
#pragma unroll
    for (int k = 0; k < OB; ++k) { re[k] = R(0); im[k] = R(0); }
    const C* xrow = xs + ((I)n * G + g) * Cig * S + f;
    const C* wrow = ws + (((I)p * G + g) * Cig * Cog + o0) * S + f;
    for (int c = 0; c < Cig; ++c) {
      const C xv = xrow[(I)c * S];
#pragma unroll
      for (int k = 0; k < OB; ++k) {
        if (o0 + k < Cog) {
          const C wv = wrow[((I)c * Cog + k) * S];
          re[k] += xv.x * wv.x - xv.y * wv.y;
          im[k] += xv.x * wv.y + xv.y * wv.x;
        }
      }
    }
    C* yrow = ys + ((((I)p * N + n) * G + g) * Cog + o0) * S + f;
#pragma unroll
    for (int k = 0; k < OB; ++k) {
      if (o0 + k < Cog) {
        C v; v.x = re[k]; v.y = im[k];
        yrow[(I)k * S] = v;
      }
    }
  }
}

// crop: out[n, g*Cog + o, od, oh, ow] = scale * yr[p, n, g, o, rd, rh, rw] + bias
// (scale = 1 / transform size: cuFFT's inverse is unnormalized),
// where, per axis, tab gives the output's phase (-1: no tap reaches that
// phase) and its row of the full convolution (-1: outside it): pairs for the
// D outputs first, then H, then W.  Outputs with no phase get the bias alone.
// ---------------------------------------------------------------------------
template <typename T, typename I>
__global__ void __launch_bounds__(256)
xconvt_fft_crop(const typename xconvt::acc_of<T>::type* __restrict__ yr,
                const T* __restrict__ bias, T* __restrict__ out,
                const int* __restrict__ tab, typename xconvt::acc_of<T>::type scale,
                int has_bias, I total, int N, int G, int Cog,
                int OD, int OH, int OW, int FD, int FH, int FW, int NH, int NW) {
  using namespace xconvt;
  typedef typename acc_of<T>::type R;
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (I)gridDim.x * blockDim.x) {
    const int ow = (int)(i % OW);
    const I r = i / OW;
    const int oh = (int)(r % OH);
    const I r2 = r / OH;
    const int od = (int)(r2 % OD);
    const I r3 = r2 / OD;
    const int oc = (int)(r3 % (G * Cog));
    const int n = (int)(r3 / (G * Cog));
    const int* td = tab + 2 * od;
    const int* th = tab + 2 * (OD + oh);
    const int* tw = tab + 2 * (OD + OH + ow);
    R v = has_bias ? to_acc(bias[oc]) : R(0);
    if (td[1] >= 0 && th[1] >= 0 && tw[1] >= 0) {
      const int p = (td[0] * NH + th[0]) * NW + tw[0];
      const int g = oc / Cog, o = oc % Cog;
      v += scale * yr[(((((I)p * N + n) * G + g) * Cog + o) * FD + td[1]) * (I)FH * FW +
                      (I)th[1] * FW + tw[1]];
    }
    out[i] = from_acc<T>(v);
  }
}

// remap: xr[b, td, th, tw] = x[b, tab[td], tab[RD + th], tab[RD + RH + tw]], 0
// where an entry is -1 (b = n * Cin + c; x contiguous).  Rearranges a
// dilated layer's input into per-residue blocks so that every sub-phase of
// the fused kernel reads consecutive rows (xconvt/backends/cuda.py,
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
