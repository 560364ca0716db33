/*
 * winograd.cl: the input and output transforms of a Winograd convolution F(m x m, 3 x 3)
 * (3x3 kernel, stride 1, dilation 1, one group), NCHW. ops/conv_winograd.py chooses it and
 * says why. With T = m + 2 and a tile of m x m output pixels (its T x T input patch):
 *
 *     output tile = A^T [ (G g G^T) . (B^T d B) ] A
 *
 * The filter transform U = G g G^T is done once on the host; the T * T element-wise
 * products, summed over input channels, are T * T independent GEMMs, which conv2d.cl's
 * conv2d_gemm runs as its groups:
 *
 *     winograd_input:  input (N, C, H, W)           -> V (N, T*T, C, tiles)
 *     conv2d_gemm:     U (T*T groups, C_out x C) . V -> Mt (N, T*T, C_out, tiles)
 *     winograd_output: Mt                            -> act(output + bias + residual)
 *
 * Tiles are numbered row by row, tile (ty, tx) is p = ty * tiles_w + tx; its output pixels
 * are rows m*ty .. m*ty + m - 1 and columns m*tx .. m*tx + m - 1 (clipped at OH, OW), its
 * input patch starts at (m*ty - pad_top, m*tx - pad_left), zero outside the input.
 *
 * Build options:
 *   -DWINO_M=<2|4>      the output tile (default 2): F(2x2, 3x3) or F(4x4, 3x3)
 *   -DVW=<4|8|16>       the tiles a work item transforms together, as the lanes of its vectors
 *   -DHAS_BIAS, -DHAS_RESIDUAL, -DACTIVATION=<n>: winograd_output's epilogue, as in conv2d.cl
 *
 * Kernels (every dimension guarded by the sizes passed, so any work-group shape is correct):
 *   winograd_input(input, V, C, H, W, tiles_h, tiles_w, pad_top, pad_left, channels)
 *     Each work item transforms every tile of one input plane, VW tiles at a time.
 *     Global size channels = N * C.
 *   winograd_output(Mt, input, filter, bias, residual, output, C_in, H, W, pad_top, pad_left,
 *                   C_out, OH, OW, tiles_h, tiles_w, batch_out, act_a, act_b)
 *     Mt followed by VW spare floats (see below).
 *     Each work item turns VW neighbouring tiles of one tile row of one output channel into
 *     output pixels. Global size (ceil(tiles_w / VW), tiles_h, batch_out), batch_out = N * C_out.
 *     A tile whose products hold an infinity or NaN is computed again by a direct
 *     convolution of the input and the ONNX filter (C_out, C_in, 3, 3): the transforms take
 *     differences of neighbouring inputs, so one infinite input gives inf - inf = NaN across
 *     its tiles, where a direct convolution (and ONNX Runtime) gives +-inf only under its
 *     windows. The check costs one multiply-add a product vector and one sum a block:
 *     SqueezeNet's eight transforms, in-model A/B of two engines (21 profiles, twice), 0.606
 *     / 0.665 and 0.626 / 0.653 ms a run without / with it, about 1% of its device time.
 * In winograd_output, the last block of a row of tiles wider than VW steps back to end at
 * the row's end, recomputing (and writing the same values for) some tiles of its neighbour;
 * lanes past a row's tiles read the next row's (or past the last, VW spare floats that Mt
 * must have past its end), whose outputs it does not store: every load a whole vector
 * (a row narrower than VW loaded lane by lane took SqueezeNet's eight transforms 0.78 ms
 * a run, against 0.57; ResNet-50's 1.12 against 0.85).
 */

#include "common.h"
#include "vector.h"
#include "activate.h"

#ifndef WINO_M
#define WINO_M 2
#endif
#define T (WINO_M + 2)          /* the side of a tile's input patch */
#define ROW_SPAN (WINO_M * (VW + 1))  /* input columns under a block's loads of one row */

/* u = B^T d along one axis: T inputs d[0], d[s], ... -> T outputs u[0], u[t], ... */
inline void input_1d(const floatv* d, const int s, floatv* u, const int t)
{
#if WINO_M == 2
    u[0] = d[0] - d[2 * s];
    u[t] = d[s] + d[2 * s];
    u[2 * t] = d[2 * s] - d[s];
    u[3 * t] = d[s] - d[3 * s];
#else
    const floatv d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s];
    const floatv a = d4 - 4.0f * d2, b = d3 - 4.0f * d1;  /* u1, u2 = a +- b */
    const floatv c = d4 - d2, e = 2.0f * (d3 - d1);       /* u3, u4 = c +- e */
    u[0] = 4.0f * d[0] - 5.0f * d2 + d4;
    u[t] = a + b;
    u[2 * t] = a - b;
    u[3 * t] = c + e;
    u[4 * t] = c - e;
    u[5 * t] = 4.0f * d1 - 5.0f * d3 + d[5 * s];
#endif
}

/* y = A^T z along one axis: T inputs z[0], z[s], ... -> WINO_M outputs y[0], y[t], ... */
inline void output_1d(const floatv* z, const int s, floatv* y, const int t)
{
#if WINO_M == 2
    y[0] = z[0] + z[s] + z[2 * s];
    y[t] = z[s] - z[2 * s] - z[3 * s];
#else
    const floatv p1 = z[s] + z[2 * s], m1 = z[s] - z[2 * s];
    const floatv p2 = z[3 * s] + z[4 * s], m2 = z[3 * s] - z[4 * s];
    y[0] = z[0] + p1 + p2;
    y[t] = m1 + 2.0f * m2;
    y[2 * t] = p1 + 4.0f * p2;
    y[3 * t] = m1 + 8.0f * m2 + z[5 * s];
#endif
}

/* d[c], c < T, lane i = the input column x0 + WINO_M * i + c, from the vectors LOAD(k) of
   columns x0 + k .. x0 + k + VW - 1: the columns of VW neighbouring tiles, deinterleaved */
#if WINO_M == 2
#define SPLIT_ROW(LOAD, d)                                                                 \
    {                                                                                      \
        floatv a = LOAD(0), b = LOAD(VW);                                                  \
        d[0] = (floatv)(a.even, b.even);                                                   \
        d[1] = (floatv)(a.odd, b.odd);                                                     \
        a = LOAD(2);                                                                       \
        b = LOAD(2 + VW);                                                                  \
        d[2] = (floatv)(a.even, b.even);                                                   \
        d[3] = (floatv)(a.odd, b.odd);                                                     \
    }
#else
#define SPLIT_ROW(LOAD, d)                                                                 \
    {                                                                                      \
        floatv a = LOAD(0), b = LOAD(VW), c = LOAD(2 * VW), e = LOAD(3 * VW);              \
        floatv even_lo = (floatv)(a.even, b.even), odd_lo = (floatv)(a.odd, b.odd);        \
        floatv even_hi = (floatv)(c.even, e.even), odd_hi = (floatv)(c.odd, e.odd);        \
        d[0] = (floatv)(even_lo.even, even_hi.even);                                       \
        d[1] = (floatv)(odd_lo.even, odd_hi.even);                                         \
        d[2] = (floatv)(even_lo.odd, even_hi.odd);                                         \
        d[3] = (floatv)(odd_lo.odd, odd_hi.odd);                                           \
        a = LOAD(4);                                                                       \
        b = LOAD(4 + VW);                                                                  \
        c = LOAD(4 + 2 * VW);                                                              \
        e = LOAD(4 + 3 * VW);                                                              \
        even_lo = (floatv)(a.even, b.even);                                                \
        odd_lo = (floatv)(a.odd, b.odd);                                                   \
        even_hi = (floatv)(c.even, e.even);                                                \
        odd_hi = (floatv)(c.odd, e.odd);                                                   \
        d[4] = (floatv)(even_lo.even, even_hi.even);                                       \
        d[5] = (floatv)(odd_lo.even, odd_hi.even);                                         \
    }
#endif

/* The tiles tx0 .. tx0 + VW - 1 of tile row ty of one input plane, transformed, stored at
   out[position * (i * T + j)] for i, j < T: the first `lanes` of them, or all VW where
   `whole` (lanes past the row then land on the next row's tiles, which the caller writes
   next) */
inline void transform_input_tiles(__global const float* plane, const int H, const int W,
                                  const int ty, const int tx0, const int pad_top,
                                  const int pad_left, __global float* out,
                                  const size_t position, const int lanes, const bool whole)
{
    const int x0 = WINO_M * tx0 - pad_left;
    const bool inside = x0 >= 0 && x0 + ROW_SPAN <= W;
    floatv u[T * T];  /* u[r * T + j]: row r of the patches times B */
    #pragma unroll
    for (int r = 0; r < T; ++r) {
        const int y = WINO_M * ty - pad_top + r;
        floatv d[T];
        if (y < 0 || y >= H) {
            for (int j = 0; j < T; ++j) u[r * T + j] = (floatv)(0.0f);
            continue;
        }
        __global const float* row = plane + y * W + x0;  /* read where the columns are in [0, W) */
        if (inside) {
#define LOAD_GLOBAL(k) LOADV(row + (k))
            SPLIT_ROW(LOAD_GLOBAL, d)
        } else {
            float staged[ROW_SPAN];
            for (int j = 0; j < ROW_SPAN; ++j)
                staged[j] = x0 + j >= 0 && x0 + j < W ? row[j] : 0.0f;
#define LOAD_STAGED(k) LOADV_PRIVATE(staged + (k))
            SPLIT_ROW(LOAD_STAGED, d)
        }
        input_1d(d, 1, u + r * T, 1);
    }
    #pragma unroll
    for (int j = 0; j < T; ++j) {
        floatv v[T];
        input_1d(u + j, T, v, 1);
        #pragma unroll
        for (int i = 0; i < T; ++i) {
            __global float* at = out + (i * T + j) * position;
            if (whole) {
                STOREV(at, v[i]);
            } else {
                float lane[VW];
                STOREV_PRIVATE(lane, v[i]);
                for (int k = 0; k < lanes; ++k) at[k] = lane[k];
            }
        }
    }
}

__kernel void winograd_input(__global const float* input,
                             __global float* V,
                             const int C, const int H, const int W,
                             const int tiles_h, const int tiles_w,
                             const int pad_top, const int pad_left,
                             const int channels)
{
    /* one input plane a work item, its tiles in order: a block's vector runs on into the
       next row's tiles, which this work item writes next, so only the plane's last vectors
       need partial stores (one work item per VW tiles instead, stepping the last block of
       a row back to stay whole, measured the same: det 3x3 96->24 on 80x80, F(4x4, 3x3),
       1.11 against 1.04 ms; resnet 3x3 64 on 56x56 0.24 against 0.21 ms) */
    const int nc = get_global_id(0);  /* n * C + c */
    if (nc >= channels) return;
    __global const float* plane = input + (size_t)nc * H * W;
    const int P = tiles_h * tiles_w;
    /* V[n, i * T + j, c, p] */
    __global float* out = V + ((size_t)nc / C * T * T * C + nc % C) * P;
    const size_t position = (size_t)C * P;
    for (int ty = 0; ty < tiles_h; ++ty) {
        for (int tx0 = 0; tx0 < tiles_w; tx0 += VW) {
            const int p0 = ty * tiles_w + tx0;
            const int lanes = tiles_w - tx0 < VW ? tiles_w - tx0 : VW;
            transform_input_tiles(plane, H, W, ty, tx0, pad_top, pad_left, out + p0, position,
                                  lanes, p0 + VW <= P);
        }
    }
}

/* The lanes of v, each repeated WINO_M times: the `part`-th vector of them */
inline floatv stretch(const floatv v, const int part)
{
#if WINO_M == 2 && VW == 16
    return part == 0 ? v.s0011223344556677 : v.s8899aabbccddeeff;
#elif WINO_M == 2 && VW == 8
    return part == 0 ? v.s00112233 : v.s44556677;
#elif WINO_M == 2
    return part == 0 ? v.s0011 : v.s2233;
#elif VW == 16
    return part == 0 ? v.s0000111122223333 : part == 1 ? v.s4444555566667777
         : part == 2 ? v.s88889999aaaabbbb : v.sccccddddeeeeffff;
#elif VW == 8
    return part == 0 ? v.s00001111 : part == 1 ? v.s22223333
         : part == 2 ? v.s44445555 : v.s66667777;
#else
    return part == 0 ? v.s0000 : part == 1 ? v.s1111 : part == 2 ? v.s2222 : v.s3333;
#endif
}

/* The output pixels of each tile from (ty, tx0) on whose lane of `seen` is not 0 (its
   products held an infinity or NaN; lanes past the row's tiles are 0), plane nc = n * C_out
   + co, by a direct 3x3 convolution of the input, then the epilogue. Out of line, off the
   fast path. */
__attribute__((noinline))
void direct_tiles(const floatv seen, __global const float* input,
                  __global const float* filter, __global const float* bias,
                  __global const float* residual, __global float* output, const int nc,
                  const int C_out, const int C_in, const int H, const int W, const int pad_top,
                  const int pad_left, const int OH, const int OW, const int ty, const int tx0,
                  const float act_a, const float act_b)
{
    const int n = nc / C_out, co = nc % C_out;
    float bad[VW];
    STOREV_PRIVATE(bad, seen);
    for (int i = 0; i < VW; ++i) {
        if (bad[i] == 0.0f) continue;
        for (int oh = WINO_M * ty; oh < MIN_I(WINO_M * (ty + 1), OH); ++oh) {
            for (int ow = WINO_M * (tx0 + i); ow < MIN_I(WINO_M * (tx0 + i + 1), OW); ++ow) {
                float y = 0.0f;
                for (int ci = 0; ci < C_in; ++ci) {
                    __global const float* plane = input + ((size_t)n * C_in + ci) * H * W;
                    __global const float* taps = filter + ((size_t)co * C_in + ci) * 9;
                    for (int kh = 0; kh < 3; ++kh) {
                        const int ih = oh - pad_top + kh;
                        for (int kw = 0; kw < 3; ++kw) {
                            const int iw = ow - pad_left + kw;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                y += taps[kh * 3 + kw] * plane[ih * W + iw];
                        }
                    }
                }
                const size_t at = ((size_t)nc * OH + oh) * OW + ow;
#ifdef HAS_BIAS
                y += bias[co];
#endif
#ifdef HAS_RESIDUAL
                y += residual[at];
#endif
                output[at] = ACTIVATE(y, act_a, act_b);
            }
        }
    }
}

__kernel void winograd_output(__global const float* Mt,
                              __global const float* input,
                              __global const float* filter,
                              __global const float* bias,
                              __global const float* residual,
                              __global float* output,
                              const int C_in, const int H, const int W,
                              const int pad_top, const int pad_left,
                              const int C_out, const int OH, const int OW,
                              const int tiles_h, const int tiles_w, const int batch_out,
                              const float act_a, const float act_b)
{
    const int block = get_global_id(0);
    const int ty = get_global_id(1);
    const int nc = get_global_id(2);  /* n * C_out + co */
    if (block * VW >= tiles_w || ty >= tiles_h || nc >= batch_out) return;
    const int tx0 = tiles_w < VW ? 0 : (block * VW < tiles_w - VW ? block * VW : tiles_w - VW);
    const int n = nc / C_out;
    const int co = nc % C_out;
    const int P = tiles_h * tiles_w;
    const int p0 = ty * tiles_w + tx0;
    /* Mt[n, position, co, p0 ..] */
    __global const float* in = Mt + ((size_t)n * T * T * C_out + co) * P + p0;
    const size_t position = (size_t)C_out * P;

    floatv z[WINO_M * T];  /* z[r * T + b]: A^T times column b of the tiles' products */
    #pragma unroll
    for (int b = 0; b < T; ++b) {
        floatv m[T];
        #pragma unroll
        for (int a = 0; a < T; ++a)
            m[a] = LOADV(in + (a * T + b) * position);
        output_1d(m, 1, z + b, T);
    }

    /* the tiles whose products met an infinity or NaN: x * 0 is 0 for a finite x, else NaN
       (lanes past the row's tiles, the next row's or the spare floats, left out) */
    floatv seen = (floatv)(0.0f);
    #pragma unroll
    for (int i = 0; i < WINO_M * T; ++i) seen += z[i] * 0.0f;
    seen = LANE_INDICES < tiles_w - tx0 ? seen : (floatv)(0.0f);

    const intv phase = LANE_INDICES % WINO_M;  /* the column of its tile a pixel lane holds */
    const int x0 = WINO_M * tx0;
    for (int r = 0; r < WINO_M && WINO_M * ty + r < OH; ++r) {
        floatv y[WINO_M];  /* y[c]: output row r, column c of every tile */
        output_1d(z + r * T, 1, y, 1);
#ifdef HAS_BIAS
        #pragma unroll
        for (int c = 0; c < WINO_M; ++c) y[c] += bias[co];
#endif
        const size_t row = ((size_t)nc * OH + WINO_M * ty + r) * OW;
        #pragma unroll
        for (int part = 0; part < WINO_M; ++part) {
            const int x = x0 + part * VW;
            if (x >= OW) break;
            floatv pixels = stretch(y[0], part);
            #pragma unroll
            for (int c = 1; c < WINO_M; ++c)
                pixels = phase == c ? stretch(y[c], part) : pixels;
            const size_t at = row + x;
            store_activated(pixels, OW - x, x + VW <= OW, at, residual, output, act_a, act_b);
        }
    }
    /* after the stores, so that the last write to such a tile's pixels is this, whichever
       of the blocks that hold the tile (a row's last block steps back) writes last */
    if (lanes_sum(seen) != 0.0f)
        direct_tiles(seen, input, filter, bias, residual, output, nc, C_out, C_in, H, W,
                     pad_top, pad_left, OH, OW, ty, tx0, act_a, act_b);
}
