/*
 * gemm.cl: ONNX Gemm and batched MatMul, row-major FP32.
 *
 * Build options (kernel `gemm`):
 *   -DTRANS_A           A is stored (K, M) and used transposed; otherwise (M, K)
 *   -DTRANS_B           B is stored (N, K) and used transposed; otherwise (K, N)
 *   -DHAS_C             add beta * C; without it C is unused and may be NULL
 *   -DACTIVATION=<n>    fused activation, a UNARY_* code of common.h (default 0, none)
 * `matmul` takes no options (TRANS_* and HAS_C do not affect it).
 *
 * Kernels:
 *   gemm(A, B, C, Y, M, N, K, c_stride_m, c_stride_n, alpha, beta, act_a, act_b)
 *     Y (M, N) = act(alpha * op(A) @ op(B) + beta * C[m * c_stride_m + n * c_stride_n]).
 *     The C strides express its broadcast: full (M, N): (N, 1); row (N) or (1, N): (0, 1);
 *     column (M, 1): (1, 0); scalar: (0, 0). Global size >= M * N.
 *   matmul(A, B, Y, meta, batch_rank, M, N, K, total)
 *     Y[b] (M, N) = A[b] (M, K) @ B[b] (K, N) with NumPy batch broadcasting.
 *     meta: int[3 * batch_rank] = out_batch_shape[batch_rank],
 *           a_batch_strides[batch_rank], b_batch_strides[batch_rank]
 *     strides in elements (a whole (M, K) matrix is M * K), 0 where the input broadcasts.
 *     batch_rank may be 0 (meta then unused). total = batch * M * N = global size lower bound.
 *     1-D operands are reshaped by the caller, as NumPy's matmul rules say.
 */

#include "common.h"

__kernel void gemm(__global const float* A,
                   __global const float* B,
                   __global const float* C,
                   __global float* Y,
                   const int M, const int N, const int K,
                   const int c_stride_m, const int c_stride_n,
                   const float alpha, const float beta,
                   const float act_a, const float act_b)
{
    const int gid = get_global_id(0);
    if (gid >= M * N) return;
    const int m = gid / N;
    const int n = gid % N;

    float acc = 0.0f;
    for (int k = 0; k < K; ++k) {
#ifdef TRANS_A
        const float a = A[k * M + m];
#else
        const float a = A[m * K + k];
#endif
#ifdef TRANS_B
        const float b = B[n * K + k];
#else
        const float b = B[k * N + n];
#endif
        acc += a * b;
    }
    float y = alpha * acc;
#ifdef HAS_C
    y += beta * C[m * c_stride_m + n * c_stride_n];
#endif
    Y[gid] = ACTIVATE(y, act_a, act_b);
}

__kernel void matmul(__global const float* A,
                     __global const float* B,
                     __global float* Y,
                     __global const int* meta,
                     const int batch_rank,
                     const int M, const int N, const int K,
                     const int total)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    const int n = gid % N;
    const int m = (gid / N) % M;

    /* Walk the batch coordinates from the innermost batch dim out, as elementwise.cl does. */
    int rest = gid / (M * N);
    int a_off = 0;
    int b_off = 0;
    for (int d = batch_rank - 1; d >= 0; --d) {
        const int coord = rest % meta[d];
        rest /= meta[d];
        a_off += coord * meta[batch_rank + d];
        b_off += coord * meta[2 * batch_rank + d];
    }

    __global const float* a_row = A + a_off + m * K;
    __global const float* b_col = B + b_off + n;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += a_row[k] * b_col[k * N];
    Y[gid] = acc;
}
