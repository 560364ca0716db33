/*
 * activate.h: the fused activation (-DACTIVATION=<UNARY_*>, common.h) of a whole float
 * vector (-DVW, vector.h), for the kernels that store their outputs as vectors.
 */

#ifndef MACECL_ACTIVATE_H
#define MACECL_ACTIVATE_H

#include "common.h"
#include "vector.h"

/* Relu as a vector select (no builtin call, see vector.h's NOTE), others lane by lane. */
inline floatv activate_v(floatv y, const float act_a, const float act_b)
{
#if ACTIVATION == UNARY_NONE
    return y;
#elif ACTIVATION == UNARY_RELU
    return y < 0.0f ? (floatv)(0.0f) : y;  /* NaN passes, as in unary_op */
#else
    float lane[VW];
    STOREV_PRIVATE(lane, y);
    for (int i = 0; i < VW; ++i) lane[i] = ACTIVATE(lane[i], act_a, act_b);
    return LOADV_PRIVATE(lane);
#endif
}

#endif /* MACECL_ACTIVATE_H */
