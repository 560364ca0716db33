/*
 * conv2d_tiled.cl: 2-D convolution (ONNX Conv, NCHW) as an implicit GEMM whose operand tiles
 * are staged in local memory, for devices where local memory is dedicated on-chip memory
 * (GPUs). ops/conv_tiled.py launches it; ops/conv.py decides when (see there).
 *
 * The GEMM of one (image n, group g): output (M, P) = filter (M, K) x columns (K, P) with
 * M = C_out / groups, P = OH * OW and K = C_in / groups * KH * KW. The columns are never
 * stored: each K step gathers its tile of them from the NCHW input, zero where the window
 * hangs over the padding (im2col on the fly). A work group computes a TM x TN output tile;
 * each of its (TN / 4) x (TM / 4) work items a 4 x 4 register block, reading float4s of both
 * tiles from local memory: 16 multiply-adds for every two local loads. The next K step's
 * tiles are loaded from global memory into registers while the current ones are used.
 *
 * Build options:
 *   -DTM=<32|64>, -DTN=<32|64>  output channels, pixels of a work group's tile (default 64)
 *   -DPARTIAL           split-K: write raw partial sums (no epilogue) for conv2d_tiled_reduce
 *   -DHAS_BIAS, -DHAS_RESIDUAL, -DACTIVATION=<n>: the epilogue, exactly as in conv2d.cl:
 *                       act(conv + bias[co] + residual[same index as the output])
 *
 * Kernels:
 *   conv2d_tiled(input, filter, bias, residual, output, C_in, H, W, C_out, OH, OW, KH, KW,
 *                stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, groups, batch_groups,
 *                splits, act_a, act_b)
 *     REQUIRES local size (TN / 4, TM / 4, 1) (reqd_work_group_size). Global size
 *     (ceil(P / TN) * TN / 4, ceil(M / TM) * TM / 4, batch_groups * splits) with
 *     batch_groups = N * groups; work groups past those counts return at once (whole
 *     groups, so no barrier is left waiting). Split s of `splits` sums its share of the K
 *     tiles; with -DPARTIAL it writes output[s * N * C_out * P + (n, co, p)], else it must
 *     be the only split and applies the epilogue.
 *   conv2d_tiled_reduce(partial, bias, residual, output, C_out, P, total, splits,
 *                       act_a, act_b)
 *     output[i] = act(sum_s partial[s * total + i] + bias[co] + residual[i]) for i < total
 *     = N * C_out * P. Any work-group shape; global size total.
 */

#include "common.h"

#ifndef TM
#define TM 64
#endif
#ifndef TN
#define TN 64
#endif
#define TK 16                            /* K step: rows of the column tile */
#define GROUP_COLS (TN / 4)              /* work items along pixels */
#define GROUP_ROWS (TM / 4)              /* work items along output channels */
#define THREADS (GROUP_COLS * GROUP_ROWS)
#define A_PER (TM * TK / 4 / THREADS)    /* filter float4s each work item loads per step */
#define B_PER (TK * TN / 4 / THREADS)    /* column float4s likewise */
/* The filter tile is stored transposed (k-major) with 4 floats of padding per row: the
   work items of a warp store 4 consecutive k of 8 rows, which without padding would all
   land in the same few banks; with it, at most 2 share one. */
#define A_STRIDE (TM + 4)

#if A_PER < 1 || B_PER < 1
#error "tiles too small for their work group: need TN <= 4 * TK and TM <= 4 * TK"
#endif

__kernel __attribute__((reqd_work_group_size(GROUP_COLS, GROUP_ROWS, 1)))
void conv2d_tiled(__global const float* input,
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
                  const int groups, const int batch_groups, const int splits,
                  const float act_a, const float act_b)
{
    __local float4 a_tile[TK * A_STRIDE / 4];  /* [k][m] */
    __local float4 b_tile[TK * TN / 4];        /* [k][p] */
    __local float* a_flat = (__local float*)a_tile;

    const int M = C_out / groups;
    const int P = OH * OW;
    const int p0 = get_group_id(0) * TN;
    const int m0 = get_group_id(1) * TM;
    const int z = get_group_id(2);
    if (p0 >= P || m0 >= M || z >= batch_groups * splits) return;  /* whole groups */
    const int tx = get_local_id(0);
    const int ty = get_local_id(1);
    const int lid = ty * GROUP_COLS + tx;

    const int ng = z % batch_groups;
    const int split = z / batch_groups;
    const int g = ng % groups;
    const int n = ng / groups;
    const int cin_per_group = C_in / groups;
    const int taps = KH * KW;
    const int K = cin_per_group * taps;
    const int k_tiles = (K + TK - 1) / TK;
    const int per_split = (k_tiles + splits - 1) / splits;
    const int k_begin = split * per_split * TK;
    const int k_end = min(K, k_begin + per_split * TK);

    __global const float* plane0 = input + ((size_t)n * C_in + g * cin_per_group) * H * W;
    __global const float* rows = filter + (size_t)g * M * K;
    const bool aligned_k = (K & 3) == 0;  /* every filter row starts on a float4 */
    /* a 1x1, stride-1, unpadded convolution reads its columns straight from the planes */
    const bool flat = taps == 1 && stride_h == 1 && stride_w == 1 && pad_top == 0
                      && pad_left == 0 && OH == H && OW == W;
    const bool aligned_p = (P & 3) == 0;

    /* This item's share of each tile: filter float4s (a_m + i * THREADS / 4, a_k .. a_k + 3),
       column float4s (b_k + i * GROUP_ROWS, b_p .. b_p + 3): the same 4 pixels every step,
       so their windows' origins are worked out once. */
    const int a_k = (lid % (TK / 4)) * 4;
    const int a_m = lid / (TK / 4);
    const int b_p = (lid % GROUP_COLS) * 4;
    const int b_k = lid / GROUP_COLS;
    const int pixel = p0 + b_p;
    int ih0[4], iw0[4];
    for (int j = 0; j < 4; ++j) {
        const int oh = (pixel + j) / OW;
        const int ow = pixel + j - oh * OW;
        /* a pixel past P gets an origin no tap can bring inside, so it loads zeros */
        ih0[j] = pixel + j < P ? oh * stride_h - pad_top : -(1 << 28);
        iw0[j] = ow * stride_w - pad_left;
    }

    float4 a_next[A_PER], b_next[B_PER];
#define LOAD_TILES(k0)                                                                       \
    for (int i = 0; i < A_PER; ++i) {                                                        \
        const int m = m0 + a_m + i * (THREADS / (TK / 4));                                   \
        const int k = (k0) + a_k;                                                            \
        float4 v = (float4)(0.0f);                                                           \
        if (m < M) {                                                                         \
            __global const float* row = rows + (size_t)m * K;                                \
            if (aligned_k && k + 3 < k_end) {                                                \
                v = vload4(0, row + k);                                                      \
            } else {                                                                         \
                v.s0 = k < k_end ? row[k] : 0.0f;                                            \
                v.s1 = k + 1 < k_end ? row[k + 1] : 0.0f;                                    \
                v.s2 = k + 2 < k_end ? row[k + 2] : 0.0f;                                    \
                v.s3 = k + 3 < k_end ? row[k + 3] : 0.0f;                                    \
            }                                                                                \
        }                                                                                    \
        a_next[i] = v;                                                                       \
    }                                                                                        \
    for (int i = 0; i < B_PER; ++i) {                                                        \
        const int k = (k0) + b_k + i * GROUP_ROWS;                                           \
        float4 v = (float4)(0.0f);                                                           \
        if (k < k_end) {                                                                     \
            if (flat) {                                                                      \
                __global const float* line = plane0 + (size_t)k * P;                         \
                if (aligned_p && pixel + 3 < P) {                                            \
                    v = vload4(0, line + pixel);                                             \
                } else {                                                                     \
                    v.s0 = pixel < P ? line[pixel] : 0.0f;                                   \
                    v.s1 = pixel + 1 < P ? line[pixel + 1] : 0.0f;                           \
                    v.s2 = pixel + 2 < P ? line[pixel + 2] : 0.0f;                           \
                    v.s3 = pixel + 3 < P ? line[pixel + 3] : 0.0f;                           \
                }                                                                            \
            } else {                                                                         \
                const int ci = k / taps;                                                     \
                const int r = k - ci * taps;                                                 \
                const int kh = r / KW;                                                       \
                const int dy = kh * dil_h;                                                   \
                const int dx = (r - kh * KW) * dil_w;                                        \
                __global const float* plane = plane0 + (size_t)ci * H * W;                   \
                float lane[4];                                                               \
                for (int j = 0; j < 4; ++j) {                                                \
                    const int ih = ih0[j] + dy;                                              \
                    const int iw = iw0[j] + dx;                                              \
                    lane[j] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? plane[ih * W + iw]  \
                                                                       : 0.0f;               \
                }                                                                            \
                v = vload4(0, lane);                                                         \
            }                                                                                \
        }                                                                                    \
        b_next[i] = v;                                                                       \
    }

    float4 acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = (float4)(0.0f);
    LOAD_TILES(k_begin)
    for (int k0 = k_begin; k0 < k_end; k0 += TK) {
        barrier(CLK_LOCAL_MEM_FENCE);  /* everyone is done reading the previous tiles */
        for (int i = 0; i < A_PER; ++i) {
            const int m = a_m + i * (THREADS / (TK / 4));
            a_flat[(a_k + 0) * A_STRIDE + m] = a_next[i].s0;
            a_flat[(a_k + 1) * A_STRIDE + m] = a_next[i].s1;
            a_flat[(a_k + 2) * A_STRIDE + m] = a_next[i].s2;
            a_flat[(a_k + 3) * A_STRIDE + m] = a_next[i].s3;
        }
        for (int i = 0; i < B_PER; ++i)
            b_tile[(b_k + i * GROUP_ROWS) * (TN / 4) + b_p / 4] = b_next[i];
        barrier(CLK_LOCAL_MEM_FENCE);
        if (k0 + TK < k_end) {
            LOAD_TILES(k0 + TK)
        }
        for (int kk = 0; kk < TK; ++kk) {
            const float4 a = a_tile[kk * (A_STRIDE / 4) + ty];
            const float4 b = b_tile[kk * (TN / 4) + tx];
            acc[0] = mad((float4)(a.s0), b, acc[0]);
            acc[1] = mad((float4)(a.s1), b, acc[1]);
            acc[2] = mad((float4)(a.s2), b, acc[2]);
            acc[3] = mad((float4)(a.s3), b, acc[3]);
        }
    }
#undef LOAD_TILES

    const int p = p0 + tx * 4;
    const int lanes = min(4, P - p);
    if (lanes <= 0) return;  /* after the last barrier: a pixel tail's idle items */
    for (int i = 0; i < 4; ++i) {
        const int m = m0 + ty * 4 + i;
        if (m >= M) break;
        const int co = g * M + m;
        size_t at = ((size_t)n * C_out + co) * P + p;
        float4 y = acc[i];
#ifdef PARTIAL
        at += (size_t)split * batch_groups * M * P;
#else
#ifdef HAS_BIAS
        y += (float4)(bias[co]);
#endif
#ifdef HAS_RESIDUAL
        y.s0 += lanes > 0 ? residual[at] : 0.0f;
        y.s1 += lanes > 1 ? residual[at + 1] : 0.0f;
        y.s2 += lanes > 2 ? residual[at + 2] : 0.0f;
        y.s3 += lanes > 3 ? residual[at + 3] : 0.0f;
#endif
        y = (float4)(ACTIVATE(y.s0, act_a, act_b), ACTIVATE(y.s1, act_a, act_b),
                     ACTIVATE(y.s2, act_a, act_b), ACTIVATE(y.s3, act_a, act_b));
#endif
        if (lanes == 4 && aligned_p) {
            vstore4(y, 0, output + at);
        } else {
            float lane[4];
            vstore4(y, 0, lane);
            for (int j = 0; j < lanes; ++j) output[at + j] = lane[j];
        }
    }
}

__kernel void conv2d_tiled_reduce(__global const float* partial,
                                  __global const float* bias,
                                  __global const float* residual,
                                  __global float* output,
                                  const int C_out, const int P, const int total,
                                  const int splits, const float act_a, const float act_b)
{
    const int i = get_global_id(0);
    if (i >= total) return;
    float y = 0.0f;
    for (int s = 0; s < splits; ++s) y += partial[(size_t)s * total + i];
#ifdef HAS_BIAS
    y += bias[(i / P) % C_out];
#endif
#ifdef HAS_RESIDUAL
    y += residual[i];
#endif
    output[i] = ACTIVATE(y, act_a, act_b);
}
