/*
 * softmax.cl: Softmax / LogSoftmax along one axis, the tensor viewed as (outer, axis, inner).
 *
 * Build options:
 *   -DLOG               LogSoftmax instead of Softmax
 *
 * Kernel:
 *   softmax(input, output, outer, axis_size, inner)
 *     one work item per (outer, inner) pair, i.e. global size >= outer * inner; it reads its
 *     axis_size values (stride inner) three times: max, sum of exp, write.
 *     For ONNX opset < 13 (coerced to 2-D at `axis`) pass inner = 1 and axis_size = the
 *     product of the dims from `axis` on.
 */

#include "common.h"

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
