/*
 * pooling.cl: 2-D MaxPool / AveragePool and global pooling (ONNX semantics), NCHW.
 *
 * Build options: -DVW=<4|8|16> (global pools: floats per vector load; default 4).
 *
 * Kernels:
 *   max_pool2d(input, output, N, C, H, W, OH, OW, KH, KW,
 *              stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
 *   avg_pool2d(input, output, N, C, H, W, OH, OW, KH, KW,
 *              stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, pad_bottom, pad_right,
 *              count_include_pad)
 *     input (N, C, H, W), output (N, C, OH, OW); a 3-D NDRange (OW, OH, N * C), one work
 *     item per output pixel, its row and plane from the second and third ids.
 *     The caller computes OH / OW, ceil_mode included. The average divides by the number of
 *     taps inside the input (count_include_pad = 0) or inside the padded input
 *     [-pad_top, H + pad_bottom) x [-pad_left, W + pad_right) (count_include_pad = 1): with
 *     ceil_mode a last window may hang past the padding too, and those taps never count,
 *     as PyTorch does. Use dil = 1 for an AveragePool without dilations.
 *     A max window that holds no input tap at all gives -inf; one that holds a NaN gives NaN.
 *   global_avg_pool(input, output, NC, HW)
 *   global_max_pool(input, output, NC, HW)
 *     input viewed as (NC, HW), output (NC); one work item per channel plane, read in float
 *     vectors of VW (-DVW, vector.h).
 */

#include "common.h"
#include "vector.h"

/* The first tap k (of a window starting at i0, taps dil apart) with i0 + k * dil >= 0. */
int taps_from(const int i0, const int dil)
{
    return i0 < 0 ? (-i0 + dil - 1) / dil : 0;
}

/* One past the last tap k < K with i0 + k * dil < size. */
int taps_to(const int i0, const int dil, const int K, const int size)
{
    return i0 >= size ? 0 : MIN_I(K, (size - i0 + dil - 1) / dil);
}

__kernel void max_pool2d(__global const float* input,
                         __global float* output,
                         const int N, const int C, const int H, const int W,
                         const int OH, const int OW, const int KH, const int KW,
                         const int stride_h, const int stride_w,
                         const int dil_h, const int dil_w,
                         const int pad_top, const int pad_left)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);
    if (ow >= OW || oh >= OH || nc >= N * C) return;
    const int at = (nc * OH + oh) * OW + ow;
    __global const float* plane = input + nc * H * W;
    const int ih0 = oh * stride_h - pad_top;
    const int iw0 = ow * stride_w - pad_left;

    /* The taps inside the input, found once, so that the loops below test nothing; a window
       wholly inside (most of them) skips the divisions that finding them takes. */
    const bool inside = ih0 >= 0 && ih0 + (KH - 1) * dil_h < H
                        && iw0 >= 0 && iw0 + (KW - 1) * dil_w < W;
    const int kh_lo = inside ? 0 : taps_from(ih0, dil_h);
    const int kh_hi = inside ? KH : taps_to(ih0, dil_h, KH, H);
    const int kw_lo = inside ? 0 : taps_from(iw0, dil_w);
    const int kw_hi = inside ? KW : taps_to(iw0, dil_w, KW, W);
    float best = -INFINITY;
    for (int kh = kh_lo; kh < kh_hi; ++kh) {
        __global const float* row = plane + (ih0 + kh * dil_h) * W + iw0;
        for (int kw = kw_lo; kw < kw_hi; ++kw) {
            const float v = row[kw * dil_w];
            /* NaN wins, as in ReduceMax; v != v is isnan() without the builtin call that
               vector.h's NOTE is about */
            best = v != v || v > best ? v : best;
        }
    }
    output[at] = best;
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
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);
    if (ow >= OW || oh >= OH || nc >= N * C) return;
    const int at = (nc * OH + oh) * OW + ow;
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
    output[at] = count > 0 ? sum / (float)count : 0.0f;
}

__kernel void global_avg_pool(__global const float* input,
                              __global float* output,
                              const int NC, const int HW)
{
    const int gid = get_global_id(0);
    if (gid >= NC) return;
    __global const float* plane = input + (size_t)gid * HW;
    const int whole = HW - HW % VW;
    floatv sums = (floatv)(0.0f);
    for (int i = 0; i < whole; i += VW) sums += LOADV(plane + i);
    float sum = lanes_sum(sums);
    for (int i = whole; i < HW; ++i) sum += plane[i];
    output[gid] = sum / (float)HW;
}

__kernel void global_max_pool(__global const float* input,
                              __global float* output,
                              const int NC, const int HW)
{
    const int gid = get_global_id(0);
    if (gid >= NC) return;
    __global const float* plane = input + (size_t)gid * HW;
    const int whole = HW - HW % VW;
    floatv bests = (floatv)(-INFINITY);
    for (int i = 0; i < whole; i += VW) {
        const floatv v = LOADV(plane + i);
        bests = ((v != v) | (v > bests)) ? v : bests;  /* NaN wins, as in ReduceMax */
    }
    float lanes[VW];
    STOREV_PRIVATE(lanes, bests);
    float best = -INFINITY;
    for (int i = 0; i < VW; ++i) best = lanes[i] != lanes[i] || lanes[i] > best ? lanes[i] : best;
    for (int i = whole; i < HW; ++i)
        best = plane[i] != plane[i] || plane[i] > best ? plane[i] : best;
    output[gid] = best;
}
