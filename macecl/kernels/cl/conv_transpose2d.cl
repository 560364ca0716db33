/*
 * conv_transpose2d.cl: 2-D transposed convolution (ONNX ConvTranspose), NCHW.
 *
 * Build options:
 *   -DHAS_BIAS          add bias[c_out]; without it the bias argument is unused and may be NULL
 *   -DACTIVATION=<n>    fused activation, a UNARY_* code of common.h (default 0, none)
 *   -DCO_BLOCK=<n>      output channels per work item (default 8); the host takes 1 for one
 *                       channel per group, which 8 would compute 8 times over
 *
 * Kernel (same argument list as conv2d):
 *   conv_transpose2d(input, filter, bias, output,
 *                    N, C_in, H, W, C_out, OH, OW, KH, KW,
 *                    stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, groups,
 *                    act_a, act_b)
 *     input (N, C_in, H, W); filter (C_in, C_out / groups, KH, KW) as ONNX stores it;
 *     bias (C_out); output (N, C_out, OH, OW). Bottom/right pads and output_padding only
 *     shape the output, so they come in through OH and OW:
 *       OH = stride_h * (H - 1) + output_padding_h + dil_h * (KH - 1) + 1 - pad_top - pad_bottom.
 *   Global size (OW, OH, N * groups * ceil(C_out / groups / CO_BLOCK)).
 *
 * Each work item gathers: it visits the taps that could have scattered into its output pixel
 * and keeps those whose input coordinate is integral and in range. No atomics, no zero-fill.
 * It computes CO_BLOCK output channels of one group at once, so each input value it reads
 * feeds CO_BLOCK multiply-adds.
 */

#include "common.h"

#ifndef CO_BLOCK
#define CO_BLOCK 8
#endif

__kernel void conv_transpose2d(__global const float* input,
                               __global const float* filter,
                               __global const float* bias,
                               __global float* output,
                               const int N, const int C_in, const int H, const int W,
                               const int C_out, const int OH, const int OW,
                               const int KH, const int KW,
                               const int stride_h, const int stride_w,
                               const int dil_h, const int dil_w,
                               const int pad_top, const int pad_left,
                               const int groups,
                               const float act_a, const float act_b)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int z = get_global_id(2);  /* (n * groups + g) * channel_blocks + channel block */
    const int cout_per_group = C_out / groups;
    const int channel_blocks = (cout_per_group + CO_BLOCK - 1) / CO_BLOCK;
    if (ow >= OW || oh >= OH || z >= N * groups * channel_blocks) return;

    const int m0 = (z % channel_blocks) * CO_BLOCK;
    const int g = (z / channel_blocks) % groups;
    const int n = z / (channel_blocks * groups);
    const int cin_per_group = C_in / groups;
    const int ci0 = g * cin_per_group;
    const int taps = KH * KW;
    /* filter (C_in, C_out / groups, KH, KW): channel m of the block is m0 + j, clamped so
       the loop has no branch (rows past the group are computed, never stored) */
    int rows[CO_BLOCK];
    for (int j = 0; j < CO_BLOCK; ++j) rows[j] = min(m0 + j, cout_per_group - 1) * taps;

    float acc[CO_BLOCK];
    for (int j = 0; j < CO_BLOCK; ++j) acc[j] = 0.0f;
    for (int kh = 0; kh < KH; ++kh) {
        /* oh = ih * stride_h - pad_top + kh * dil_h, solved for ih */
        const int sh = oh + pad_top - kh * dil_h;
        /* test the sign first: % of a negative int is negative in C, never a false hit */
        if (sh < 0 || sh % stride_h != 0) continue;
        const int ih = sh / stride_h;
        if (ih >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int sw = ow + pad_left - kw * dil_w;
            if (sw < 0 || sw % stride_w != 0) continue;
            const int iw = sw / stride_w;
            if (iw >= W) continue;
            const int tap = kh * KW + kw;
            for (int ci = 0; ci < cin_per_group; ++ci) {
                const float x = input[(((size_t)n * C_in + ci0 + ci) * H + ih) * W + iw];
                __global const float* w =
                    filter + (size_t)(ci0 + ci) * cout_per_group * taps + tap;
                for (int j = 0; j < CO_BLOCK; ++j) acc[j] += x * w[rows[j]];
            }
        }
    }
    for (int j = 0; j < CO_BLOCK && m0 + j < cout_per_group; ++j) {
        const int co = g * cout_per_group + m0 + j;
        float y = acc[j];
#ifdef HAS_BIAS
        y += bias[co];
#endif
        output[(((size_t)n * C_out + co) * OH + oh) * OW + ow] = ACTIVATE(y, act_a, act_b);
    }
}
