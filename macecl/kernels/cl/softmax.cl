/*
 * softmax.cl: Softmax / LogSoftmax along one axis, the tensor viewed as (outer, axis, inner).
 *
 * Build options:
 *   -DLOG               LogSoftmax instead of Softmax
 *   -DVW=<4|8|16>       (softmax_rows) floats per vector load, the device's preferred width
 *
 * Kernels:
 *   softmax_rows(input, output, outer, axis_size)
 *     inner == 1 (the last axis, the common case): one work item per row of axis_size
 *     contiguous values, read VW at a time (vector loads, vector exp), three passes.
 *     Global size >= outer.
 *   softmax(input, output, outer, axis_size, inner)
 *     one work item per (outer, inner) pair, i.e. global size >= outer * inner; it reads its
 *     axis_size values (stride inner) three times: max, sum of exp, write.
 *     For ONNX opset < 13 (coerced to 2-D at `axis`) pass inner = 1 and axis_size = the
 *     product of the dims from `axis` on.
 */

#include "common.h"
#include "vector.h"

__kernel void softmax(__global const float* input,
                      __global float* output,
                      const int outer, const int axis_size, const int inner)
{
    const int gid = get_global_id(0);
    if (gid >= outer * inner) return;
    const int o = gid / inner;
    const int i = gid % inner;
    const int base = o * axis_size * inner + i;

    /* Subtracting the max keeps every exp in (0, 1]: no overflow for large logits. */
    float mx = -INFINITY;
    for (int a = 0; a < axis_size; ++a) mx = fmax(mx, input[base + a * inner]);
    float sum = 0.0f;
    for (int a = 0; a < axis_size; ++a) sum += exp(input[base + a * inner] - mx);

#ifdef LOG
    const float log_sum = log(sum);
    for (int a = 0; a < axis_size; ++a)
        output[base + a * inner] = input[base + a * inner] - mx - log_sum;
#else
    const float inv_sum = 1.0f / sum;
    for (int a = 0; a < axis_size; ++a)
        output[base + a * inner] = exp(input[base + a * inner] - mx) * inv_sum;
#endif
}

__kernel void softmax_rows(__global const float* input,
                           __global float* output,
                           const int outer, const int axis_size)
{
    const int row = get_global_id(0);
    if (row >= outer) return;
    __global const float* x = input + (size_t)row * axis_size;
    __global float* y = output + (size_t)row * axis_size;
    const int whole = axis_size - axis_size % VW;

    floatv vmax = (floatv)(-INFINITY);
    for (int a = 0; a < whole; a += VW) vmax = fmax(vmax, vloadv(0, x + a));
    float mx = lanes_max(vmax);
    for (int a = whole; a < axis_size; ++a) mx = fmax(mx, x[a]);

    floatv vsum = (floatv)(0.0f);
    for (int a = 0; a < whole; a += VW) vsum += exp(vloadv(0, x + a) - mx);
    float sum = lanes_sum(vsum);
    for (int a = whole; a < axis_size; ++a) sum += exp(x[a] - mx);

#ifdef LOG
    const float shift = mx + log(sum);
    for (int a = 0; a < whole; a += VW) vstorev(vloadv(0, x + a) - shift, 0, y + a);
    for (int a = whole; a < axis_size; ++a) y[a] = x[a] - shift;
#else
    const float inv_sum = 1.0f / sum;
    for (int a = 0; a < whole; a += VW) vstorev(exp(vloadv(0, x + a) - mx) * inv_sum, 0, y + a);
    for (int a = whole; a < axis_size; ++a) y[a] = exp(x[a] - mx) * inv_sum;
#endif
}
