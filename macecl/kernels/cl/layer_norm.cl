/*
 * layer_norm.cl: ONNX LayerNormalization over the trailing axes of a contiguous tensor.
 *
 * Build options:
 *   -DHAS_BIAS   add bias[i] after the scale (ONNX's optional B); else `bias` may be NULL
 *
 * Kernel:
 *   layer_norm(x, scale, bias, out, rows, inner, epsilon)
 *     x and out are (rows, inner): each row is normalized on its own,
 *     y = (x - mean) / sqrt(var + epsilon) * scale[i] + bias[i], var the mean squared
 *     deviation (two passes over the row, as exported graphs compute it);
 *     scale and bias hold `inner` values. One work item per row: the guard is the row count.
 */

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

    /* NOTE (PoCL CPU): operators only in these loops; builtins are calls there (vector.h). */
    float sum = 0.0f;
    for (int i = 0; i < inner; ++i) sum += in[i];
    const float mean = sum / (float)inner;
    float squares = 0.0f;
    for (int i = 0; i < inner; ++i) {
        const float d = in[i] - mean;
        squares += d * d;
    }
    const float factor = 1.0f / sqrt(squares / (float)inner + epsilon);
    for (int i = 0; i < inner; ++i) {
#ifdef HAS_BIAS
        y[i] = (in[i] - mean) * factor * scale[i] + bias[i];
#else
        y[i] = (in[i] - mean) * factor * scale[i];
#endif
    }
}
