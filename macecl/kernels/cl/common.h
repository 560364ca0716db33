/*
 * Shared helpers of the macecl kernel library (OpenCL C 1.2, FP32, NCHW).
 *
 * Conventions every program follows:
 *   - one work item per output element, 1-D NDRange; the global size may be rounded up, so
 *     every kernel starts with `if (gid >= total) return;`; no kernel assumes a local size;
 *   - shapes, strides and counts are `int` arguments, scalar parameters are `float`;
 *   - rank-generic kernels (elementwise, transpose, copy, matmul) take a small
 *     `__global const int* meta` buffer whose layout is documented at the top of each program.
 *
 * Unary operations and fused activations share one numbering (UNARY_*), so that an op fused
 * into a convolution and the same op run on its own by unary.cl compute exactly the same
 * function. `unary_op(kind, x, a, b)` is called with a compile-time constant `kind` (a -D
 * option), which the compiler folds to the one branch that applies.
 */

#ifndef MACECL_COMMON_H
#define MACECL_COMMON_H

#define UNARY_NONE          0   /* identity: "no fused activation" */
#define UNARY_RELU          1
#define UNARY_LEAKY_RELU    2   /* a = alpha */
#define UNARY_CLIP          3   /* a = min, b = max; Relu6 is Clip(0, 6) */
#define UNARY_SIGMOID       4
#define UNARY_TANH          5
#define UNARY_HARD_SIGMOID  6   /* a = alpha, b = beta: max(0, min(1, a*x + b)) */
#define UNARY_HARD_SWISH    7   /* x * HardSigmoid(x) with alpha 1/6, beta 0.5 */
#define UNARY_SOFTPLUS      8
#define UNARY_ELU           9   /* a = alpha */
#define UNARY_SQRT         10
#define UNARY_EXP          11
#define UNARY_LOG          12
#define UNARY_ABS          13
#define UNARY_NEG          14
#define UNARY_RECIPROCAL   15
#define UNARY_SWISH        16   /* a = alpha: x * Sigmoid(a*x) (ONNX Swish; SiLU is a = 1) */
/* a * HardSwish(x) + b: never an ONNX op, the converter's fusion of HardSwish -> Mul -> Add
   by scalars (PP-OCRv4's learnable affine block before a padded convolution) */
#define UNARY_HARD_SWISH_AFFINE 17
#define UNARY_ERF          18
#define UNARY_GELU         19   /* x * (1 + erf(x / sqrt(2))) / 2 (ONNX Gelu) */
#define UNARY_GELU_TANH    20   /* Gelu's approximate="tanh" form */
#define UNARY_FLOOR        21
#define UNARY_CEIL         22
#define UNARY_ROUND        23   /* halves to even, as ONNX Round */
#define UNARY_SIGN         24
#define UNARY_SIN          25
#define UNARY_COS          26
#define UNARY_TAN          27
#define UNARY_ASIN         28
#define UNARY_ACOS         29
#define UNARY_ATAN         30
#define UNARY_SINH         31
#define UNARY_COSH         32
#define UNARY_ASINH        33
#define UNARY_ACOSH        34
#define UNARY_ATANH        35
#define UNARY_SELU         36   /* a = alpha, b = gamma */
#define UNARY_CELU         37   /* a = alpha */
#define UNARY_MISH         38   /* x * tanh(softplus(x)) */
#define UNARY_SOFTSIGN     39
#define UNARY_THRESHOLDED_RELU 40  /* a = alpha: x where x > alpha, else 0 */
#define UNARY_SHRINK       41   /* a = lambd, b = bias */

/* Programs that fuse an activation default to none, so the option can be left out. */
#ifndef ACTIVATION
#define ACTIVATION UNARY_NONE
#endif

/* clamp(x, 0, 1) with comparisons: no builtin call, and NaN passes */
inline float unit_range(const float x)
{
    return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
}

/* Gelu's erf(x / sqrt(2)) by Abramowitz and Stegun's 7.1.26 (absolute error below 1.5e-7),
   one exp instead of the erf builtin: fused into a GEMM on PoCL, a vector erf call per store
   made ConvNeXt's 3136 x 96 @ 96 x 384 MatMul 6.9 ms against 1.3 ms without an activation
   (an exp: 1.5 ms). GELU_P and the ERF_A<n> are the approximation's constants; activate.h
   writes the same steps on vectors. */
#define GELU_P 0.3275911f
#define ERF_A1 0.254829592f
#define ERF_A2 (-0.284496736f)
#define ERF_A3 1.421413741f
#define ERF_A4 (-1.453152027f)
#define ERF_A5 1.061405429f
inline float gelu(const float x)
{
    const float s = fabs(x) * M_SQRT1_2_F;
    const float t = 1.0f / (1.0f + GELU_P * s);
    const float tail = t * (ERF_A1 + t * (ERF_A2 + t * (ERF_A3 + t * (ERF_A4 + t * ERF_A5))));
    const float e = 1.0f - tail * exp(-s * s);  /* erf(|x| / sqrt(2)) */
    return 0.5f * x * (1.0f + (x < 0.0f ? -e : e));
}

/* Gelu's tanh form, 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)): one exp, no tanh */
#define GELU_TANH_U(x) (1.5957691216f * ((x) + 0.044715f * (x) * (x) * (x)))  /* 2u */

float unary_op(const int kind, const float x, const float a, const float b)
{
    switch (kind) {
    /* Relu and Clip are written with comparisons so that NaN passes through, as in NumPy
       and ONNX Runtime; fmax / fmin would turn it into a bound. */
    case UNARY_RELU:         return x < 0.0f ? 0.0f : x;
    case UNARY_LEAKY_RELU:   return x >= 0.0f ? x : a * x;
    case UNARY_CLIP:         return x < a ? a : (x > b ? b : x);
    /* exp(-x) overflowing to inf for very negative x still gives the right limit, 0 */
    case UNARY_SIGMOID:      return 1.0f / (1.0f + exp(-x));
    case UNARY_TANH:         return tanh(x);
    /* comparisons too, as activate.h's vector forms (one function, fused or not) */
    case UNARY_HARD_SIGMOID: return unit_range(a * x + b);
    case UNARY_HARD_SWISH:   return x * unit_range(x * (1.0f / 6.0f) + 0.5f);
    /* log(1 + exp(x)) written so that exp never overflows and small results keep precision */
    case UNARY_SOFTPLUS:     return fmax(x, 0.0f) + log1p(exp(-fabs(x)));
    case UNARY_ELU:          return x >= 0.0f ? x : a * expm1(x);
    case UNARY_SQRT:         return sqrt(x);
    case UNARY_EXP:          return exp(x);
    case UNARY_LOG:          return log(x);
    case UNARY_ABS:          return fabs(x);
    case UNARY_NEG:          return -x;
    case UNARY_RECIPROCAL:   return 1.0f / x;
    case UNARY_SWISH:        return x / (1.0f + exp(-a * x));
    case UNARY_HARD_SWISH_AFFINE:
        return a * (x * unit_range(x * (1.0f / 6.0f) + 0.5f)) + b;
    case UNARY_ERF:          return erf(x);
    case UNARY_GELU:         return gelu(x);
    case UNARY_GELU_TANH:    return x / (1.0f + exp(-GELU_TANH_U(x)));
    case UNARY_FLOOR:        return floor(x);
    case UNARY_CEIL:         return ceil(x);
    case UNARY_ROUND:        return rint(x);  /* the default rounding mode: halves to even */
    case UNARY_SIGN:         return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);  /* 0 and NaN */
    case UNARY_SIN:          return sin(x);
    case UNARY_COS:          return cos(x);
    case UNARY_TAN:          return tan(x);
    case UNARY_ASIN:         return asin(x);
    case UNARY_ACOS:         return acos(x);
    case UNARY_ATAN:         return atan(x);
    case UNARY_SINH:         return sinh(x);
    case UNARY_COSH:         return cosh(x);
    case UNARY_ASINH:        return asinh(x);
    case UNARY_ACOSH:        return acosh(x);
    case UNARY_ATANH:        return atanh(x);
    case UNARY_SELU:         return b * (x > 0.0f ? x : a * expm1(x));
    case UNARY_CELU:         return x > 0.0f ? x : a * expm1(x / a);  /* NaN passes */
    /* tanh(softplus(x)) = n / (n + 2) with n = e^x (e^x + 2), no cancellation for negative x;
       past x = 20 the ratio is 1 in float, and e^x would overflow further on */
    case UNARY_MISH: {
        if (x > 20.0f) return x;
        const float e = exp(x), n = e * (e + 2.0f);
        return x * n / (n + 2.0f);
    }
    case UNARY_SOFTSIGN:     return x / (1.0f + fabs(x));
    case UNARY_THRESHOLDED_RELU: return x > a ? x : 0.0f;
    case UNARY_SHRINK:       return x < -a ? x + b : (x > a ? x - b : 0.0f);
    default:                 return x;
    }
}

/* The fused activation of programs built with -DACTIVATION=<UNARY_*>. */
#define ACTIVATE(x, a, b) unary_op(ACTIVATION, (x), (a), (b))

/* The input channel that output channel co of a depthwise convolution reads (C_out = C_in *
   multiplier): co / multiplier; built with -DSHUFFLE=<g>, a channel shuffle of g groups read
   in place (converter/channel_shuffle.py, multiplier 1), (co % g) * (C_in / g) + co / g. */
inline int depthwise_source(const int co, const int C_in, const int multiplier)
{
#ifdef SHUFFLE
    return co % SHUFFLE * (C_in / SHUFFLE) + co / SHUFFLE;
#else
    return co / multiplier;
#endif
}

#endif /* MACECL_COMMON_H */
