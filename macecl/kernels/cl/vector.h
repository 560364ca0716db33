/*
 * vector.h: float vectors of the width a program is built for (-DVW=<4|8|16>, the device's
 * preferred width; default 4), for kernels whose work item walks a contiguous row.
 */

#ifndef MACECL_VECTOR_H
#define MACECL_VECTOR_H

#ifndef VW
#define VW 4
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define floatv CAT(float, VW)
#define vloadv CAT(vload, VW)
#define vstorev CAT(vstore, VW)

/* The sum of a vector's lanes, halving (as wide as VW is). */
float lanes_sum(floatv v)
{
#if VW == 16
    float8 h8 = v.lo + v.hi;
#elif VW == 8
    float8 h8 = v;
#endif
#if VW >= 8
    float4 h4 = h8.lo + h8.hi;
#else
    float4 h4 = v;
#endif
    float2 h2 = h4.lo + h4.hi;
    return h2.x + h2.y;
}

/* The largest lane (fmax: a NaN lane is passed over). */
float lanes_max(floatv v)
{
#if VW == 16
    float8 h8 = fmax(v.lo, v.hi);
#elif VW == 8
    float8 h8 = v;
#endif
#if VW >= 8
    float4 h4 = fmax(h8.lo, h8.hi);
#else
    float4 h4 = v;
#endif
    float2 h2 = fmax(h4.lo, h4.hi);
    return fmax(h2.x, h2.y);
}

#endif /* MACECL_VECTOR_H */
