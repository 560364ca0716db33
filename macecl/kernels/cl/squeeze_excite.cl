/*
 * squeeze_excite.cl: the excitation of a squeeze-and-excitation block, after its channel
 * means (pooling.cl's global_avg_pool), in one launch.
 *
 * Build options: -DVW=<4|8|16> (vector.h), -DHIDDEN_ACTIVATION=<UNARY_*> and
 * -DGATE_ACTIVATION=<UNARY_*> (common.h; default none), the activations of the two layers.
 *
 * Kernel:
 *   excite_scale(input, means, w1, b1, w2, b2, scratch, output,
 *                N, C, CM, HW, CB, hidden_a, hidden_b, gate_a, gate_b)
 *     input and output (N, C, HW), means (N, C), w1 (CM, C), b1 (CM), w2 (C, CM), b2 (C),
 *     scratch (groups, CM + CB):
 *       hidden = HIDDEN(w1 . means[n] + b1)        gate = GATE(w2 . hidden + b2)
 *       output[n, c, :] = input[n, c, :] * gate[c]
 *     A 1-D NDRange of whole work-groups, launched with a fixed local size (the kernel
 *     relies on it): work-group g takes sample n = g / blocks and the CB channels from
 *     c0 = (g % blocks) * CB, where blocks = ceil(C / CB). Its items share the work in
 *     three phases, each written to the group's row of scratch and passed through a
 *     barrier: every hidden unit (each group computes the whole, small first layer), then
 *     the gates of its channels, then its planes scaled. With one item a group (a CPU) the
 *     barriers cost nothing and the item does it all, the planes in float vectors of VW;
 *     several items (a GPU) scale neighbouring floats.
 *
 * NOTE(PoCL 3.0 pip wheel): with 32 or more items a group, a plane loop in float16 (or
 * float8) vectors strided by items * VW corrupted the host's heap (glibc aborted at exit;
 * no buffer was written out of bounds): the vectors are for the one-item groups only.
 */

#include "common.h"
#include "vector.h"

#ifndef HIDDEN_ACTIVATION
#define HIDDEN_ACTIVATION UNARY_NONE
#endif
#ifndef GATE_ACTIVATION
#define GATE_ACTIVATION UNARY_NONE
#endif

/* a . b over n floats: whole vectors, then the tail one by one (operators only: see
   vector.h's NOTE) */
inline float dot_rows(__global const float* a, __global const float* b, const int n)
{
    const int whole = n - n % VW;
    floatv acc = (floatv)(0.0f);
    for (int i = 0; i < whole; i += VW) acc += LOADV(a + i) * LOADV(b + i);
    float sum = lanes_sum(acc);
    for (int i = whole; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

__kernel void excite_scale(__global const float* input,
                           __global const float* means,
                           __global const float* w1,
                           __global const float* b1,
                           __global const float* w2,
                           __global const float* b2,
                           __global float* scratch,
                           __global float* output,
                           const int N, const int C, const int CM, const int HW, const int CB,
                           const float hidden_a, const float hidden_b,
                           const float gate_a, const float gate_b)
{
    const int item = get_local_id(0);
    const int items = get_local_size(0);
    const int group = get_group_id(0);
    const int blocks = (C + CB - 1) / CB;
    const int n = group / blocks;
    if (n >= N) return;  /* the whole group alike: no item of it reaches a barrier */
    const int c0 = (group % blocks) * CB;
    const int channels = MIN_I(CB, C - c0);
    __global float* hidden = scratch + (size_t)group * (CM + CB);
    __global float* gate = hidden + CM;

    __global const float* mean = means + (size_t)n * C;
    for (int j = item; j < CM; j += items)
        hidden[j] = unary_op(HIDDEN_ACTIVATION, dot_rows(w1 + (size_t)j * C, mean, C) + b1[j],
                             hidden_a, hidden_b);
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int i = item; i < channels; i += items)
        gate[i] = unary_op(GATE_ACTIVATION,
                           dot_rows(w2 + (size_t)(c0 + i) * CM, hidden, CM) + b2[c0 + i],
                           gate_a, gate_b);
    barrier(CLK_GLOBAL_MEM_FENCE);

    if (items == 1) {  /* a CPU: each plane in float vectors */
        const int whole = HW - HW % VW;
        for (int i = 0; i < channels; ++i) {
            const float scale = gate[i];
            const size_t at = ((size_t)n * C + c0 + i) * HW;
            for (int p = 0; p < whole; p += VW)
                STOREV(output + at + p, LOADV(input + at + p) * scale);
            for (int p = whole; p < HW; ++p) output[at + p] = input[at + p] * scale;
        }
        return;
    }
    /* a GPU: neighbouring items, neighbouring floats */
    for (int i = 0; i < channels; ++i) {
        const float scale = gate[i];
        const size_t at = ((size_t)n * C + c0 + i) * HW;
        for (int p = item; p < HW; p += items) output[at + p] = input[at + p] * scale;
    }
}
