// xconvt: tensor-core (mma.sync) implicit-GEMM kernels for the 3-D transposed
// convolution, one GEMM per stride phase (sm_80 and later).
//
// Compiled at run time by NVRTC through cupy.RawModule (no headers needed:
// 16-bit values travel as unsigned short and convert through inline PTX); the
// host code is xconvt/backends/cuda_mma.py, which picks the template
// arguments and builds the per-phase table.
//
// Geometry (xconvt/_params.py, AxisPhase): per axis a stride phase holds the
// outputs o = first + s*j (j < count) and
//     out[first + s*j] = sum_u x[base + j + u*step] * w[taps[u]],
// x being zero outside the input.  A 3-D phase (pd, ph, pw) of group g is the GEMM
//     C[m, o] = sum_k A[m, k] * B[k, o]
//     m = (n, jd, jh, jw)   (jw fastest; M = N * count_d * count_h * count_w)
//     k = (t, c)            (tap t = (ud, uh, uw) outer, input channel c inner)
//     A[m, (t, c)] = x[n, g*Cig + c, base_d + jd + ud*step_d, ...]   (0 outside)
//     B[(t, c), o] = w[g*Cig + c, o, taps_d[ud], taps_h[uh], taps_w[uw]]
// with no work on the taps that only meet stride zeros.  conv3d (the adjoint)
// runs as one such phase whose A is read at the stride (QD, QH, QW: input step
// per output position; cuda/mma.py, Conv3dGemm).  K is padded per tap
// to whole BK blocks of channels and N to whole BN tiles: the host packs B
// per call into [phase][g][t][c < nCB*BK][o < NP] with zeros in the padding
// (xconvt_mma_pack_t), so a B tile is rows of 16-byte copies.
//
// One launch covers every phase: block b reads its phase and its index in
// the phase from a block table (btab), and from that index its n tile
// (fastest), m tile and group.  The host orders the blocks round-robin over
// the phases, so blocks of the same tile in every phase run together and
// their interleaved outputs (stride > 1) meet in L2: phase after phase, each
// 32-byte sector of a strided output was written back partially and then
// again.  A block computes a BM x BN tile with (BM/WM) x (BN/WN) warps, each a
// WM x WN warp tile of m16n8 mma.sync fragments, over STAGES shared-memory
// stages of BK: B by 16-byte cp.async, A (BM positions along W, contiguous
// rows of x) by 4-byte cp.async with zero-fill for float, by registers for
// 16-bit types (cp.async has no 2-byte form), loaded a stage ahead.  Shared
// tiles are [k][m] and [k][n] with rows padded by 8 elements (bank-conflict
// free fragment loads for 32-bit values, ldmatrix.trans for 16-bit).
//
//   DT    0: float32 storage, 1: float16, 2: bfloat16 (storage type T)
//   MODE  0: TF32 (operands rounded to tf32), 1: 3xTF32 (big = tf32(v), small =
//         tf32(v - big); small*big + big*small, then big*big, per k8 step into a
//         zeroed accumulator that is then added to the running sum with an
//         ordinary (rounded) float add), 2: f16/bf16 m16n8k16, fp32 accumulation
//   I     index type of the global offsets: int or long long
//   MINB  resident blocks per SM the register allocation must allow
//   SLAB  A staging: 0 per tap and channel block (cp.async for float, registers
//         for 16-bit); 1 the tile's input box per channel block, through
//         registers one step ahead; 2 (float only) the same box by cp.async,
//         issued a channel block ahead and converted in place on arrival; 3 a
//         channels-last copy of x (xconvt_mma_to_cl: [n][d][h][w][g][c], each
//         group's channels padded to nCB*BK, a zero halo so that no tap
//         reads outside it), A rows of BK channels by 16-byte cp.async into
//         [m][k] stages, no bounds checks; 4 the same copy, box-shaped M
//         tiles: per channel block the tile's input box ([pos][k], 16-byte
//         cp.async rows, issued a channel block ahead), read at each tap's
//         offset (ldmatrix rows for 16-bit values: any row address)

#define CL_ELEMS 4096  // values a tile of xconvt_mma_to_cl copies

namespace xmma {

// Per-phase table, PMETA int32 values per phase (written by cuda_mma.py).
enum {
  P_MT = 0, P_NT, P_CD, P_CH, P_CW, P_FD, P_FH, P_FW,
  P_BD, P_BH, P_BW, P_ND, P_NH, P_NW, P_WOFF, PMETA
};

// Scalar arguments, passed by value as one struct; the host builds it as a
// NumPy structured scalar with these int32 fields in this order
// (cuda_mma.py, MMA_FIELDS).
struct MmaArgs {
  int nphase, has_bias, N, G, Cig, Cog, Cin, Cout;
  int ID, IH, IW, OD, OH, OW;
  int sd, sh, sw, ed, eh, ew;
  int nCB, NP;
  int TD, TH, TW, SC;
  int WSMALL;
  int PD, PH, PW, LD, LH, LW, CT;
  int QD, QH, QW;
  int XSMALL;
  int TPK;
  int PAIR;
  int VEC;
  int FOLD, FS, FP, FDL, FOW, FMT;
  int ACA;
};
// (TD, TH, TW, SC: for SLAB, the M tile as a box and the words per k row of
// a slab buffer.  WSMALL: MODE 1, offset of the small halves of the packed
// weights.  PD, PH, PW, LD, LH, LW, CT: SLAB 3, the channels-last copy's
// padded extents, its leading halo and its channels per position.  QD, QH,
// QW: the input step between neighbouring output positions of a phase, 1 for
// the transposed convolution, the stride for conv3d (cuda/mma.py, Conv3dGemm);
// the box stagings (SLAB 1, 2, 4) take 1 only.  XSMALL: xconvt_wgmma's
// 3xTF32, offset of the small halves in the channels-last copy.  TPK:
// xconvt_wgmma's BOXA 3, taps a K block spans.  PAIR: xconvt_wgmma writes
// column pairs to W phase pairs (see its epilogue); 0 or 1.  VEC:
// xconvt_wgmma's epilogue through shared memory (unit output steps along W).
// FOLD: xconvt_wgmma's W fold (0: off; else the real layer's kernel width
// KW): the GEMM is a layer with kernel 1 along W and KW * Cout columns
// (column c * KW + kw: channel c's W tap kw) over M tiles of FMT positions,
// whole input rows (OW, this layer's width, is the input's); its epilogue
// sums each output column's taps: real stride FS, padding FP, dilation FDL,
// width FOW along W.  ACA: xconvt_wgmma copies A through L1 (cp.async.ca):
// neighbouring taps of a block read overlapping input rows, which then hit
// L1 instead of L2.)

__device__ __forceinline__ unsigned smem_u32(const void* p) {
  return (unsigned)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void cp_async4(unsigned dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 4 : 0));
}
// l1: through L1 (cp.async.ca, cached there), else L2 only (.cg)
__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool l1 = false) {
  if (l1) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
  } else {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
  }
}
// zero-filled where !valid (src-size 0: nothing read)
__device__ __forceinline__ void cp_async16z(unsigned dst, const void* src, bool valid,
                                            bool l1 = false) {
  if (l1) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? 16 : 0));
  } else {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? 16 : 0));
  }
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ unsigned to_tf32(float v) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
  return r;
}

// The mma asm statements are not volatile: they only read and write
// registers, so the compiler may schedule them among the fragment loads.
__device__ __forceinline__ void mma_tf32(float (&c)[4], const unsigned (&a)[4],
                                         const unsigned (&b)[2]) {
  asm(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// c = a*b (a fresh accumulator: nothing to clear first)
__device__ __forceinline__ void mma_tf32_zero(float (&c)[4], const unsigned (&a)[4],
                                              const unsigned (&b)[2]) {
  asm(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%10,%10,%10,%10};\n"
      : "=f"(c[0]), "=f"(c[1]), "=f"(c[2]), "=f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(0.f));
}
template <int DT>
__device__ __forceinline__ void mma_16(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                       unsigned b1) {
  if constexpr (DT == 1) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ void ldsm_x4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Storage <-> float.
template <int DT> struct storage { typedef unsigned short type; };
template <> struct storage<0> { typedef float type; };

__device__ __forceinline__ float to_float(float v) { return v; }
template <int DT>
__device__ __forceinline__ float to_f32(typename storage<DT>::type v) {
  if constexpr (DT == 0) {
    return v;
  } else if constexpr (DT == 1) {
    float f;
    asm("cvt.f32.f16 %0, %1;\n" : "=f"(f) : "h"(v));
    return f;
  } else {
    return __uint_as_float(((unsigned)v) << 16);
  }
}
template <int DT>
__device__ __forceinline__ typename storage<DT>::type from_f32(float v) {
  if constexpr (DT == 0) {
    return v;
  } else if constexpr (DT == 1) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(h) : "f"(v));
    return h;
  } else {
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(h) : "f"(v));
    return h;
  }
}

}  // namespace xmma

template <int DT, int MODE, typename I, int BM, int BN, int BK, int WM, int WN, int STAGES,
          int MINB, int SLAB>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32, MINB)
xconvt_mma(const typename xmma::storage<DT>::type* __restrict__ x,
           const typename xmma::storage<DT>::type* __restrict__ wp,
           const typename xmma::storage<DT>::type* __restrict__ bias,
           typename xmma::storage<DT>::type* __restrict__ out,
           const int* __restrict__ meta, const int* __restrict__ btab,
           const xmma::MmaArgs a) {
  using namespace xmma;
  typedef typename storage<DT>::type T;
  constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN;
  constexpr int THREADS = WARPS_M * WARPS_N * 32;
  constexpr int ES = sizeof(T);
  constexpr int LDA = BM + 8, LDB = BN + 8;  // padded rows (elements)
  constexpr bool BOX = SLAB == 1 || SLAB == 2 || SLAB == 4;  // box M tiles, slab A
  constexpr bool CL = SLAB == 3;                 // channels-last A, [m][k] stages
  constexpr bool CLS = SLAB == 4;                // channels-last A, [pos][k] slabs
  constexpr bool ASYNC = SLAB == 2 || SLAB == 4;  // slabs by cp.async a block ahead
  constexpr int LDK = BK + 16 / ES;              // CL: padded A rows (elements)
  constexpr int CPR = BK * ES / 16;              // CL: 16-byte chunks per A row
  constexpr int ACH = CL ? BM * CPR / THREADS : 1;  // CL: A chunks per thread per stage
  constexpr int A_STAGE = BOX ? 0 : (CL ? BM * LDK : BK * LDA), B_STAGE = BK * LDB;
  constexpr int BH = MODE == 1 ? 2 : 1;  // B halves (3xTF32: big, small)
  constexpr int KROWS = THREADS / BM;  // A rows loaded per pass (SLAB == 0)
  constexpr int APT = BK / KROWS;      // A elements per thread per stage (SLAB == 0)
  constexpr int MT = WM / 16, NT = WN / 8;
  constexpr int BCH = BN * ES / 16;    // 16-byte chunks per B row
  constexpr int KP = MODE == 2 ? BK / 2 : BK;  // 32-bit words per slab position
  constexpr int KPW = MODE == 1 ? 2 * KP : KP;  // k rows of a slab buffer (big, small)
  constexpr int R = THREADS >= 256 ? 8 : 16;   // slab words a thread stages per step
  static_assert(CL || (THREADS % BM == 0 && BK % KROWS == 0), "A loader shape");
  static_assert(!CL || (BM * CPR) % THREADS == 0, "CL A loader shape");
  static_assert(WM % 16 == 0 && WN % 16 == 0 && BK % 16 == 0, "fragment shape");
  static_assert(MODE == 2 ? DT != 0 : DT == 0, "mode and dtype");
  static_assert(SLAB != 2 || MODE != 2, "cp.async slabs hold 32-bit values");

  // Shared memory: B stages (3xTF32: big and small), then (SLAB == 0) A
  // stages, or (SLAB == 1) two slab buffers of KPW x SC words and the slab's
  // position table.
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* const Bs = reinterpret_cast<T*>(smem_raw);
  T* const As = Bs + BH * STAGES * B_STAGE;
  unsigned* const slab = reinterpret_cast<unsigned*>(smem_raw + BH * STAGES * B_STAGE * ES);
  int* const ptab = CLS ? reinterpret_cast<int*>(smem_raw + BH * STAGES * B_STAGE * ES +
                                                  2 * a.SC * LDK * ES)
                        : reinterpret_cast<int*>(slab + 2 * KPW * a.SC);

  // ---- block -> (phase, group, m tile, n tile)
  const int* pm = meta + btab[2 * blockIdx.x] * PMETA;
  int bid = btab[2 * blockIdx.x + 1];
  const int n_t = pm[P_NT], m_t = pm[P_MT];
  const int ntile = bid % n_t;
  bid /= n_t;
  const int mtile = bid % m_t;
  const int g = bid / m_t;
  const int cd = pm[P_CD], ch = pm[P_CH], cw = pm[P_CW];
  const int nd = pm[P_ND], nh = pm[P_NH], nw = pm[P_NW];
  const int ntaps = nd * nh * nw;
  const int per_n = cd * ch * cw;  // positions of the phase per sample
  const int Mph = a.N * per_n;
  const int Cig = a.Cig, Cog = a.Cog, nCB = a.nCB, NP = a.NP;
  const int ID = a.ID, IH = a.IH, IW = a.IW;
  const I V = (I)ID * IH * IW;
  const int nkc = ntaps * nCB;
  const int tid = threadIdx.x;
  const int n0 = ntile * BN;
  const int TD = a.TD, TH = a.TH, TW = a.TW;

  // M tile origin: flat positions [m0, m0 + BM) (SLAB == 0) or a TD x TH x TW
  // box at (jd0, jh0, jw0) of sample nb0 (SLAB == 1).
  int m0 = 0, nb0 = 0, jd0 = 0, jh0 = 0, jw0 = 0;
  if constexpr (BOX) {
    const int mt_w = (cw + TW - 1) / TW, mt_h = (ch + TH - 1) / TH, mt_d = (cd + TD - 1) / TD;
    int r = mtile;
    jw0 = (r % mt_w) * TW;
    r /= mt_w;
    jh0 = (r % mt_h) * TH;
    r /= mt_h;
    jd0 = (r % mt_d) * TD;
    nb0 = r / mt_d;
  } else {
    m0 = mtile * BM;
  }
  // Output position of row m of the tile: (valid, sample, jd, jh, jw).
  auto decode = [&](int m, int& nb, int& jd, int& jh, int& jw) -> bool {
    if constexpr (BOX) {
      jw = m % TW;
      jh = (m / TW) % TH;
      jd = m / (TW * TH);
      jd += jd0; jh += jh0; jw += jw0;
      nb = nb0;
      return jd < cd && jh < ch && jw < cw;
    } else {
      m += m0;
      nb = m / per_n;
      int r = m - nb * per_n;
      jw = r % cw;
      r /= cw;
      jh = r % ch;
      jd = r / ch;
      return m < Mph;
    }
  };

  const T* const wph = wp + pm[P_WOFF] + (I)g * ntaps * nCB * BK * NP + n0;
  const unsigned as_u32 = smem_u32(As), bs_u32 = smem_u32(Bs);

  // ---- B: cp.async of K block kc = (t, cb) into stage st
  auto load_b = [&](int t, int cb, int st) {
    const T* bsrc = wph + ((I)t * nCB * BK + cb * BK) * NP;
#pragma unroll
    for (int q0 = 0; q0 < BK * BCH; q0 += THREADS) {
      const int q = q0 + tid;
      if (BK * BCH % THREADS == 0 || q < BK * BCH) {
        const int row = q / BCH, col = (q % BCH) * (16 / ES);
        cp_async16(bs_u32 + (st * B_STAGE + row * LDB + col) * ES, bsrc + (I)row * NP + col);
        if constexpr (MODE == 1)
          cp_async16(bs_u32 + ((STAGES + st) * B_STAGE + row * LDB + col) * ES,
                     bsrc + a.WSMALL + (I)row * NP + col);
      }
    }
  };

  // ---- A, SLAB == 0: one position per thread, APT channel rows per stage
  const int am = tid % BM, ak0 = tid / BM;
  bool a_ok = false;
  I a_base = 0;
  int id0 = 0, ih0 = 0, iw0 = 0;
  T areg[(MODE == 2 && SLAB == 0) ? APT : 1];
  if constexpr (SLAB == 0) {
    int nb, jd, jh, jw;
    a_ok = decode(am, nb, jd, jh, jw);
    a_base = ((I)nb * a.Cin + (I)g * Cig + ak0) * V;
    id0 = pm[P_BD] + jd * a.QD;
    ih0 = pm[P_BH] + jh * a.QH;
    iw0 = pm[P_BW] + jw * a.QW;
  }
  // ---- A, SLAB == 3: chunk q = tid + i * THREADS is row q / CPR, column
  // chunk tid % CPR; a row past the phase's end reads the last position
  I a_row[ACH];
  if constexpr (CL) {
#pragma unroll
    for (int i = 0; i < ACH; ++i) {
      int nb, jd, jh, jw;
      if (!decode((tid + i * THREADS) / CPR, nb, jd, jh, jw)) decode(Mph - 1 - m0, nb, jd, jh, jw);
      a_row[i] = ((((I)nb * a.PD + a.LD + pm[P_BD] + jd * a.QD) * a.PH + a.LH + pm[P_BH] +
                   jh * a.QH) * a.PW + a.LW + pm[P_BW] + jw * a.QW) * a.CT + g * nCB * BK +
                 (tid % CPR) * (16 / ES);
    }
  }
  auto load_a = [&](int ud, int uh, int uw, int cb, int st) {
    if constexpr (CL) {
      const I toff = (((I)ud * a.ed * a.PH + uh * a.eh) * a.PW + uw * a.ew) * a.CT + cb * BK;
#pragma unroll
      for (int i = 0; i < ACH; ++i) {
        const int q = tid + i * THREADS;
        cp_async16(as_u32 + (st * A_STAGE + (q / CPR) * LDK + (q % CPR) * (16 / ES)) * ES,
                   x + a_row[i] + toff);
      }
    } else if constexpr (SLAB == 0) {
      const int id = id0 + ud * a.ed, ih = ih0 + uh * a.eh, iw = iw0 + uw * a.ew;
      const bool ok = a_ok && id >= 0 && id < ID && ih >= 0 && ih < IH && iw >= 0 && iw < IW;
      const int c0 = cb * BK + ak0;
      const T* src = x + a_base + (I)cb * BK * V + ((I)id * IH + ih) * IW + iw;
#pragma unroll
      for (int i = 0; i < APT; ++i) {
        const bool v = ok && c0 + i * KROWS < Cig;
        const T* s = v ? src + (I)i * KROWS * V : x;
        if constexpr (MODE == 2) {
          areg[i] = v ? __ldg(s) : (T)0;
        } else {
          cp_async4(as_u32 + ((st * A_STAGE + (ak0 + i * KROWS) * LDA + am) * ES), s, v);
        }
      }
    }
  };
  auto store_a = [&](int st) {
    if constexpr (MODE == 2 && SLAB == 0) {
#pragma unroll
      for (int i = 0; i < APT; ++i) As[st * A_STAGE + (ak0 + i * KROWS) * LDA + am] = areg[i];
    }
  };

  // ---- A, SLAB == 1: per channel block, the input box every tap reads
  // (SDp x SHp x SWp positions, KP words each: a float, or a channel pair of
  // 16-bit values), staged once and read at a per-tap offset.  ptab[pos]:
  // spatial offset in x of slab position pos, -1 outside the input.
  const int SDp = TD + (nd - 1) * a.ed, SHp = TH + (nh - 1) * a.eh, SWp = TW + (nw - 1) * a.ew;
  const int NPOS = (BOX && ntaps > 0) ? SDp * SHp * SWp : 0;
  const int PPT = (NPOS + THREADS - 1) / THREADS;  // positions per thread
  const int IPT = PPT * KP;                        // slab words per thread
  const I x_blk = CLS ? (I)nb0 * a.PD * a.PH * a.PW * a.CT + g * nCB * BK
                      : ((I)nb0 * a.Cin + (I)g * Cig) * V;
  unsigned sreg[SLAB == 1 ? R : 1];
  auto slab_load = [&](int cb, int i0) {  // words i0 .. i0 + R - 1 of this thread
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int i = i0 + r;
      const int p = i / KP, kr = i % KP;
      const int pos = tid + p * THREADS;
      unsigned v = 0u;
      if (i < IPT && pos < NPOS) {
        const int off = ptab[pos];
        if constexpr (MODE == 2) {
          const int c = cb * BK + 2 * kr;
          const T* src = x + x_blk + (I)c * V + off;
          const unsigned lo = (off >= 0 && c < Cig) ? (unsigned)__ldg(src) : 0u;
          const unsigned hi = (off >= 0 && c + 1 < Cig) ? (unsigned)__ldg(src + V) : 0u;
          v = lo | (hi << 16);
        } else {
          const int c = cb * BK + kr;
          if (off >= 0 && c < Cig) v = __float_as_uint(__ldg(x + x_blk + (I)c * V + off));
        }
      }
      sreg[r] = v;
    }
  };
  auto slab_store = [&](int buf, int i0) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int i = i0 + r;
      const int p = i / KP, kr = i % KP;
      const int pos = tid + p * THREADS;
      if (i < IPT && pos < NPOS) {
        // float operands are stored ready for the tensor cores: tf32, or
        // (3xTF32) big and small tf32 halves in two k-row blocks
        unsigned* d = slab + (buf * KPW + kr) * a.SC + pos;
        if constexpr (MODE == 2) {
          d[0] = sreg[r];
        } else {
          const float v = __uint_as_float(sreg[r]);
          const unsigned big = to_tf32(v);
          d[0] = big;
          if constexpr (MODE == 1) d[KP * a.SC] = to_tf32(v - __uint_as_float(big));
        }
      }
    }
  };

  // SLAB == 2 (float): the whole slab of channel block cb by 4-byte cp.async
  // (zero-fill outside the input) into buffer buf, converted in place once it
  // has arrived (each thread converts the words it copied).
  const unsigned slab_u32 = smem_u32(slab);
  auto slab_issue = [&](int cb, int buf) {
    if constexpr (CLS) {
      for (int q = tid; q < NPOS * CPR; q += THREADS) {
        const int pos = q / CPR, c = (q % CPR) * (16 / ES);
        cp_async16(slab_u32 + ((buf * a.SC + pos) * LDK + c) * ES,
                   x + x_blk + (I)ptab[pos] * a.CT + cb * BK + c);
      }
      return;
    }
    for (int i = 0; i < IPT; ++i) {
      const int p = i / KP, kr = i % KP;
      const int pos = tid + p * THREADS;
      if (pos < NPOS) {
        const int off = ptab[pos], c = cb * BK + kr;
        const bool v = off >= 0 && c < Cig;
        cp_async4(slab_u32 + ((buf * KPW + kr) * a.SC + pos) * 4,
                  v ? x + x_blk + (I)c * V + off : x, v);
      }
    }
  };
  auto slab_convert = [&](int buf) {
    if constexpr (MODE != 2) {
      for (int i = 0; i < IPT; ++i) {
        const int p = i / KP, kr = i % KP;
        const int pos = tid + p * THREADS;
        if (pos < NPOS) {
          unsigned* d = slab + (buf * KPW + kr) * a.SC + pos;
          const float v = __uint_as_float(d[0]);
          const unsigned big = to_tf32(v);
          d[0] = big;
          if constexpr (MODE == 1) d[KP * a.SC] = to_tf32(v - __uint_as_float(big));
        }
      }
    }
  };

  // ---- warp tile
  const int lane = tid & 31, warp = tid >> 5;
  const int wm0 = (warp % WARPS_M) * WM, wn0 = (warp / WARPS_M) * WN;
  const int gq = lane >> 2, tq = lane & 3;
  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;
  // SLAB: slab offset of this thread's fragment rows (m = wm0 + 16 i + gq + 8 hr)
  int moff[BOX ? MT : 1][2];
  int mrow[CLS ? MT : 1];  // CLS, 16-bit: slab position of this lane's ldmatrix row
  if constexpr (CLS) {
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      const int m = wm0 + i * 16 + (lane & 15);
      mrow[i] = ((m / (TW * TH)) * SHp + (m / TW) % TH) * SWp + m % TW;
    }
  }
  if constexpr (BOX) {
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int m = wm0 + i * 16 + gq + 8 * hr;
        moff[i][hr] = ((m / (TW * TH)) * SHp + (m / TW) % TH) * SWp + m % TW;
      }
  }

  // Split float operands into tf32 (MODE 0) or big + small tf32 (MODE 1).
  auto split = [&](float v, unsigned& big, unsigned& small) {
    big = to_tf32(v);
    if constexpr (MODE == 1) small = to_tf32(v - __uint_as_float(big));
  };
  auto mma_f32 = [&](float (&c)[4], const unsigned (&ab)[4], const unsigned (&as_)[4],
                     const unsigned (&bb)[2], const unsigned (&bs_)[2]) {
    if constexpr (MODE == 1) {
      // The tensor cores' accumulation truncates: summed into the running
      // accumulator, that bias grows with K (rel. error 1e-5 at K = 2048).
      // Each k8 step's three products go to a fresh accumulator, added to
      // the running one with a rounded FADD.
      float t[4] = {0.f, 0.f, 0.f, 0.f};
      mma_tf32(t, as_, bb);
      mma_tf32(t, ab, bs_);
      mma_tf32(t, ab, bb);
#pragma unroll
      for (int r = 0; r < 4; ++r) c[r] += t[r];
    } else {
      mma_tf32(c, ab, bb);
    }
  };

  // One K block: B from stage st; A from A stage st (SLAB == 0) or from slab
  // buffer sbuf at the tap offset toff (SLAB == 1).
  auto compute = [&](int st, int sbuf, int toff) {
    const unsigned bbase = bs_u32 + st * B_STAGE * ES;
    const int lr = lane & 7, lq = lane >> 3;  // ldmatrix lane -> row address
    if constexpr (MODE == 2) {
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        unsigned af[MT][4], bf[NT][2];
        if constexpr (CL) {
          const unsigned abase = as_u32 + st * A_STAGE * ES;
#pragma unroll
          for (int i = 0; i < MT; ++i)
            ldsm_x4(af[i], abase + ((wm0 + i * 16 + (lane & 15)) * LDK + kk + (lane >> 4) * 8) * ES);
        } else if constexpr (CLS) {
          const unsigned sb = slab_u32 + sbuf * a.SC * LDK * ES;
#pragma unroll
          for (int i = 0; i < MT; ++i)
            ldsm_x4(af[i], sb + ((mrow[i] + toff) * LDK + kk + (lane >> 4) * 8) * ES);
        } else if constexpr (BOX) {
          const unsigned* S = slab + (sbuf * KPW + kk / 2 + tq) * a.SC + toff;
#pragma unroll
          for (int i = 0; i < MT; ++i) {
            af[i][0] = S[moff[i][0]];
            af[i][1] = S[moff[i][1]];
            af[i][2] = S[4 * a.SC + moff[i][0]];
            af[i][3] = S[4 * a.SC + moff[i][1]];
          }
        } else {
          const unsigned abase = as_u32 + st * A_STAGE * ES;
#pragma unroll
          for (int i = 0; i < MT; ++i)
            ldsm_x4_trans(af[i], abase + ((kk + lr + (lq >> 1) * 8) * LDA + wm0 + i * 16 +
                                          (lq & 1) * 8) * ES);
        }
#pragma unroll
        for (int j = 0; j < NT; j += 2) {
          unsigned r[4];
          ldsm_x4_trans(r, bbase + ((kk + lr + (lq & 1) * 8) * LDB + wn0 + j * 8 +
                                    (lq >> 1) * 8) * ES);
          bf[j][0] = r[0]; bf[j][1] = r[1]; bf[j + 1][0] = r[2]; bf[j + 1][1] = r[3];
        }
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
          for (int j = 0; j < NT; ++j) mma_16<DT>(acc[i][j], af[i], bf[j][0], bf[j][1]);
      }
    } else {
      // B arrives rounded (big; small in the second stage set) from the
      // pack; slab A is stored rounded (big; small KP rows further).
      const unsigned* B = reinterpret_cast<const unsigned*>(Bs) + st * B_STAGE;
      // KACC (3xTF32, 128-thread tiles, whose registers allow it): the K
      // block's products go to fresh accumulators tk, added to the running
      // ones once per block instead of once per k8 step (a quarter to half
      // the FADDs); tk holds BK/8 steps, so the tensor cores' truncation
      // stays relative to one block's partial sum and does not grow with K.
      constexpr bool KACC = MODE == 1 && THREADS == 128;
      float tk[KACC ? MT : 1][KACC ? NT : 1][4];
#pragma unroll
      for (int kk = 0; kk < BK; kk += 8) {
        unsigned ab[MT][4], bb[NT][2];
        unsigned as_[MT][4], bs_[NT][2];
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          if constexpr (CL) {
            const float* p = reinterpret_cast<const float*>(As) + st * A_STAGE +
                             (wm0 + i * 16 + gq) * LDK + kk + tq;
            const float v[4] = {p[0], p[8 * LDK], p[4], p[8 * LDK + 4]};
#pragma unroll
            for (int r = 0; r < 4; ++r) split(v[r], ab[i][r], as_[i][r]);
          } else if constexpr (CLS) {
            const float* S = reinterpret_cast<const float*>(slab) + sbuf * a.SC * LDK + kk + tq;
            const int r0 = (moff[i][0] + toff) * LDK, r1 = (moff[i][1] + toff) * LDK;
            const float v[4] = {S[r0], S[r1], S[r0 + 4], S[r1 + 4]};
#pragma unroll
            for (int r = 0; r < 4; ++r) split(v[r], ab[i][r], as_[i][r]);
          } else if constexpr (BOX) {
            const unsigned* S = slab + (sbuf * KPW + kk + tq) * a.SC + toff;
            ab[i][0] = S[moff[i][0]]; ab[i][1] = S[moff[i][1]];
            ab[i][2] = S[4 * a.SC + moff[i][0]]; ab[i][3] = S[4 * a.SC + moff[i][1]];
            if constexpr (MODE == 1) {
              const unsigned* Q = S + KP * a.SC;
              as_[i][0] = Q[moff[i][0]]; as_[i][1] = Q[moff[i][1]];
              as_[i][2] = Q[4 * a.SC + moff[i][0]]; as_[i][3] = Q[4 * a.SC + moff[i][1]];
            }
          } else {
            const float* p = reinterpret_cast<const float*>(As) + st * A_STAGE +
                             (kk + tq) * LDA + wm0 + i * 16 + gq;
            const float v[4] = {p[0], p[8], p[4 * LDA], p[4 * LDA + 8]};
#pragma unroll
            for (int r = 0; r < 4; ++r) split(v[r], ab[i][r], as_[i][r]);
          }
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          const unsigned* p = B + (kk + tq) * LDB + wn0 + j * 8 + gq;
          bb[j][0] = p[0];
          bb[j][1] = p[4 * LDB];
          if constexpr (MODE == 1) {
            bs_[j][0] = p[STAGES * B_STAGE];
            bs_[j][1] = p[STAGES * B_STAGE + 4 * LDB];
          }
        }
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
          for (int j = 0; j < NT; ++j) {
            if constexpr (KACC) {
              if (kk == 0) {
                mma_tf32_zero(tk[i][j], as_[i], bb[j]);
              } else {
                mma_tf32(tk[i][j], as_[i], bb[j]);
              }
              mma_tf32(tk[i][j], ab[i], bs_[j]);
              mma_tf32(tk[i][j], ab[i], bb[j]);
            } else {
              mma_f32(acc[i][j], ab[i], as_[i], bb[j], bs_[j]);
            }
          }
      }
      if constexpr (KACC) {
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
          for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] += tk[i][j][r];
      }
    }
  };

  // ---- main loop: STAGES-deep cp.async pipeline, one commit group per K block
  if constexpr (BOX) {
    // K blocks in (channel block, tap) order; the slab of channel block cb + 1
    // is loaded R words per tap step of cb (the rest at its last tap).
    for (int p = tid; p < NPOS; p += THREADS) {
      const int sw_ = p % SWp, sh_ = (p / SWp) % SHp, sd_ = p / (SWp * SHp);
      const int id = pm[P_BD] + jd0 + sd_, ih = pm[P_BH] + jh0 + sh_, iw = pm[P_BW] + jw0 + sw_;
      if constexpr (CLS) {
        // position in the padded copy; past the phase's end (read only by
        // rows that are not stored) clamped into it
        const int pd_ = min(a.LD + id, a.PD - 1), ph_ = min(a.LH + ih, a.PH - 1),
                  pw_ = min(a.LW + iw, a.PW - 1);
        ptab[p] = (pd_ * a.PH + ph_) * a.PW + pw_;
      } else {
        ptab[p] = (id >= 0 && id < ID && ih >= 0 && ih < IH && iw >= 0 && iw < IW)
                      ? (id * IH + ih) * IW + iw : -1;
      }
    }
    __syncthreads();
    if (nkc > 0) {
      if constexpr (ASYNC) {
        slab_issue(0, 0);  // joins the first commit group
      } else {
        for (int i0 = 0; i0 < IPT; i0 += R) {
          slab_load(0, i0);
          slab_store(0, i0);
        }
      }
    }
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < nkc) load_b(s % ntaps, s / ntaps, s);
      cp_async_commit();
    }
    int cb = 0, t = 0;
    for (int kc = 0; kc < nkc; ++kc) {
      if constexpr (ASYNC) {
        // The slab of cb was issued with the group of step (cb - 1, 0), which
        // the pipelined wait covers once a channel block has STAGES - 1 taps.
        if (t == 0 && cb > 0 && ntaps < STAGES - 1) {
          cp_async_wait<0>();
        } else {
          cp_async_wait<STAGES - 2>();
        }
        if constexpr (SLAB == 2) {
          if (t == 0) slab_convert(cb & 1);
        }
      } else {
        cp_async_wait<STAGES - 2>();
      }
      __syncthreads();
      const int nk = kc + STAGES - 1;
      if (nk < nkc) load_b(nk % ntaps, nk / ntaps, nk % STAGES);
      if constexpr (ASYNC) {
        if (t == 0 && cb + 1 < nCB) slab_issue(cb + 1, (cb + 1) & 1);
      }
      cp_async_commit();
      const bool pre = SLAB == 1 && cb + 1 < nCB;
      if (pre) slab_load(cb + 1, t * R);
      const int uw = t % nw, uh = (t / nw) % nh, ud = t / (nw * nh);
      compute(kc % STAGES, cb & 1, (ud * a.ed * SHp + uh * a.eh) * SWp + uw * a.ew);
      if (pre) {
        slab_store((cb + 1) & 1, t * R);
        if (t == ntaps - 1) {
          for (int i0 = (t + 1) * R; i0 < IPT; i0 += R) {
            slab_load(cb + 1, i0);
            slab_store((cb + 1) & 1, i0);
          }
        }
      }
      if (++t == ntaps) {
        t = 0;
        ++cb;
      }
    }
  } else {
    // K blocks in (tap, channel block) order; (lt, lcb) and the tap's
    // coordinates (lud, luh, luw) of the next block to load, advanced by
    // counting (no divisions in the loop)
    int lt = 0, lcb = 0, lud = 0, luh = 0, luw = 0;
    auto advance = [&]() {
      if (++lcb == nCB) {
        lcb = 0;
        ++lt;
        if (++luw == nw) {
          luw = 0;
          if (++luh == nh) {
            luh = 0;
            ++lud;
          }
        }
      }
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < nkc) {
        load_a(lud, luh, luw, lcb, s);
        load_b(lt, lcb, s);
        store_a(s);
        advance();
      }
      cp_async_commit();
    }
    for (int kc = 0; kc < nkc; ++kc) {
      cp_async_wait<STAGES - 2>();
      __syncthreads();
      const int nk = kc + STAGES - 1;
      if (nk < nkc) {
        load_a(lud, luh, luw, lcb, nk % STAGES);
        load_b(lt, lcb, nk % STAGES);
        advance();
      }
      cp_async_commit();
      compute(kc % STAGES, 0, 0);
      if (nk < nkc) store_a(nk % STAGES);
    }
  }
  cp_async_wait<0>();

  // ---- epilogue: + bias, storage dtype, straight to the output
  const I ODHW = (I)a.OD * a.OH * a.OW;
#pragma unroll
  for (int i = 0; i < MT; ++i) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      int nb, jd, jh, jw;
      if (!decode(wm0 + i * 16 + gq + hr * 8, nb, jd, jh, jw)) continue;
      const int od = pm[P_FD] + a.sd * jd, oh = pm[P_FH] + a.sh * jh, ow = pm[P_FW] + a.sw * jw;
      T* const o = out + ((I)nb * a.Cout + (I)g * Cog) * ODHW + ((I)od * a.OH + oh) * a.OW + ow;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int n = n0 + wn0 + j * 8 + 2 * tq + e;
          if (n < Cog) {
            float v = acc[i][j][hr * 2 + e];
            if (a.has_bias) v += to_f32<DT>(bias[g * Cog + n]);
            o[(I)n * ODHW] = from_f32<DT>(v);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// xconvt_wgmma (sm_90a only: the body is empty elsewhere): the GEMM of
// xconvt_mma with a warpgroup-wide asynchronous main loop.  A comes from the
// channels-last copy (as SLAB 3), B from weights packed K-major
// (xconvt_wgmma_pack: per phase and group [o][t][c]), both by 16-byte
// cp.async into STAGES shared-memory stages in wgmma's K-major layout,
// swizzled: a K block is RB = BK * sizeof(T) bytes of each row (128, 64 or
// 32: the 128-, 64- or 32-byte swizzle), row r at r*RB bytes from a
// 1024-byte aligned tile, its 16-byte chunk c at chunk c ^ ((r*RB / 128) %
// (RB / 16)) (address bits 4.. XOR bits 7..; 8 rows are the descriptor's
// stride byte offset).  A wgmma takes 32 bytes of K: its descriptor starts
// 32*k bytes into the rows (the hardware applies the swizzle to the
// address).  Each warpgroup (128
// threads) computes 64 rows x BN with one wgmma m64nBNk(32 bytes) per 32
// bytes of K; the accumulators stay in registers.  Per K block: wait for its copies, fence them to the async
// proxy, barrier, issue the copies of block + STAGES - 2 (into the stage
// whose wgmmas every warpgroup has finished: each waits for all but its
// newest group), issue the block's wgmmas, commit, wait for the previous
// group.  MODE 0 (TF32): operands arrive rounded to tf32 (the copy and the
// pack round); MODE 2: float16 / bfloat16; MODE 1 (3xTF32): the copy and
// the pack also write the small halves tf32(v - big) (XSMALL, WSMALL
// elements on), staged beside the big ones; per K block small*big,
// big*small, then big*big go to fresh accumulators (zeroed, the group
// waited for) that are added to the running sums with ordinary float adds,
// as xconvt_mma's KACC: the tensor cores' truncating accumulation stays
// relative to one block's partial sum.  MW (flat M tiles only): each
// warpgroup computes MW blocks of 64 rows, one wgmma per block and K step
// with one B, so a warp's per-K-block work (waits, barrier, descriptors,
// counters) covers MW times the tensor work (BM / (64 MW) warpgroups).
namespace xmma {
// BEGIN GENERATED wgmma (probe/gen_wgmma.py)
template <int DT, int N> struct Wg;
template <> struct Wg<0, 32> {
  static __device__ __forceinline__ void mma(float (&d)[16], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k8.f32.tf32.tf32 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
        "%16, %17, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<0, 48> {
  static __device__ __forceinline__ void mma(float (&d)[24], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n48k8.f32.tf32.tf32 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, "
        "%24, %25, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<0, 64> {
  static __device__ __forceinline__ void mma(float (&d)[32], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<0, 96> {
  static __device__ __forceinline__ void mma(float (&d)[48], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %50, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n96k8.f32.tf32.tf32 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, "
        "%48, %49, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<0, 128> {
  static __device__ __forceinline__ void mma(float (&d)[64], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<0, 192> {
  static __device__ __forceinline__ void mma(float (&d)[96], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n192k8.f32.tf32.tf32 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, "
        "%96, %97, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<0, 256> {
  static __device__ __forceinline__ void mma(float (&d)[128], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k8.f32.tf32.tf32 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
        "%128, %129, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<1, 32> {
  static __device__ __forceinline__ void mma(float (&d)[16], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
        "%16, %17, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<1, 48> {
  static __device__ __forceinline__ void mma(float (&d)[24], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n48k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, "
        "%24, %25, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<1, 64> {
  static __device__ __forceinline__ void mma(float (&d)[32], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<1, 96> {
  static __device__ __forceinline__ void mma(float (&d)[48], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %50, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n96k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, "
        "%48, %49, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<1, 128> {
  static __device__ __forceinline__ void mma(float (&d)[64], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<1, 192> {
  static __device__ __forceinline__ void mma(float (&d)[96], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n192k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, "
        "%96, %97, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<1, 256> {
  static __device__ __forceinline__ void mma(float (&d)[128], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
        "%128, %129, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<2, 32> {
  static __device__ __forceinline__ void mma(float (&d)[16], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
        "%16, %17, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<2, 48> {
  static __device__ __forceinline__ void mma(float (&d)[24], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n48k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, "
        "%24, %25, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<2, 64> {
  static __device__ __forceinline__ void mma(float (&d)[32], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<2, 96> {
  static __device__ __forceinline__ void mma(float (&d)[48], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %50, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n96k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, "
        "%48, %49, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<2, 128> {
  static __device__ __forceinline__ void mma(float (&d)[64], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<2, 192> {
  static __device__ __forceinline__ void mma(float (&d)[96], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, "
        "%96, %97, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
        : "l"(da), "l"(db), "n"(1));
  }
};
template <> struct Wg<2, 256> {
  static __device__ __forceinline__ void mma(float (&d)[128], unsigned long long da,
                                             unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
        "%128, %129, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(da), "l"(db), "n"(1));
  }
};
// END GENERATED wgmma

// Shared-memory matrix descriptor of a K-major operand with rows of RB
// bytes and the RB-byte swizzle: start address, leading byte offset 16
// (unused: a wgmma's K lies within one swizzled row), stride byte offset
// `sbo` between 8-row groups, base offset 0 and swizzle mode 1 (128 bytes),
// 2 (64) or 3 (32).  The hardware applies the swizzle to the absolute
// shared-memory address (bits 4.. XOR bits 7..): a start anywhere in a
// 1024-byte atom, as BOXA's windows into the staged input box, reads the
// rows that were written there with that swizzle, with base offset 0.
// (Measured on an H200, 2026-12-03: base offset (start >> 7) & 7, one
// reading of the PTX text, gave windows a relative error of 1.08.)
template <int RB>
__device__ __forceinline__ unsigned long long wg_desc_at(unsigned addr, unsigned sbo) {
  constexpr unsigned long long mode = RB == 128 ? 1 : (RB == 64 ? 2 : 3);
  return (unsigned long long)((addr & 0x3FFFF) >> 4) | (1ull << 16) |
         ((unsigned long long)(sbo >> 4) << 32) | (mode << 62);
}
// The stages' operands: 8-row groups of whole rows (stride 8*RB).
template <int RB>
__device__ __forceinline__ unsigned long long wg_desc(unsigned addr) {
  return wg_desc_at<RB>(addr, 8 * RB);
}
__device__ __forceinline__ void wg_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wg_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
template <int R>
__device__ __forceinline__ void keep(float (&d)[R]) {  // pin the accumulators
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
}  // namespace xmma

template <int DT, int MODE, typename I, int BM, int BN, int BK, int STAGES, int MINB,
          int BOXA, int MW = 1>
__global__ void __launch_bounds__(BM / (64 * MW) * 128, MINB)
xconvt_wgmma(const typename xmma::storage<DT>::type* __restrict__ x,
             const typename xmma::storage<DT>::type* __restrict__ wp,
             const typename xmma::storage<DT>::type* __restrict__ bias,
             typename xmma::storage<DT>::type* __restrict__ out,
             const int* __restrict__ meta, const int* __restrict__ btab,
             const xmma::MmaArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace xmma;
  typedef typename storage<DT>::type T;
  constexpr int THREADS = BM / (64 * MW) * 128;  // a warpgroup: MW blocks of 64 rows
  constexpr int ES = sizeof(T);
  constexpr int EPC = 16 / ES;                 // values per 16-byte chunk
  constexpr int RB = BK * ES;                  // bytes of a row per K block
  constexpr int CPR = RB / 16;                 // chunks per row and K block
  constexpr int KSTEPS = RB / 32;              // wgmmas per K block (32 bytes of K each)
  constexpr int H = MODE == 1 ? 2 : 1;         // halves (3xTF32: big, small)
  // BOXA 1, 2: no A in the stages (the staged input box holds it); 3: A
  // and B as 0, each K block TPK taps of CT / G channels
  constexpr bool BOX = BOXA == 1 || BOXA == 2;
  constexpr int A1 = BOX ? 0 : BM * RB, B1 = BN * RB;  // one half of a stage's A, B
  constexpr int A_BYTES = H * A1;
  constexpr int STAGE = H * (A1 + B1);
  constexpr int ACH = BOX ? 1 : BM * CPR / THREADS;
  constexpr int BCH = (BN * CPR + THREADS - 1) / THREADS;
  constexpr int NACC = BN / 2;
  static_assert(MODE == 2 ? DT != 0 : DT == 0, "mode and dtype");
  static_assert(RB == 128 || RB == 64 || RB == 32, "a K block is one swizzled row");
  static_assert((BM * CPR) % THREADS == 0, "A loader shape");
  static_assert(STAGES >= 3, "a stage is reloaded two blocks after its wgmmas");
  static_assert(MW == 1 || (!BOX && BM % (64 * MW) == 0), "MW: flat M tiles of whole warpgroups");
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // the swizzle atoms must be 1024-byte aligned (the host adds 1024 bytes)
  const unsigned sbase = (smem_u32(smem_raw) + 1023u) & ~1023u;

  // ---- block -> (phase, group, m tile, n tile), as xconvt_mma
  const int* pm = meta + btab[2 * blockIdx.x] * PMETA;
  int bid = btab[2 * blockIdx.x + 1];
  const int n_t = pm[P_NT], m_t = pm[P_MT];
  const int ntile = bid % n_t;
  bid /= n_t;
  const int mtile = bid % m_t;
  const int g = bid / m_t;
  const int cd = pm[P_CD], ch = pm[P_CH], cw = pm[P_CW];
  const int nd = pm[P_ND], nh = pm[P_NH], nw = pm[P_NW];
  const int ntaps = nd * nh * nw;
  const int per_n = cd * ch * cw;
  const int Mph = a.N * per_n;
  const int nCB = a.nCB;
  // BOXA 3: K blocks of TPK taps (the last padded with zero taps), nCB 1
  const int TPK = BOXA == 3 ? a.TPK : 1;
  const int ntk = (ntaps + TPK - 1) / TPK;
  const int nkc = ntk * nCB;
  const int KT = ntk * nCB * BK;  // packed K of one output column
  const int tid = threadIdx.x;
  const int n0 = ntile * BN;
  // M tile: BM flat positions from m0, or (BOXA) a TD x 8 x 8 box at (jd0, jh0,
  // jw0) of sample nb0, warpgroup wg on its plane jd0 + wg
  constexpr int TD = BM / 64;
  int m0 = 0, nb0 = 0, jd0 = 0, jh0 = 0, jw0 = 0;
  if constexpr (BOX) {
    const int mt_w = (cw + 7) / 8, mt_h = (ch + 7) / 8, mt_d = (cd + TD - 1) / TD;
    int r = mtile;
    jw0 = (r % mt_w) * 8;
    r /= mt_w;
    jh0 = (r % mt_h) * 8;
    r /= mt_h;
    jd0 = (r % mt_d) * TD;
    nb0 = r / mt_d;
  } else {
    m0 = mtile * (a.FOLD ? a.FMT : BM);
  }
  auto decode = [&](int m, int& nb, int& jd, int& jh, int& jw) -> bool {
    if constexpr (BOX) {
      jw = jw0 + m % 8;
      jh = jh0 + (m / 8) % 8;
      jd = jd0 + m / 64;
      nb = nb0;
      return jd < cd && jh < ch && jw < cw;
    } else {
      m += m0;
      nb = m / per_n;
      int r = m - nb * per_n;
      jw = r % cw;
      r /= cw;
      jh = r % ch;
      jd = r / ch;
      return m < Mph;
    }
  };

  // ---- loaders: chunk q of a stage is (row q / CPR, chunk q % CPR): a warp
  // copies whole rows; a row past the phase's end reads the last position
  // (not stored)
  auto swz = [](int r, int j) -> unsigned {
    return r * RB + ((j ^ ((r * RB >> 7) & (CPR - 1))) << 4);
  };
  I a_src[ACH];
  unsigned a_dst[ACH];
#pragma unroll
  for (int i = 0; i < (BOX ? 0 : ACH); ++i) {
    const int q = tid + i * THREADS;
    const int m = q / CPR, j = q % CPR;
    int nb, jd, jh, jw;
    if (!decode(m, nb, jd, jh, jw)) decode(Mph - 1 - m0, nb, jd, jh, jw);
    a_src[i] = ((((I)nb * a.PD + a.LD + pm[P_BD] + jd * a.QD) * a.PH + a.LH + pm[P_BH] +
                 jh * a.QH) * a.PW + a.LW + pm[P_BW] + jw * a.QW) * a.CT +
               (BOXA == 3 ? g * (a.CT / a.G) + j % (CPR / TPK) * EPC : g * nCB * BK + j * EPC);
    a_dst[i] = swz(m, j);
  }
  // BOXA 3: this thread's chunks are of tap jt of each K block (THREADS is a
  // multiple of CPR, so every chunk q of the thread has j = tid % CPR)
  const int jt = (tid % CPR) / (CPR / TPK);
  const T* const wph = wp + pm[P_WOFF] + (I)g * a.NP * KT + (I)n0 * KT;
  int b_src[BCH];
  unsigned b_dst[BCH];
#pragma unroll
  for (int i = 0; i < BCH; ++i) {
    const int q = tid + i * THREADS;
    const int n = q / CPR, j = q % CPR;
    b_src[i] = n * KT + j * EPC;
    b_dst[i] = q < BN * CPR ? swz(n, j) : 0xFFFFFFFFu;
  }
  // B of the K block at bsrc into the stage at s0
  auto load_b = [&](const T* bsrc, unsigned s0) {
#pragma unroll
    for (int i = 0; i < BCH; ++i)
      if (BN * CPR % THREADS == 0 || b_dst[i] != 0xFFFFFFFFu) {
        cp_async16(s0 + A_BYTES + b_dst[i], bsrc + b_src[i]);
        if constexpr (MODE == 1)
          cp_async16(s0 + A_BYTES + B1 + b_dst[i], bsrc + a.WSMALL + b_src[i]);
      }
  };
  auto load = [&](int ud, int uh, int uw, int t, int cb, int st) {
    const I toff = (((I)ud * a.ed * a.PH + uh * a.eh) * a.PW + uw * a.ew) * a.CT + cb * BK;
    const unsigned s0 = sbase + st * STAGE;
    const bool l1 = a.ACA;
#pragma unroll
    for (int i = 0; i < (BOX ? 0 : ACH); ++i) {
      cp_async16(s0 + a_dst[i], x + a_src[i] + toff, l1);
      if constexpr (MODE == 1)
        cp_async16(s0 + A1 + a_dst[i], x + a.XSMALL + a_src[i] + toff, l1);
    }
    load_b(wph + t * nCB * BK + cb * BK, s0);
  };
  // BOXA 3: K block kt's loads; its tap jt's offset in the copy from the
  // table after the stages (-1: a padding tap past the phase's, zero-filled)
  I* const ttab =
      reinterpret_cast<I*>(smem_raw + (sbase - smem_u32(smem_raw)) + STAGES * STAGE);
  auto load3 = [&](int kt, int st) {
    const I toff = ttab[kt * TPK + jt];
    const bool real = toff >= 0;
    const I o = real ? toff : 0;
    const unsigned s0 = sbase + st * STAGE;
    const bool l1 = a.ACA;
#pragma unroll
    for (int i = 0; i < ACH; ++i) {
      cp_async16z(s0 + a_dst[i], x + a_src[i] + o, real, l1);
      if constexpr (MODE == 1)
        cp_async16z(s0 + A1 + a_dst[i], x + a.XSMALL + a_src[i] + o, real, l1);
    }
    load_b(wph + kt * BK, s0);
  };

  // ---- warpgroup tile: rows 64 * MW * wg .. + 64 * MW - 1, all BN columns,
  // as MW accumulator blocks of 64 rows (MW > 1: the per-K-block work of a
  // warp, its waits, barrier, descriptors and counters, covers MW times the
  // wgmmas)
  const int wg = tid >> 7;
  float acc[MW][NACC];
  float tk[MODE == 1 ? MW : 1][NACC];  // 3xTF32: the K block's fresh accumulators
#pragma unroll
  for (int mi = 0; mi < MW; ++mi)
#pragma unroll
    for (int i = 0; i < NACC; ++i) acc[mi][i] = 0.f;

  // One K block's wgmmas: A from a0 (this warpgroup's rows; 3xTF32's small
  // half ah bytes on; BOXA: 8-row groups sbo bytes apart), B from stage b0.
  auto step = [&](unsigned a0, unsigned ah, unsigned sbo, unsigned b0) {
    auto da = [&](unsigned addr) {
      if constexpr (BOX) {
        return wg_desc_at<RB>(addr, sbo);
      } else {
        return wg_desc<RB>(addr);
      }
    };
    // a descriptor 32 bytes on: its start address field (bytes / 16) + 2
    // (shared memory addresses stay below the field's 2^18 bytes)
    // (accumulator block mi: A 64 rows on, its start address field + 4 * RB)
    const unsigned long long dA = da(a0), dB = wg_desc<RB>(b0);
    if constexpr (MODE == 1) {
      const unsigned long long dAs = da(a0 + ah), dBs = wg_desc<RB>(b0 + B1);
#pragma unroll
      for (int mi = 0; mi < MW; ++mi) {
#pragma unroll
        for (int i = 0; i < NACC; ++i) tk[mi][i] = 0.f;
        keep(tk[mi]);
      }
      wg_fence();
#pragma unroll
      for (int k = 0; k < KSTEPS; ++k) {
#pragma unroll
        for (int mi = 0; mi < MW; ++mi) {
          const unsigned long long o = mi * 4 * RB + 2 * k;
          Wg<DT, BN>::mma(tk[mi], dAs + o, dB + 2 * k);   // small * big
          Wg<DT, BN>::mma(tk[mi], dA + o, dBs + 2 * k);   // big * small
          Wg<DT, BN>::mma(tk[mi], dA + o, dB + 2 * k);    // big * big
        }
      }
      wg_commit();
      wg_wait<0>();
#pragma unroll
      for (int mi = 0; mi < MW; ++mi) {
        keep(tk[mi]);
#pragma unroll
        for (int i = 0; i < NACC; ++i) acc[mi][i] += tk[mi][i];
      }
    } else {
#pragma unroll
      for (int mi = 0; mi < MW; ++mi) keep(acc[mi]);
      wg_fence();
#pragma unroll
      for (int k = 0; k < KSTEPS; ++k)
#pragma unroll
        for (int mi = 0; mi < MW; ++mi)
          Wg<DT, BN>::mma(acc[mi], dA + mi * 4 * RB + 2 * k, dB + 2 * k);
      wg_commit();
      wg_wait<1>();
#pragma unroll
      for (int mi = 0; mi < MW; ++mi) keep(acc[mi]);
    }
  };

  // ---- BOXA: the M tile's input box of the copy, SDp x SHp x SWr positions
  // of sample nb0, one row of RB bytes per position (pitch SWr: the hardware
  // swizzles absolute addresses, so a tap's window may start at any row);
  // box_issue copies channel block cb's into the buffer at d0 (3xTF32: the
  // small halves SC rows on)
  const int SWr = 8 + (nw - 1) * a.ew;
  const int SHp = 8 + (nh - 1) * a.eh, SDp = TD + (nd - 1) * a.ed;
  const int NPOS = SDp * SHp * SWr;
  const I xblk = (I)nb0 * a.PD * a.PH * a.PW * a.CT + g * nCB * BK;
  auto box_issue = [&](int cb, unsigned d0) {
    for (int q = tid; q < NPOS * CPR; q += THREADS) {
      const int p = q / CPR, j = q % CPR;
      const int sw = p % SWr, r = p / SWr, sh = r % SHp, sd = r / SHp;
      // past the copy's extent (rows that are not stored) clamped into it
      const int pd = min(a.LD + pm[P_BD] + jd0 + sd, a.PD - 1);
      const int ph = min(a.LH + pm[P_BH] + jh0 + sh, a.PH - 1);
      const int pw = min(a.LW + pm[P_BW] + jw0 + sw, a.PW - 1);
      const I src = xblk + (((I)pd * a.PH + ph) * a.PW + pw) * a.CT + cb * BK + j * EPC;
      const unsigned dst = d0 + swz(p, j);
      cp_async16(dst, x + src);
      if constexpr (MODE == 1) cp_async16(dst + a.SC * RB, x + a.XSMALL + src);
    }
  };

  if constexpr (BOXA == 2) {
    // ---- BOXA 2 (resident): per channel block, the M tile's input box of
    // the copy (as BOXA 1, one buffer) and every tap's B ([tap][half][BN
    // rows], swizzled as the stages) after it; one wait and barrier, then the
    // wgmmas of all the taps in one group (the K blocks of BOXA 1 and 0 wait
    // and synchronise per tap: with few channels that latency, not the
    // tensor cores, bounds them).  3xTF32: fresh accumulators per channel
    // block, added to the sums with float adds.  Other resident blocks hide
    // the loads.
    const unsigned BOX0 = sbase, BRES = sbase + H * a.SC * RB;
    for (int cb = 0; cb < nCB; ++cb) {
      if (cb > 0) {  // every warpgroup's wgmmas of the previous block are done
        wg_wait<0>();
        keep(acc[0]);
        __syncthreads();
      }
      box_issue(cb, BOX0);
      for (int q = tid; q < ntaps * BN * CPR; q += THREADS) {
        const int t = q / (BN * CPR), r = q - t * (BN * CPR);
        const int n = r / CPR, j = r % CPR;
        const T* src = wph + (I)n * KT + (t * nCB + cb) * BK + j * EPC;
        const unsigned dst = BRES + t * (H * B1) + swz(n, j);
        cp_async16(dst, src);
        if constexpr (MODE == 1) cp_async16(dst + B1, src + a.WSMALL);
      }
      cp_async_commit();
      cp_async_wait<0>();
      fence_async_smem();
      __syncthreads();
      if constexpr (MODE == 1) {
#pragma unroll
        for (int i = 0; i < NACC; ++i) tk[0][i] = 0.f;
        keep(tk[0]);
      } else {
        keep(acc[0]);
      }
      wg_fence();
      int ud = 0, uh = 0, uw = 0;
#pragma unroll 1
      for (int t = 0; t < ntaps; ++t) {
        const int row0 = ((wg + ud * a.ed) * SHp + uh * a.eh) * SWr + uw * a.ew;
        const unsigned a0 = BOX0 + row0 * RB, b0 = BRES + t * (H * B1);
#pragma unroll
        for (int k = 0; k < KSTEPS; ++k) {
          const unsigned ab = a0 + 32 * k, bb = b0 + 32 * k;
          const unsigned long long da = wg_desc_at<RB>(ab, SWr * RB);
          if constexpr (MODE == 1) {  // small * big, big * small, big * big
            Wg<DT, BN>::mma(tk[0], wg_desc_at<RB>(ab + a.SC * RB, SWr * RB), wg_desc<RB>(bb));
            Wg<DT, BN>::mma(tk[0], da, wg_desc<RB>(bb + B1));
            Wg<DT, BN>::mma(tk[0], da, wg_desc<RB>(bb));
          } else {
            Wg<DT, BN>::mma(acc[0], da, wg_desc<RB>(bb));
          }
        }
        if (++uw == nw) {
          uw = 0;
          if (++uh == nh) {
            uh = 0;
            ++ud;
          }
        }
      }
      wg_commit();
      if constexpr (MODE == 1) {
        wg_wait<0>();
        keep(tk[0]);
#pragma unroll
        for (int i = 0; i < NACC; ++i) acc[0][i] += tk[0][i];
      }
    }
  } else if constexpr (BOX) {
    // ---- BOXA 1: per channel block the tile's input box (box_issue) in one of
    // two buffers after the stages, issued a channel block ahead; each tap's
    // A is a window into it.  K blocks in (channel block, tap) order; the
    // stages hold B only.  (Measured slower than BOXA 0 on an H200.)
    const unsigned SB = a.SC * RB * H;  // one box buffer (1024-byte multiple)
    const unsigned SLAB0 = sbase + STAGES * STAGE;
    auto slab_issue = [&](int cb, int buf) { box_issue(cb, SLAB0 + buf * SB); };
    int lt = 0, lcb = 0;
    auto advance = [&]() {
      if (++lt == ntaps) {
        lt = 0;
        ++lcb;
      }
    };
    if (nkc > 0) slab_issue(0, 0);  // joins the first commit group
#pragma unroll
    for (int s = 0; s < STAGES - 2; ++s) {
      if (s < nkc) {
        load(0, 0, 0, lt, lcb, s);
        advance();
      }
      cp_async_commit();
    }
    // the next slab goes into the buffer whose last reader, the previous
    // channel block's last tap, every warpgroup has finished two steps on
    // (one tap: at once, after waiting for it); the pipelined wait covers
    // it only where a channel block has enough taps after its issue
    const int t_issue = ntaps > 1 ? 1 : 0;
    const bool late = t_issue > ntaps - STAGES + 2;
    int t = 0, cb = 0, ud = 0, uh = 0, uw = 0;
    for (int kc = 0; kc < nkc; ++kc) {
      if (t == 0 && cb > 0 && late) {
        cp_async_wait<0>();
      } else {
        cp_async_wait<STAGES - 3>();
      }
      if (ntaps == 1) wg_wait<0>();
      fence_async_smem();
      __syncthreads();
      const int nk = kc + STAGES - 2;
      if (nk < nkc) {
        load(0, 0, 0, lt, lcb, nk % STAGES);
        advance();
      }
      if (t == t_issue && cb + 1 < nCB) slab_issue(cb + 1, (cb + 1) & 1);
      cp_async_commit();
      const int row0 = ((wg + ud * a.ed) * SHp + uh * a.eh) * SWr + uw * a.ew;
      step(SLAB0 + (cb & 1) * SB + row0 * RB, a.SC * RB, SWr * RB,
           sbase + (kc % STAGES) * STAGE);
      if (++uw == nw) {
        uw = 0;
        if (++uh == nh) {
          uh = 0;
          ++ud;
        }
      }
      if (++t == ntaps) {
        t = 0;
        ++cb;
        ud = uh = uw = 0;
      }
    }
  } else if constexpr (BOXA == 3) {
    // ---- BOXA 3: as 0, each K block TPK taps (nCB 1; the loader reads
    // each chunk's tap offset from the table)
    for (int t = tid; t < ntk * TPK; t += THREADS) {
      I v = -1;
      if (t < ntaps) {
        const int uw = t % nw, r = t / nw, uh = r % nh, ud = r / nh;
        v = (((I)ud * a.ed * a.PH + uh * a.eh) * a.PW + uw * a.ew) * a.CT;
      }
      ttab[t] = v;
    }
    __syncthreads();
#pragma unroll
    for (int s = 0; s < STAGES - 2; ++s) {
      if (s < nkc) load3(s, s);
      cp_async_commit();
    }
    for (int kc = 0; kc < nkc; ++kc) {
      cp_async_wait<STAGES - 3>();
      fence_async_smem();
      __syncthreads();
      const int nk = kc + STAGES - 2;
      if (nk < nkc) load3(nk, nk % STAGES);
      cp_async_commit();
      const unsigned s0 = sbase + (kc % STAGES) * STAGE;
      step(s0 + 64 * MW * wg * RB, A1, 0, s0 + A_BYTES);
    }
  } else {
    int lt = 0, lcb = 0, lud = 0, luh = 0, luw = 0;
    auto advance = [&]() {
      if (++lcb == nCB) {
        lcb = 0;
        ++lt;
        if (++luw == nw) {
          luw = 0;
          if (++luh == nh) {
            luh = 0;
            ++lud;
          }
        }
      }
    };
#pragma unroll
    for (int s = 0; s < STAGES - 2; ++s) {
      if (s < nkc) {
        load(lud, luh, luw, lt, lcb, s);
        advance();
      }
      cp_async_commit();
    }
    for (int kc = 0; kc < nkc; ++kc) {
      cp_async_wait<STAGES - 3>();
      fence_async_smem();
      __syncthreads();
      const int nk = kc + STAGES - 2;
      if (nk < nkc) {
        load(lud, luh, luw, lt, lcb, nk % STAGES);
        advance();
      }
      cp_async_commit();
      const unsigned s0 = sbase + (kc % STAGES) * STAGE;
      step(s0 + 64 * MW * wg * RB, A1, 0, s0 + A_BYTES);
    }
  }
  wg_wait<0>();
#pragma unroll
  for (int mi = 0; mi < MW; ++mi) keep(acc[mi]);
  cp_async_wait<0>();

  if constexpr (!BOX) {
    if (a.FOLD) {
      // ---- epilogue FOLD: the tile through shared memory as floats
      // ([BN][BM + 4]) and a table of the output offsets of the tile's input
      // rows; then per output row (channel c of the tile's BN / KW, input row
      // r of its FMT / OW; a warp takes 32 / E rows at once where a row has
      // E < 32 elements) output column ow sums the columns (c, kw) at input
      // column iw with iw * FS = ow + FP - kw * FDL, + bias, rounded once,
      // stored along the row (stride 2 with FOW = 2 OW: two columns a lane)
      const int lane = tid & 31, warp = tid >> 5;
      const int gq = lane >> 2, tq = lane & 3;
      constexpr int LDF = BM + 4;
      float* const st = reinterpret_cast<float*>(smem_raw + (sbase - smem_u32(smem_raw)));
      I* const rtab = reinterpret_cast<I*>(st + BN * LDF);
      const int KW = a.FOLD, IWr = a.OW, nrow = a.FMT / IWr, FOW = a.FOW;
      const int FS = a.FS, FP = a.FP, FDL = a.FDL;
      const int CogR = a.Cog / KW, c0 = n0 / KW;
      const I ODHW = (I)a.OD * a.OH * FOW;
      __syncthreads();  // every warpgroup is done reading the stages
#pragma unroll
      for (int mh = 0; mh < 2 * MW; ++mh) {
        const int mi = mh >> 1, hr = mh & 1;
        const int r = 64 * (MW * wg + mi) + 16 * (warp & 3) + gq + 8 * hr;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
          st[(j * 8 + 2 * tq) * LDF + r] = acc[mi][4 * j + 2 * hr];
          st[(j * 8 + 2 * tq + 1) * LDF + r] = acc[mi][4 * j + 2 * hr + 1];
        }
      }
      for (int r = tid; r < nrow; r += THREADS) {
        int nb, jd, jh, jw;
        rtab[r] = decode(r * IWr, nb, jd, jh, jw)
                      ? ((I)nb * (a.Cout / KW) + (I)g * CogR + c0) * ODHW +
                            ((I)(pm[P_FD] + a.sd * jd) * a.OH + pm[P_FH] + a.sh * jh) * FOW
                      : (I)-1;
      }
      __syncthreads();
      const bool two = FS == 2 && FOW == 2 * IWr;
      const int E = two ? IWr : FOW;  // elements (stores) per output row
      const int rpw = E >= 32 ? 1 : 32 / E;
      const int sub = E >= 32 ? 0 : lane / E, e0 = E >= 32 ? lane : lane % E;
      const int estep = E >= 32 ? 32 : E;
      const int rstep = (THREADS / 32) * rpw;
      const int nrows = (min(BN / KW, CogR - c0)) * nrow;
      if (sub < rpw) {
        int row = warp * rpw + sub;
        int c = row / nrow, r = row - c * nrow;
        for (; row < nrows; row += rstep) {
          const I base = rtab[r];
          if (base >= 0) {
            const float bv = a.has_bias ? to_f32<DT>(bias[g * CogR + c0 + c]) : 0.f;
            const float* const sr = st + c * KW * LDF + r * IWr;
            T* const o = out + base + (I)c * ODHW;
            for (int e = e0; e < E; e += estep) {
              if (FS == 1) {
                float v = bv;
                for (int kw = 0; kw < KW; ++kw) {
                  const int iw = e + FP - kw * FDL;
                  if (iw >= 0 && iw < IWr) v += sr[kw * LDF + iw];
                }
                o[e] = from_f32<DT>(v);
              } else if (two) {  // columns 2e, 2e + 1: 2e + j reads e + (j + t0) / 2
                float v0 = bv, v1 = bv;
                for (int kw = 0; kw < KW; ++kw) {
                  const int t0 = FP - kw * FDL;
                  const int iw = e + ((t0 + 1) >> 1);  // t0 even: t0 / 2; odd: (t0 + 1) / 2
                  if (iw >= 0 && iw < IWr) {
                    if (t0 & 1) {
                      v1 += sr[kw * LDF + iw];
                    } else {
                      v0 += sr[kw * LDF + iw];
                    }
                  }
                }
                if constexpr (DT == 0) {
                  *reinterpret_cast<float2*>(o + 2 * e) = make_float2(v0, v1);
                } else {
                  *reinterpret_cast<unsigned*>(o + 2 * e) =
                      (unsigned)from_f32<DT>(v0) | ((unsigned)from_f32<DT>(v1) << 16);
                }
              } else {
                float v = bv;
                for (int kw = 0; kw < KW; ++kw) {
                  const int t = e + FP - kw * FDL;
                  if (t < 0) continue;
                  const int iw = t / FS;
                  if (iw * FS == t && iw < IWr) v += sr[kw * LDF + iw];
                }
                o[e] = from_f32<DT>(v);
              }
            }
          }
          for (r += rstep; r >= nrow; r -= nrow) ++c;
        }
      }
      return;
    }
    if (a.VEC) {
      // ---- epilogue VEC (unit output steps along W, flat M tiles): the
      // tile through shared memory ([BN][BM] values, rows 16 bytes apart
      // more), then 16-byte stores of EPC neighbouring rows of a column where
      // they are one aligned run of the output row, value by value elsewhere
      const int lane = tid & 31, warp = tid >> 5;
      const int gq = lane >> 2, tq = lane & 3;
      constexpr int LDT = BM + EPC;
      T* const st = reinterpret_cast<T*>(smem_raw + (sbase - smem_u32(smem_raw)));
      __syncthreads();  // every warpgroup is done reading the stages
#pragma unroll
      for (int mh = 0; mh < 2 * MW; ++mh) {
        const int mi = mh >> 1, hr = mh & 1;
        const int r = 64 * (MW * wg + mi) + 16 * (warp & 3) + gq + 8 * hr;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int n = j * 8 + 2 * tq + e;
            float v = acc[mi][4 * j + 2 * hr + e];
            if (a.has_bias && n0 + n < a.Cog) v += to_f32<DT>(bias[g * a.Cog + n0 + n]);
            st[n * LDT + r] = from_f32<DT>(v);
          }
        }
      }
      __syncthreads();
      const I ODHW = (I)a.OD * a.OH * a.OW;
      for (int q = tid; q < BN * (BM / EPC); q += THREADS) {
        const int n = q / (BM / EPC), m = (q - n * (BM / EPC)) * EPC;
        if (n0 + n >= a.Cog) continue;
        int nb, jd, jh, jw, nb1, jd1, jh1, jw1;
        const bool v0 = decode(m, nb, jd, jh, jw);
        const bool v1 = decode(m + EPC - 1, nb1, jd1, jh1, jw1);
        const I base = ((I)nb * a.Cout + (I)g * a.Cog + n0 + n) * ODHW;
        const I off = ((I)(pm[P_FD] + a.sd * jd) * a.OH + pm[P_FH] + a.sh * jh) * a.OW +
                      pm[P_FW] + jw;
        if (v0 && v1 && a.sw == 1 && nb1 == nb && jd1 == jd && jh1 == jh &&
            jw1 == jw + EPC - 1 && (reinterpret_cast<size_t>(out + base + off) & 15) == 0) {
          *reinterpret_cast<uint4*>(out + base + off) =
              *reinterpret_cast<const uint4*>(st + n * LDT + m);
        } else {
          for (int e = 0; e < EPC; ++e) {
            int nb2, jd2, jh2, jw2;
            if (!decode(m + e, nb2, jd2, jh2, jw2)) break;
            const I od = pm[P_FD] + a.sd * jd2, oh = pm[P_FH] + a.sh * jh2;
            out[((I)nb2 * a.Cout + (I)g * a.Cog + n0 + n) * ODHW + (od * a.OH + oh) * a.OW +
                pm[P_FW] + a.sw * jw2] = st[n * LDT + m + e];
          }
        }
      }
      return;
    }
  }

  // ---- epilogue: + bias, storage dtype, straight to the output.  PAIR:
  // the layer's two W phases (kernel = stride = 2 along W) are the columns'
  // pairs 2o, 2o + 1 of a layer at the input's width (the host's), written
  // side by side as one 2-value store to channel o of the real output
  const int lane = tid & 31, warp = tid >> 5;
  const int gq = lane >> 2, tq = lane & 3;
  const int pair = a.PAIR;
  const int OWr = a.OW << pair;  // the real output's width
  const I ODHW = (I)a.OD * a.OH * OWr;
  const int Cog = a.Cog, Cogr = a.Cog >> pair;
#pragma unroll
  for (int mh = 0; mh < 2 * MW; ++mh) {
    const int mi = mh >> 1, hr = mh & 1;
    int nb, jd, jh, jw;
    if (!decode(64 * (MW * wg + mi) + 16 * (warp & 3) + gq + 8 * hr, nb, jd, jh, jw)) continue;
    const int od = pm[P_FD] + a.sd * jd, oh = pm[P_FH] + a.sh * jh;
    const int ow = (pm[P_FW] + a.sw * jw) << pair;
    T* const o = out + ((I)nb * (a.Cout >> pair) + (I)g * Cogr) * ODHW +
                 ((I)od * a.OH + oh) * OWr + ow;
    if (pair) {
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int n = n0 + j * 8 + 2 * tq;  // even; Cog is even
        if (n < Cog) {
          float v0 = acc[mi][4 * j + 2 * hr], v1 = acc[mi][4 * j + 2 * hr + 1];
          if (a.has_bias) {
            const float bv = to_f32<DT>(bias[g * Cogr + (n >> 1)]);
            v0 += bv;
            v1 += bv;
          }
          T* const d = o + (I)(n >> 1) * ODHW;
          if constexpr (DT == 0) {
            *reinterpret_cast<float2*>(d) = make_float2(v0, v1);
          } else {
            *reinterpret_cast<unsigned*>(d) =
                (unsigned)from_f32<DT>(v0) | ((unsigned)from_f32<DT>(v1) << 16);
          }
        }
      }
      continue;
    }
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int n = n0 + j * 8 + 2 * tq + e;
        if (n < Cog) {
          float v = acc[mi][4 * j + 2 * hr + e];
          if (a.has_bias) v += to_f32<DT>(bias[g * Cog + n]);
          o[(I)n * ODHW] = from_f32<DT>(v);
        }
      }
    }
  }
#else
  __trap();  // built without sm_90a's wgmma: never launched (cuda/mma.py compiles it for sm_90a)
#endif
}

// Weights packed K-major for xconvt_wgmma: element (g, c, o, k) of w (read as
// by xconvt_mma_pack_t: src[g*Cig*Cog*K3 + c*kstride + o*nstride + k]) goes to
// dst[tapoff[k] + g*gstride[k] + o*ostride[k] + c] (per phase and group
// [o][t][c], c padded to whole BK blocks, o to whole BN tiles; the host
// zeroes dst first where either is padded).  32 x 32 tiles of (c, kernel tap)
// per column o, read along the taps, written along c.  CONV as
// xconvt_mma_pack_t.  Grid (G*Cog, ceil(K3/32), ceil(Cig/32)).
template <typename U, typename I, int CONV>
__device__ __forceinline__ void wgmma_pack_block(
    const U* __restrict__ src, const I* __restrict__ tapoff, const I* __restrict__ gstride,
    const I* __restrict__ ostride, U* __restrict__ dst, int Cig, int Cog, int K3, I small,
    I kstride, I nstride, int wf, int bx, int by, int bz) {
  __shared__ U tile[32][33];
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  const int go = bx, k0 = by * 32, c0 = bz * 32;
  const int g = go / Cog, o = go - g * Cog;
  // wf > 1 (W pairs, 2; the W fold, KW): w's kernel is wf times as wide
  // along W: column o is W tap o % wf of w's column o / wf, tap k its tap
  // k * wf + o % wf
  const U* s = src + (I)g * Cig * Cog * K3 + (I)(o / wf) * nstride + o % wf;
#pragma unroll
  for (int j = ty; j < 32; j += 8) {
    const int c = c0 + j, k = k0 + tx;
    tile[j][tx] = (c < Cig && k < K3) ? s[(I)c * kstride + (I)k * wf] : (U)0;
  }
  __syncthreads();
#pragma unroll
  for (int j = ty; j < 32; j += 8) {
    const int k = k0 + j, c = c0 + tx;
    if (k < K3 && c < Cig) {
      const I base = tapoff[k];
      if (base >= 0) {
        const I d = base + g * gstride[k] + o * ostride[k] + c;
        const U v = tile[tx][j];
        if constexpr (CONV == 0) {
          dst[d] = v;
        } else {
          const float f = __uint_as_float(v);
          const unsigned big = xmma::to_tf32(f);
          dst[d] = big;
          if constexpr (CONV == 2) dst[small + d] = xmma::to_tf32(f - __uint_as_float(big));
        }
      }
    }
  }
}
template <typename U, typename I, int CONV>
__global__ void __launch_bounds__(256)
xconvt_wgmma_pack(const U* __restrict__ src, const I* __restrict__ tapoff,
                  const I* __restrict__ gstride, const I* __restrict__ ostride,
                  U* __restrict__ dst, int Cig, int Cog, int K3, I small, I kstride,
                  I nstride, int wf) {
  wgmma_pack_block<U, I, CONV>(src, tapoff, gstride, ostride, dst, Cig, Cog, K3, small, kstride,
                               nstride, wf, blockIdx.x, blockIdx.y, blockIdx.z);
}

// The channels-last copy of x that SLAB 3 reads: y[n][pd][ph][pw][g][c] =
// x[n][g*Cig + c][pd - LD][ph - LH][pw - LW] for c < Cig, zero in the halo and
// in each group's channel padding (CP = nCB * BK channels a group); CONV 1
// (float bits): rounded to tf32; 2: also the small halves, a.XSMALL on.
// Tiles of CL_ELEMS values, TP padded positions (flat, n's [pd][ph][pw]) x TC
// copy channels (TC = 32 * V, or the power of two from 16 covering CT; V =
// 4 / sizeof(U), values a 4-byte store carries): every thread loads
// CL_ELEMS / 256 values along the positions (a warp reads 32 neighbours of one
// channel) into shared memory, then stores 4-byte words along the channels (a
// warp writes 128 contiguous bytes where TC covers CT).  Blocks stride over
// the N * ceil(SP / TP) * ceil(CT / TC) tiles.  U: the storage's bits.
template <typename U, typename I, int CONV>
__device__ __forceinline__ void to_cl_blocks(const U* __restrict__ x, U* __restrict__ y,
                                             const xmma::MmaArgs& a, int bid, int nblocks) {
  constexpr int V = 4 / sizeof(U);
  static_assert(CONV == 0 || V == 1, "tf32 rounding applies to 32-bit values");
  __shared__ __align__(16) U tile[CL_ELEMS + (CL_ELEMS / 16) * V];
  const int tid = threadIdx.x;
  // TC: 32 V, or the power of two (16 or more) covering CT where CT is
  // smaller: TP divides the 256 threads, each thread one position
  int TC = 32 * V;
  while (TC > 16 && TC / 2 >= a.CT) TC /= 2;
  const int TP = CL_ELEMS / TC;  // 64 .. 256
  const int RS = TC + V;         // a tile row (position): an odd count of words
  const int CP = a.CT / a.G;
  const I SP = (I)a.PD * a.PH * a.PW;
  const I VOL = (I)a.ID * a.IH * a.IW;
  const I ptiles = (SP + TP - 1) / TP;
  const int qtiles = (a.CT + TC - 1) / TC;
  const I tiles = (I)a.N * ptiles * qtiles;
  const int p = tid % TP, c_first = tid / TP, c_step = 256 / TP;
  for (I t = bid; t < tiles; t += nblocks) {
    const int qt = (int)(t % qtiles);
    const I r = t / qtiles;
    const I st = r % ptiles;
    const int n = (int)(r / ptiles);
    const I s0 = st * TP;
    const int q0 = qt * TC;
    // this thread's position: its offset in x, -1 in the halo (or past SP)
    I off = -1;
    {
      const I s = s0 + p;
      if (s < SP) {
        const int pw = (int)(s % a.PW);
        const I rr = s / a.PW;
        const int ph = (int)(rr % a.PH), pd = (int)(rr / a.PH);
        const int d = pd - a.LD, h = ph - a.LH, w = pw - a.LW;
        if (d >= 0 && d < a.ID && h >= 0 && h < a.IH && w >= 0 && w < a.IW)
          off = ((I)d * a.IH + h) * a.IW + w;
      }
    }
    __syncthreads();  // the previous tile's stores have read the tile
    // copy channel q0 + c_first: group g, channel cc of the group; the next
    // (c_step on) by carrying cc past CP (>= 8 > c_step) into the next group
    int g = (q0 + c_first) / CP, cc = q0 + c_first - g * CP;
    const U* xs = x + ((I)n * a.Cin + g * a.Cig + cc) * VOL + off;
#pragma unroll
    for (int i = 0; i < CL_ELEMS / 256; ++i) {  // independent loads in flight
      const int c = c_first + i * c_step;
      U v = 0;
      if (off >= 0 && g < a.G && cc < a.Cig) v = *xs;
      tile[p * RS + c] = v;
      cc += c_step;
      xs += (I)c_step * VOL;
      if (cc >= CP) {
        cc -= CP;
        ++g;
        xs += (I)(a.Cig - CP) * VOL;
      }
    }
    __syncthreads();
    const int upr = TC / V;  // 4-byte words of a tile row
    for (int u = tid; u < TP * upr; u += 256) {
      const int pp = u / upr, cv = u - pp * upr;
      const I s = s0 + pp;
      const int q = q0 + cv * V;
      if (s >= SP || q >= a.CT) continue;
      const I dst = ((I)n * SP + s) * a.CT + q;
      if constexpr (V == 2) {
        *reinterpret_cast<unsigned*>(y + dst) =
            *reinterpret_cast<const unsigned*>(tile + pp * RS + cv * 2);
      } else if constexpr (CONV >= 1) {  // rounded to tf32 (xconvt_wgmma reads it as is)
        const float f = __uint_as_float(tile[pp * RS + cv]);
        const unsigned big = xmma::to_tf32(f);
        y[dst] = big;
        if constexpr (CONV == 2)  // and the small half, XSMALL on
          y[a.XSMALL + dst] = xmma::to_tf32(f - __uint_as_float(big));
      } else {
        y[dst] = tile[pp * RS + cv];
      }
    }
  }
}
// Of E vectors v[i] (E = 16 / sizeof(U) values each: row i's E values), the
// transposed vector j (value j of each row) stored at d; CONV 1, 2: rounded
// to tf32, CONV 2 also the small halves at d + small (float bits only).
template <typename U, int CONV, typename I>
__device__ __forceinline__ void store_col(const uint4 (&v)[16 / sizeof(U)], int j, U* d,
                                          I small) {
  constexpr int E = 16 / sizeof(U);
  static_assert(CONV == 0 || E == 4, "tf32 rounding applies to 32-bit values");
  uint4 o;
  unsigned* ow = reinterpret_cast<unsigned*>(&o);
  if constexpr (E == 8) {  // 16-bit: word k = rows (2k, 2k + 1) at column j
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const unsigned lo = reinterpret_cast<const unsigned*>(&v[2 * k])[j >> 1];
      const unsigned hi = reinterpret_cast<const unsigned*>(&v[2 * k + 1])[j >> 1];
      ow[k] = __byte_perm(lo, hi, (j & 1) ? 0x7632 : 0x5410);
    }
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) ow[k] = reinterpret_cast<const unsigned*>(&v[k])[j];
  }
  if constexpr (CONV == 0) {
    *reinterpret_cast<uint4*>(d) = o;
  } else {
    uint4 sm;
    unsigned* sw = reinterpret_cast<unsigned*>(&sm);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float f = __uint_as_float(ow[k]);
      ow[k] = xmma::to_tf32(f);
      sw[k] = xmma::to_tf32(f - __uint_as_float(ow[k]));
    }
    *reinterpret_cast<uint4*>(d) = o;
    if constexpr (CONV == 2) *reinterpret_cast<uint4*>(d + small) = sm;
  }
}

// The same copy by 16-byte vectors (VEC 1), where x's rows are whole vectors
// (IW % E == 0, E = 16 / sizeof(U) values a vector, x 16-byte aligned: the
// host checks both) and the copy's channels whole vectors (CT: whole BK blocks
// a group, BK % E == 0).
// A warp unit is 8 x 4 lane vectors: 8 x E consecutive x positions (flat over
// d, h, w: x is contiguous along a channel's volume) by 4 x E copy channels;
// each lane loads E vectors (its E channels' E positions: a warp's load reads
// 128 contiguous bytes per channel), transposes them in registers and stores
// E vectors (its E positions' E channels: 4 lanes write 4 E contiguous
// channels of a position).  No shared memory, no bounds check within a
// vector.  The halo's zeros follow: one warp per padded row (n, pd, ph), all
// of it in a halo plane or row, else its LW leading and RW trailing
// positions.  Warps stride over both.
template <typename U, typename I, int CONV>
__device__ __forceinline__ void to_cl_vec_blocks(const U* __restrict__ x, U* __restrict__ y,
                                                 const xmma::MmaArgs& a, int bid, int nblocks) {
  constexpr int E = 16 / sizeof(U);
  const int lane = threadIdx.x & 31;
  const int wl = lane & 7, cl = lane >> 3;
  const int CP = a.CT / a.G;
  const I VOL = (I)a.ID * a.IH * a.IW;
  const I SP = (I)a.PD * a.PH * a.PW;
  const I pblocks = (VOL / E + 7) / 8;
  const int cunits = (a.CT / E + 3) / 4;
  const I units = (I)a.N * pblocks * cunits;
  const I w0 = (I)bid * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const I nw = (I)nblocks * (blockDim.x >> 5);
  for (I u = w0; u < units; u += nw) {
    const int cu = (int)(u % cunits);
    const I r = u / cunits;
    const I pb = r % pblocks;
    const int n = (int)(r / pblocks);
    const I p0 = (pb * 8 + wl) * E;  // this lane's first x position
    const int q0 = (cu * 4 + cl) * E;  // its first copy channel
    if (p0 >= VOL || q0 >= a.CT) continue;
    const int g = q0 / CP, cc0 = q0 - g * CP;
    const U* xs = x + ((I)n * a.Cin + g * a.Cig + cc0) * VOL + p0;
    uint4 v[E];  // v[i]: channel cc0 + i at the E positions
#pragma unroll
    for (int i = 0; i < E; ++i) {
      v[i] = make_uint4(0u, 0u, 0u, 0u);
      if (cc0 + i < a.Cig) v[i] = __ldg(reinterpret_cast<const uint4*>(xs + (I)i * VOL));
    }
    const int w = (int)(p0 % a.IW);
    const I rr = p0 / a.IW;
    const int h = (int)(rr % a.IH), d = (int)(rr / a.IH);
    U* yd = y + ((I)n * SP + ((I)(d + a.LD) * a.PH + h + a.LH) * a.PW + w + a.LW) * a.CT + q0;
#pragma unroll
    for (int j = 0; j < E; ++j) store_col<U, CONV>(v, j, yd + (I)j * a.CT, (I)a.XSMALL);
  }
  // the halo: zeros
  const I rows = (I)a.N * a.PD * a.PH;
  const int rowvec = a.PW * (a.CT / E);
  const int lead = a.LW * (a.CT / E), trail = (a.PW - a.LW - a.IW) * (a.CT / E);
  const uint4 z = make_uint4(0u, 0u, 0u, 0u);
  for (I r = w0; r < rows; r += nw) {
    const int ph = (int)(r % a.PH), pd = (int)((r / a.PH) % a.PD);
    const bool inner = pd >= a.LD && pd < a.LD + a.ID && ph >= a.LH && ph < a.LH + a.IH;
    const int nl = inner ? lead : rowvec, nt = inner ? trail : 0;
    U* yr = y + r * a.PW * a.CT;
    for (int k = lane; k < nl + nt; k += 32) {
      const int e = k < nl ? k : rowvec - nt + (k - nl);
      *reinterpret_cast<uint4*>(yr + (I)e * E) = z;
      if constexpr (CONV == 2) *reinterpret_cast<uint4*>(yr + a.XSMALL + (I)e * E) = z;
    }
  }
}
// xconvt_wgmma_pack's packing by 16-byte vectors (xconvt_wgmma_prep's VEC
// 2 and 3): the transposed convolution's w read plainly (wf 1), per group a
// matrix of Cig rows (K channels c) of Cog * K3 values j = o * K3 + k (the
// host checks Cog * K3 % E == 0, w 16-byte aligned, and every packed row
// offset a multiple of E: BK % E == 0).  A warp unit is 8 x 4 lane vectors:
// 8 E values j by 4 E channels c; a lane loads its E channels' E values j,
// transposes them (store_col) and stores per j the E channels at dst[tapoff[k]
// + g * gstride[k] + o * ostride[k] + c] (nothing for tapoff -1); channels
// past Cig store zeros into the row's padding.  Warps stride over the units.
template <typename U, typename I, int CONV>
__device__ __forceinline__ void wgmma_pack_vec_blocks(
    const U* __restrict__ src, const I* __restrict__ tapoff, const I* __restrict__ gstride,
    const I* __restrict__ ostride, U* __restrict__ dst, int G, int Cig, int Cog, int K3,
    I small, int bid, int nblocks) {
  constexpr int E = 16 / sizeof(U);
  const int lane = threadIdx.x & 31;
  const int wl = lane & 7, cl = lane >> 3;
  const int J = Cog * K3;
  const int junits = (J / E + 7) / 8, cunits = ((Cig + E - 1) / E + 3) / 4;
  const I units = (I)G * cunits * junits;
  const I w0 = (I)bid * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const I nw = (I)nblocks * (blockDim.x >> 5);
  for (I u = w0; u < units; u += nw) {
    const int ju = (int)(u % junits);
    const I r = u / junits;
    const int cu = (int)(r % cunits), g = (int)(r / cunits);
    const int j0 = (ju * 8 + wl) * E, c0 = (cu * 4 + cl) * E;
    if (j0 >= J || c0 >= Cig) continue;
    const U* s = src + ((I)g * Cig + c0) * J + j0;
    uint4 v[E];  // v[i]: channel c0 + i's values j0 .. j0 + E - 1
#pragma unroll
    for (int i = 0; i < E; ++i) {
      v[i] = make_uint4(0u, 0u, 0u, 0u);
      if (c0 + i < Cig) v[i] = __ldg(reinterpret_cast<const uint4*>(s + (I)i * J));
    }
#pragma unroll
    for (int jj = 0; jj < E; ++jj) {
      const int j = j0 + jj, o = j / K3, k = j - o * K3;
      const I base = tapoff[k];
      if (base >= 0)
        store_col<U, CONV>(v, jj, dst + base + g * gstride[k] + o * ostride[k] + c0, small);
    }
  }
}
// VEC 0: to_cl_blocks (any x), 1: to_cl_vec_blocks (the host checks its conditions)
template <typename U, typename I, int CONV, int VEC = 0>
__global__ void __launch_bounds__(256)
xconvt_mma_to_cl(const U* __restrict__ x, U* __restrict__ y, const xmma::MmaArgs a) {
  if constexpr (VEC)
    to_cl_vec_blocks<U, I, CONV>(x, y, a, blockIdx.x, gridDim.x);
  else
    to_cl_blocks<U, I, CONV>(x, y, a, blockIdx.x, gridDim.x);
}
// xconvt_wgmma_prep's pack arguments, passed by value as one struct (the host
// builds it as a NumPy structured scalar, cuda/mma.py PACK_FIELDS): fewer
// kernel arguments, a shorter launch from Python.
struct PackArgs {
  long long small, kstride, nstride;  // xconvt_wgmma_pack's small, kstride, nstride
  int Cig, Cog, K3, wf;               // its Cig, Cog, K3, wf
  int px, py, pz, pad;                // its grid (flattened here); pad: the struct's size
};
// xconvt_wgmma's two preparations in one launch: the first pb = px * py * pz
// blocks pack the weights (xconvt_wgmma_pack's grid, flattened: short, they
// start first), the other blocks copy x (xconvt_mma_to_cl's); the pack no
// longer waits for the copy nor costs a launch of its own.  tabs: the pack's
// three tables, each K3 long (tapoff, gstride, ostride).  VEC 1: the copy by
// vectors (to_cl_vec_blocks), 2: the pack by vectors (wgmma_pack_vec_blocks
// over pb = px blocks; py = pz = 1), 3: both.
template <typename U, typename I, int CONV, int VEC = 0>
__global__ void __launch_bounds__(256)
xconvt_wgmma_prep(const U* __restrict__ x, U* __restrict__ y, const xmma::MmaArgs a,
                  const U* __restrict__ src, const I* __restrict__ tabs, U* __restrict__ dst,
                  const PackArgs p) {
  const int pb = p.px * p.py * p.pz;
  const int b = blockIdx.x;
  const I* tapoff = tabs;
  const I* gstride = tabs + p.K3;
  const I* ostride = tabs + 2 * p.K3;
  if (b < pb) {
    if constexpr (VEC & 2)
      wgmma_pack_vec_blocks<U, I, CONV>(src, tapoff, gstride, ostride, dst, a.G, p.Cig, p.Cog,
                                        p.K3, (I)p.small, b, pb);
    else
      wgmma_pack_block<U, I, CONV>(src, tapoff, gstride, ostride, dst, p.Cig, p.Cog, p.K3,
                                   (I)p.small, (I)p.kstride, (I)p.nstride, p.wf, b % p.px,
                                   (b / p.px) % p.py, b / (p.px * p.py));
  } else if constexpr (VEC & 1) {
    to_cl_vec_blocks<U, I, CONV>(x, y, a, b - pb, gridDim.x - pb);
  } else {
    to_cl_blocks<U, I, CONV>(x, y, a, b - pb, gridDim.x - pb);
  }
}
// Packed weights straight from w: per K channel cc = g*Cig + c, 32 x 32 tiles
// of (o, kernel tap) through shared memory, read along the taps and written
// along o; element (g, c, o, k) is src[g*Cig*Cog*K3 + c*kstride + o*nstride +
// k] (K3 = kd*kh*kw): w [Cin][Cog][K3] (kstride Cog*K3, nstride K3) for the
// transposed convolution, w [G*Cog][Cig][K3] (kstride K3, nstride Cig*K3) for
// conv3d, whose K channels are w's second axis.  Kernel tap k goes to dst[tapoff[k] +
// g*gstride[k] + c*NP + o] (tapoff -1: a tap of no phase with outputs); the
// host zeroes dst first where channels or columns are padded.  CONV 0: bit
// copy; 1: float rounded to tf32; 2: also the small half tf32(v - big), at
// dst + small.  Grid (Cin, ceil(K3/32), ceil(Cog/32)).
template <typename U, typename I, int CONV>
__global__ void __launch_bounds__(256)
xconvt_mma_pack_t(const U* __restrict__ src, const I* __restrict__ tapoff,
                  const I* __restrict__ gstride, U* __restrict__ dst, int Cig, int Cog, int K3,
                  int NP, I small, I kstride, I nstride) {
  __shared__ U tile[32][33];
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  const int cc = blockIdx.x, k0 = blockIdx.y * 32, o0 = blockIdx.z * 32;
  const int g = cc / Cig, c = cc - g * Cig;
  const U* s = src + (I)g * Cig * Cog * K3 + (I)c * kstride;
#pragma unroll
  for (int j = ty; j < 32; j += 8) {
    const int o = o0 + j, k = k0 + tx;
    tile[j][tx] = (o < Cog && k < K3) ? s[(I)o * nstride + k] : (U)0;
  }
  __syncthreads();
#pragma unroll
  for (int j = ty; j < 32; j += 8) {
    const int k = k0 + j, o = o0 + tx;
    if (k < K3 && o < Cog) {
      const I base = tapoff[k];
      if (base >= 0) {
        const I d = base + g * gstride[k] + (I)c * NP + o;
        const U v = tile[tx][j];
        if constexpr (CONV == 0) {
          dst[d] = v;
        } else {
          const float f = __uint_as_float(v);
          const unsigned big = xmma::to_tf32(f);
          dst[d] = big;
          if constexpr (CONV == 2) dst[small + d] = xmma::to_tf32(f - __uint_as_float(big));
        }
      }
    }
  }
}
