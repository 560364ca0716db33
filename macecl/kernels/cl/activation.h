/*
 * activation.h: the fused activation of a float vector (vector.h's floatv), for the
 * convolution programs built with -DACTIVATION=<UNARY_*> (common.h).
 */

#ifndef MACECL_ACTIVATION_H
#define MACECL_ACTIVATION_H

#include "common.h"
#include "vector.h"

/* The fused activation of a whole vector, with operators and selects: PoCL calls every
   builtin (vector.h's NOTE). HardSwish went lane by lane through unary_op's clamp() before:
   conv2d_gemm on PP-OCR's 1x1 layers, built with ACTIVATION 0 and 7 and timed interleaved
   (ms, PoCL, VW 16): 16->64 on 24x160 0.092 and 0.469 then, 0.091 and 0.098 with this;
   120->240 on 12x80 0.381 and 0.809, then 0.372 and 0.389. Each form matches
   unary_op lane for lane, NaN included: a clamp is written so that NaN becomes the lower
   bound, as clamp() (fmin(fmax())) does. Activations without a select form go lane by
   lane. */
inline floatv activate_vector(floatv y, const float act_a, const float act_b)
{
#if ACTIVATION == UNARY_NONE
    return y;
#elif ACTIVATION == UNARY_RELU
    return y < 0.0f ? (floatv)(0.0f) : y;
#elif ACTIVATION == UNARY_LEAKY_RELU
    return y >= 0.0f ? y : act_a * y;
#elif ACTIVATION == UNARY_CLIP
    return y < act_a ? (floatv)(act_a) : (y > act_b ? (floatv)(act_b) : y);
#elif ACTIVATION == UNARY_HARD_SIGMOID || ACTIVATION == UNARY_HARD_SWISH
#if ACTIVATION == UNARY_HARD_SIGMOID
    floatv t = act_a * y + act_b;
#else
    floatv t = y * (1.0f / 6.0f) + 0.5f;
#endif
    t = t > 0.0f ? t : (floatv)(0.0f);
    t = t < 1.0f ? t : (floatv)(1.0f);
#if ACTIVATION == UNARY_HARD_SIGMOID
    return t;
#else
    return y * t;
#endif
#else
    float lane[VW];
    STOREV_PRIVATE(lane, y);
    for (int i = 0; i < VW; ++i) lane[i] = ACTIVATE(lane[i], act_a, act_b);
    return LOADV_PRIVATE(lane);
#endif
}

#endif /* MACECL_ACTIVATION_H */
