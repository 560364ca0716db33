/*
 * layer_norm.cl: ONNX LayerNormalization over the trailing axes of a contiguous tensor.
 *
 * Build options:
 *   -DHAS_BIAS   add bias[i] after the scale (ONNX's optional B); else `bias` may be NULL
 *   -DVW=<4|8|16> floats a step of the row loops (default 4)
 *
 * Kernel:
 *   layer_norm(x, scale, bias, out, rows, inner, epsilon)
 *     x and out are (rows, inner): each row is normalized on its own,
 *     y = (x - mean) / sqrt(var + epsilon) * scale[i] + bias[i], var the mean squared
 *     deviation (two passes over the row, as exported graphs compute it);
 *     scale and bias hold `inner` values. One work item per row: the guard is the row count.
 */

#include "vector.h"

__kernel void layer_norm(__global const float* x,
                         __global const float* scale,
                         __global const float* bias,
                         __global float* out,
                         const int rows,
                         const int inner,
                         const float epsilon)
{
    const int row = get_global_id(0);
    if (row >= rows) return;
    __global const float* in = x + (size_t)row * inner;
    __global float* y = out + (size_t)row * inner;
    /* VW floats at a time, then the tail one by one (Swin-T's 3136 rows of 96: float by
       float, its LayerNorms took 4.5 ms a run; this 1.2) */
    const int whole = inner - inner % VW;

    /* NOTE (PoCL CPU): operators only in these loops; builtins are calls there (vector.h). */
    floatv sums = (floatv)(0.0f);
    for (int i = 0; i < whole; i += VW) sums += LOADV(in + i);
    float sum = lanes_sum(sums);
    for (int i = whole; i < inner; ++i) sum += in[i];
    const float mean = sum / (float)inner;
    floatv squares_v = (floatv)(0.0f);
    for (int i = 0; i < whole; i += VW) {
        const floatv d = LOADV(in + i) - mean;
        squares_v += d * d;
    }
    float squares = lanes_sum(squares_v);
    for (int i = whole; i < inner; ++i) {
        const float d = in[i] - mean;
        squares += d * d;
    }
    const float factor = 1.0f / sqrt(squares / (float)inner + epsilon);
    for (int i = 0; i < whole; i += VW) {
        floatv v = (LOADV(in + i) - mean) * factor * LOADV(scale + i);
#ifdef HAS_BIAS
        v += LOADV(bias + i);
#endif
        STOREV(y + i, v);
    }
    for (int i = whole; i < inner; ++i) {
#ifdef HAS_BIAS
        y[i] = (in[i] - mean) * factor * scale[i] + bias[i];
#else
        y[i] = (in[i] - mean) * factor * scale[i];
#endif
    }
}
