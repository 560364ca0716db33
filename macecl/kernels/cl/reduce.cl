/*
 * reduce.cl: reductions over a contiguous run of axes, the tensor viewed as
 * (outer, reduced, inner).
 *
 * Build options:
 *   -DOP=<n>   0 ReduceSum, 1 ReduceMean, 2 ReduceMax, 3 ReduceMin, 4 ReduceProd (kernel
 *              reduce); 5 ArgMax, 6 ArgMin (kernel arg_reduce; any other op: ArgMin)
 *   -DSELECT_LAST  arg_reduce: the last index of the extreme value, not the first
 *
 * Kernel:
 *   reduce(input, output, outer, reduce_size, inner)
 *     output (outer, inner); one work item per output, global size >= outer * inner.
 *     Axes that are not adjacent: transpose them together first (transpose.cl), or reduce
 *     one run at a time (exact for Sum/Max/Min/Prod; for Mean too, since each run averages
 *     equal counts). keepdims is only a reshape, left to the caller.
 *     An empty reduction (reduce_size 0) gives the op's identity (0, NaN for Mean, -inf, inf, 1).
 *   arg_reduce(input, output, outer, reduce_size, inner)
 *     The index along the reduced axis of its largest (ArgMax) or smallest (ArgMin) value,
 *     as a float (exact below 2^24; the engine hands an integer output back as the model
 *     declares it). A NaN counts as the extreme, as in NumPy; ties take the first index, or
 *     the last with -DSELECT_LAST.
 */

#include "common.h"

#ifndef OP
#error "reduce.cl needs -DOP=<n>"
#endif

#define REDUCE_SUM  0
#define REDUCE_MEAN 1
#define REDUCE_MAX  2
#define REDUCE_MIN  3
#define REDUCE_PROD 4
#define ARG_MAX     5  /* arg_reduce's ops; reduce built with them is ReduceMax / ReduceMin */
#define ARG_MIN     6

#if OP == REDUCE_SUM || OP == REDUCE_MEAN
#define REDUCE_INIT 0.0f
#define REDUCE_STEP(acc, x) ((acc) + (x))
#elif OP == REDUCE_MAX || OP == ARG_MAX
#define REDUCE_INIT (-INFINITY)
#define REDUCE_STEP(acc, x) ((x) != (x) || (x) > (acc) ? (x) : (acc))  /* NaN wins, as NumPy */
#elif OP == REDUCE_MIN || OP == ARG_MIN
#define REDUCE_INIT INFINITY
#define REDUCE_STEP(acc, x) ((x) != (x) || (x) < (acc) ? (x) : (acc))
#elif OP == REDUCE_PROD
#define REDUCE_INIT 1.0f
#define REDUCE_STEP(acc, x) ((acc) * (x))
#else
#error "reduce.cl: unknown OP"
#endif

/* The first value of the run that output gid reduces (its others inner apart), the tensor
   seen as (outer, reduce_size, inner). */
inline __global const float* reduced_run(__global const float* input, const int gid,
                                         const int reduce_size, const int inner)
{
    return input + gid / inner * reduce_size * inner + gid % inner;
}

__kernel void reduce(__global const float* input,
                     __global float* output,
                     const int outer, const int reduce_size, const int inner)
{
    const int gid = get_global_id(0);
    if (gid >= outer * inner) return;
    __global const float* p = reduced_run(input, gid, reduce_size, inner);

    float acc = REDUCE_INIT;
    for (int r = 0; r < reduce_size; ++r) acc = REDUCE_STEP(acc, p[r * inner]);
#if OP == REDUCE_MEAN
    acc /= (float)reduce_size;
#endif
    output[gid] = acc;
}

#if OP == ARG_MAX
#define BEYOND(x, best) ((x) > (best))
#else
#define BEYOND(x, best) ((x) < (best))
#endif
#ifdef SELECT_LAST
#define TAKES(x, best) (BEYOND(x, best) || (x) == (best))
#else
#define TAKES(x, best) BEYOND(x, best)
#endif

__kernel void arg_reduce(__global const float* input,
                         __global float* output,
                         const int outer, const int reduce_size, const int inner)
{
    const int gid = get_global_id(0);
    if (gid >= outer * inner) return;
    __global const float* p = reduced_run(input, gid, reduce_size, inner);

    float best = p[0];
    int at = 0;
    for (int r = 1; r < reduce_size && best == best; ++r) {  /* a NaN ends the search */
        const float x = p[r * inner];
        if (x != x || TAKES(x, best)) {
            best = x;
            at = r;
        }
    }
    output[gid] = (float)at;
}
