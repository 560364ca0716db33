/*
 * copy.cl: strided box copy (Concat, Split, Slice, ...) and Pad, any rank.
 *
 * Build options:
 *   -DMODE=<n>   pad: 0 constant (default), 1 reflect, 2 edge, 3 wrap
 *   -DVW=<4|8|16> copy_rows: floats a work item copies (default 4)
 *
 * Kernels:
 *   copy_box(src, dst, meta, rank, src_offset, dst_offset, total)
 *     Copies a box of shape box_shape: for every coordinate c of the box,
 *       dst[dst_offset + sum(c[d] * dst_strides[d])] = src[src_offset + sum(c[d] * src_strides[d])]
 *     meta: int[3 * rank] = box_shape[rank], src_strides[rank], dst_strides[rank] (elements).
 *     total: number of elements of the box.
 *     A slice with per-dim start/step folds into these: src_offset = sum(start[d] * stride[d]),
 *     src_strides[d] = step[d] * stride[d] (negative steps work). Concat: one call per input,
 *     dst_offset = position along the axis * dst stride of the axis; Split the mirror image.
 *   copy_rows(src, dst, meta, rank, src_offset, dst_offset, inner, rows)
 *     The same copy when the box's innermost dim is contiguous on both sides: `rows` rows
 *     of `inner` elements, a 2-D NDRange (ceil(inner / VW), rows); a work item copies VW
 *     consecutive elements of a row (one vector where they are whole) and finds the row's
 *     two offsets from its second id alone.
 *     meta as for copy_box, over the rank dims before the innermost (rank may be 0).
 *   pad(src, dst, meta, rank, total, value)
 *     meta: int[3 * rank] = out_shape[rank], in_shape[rank], pad_begin[rank]
 *     src and dst contiguous; out_shape[d] = pad_begin[d] + in_shape[d] + pad_end[d].
 *     Negative pads crop. value is the constant of MODE 0. Reflect mirrors without repeating
 *     the edge (NumPy 'reflect'), repeatedly if a pad is wider than the dim; edge repeats the
 *     border; wrap is periodic.
 */

#include "common.h"
#include "vector.h"

#ifndef MODE
#define MODE 0
#endif

/* The source and destination offsets of box element `rest` (row-major over box_shape). */
inline int2 box_offsets(__global const int* meta, const int rank, int rest,
                        const int src_offset, const int dst_offset)
{
    int s = src_offset;
    int t = dst_offset;
    for (int d = rank - 1; d >= 0; --d) {
        const int coord = rest % meta[d];
        rest /= meta[d];
        s += coord * meta[rank + d];
        t += coord * meta[2 * rank + d];
    }
    return (int2)(s, t);
}

__kernel void copy_box(__global const float* src,
                       __global float* dst,
                       __global const int* meta,
                       const int rank,
                       const int src_offset,
                       const int dst_offset,
                       const int total)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    const int2 at = box_offsets(meta, rank, gid, src_offset, dst_offset);
    dst[at.y] = src[at.x];
}

__kernel void copy_rows(__global const float* src,
                        __global float* dst,
                        __global const int* meta,
                        const int rank,
                        const int src_offset,
                        const int dst_offset,
                        const int inner,
                        const int rows)
{
    /* VW floats a work item, the row's offsets found once for them (one float a work item
       took 0.32 ms for Swin-T's 56 rows of 5120 in each shifted-window Slice and Concat,
       against 0.07) */
    const int column = get_global_id(0) * VW;
    const int row = get_global_id(1);
    if (column >= inner || row >= rows) return;
    const int2 at = box_offsets(meta, rank, row, src_offset, dst_offset);
    if (column + VW <= inner) {
        STOREV(dst + at.y + column, LOADV(src + at.x + column));
    } else {
        for (int i = column; i < inner; ++i) dst[at.y + i] = src[at.x + i];
    }
}

/* Maps a coordinate outside [0, n) back inside, per MODE; MODE 0 never calls it. */
int pad_source_index(int i, const int n)
{
#if MODE == 1
    if (n == 1) return 0;
    const int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
#elif MODE == 2
    return clamp(i, 0, n - 1);
#elif MODE == 3
    i %= n;
    return i < 0 ? i + n : i;
#else
    return i;
#endif
}

__kernel void pad(__global const float* src,
                  __global float* dst,
                  __global const int* meta,
                  const int rank,
                  const int total,
                  const float value)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    __global const int* out_shape = meta;
    __global const int* in_shape = meta + rank;
    __global const int* pad_begin = meta + 2 * rank;

    int rest = gid;
    int s = 0;
    int in_stride = 1;
    for (int d = rank - 1; d >= 0; --d) {
        int i = rest % out_shape[d] - pad_begin[d];
        rest /= out_shape[d];
        if (i < 0 || i >= in_shape[d]) {
#if MODE == 0
            dst[gid] = value;
            return;
#else
            i = pad_source_index(i, in_shape[d]);
#endif
        }
        s += i * in_stride;
        in_stride *= in_shape[d];
    }
    dst[gid] = src[s];
}
