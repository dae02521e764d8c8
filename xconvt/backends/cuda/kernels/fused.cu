// The fused direct kernel and its weight packing (xconvt/backends/cuda/fused.py).
#include "common.cuh"

namespace xconvt {

// Per-phase metadata, META int64 values per phase (written by fused.py).
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
// order (fused.py, _FUSED_FIELDS).  packed: w is the per-call packed copy
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
