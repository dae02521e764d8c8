// The depth-to-space shuffle of one-tap transposed convolutions
// (xconvt/backends/cuda/shuffle.py): with T = SD * SH * SW,
//   out[b][od][oh][ow] = y[b * T + ((od % SD) * SH + oh % SH) * SW + ow % SW]
//                         [od / SD][oh / SH][ow / SW]
// for b = n * C + c; y is (N, C * T, D, H, W), out (N, C, D * SD, H * SH,
// W * SW), both contiguous.  T is the element's bits (a copy).  Block row y
// walks the output planes (b, od); x the plane's OH * OW elements (int).
#include "common.cuh"

template <typename T, typename I>
__global__ void __launch_bounds__(256)
xconvt_shuffle(const T* __restrict__ y, T* __restrict__ out, I planes, int D, int H, int W,
               int SD, int SH, int SW) {
  const int OW = W * SW, per = H * SH * OW;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= per) return;
  const int oh = j / OW, ow = j - oh * OW;
  const int h = oh / SH, w = ow / SW;
  const int sub = (oh - h * SH) * SW + (ow - w * SW);
  const I HW = (I)H * W;
  for (I p = blockIdx.y; p < planes; p += gridDim.y) {
    const I b = p / (D * SD);
    const int od = (int)(p - b * (D * SD));
    const int d = od / SD;
    const I src = ((b * SD * SH * SW + (I)(od - d * SD) * SH * SW + sub) * D + d) * HW +
                  (I)h * W + w;
    out[p * per + j] = y[src];
  }
}
