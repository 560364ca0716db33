/*
 * pooling.cl: 2-D MaxPool / AveragePool and global pooling (ONNX semantics), NCHW.
 *
 * Build options: none.
 *
 * Kernels:
 *   max_pool2d(input, output, N, C, H, W, OH, OW, KH, KW,
 *              stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
 *   avg_pool2d(input, output, N, C, H, W, OH, OW, KH, KW,
 *              stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, pad_bottom, pad_right,
 *              count_include_pad)
 *     input (N, C, H, W), output (N, C, OH, OW); global size >= N * C * OH * OW.
 *     The caller computes OH / OW, ceil_mode included. The average divides by the number of
 *     taps inside the input (count_include_pad = 0) or inside the padded input
 *     [-pad_top, H + pad_bottom) x [-pad_left, W + pad_right) (count_include_pad = 1): with
 *     ceil_mode a last window may hang past the padding too, and those taps never count,
 *     as PyTorch does. Use dil = 1 for an AveragePool without dilations.
 *     A max window that holds no input tap at all gives -inf; one that holds a NaN gives NaN.
 *   global_avg_pool(input, output, NC, HW)
 *   global_max_pool(input, output, NC, HW)
 *     input viewed as (NC, HW), output (NC); one work item per channel plane.
 */

#include "common.h"

__kernel void max_pool2d(__global const float* input,
                         __global float* output,
                         const int N, const int C, const int H, const int W,
                         const int OH, const int OW, const int KH, const int KW,
                         const int stride_h, const int stride_w,
                         const int dil_h, const int dil_w,
                         const int pad_top, const int pad_left)
{
    const int gid = get_global_id(0);
    if (gid >= N * C * OH * OW) return;

    const int ow = gid % OW;
    const int oh = (gid / OW) % OH;
    const int nc = gid / (OW * OH);
    __global const float* plane = input + nc * H * W;
    const int ih0 = oh * stride_h - pad_top;
    const int iw0 = ow * stride_w - pad_left;

    float best = -INFINITY;
    for (int kh = 0; kh < KH; ++kh) {
        const int ih = ih0 + kh * dil_h;
        if (ih < 0 || ih >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int iw = iw0 + kw * dil_w;
            if (iw < 0 || iw >= W) continue;
            const float v = plane[ih * W + iw];
            best = isnan(v) || v > best ? v : best;  /* NaN wins, as in ReduceMax */
        }
    }
    output[gid] = best;
}

__kernel void avg_pool2d(__global const float* input,
                         __global float* output,
                         const int N, const int C, const int H, const int W,
                         const int OH, const int OW, const int KH, const int KW,
                         const int stride_h, const int stride_w,
                         const int dil_h, const int dil_w,
                         const int pad_top, const int pad_left,
                         const int pad_bottom, const int pad_right,
                         const int count_include_pad)
{
    const int gid = get_global_id(0);
    if (gid >= N * C * OH * OW) return;

    const int ow = gid % OW;
    const int oh = (gid / OW) % OH;
    const int nc = gid / (OW * OH);
    __global const float* plane = input + nc * H * W;
    const int ih0 = oh * stride_h - pad_top;
    const int iw0 = ow * stride_w - pad_left;

    /* Taps that count toward the divisor lie in [lo, hi) on each axis. */
    const int h_lo = count_include_pad ? -pad_top : 0;
    const int h_hi = count_include_pad ? H + pad_bottom : H;
    const int w_lo = count_include_pad ? -pad_left : 0;
    const int w_hi = count_include_pad ? W + pad_right : W;

    float sum = 0.0f;
    int rows = 0;
    int cols = 0;
    for (int kh = 0; kh < KH; ++kh) {
        const int ih = ih0 + kh * dil_h;
        rows += (ih >= h_lo && ih < h_hi);
        if (ih < 0 || ih >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int iw = iw0 + kw * dil_w;
            if (iw < 0 || iw >= W) continue;
            sum += plane[ih * W + iw];
        }
    }
    /* The counted region is a box, so its tap count is rows * cols. */
    for (int kw = 0; kw < KW; ++kw) {
        const int iw = iw0 + kw * dil_w;
        cols += (iw >= w_lo && iw < w_hi);
    }
    const int count = rows * cols;
    output[gid] = count > 0 ? sum / (float)count : 0.0f;
}

__kernel void global_avg_pool(__global const float* input,
                              __global float* output,
                              const int NC, const int HW)
{
    const int gid = get_global_id(0);
    if (gid >= NC) return;
    __global const float* plane = input + gid * HW;
    float sum = 0.0f;
    for (int i = 0; i < HW; ++i) sum += plane[i];
    output[gid] = sum / (float)HW;
}

__kernel void global_max_pool(__global const float* input,
                              __global float* output,
                              const int NC, const int HW)
{
    const int gid = get_global_id(0);
    if (gid >= NC) return;
    __global const float* plane = input + gid * HW;
    float best = -INFINITY;
    for (int i = 0; i < HW; ++i) best = isnan(plane[i]) || plane[i] > best ? plane[i] : best;
    output[gid] = best;
}
