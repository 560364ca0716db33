/*
 * unary.cl: elementwise math and activations on a contiguous tensor.
 *
 * Build options:
 *   -DOP=<n>   a UNARY_* code of common.h (kernel `unary` only):
 *              0 Identity, 1 Relu, 2 LeakyRelu(alpha), 3 Clip(min, max), 4 Sigmoid, 5 Tanh,
 *              6 HardSigmoid(alpha, beta), 7 HardSwish, 8 Softplus, 9 Elu(alpha),
 *              10 Sqrt, 11 Exp, 12 Log, 13 Abs, 14 Neg, 15 Reciprocal, 16 Swish(alpha),
 *              17 HardSwish then a scalar affine (scale, shift), 18 Erf, 19 Gelu,
 *              20 Gelu (tanh form), 21 Floor, 22 Ceil, 23 Round, 24 Sign, 25-35 Sin, Cos,
 *              Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh, 36 Selu(alpha, gamma),
 *              37 Celu(alpha), 38 Mish, 39 Softsign, 40 ThresholdedRelu(alpha),
 *              41 Shrink(lambd, bias)
 *   The program builds without OP too (then `unary` is the identity), for `prelu` alone.
 *
 * Kernels:
 *   unary(in, out, total, a, b)
 *     a, b: the op's float parameters as listed above (alpha / min / ...); ignored otherwise.
 *   prelu(in, slope, out, total, channels, inner)
 *     slope has `channels` values, broadcast along the channel axis: element i uses
 *     slope[(i / inner) % channels]; inner is the product of the dims after the channel axis
 *     (H*W for NCHW). A single slope is channels = 1. Other broadcasts of the slope go
 *     through elementwise.cl with OP=7.
 */

#include "common.h"

#ifndef OP
#define OP UNARY_NONE
#endif

__kernel void unary(__global const float* in,
                    __global float* out,
                    const int total,
                    const float a,
                    const float b)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    out[gid] = unary_op(OP, in[gid], a, b);
}

__kernel void prelu(__global const float* in,
                    __global const float* slope,
                    __global float* out,
                    const int total,
                    const int channels,
                    const int inner)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    const float x = in[gid];
    out[gid] = x < 0.0f ? x * slope[(gid / inner) % channels] : x;
}
