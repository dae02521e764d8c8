// conv3d by FMA straight from the definition, for layers with few channels
// per group (xconvt/backends/cuda/conv3d.py):
//
//   x[n, g*Cx + c, i] = b[g*Cx + c] + sum_{o < Cy, k} w[g*Cx + c, o, k] *
//                       y[n, g*Cy + o, i*s + k*d - p]      (y zero outside)
//
// A thread computes COB output channels (c0 .. c0 + COB) at WB neighbouring
// positions along W of one (n, id, ih) row: per (o, kd, kh, kw) it loads WB
// values of y (through L1: neighbouring threads and taps read overlapping
// rows) and the COB weights (a broadcast from shared memory, where the block
// stages its channel block's weights as [o][k][c]), then COB x WB FMAs.
// Every tap of the kernel is a real one (no stride zeros), and y is read in
// place (no copy).  Block: 128 threads over (id, ih, W tiles) of one (n, g,
// channel block) (grid.y).  T: storage and arithmetic type (float, double).
#include "common.cuh"

namespace xconvt {
// groups, x channels per group, y channels per group; x (the result) and y
// sizes; kernel; stride, padding, dilation; channel blocks per group, W
// tiles per row, whether there is a bias
struct Conv3dArgs {
  int G, Cx, Cy;
  int ID, IH, IW, OD, OH, OW;
  int KD, KH, KW;
  int sd, sh, sw, pd, ph, pw, dd, dh, dw;
  int ncb, wtiles, has_bias;
};
}  // namespace xconvt

template <typename T, int COB, int WB>
__global__ void __launch_bounds__(128)
xconvt_conv3d_fma(const T* __restrict__ y, const T* __restrict__ w,
                  const T* __restrict__ bias, T* __restrict__ x, const xconvt::Conv3dArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* const ws = reinterpret_cast<T*>(smem_raw);  // [o][k][c], COB channels
  const int K3 = a.KD * a.KH * a.KW;
  int z = blockIdx.y;
  const int cb = z % a.ncb;
  z /= a.ncb;
  const int g = z % a.G;
  const int n = z / a.G;
  const int c0 = cb * COB;
  // the channel block's weights: ws[(o*K3 + k)*COB + c] = w[g*Cx + c0 + c][o][k]
  for (int q = threadIdx.x; q < a.Cy * K3 * COB; q += blockDim.x) {
    const int c = q % COB, ok = q / COB;
    ws[q] = (c0 + c < a.Cx) ? w[((long long)(g * a.Cx + c0 + c) * a.Cy) * K3 + ok] : T(0);
  }
  __syncthreads();

  const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long rows = (long long)a.ID * a.IH * a.wtiles;
  if (t >= rows) return;
  const int wt = (int)(t % a.wtiles);
  const int ih = (int)((t / a.wtiles) % a.IH);
  const int id = (int)(t / ((long long)a.wtiles * a.IH));
  const int iw0 = wt * WB;

  T acc[COB][WB];
#pragma unroll
  for (int c = 0; c < COB; ++c)
#pragma unroll
    for (int j = 0; j < WB; ++j) acc[c][j] = T(0);

  const long long OV = (long long)a.OD * a.OH * a.OW;
  const T* yg = y + ((long long)n * a.G + g) * a.Cy * OV;
  const int zw0 = iw0 * a.sw - a.pw;
  for (int o = 0; o < a.Cy; ++o) {
    const T* yo = yg + o * OV;
    const T* wo = ws + o * K3 * COB;
    for (int kd = 0; kd < a.KD; ++kd) {
      const int zd = id * a.sd + kd * a.dd - a.pd;
      if (zd < 0 || zd >= a.OD) continue;
      for (int kh = 0; kh < a.KH; ++kh) {
        const int zh = ih * a.sh + kh * a.dh - a.ph;
        if (zh < 0 || zh >= a.OH) continue;
        const T* row = yo + ((long long)zd * a.OH + zh) * a.OW;
        const T* wk = wo + (kd * a.KH + kh) * a.KW * COB;
#pragma unroll 2
        for (int kw = 0; kw < a.KW; ++kw) {
          T v[WB];
#pragma unroll
          for (int j = 0; j < WB; ++j) {
            const int zw = zw0 + j * a.sw + kw * a.dw;
            v[j] = (zw >= 0 && zw < a.OW) ? __ldg(row + zw) : T(0);
          }
#pragma unroll
          for (int c = 0; c < COB; ++c) {
            const T wv = wk[kw * COB + c];
#pragma unroll
            for (int j = 0; j < WB; ++j) acc[c][j] += wv * v[j];
          }
        }
      }
    }
  }

  const long long IV = (long long)a.ID * a.IH * a.IW;
  T* const xr = x + ((long long)n * a.G * a.Cx + g * a.Cx + c0) * IV +
                ((long long)id * a.IH + ih) * a.IW + iw0;
#pragma unroll
  for (int c = 0; c < COB; ++c) {
    if (c0 + c >= a.Cx) break;
    const T b = a.has_bias ? bias[g * a.Cx + c0 + c] : T(0);
#pragma unroll
    for (int j = 0; j < WB; ++j)
      if (iw0 + j < a.IW) xr[c * IV + j] = acc[c][j] + b;
  }
}
