/*
 * pooling.cl: 2-D MaxPool / AveragePool and global pooling (ONNX semantics), NCHW.
 *
 * Build options: -DVW=<4|8|16> (floats per vector, the device's preferred width; default 4).
 *
 * Kernels:
 *   max_pool2d(input, output, N, C, H, W, OH, OW, KH, KW,
 *              stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
 *   avg_pool2d(input, output, N, C, H, W, OH, OW, KH, KW,
 *              stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, pad_bottom, pad_right,
 *              count_include_pad)
 *     input (N, C, H, W), output (N, C, OH, OW); a 3-D NDRange (ceil(OW / VW), OH, N * C):
 *     each work item computes VW neighbouring output pixels of one row as one float vector,
 *     loading whole vectors of the input where all their windows lie inside the row (stride
 *     1 or 2), lane by lane at the row's edges. The caller computes OH / OW, ceil_mode
 *     included. The average divides by the number of taps inside the input
 *     (count_include_pad = 0) or inside the padded input [-pad_top, H + pad_bottom) x
 *     [-pad_left, W + pad_right) (count_include_pad = 1): with ceil_mode a last window may
 *     hang past the padding too, and those taps never count, as PyTorch does. Use dil = 1 for
 *     an AveragePool without dilations. A max window that holds no input tap at all gives
 *     -inf; one that holds a NaN gives NaN.
 *   global_avg_pool(input, output, NC, HW)
 *   global_max_pool(input, output, NC, HW)
 *     input viewed as (NC, HW), output (NC); one work item per channel plane, read in float
 *     vectors of VW (-DVW, vector.h).
 */

#include "common.h"
#include "vector.h"

/* The first tap k (of a window starting at i0, taps dil apart) with i0 + k * dil >= 0.
   (Without dilation, no division: the average pool counts its taps per window with these.) */
int taps_from(const int i0, const int dil)
{
    return i0 >= 0 ? 0 : dil == 1 ? -i0 : (-i0 + dil - 1) / dil;
}

/* One past the last tap k < K with i0 + k * dil < size. */
int taps_to(const int i0, const int dil, const int K, const int size)
{
    return i0 >= size ? 0 : MIN_I(K, dil == 1 ? size - i0 : (size - i0 + dil - 1) / dil);
}

/* The first `lanes` of v stored at out: a whole vector when all VW are outputs. */
inline void store_lanes(__global float* out, const floatv v, const int lanes)
{
    if (lanes == VW) {
        STOREV(out, v);
        return;
    }
    float lane[VW];
    STOREV_PRIVATE(lane, v);
    for (int i = 0; i < lanes; ++i) out[i] = lane[i];
}

/* The first output column of work item `block`: a last block steps back to end at OW
   (recomputing, and writing again, the same values of its neighbour), so that every store
   but that of a row narrower than VW is a whole vector. */
inline int block_start(const int block, const int OW)
{
    return OW < VW ? 0 : MIN_I(block * VW, OW - VW);
}

#define STAGE_MAX 64  /* longest row segment an edge block stages (VW 16, 3 taps, stride 2: 33) */

/* Lane i of the result is the tap at column at + i * stride of a row (or of a staged copy of
   its segment), for strides 1 and 2, as whole-vector loads: stride 2 takes the even lanes of
   one vector and the odd lanes of the next, loaded a float early so that nothing past the
   last lane's column is read. */
inline floatv row_taps(__global const float* row, const int at, const int stride)
{
    const floatv a = LOADV(row + at);
    if (stride == 1) return a;
    const floatv b = LOADV(row + at + VW - 1);
    return (floatv)(a.even, b.odd);
}

inline floatv staged_taps(const float* staged, const int at, const int stride)
{
    const floatv a = LOADV_PRIVATE(staged + at);
    if (stride == 1) return a;
    const floatv b = LOADV_PRIVATE(staged + at + VW - 1);
    return (floatv)(a.even, b.odd);
}

/* Lane i: row[at + i * stride], `fill` outside [0, W): any stride, one load a lane. */
inline floatv gathered_taps(__global const float* row, const int at, const int stride,
                            const int W, const float fill)
{
    float lane[VW];
    for (int i = 0; i < VW; ++i) {
        const int iw = at + i * stride;
        lane[i] = iw >= 0 && iw < W ? row[iw] : fill;
    }
    return LOADV_PRIVATE(lane);
}

/* For each input row of the VW windows inside the input and each tap kw of it: v, the VW
   taps as a float vector (`fill` outside the row), then STEP. Where every window's taps lie
   inside the row, whole vectors straight from it; at an edge of the row (or in a row
   narrower than VW) the row's segment [iw0, iw0 + span) is first staged once, `fill`
   outside, so the taps still load as whole vectors; with strides above 2, or a segment
   longer than STAGE_MAX, they are gathered. */
#define FOR_EACH_TAP(fill, STEP)                                                             \
    {                                                                                        \
        const int span = (KW - 1) * dil_w + (VW - 1) * stride_w + 1;                         \
        const bool inside = lanes == VW && iw0 >= 0 && iw0 + span <= W;                      \
        const bool vectors = stride_w <= 2 && (inside || span <= STAGE_MAX);                 \
        float staged[STAGE_MAX];                                                             \
        for (int kh = kh_lo; kh < kh_hi; ++kh) {                                             \
            __global const float* row = plane + (ih0 + kh * dil_h) * W;                      \
            if (vectors && !inside)                                                          \
                for (int j = 0; j < span; ++j)                                               \
                    staged[j] = iw0 + j >= 0 && iw0 + j < W ? row[iw0 + j] : (fill);         \
            for (int kw = 0; kw < KW; ++kw) {                                                \
                const int at = kw * dil_w;                                                   \
                const floatv v = !vectors ? gathered_taps(row, iw0 + at, stride_w, W, fill)  \
                                 : inside ? row_taps(row, iw0 + at, stride_w)                \
                                          : staged_taps(staged, at, stride_w);               \
                STEP;                                                                        \
            }                                                                                \
        }                                                                                    \
    }

/* What the two windowed kernels share: this work item's VW windows, the first output
   column ow0 and how many of the VW are outputs (lanes), the input plane, the windows'
   origin (ih0, iw0), and the window rows inside the input [kh_lo, kh_hi), found once. */
#define WINDOWS_OF_ITEM()                                                                    \
    const int block = get_global_id(0);                                                      \
    const int oh = get_global_id(1);                                                         \
    const int nc = get_global_id(2);                                                         \
    if (block * VW >= OW || oh >= OH || nc >= N * C) return;                                 \
    const int ow0 = block_start(block, OW);                                                  \
    const int lanes = MIN_I(OW - ow0, VW);                                                   \
    __global const float* plane = input + (size_t)nc * H * W;                                \
    const int ih0 = oh * stride_h - pad_top;                                                 \
    const int iw0 = ow0 * stride_w - pad_left;                                               \
    const int kh_lo = taps_from(ih0, dil_h);                                                 \
    const int kh_hi = taps_to(ih0, dil_h, KH, H);                                            \
    __global float* out = output + ((size_t)nc * OH + oh) * OW + ow0;

__kernel void max_pool2d(__global const float* input,
                         __global float* output,
                         const int N, const int C, const int H, const int W,
                         const int OH, const int OW, const int KH, const int KW,
                         const int stride_h, const int stride_w,
                         const int dil_h, const int dil_w,
                         const int pad_top, const int pad_left)
{
    WINDOWS_OF_ITEM()
    /* NaN wins, as in ReduceMax; v != v is isnan() without the builtin call that vector.h's
       NOTE is about */
    floatv best = (floatv)(-INFINITY);
    FOR_EACH_TAP(-INFINITY, best = ((v != v) | (v > best)) ? v : best)
    store_lanes(out, best, lanes);
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
    WINDOWS_OF_ITEM()
    floatv sums = (floatv)(0.0f);
    FOR_EACH_TAP(0.0f, sums += v)

    /* Taps that count toward the divisor lie in [lo, hi) on each axis; the counted region is
       a box, so a window's count is rows * cols. */
    const int h_lo = count_include_pad ? -pad_top : 0;
    const int h_hi = count_include_pad ? H + pad_bottom : H;
    const int w_lo = count_include_pad ? -pad_left : 0;
    const int w_hi = count_include_pad ? W + pad_right : W;
    const int rows = taps_to(ih0 - h_lo, dil_h, KH, h_hi - h_lo) - taps_from(ih0 - h_lo, dil_h);
    float count[VW];
    for (int i = 0; i < VW; ++i) {
        const int iw = iw0 + i * stride_w - w_lo;
        const int cols = taps_to(iw, dil_w, KW, w_hi - w_lo) - taps_from(iw, dil_w);
        count[i] = rows > 0 && cols > 0 ? (float)(rows * cols) : 0.0f;
    }
    const floatv counts = LOADV_PRIVATE(count);
    /* a window with no counted tap (only past the padding, with ceil_mode) gives 0 */
    store_lanes(out, counts > 0.0f ? sums / counts : (floatv)(0.0f), lanes);
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
