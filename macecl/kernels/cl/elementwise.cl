/*
 * elementwise.cl: binary ops with NumPy broadcasting, up to 6-D (any rank the meta buffer holds).
 *
 * Build options:
 *   -DOP=<n>   0 Add, 1 Sub, 2 Mul, 3 Div, 4 Pow, 5 Max, 6 Min,
 *              7 PRelu (a < 0 ? a * b : a, b being the slope; gives PRelu full broadcasting)
 *
 * Kernels:
 *   binary(a, b, out, meta, rank, total)
 *     meta: int[3 * rank] = out_shape[rank], a_strides[rank], b_strides[rank]
 *           strides are in elements, 0 on every dim the input broadcasts (size 1 or missing);
 *     total: number of output elements.
 *   binary_3d(a, b, out, inner, middle, outer)
 *     one input has the output's shape, seen as (outer, middle, inner); the other is
 *     (outer, 1, inner) (-DSKIP_MIDDLE: a bias over the last axes, an attention mask
 *     (B, 1, N, N) over (B, H, N, N)) or (1, middle, 1) (a per-channel value, a scalar).
 *     3-D NDRange (inner, middle, outer).
 *   binary_flat(a, b, out, total)
 *     both inputs are contiguous and have the output's shape: no index arithmetic.
 *
 * Max and Min use fmax/fmin, which return the other operand when one is NaN (NumPy propagates).
 */

#include "common.h"

#define OP_ADD   0
#define OP_SUB   1
#define OP_MUL   2
#define OP_DIV   3
#define OP_POW   4
#define OP_MAX   5
#define OP_MIN   6
#define OP_PRELU 7

#ifndef OP
#error "elementwise.cl needs -DOP=<n>"
#endif

float binary_op(const float a, const float b)
{
#if OP == OP_ADD
    return a + b;
#elif OP == OP_SUB
    return a - b;
#elif OP == OP_MUL
    return a * b;
#elif OP == OP_DIV
    return a / b;
#elif OP == OP_POW
    /* pow, not powr: a negative base with an integral exponent must work (x ** 2, x ** 3) */
    return pow(a, b);
#elif OP == OP_MAX
    return fmax(a, b);
#elif OP == OP_MIN
    return fmin(a, b);
#elif OP == OP_PRELU
    return a < 0.0f ? a * b : a;
#else
#error "elementwise.cl: unknown OP"
#endif
}

__kernel void binary(__global const float* a,
                     __global const float* b,
                     __global float* out,
                     __global const int* meta,
                     const int rank,
                     const int total)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;

    __global const int* shape = meta;
    __global const int* a_strides = meta + rank;
    __global const int* b_strides = meta + 2 * rank;

    /* Peel output coordinates from the innermost dim out; each maps into both inputs. */
    int rest = gid;
    int ia = 0;
    int ib = 0;
    for (int d = rank - 1; d >= 0; --d) {
        const int coord = rest % shape[d];
        rest /= shape[d];
        ia += coord * a_strides[d];
        ib += coord * b_strides[d];
    }
    out[gid] = binary_op(a[ia], b[ib]);
}

/* One operand full, seen as (outer, middle, inner), the other small: with -DSKIP_MIDDLE one
 * value per (outer, inner) pair (a bias over the last axes when outer is 1; an attention
 * mask (B, 1, N, N) over (B, H, N, N)), else one value per middle index (a per-channel scale
 * over NCHW; a scalar is one middle of one). A 3-D NDRange (inner, middle, outer), so that no
 * work item divides its id, and the small operand's index a compile-time choice, so that a
 * row's items read one value. A_SMALL: `a` is the small operand, else `b` is. */
__kernel void binary_3d(__global const float* a,
                        __global const float* b,
                        __global float* out,
                        const int inner,
                        const int middle,
                        const int outer)
{
    const int column = get_global_id(0);
    const int m = get_global_id(1);
    const int o = get_global_id(2);
    if (column >= inner || m >= middle || o >= outer) return;
    const size_t at = ((size_t)o * middle + m) * inner + column;
#ifdef SKIP_MIDDLE
    const size_t small = (size_t)o * inner + column;
#else
    const size_t small = m;
#endif
#ifdef A_SMALL
    out[at] = binary_op(a[small], b[at]);
#else
    out[at] = binary_op(a[at], b[small]);
#endif
}

__kernel void binary_flat(__global const float* a,
                          __global const float* b,
                          __global float* out,
                          const int total)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    out[gid] = binary_op(a[gid], b[gid]);
}
