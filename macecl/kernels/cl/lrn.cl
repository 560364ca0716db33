/*
 * lrn.cl: ONNX LRN (local response normalization across channels), NCHW.
 *
 * Build options: none.
 *
 * Kernel:
 *   lrn(input, output, N, C, H, W, size, alpha, beta, bias)
 *     y = x / (bias + alpha / size * square_sum) ^ beta, where square_sum adds x^2 over the
 *     channels [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)] that exist.
 *     Global size >= N * C * H * W.
 */

#include "common.h"

__kernel void lrn(__global const float* input,
                  __global float* output,
                  const int N, const int C, const int H, const int W,
                  const int size,
                  const float alpha, const float beta, const float bias)
{
    const int gid = get_global_id(0);
    const int HW = H * W;
    if (gid >= N * C * HW) return;
    const int c = (gid / HW) % C;
    const int c_lo = max(c - (size - 1) / 2, 0);
    const int c_hi = min(c + size / 2, C - 1);  /* size / 2 == ceil((size - 1) / 2) */
    /* gid - c * HW is the same pixel in channel 0 of this image */
    __global const float* pixel = input + gid - c * HW;

    float square_sum = 0.0f;
    for (int k = c_lo; k <= c_hi; ++k) {
        const float v = pixel[k * HW];
        square_sum += v * v;
    }
    output[gid] = input[gid] / pow(bias + alpha / (float)size * square_sum, beta);
}
