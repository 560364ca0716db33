/*
 * gemm.cl: ONNX Gemm and batched MatMul, row-major FP32, register-blocked.
 *
 * Build options:
 *   -DVW=<4|8|16>       output columns per work item, one float vector (default 4); the host
 *                       takes the device's preferred float vector width
 *   -DTRANS_A           (gemm) A is stored (K, M) and used transposed; otherwise (M, K)
 *   -DTRANS_B           (gemm) B is stored (N, K) and used transposed; otherwise (K, N)
 *   -DHAS_C             (gemm) add beta * C; without it C is unused and may be NULL
 *   -DACTIVATION=<n>    fused activation, a UNARY_* code of common.h (default 0, none)
 *   -DROWS=<n>          rows of Y per work item (default 8); the host takes fewer for a
 *                       matrix of fewer rows (a fully connected layer's one), whose rows
 *                       past M would only repeat row M - 1
 *
 * Two blockings, both without local memory (any work-group shape is correct):
 *   - panel (B not transposed): a work item computes ROWS rows by VW columns of Y, one
 *     vector load of B's row k feeding ROWS multiply-adds. gemm: a 1-D NDRange of
 *     ceil(N / VW) * ceil(M / ROWS) items, row blocks fastest; matmul: (ceil(N / VW),
 *     ceil(M / ROWS), batches).
 *   - dot (gemm with TRANS_B, B's rows are Y's columns): a work item computes ROWS rows of
 *     one column, VW terms of k at a time from contiguous rows of B (and of A unless
 *     TRANS_A). A 1-D NDRange of N * ceil(M / ROWS) items. Fully connected layers are this
 *     case.
 *   gemm is 1-D because PoCL's CPU device makes a small 2-D NDRange one work-group (one
 *   core), while it splits a 1-D one between the cores; a work item divides its id once.
 *
 * Kernels:
 *   gemm(A, B, C, Y, M, N, K, c_stride_m, c_stride_n, alpha, beta, act_a, act_b)
 *     Y (M, N) = act(alpha * op(A) @ op(B) + beta * C[m * c_stride_m + n * c_stride_n]).
 *     The C strides express its broadcast: full (M, N): (N, 1); row (N) or (1, N): (0, 1);
 *     column (M, 1): (1, 0); scalar: (0, 0).
 *   matmul(A, B, Y, meta, batch_rank, M, N, K, batches)
 *     Y[b] (M, N) = A[b] (M, K) @ B[b] (K, N) with NumPy batch broadcasting, panel
 *     blocking, batches = the product of the output's batch dims. Only VW applies.
 *     meta: int[3 * batch_rank] = out_batch_shape[batch_rank],
 *           a_batch_strides[batch_rank], b_batch_strides[batch_rank]
 *     strides in elements (a whole (M, K) matrix is M * K), 0 where the input broadcasts.
 *     batch_rank may be 0 (meta then unused). 1-D operands are reshaped by the caller, as
 *     NumPy's matmul rules say.
 */

#include "common.h"
#include "vector.h"

#ifndef ROWS
#define ROWS 8
#endif

#ifdef TRANS_A
#define A_AT(m, k) A[(size_t)(k) * M + (m)]
#else
#define A_AT(m, k) A[(size_t)(m) * K + (k)]
#endif

/* acc[r] += A(m0 + r, k) * B[k, n0 .. n0 + VW) over k: the panel blocking's inner loop.
   Rows past M read row M - 1 (computed, never stored); B's columns past N read zeros. */
#define PANEL_LOOP(A_ROW_AT)                                                                 \
    for (int k = 0; k < K; ++k) {                                                           \
        floatv v;                                                                           \
        if (lanes == VW) {                                                                  \
            v = LOADV(B + (size_t)k * N + n0);                                              \
        } else {                                                                            \
            float lane[VW];                                                                 \
            for (int i = 0; i < VW; ++i) lane[i] = i < lanes ? B[(size_t)k * N + n0 + i] : 0.0f; \
            v = LOADV_PRIVATE(lane);                                                        \
        }                                                                                   \
        for (int r = 0; r < ROWS; ++r) acc[r] += (floatv)(A_ROW_AT(r, k)) * v;             \
    }

__kernel void gemm(__global const float* A,
                   __global const float* B,
                   __global const float* C,
                   __global float* Y,
                   const int M, const int N, const int K,
                   const int c_stride_m, const int c_stride_n,
                   const float alpha, const float beta,
                   const float act_a, const float act_b)
{
#ifdef TRANS_B
    const int blocks = N;
#else
    const int blocks = (N + VW - 1) / VW;
#endif
    const int row_blocks = (M + ROWS - 1) / ROWS;
    const int gid = get_global_id(0);
    if (gid >= blocks * row_blocks) return;
    /* row blocks fastest: the work items that follow each other (one work-group loop of
       PoCL) read the same columns of B while they are in cache */
    const int m0 = gid % row_blocks * ROWS;
    const int column_block = gid / row_blocks;
#ifdef TRANS_B
    const int n = column_block;
    floatv acc[ROWS];
    for (int r = 0; r < ROWS; ++r) acc[r] = (floatv)(0.0f);
    float tail[ROWS];
    for (int r = 0; r < ROWS; ++r) tail[r] = 0.0f;
    __global const float* b_row = B + (size_t)n * K;
    const int whole = K - K % VW;
    for (int k = 0; k < whole; k += VW) {
        const floatv b = LOADV(b_row + k);
        for (int r = 0; r < ROWS; ++r) {
            const int m = MIN_I(m0 + r, M - 1);
#ifdef TRANS_A
            float lane[VW];
            for (int i = 0; i < VW; ++i) lane[i] = A_AT(m, k + i);
            acc[r] += LOADV_PRIVATE(lane) * b;
#else
            acc[r] += LOADV(A + (size_t)m * K + k) * b;
#endif
        }
    }
    for (int k = whole; k < K; ++k)
        for (int r = 0; r < ROWS; ++r) tail[r] += A_AT(MIN_I(m0 + r, M - 1), k) * b_row[k];
    for (int r = 0; r < ROWS && m0 + r < M; ++r) {
        float lane[VW];
        STOREV_PRIVATE(lane, acc[r]);
        float sum = tail[r];
        for (int i = 0; i < VW; ++i) sum += lane[i];
        const int m = m0 + r;
        float y = alpha * sum;
#ifdef HAS_C
        y += beta * C[m * c_stride_m + n * c_stride_n];
#endif
        Y[(size_t)m * N + n] = ACTIVATE(y, act_a, act_b);
    }
#else
    const int n0 = N >= VW ? min(column_block * VW, N - VW) : 0;  /* a tail block steps back */
    const int lanes = min(VW, N - n0);
    floatv acc[ROWS];
    for (int r = 0; r < ROWS; ++r) acc[r] = (floatv)(0.0f);
#define GEMM_A(r, k) A_AT(MIN_I(m0 + (r), M - 1), k)
    PANEL_LOOP(GEMM_A)
    for (int r = 0; r < ROWS && m0 + r < M; ++r) {
        float lane[VW];
        STOREV_PRIVATE(lane, acc[r]);
        const int m = m0 + r;
        for (int i = 0; i < lanes; ++i) {
            float y = alpha * lane[i];
#ifdef HAS_C
            y += beta * C[m * c_stride_m + (n0 + i) * c_stride_n];
#endif
            Y[(size_t)m * N + n0 + i] = ACTIVATE(y, act_a, act_b);
        }
    }
#endif
}

__kernel void matmul(__global const float* A,
                     __global const float* B,
                     __global float* Y,
                     __global const int* meta,
                     const int batch_rank,
                     const int M, const int N, const int K,
                     const int batches)
{
    const int block = get_global_id(0);
    const int m0 = get_global_id(1) * ROWS;
    const int batch = get_global_id(2);
    if (block * VW >= N || m0 >= M || batch >= batches) return;

    /* Walk the batch coordinates from the innermost batch dim out, as elementwise.cl does. */
    int rest = batch;
    int a_off = 0;
    int b_off = 0;
    for (int d = batch_rank - 1; d >= 0; --d) {
        const int coord = rest % meta[d];
        rest /= meta[d];
        a_off += coord * meta[batch_rank + d];
        b_off += coord * meta[2 * batch_rank + d];
    }
    A += a_off;
    B += b_off;
    const int n0 = N >= VW ? min(block * VW, N - VW) : 0;
    const int lanes = min(VW, N - n0);
    floatv acc[ROWS];
    for (int r = 0; r < ROWS; ++r) acc[r] = (floatv)(0.0f);
#define MATMUL_A(r, k) A[(size_t)MIN_I(m0 + (r), M - 1) * K + (k)]
    PANEL_LOOP(MATMUL_A)
    __global float* y = Y + (size_t)batch * M * N;
    for (int r = 0; r < ROWS && m0 + r < M; ++r) {
        float lane[VW];
        STOREV_PRIVATE(lane, acc[r]);
        for (int i = 0; i < lanes; ++i)
            y[(size_t)(m0 + r) * N + n0 + i] = lane[i];
    }
}
