/*
 * lrn.cl: ONNX LRN (local response normalization across channels), NCHW.
 *
 * Build options:
 *   -DVW=<4|8|16>   pixels per work item, one float vector (vector.h; default 4)
 *
 * Kernels (the same arguments; ops/normalization.py takes lrn_pixels on a CPU, lrn on a
 * GPU, which wants its many small work items):
 *   lrn(input, output, N, C, H, W, size, alpha, beta, bias)
 *     y = x / (bias + alpha / size * square_sum) ^ beta, where square_sum adds x^2 over the
 *     channels [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)] that exist.
 *     One float a work item; global size >= N * C * H * W.
 *   lrn_pixels(input, output, N, C, H, W, size, alpha, beta, bias)
 *     lrn, each work item taking VW neighbouring pixels of one image through every channel
 *     (a last block steps back to end at H * W, recomputing its neighbour's values; a plane
 *     smaller than VW goes lane by lane). 2-D NDRange (ceil(H * W / VW), N).
 *
 * lrn, with its pow call each, took 52 ns a float on PoCL: the light
 * inception_v1's two LRNs (192 x 55 x 55 and 64 x 55 x 55) 30.4 and 10.2 ms of its 53.8 ms
 * of kernels. A vector of pixels, whole loads and one exp and one log call a vector: 1.44
 * and 0.48 ms (with a vector pow call instead: 5.8 and 2.0 ms).
 */

#include "common.h"
#include "vector.h"

/* VW pixels of a channel plane from `plane`, the first `lanes` of them (zeros past) */
inline floatv lrn_load(__global const float* plane, const int lanes)
{
    if (lanes == VW) return LOADV(plane);
    float lane[VW];
    for (int i = 0; i < VW; ++i) lane[i] = i < lanes ? plane[i] : 0.0f;
    return LOADV_PRIVATE(lane);
}

__kernel void lrn_pixels(__global const float* input,
                         __global float* output,
                         const int N, const int C, const int H, const int W,
                         const int size,
                         const float alpha, const float beta, const float bias)
{
    const int HW = H * W;
    const int block = get_global_id(0);
    const int n = get_global_id(1);
    if (block * VW >= HW || n >= N) return;
    const int p0 = HW < VW ? 0 : MIN_I(block * VW, HW - VW);
    const int lanes = MIN_I(VW, HW - p0);
    __global const float* x = input + (size_t)n * C * HW + p0;
    __global float* y = output + (size_t)n * C * HW + p0;
    const int before = (size - 1) / 2, after = size / 2;  /* after == ceil((size - 1) / 2) */
    const float scale = alpha / (float)size;
    for (int c = 0; c < C; ++c) {
        const int lo = c - before < 0 ? 0 : c - before;
        const int hi = c + after > C - 1 ? C - 1 : c + after;
        floatv square_sum = (floatv)(0.0f);
        for (int k = lo; k <= hi; ++k) {
            const floatv v = lrn_load(x + (size_t)k * HW, lanes);
            square_sum += v * v;
        }
        /* d ^ -beta as exp(-beta log d): PoCL's vector exp and log, where pow took 0.75 of
           the kernel's time (d > 0 for a positive bias; with bias 0 and no signal, x / 0 as
           pow gave) */
        const floatv result = lrn_load(x + (size_t)c * HW, lanes) *
                              exp(-beta * log(bias + scale * square_sum));
        if (lanes == VW) {
            STOREV(y + (size_t)c * HW, result);
        } else {
            float lane[VW];
            STOREV_PRIVATE(lane, result);
            for (int i = 0; i < lanes; ++i) y[(size_t)c * HW + i] = lane[i];
        }
    }
}

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
