/*
 * transpose.cl: generic permutation of a contiguous tensor, any rank (6-D and beyond).
 *
 * Build options: none.
 *
 * Kernels:
 *   transpose_rows(input, output, meta, rank, inner, rows)
 *     the input's last axis stays last: the output is `rows` rows of `inner` contiguous
 *     elements, each a contiguous run of the input (a channel shuffle moves whole planes).
 *     2-D NDRange (ceil(inner / VW), rows): a work item copies VW elements of a row (fewer
 *     at its end), finding the row's source from its second id only (-DVW, vector.h). meta as for transpose, over the rank
 *     axes before the last (out_shape[rank], in_strides_permuted[rank]).
 *   transpose(input, output, meta, rank, total)
 *     meta: int[2 * rank] = out_shape[rank], in_strides_permuted[rank], where
 *           out_shape[d] = in_shape[perm[d]] and in_strides_permuted[d] = in_strides[perm[d]]
 *           (contiguous input strides, in elements).
 *     total: number of elements; the output is written contiguously.
 */

#include "common.h"
#include "vector.h"

__kernel void transpose(__global const float* input,
                        __global float* output,
                        __global const int* meta,
                        const int rank,
                        const int total)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    int rest = gid;
    int src = 0;
    for (int d = rank - 1; d >= 0; --d) {
        src += (rest % meta[d]) * meta[rank + d];
        rest /= meta[d];
    }
    output[gid] = input[src];
}

__kernel void transpose_rows(__global const float* input,
                             __global float* output,
                             __global const int* meta,
                             const int rank,
                             const int inner,
                             const int rows)
{
    const int column = get_global_id(0) * VW;
    const int row = get_global_id(1);
    if (column >= inner || row >= rows) return;
    int rest = row;
    int src = 0;
    for (int d = rank - 1; d >= 0; --d) {
        src += (rest % meta[d]) * meta[rank + d];
        rest /= meta[d];
    }
    __global const float* from = input + src + column;
    __global float* to = output + (size_t)row * inner + column;
    if (column + VW <= inner) {
        STOREV(to, LOADV(from));
    } else {
        for (int i = 0; i < inner - column; ++i) to[i] = from[i];
    }
}
