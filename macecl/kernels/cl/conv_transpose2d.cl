/*
 * conv_transpose2d.cl: 2-D transposed convolution (ONNX ConvTranspose), NCHW.
 *
 * Build options:
 *   -DHAS_BIAS          add bias[c_out]; without it the bias argument is unused and may be NULL
 *   -DACTIVATION=<n>    fused activation, a UNARY_* code of common.h (default 0, none)
 *   -DCO_BLOCK=<n>      output channels per work item (default 8); the host takes 1 for one
 *                       channel per group, which 8 would compute 8 times over
 *   conv_transpose2d_disjoint only:
 *   -DVW=<4|8|16>       floats per vector (vector.h)
 *   -DPX=<n>            input pixel vectors per work item (default 1)
 *   -DSTEP_H, -DSTEP_W  the kernel's height and width, equal to the strides (default 2)
 *
 * Kernels (every dimension guarded by the sizes passed, so any work-group shape is correct):
 *   conv_transpose2d(input, filter, bias, output,
 *                    N, C_in, H, W, C_out, OH, OW, KH, KW,
 *                    stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, groups,
 *                    act_a, act_b)
 *     input (N, C_in, H, W); filter (C_in, C_out / groups, KH, KW) as ONNX stores it;
 *     bias (C_out); output (N, C_out, OH, OW). Bottom/right pads and output_padding only
 *     shape the output, so they come in through OH and OW:
 *       OH = stride_h * (H - 1) + output_padding_h + dil_h * (KH - 1) + 1 - pad_top - pad_bottom.
 *     Global size (OW, OH, N * groups * ceil(C_out / groups / CO_BLOCK)).
 *     Each work item gathers: it visits the taps that could have scattered into its output
 *     pixel and keeps those whose input coordinate is integral and in range. No atomics, no
 *     zero-fill. It computes CO_BLOCK output channels of one group at once, so each input
 *     value it reads feeds CO_BLOCK multiply-adds.
 *   conv_transpose2d_disjoint(input, packed, bias, output, C_in, H, W, C_out, OH, OW,
 *                             pad_top, pad_left, groups, blocks, act_a, act_b)
 *     The windows tile the output (KH = stride_h = STEP_H, KW = stride_w = STEP_W, no
 *     dilation): output (oh, ow) takes tap ((oh + pad_top) % STEP_H, (ow + pad_left) %
 *     STEP_W) of input ((oh + pad_top) / STEP_H, (ow + pad_left) / STEP_W) alone, a GEMM
 *     (C_out * taps x C_in) @ (C_in x H * W) whose rows are then interleaved. Each work item
 *     computes CO_BLOCK channels x all STEP_H * STEP_W taps x PX * VW input pixels of one
 *     input row (named accumulators: the loops have build-time bounds and are unrolled) and
 *     writes the STEP_H output rows they make. packed: the filter as (groups,
 *     ceil(M / CO_BLOCK), C_in / groups, CO_BLOCK, STEP_H * STEP_W), M = C_out / groups, zero
 *     past M (ops/conv.py pack_disjoint_filter). Global size (blocks, ceil(cols / (PX * VW)),
 *     rows) with blocks = N * groups * ceil(M / CO_BLOCK), rows = ceil((OH + pad_top) /
 *     STEP_H), cols = ceil((OW + pad_left) / STEP_W): one past H or W under output_padding.
 */

#include "common.h"
#include "vector.h"
#include "activate.h"

#ifndef CO_BLOCK
#define CO_BLOCK 8
#endif
#ifndef PX
#define PX 1
#endif
#ifndef STEP_H
#define STEP_H 2
#endif
#ifndef STEP_W
#define STEP_W 2
#endif
#define STEP_TAPS (STEP_H * STEP_W)
#define SPAN (PX * VW)

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

/* Two vectors of outputs of neighbouring taps (kw 0 and 1) as the output row holds them:
   a0 b0 a1 b1 ... in `lo` (the first VW) and `hi`. */
#if VW == 16
#define INTERLEAVE(a, b, lo, hi)                                                             \
    lo = (floatv)(a.s0, b.s0, a.s1, b.s1, a.s2, b.s2, a.s3, b.s3,                            \
                  a.s4, b.s4, a.s5, b.s5, a.s6, b.s6, a.s7, b.s7);                           \
    hi = (floatv)(a.s8, b.s8, a.s9, b.s9, a.sa, b.sa, a.sb, b.sb,                            \
                  a.sc, b.sc, a.sd, b.sd, a.se, b.se, a.sf, b.sf);
#elif VW == 8
#define INTERLEAVE(a, b, lo, hi)                                                             \
    lo = (floatv)(a.s0, b.s0, a.s1, b.s1, a.s2, b.s2, a.s3, b.s3);                           \
    hi = (floatv)(a.s4, b.s4, a.s5, b.s5, a.s6, b.s6, a.s7, b.s7);
#else
#define INTERLEAVE(a, b, lo, hi)                                                             \
    lo = (floatv)(a.s0, b.s0, a.s1, b.s1);                                                   \
    hi = (floatv)(a.s2, b.s2, a.s3, b.s3);
#endif

/* The STEP_W taps' outputs of `count` input columns, lane by lane, in the output row `out`
   from column ow0 (tap kw of lane i at ow0 + i * STEP_W + kw), bias and activation added,
   those outside [0, OW) left out (a row's ends under padding or output_padding).
   taps[kw * PX] is tap kw's vector. */
inline void store_lanes(__global float* out, const int ow0, const int OW, const int count,
                        const float shift, const float act_a, const float act_b,
                        const floatv* taps)
{
    for (int kw = 0; kw < STEP_W; ++kw) {
        float lane[VW];
        STOREV_PRIVATE(lane, taps[kw * PX]);
        for (int i = 0; i < count; ++i) {
            const int ow = ow0 + i * STEP_W + kw;
            if (ow >= 0 && ow < OW) out[ow] = ACTIVATE(lane[i] + shift, act_a, act_b);
        }
    }
}

/* acc's vector of channel j, tap (kh, kw), pixel vector p */
#define ACC(j, kh, kw, p) acc[(((j) * STEP_H + (kh)) * STEP_W + (kw)) * PX + (p)]

__kernel void conv_transpose2d_disjoint(__global const float* input,
                                        __global const float* packed,
                                        __global const float* bias,
                                        __global float* output,
                                        const int C_in, const int H, const int W,
                                        const int C_out, const int OH, const int OW,
                                        const int pad_top, const int pad_left,
                                        const int groups, const int blocks,
                                        const float act_a, const float act_b)
{
    /* The input is read as if zero past its bottom row and right column: output_padding
       rows and columns (no tap reaches them, bias only) then come from input row H or
       column W like any other. */
    const int z = get_global_id(0);  /* (n * groups + g) * channel_blocks + channel block */
    const int block = get_global_id(1);
    const int ih = get_global_id(2);
    const int rows = (OH + pad_top + STEP_H - 1) / STEP_H;
    const int cols = (OW + pad_left + STEP_W - 1) / STEP_W;
    if (z >= blocks || block * SPAN >= cols || ih >= rows) return;
    const int M = C_out / groups;
    const int channel_blocks = (M + CO_BLOCK - 1) / CO_BLOCK;
    const int m0 = z % channel_blocks * CO_BLOCK;
    const int ng = z / channel_blocks;
    const int g = ng % groups;
    const int n = ng / groups;
    const int cin = C_in / groups;
    /* a tail block steps back to end at cols: it recomputes some pixels of its neighbour
       and writes the same values, which keeps its loads whole vectors */
    const int iw0 = cols < SPAN ? 0 : (block * SPAN < cols - SPAN ? block * SPAN : cols - SPAN);
    const int lanes = cols - iw0 < SPAN ? cols - iw0 : SPAN;
    __global const float* x = input + (((size_t)n * C_in + g * cin) * H + ih) * W + iw0;
    __global const float* w = packed + ((size_t)g * channel_blocks + z % channel_blocks)
                                       * cin * CO_BLOCK * STEP_TAPS;
    const size_t plane = (size_t)H * W;

    floatv acc[CO_BLOCK * STEP_TAPS * PX];
    #pragma unroll
    for (int i = 0; i < CO_BLOCK * STEP_TAPS * PX; ++i) acc[i] = (floatv)(0.0f);
    if (ih < H && iw0 + SPAN <= W) {
        for (int ci = 0; ci < cin; ++ci, x += plane, w += CO_BLOCK * STEP_TAPS) {
            floatv v[PX];
            #pragma unroll
            for (int p = 0; p < PX; ++p) v[p] = LOADV(x + p * VW);
            #pragma unroll
            for (int t = 0; t < CO_BLOCK * STEP_TAPS; ++t)
                #pragma unroll
                for (int p = 0; p < PX; ++p) acc[t * PX + p] += w[t] * v[p];
        }
    } else if (ih < H) {  /* the row's end, or a row narrower than SPAN: lane by lane */
        const int inside = W - iw0 < SPAN ? W - iw0 : SPAN;
        for (int ci = 0; ci < cin; ++ci, x += plane, w += CO_BLOCK * STEP_TAPS) {
            float lane[SPAN];
            for (int i = 0; i < SPAN; ++i) lane[i] = i < inside ? x[i] : 0.0f;
            #pragma unroll
            for (int t = 0; t < CO_BLOCK * STEP_TAPS; ++t)
                for (int p = 0; p < PX; ++p) acc[t * PX + p] += w[t] * LOADV_PRIVATE(lane + p * VW);
        }
    }

    #pragma unroll
    for (int j = 0; j < CO_BLOCK; ++j) {
        const int co = g * M + m0 + j;
#ifdef HAS_BIAS
        const float shift = m0 + j < M ? bias[co] : 0.0f;
#else
        const float shift = 0.0f;
#endif
        #pragma unroll
        for (int kh = 0; kh < STEP_H; ++kh) {
            const int oh = ih * STEP_H + kh - pad_top;
            __global float* out = output + (((size_t)n * C_out + co) * OH + oh) * OW;
            #pragma unroll
            for (int p = 0; p < PX; ++p) {
                const int count = lanes - p * VW < VW ? lanes - p * VW : VW;
                const int ow0 = (iw0 + p * VW) * STEP_W - pad_left;  /* lane 0's, tap kw 0 */
                if (m0 + j < M && oh >= 0 && oh < OH && count > 0) {
#if STEP_W == 2
                    if (count == VW && ow0 >= 0 && ow0 + 2 * VW <= OW) {
                        floatv lo, hi;
                        INTERLEAVE(ACC(j, kh, 0, p), ACC(j, kh, 1, p), lo, hi)
                        STOREV(out + ow0, activate_v(lo + shift, act_a, act_b));
                        STOREV(out + ow0 + VW, activate_v(hi + shift, act_a, act_b));
                    } else
#endif
                    store_lanes(out, ow0, OW, count, shift, act_a, act_b,
                                acc + ((j * STEP_H + kh) * STEP_W) * PX + p);
                }
            }
        }
    }
}
