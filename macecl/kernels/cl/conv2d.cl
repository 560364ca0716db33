/*
 * conv2d.cl: 2-D convolution (ONNX Conv), NCHW, as register-blocked GEMMs plus a depthwise
 * kernel. ops/conv.py picks the kernels (and says why): a 1x1 stride-1 unpadded convolution
 * is one `conv2d_gemm` straight on the input; others `im2col` then `conv2d_gemm`, or
 * `conv2d_direct`; a depthwise one (one input channel per group) is `depthwise_conv2d`.
 *
 * Build options:
 *   -DVW=<4|8|16>       floats per vector (default 4); the host takes the device's preferred
 *                       float vector width
 *   -DHAS_BIAS          add bias[c_out]; without it the bias argument is unused and may be NULL
 *   -DCOLUMN_BIAS       conv2d_gemm adds bias[pixel] instead (a MatMul's per-column bias, as
 *                       ops/gemm.py runs a MatMul by a constant; padded to whole blocks)
 *   -DHAS_RESIDUAL      add residual[same index as the output] (a fused ONNX Add), before
 *                       the activation, as ResNet's Add -> Relu order needs; else may be NULL
 *   -DACTIVATION=<n>    fused activation, a UNARY_* code of common.h (default 0, none)
 *   -DPACKED_COLS       conv2d_gemm reads cols as im2col writes them; without it, (N *
 *                       groups, K, P) as they lie (a 1x1 convolution's input)
 *   -DPX=<1|2|3>        pixel vectors per conv2d_gemm work item, and of im2col's layout
 *                       (default 2; ops/conv.py gemm_block chooses; 1 for Winograd's GEMMs
 *                       over a single vector of tiles, ops/conv_winograd.py gemm_vectors)
 *   -DPREFETCH=<rows>   conv2d_gemm prefetches the cols row that many ahead, and its
 *                       output (and residual) rows before its loop (a clang builtin: CPUs
 *                       only)
 *   -DCO_BLOCK=<5|8|16|24> output channels per work item, the filter packed in such
 *                       blocks (default 8; 5 on a CPU of 16 vector registers, ops/conv.py
 *                       gemm_channels; 16 and 24 for a stem's conv2d_direct only)
 *   -DSTEM_TAPS -DSTEM_CIN=<c> -DSTEM_KH=<kh> -DSTEM_KW=<kw> -DSTEM_SW=<s>
 *                       conv2d_direct's input channels a group, window and horizontal
 *                       stride, known when it is built: the work items whose windows lie
 *                       inside the input run their taps as straight-line code (ops/conv.py:
 *                       a network's first layer on a CPU)
 *   -DSHUFFLE=<g>       depthwise_conv2d reads its input through a channel shuffle of g
 *                       groups (common.h depthwise_source)
 *
 * The GEMM and the direct kernel read the filter packed: (groups, ceil(M / CO_BLOCK), taps,
 * CO_BLOCK), zero past M, so one tap's weights of a channel block are CO_BLOCK neighbouring
 * floats (broadcast straight from memory into the FMAs). ops/conv.py packs constant weights
 * at plan time; `pack_filter` packs weights computed on the device.
 *
 * Kernels (every dimension guarded by the sizes passed, so any work-group shape is correct):
 *   pack_filter(filter, packed, M, K, blocks)
 *     filter (groups * M, K) -> packed (groups, ceil(M / CO_BLOCK), K, CO_BLOCK). Global size
 *     (ceil(K / VW), blocks), blocks = groups * ceil(M / CO_BLOCK).
 *   im2col(input, cols, C, H, W, OH, OW, KH, KW, stride_h, stride_w, dil_h, dil_w,
 *          pad_top, pad_left, K, channels)
 *     input (N, C, H, W) -> cols (N * groups, ceil(P / SPAN), K, SPAN) with P = OH * OW and
 *     K = C / groups * KH * KW: row k of group g's matrix, zero where the window hangs over
 *     the padding and past P. Each work item writes VW pixels of the KH * KW rows of one
 *     input channel. Global size (channels, ceil(P / SPAN) * PX) with channels = N * C.
 *   conv2d_gemm(packed, cols, bias, residual, output, M, K, P, groups, batch_groups,
 *               act_a, act_b, pixels_first)
 *     For each of batch_groups = N * groups (image n, group g):
 *       output[n, g*M + m, p] = act(sum_k filter[g*M + m, k] * cols[n, g*K + k, p]
 *                                   + bias[g*M + m] + residual[n, g*M + m, p])
 *     filter: the ONNX weight (C_out, C_in / groups, KH, KW), packed; cols (N, groups * K,
 *     P), or im2col's layout with PACKED_COLS; output and residual (N, groups * M, P).
 *     Each work item computes CO_BLOCK output channels by SPAN = PX * VW pixels. Global
 *     size (ceil(M / CO_BLOCK), ceil(P / SPAN), batch_groups), its first two swapped where
 *     pixels_first is not 0 (an argument, not a build option: no program of its own).
 *   depthwise_conv2d(input, filter, bias, residual, output, C_in, H, W, C_out, OH, OW,
 *                    KH, KW, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, batch_out,
 *                    act_a, act_b)
 *     groups = C_in; output channel c reads input channel c / (C_out / C_in), or the
 *     shuffled one of -DSHUFFLE (common.h depthwise_source); the filter as ONNX lays it
 *     out. Each work item computes VW pixels of DW_ROWS output rows (four accumulator
 *     chains). Global size (ceil(OW / VW), ceil(OH / DW_ROWS), N * C_out) with
 *     batch_out = N * C_out.
 *   conv2d_direct(input, packed, bias, residual, output, C_in, H, W, C_out, OH, OW, KH, KW,
 *                 stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, groups, blocks,
 *                 act_a, act_b)
 *     Any convolution, reading the input in place; each work item computes CO_BLOCK output
 *     channels by VW pixels of one output row. Global size (blocks, ceil(OW / VW), OH) with
 *     blocks = N * groups * ceil((C_out / groups) / CO_BLOCK).
 *   conv2d_direct_wide(same arguments as conv2d_direct)
 *     conv2d_direct with CO_BLOCK channels by PX * VW pixels of one output row a work item.
 *     Where the row's interior (the columns whose windows lie inside it) fills a block, the
 *     blocks tile the interior with whole-vector loads only, and the first and last block
 *     also compute the columns at the row's ends one by one; else the blocks tile the row
 *     and stage the segments that cross an edge. Global size (blocks, ceil(OW / SPAN), OH)
 *     (blocks past the interior return).
 *   Bottom/right pads only shape the output, so they come in through OH and OW:
 *     OH = (H + pad_top + pad_bottom - dil_h * (KH - 1) - 1) / stride_h + 1.
 */

#include "common.h"
#include "vector.h"
#include "activate.h"

#ifndef CO_BLOCK
#define CO_BLOCK 8  /* output channels per work item: also 5, and 16 or 24 (conv2d_direct) */
#endif
#ifndef PX
#define PX 2        /* pixel vectors per conv2d_gemm work item (-DPX, 1 to 3) */
#endif
#define SPAN (VW * PX)
#define EDGE_MAX 64  /* longest row segment stage_row keeps (VW 16: a 3x3 window at stride 2) */


/* bias, residual and activation of the first `lanes` of VW outputs at output[at] (channel
   co), then stored */
inline void conv_epilogue(floatv acc, const int lanes, const int co, const size_t at,
                          __global const float* bias, __global const float* residual,
                          __global float* output, const float act_a, const float act_b)
{
#ifdef HAS_BIAS
    acc += bias[co];
#endif
    store_activated(acc, lanes, lanes == VW, at, residual, output, act_a, act_b);
}

/* VW inputs of one image row: row[iw + i * stride] for lane i, zero outside [0, W). `inside`
   says every lane is in the row, which makes strides 1 and 2 whole-vector loads. */
inline floatv load_row(__global const float* row, const int iw, const int stride, const int W,
                       const int lanes, const bool inside)
{
    if (inside && stride == 1)
        return LOADV(row + iw);
    if (inside && stride == 2) {
        const floatv a = LOADV(row + iw);
        const floatv b = LOADV(row + iw + VW);  /* inside: the last lane's column < W */
        return (floatv)(a.even, b.even);
    }
    float lane[VW];
    for (int i = 0; i < VW; ++i) {
        const int at = iw + i * stride;
        lane[i] = (i < lanes && at >= 0 && at < W) ? row[at] : 0.0f;
    }
    return LOADV_PRIVATE(lane);
}

/* A window that crosses an edge of the row: its input segment staged once, zero outside
   [0, W), in a private array, from which every tap loads whole vectors (load_row's
   lane-by-lane path, taken once per tap, stalls on store forwarding each time: depthwise 3x3
   on 80x80 took 2.6x as long). False, with nothing staged, where the segment is longer than
   EDGE_MAX or the stride above 2. */
inline bool stage_row(__global const float* row, const int iw0, const int stride,
                      const int dil, const int W, const int KW, float* staged)
{
    const int span = (KW - 1) * dil + VW * stride;
    if (stride > 2 || span > EDGE_MAX) return false;
    for (int j = 0; j < span; ++j) {
        const int at = iw0 + j;
        staged[j] = at >= 0 && at < W ? row[at] : 0.0f;
    }
    return true;
}

/* the VW inputs of the tap `at` columns into a staged segment */
inline floatv staged_vector(const float* staged, const int at, const int stride)
{
    const floatv lo = LOADV_PRIVATE(staged + at);
    if (stride == 1) return lo;
    const floatv hi = LOADV_PRIVATE(staged + at + VW);
    return (floatv)(lo.even, hi.even);
}

__kernel void im2col(__global const float* input,
                     __global float* cols,
                     const int C, const int H, const int W, const int OH, const int OW,
                     const int KH, const int KW,
                     const int stride_h, const int stride_w,
                     const int dil_h, const int dil_w,
                     const int pad_top, const int pad_left,
                     const int K, const int channels)
{
    /* all KH * KW taps (cols rows) of input channel c of image n, under VW pixels p = q * VW
       + i: the pixel arithmetic is done once, the taps' input rows are read while in cache,
       and the rows they write lie next to each other where conv2d_gemm built with
       PACKED_COLS reads them (one work item per row and pixel vector took 1.2x to 3x as long
       on bench/conv_kernels.py's shapes) */
    const int nc = get_global_id(0);  /* n * C + c */
    const int q = get_global_id(1);
    const int P = OH * OW;
    const int p_blocks = (P + SPAN - 1) / SPAN;
    if (q >= p_blocks * PX || nc >= channels) return;
    const int taps = KH * KW;
    const int ng = nc * taps / K;  /* K = C / groups * taps */
    const int k0 = nc * taps % K;
    __global const float* plane = input + (size_t)nc * H * W;
    __global float* out = cols + (((size_t)ng * p_blocks + q / PX) * K + k0) * SPAN + q % PX * VW;
    const int p = q * VW;
    const int oh = p / OW;
    const int ow = p % OW;
    if (p + VW <= P && ow + VW <= OW) {  /* one output row: read as conv2d_direct does */
        const int iw0 = ow * stride_w - pad_left;
        const bool inside = iw0 >= 0 && iw0 + VW * stride_w + (KW - 1) * dil_w <= W;
        float staged[EDGE_MAX];
        for (int kh = 0; kh < KH; ++kh) {
            const int ih = oh * stride_h - pad_top + kh * dil_h;
            __global const float* row = plane + ih * W;  /* used only where ih is in range */
            if (ih < 0 || ih >= H) {
                for (int kw = 0; kw < KW; ++kw, out += SPAN) STOREV(out, (floatv)(0.0f));
            } else if (inside || !stage_row(row, iw0, stride_w, dil_w, W, KW, staged)) {
                for (int kw = 0; kw < KW; ++kw, out += SPAN)
                    STOREV(out, load_row(row, iw0 + kw * dil_w, stride_w, W, VW, inside));
            } else {
                for (int kw = 0; kw < KW; ++kw, out += SPAN)
                    STOREV(out, staged_vector(staged, kw * dil_w, stride_w));
            }
        }
        return;
    }
    /* across rows, or past P (zeros, which the GEMM multiplies but never stores). Each
       lane's row and column, in vectors: the first pixel's, stepped on by the lane's index
       and wrapped past each row's end; then per tap one gather, out-of-plane lanes reading
       the plane's first float and masked to zero (no branches, no private array: staging
       lanes through one and loading it back as a vector stalled on store forwarding at
       every tap; ResNet-50's im2col launches took 2.7-3.1 ms a run that way, 2.0 this way,
       in-model profiles) */
    const intv in_p = p + LANE_INDICES < P;
    intv column = p % OW + LANE_INDICES, row = (intv)(p / OW);
    for (int wraps = (p % OW + VW - 1) / OW; wraps > 0; --wraps) {
        const intv past = column >= OW;  /* -1 where true */
        column -= past & OW;
        row -= past;
    }
    const intv top = row * stride_h - pad_top, left = column * stride_w - pad_left;
    for (int kh = 0; kh < KH; ++kh) {
        const intv ih = top + kh * dil_h;
        const intv in_rows = in_p & (ih >= 0) & (ih < H);
        for (int kw = 0; kw < KW; ++kw, out += SPAN) {
            const intv iw = left + kw * dil_w;
            const intv in = in_rows & (iw >= 0) & (iw < W);
            const intv at = (ih * W + iw) & in;
            STOREV(out, AS_FLOATV(AS_INTV(GATHERV(plane, at)) & in));
        }
    }
}

__kernel void pack_filter(__global const float* filter,
                          __global float* packed,
                          const int M, const int K, const int blocks)
{
    /* VW taps of one block of packed (groups, ceil(M / CO_BLOCK), K, CO_BLOCK): a vector
       from each of the block's CO_BLOCK filter rows, written out transposed, CO_BLOCK * VW
       contiguous floats (a float a work item, three divisions each, took 5.0 ms for Swin-T's
       3136 x 384 rows; a tap of a block a work item 0.62 ms; this 0.26) */
    const int k0 = get_global_id(0) * VW;
    const int gb = get_global_id(1);  /* g * m_blocks + mb */
    if (k0 >= K || gb >= blocks) return;
    const int m_blocks = (M + CO_BLOCK - 1) / CO_BLOCK;
    const int m0 = gb % m_blocks * CO_BLOCK;
    __global const float* rows = filter + ((size_t)(gb / m_blocks) * M + m0) * K + k0;
    __global float* out = packed + ((size_t)gb * K + k0) * CO_BLOCK;
    const int taps = K - k0 < VW ? K - k0 : VW;
    float tile[CO_BLOCK][VW];
    for (int j = 0; j < CO_BLOCK; ++j) {
        if (m0 + j >= M) {
            for (int t = 0; t < VW; ++t) tile[j][t] = 0.0f;
        } else if (taps == VW) {
            STOREV_PRIVATE(tile[j], LOADV(rows + (size_t)j * K));
        } else {
            for (int t = 0; t < taps; ++t) tile[j][t] = rows[(size_t)j * K + t];
        }
    }
    for (int t = 0; t < taps; ++t)
        for (int j = 0; j < CO_BLOCK; ++j) out[t * CO_BLOCK + j] = tile[j][t];
}

#define CHANNELS_0_7(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define CHANNELS_8_15(X) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define CHANNELS_16_23(X) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
#if CO_BLOCK == 5
#define EACH_CHANNEL(X) X(0) X(1) X(2) X(3) X(4)
#elif CO_BLOCK == 8
#define EACH_CHANNEL(X) CHANNELS_0_7(X)
#elif CO_BLOCK == 16
#define EACH_CHANNEL(X) CHANNELS_0_7(X) CHANNELS_8_15(X)
#elif CO_BLOCK == 24
#define EACH_CHANNEL(X) CHANNELS_0_7(X) CHANNELS_8_15(X) CHANNELS_16_23(X)
#else
#error "CO_BLOCK is 5, 8, 16 or 24"
#endif
#if PX == 1
#define EACH_VECTOR(X, j) X(j, 0)
#define LOAD_VECTORS(from) const floatv x0 = from(xk);
#elif PX == 2
#define EACH_VECTOR(X, j) X(j, 0) X(j, 1)
#define LOAD_VECTORS(from) const floatv x0 = from(xk), x1 = from(xk + VW);
#elif PX == 3
#define EACH_VECTOR(X, j) X(j, 0) X(j, 1) X(j, 2)
#define LOAD_VECTORS(from) \
    const floatv x0 = from(xk), x1 = from(xk + VW), x2 = from(xk + 2 * VW);
#else
#error "conv2d_gemm takes PX 1, 2 or 3"
#endif
#define GEMM_ZERO1(j, v) floatv a##j##_##v = (floatv)(0.0f);
#define GEMM_ZERO(j) EACH_VECTOR(GEMM_ZERO1, j)
#define GEMM_STEP1(j, v) a##j##_##v += w##j * x##v;
#define GEMM_STEP(j) { const float w##j = wk[j]; EACH_VECTOR(GEMM_STEP1, j) }
#ifdef COLUMN_BIAS  /* one bias a pixel (a MatMul's per-column bias), whole vectors only */
#define COLUMN_BIAS_ADD(j, v) a##j##_##v += LOADV(bias + p0 + v * VW);
#else
#define COLUMN_BIAS_ADD(j, v)
#endif
#define GEMM_STORE1(j, v)                                                                  \
    if (v * VW < lanes) {                                                                  \
        COLUMN_BIAS_ADD(j, v)                                                              \
        conv_epilogue(a##j##_##v, MIN_I(lanes - v * VW, VW), g * M + m0 + j,               \
                      at + (size_t)j * P + v * VW, bias, residual, output, act_a, act_b);  \
    }
#define GEMM_STORE(j) if (m0 + j < M) { EACH_VECTOR(GEMM_STORE1, j) }

__kernel void conv2d_gemm(__global const float* packed,
                          __global const float* cols,
                          __global const float* bias,
                          __global const float* residual,
                          __global float* output,
                          const int M, const int K, const int P,
                          const int groups, const int batch_groups,
                          const float act_a, const float act_b, const int pixels_first)
{
    /* channel blocks run fastest, so neighbouring work items (one work-item loop of PoCL)
       share the K x SPAN block of cols while it is in cache; or, pixels_first, the pixel
       blocks: where there are only a few, the work items of one channel block follow each
       other, and its K x CO_BLOCK weights come from memory once */
    const int mb = get_global_id(pixels_first ? 1 : 0);
    const int block = get_global_id(pixels_first ? 0 : 1);
    const int ng = get_global_id(2);
    const int m_blocks = (M + CO_BLOCK - 1) / CO_BLOCK;
    if (mb >= m_blocks || block * SPAN >= P || ng >= batch_groups) return;
    const int g = ng % groups;
    const int m0 = mb * CO_BLOCK;
#ifdef PACKED_COLS
    /* cols (batch_groups, ceil(P / SPAN), K, SPAN) as im2col writes it, zero past P: the
       K x SPAN block of a work item is contiguous (no page per k) and every load whole */
    const int p0 = block * SPAN;
    const int lanes = P - p0 < SPAN ? P - p0 : SPAN;
    const size_t step = SPAN;
    __global const float* x = cols + ((size_t)ng * ((P + SPAN - 1) / SPAN) + block) * K * SPAN;
    const bool whole = true;
#else
    /* cols (batch_groups, K, P). A tail block steps back to end at P: it recomputes some
       pixels of its neighbour, writing the same values, which keeps every load a whole
       vector. */
    const int p0 = P < SPAN ? 0 : (block * SPAN < P - SPAN ? block * SPAN : P - SPAN);
    const int lanes = P - p0 < SPAN ? P - p0 : SPAN;
    const size_t step = P;
    __global const float* x = cols + (size_t)ng * K * P + p0;
    const bool whole = lanes == SPAN;
#endif

    __global const float* wk = packed + ((size_t)g * m_blocks + mb) * K * CO_BLOCK;
    const int n = ng / groups;
    const size_t at = ((size_t)n * groups * M + g * M + m0) * P + p0;
#ifdef PREFETCH
    /* the block's output rows (and residual rows), one per channel and each in another
       page, which the hardware prefetchers do not follow: asked for now, they arrive while
       the loop below runs (ResNet-50 on PoCL, bench/compare_trees.py --rounds 30: 0.96x) */
    for (int j = 0; j < CO_BLOCK && m0 + j < M; ++j) {
        for (int i = 0; i < lanes; i += 16) {
#ifdef HAS_RESIDUAL
            __builtin_prefetch(residual + at + (size_t)j * P + i);
#endif
            __builtin_prefetch(output + at + (size_t)j * P + i, 1);
        }
    }
#endif
    EACH_CHANNEL(GEMM_ZERO)
    if (whole) {
        __global const float* xk = x;
        for (int k = 0; k < K; ++k, xk += step, wk += CO_BLOCK) {
#ifdef PREFETCH
            /* a CPU's prefetchers do not follow a short run in each row (page) of an
               unpacked (K, P) input: each cache line of the block's row PREFETCH ahead (a
               clang builtin: the CPU's build only) */
            for (int i = 0; i < SPAN; i += 16) __builtin_prefetch(xk + PREFETCH * step + i);
            __builtin_prefetch(xk + PREFETCH * step + SPAN - 1);
#endif
            LOAD_VECTORS(LOADV)
            EACH_CHANNEL(GEMM_STEP)
        }
    } else {  /* fewer than SPAN pixels in all: gather them one by one, the rest zero */
        for (int k = 0; k < K; ++k, wk += CO_BLOCK) {
            float lane[SPAN];
            for (int i = 0; i < SPAN; ++i) lane[i] = i < lanes ? x[(size_t)k * P + i] : 0.0f;
            const float* xk = lane;
            LOAD_VECTORS(LOADV_PRIVATE)
            EACH_CHANNEL(GEMM_STEP)
        }
    }
    EACH_CHANNEL(GEMM_STORE)
}

#define DW_ROWS 4    /* output rows per depthwise_conv2d work item */
#define EACH_DW_ROW(X) X(0) X(1) X(2) X(3)
#define DW_ZERO(r) floatv a##r = (floatv)(0.0f);
#define DW_STEP(r)                                                                           \
    {                                                                                        \
        const int ih = (oh0 + r) * stride_h - pad_top + kh * dil_h;                          \
        if (ih >= 0 && ih < H)                                                               \
            a##r += tap * LOADV(plane + ih * W + iw);                                        \
    }
#define DW_STEP2(r)                                                                          \
    {                                                                                        \
        const int ih = (oh0 + r) * stride_h - pad_top + kh * dil_h;                          \
        if (ih >= 0 && ih < H) {                                                             \
            const floatv lo = LOADV(plane + ih * W + iw), hi = LOADV(plane + ih * W + iw + VW); \
            a##r += tap * (floatv)(lo.even, hi.even);                                        \
        }                                                                                    \
    }
#define DW_EDGE(r)                                                                           \
    for (int kh = 0; kh < KH && oh0 + r < OH; ++kh) {                                        \
        const int ih = (oh0 + r) * stride_h - pad_top + kh * dil_h;                          \
        if (ih >= 0 && ih < H)                                                               \
            a##r += edge_taps(plane + ih * W, iw0, stride_w, dil_w, W, lanes, taps + kh * KW, \
                              KW);                                                           \
    }
#define DW_STORE(r)                                                                          \
    if (oh0 + r < OH)                                                                        \
        conv_epilogue(a##r, lanes, co, at + (size_t)r * OW, bias, residual, output, act_a,   \
                      act_b);

/* sum over kw of taps[kw] * the VW inputs under it, for a block whose window crosses an edge
   of the row */
inline floatv edge_taps(__global const float* row, const int iw0, const int stride,
                        const int dil, const int W, const int lanes,
                        __global const float* taps, const int KW)
{
    floatv acc = (floatv)(0.0f);
    float staged[EDGE_MAX];
    if (stage_row(row, iw0, stride, dil, W, KW, staged)) {
        for (int kw = 0; kw < KW; ++kw) acc += taps[kw] * staged_vector(staged, kw * dil, stride);
    } else {
        for (int kw = 0; kw < KW; ++kw)
            acc += taps[kw] * load_row(row, iw0 + kw * dil, stride, W, lanes, false);
    }
    return acc;
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
    const int oh0 = get_global_id(1) * DW_ROWS;
    const int nc = get_global_id(2);  /* n * C_out + co */
    if (block * VW >= OW || oh0 >= OH || nc >= batch_out) return;
    const int ow0 = OW < VW ? 0 : (block * VW < OW - VW ? block * VW : OW - VW);
    const int lanes = OW - ow0 < VW ? OW - ow0 : VW;
    const int co = nc % C_out;
    const int n = nc / C_out;
    const int ci = depthwise_source(co, C_in, C_out / C_in);
    __global const float* plane = input + ((size_t)n * C_in + ci) * H * W;
    __global const float* taps = filter + (size_t)co * KH * KW;
    const int iw0 = ow0 * stride_w - pad_left;
    const bool inside = iw0 >= 0 && iw0 + VW * stride_w + (KW - 1) * dil_w <= W;

    EACH_DW_ROW(DW_ZERO)
    if (inside && stride_w <= 2) {
        for (int kh = 0; kh < KH; ++kh) {
            for (int kw = 0; kw < KW; ++kw) {
                const float tap = taps[kh * KW + kw];
                const int iw = iw0 + kw * dil_w;
                if (stride_w == 1) {
                    EACH_DW_ROW(DW_STEP)
                } else {
                    EACH_DW_ROW(DW_STEP2)
                }
            }
        }
    } else {
        EACH_DW_ROW(DW_EDGE)
    }
    const size_t at = ((size_t)nc * OH + oh0) * OW + ow0;
    EACH_DW_ROW(DW_STORE)
}

#define DIRECT_ZERO(j) floatv a##j = (floatv)(0.0f);
#define DIRECT_STEP(j) a##j += wt[j] * v;
#define DIRECT_STORE(j)                                                                    \
    if (m0 + j < M)                                                                        \
        conv_epilogue(a##j, lanes, g * M + m0 + j, at + (size_t)j * OH * OW, bias, residual, \
                      output, act_a, act_b);

__kernel void conv2d_direct(__global const float* input,
                            __global const float* packed,
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
    /* channel blocks run fastest, so neighbouring work items share the input rows */
    const int z = get_global_id(0);  /* (n * groups + g) * channel_blocks + channel block */
    const int block = get_global_id(1);
    const int oh = get_global_id(2);
    if (z >= blocks || block * VW >= OW || oh >= OH) return;
    const int M = C_out / groups;
    const int channel_blocks = (M + CO_BLOCK - 1) / CO_BLOCK;
    const int mb = z % channel_blocks;
    const int m0 = mb * CO_BLOCK;
    const int ng = z / channel_blocks;
    const int g = ng % groups;
    const int n = ng / groups;
    const int ow0 = OW < VW ? 0 : (block * VW < OW - VW ? block * VW : OW - VW);
    const int lanes = OW - ow0 < VW ? OW - ow0 : VW;
    const int cin_per_group = C_in / groups;
    const int taps = cin_per_group * KH * KW;

    __global const float* w = packed + ((size_t)g * channel_blocks + mb) * taps * CO_BLOCK;
    const int iw0 = ow0 * stride_w - pad_left;
    const bool inside = iw0 >= 0 && iw0 + VW * stride_w + (KW - 1) * dil_w <= W;

    EACH_CHANNEL(DIRECT_ZERO)
#ifdef STEM_TAPS
    /* a work item whose windows all lie inside the input: its taps in straight-line code
       (the same loops, bounds known when built), no edge tests */
    const int ih0 = oh * stride_h - pad_top;
    if (inside && ih0 >= 0 && ih0 + (STEM_KH - 1) * dil_h < H) {
        __global const float* wt = w;
        _Pragma("unroll")
        for (int ci = 0; ci < STEM_CIN; ++ci) {
            _Pragma("unroll")
            for (int kh = 0; kh < STEM_KH; ++kh) {
                __global const float* row = input
                    + (((size_t)n * C_in + g * STEM_CIN + ci) * H + ih0 + kh * dil_h) * W;
                _Pragma("unroll")
                for (int kw = 0; kw < STEM_KW; ++kw, wt += CO_BLOCK) {
                    const floatv v = load_row(row, iw0 + kw * dil_w, STEM_SW, W, VW, true);
                    EACH_CHANNEL(DIRECT_STEP)
                }
            }
        }
        const size_t at = (((size_t)n * C_out + g * M + m0) * OH + oh) * OW + ow0;
        EACH_CHANNEL(DIRECT_STORE)
        return;
    }
#endif
    float staged[EDGE_MAX];
    for (int ci = 0; ci < cin_per_group; ++ci) {
        __global const float* plane = input + ((size_t)n * C_in + g * cin_per_group + ci) * H * W;
        for (int kh = 0; kh < KH; ++kh) {
            const int ih = oh * stride_h - pad_top + kh * dil_h;
            if (ih < 0 || ih >= H) continue;  /* zero padding contributes nothing */
            __global const float* row = plane + ih * W;
            __global const float* wt = w + (size_t)((ci * KH + kh) * KW) * CO_BLOCK;
            if (inside || !stage_row(row, iw0, stride_w, dil_w, W, KW, staged)) {
                for (int kw = 0; kw < KW; ++kw, wt += CO_BLOCK) {
                    const floatv v = load_row(row, iw0 + kw * dil_w, stride_w, W, lanes, inside);
                    EACH_CHANNEL(DIRECT_STEP)
                }
            } else {
                for (int kw = 0; kw < KW; ++kw, wt += CO_BLOCK) {
                    const floatv v = staged_vector(staged, kw * dil_w, stride_w);
                    EACH_CHANNEL(DIRECT_STEP)
                }
            }
        }
    }
    const size_t at = (((size_t)n * C_out + g * M + m0) * OH + oh) * OW + ow0;
    EACH_CHANNEL(DIRECT_STORE)
}
#define WIDE_ZERO(j) floatv a##j = (floatv)(0.0f), b##j = (floatv)(0.0f);
#define WIDE_STEP(j) a##j += wt[j] * v0; b##j += wt[j] * v1;
#define WIDE_STORE(j)                                                                      \
    if (m0 + j < M) {                                                                      \
        conv_epilogue(a##j, lanes < VW ? lanes : VW, g * M + m0 + j,                       \
                      at + (size_t)j * OH * OW, bias, residual, output, act_a, act_b);     \
        if (lanes > VW)                                                                    \
            conv_epilogue(b##j, lanes - VW, g * M + m0 + j, at + (size_t)j * OH * OW + VW, \
                          bias, residual, output, act_a, act_b);                           \
    }

typedef float float8_u __attribute__((ext_vector_type(8), aligned(4)));

/* The output columns [lo, hi] whose windows, as conv2d_direct_wide's vectors read them
   (a stride-2 vector reads one column past its last tap), lie inside the row. hi < lo when
   none does. */
inline int2 interior_columns(const int W, const int OW, const int KW, const int stride,
                             const int dil, const int pad_left)
{
    const int lo = (pad_left + stride - 1) / stride;
    const int last = W - 1 + pad_left - (KW - 1) * dil - (stride - 1);
    const int hi = last < 0 ? -1 : MIN_I(last / stride, OW - 1);
    return (int2)(lo, hi);
}

/* The VW inputs of tap kw for the lanes from input column iw of a block whose window
   crosses an edge of the row: from `staged` when stage_row took the segment, else lane by
   lane. */
inline floatv edge_vector(__global const float* row, const float* staged, const bool is_staged,
                          const int iw, const int kw, const int stride, const int dil,
                          const int W, const int lanes)
{
    if (is_staged) return staged_vector(staged, kw * dil, stride);
    return load_row(row, iw + kw * dil, stride, W, lanes, false);
}

/* One output column `ow` of output row `oh` for CO_BLOCK channels (a float8 over the
   channels: each input value is one broadcast FMA), with its epilogue: the columns at the
   ends of a row that conv2d_direct_wide's vectors leave out. */
inline void edge_column(__global const float* image, __global const float* w,
                        __global const float* bias, __global const float* residual,
                        __global float* output, const int ow, const int oh, const int cin,
                        const int H, const int W, const int KH, const int KW,
                        const int stride_h, const int stride_w, const int dil_h,
                        const int dil_w, const int pad_top, const int pad_left, const int M,
                        const int m0, const int co0, const size_t plane_out, const size_t at,
                        const float act_a, const float act_b)
{
    float8 acc = (float8)(0.0f);
    for (int ci = 0; ci < cin; ++ci) {
        for (int kh = 0; kh < KH; ++kh) {
            const int ih = oh * stride_h - pad_top + kh * dil_h;
            if (ih < 0 || ih >= H) continue;
            __global const float* row = image + ((size_t)ci * H + ih) * W;
            __global const float* wt = w + (size_t)((ci * KH + kh) * KW) * CO_BLOCK;
            for (int kw = 0; kw < KW; ++kw) {
                const int iw = ow * stride_w - pad_left + kw * dil_w;
                if (iw >= 0 && iw < W)
                    acc += *(__global const float8_u*)(wt + kw * CO_BLOCK) * row[iw];
            }
        }
    }
    float lane[CO_BLOCK];
    *(float8_u*)lane = acc;
    for (int j = 0; j < CO_BLOCK && m0 + j < M; ++j) {
        float y = lane[j];
#ifdef HAS_BIAS
        y += bias[co0 + j];
#endif
#ifdef HAS_RESIDUAL
        y += residual[at + j * plane_out];
#endif
        output[at + j * plane_out] = ACTIVATE(y, act_a, act_b);
    }
}

__kernel void conv2d_direct_wide(__global const float* input,
                                 __global const float* packed,
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
    /* conv2d_direct with the GEMM's register block: CO_BLOCK channels x PX (2) vectors of
       one output row, so each weight broadcast feeds two FMAs. Where the interior columns
       (interior_columns) fill a block, the blocks tile them, every load a whole vector, and
       the first and last blocks also compute the few columns at the row's ends one by one
       (edge_column); else blocks tile the row and stage the segments that cross an edge. */
    const int z = get_global_id(0);  /* (n * groups + g) * channel_blocks + channel block */
    const int block = get_global_id(1);
    const int oh = get_global_id(2);
    const int2 interior = interior_columns(W, OW, KW, stride_w, dil_w, pad_left);
    const int inner = interior.y - interior.x + 1;
    const bool tiled = inner >= SPAN;
    const int first = tiled ? interior.x : 0;  /* the columns the blocks tile */
    const int count = tiled ? inner : OW;
    if (z >= blocks || block * SPAN >= count || oh >= OH) return;
    const int M = C_out / groups;
    const int channel_blocks = (M + CO_BLOCK - 1) / CO_BLOCK;
    const int mb = z % channel_blocks;
    const int m0 = mb * CO_BLOCK;
    const int ng = z / channel_blocks;
    const int g = ng % groups;
    const int n = ng / groups;
    /* a tail block steps back to end at the last column (same values written twice) */
    const int ow0 = first + (count < SPAN ? 0 : MIN_I(block * SPAN, count - SPAN));
    const int lanes = count < SPAN ? count : SPAN;
    const int cin_per_group = C_in / groups;
    const int taps = cin_per_group * KH * KW;

    __global const float* w = packed + ((size_t)g * channel_blocks + mb) * taps * CO_BLOCK;
    __global const float* image = input + ((size_t)n * C_in + g * cin_per_group) * H * W;
    const int iw0 = ow0 * stride_w - pad_left;
    const int iw1 = iw0 + VW * stride_w;  /* the second vector's first input column */
    const int lanes1 = lanes - VW;
    const size_t plane_out = (size_t)OH * OW;
    const size_t at = ((size_t)n * C_out + g * M + m0) * plane_out + (size_t)oh * OW + ow0;

    if (tiled) {
        const int last_block = (count + SPAN - 1) / SPAN - 1;
        const int from = block == 0 ? 0 : (block == last_block ? interior.y + 1 : OW);
        const int to = block == 0 ? interior.x : OW;
        for (int ow = from; ow < to; ++ow)
            edge_column(image, w, bias, residual, output, ow, oh, cin_per_group, H, W, KH, KW,
                        stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, M, m0,
                        g * M + m0, plane_out, at - ow0 + ow, act_a, act_b);
        if (block == 0 && last_block == 0)  /* one block: it also takes the right end */
            for (int ow = interior.y + 1; ow < OW; ++ow)
                edge_column(image, w, bias, residual, output, ow, oh, cin_per_group, H, W, KH,
                            KW, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, M, m0,
                            g * M + m0, plane_out, at - ow0 + ow, act_a, act_b);
    }

    EACH_CHANNEL(WIDE_ZERO)
    float staged0[EDGE_MAX], staged1[EDGE_MAX];
    for (int ci = 0; ci < cin_per_group; ++ci) {
        __global const float* plane = image + (size_t)ci * H * W;
        for (int kh = 0; kh < KH; ++kh) {
            const int ih = oh * stride_h - pad_top + kh * dil_h;
            if (ih < 0 || ih >= H) continue;  /* zero padding contributes nothing */
            __global const float* row = plane + ih * W;
            __global const float* wt = w + (size_t)((ci * KH + kh) * KW) * CO_BLOCK;
            if (tiled) {
                for (int kw = 0; kw < KW; ++kw, wt += CO_BLOCK) {
                    const floatv v0 = load_row(row, iw0 + kw * dil_w, stride_w, W, VW, true);
                    const floatv v1 = load_row(row, iw1 + kw * dil_w, stride_w, W, VW, true);
                    EACH_CHANNEL(WIDE_STEP)
                }
            } else {
                const bool s0 = stage_row(row, iw0, stride_w, dil_w, W, KW, staged0);
                const bool s1 = lanes1 > 0 && stage_row(row, iw1, stride_w, dil_w, W, KW, staged1);
                for (int kw = 0; kw < KW; ++kw, wt += CO_BLOCK) {
                    const floatv v0 = edge_vector(row, staged0, s0, iw0, kw, stride_w, dil_w, W,
                                                  lanes < VW ? lanes : VW);
                    const floatv v1 = lanes1 > 0
                        ? edge_vector(row, staged1, s1, iw1, kw, stride_w, dil_w, W, lanes1)
                        : (floatv)(0.0f);
                    EACH_CHANNEL(WIDE_STEP)
                }
            }
        }
    }
    EACH_CHANNEL(WIDE_STORE)
}
