/*
 * vector.h: float vectors of the width a program is built for (-DVW=<4|8|16>, the device's
 * preferred width; default 4), for kernels whose work item walks a contiguous row, and the
 * builtin-free loads, stores and min of hot loops (see the NOTE below).
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

/* NOTE(PoCL 3.0 pip wheel, LLVM 14, Sapphire Rapids): the builtin library is built for
   skylake-avx512, kernels for the CPU LLVM names "rocketlake", whose features lack CLWB; LLVM
   inlines no function whose features are not a subset of its caller's, so every builtin
   (mad, vload16, min, ...) stays a call that spills every live vector register (conv2d.cl's GEMM
   ran at 14 GFLOP/s that way). Hot loops therefore use operators only: `acc += w * v`
   contracts to an FMA (FP_CONTRACT is on in OpenCL C), and vectors load and store through
   a 4-byte-aligned vector type, which is what vloadn / vstoren mean. */
typedef float floatv_u __attribute__((ext_vector_type(VW), aligned(4)));
#define LOADV(p) (*(__global const floatv_u*)(p))
#define STOREV(p, v) (*(__global floatv_u*)(p) = (v))
#define LOADV_PRIVATE(p) (*(const floatv_u*)(p))
#define STOREV_PRIVATE(p, v) (*(floatv_u*)(p) = (v))
/* int vectors of the same width, for per-lane indices and masks (a comparison gives -1 where
   true); GATHERV(p, i) loads p[i.s0], p[i.s1], ... straight into a vector's lanes */
#define intv CAT(int, VW)
#define AS_FLOATV(v) CAT(as_float, VW)(v)
#define AS_INTV(v) CAT(as_int, VW)(v)
#if VW == 16
#define LANE_INDICES ((intv)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define GATHERV(p, i) ((floatv)((p)[(i).s0], (p)[(i).s1], (p)[(i).s2], (p)[(i).s3], \
    (p)[(i).s4], (p)[(i).s5], (p)[(i).s6], (p)[(i).s7], (p)[(i).s8], (p)[(i).s9], \
    (p)[(i).sa], (p)[(i).sb], (p)[(i).sc], (p)[(i).sd], (p)[(i).se], (p)[(i).sf]))
#elif VW == 8
#define LANE_INDICES ((intv)(0, 1, 2, 3, 4, 5, 6, 7))
#define GATHERV(p, i) ((floatv)((p)[(i).s0], (p)[(i).s1], (p)[(i).s2], (p)[(i).s3], \
    (p)[(i).s4], (p)[(i).s5], (p)[(i).s6], (p)[(i).s7]))
#else
#define LANE_INDICES ((intv)(0, 1, 2, 3))
#define GATHERV(p, i) ((floatv)((p)[(i).s0], (p)[(i).s1], (p)[(i).s2], (p)[(i).s3]))
#endif
#define MIN_I(a, b) ((a) < (b) ? (a) : (b))  /* min() without the builtin call */

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
