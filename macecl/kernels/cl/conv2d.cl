/*
 * conv2d.cl: 2-D convolution (ONNX Conv), NCHW, as register-blocked GEMMs plus a depthwise
 * kernel. ops/conv.py picks the kernels: a 1x1 stride-1 unpadded convolution is one
 * `conv2d_gemm` straight on the input; any other convolution is `im2col` then
 * `conv2d_gemm`; a depthwise one (one input channel per group) is `depthwise_conv2d`.
 *
 * Build options:
 *   -DVW=<4|8|16>       output pixels per work item, one float vector (default 4); the host
 *                       takes the device's preferred float vector width
 *   -DHAS_BIAS          add bias[c_out]; without it the bias argument is unused and may be NULL
 *   -DHAS_RESIDUAL      add residual[same index as the output] (a fused ONNX Add), before
 *                       the activation, as ResNet's Add -> Relu order needs; else may be NULL
 *   -DACTIVATION=<n>    fused activation, a UNARY_* code of common.h (default 0, none)
 *
 * Kernels (every dimension guarded by the sizes passed, so any work-group shape is correct):
 *   im2col(input, cols, C, H, W, OH, OW, KH, KW, stride_h, stride_w, dil_h, dil_w,
 *          pad_top, pad_left, rows)
 *     input (N, C, H, W) -> cols (N, C * KH * KW, OH * OW), zero where the window hangs
 *     over the padding. Global size (OW, OH, rows) with rows = N * C * KH * KW.
 *   conv2d_gemm(filter, cols, bias, residual, output, M, K, P, groups, batch_groups,
 *               act_a, act_b)
 *     For each of batch_groups = N * groups (image n, group g):
 *       output[n, g*M + m, p] = act(sum_k filter[g*M + m, k] * cols[n, g*K + k, p]
 *                                   + bias[g*M + m] + residual[n, g*M + m, p])
 *     filter (groups * M, K) is the ONNX weight (C_out, C_in / groups, KH, KW) as it lies;
 *     cols (N, groups * K, P); output and residual (N, groups * M, P). Each work item
 *     computes CO_BLOCK output channels by VW pixels. Global size (ceil(P / VW),
 *     ceil(M / CO_BLOCK), batch_groups).
 *   depthwise_conv2d(input, filter, bias, residual, output, C_in, H, W, C_out, OH, OW,
 *                    KH, KW, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, batch_out,
 *                    act_a, act_b)
 *     groups = C_in; output channel c reads input channel c / (C_out / C_in). Each work item
 *     computes VW pixels of one output row. Global size (ceil(OW / VW), OH, N * C_out) with
 *     batch_out = N * C_out.
 *   Bottom/right pads only shape the output, so they come in through OH and OW:
 *     OH = (H + pad_top + pad_bottom - dil_h * (KH - 1) - 1) / stride_h + 1.
 */

#include "common.h"

#ifndef VW
#define VW 4
#endif
#define CO_BLOCK 8

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define floatv CAT(float, VW)
#define vloadv CAT(vload, VW)
#define vstorev CAT(vstore, VW)

/* bias, residual and activation of VW outputs starting at out[0] (channel co), then stored */
inline void conv_epilogue(floatv acc, const int lanes, const int co, const size_t at,
                          __global const float* bias, __global const float* residual,
                          __global float* output, const float act_a, const float act_b)
{
#ifdef HAS_BIAS
    acc += (floatv)(bias[co]);
#endif
    float lane[VW];
    vstorev(acc, 0, lane);
    for (int i = 0; i < lanes; ++i) {
        float y = lane[i];
#ifdef HAS_RESIDUAL
        y += residual[at + i];
#endif
        output[at + i] = ACTIVATE(y, act_a, act_b);
    }
}

/* VW inputs of one image row: row[iw + i * stride] for lane i, zero outside [0, W). `inside`
   says every lane is in the row, which makes strides 1 and 2 whole-vector loads. */
inline floatv load_row(__global const float* row, const int iw, const int stride, const int W,
                       const int lanes, const bool inside)
{
    if (inside && stride == 1)
        return vloadv(0, row + iw);
    if (inside && stride == 2) {
        const floatv a = vloadv(0, row + iw);
        const floatv b = vloadv(0, row + iw + VW);  /* inside: the last lane's column < W */
        return (floatv)(a.even, b.even);
    }
    float lane[VW];
    for (int i = 0; i < VW; ++i) {
        const int at = iw + i * stride;
        lane[i] = (i < lanes && at >= 0 && at < W) ? row[at] : 0.0f;
    }
    return vloadv(0, lane);
}

__kernel void im2col(__global const float* input,
                     __global float* cols,
                     const int C, const int H, const int W, const int OH, const int OW,
                     const int KH, const int KW,
                     const int stride_h, const int stride_w,
                     const int dil_h, const int dil_w,
                     const int pad_top, const int pad_left,
                     const int rows)
{
    /* one output pixel (ow, oh) of one cols row (n, c, kh, kw): dimension 0 runs along a
       row of the image, so neighbouring work items read and write neighbouring floats */
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int z = get_global_id(2);  /* n * C * KH * KW + (c * KH + kh) * KW + kw */
    if (ow >= OW || oh >= OH || z >= rows) return;
    const int kw = z % KW;
    const int kh = (z / KW) % KH;
    const int nc = z / (KW * KH);  /* n * C + c */
    const int ih = oh * stride_h - pad_top + kh * dil_h;
    const int iw = ow * stride_w - pad_left + kw * dil_w;
    float v = 0.0f;
    if (ih >= 0 && ih < H && iw >= 0 && iw < W)
        v = input[((size_t)nc * H + ih) * W + iw];
    cols[((size_t)z * OH + oh) * OW + ow] = v;
}

__kernel void conv2d_gemm(__global const float* filter,
                          __global const float* cols,
                          __global const float* bias,
                          __global const float* residual,
                          __global float* output,
                          const int M, const int K, const int P,
                          const int groups, const int batch_groups,
                          const float act_a, const float act_b)
{
    const int block = get_global_id(0);
    const int m0 = get_global_id(1) * CO_BLOCK;
    const int ng = get_global_id(2);
    if (block * VW >= P || m0 >= M || ng >= batch_groups) return;
    const int g = ng % groups;
    /* A tail block steps back to end at P: it recomputes some pixels of its neighbour,
       writing the same values, which keeps every load a whole vector. */
    const int p0 = P >= VW ? min(block * VW, P - VW) : 0;
    const int lanes = min(VW, P - p0);

    __global const float* x = cols + (size_t)ng * K * P + p0;
    /* rows past M repeat the last one (computed, never stored) so the loop has no branch */
    __global const float* w[CO_BLOCK];
    for (int j = 0; j < CO_BLOCK; ++j)
        w[j] = filter + ((size_t)g * M + min(m0 + j, M - 1)) * K;

    floatv acc[CO_BLOCK];
    for (int j = 0; j < CO_BLOCK; ++j) acc[j] = (floatv)(0.0f);
    if (lanes == VW) {
        for (int k = 0; k < K; ++k) {
            const floatv v = vloadv(0, x + (size_t)k * P);
            for (int j = 0; j < CO_BLOCK; ++j) acc[j] = mad((floatv)(w[j][k]), v, acc[j]);
        }
    } else {  /* fewer than VW pixels in all: gather them one by one, the rest zero */
        for (int k = 0; k < K; ++k) {
            float lane[VW];
            for (int i = 0; i < VW; ++i) lane[i] = i < lanes ? x[(size_t)k * P + i] : 0.0f;
            const floatv v = vloadv(0, lane);
            for (int j = 0; j < CO_BLOCK; ++j) acc[j] = mad((floatv)(w[j][k]), v, acc[j]);
        }
    }
    const int n = ng / groups;
    for (int j = 0; j < CO_BLOCK && m0 + j < M; ++j) {
        const int co = g * M + m0 + j;
        const size_t at = ((size_t)n * groups * M + co) * P + p0;
        conv_epilogue(acc[j], lanes, co, at, bias, residual, output, act_a, act_b);
    }
}

__kernel void depthwise_conv2d(__global const float* input,
                               __global const float* filter,
                               __global const float* bias,
                               __global const float* residual,
                               __global float* output,
                               const int C_in, const int H, const int W,
                               const int C_out, const int OH, const int OW,
                               const int KH, const int KW,
                               const int stride_h, const int stride_w,
                               const int dil_h, const int dil_w,
                               const int pad_top, const int pad_left,
                               const int batch_out,
                               const float act_a, const float act_b)
{
    const int block = get_global_id(0);
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);  /* n * C_out + co */
    if (block * VW >= OW || oh >= OH || nc >= batch_out) return;
    const int ow0 = OW >= VW ? min(block * VW, OW - VW) : 0;  /* as in conv2d_gemm */
    const int lanes = min(VW, OW - ow0);
    const int co = nc % C_out;
    const int n = nc / C_out;
    const int ci = co / (C_out / C_in);
    __global const float* plane = input + ((size_t)n * C_in + ci) * H * W;
    __global const float* taps = filter + (size_t)co * KH * KW;
    const int iw0 = ow0 * stride_w - pad_left;
    const bool inside = iw0 >= 0 && iw0 + VW * stride_w + (KW - 1) * dil_w <= W;

    floatv acc = (floatv)(0.0f);
    for (int kh = 0; kh < KH; ++kh) {
        const int ih = oh * stride_h - pad_top + kh * dil_h;
        if (ih < 0 || ih >= H) continue;  /* zero padding contributes nothing */
        __global const float* row = plane + ih * W;
        for (int kw = 0; kw < KW; ++kw) {
            const floatv v = load_row(row, iw0 + kw * dil_w, stride_w, W, lanes, inside);
            acc = mad((floatv)(taps[kh * KW + kw]), v, acc);
        }
    }
    const size_t at = ((size_t)nc * OH + oh) * OW + ow0;
    conv_epilogue(acc, lanes, co, at, bias, residual, output, act_a, act_b);
}

__kernel void conv2d_direct(__global const float* input,
                            __global const float* filter,
                            __global const float* bias,
                            __global const float* residual,
                            __global float* output,
                            const int C_in, const int H, const int W,
                            const int C_out, const int OH, const int OW,
                            const int KH, const int KW,
                            const int stride_h, const int stride_w,
                            const int dil_h, const int dil_w,
                            const int pad_top, const int pad_left,
                            const int groups, const int blocks,
                            const float act_a, const float act_b)
{
    const int block = get_global_id(0);
    const int oh = get_global_id(1);
    const int z = get_global_id(2);  /* ((n * groups + g) * channel_blocks + channel block */
    if (block * VW >= OW || oh >= OH || z >= blocks) return;
    const int M = C_out / groups;
    const int channel_blocks = (M + CO_BLOCK - 1) / CO_BLOCK;
    const int m0 = (z % channel_blocks) * CO_BLOCK;
    const int ng = z / channel_blocks;
    const int g = ng % groups;
    const int n = ng / groups;
    const int ow0 = OW >= VW ? min(block * VW, OW - VW) : 0;  /* as in conv2d_gemm */
    const int lanes = min(VW, OW - ow0);
    const int cin_per_group = C_in / groups;
    const int taps = cin_per_group * KH * KW;

    __global const float* w[CO_BLOCK];  /* rows past M repeat the last (never stored) */
    for (int j = 0; j < CO_BLOCK; ++j)
        w[j] = filter + ((size_t)g * M + min(m0 + j, M - 1)) * taps;
    const int iw0 = ow0 * stride_w - pad_left;
    const bool inside = iw0 >= 0 && iw0 + VW * stride_w + (KW - 1) * dil_w <= W;

    floatv acc[CO_BLOCK];
    for (int j = 0; j < CO_BLOCK; ++j) acc[j] = (floatv)(0.0f);
    for (int ci = 0; ci < cin_per_group; ++ci) {
        __global const float* plane = input + ((size_t)n * C_in + g * cin_per_group + ci) * H * W;
        for (int kh = 0; kh < KH; ++kh) {
            const int ih = oh * stride_h - pad_top + kh * dil_h;
            if (ih < 0 || ih >= H) continue;  /* zero padding contributes nothing */
            __global const float* row = plane + ih * W;
            const int t0 = (ci * KH + kh) * KW;
            for (int kw = 0; kw < KW; ++kw) {
                const floatv v = load_row(row, iw0 + kw * dil_w, stride_w, W, lanes, inside);
                for (int j = 0; j < CO_BLOCK; ++j) acc[j] = mad((floatv)(w[j][t0 + kw]), v, acc[j]);
            }
        }
    }
    for (int j = 0; j < CO_BLOCK && m0 + j < M; ++j) {
        const int co = g * M + m0 + j;
        const size_t at = (((size_t)n * C_out + co) * OH + oh) * OW + ow0;
        conv_epilogue(acc[j], lanes, co, at, bias, residual, output, act_a, act_b);
    }
}
