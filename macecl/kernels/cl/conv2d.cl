/*
 * conv2d.cl: general 2-D convolution (ONNX Conv), NCHW.
 *
 * Build options:
 *   -DHAS_BIAS          add bias[c_out]; without it the bias argument is unused and may be NULL
 *   -DACTIVATION=<n>    fused activation, a UNARY_* code of common.h (default 0, none)
 *
 * Kernel:
 *   conv2d(input, filter, bias, output,
 *          N, C_in, H, W, C_out, OH, OW, KH, KW,
 *          stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, groups,
 *          act_a, act_b)
 *     input (N, C_in, H, W); filter (C_out, C_in / groups, KH, KW); bias (C_out);
 *     output (N, C_out, OH, OW). Depthwise is groups = C_in (= C_out / multiplier).
 *     Bottom/right pads only shape the output, so they come in through OH and OW:
 *       OH = (H + pad_top + pad_bottom - dil_h * (KH - 1) - 1) / stride_h + 1.
 *     act_a, act_b: the activation's float parameters (see common.h).
 *   Global size >= N * C_out * OH * OW.
 */

#include "common.h"

__kernel void conv2d(__global const float* input,
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

    const int cin_per_group = C_in / groups;
    const int ci0 = (co / (C_out / groups)) * cin_per_group;
    const int ih0 = oh * stride_h - pad_top;
    const int iw0 = ow * stride_w - pad_left;

    float acc = 0.0f;
    for (int ci = 0; ci < cin_per_group; ++ci) {
        __global const float* in_plane = input + (n * C_in + ci0 + ci) * H * W;
        __global const float* taps = filter + (co * cin_per_group + ci) * KH * KW;
        for (int kh = 0; kh < KH; ++kh) {
            const int ih = ih0 + kh * dil_h;
            if (ih < 0 || ih >= H) continue;  /* zero padding contributes nothing */
            for (int kw = 0; kw < KW; ++kw) {
                const int iw = iw0 + kw * dil_w;
                if (iw < 0 || iw >= W) continue;
                acc += in_plane[ih * W + iw] * taps[kh * KW + kw];
            }
        }
    }
#ifdef HAS_BIAS
    acc += bias[co];
#endif
    output[gid] = ACTIVATE(acc, act_a, act_b);
}
