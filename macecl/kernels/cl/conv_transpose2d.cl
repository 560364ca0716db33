/*
 * conv_transpose2d.cl: 2-D transposed convolution (ONNX ConvTranspose), NCHW.
 *
 * Build options:
 *   -DHAS_BIAS          add bias[c_out]; without it the bias argument is unused and may be NULL
 *   -DACTIVATION=<n>    fused activation, a UNARY_* code of common.h (default 0, none)
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
 *   Global size >= N * C_out * OH * OW.
 *
 * Each work item gathers: it visits the taps that could have scattered into its output pixel
 * and keeps those whose input coordinate is integral and in range. No atomics, no zero-fill.
 */

#include "common.h"

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
    const int gid = get_global_id(0);
    if (gid >= N * C_out * OH * OW) return;

    const int ow = gid % OW;
    const int oh = (gid / OW) % OH;
    const int co = (gid / (OW * OH)) % C_out;
    const int n = gid / (OW * OH * C_out);

    const int cout_per_group = C_out / groups;
    const int cin_per_group = C_in / groups;
    const int ci0 = (co / cout_per_group) * cin_per_group;
    const int co_in_group = co % cout_per_group;

    float acc = 0.0f;
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
            for (int ci = 0; ci < cin_per_group; ++ci) {
                const float x = input[((n * C_in + ci0 + ci) * H + ih) * W + iw];
                const float w =
                    filter[(((ci0 + ci) * cout_per_group + co_in_group) * KH + kh) * KW + kw];
                acc += x * w;
            }
        }
    }
#ifdef HAS_BIAS
    acc += bias[co];
#endif
    output[gid] = ACTIVATE(acc, act_a, act_b);
}
