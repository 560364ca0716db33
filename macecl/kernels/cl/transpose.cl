/*
 * transpose.cl: generic permutation of a contiguous tensor, any rank (6-D and beyond).
 *
 * Build options: -DVW=<4|8|16>, the elements a work item moves (vector.h; default 4).
 *
 * Kernels:
 *   transpose_rows(input, output, meta, rank, inner, rows)
 *     the input's last axis stays last: the output is `rows` rows of `inner` contiguous
 *     elements, each a contiguous run of the input (a channel shuffle moves whole planes).
 *     2-D NDRange (ceil(inner / VW), rows): a work item copies VW elements of a row (fewer
 *     at its end), finding the row's source from its second id only (-DVW, vector.h). meta as for transpose, over the rank
 *     axes before the last (out_shape[rank], in_strides_permuted[rank]).
 *   transpose_tiles(input, output, X, Y, batches)
 *     input (batches, X, Y) -> output (batches, Y, X), the permutation that swaps the last
 *     two of three merged axes (NCHW <-> NHWC). Each work item moves a VW x VW tile: VW
 *     vector loads of input rows, VW vector stores of output rows (lane by lane in a tile
 *     that crosses X or Y). 3-D NDRange (ceil(Y / VW), ceil(X / VW), batches).
 *   transpose(input, output, meta, rank, inner, inner_stride, rows)
 *     any other permutation: the output is `rows` rows of `inner` elements (its last axis),
 *     whose input elements lie inner_stride apart. meta: int[2 * rank] = out_shape[rank],
 *     in_strides_permuted[rank] over the output's axes before the last, where out_shape[d]
 *     = in_shape[perm[d]] and in_strides_permuted[d] = in_strides[perm[d]] (contiguous
 *     input strides, in elements). 2-D NDRange (ceil(inner / VW), rows): a work item
 *     writes VW elements of a row (fewer at its end).
 */

#include "common.h"
#include "vector.h"

__kernel void transpose(__global const float* input,
                        __global float* output,
                        __global const int* meta,
                        const int rank,
                        const int inner,
                        const int inner_stride,
                        const int rows)
{
    /* VW outputs of a row a work item, gathered inner_stride apart, the row's source found
       once for them (one output a work item, a division and a remainder per axis each:
       MaxViT-T's window partitions, 200704 floats, 0.87 ms each; this 0.18) */
    const int column = get_global_id(0) * VW;
    const int row = get_global_id(1);
    if (column >= inner || row >= rows) return;
    int rest = row;
    int src = 0;
    for (int d = rank - 1; d >= 0; --d) {
        src += (rest % meta[d]) * meta[rank + d];
        rest /= meta[d];
    }
    __global const float* from = input + src + (size_t)column * inner_stride;
    __global float* to = output + (size_t)row * inner + column;
    if (column + VW <= inner) {
        float lane[VW];
        for (int t = 0; t < VW; ++t) lane[t] = from[(size_t)t * inner_stride];
        STOREV(to, LOADV_PRIVATE(lane));
    } else {
        for (int t = 0; column + t < inner; ++t) to[t] = from[(size_t)t * inner_stride];
    }
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

/* transpose's element-by-element walk, a division per axis per float, moved 2.3 GB/s on
   ConvNeXt-tiny's NCHW <-> NHWC permutes (96 x 56 x 56: 0.51 ms, PoCL); a tile through
   private memory reads and writes whole vectors */
__kernel void transpose_tiles(__global const float* input,
                              __global float* output,
                              const int X, const int Y, const int batches)
{
    const int y0 = get_global_id(0) * VW;
    const int x0 = get_global_id(1) * VW;
    const int b = get_global_id(2);
    if (y0 >= Y || x0 >= X || b >= batches) return;
    __global const float* from = input + (size_t)b * X * Y;
    __global float* to = output + (size_t)b * X * Y;
    if (x0 + VW <= X && y0 + VW <= Y) {
        float tile[VW][VW];  /* tile[i][j] = input[x0 + i][y0 + j] */
        for (int i = 0; i < VW; ++i)
            STOREV_PRIVATE(tile[i], LOADV(from + (size_t)(x0 + i) * Y + y0));
        for (int j = 0; j < VW; ++j) {
            float lane[VW];
            for (int i = 0; i < VW; ++i) lane[i] = tile[i][j];
            STOREV(to + (size_t)(y0 + j) * X + x0, LOADV_PRIVATE(lane));
        }
        return;
    }
    const int rows = MIN_I(VW, X - x0), columns = MIN_I(VW, Y - y0);
    for (int j = 0; j < columns; ++j)
        for (int i = 0; i < rows; ++i)
            to[(size_t)(y0 + j) * X + x0 + i] = from[(size_t)(x0 + i) * Y + y0 + j];
}
