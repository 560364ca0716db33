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
 *   -DPREFETCH=<rows>   (panel blocking) prefetch B's row that many ahead (a clang
 *                       builtin: CPUs only)
 *   -DROWS=<1..8>       rows of Y per work item (default 8); the host takes fewer for a
 *                       matrix of fewer rows (a fully connected layer's one), whose rows
 *                       past M would only repeat row M - 1
 *   -DNV=<1|2>          (gemm, panel blocking) column vectors per work item (default 1);
 *                       with 2 the host makes sure N >= 2 * VW, so every block is whole
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
#include "activate.h"

#ifndef ROWS
#define ROWS 8
#endif

#ifdef TRANS_A
#define A_AT(m, k) A[(size_t)(k) * M + (m)]
#else
#define A_AT(m, k) A[(size_t)(m) * K + (k)]
#endif

#if ROWS == 1
#define EACH_ROW(X, arg) X(0, arg)
#elif ROWS == 2
#define EACH_ROW(X, arg) X(0, arg) X(1, arg)
#elif ROWS == 3
#define EACH_ROW(X, arg) X(0, arg) X(1, arg) X(2, arg)
#elif ROWS == 4
#define EACH_ROW(X, arg) X(0, arg) X(1, arg) X(2, arg) X(3, arg)
#elif ROWS == 5
#define EACH_ROW(X, arg) X(0, arg) X(1, arg) X(2, arg) X(3, arg) X(4, arg)
#elif ROWS == 6
#define EACH_ROW(X, arg) X(0, arg) X(1, arg) X(2, arg) X(3, arg) X(4, arg) X(5, arg)
#elif ROWS == 7
#define EACH_ROW(X, arg) X(0, arg) X(1, arg) X(2, arg) X(3, arg) X(4, arg) X(5, arg) X(6, arg)
#elif ROWS == 8
#define EACH_ROW(X, arg) \
    X(0, arg) X(1, arg) X(2, arg) X(3, arg) X(4, arg) X(5, arg) X(6, arg) X(7, arg)
#else
#error "the panel blocking takes 1 to 8 ROWS"
#endif
#ifdef PREFETCH
/* B's rows lie N floats apart, one short run each in another page, which a CPU's prefetchers
   do not follow: the run of row k + PREFETCH (a clang builtin: the CPU's build only) */
#define PREFETCH_PANEL(k)                                                                   \
    __builtin_prefetch(B + (size_t)((k) + PREFETCH) * N + n0);                              \
    __builtin_prefetch(B + (size_t)((k) + PREFETCH) * N + n0 + NV * VW / 2);                \
    __builtin_prefetch(B + (size_t)((k) + PREFETCH) * N + n0 + NV * VW - 1);
#else
#define PREFETCH_PANEL(k)
#endif
#ifndef NV
#define NV 1
#endif
#if NV == 2
/* two vectors of columns: each A value loaded feeds two multiply-adds (torchvision's
   ConvNeXt-tiny on PoCL, one profile each: its last stage's MLP MatMuls, 49 x 768 @ 768 x
   3072, 4.0 -> 2.5 ms; all its gemm launches 80.9 -> 65.2 ms) */
#define PANEL_ZERO(r, unused) floatv acc##r = (floatv)(0.0f), acc##r##_1 = (floatv)(0.0f);
#define PANEL_STEP(r, A_ROW_AT)                                                              \
    {                                                                                        \
        const float a = A_ROW_AT(r, k);                                                      \
        acc##r += a * v;                                                                     \
        acc##r##_1 += a * v1;                                                                \
    }
#define PANEL_B(k)                                                                           \
    const floatv v = LOADV(B + (size_t)(k) * N + n0), v1 = LOADV(B + (size_t)(k) * N + n0 + VW);
#elif NV == 1
#define PANEL_ZERO(r, unused) floatv acc##r = (floatv)(0.0f);
#define PANEL_STEP(r, A_ROW_AT) acc##r += (floatv)(A_ROW_AT(r, k)) * v;
#define PANEL_B(k)                                                                           \
    floatv v;                                                                                \
    if (lanes == VW) {                                                                       \
        v = LOADV(B + (size_t)(k) * N + n0);                                                 \
    } else {                                                                                 \
        float lane[VW];                                                                      \
        for (int i = 0; i < VW; ++i) lane[i] = i < lanes ? B[(size_t)(k) * N + n0 + i] : 0.0f; \
        v = LOADV_PRIVATE(lane);                                                             \
    }
#else
#error "gemm takes NV 1 or 2"
#endif

/* acc<r> = sum over k of A(m0 + r, k) * B[k, n0 .. n0 + VW): the panel blocking. Rows past
   M read row M - 1 (computed, never stored); B's columns past N read zeros. The sums are
   named registers (an array indexed in a loop over the rows stayed in memory: a load and a
   store around every FMA, PP-OCR rec's 40 x 6625 x 120 at 19-33 GF/s). */
#define PANEL_LOOP(A_ROW_AT)                                                                 \
    EACH_ROW(PANEL_ZERO, 0)                                                                 \
    for (int k = 0; k < K; ++k) {                                                           \
        PREFETCH_PANEL(k)                                                                   \
        PANEL_B(k)                                                                          \
        EACH_ROW(PANEL_STEP, A_ROW_AT)                                                      \
    }

/* Y[m, n0 .. n0 + lanes) = act(alpha * sums + beta * C), lane by lane. (A float vector
   argument also lets LLVM keep the kernel's vectors whole: without one it split each
   16-float operation into two of 8.) */
inline void store_row(const floatv sums, const int m, const int n0, const int lanes,
                      const int N, __global const float* C, const int c_stride_m,
                      const int c_stride_n, const float alpha, const float beta,
                      __global float* Y, const float act_a, const float act_b)
{
    if (lanes == VW) {  /* a whole vector: C's row is contiguous (stride 1) or one value */
        floatv y = alpha * sums;
#ifdef HAS_C
        __global const float* c = C + m * c_stride_m + n0 * c_stride_n;
        y += beta * (c_stride_n ? LOADV(c) : (floatv)(c[0]));
#endif
        STOREV(Y + (size_t)m * N + n0, activate_v(y, act_a, act_b));
        return;
    }
    float lane[VW];
    STOREV_PRIVATE(lane, sums);
    for (int i = 0; i < lanes; ++i) {
        float y = alpha * lane[i];
#ifdef HAS_C
        y += beta * C[m * c_stride_m + (n0 + i) * c_stride_n];
#endif
        Y[(size_t)m * N + n0 + i] = ACTIVATE(y, act_a, act_b);
    }
}

/* the first `lanes` of a row's sums at y */
inline void store_lanes(const floatv sums, const int lanes, __global float* y)
{
    float lane[VW];
    STOREV_PRIVATE(lane, sums);
    for (int i = 0; i < lanes; ++i) y[i] = lane[i];
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
    const int blocks = (N + NV * VW - 1) / (NV * VW);
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
    /* a tail block steps back */
    const int n0 = N >= NV * VW ? min(column_block * NV * VW, N - NV * VW) : 0;
#if NV == 2
    const int lanes = VW;  /* each vector's: whole, as the host has N >= 2 * VW */
#else
    const int lanes = min(VW, N - n0);
#endif
#define GEMM_A(r, k) A_AT(MIN_I(m0 + (r), M - 1), k)
    PANEL_LOOP(GEMM_A)
#if NV == 2
#define GEMM_STORE(r, unused)                                                                \
    if (m0 + r < M) {                                                                        \
        store_row(acc##r, m0 + r, n0, lanes, N, C, c_stride_m, c_stride_n, alpha, beta, Y,   \
                  act_a, act_b);                                                             \
        store_row(acc##r##_1, m0 + r, n0 + VW, lanes, N, C, c_stride_m, c_stride_n, alpha,    \
                  beta, Y, act_a, act_b);                                                    \
    }
#else
#define GEMM_STORE(r, unused)                                                                \
    if (m0 + r < M)                                                                         \
        store_row(acc##r, m0 + r, n0, lanes, N, C, c_stride_m, c_stride_n, alpha, beta, Y,   \
                  act_a, act_b);
#endif
    EACH_ROW(GEMM_STORE, 0)
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
#define MATMUL_A(r, k) A[(size_t)MIN_I(m0 + (r), M - 1) * K + (k)]
    PANEL_LOOP(MATMUL_A)
    __global float* y = Y + (size_t)batch * M * N + n0;
#define MATMUL_STORE(r, unused) \
    if (m0 + r < M) store_lanes(acc##r, lanes, y + (size_t)(m0 + r) * N);
    EACH_ROW(MATMUL_STORE, 0)
}
