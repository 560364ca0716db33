/*
 * depthwise.cl: depthwise 2-D convolution (ONNX Conv with one input channel per group), and
 * the max and average pools, which are windows over one channel plane too, for a CPU, whole
 * output rows per work item. ops/conv.py and ops/pooling.py take it where DeviceTraits says
 * cpu and the window fits the options below (ops/depthwise.py rows_fit); conv2d.cl's
 * depthwise_conv2d and pooling.cl serve the rest (and GPUs, which want many small work
 * items, not a few long ones).
 *
 * Build options:
 *   -DVW=<4|8|16>        floats per vector (default 4)
 *   -DDW_KH, -DDW_KW     the window (default 3 x 3): compile-time, so the loops over taps
 *                        unroll and the row reuse below is resolved by the compiler
 *   -DDW_SH=<n>          vertical stride (default 1)
 *   -DDW_SW=<1|2>        horizontal stride (default 1)
 *   -DDW_DH, -DDW_DW     depthwise_rows' dilations (default 1; pool_rows takes 1 only)
 *   -DDW_BAND=<4|8>      output rows per work item (default 4)
 *   -DHAS_BIAS, -DHAS_RESIDUAL, -DACTIVATION=<n>, -DSHUFFLE=<g>   as in conv2d.cl
 *   -DPOOL=<1|2>         pool_rows: 1 max pool, 2 average pool
 *
 * Kernel (every dimension guarded by the sizes passed, so any work-group shape is correct):
 *   depthwise_rows(input, filter, bias, residual, output, C_in, H, W, C_out, OH, OW,
 *                  pad_top, pad_left, planes, per_item, act_a, act_b)
 *     output[n, co] = act(conv(input[n, co / (C_out / C_in)], filter[co]) + bias[co]
 *                         + residual[n, co]) (the input channel shuffled with -DSHUFFLE:
 *                         common.h depthwise_source); filter as ONNX lays it out, (C_out,
 *                         1, KH, KW).
 *     Each work item computes DW_BAND output rows, every column, of per_item consecutive
 *     planes (n * C_out + co). Global size (ceil(OH / DW_BAND), ceil(planes / per_item)) with
 *     planes = N * C_out.
 *     Each input row under the band is read once (once per column block of VW outputs) and
 *     feeds every output row of the band whose window covers it: for a 5x5 window and a band
 *     of 8, 12 row reads instead of 40. Columns past the row (padding) are zero by a lane
 *     select after a whole-vector load, which stays inside the input tensor (the row before
 *     or after is read and discarded); only at the tensor's first and last floats does a
 *     vector go lane by lane.
 *   pool_rows(input, output, H, W, OH, OW, pad_top, pad_left, h_lo, h_hi, w_lo, w_hi,
 *             planes, per_item)
 *     input (planes, H, W) -> output (planes, OH, OW): the max (NaN wins, as in
 *     pooling.cl) or the average of each window, padding never a tap. The average divides
 *     by the window's taps inside [h_lo, h_hi) x [w_lo, w_hi): [0, H) x [0, W) without
 *     count_include_pad, the padded input with it; a window with none gives 0, one with no
 *     input tap at all in a max pool -inf. Work items as depthwise_rows'.
 */

#include "common.h"
#include "vector.h"
#include "activate.h"

#ifndef DW_KH
#define DW_KH 3
#endif
#ifndef DW_KW
#define DW_KW 3
#endif
#ifndef DW_SH
#define DW_SH 1
#endif
#ifndef DW_SW
#define DW_SW 1
#endif
#ifndef DW_BAND
#define DW_BAND 4                                 /* output rows per work item: 4 or 8 */
#endif
#ifndef DW_DH
#define DW_DH 1
#endif
#ifndef DW_DW
#define DW_DW 1
#endif
#define IN_ROWS ((DW_BAND - 1) * DW_SH + (DW_KH - 1) * DW_DH + 1)  /* input rows under a band */
#define SPAN (VW * DW_SW)                         /* floats a row vector covers */

/* The VW inputs of one row under a block of outputs: lane i at input[at + i * DW_SW]. */
inline floatv inside_vector(__global const float* input, const long at)
{
#if DW_SW == 1
    return LOADV(input + at);
#else
    const floatv lo = LOADV(input + at), hi = LOADV(input + at + VW);
    return (floatv)(lo.even, hi.even);
#endif
}

/* row_vector lane by lane, where a whole vector would leave the tensor: out of line, as
   its loop unrolled at every tap made the kernel slow to compile */
__attribute__((noinline))
floatv row_lanes(__global const float* input, const long row_at, const int col, const int W,
                 const float fill)
{
    float lane[VW];
    for (int i = 0; i < VW; ++i) {
        const int c = col + i * DW_SW;
        lane[i] = c >= 0 && c < W ? input[row_at + c] : fill;
    }
    return LOADV_PRIVATE(lane);
}

/* Which lanes of a row vector whose lane i is at column col + i * DW_SW lie in [0, W): -1
   where they do */
inline intv lanes_in_row(const int col, const int W)
{
    const intv column = col + LANE_INDICES * DW_SW;
    return column >= 0 && column < W;
}

/* The VW inputs of one row under a block of outputs, lane i at column col + i * DW_SW, `fill`
   outside [0, W). row_at: the row's first float in input; total: the floats of input. */
inline floatv row_vector(__global const float* input, const long row_at, const int col,
                         const int W, const long total, const float fill)
{
    const long at = row_at + col;
    if (col < 0 || col + SPAN > W) {
        if (at < 0 || at + SPAN > total) return row_lanes(input, row_at, col, W, fill);
        return lanes_in_row(col, W) ? inside_vector(input, at) : (floatv)(fill);
    }
    return inside_vector(input, at);
}

#if DW_BAND == 8
#define EACH_BAND_ROW(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#else
#define EACH_BAND_ROW(X) X(0) X(1) X(2) X(3)
#endif
#define BAND_ZERO(r) floatv a##r = (floatv)(0.0f);
/* whether input row ir of the band is a tap row of band row r's window (compile-time once
   the loops unroll), and which */
#define WINDOW_ROW(r) (ir - (r) * DW_SH)
#define IN_WINDOW(r) (WINDOW_ROW(r) >= 0 && WINDOW_ROW(r) % DW_DH == 0 && \
                      WINDOW_ROW(r) / DW_DH < DW_KH)
#define BAND_STEP(r) if (IN_WINDOW(r)) a##r += taps[WINDOW_ROW(r) / DW_DH * DW_KW + kw] * v;
#define BAND_STORE(r)                                                                        \
    if ((r) < band_rows)                                                                     \
        store_activated(a##r + shift, lanes, lanes == VW || (r) * OW + VW <= band_rows * OW, \
                        out_at + (long)(r) * OW, residual, output, act_a, act_b);

/* Every tap v of the band's input rows into the accumulators of each band row whose window
   holds it, v loaded by LOAD (below; the choice is once per block). */
#define BAND_TAPS(LOAD)                                                                      \
    _Pragma("unroll")                                                                        \
    for (int ir = 0; ir < IN_ROWS; ++ir) {                                                   \
        const int ih = ih0 + ir;                                                             \
        if (ih < 0 || ih >= H) continue;                                                     \
        const long row_at = plane_at + (long)ih * W;                                         \
        _Pragma("unroll")                                                                    \
        for (int kw = 0; kw < DW_KW; ++kw) {                                                 \
            const int col = col0 + kw * DW_DW;                                               \
            const floatv v = LOAD;                                                           \
            EACH_BAND_ROW(BAND_STEP)                                                         \
        }                                                                                    \
    }
/* A window inside the row loads whole vectors. Over a row's end, row_vector's tests run at
   each tap; where the block's vectors all stay inside the tensor and the window is at most 3
   wide, they load whole instead and the lanes past the row are zeroed by the tap's mask
   (in_row, once per block). Kernel ms, in-model A/B (15 profiles): ShuffleNet's 3x3s on
   28, 14 and 7 wide rows, every block over an edge, 0.048-0.052 against 0.055-0.057,
   0.032-0.033 against 0.038-0.041, 0.027-0.028 against 0.034-0.035 (its 3x3/2 on 56 wide
   rows 0.094 against 0.089); PP-OCR rec's 5x5s tied or lost (0.092 against 0.079-0.081 on
   its 5x5/2, band 4), so they keep the tests. */
#define TAP_INSIDE inside_vector(input, row_at + col)
#define TAP_MASKED (in_row[kw] ? inside_vector(input, row_at + col) : (floatv)(0.0f))
#define TAP_TESTED row_vector(input, row_at, col, W, total, 0.0f)

/* Whether the whole vectors of a block whose first window column is col0 stay inside the
   tensor, over the band's input rows inside the plane. */
inline bool whole_vectors(const long plane_at, const int ih0, const int H, const int W,
                          const int col0, const long total)
{
    const int first = ih0 > 0 ? ih0 : 0, last = MIN_I(ih0 + IN_ROWS, H) - 1;
    return plane_at + (long)first * W + col0 >= 0 &&
           plane_at + (long)last * W + col0 + (DW_KW - 1) * DW_DW + SPAN <= total;
}

__kernel void depthwise_rows(__global const float* input,
                             __global const float* filter,
                             __global const float* bias,
                             __global const float* residual,
                             __global float* output,
                             const int C_in, const int H, const int W,
                             const int C_out, const int OH, const int OW,
                             const int pad_top, const int pad_left,
                             const int planes, const int per_item,
                             const float act_a, const float act_b)
{
    const int band = get_global_id(0);
    const int first = get_global_id(1) * per_item;
    if (band * DW_BAND >= OH || first >= planes) return;
    const int oh0 = band * DW_BAND;
    /* A row narrower than VW is stored whole where the lanes past it fall on this band's
       next rows, which are stored after it: 3 of 4 rows of 14 at VW 16 (ShuffleNet's 3x3
       on 272x14x14: 0.058 -> 0.054 ms against storing each such row lane by lane). */
    const int band_rows = MIN_I(DW_BAND, OH - oh0);
    const int ih0 = oh0 * DW_SH - pad_top;
    const int multiplier = C_out / C_in;
    const long total = (long)(planes / C_out) * C_in * H * W;
    const int end = MIN_I(planes, first + per_item);
    for (int nc = first; nc < end; ++nc) {
        const int co = nc % C_out;
        const long plane_at =
            ((long)(nc / C_out) * C_in + depthwise_source(co, C_in, multiplier)) * H * W;
        __global const float* taps = filter + co * DW_KH * DW_KW;
#ifdef HAS_BIAS
        const float shift = bias[co];
#else
        const float shift = 0.0f;
#endif
        for (int ow0 = 0; ow0 < OW; ow0 += VW) {
            /* a last block steps back to end at OW (recomputing some of its neighbour's
               outputs, the same values), so that every block is whole where OW >= VW */
            const int s = OW < VW ? 0 : MIN_I(ow0, OW - VW);
            const int lanes = MIN_I(VW, OW - s);
            const int col0 = s * DW_SW - pad_left;
            EACH_BAND_ROW(BAND_ZERO)
            if (col0 >= 0 && col0 + (DW_KW - 1) * DW_DW + SPAN <= W) {
                BAND_TAPS(TAP_INSIDE)
            }
#if DW_KW <= 3
            else if (whole_vectors(plane_at, ih0, H, W, col0, total)) {
                intv in_row[DW_KW];
                _Pragma("unroll")
                for (int kw = 0; kw < DW_KW; ++kw) in_row[kw] = lanes_in_row(col0 + kw * DW_DW, W);
                BAND_TAPS(TAP_MASKED)
            }
#endif
            else {
                BAND_TAPS(TAP_TESTED)
            }
            const long out_at = ((long)nc * OH + oh0) * OW + s;
            EACH_BAND_ROW(BAND_STORE)
        }
    }
}

/* pool_rows: the pools over whole rows, as depthwise_rows convolves (its band, planes per
   work item and row reads). */
#define POOL_MAX 1
#define POOL_AVG 2
#ifndef POOL
#define POOL POOL_MAX
#endif
#if POOL == POOL_MAX
/* A max pool's fast pass takes the plain maximum (one instruction a tap) and sums its
   inputs: the sum is NaN only where an input was NaN (or +inf and -inf met), and then the
   block is pooled again, NaN-aware (NAN_MAX: a NaN is taken when it arrives and then stays;
   NaN wins, as in ReduceMax). Tracking NaN at every tap instead took 1.5x to 1.8x as long
   (SqueezeNet's first max pool, 3x3/2 on 64 x 111 x 111, kernel ms: fast pass 0.12,
   NAN_MAX at every tap 0.20, an OR of v != v at every tap 0.19, per tap and band row 0.23). */
#define POOL_FILL (-INFINITY)
#define NAN_MAX(a, v) (((v) > (a) | (v) != (v)) ? (v) : (a))
#define POOL_ZERO(r) floatv a##r = (floatv)(POOL_FILL);
#define POOL_ROW_START floatv h = (floatv)(POOL_FILL);
#define POOL_TAP(EXACT) { if (EXACT) h = NAN_MAX(h, v); else { h = v > h ? v : h; sum += v; } }
#define POOL_STEP_0(r) if (IN_WINDOW(r)) a##r = h > a##r ? h : a##r;
#define POOL_STEP_1(r) if (IN_WINDOW(r)) a##r = NAN_MAX(a##r, h);
#define POOL_RESET(r) a##r = (floatv)(POOL_FILL);
#define POOL_VALUE(r) a##r
#else
#define POOL_FILL 0.0f
#define POOL_ZERO(r) floatv a##r = (floatv)(POOL_FILL);
#define POOL_ROW_START floatv h = (floatv)(0.0f);
#define POOL_TAP(EXACT) h += v;
#define POOL_STEP_0(r) if (IN_WINDOW(r)) a##r += h;
#define POOL_VALUE(r) (a##r / (count_w * (float)window_rows(oh0 + (r), h_lo, h_hi, pad_top)))
#endif
#define POOL_STORE(r)                                                                        \
    if ((r) < band_rows)                                                                     \
        store_activated(POOL_VALUE(r), lanes, lanes == VW || (r) * OW + VW <= band_rows * OW, \
                        out_at + (long)(r) * OW, NULL, output, 0.0f, 0.0f);

/* A pool is separable: each input row under the band is first reduced over the window's
   columns (h), which then joins every band row whose window holds that input row. UNROLL,
   the pragma of the loop over input rows: pool_rows unrolls it where the window is inside the
   row and keeps it rolled over an edge (row_vector's tests at every tap), which built 2.5x as
   fast on PoCL (build + binary, max 3x3/2 band 8: 1.25 -> 0.48 s) for 0.002-0.007 ms more on
   ShuffleNet's pools, whose 14-wide rows take the edge path only (one profile of each). */
#define POOL_TAPS(INSIDE, UNROLL, EXACT)                                                     \
    _Pragma(UNROLL)                                                                          \
    for (int ir = 0; ir < IN_ROWS; ++ir) {                                                   \
        const int ih = ih0 + ir;                                                             \
        if (ih < 0 || ih >= H) continue;                                                     \
        const long row_at = plane_at + (long)ih * W;                                         \
        POOL_ROW_START                                                                       \
        _Pragma("unroll")                                                                    \
        for (int kw = 0; kw < DW_KW; ++kw) {                                                 \
            const floatv v = INSIDE ? inside_vector(input, row_at + col0 + kw)               \
                                    : row_vector(input, row_at, col0 + kw, W, total,         \
                                                 POOL_FILL);                                 \
            POOL_TAP(EXACT)                                                                  \
        }                                                                                    \
        EACH_BAND_ROW(POOL_STEP_##EXACT)                                                     \
    }

/* The taps of a window starting at i0 (K taps, stride 1) that lie in [lo, hi). */
inline int taps_within(const int i0, const int K, const int lo, const int hi)
{
    const int count = MIN_I(i0 + K, hi) - (i0 > lo ? i0 : lo);  /* no builtin calls */
    return count > 0 ? count : 0;
}

/* How many of output row oh's window rows the average counts, at least 1 (a window with no
   counted row has no input tap either, so its sum is 0 and so is the result). */
inline int window_rows(const int oh, const int h_lo, const int h_hi, const int pad_top)
{
    const int count = taps_within(oh * DW_SH - pad_top, DW_KH, h_lo, h_hi);
    return count > 1 ? count : 1;
}

__kernel void pool_rows(__global const float* input,
                        __global float* output,
                        const int H, const int W, const int OH, const int OW,
                        const int pad_top, const int pad_left,
                        const int h_lo, const int h_hi, const int w_lo, const int w_hi,
                        const int planes, const int per_item)
{
    const int band = get_global_id(0);
    const int first = get_global_id(1) * per_item;
    if (band * DW_BAND >= OH || first >= planes) return;
    const int oh0 = band * DW_BAND;
    const int band_rows = MIN_I(DW_BAND, OH - oh0);
    const int ih0 = oh0 * DW_SH - pad_top;
    const long total = (long)planes * H * W;
    const int end = MIN_I(planes, first + per_item);
    for (int nc = first; nc < end; ++nc) {
        const long plane_at = (long)nc * H * W;
        for (int ow0 = 0; ow0 < OW; ow0 += VW) {
            const int s = OW < VW ? 0 : MIN_I(ow0, OW - VW);
            const int lanes = MIN_I(VW, OW - s);
            const int col0 = s * DW_SW - pad_left;
#if POOL == POOL_AVG
            float cols[VW];
            for (int i = 0; i < VW; ++i) {
                const int taps = taps_within(col0 + i * DW_SW, DW_KW, w_lo, w_hi);
                cols[i] = (float)(taps > 1 ? taps : 1);
            }
            const floatv count_w = LOADV_PRIVATE(cols);
#endif
            EACH_BAND_ROW(POOL_ZERO)
            floatv sum = (floatv)(0.0f);  /* the max pool's NaN detector */
            if (col0 >= 0 && col0 + DW_KW - 1 + SPAN <= W) {
                POOL_TAPS(true, "unroll", 0)
            } else {
                POOL_TAPS(false, "unroll 1", 0)
            }
#if POOL == POOL_MAX
            if (lanes_sum(sum) != lanes_sum(sum)) {
                EACH_BAND_ROW(POOL_RESET)
                POOL_TAPS(false, "unroll 1", 1)
            }
#endif
            const long out_at = ((long)nc * OH + oh0) * OW + s;
            EACH_BAND_ROW(POOL_STORE)
        }
    }
}
