/*
 * activate.h: the fused activation (-DACTIVATION=<UNARY_*>, common.h) of a whole float
 * vector (-DVW, vector.h), for the kernels that store their outputs as vectors, and the
 * epilogue they share (residual, activation, store).
 */

#ifndef MACECL_ACTIVATE_H
#define MACECL_ACTIVATE_H

#include "common.h"
#include "vector.h"

/* The piecewise-linear activations as vector selects (comparisons: NaN passes, as in
   unary_op), the sigmoid, swish and both Gelus with one vector exp call (common.h's gelu),
   instead of a builtin call per lane (clamp, exp: see vector.h's NOTE); the others lane
   by lane. On PoCL, `python bench/op_kernels.py --cases activation --rounds 9`, two runs
   (load 4.3 and 3.7): PP-OCR
   det's 1x1 16->32 on 320x320 with HardSwish 4.91 -> 1.44 and 3.08 -> 1.24 ms, its last
   ConvTranspose with Sigmoid 8.02 -> 0.60 and 3.57 -> 0.52 ms; conv2d_gemm on PP-OCR's 1x1
   layers, built with ACTIVATION 0 and 7 (HardSwish) and timed interleaved (VW 16): 16->64 on
   24x160 0.092 and 0.469 ms lane by lane, 0.091 and 0.098 with selects; 120->240 on 12x80
   0.381 and 0.809, then 0.372 and 0.389. Each form matches unary_op lane for lane, NaN
   included (comparisons let NaN through). */
inline floatv activate_v(floatv y, const float act_a, const float act_b)
{
#if ACTIVATION == UNARY_NONE
    return y;
#elif ACTIVATION == UNARY_RELU
    return y < 0.0f ? (floatv)(0.0f) : y;
#elif ACTIVATION == UNARY_LEAKY_RELU
    return y >= 0.0f ? y : act_a * y;
#elif ACTIVATION == UNARY_CLIP
    return y < act_a ? (floatv)(act_a) : (y > act_b ? (floatv)(act_b) : y);
#elif ACTIVATION == UNARY_HARD_SIGMOID
    const floatv t = act_a * y + act_b;
    return t < 0.0f ? (floatv)(0.0f) : (t > 1.0f ? (floatv)(1.0f) : t);
#elif ACTIVATION == UNARY_HARD_SWISH
    const floatv t = y * (1.0f / 6.0f) + 0.5f;
    return y * (t < 0.0f ? (floatv)(0.0f) : (t > 1.0f ? (floatv)(1.0f) : t));
#elif ACTIVATION == UNARY_HARD_SWISH_AFFINE
    const floatv t = y * (1.0f / 6.0f) + 0.5f;
    return act_a * (y * (t < 0.0f ? (floatv)(0.0f) : (t > 1.0f ? (floatv)(1.0f) : t))) + act_b;
#elif ACTIVATION == UNARY_SIGMOID
    return 1.0f / (1.0f + exp(-y));
#elif ACTIVATION == UNARY_SWISH
    return y / (1.0f + exp(-act_a * y));
#elif ACTIVATION == UNARY_GELU
    const floatv s = (y < 0.0f ? -y : y) * M_SQRT1_2_F;
    const floatv t = 1.0f / (1.0f + GELU_P * s);
    const floatv tail = t * (ERF_A1 + t * (ERF_A2 + t * (ERF_A3 + t * (ERF_A4 + t * ERF_A5))));
    const floatv e = 1.0f - tail * exp(-s * s);
    return 0.5f * y * (1.0f + (y < 0.0f ? -e : e));
#elif ACTIVATION == UNARY_GELU_TANH
    return y / (1.0f + exp(-GELU_TANH_U(y)));
#else
    float lane[VW];
    STOREV_PRIVATE(lane, y);
    for (int i = 0; i < VW; ++i) lane[i] = ACTIVATE(lane[i], act_a, act_b);
    return LOADV_PRIVATE(lane);
#endif
}

/* store_activated's lanes one by one: out of line, one copy a kernel instead of one at each
   of a kernel's stores, which kernels storing many channel blocks compiled slowly (PoCL,
   build + binary of conv2d_direct at CO_BLOCK 16 0.83 -> 0.54 s, conv2d_gemm 0.85 -> 0.42 s,
   with no change in the latency of the six bench models, bench/compare_trees.py) */
__attribute__((noinline))
void store_activated_lanes(floatv acc, const int lanes, const size_t at,
                           __global const float* residual, __global float* output,
                           const float act_a, const float act_b)
{
    float lane[VW];
    STOREV_PRIVATE(lane, acc);
    for (int i = 0; i < lanes; ++i) {
        float y = lane[i];
#ifdef HAS_RESIDUAL
        y += residual[at + i];
#endif
        output[at + i] = ACTIVATE(y, act_a, act_b);
    }
}

/* The end of every convolution kernel's epilogue (-DHAS_RESIDUAL, -DACTIVATION; the caller
   has added the bias): the residual and the activation of the first `lanes` of VW outputs at
   output[at], then stored. `whole`: all VW lanes are stored as one vector (the caller knows
   that lanes past `lanes` are outputs too, or land where it stores later). */
inline void store_activated(floatv acc, const int lanes, const bool whole, const size_t at,
                            __global const float* residual, __global float* output,
                            const float act_a, const float act_b)
{
    if (whole) {
#ifdef HAS_RESIDUAL
        acc += LOADV(residual + at);
#endif
        STOREV(output + at, activate_v(acc, act_a, act_b));
        return;
    }
    store_activated_lanes(acc, lanes, at, residual, output, act_a, act_b);
}

#endif /* MACECL_ACTIVATE_H */
