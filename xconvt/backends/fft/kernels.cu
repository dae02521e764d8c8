// Kernels of the one-pass CuPy FFT (xconvt/backends/fft/one_pass.py).
#include "common.cuh"

// ---------------------------------------------------------------------------
// Helpers of the FFT path on CuPy (xconvt/backends/fft/one_pass.py): every
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
