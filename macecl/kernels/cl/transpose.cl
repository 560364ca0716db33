/*
 * transpose.cl: generic permutation of a contiguous tensor, any rank (6-D and beyond).
 *
 * Build options: none.
 *
 * Kernel:
 *   transpose(input, output, meta, rank, total)
 *     meta: int[2 * rank] = out_shape[rank], in_strides_permuted[rank], where
 *           out_shape[d] = in_shape[perm[d]] and in_strides_permuted[d] = in_strides[perm[d]]
 *           (contiguous input strides, in elements).
 *     total: number of elements; the output is written contiguously.
 */

#include "common.h"

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
