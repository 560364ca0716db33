/*
 * resize.cl: ONNX Resize on the two spatial dims of an NCHW tensor.
 *
 * Build options:
 *   -DCOORD_MODE=<n>    coordinate_transformation_mode: 0 half_pixel (default),
 *                       1 align_corners, 2 asymmetric, 3 pytorch_half_pixel
 *   -DNEAREST_MODE=<n>  nearest_mode of resize_nearest: 0 round_prefer_floor (default),
 *                       1 round_prefer_ceil, 2 floor, 3 ceil
 *
 * Kernels (same argument list, same 3-D NDRange (OW, OH, N * C): one work item per output
 * pixel, its row and plane from the second and third ids, so that no item divides its id):
 *   resize_nearest(input, output, N, C, H, W, OH, OW, scale_h, scale_w)
 *   resize_bilinear(input, output, N, C, H, W, OH, OW, scale_h, scale_w)
 *     input (N, C, H, W), output (N, C, OH, OW).
 *   resize_nearest_blocks(input, output, planes, H, W, FH, FW)
 *     whole factors where output pixel (oh, ow) takes input pixel (oh / FH, ow / FW) (the
 *     host checks the modes give that): a 3-D NDRange (W, H, planes) over the input, each
 *     work item writing its FH x FW block of copies; no coordinate arithmetic at all.
 *     scale_*: the ONNX scale of the axis (OH / H when the model gives sizes); align_corners
 *     uses the sizes instead. Source coordinates past the border clamp to it, which is what
 *     ONNX's edge-padded reference computes. Bilinear does not antialias when downscaling.
 */

#include "common.h"

#ifndef COORD_MODE
#define COORD_MODE 0
#endif
#ifndef NEAREST_MODE
#define NEAREST_MODE 0
#endif

/* Output coordinate -> input coordinate along one axis (float, may lie outside [0, in)). */
float source_coord(const int x, const int in_size, const int out_size, const float scale)
{
#if COORD_MODE == 0
    return ((float)x + 0.5f) / scale - 0.5f;
#elif COORD_MODE == 1
    return out_size > 1 ? (float)x * (float)(in_size - 1) / (float)(out_size - 1) : 0.0f;
#elif COORD_MODE == 2
    return (float)x / scale;
#elif COORD_MODE == 3
    return out_size > 1 ? ((float)x + 0.5f) / scale - 0.5f : 0.0f;
#else
#error "resize.cl: unknown COORD_MODE"
#endif
}

/* clamp(v, 0, hi) and mix(a, b, t) with operators: as builtins they stay calls on PoCL
   (vector.h's NOTE), seven per output pixel of resize_bilinear (torchvision's DeepLabV3
   head, 21 planes of 14x14 -> 224x224: 4.47 -> 0.47 ms) */
inline float clamp_coordinate(const float v, const float hi)
{
    return v < 0.0f ? 0.0f : (v > hi ? hi : v);
}

inline float lerp(const float a, const float b, const float t)
{
    return a + (b - a) * t;
}

int nearest_index(const float x, const int in_size)
{
    /* floor and ceil with operators too: (int) truncates toward 0 */
    const int t = (int)x;
    const int f = t - (x < (float)t);
#if NEAREST_MODE == 0
    const int i = f + (x - (float)f > 0.5f);
#elif NEAREST_MODE == 1
    const int i = f + (x - (float)f >= 0.5f);
#elif NEAREST_MODE == 2
    const int i = f;
#elif NEAREST_MODE == 3
    const int i = t + (x > (float)t);
#else
#error "resize.cl: unknown NEAREST_MODE"
#endif
    return i < 0 ? 0 : (i > in_size - 1 ? in_size - 1 : i);
}

__kernel void resize_nearest(__global const float* input,
                             __global float* output,
                             const int N, const int C, const int H, const int W,
                             const int OH, const int OW,
                             const float scale_h, const float scale_w)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);
    if (ow >= OW || oh >= OH || nc >= N * C) return;

    const int ih = nearest_index(source_coord(oh, H, OH, scale_h), H);
    const int iw = nearest_index(source_coord(ow, W, OW, scale_w), W);
    output[(nc * OH + oh) * OW + ow] = input[(nc * H + ih) * W + iw];
}

__kernel void resize_bilinear(__global const float* input,
                              __global float* output,
                              const int N, const int C, const int H, const int W,
                              const int OH, const int OW,
                              const float scale_h, const float scale_w)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);
    if (ow >= OW || oh >= OH || nc >= N * C) return;

    const float y = clamp_coordinate(source_coord(oh, H, OH, scale_h), (float)(H - 1));
    const float x = clamp_coordinate(source_coord(ow, W, OW, scale_w), (float)(W - 1));
    const int y0 = (int)y;  /* y >= 0, so truncation is floor */
    const int x0 = (int)x;
    const int y1 = y0 + 1 < H ? y0 + 1 : H - 1;
    const int x1 = x0 + 1 < W ? x0 + 1 : W - 1;
    const float ly = y - (float)y0;
    const float lx = x - (float)x0;

    __global const float* plane = input + nc * H * W;
    const float top = lerp(plane[y0 * W + x0], plane[y0 * W + x1], lx);
    const float bottom = lerp(plane[y1 * W + x0], plane[y1 * W + x1], lx);
    output[(nc * OH + oh) * OW + ow] = lerp(top, bottom, ly);
}

__kernel void resize_nearest_blocks(__global const float* input,
                                    __global float* output,
                                    const int planes, const int H, const int W,
                                    const int FH, const int FW)
{
    const int iw = get_global_id(0);
    const int ih = get_global_id(1);
    const int nc = get_global_id(2);
    if (iw >= W || ih >= H || nc >= planes) return;
    const float v = input[(nc * H + ih) * W + iw];
    const int OW = W * FW;
    __global float* block = output + ((size_t)(nc * H + ih) * FH) * OW + iw * FW;
    for (int dy = 0; dy < FH; ++dy)
        for (int dx = 0; dx < FW; ++dx) block[dy * OW + dx] = v;
}
