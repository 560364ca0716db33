"""Kernel variants of the non-convolution ops, timed interleaved: the figures behind the
choices in resize.cl, elementwise.cl, transpose.cl, pooling.cl and ops/squeeze_excite.py.

For each case (a tensor shape of the bench models that the profile, bench/kernel_profile.py,
showed to matter), every way runs --rounds times, the ways interleaved round by round so
that machine noise hits them alike; prints the median kernel time (OpenCL profiling events)
of each, its ratio to the first way, and checks that all ways wrote the same output. The
first way of each case is the kernel the library had before (its source kept here, built
with the library's helpers); the others are the library's kernel and variants tried.

    python bench/op_kernels.py [--rounds 9] [--device SELECTOR] [--cases resize,rows]

What it showed is recorded in the docstring of each op family's lowering.
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("PYOPENCL_NO_CACHE", "1")

import numpy as np
import pyopencl as cl

from macecl.kernels import program_source, with_headers
from macecl.ops.traits import DeviceTraits
from macecl.runtime.device import select_device

i32, f32 = np.int32, np.float32

# resize.cl's nearest kernel before: a 1-D NDRange, each item peeling (plane, row, column)
# off its id with divisions.
RESIZE_1D = """
__kernel void resize_nearest_1d(__global const float* input, __global float* output,
                                const int N, const int C, const int H, const int W,
                                const int OH, const int OW,
                                const float scale_h, const float scale_w)
{
    const int gid = get_global_id(0);
    if (gid >= N * C * OH * OW) return;
    const int ow = gid % OW;
    const int oh = (gid / OW) % OH;
    const int nc = gid / (OW * OH);
    const int ih = nearest_index(source_coord(oh, H, OH, scale_h), H);
    const int iw = nearest_index(source_coord(ow, W, OW, scale_w), W);
    output[gid] = input[(nc * H + ih) * W + iw];
}
"""

RESIZE_ROWS = """
__kernel void resize_nearest_rows(__global const float* input, __global float* output,
                                const int N, const int C, const int H, const int W,
                                const int OH, const int OW,
                                const float scale_h, const float scale_w)
{
    const int ow0 = get_global_id(0) * VW;
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);
    if (ow0 >= OW || oh >= OH || nc >= N * C) return;
    const int ih = nearest_index(source_coord(oh, H, OH, scale_h), H);
    __global const float* row = input + (nc * H + ih) * W;
    __global float* out = output + (nc * OH + oh) * OW;
    if (ow0 + VW <= OW) {
        float v[VW];
        for (int k = 0; k < VW; ++k)
            v[k] = row[nearest_index(source_coord(ow0 + k, W, OW, scale_w), W)];
        for (int k = 0; k < VW; ++k) out[ow0 + k] = v[k];
    } else {
        for (int ow = ow0; ow < OW; ++ow)
            out[ow] = row[nearest_index(source_coord(ow, W, OW, scale_w), W)];
    }
}
"""

# elementwise.cl's per-row kernel before: a 1-D NDRange, a division per element for its row.
ROWS_1D = """
__kernel void binary_rows_1d(__global const float* a, __global const float* b,
                             __global float* out, const int inner, const int total)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    out[gid] = binary_op(a[gid], b[gid / inner]);
}
"""

# A 2-D per-row kernel with 16 elements per item, vectorised by hand (a Mul only).
ROWS_X16 = """
float16 binary_op16(const float16 x, const float16 y) { return x * y; }

__kernel void binary_rows_vec(__global const float* a, __global const float* b,
                              __global float* out, const int inner, const int rows)
{
    const int i = get_global_id(0) * 16;
    const int row = get_global_id(1);
    if (i >= inner || row >= rows) return;
    const int at = row * inner + i;
    const float v = b[row];
    if (i + 16 <= inner) {
        vstore16(binary_op16(vload16(0, a + at), (float16)v), 0, out + at);
    } else {
        for (int k = 0; k < inner - i; ++k) out[at + k] = binary_op(a[at + k], v);
    }
}
"""

# pooling.cl's global average before: one scalar sum per plane.
GLOBAL_AVG_SCALAR = """
__kernel void global_avg_pool_scalar(__global const float* input, __global float* output,
                                     const int NC, const int HW)
{
    const int gid = get_global_id(0);
    if (gid >= NC) return;
    __global const float* plane = input + gid * HW;
    float sum = 0.0f;
    for (int i = 0; i < HW; ++i) sum += plane[i];
    output[gid] = sum / (float)HW;
}
"""

# pooling.cl's windowed pools before: one output pixel a work item, over a 3-D NDRange.
POOL_PIXEL = """
__kernel void max_pool2d_pixel(__global const float* input,
                         __global float* output,
                         const int N, const int C, const int H, const int W,
                         const int OH, const int OW, const int KH, const int KW,
                         const int stride_h, const int stride_w,
                         const int dil_h, const int dil_w,
                         const int pad_top, const int pad_left)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);
    if (ow >= OW || oh >= OH || nc >= N * C) return;
    const int at = (nc * OH + oh) * OW + ow;
    __global const float* plane = input + nc * H * W;
    const int ih0 = oh * stride_h - pad_top;
    const int iw0 = ow * stride_w - pad_left;

    /* The taps inside the input, found once, so that the loops below test nothing; a window
       wholly inside (most of them) skips the divisions that finding them takes. */
    const bool inside = ih0 >= 0 && ih0 + (KH - 1) * dil_h < H
                        && iw0 >= 0 && iw0 + (KW - 1) * dil_w < W;
    const int kh_lo = inside ? 0 : taps_from(ih0, dil_h);
    const int kh_hi = inside ? KH : taps_to(ih0, dil_h, KH, H);
    const int kw_lo = inside ? 0 : taps_from(iw0, dil_w);
    const int kw_hi = inside ? KW : taps_to(iw0, dil_w, KW, W);
    float best = -INFINITY;
    for (int kh = kh_lo; kh < kh_hi; ++kh) {
        __global const float* row = plane + (ih0 + kh * dil_h) * W + iw0;
        for (int kw = kw_lo; kw < kw_hi; ++kw) {
            const float v = row[kw * dil_w];
            /* NaN wins, as in ReduceMax; v != v is isnan() without the builtin call that
               vector.h's NOTE is about */
            best = v != v || v > best ? v : best;
        }
    }
    output[at] = best;
}

__kernel void avg_pool2d_pixel(__global const float* input,
                         __global float* output,
                         const int N, const int C, const int H, const int W,
                         const int OH, const int OW, const int KH, const int KW,
                         const int stride_h, const int stride_w,
                         const int dil_h, const int dil_w,
                         const int pad_top, const int pad_left,
                         const int pad_bottom, const int pad_right,
                         const int count_include_pad)
{
    const int ow = get_global_id(0);
    const int oh = get_global_id(1);
    const int nc = get_global_id(2);
    if (ow >= OW || oh >= OH || nc >= N * C) return;
    const int at = (nc * OH + oh) * OW + ow;
    __global const float* plane = input + nc * H * W;
    const int ih0 = oh * stride_h - pad_top;
    const int iw0 = ow * stride_w - pad_left;

    /* Taps that count toward the divisor lie in [lo, hi) on each axis. */
    const int h_lo = count_include_pad ? -pad_top : 0;
    const int h_hi = count_include_pad ? H + pad_bottom : H;
    const int w_lo = count_include_pad ? -pad_left : 0;
    const int w_hi = count_include_pad ? W + pad_right : W;

    float sum = 0.0f;
    int rows = 0;
    int cols = 0;
    for (int kh = 0; kh < KH; ++kh) {
        const int ih = ih0 + kh * dil_h;
        rows += (ih >= h_lo && ih < h_hi);
        if (ih < 0 || ih >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int iw = iw0 + kw * dil_w;
            if (iw < 0 || iw >= W) continue;
            sum += plane[ih * W + iw];
        }
    }
    /* The counted region is a box, so its tap count is rows * cols. */
    for (int kw = 0; kw < KW; ++kw) {
        const int iw = iw0 + kw * dil_w;
        cols += (iw >= w_lo && iw < w_hi);
    }
    const int count = rows * cols;
    output[at] = count > 0 ? sum / (float)count : 0.0f;
}
"""


class Runner:
    def __init__(self, device):
        self.ctx = cl.Context([device])
        self.queue = cl.CommandQueue(
            self.ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
        self.programs: dict[tuple[str, str], object] = {}

    def program(self, source: str, options: str):
        key = (source, options)
        if key not in self.programs:
            program = cl._cl._Program(self.ctx, source)
            program.build(options.encode())
            self.programs[key] = program
        return self.programs[key]

    def buffer(self, array=None, size=0):
        flags = cl.mem_flags
        if array is None:  # zeros, so that elements no way writes compare equal
            array = np.zeros(max(1, size), np.float32)
        return cl.Buffer(self.ctx, flags.READ_WRITE | flags.COPY_HOST_PTR,
                         hostbuf=np.ascontiguousarray(array, np.float32))

    def int_buffer(self, array):
        flags = cl.mem_flags
        return cl.Buffer(self.ctx, flags.READ_ONLY | flags.COPY_HOST_PTR,
                         hostbuf=np.ascontiguousarray(array, np.int32))

    def time(self, way) -> float:
        source, options, kernel, global_size, local_size, args, _ = way
        knl = cl._cl.Kernel(self.program(source, options), kernel)
        knl.set_args(*args)
        event = cl.enqueue_nd_range_kernel(self.queue, knl, global_size, local_size)
        event.wait()
        return (event.profile.end - event.profile.start) * 1e-6

    def read(self, way, size):
        host = np.empty(size, np.float32)
        cl.enqueue_copy(self.queue, host, way[-1])
        return host


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def resize_cases(runner: Runner, traits: DeviceTraits):
    """PP-OCR det's FPN upsampling: nearest, asymmetric, floor, x2 and x8."""
    rng = np.random.default_rng(0)
    source = program_source("resize")
    options = "-DCOORD_MODE=2 -DNEAREST_MODE=2"
    for planes, h, w, factor in ((96, 80, 80, 2), (24, 20, 20, 8)):
        oh, ow = h * factor, w * factor
        x = runner.buffer(rng.standard_normal(planes * h * w))
        scalars = [*map(i32, (planes, 1, h, w, oh, ow)), f32(factor), f32(factor)]
        ways = {}
        out = runner.buffer(size=planes * oh * ow)
        ways["1-D (before)"] = (source + RESIZE_1D, options, "resize_nearest_1d",
                                (round_up(planes * oh * ow, 64),), None, [x, out, *scalars], out)
        out = runner.buffer(size=planes * oh * ow)
        ways["3-D"] = (source, options, "resize_nearest", (ow, oh, planes), None,
                                 [x, out, *scalars], out)
        for local in ((16, 1, 1), (64, 1, 1), (160, 1, 1), (16, 4, 1)):
            out = runner.buffer(size=planes * oh * ow)
            ways[f"3-D local {local}"] = (
                source, options, "resize_nearest",
                tuple(round_up(g, l) for g, l in zip((ow, oh, planes), local)), local,
                [x, out, *scalars], out)
        out = runner.buffer(size=planes * oh * ow)
        ways["blocks (library)"] = (
            source, "", "resize_nearest_blocks", (w, h, planes), None,
            [x, out, *map(i32, (planes, h, w, factor, factor))], out)
        out = runner.buffer(size=planes * oh * ow)
        ways["rows of 16"] = (source + RESIZE_ROWS, options + " -DVW=16", "resize_nearest_rows",
                              (round_up(ow, 16) // 16, oh, planes), None, [x, out, *scalars], out)
        yield f"resize nearest x{factor} {planes}x{h}x{w}", ways, planes * oh * ow


def rows_cases(runner: Runner, traits: DeviceTraits):
    """A Mul by one value per row: a scalar over PP-OCR det's 16x320x320 (rows 1), a
    per-channel scale over 24x320x320 (batch norm), SE's 192x20x20."""
    rng = np.random.default_rng(0)
    source = program_source("elementwise")
    options = "-DOP=2"
    for rows, inner in ((1, 16 * 320 * 320), (24, 320 * 320), (192, 400)):
        a = runner.buffer(rng.standard_normal(rows * inner))
        b = runner.buffer(rng.standard_normal(rows))
        ways = {}
        out = runner.buffer(size=rows * inner)
        ways["1-D (before)"] = (source + ROWS_1D, options, "binary_rows_1d",
                                (round_up(rows * inner, 64),), None,
                                [a, b, out, i32(inner), i32(rows * inner)], out)
        out = runner.buffer(size=rows * inner)
        ways["2-D (library, binary_3d)"] = (source, options, "binary_3d", (inner, rows, 1),
                                            None, [a, b, out, i32(inner), i32(rows), i32(1)],
                                            out)
        out = runner.buffer(size=rows * inner)
        ways["2-D x16"] = (source + ROWS_X16, options, "binary_rows_vec",
                           (-(-inner // 16), rows), None, [a, b, out, i32(inner), i32(rows)], out)
        yield f"mul per row {rows}x{inner}", ways, rows * inner
    # a bias over the last axis: PoCL picks work-groups of (1, 40) for (6625, 40)
    rows, inner = 40, 6625
    a = runner.buffer(rng.standard_normal(rows * inner))
    b = runner.buffer(rng.standard_normal(inner))
    ways = {}
    per_column = "-DOP=0 -DSKIP_MIDDLE"  # binary_3d with outer 1: one value a column
    for local in (None, (16, 1, 1), (64, 1, 1)):
        out = runner.buffer(size=rows * inner)
        size = (inner, rows, 1) if local is None else (round_up(inner, local[0]), rows, 1)
        ways[f"per column local {local}"] = (source, per_column, "binary_3d", size, local,
                                             [a, b, out, i32(inner), i32(rows), i32(1)], out)
    out = runner.buffer(size=rows * inner)
    ways["per column, width rounded to 64"] = (
        source, per_column, "binary_3d", (round_up(inner, 64), rows, 1), None,
        [a, b, out, i32(inner), i32(rows), i32(1)], out)
    yield f"add per column {rows}x{inner}", ways, rows * inner


def softmax_cases(runner: Runner, traits: DeviceTraits):
    """Softmax along the last axis: PP-OCR rec's classes (40 x 6625) and attention (320 x 40)."""
    rng = np.random.default_rng(0)
    source = program_source("softmax")
    for outer, size in ((40, 6625), (320, 40)):
        x = runner.buffer(rng.standard_normal(outer * size))
        ways = {}
        out = runner.buffer(size=outer * size)
        ways["softmax (before)"] = (source, "", "softmax", (round_up(outer, 64),), None,
                                    [x, out, i32(outer), i32(size), i32(1)], out)
        out = runner.buffer(size=outer * size)
        ways["softmax_rows"] = (source, f"-DVW={traits.vector_width}", "softmax_rows",
                                (round_up(outer, 64),), None, [x, out, i32(outer), i32(size)], out)
        yield f"softmax {outer}x{size}", ways, outer * size


def gemm_cases(runner: Runner, traits: DeviceTraits):
    """PP-OCR rec's MatMuls by a weight, (40 x 120) @ (120 x 6625) and @ (120 x 360), and
    ResNet-50's classifier, (1 x 2048) @ (1000 x 2048)^T. The kernel before is gemm.cl as it
    was at commit 73cf944 (a 2-D NDRange, 8 rows per item always), read with git."""
    import subprocess

    before = subprocess.run(["git", "show", "73cf944:macecl/kernels/cl/gemm.cl"], check=True,
                            capture_output=True, text=True).stdout
    before = before.replace('#include "common.h"', program_source("unary").split(
        "__kernel")[0])  # the library's helpers (common.h inlined)
    previous = subprocess.run(["git", "show", "e31de30:macecl/kernels/cl/gemm.cl"], check=True,
                              capture_output=True, text=True).stdout
    previous = with_headers(previous)
    rng = np.random.default_rng(0)
    source = program_source("gemm")
    vw = traits.vector_width
    for m, n, k, trans_b in ((40, 6625, 120, False), (40, 360, 120, False), (40, 240, 120, False),
                             (40, 120, 240, False), (1, 1000, 2048, True)):
        a = runner.buffer(rng.standard_normal(m * k))
        b = runner.buffer(rng.standard_normal(k * n))
        scalars = [*map(i32, (m, n, k, 0, 0)), *map(f32, (1, 1, 0, 0))]
        blocks = n if trans_b else -(-n // vw)
        options = f"-DVW={vw}" + (" -DTRANS_B" if trans_b else "")
        ways = {}
        out = runner.buffer(size=m * n)
        ways["2-D (before)"] = (before, options, "gemm", (blocks, -(-m // 8)), None,
                                [a, b, None, out, *scalars], out)
        out = runner.buffer(size=m * n)
        ways["2-D (before), local (4, 1)"] = (before, options, "gemm",
                                              (round_up(blocks, 4), -(-m // 8)), (4, 1),
                                              [a, b, None, out, *scalars], out)
        rows = min(8, m)
        out = runner.buffer(size=m * n)
        ways["1-D, column blocks fastest"] = (previous, f"{options} -DROWS={rows}", "gemm",
                                              (round_up(blocks * -(-m // rows), 64),), None,
                                              [a, b, None, out, *scalars], out)
        out = runner.buffer(size=m * n)
        ways["1-D (library)"] = (source, f"{options} -DROWS={rows}", "gemm",
                                 (round_up(blocks * -(-m // rows), 64),), None,
                                 [a, b, None, out, *scalars], out)
        out = runner.buffer(size=m * n)
        ways["1-D (library), 1 item"] = (source, f"{options} -DROWS={rows}", "gemm",
                                         (blocks * -(-m // rows),), (1,),
                                         [a, b, None, out, *scalars], out)
        for width, rows in ((8, 8), (16, 4)):  # other register blocks, tried
            out = runner.buffer(size=m * n)
            count = (n if trans_b else -(-n // width)) * -(-m // min(rows, m))
            ways[f"1-D VW {width} ROWS {rows}"] = (
                source, f"-DVW={width} -DROWS={min(rows, m)}" + (" -DTRANS_B" if trans_b else ""),
                "gemm", (round_up(count, 64),), None, [a, b, None, out, *scalars], out)
        yield f"gemm {m}x{n}x{k}{' transB' if trans_b else ''}", ways, m * n


def transpose_cases(runner: Runner, traits: DeviceTraits):
    """ShuffleNet's channel shuffle, (1, 4, 28, 56, 56) -> (1, 28, 4, 56, 56)."""
    rng = np.random.default_rng(0)
    import subprocess

    source = program_source("transpose")
    before_rows = subprocess.run(  # transpose_rows as the commit before vector items had it
        ["git", "show", "6bb2760:macecl/kernels/cl/transpose.cl"], check=True,
        capture_output=True, text=True).stdout.replace(
            '#include "common.h"', program_source("unary").split("__kernel")[0])
    before_walk = subprocess.run(  # transpose, one float an item, as 0146e0a had it
        ["git", "show", "0146e0a:macecl/kernels/cl/transpose.cl"], check=True,
        capture_output=True, text=True).stdout.replace('#include "vector.h"', "").replace(
            '#include "common.h"', source.split("__kernel")[0])
    groups, channels, plane = 4, 28, 56 * 56
    x = runner.buffer(rng.standard_normal(groups * channels * plane))
    size = groups * channels * plane
    ways = {}
    out = runner.buffer(size=size)
    table = np.array([28, 4, 56, 56, plane, channels * plane, 56, 1], np.int32)
    ways["4-D walk (before)"] = (before_walk, "", "transpose", (round_up(size, 64),), None,
                                 [x, out, runner.int_buffer(table), i32(4), i32(size)], out)
    out = runner.buffer(size=size)
    table = np.array([channels, groups, plane, plane, channels * plane, 1], np.int32)
    ways["merged 3-D walk"] = (before_walk, "", "transpose", (round_up(size, 64),), None,
                               [x, out, runner.int_buffer(table), i32(3), i32(size)], out)
    out = runner.buffer(size=size)
    table = np.array([channels, groups, plane, channels * plane], np.int32)
    ways["rows, one float an item"] = (before_rows, "", "transpose_rows",
                                       (plane, channels * groups), None,
                                       [x, out, runner.int_buffer(table), i32(2), i32(plane),
                                        i32(channels * groups)], out)
    out = runner.buffer(size=size)
    vw = traits.vector_width
    ways["rows, a vector an item (library)"] = (
        source, f"-DVW={vw}", "transpose_rows", (-(-plane // vw), channels * groups), None,
        [x, out, runner.int_buffer(table), i32(2), i32(plane), i32(channels * groups)], out)
    yield "channel shuffle 4x28x56x56", ways, size


def pool_cases(runner: Runner, traits: DeviceTraits):
    """SqueezeNet's first max pool (3x3/2, 64 x 111 x 111 -> 55 x 55), ShuffleNet's average
    pools (3x3/2, pads 1), and PP-OCR det's global averages."""
    rng = np.random.default_rng(0)
    source = program_source("pooling")
    vw = traits.vector_width
    for kind, planes, h, w, pad in (("max", 64, 111, 111, 0), ("avg", 24, 56, 56, 1),
                                    ("avg", 136, 28, 28, 1)):
        oh, ow = (h + 2 * pad - 3) // 2 + 1, (w + 2 * pad - 3) // 2 + 1
        x = runner.buffer(rng.standard_normal(planes * h * w))
        scalars = [*map(i32, (1, planes, h, w, oh, ow, 3, 3, 2, 2, 1, 1, pad, pad))]
        if kind == "avg":
            scalars += [i32(pad), i32(pad), i32(0)]
        ways = {}
        out = runner.buffer(size=planes * oh * ow)
        ways["a pixel an item (before)"] = (source + POOL_PIXEL, "", f"{kind}_pool2d_pixel",
                                            (ow, oh, planes), None, [x, out, *scalars], out)
        out = runner.buffer(size=planes * oh * ow)
        ways["a vector an item (library)"] = (source, f"-DVW={vw}", f"{kind}_pool2d",
                                              (-(-ow // vw), oh, planes), None,
                                              [x, out, *scalars], out)
        yield f"{kind} pool 3x3/2 {planes}x{h}x{w}", ways, planes * oh * ow
    for planes, hw in ((192, 400), (96, 160 * 160)):  # PP-OCR det: SE blocks, FPN
        x = runner.buffer(rng.standard_normal(planes * hw))
        ways = {}
        out = runner.buffer(size=planes)
        ways["scalar (before)"] = (source + GLOBAL_AVG_SCALAR, "", "global_avg_pool_scalar",
                                   (round_up(planes, 64),), None,
                                   [x, out, i32(planes), i32(hw)], out)
        out = runner.buffer(size=planes)
        ways["vectors (library)"] = (source, f"-DVW={traits.vector_width}", "global_avg_pool",
                                     (round_up(planes, 64),), None,
                                     [x, out, i32(planes), i32(hw)], out)
        yield f"global average pool {planes}x{hw}", ways, planes


def copy_cases(runner: Runner, traits: DeviceTraits):
    """Concat's copies: SqueezeNet's 64 x 55 x 55 into the second half of 128 channels (one
    contiguous run), and a slice of rows: x[:, 0:40] of a 64 x 55 x 55 tensor per plane."""
    rng = np.random.default_rng(0)
    source = program_source("copy")
    size = 64 * 55 * 55
    x = runner.buffer(rng.standard_normal(size))
    ways = {}
    out = runner.buffer(size=2 * size)
    table = runner.int_buffer(np.array([size, 1, 1], np.int32))
    ways["copy_box (before)"] = (source, "", "copy_box", (round_up(size, 64),), None,
                                 [x, out, table, i32(1), i32(0), i32(size), i32(size)], out)
    out = runner.buffer(size=2 * size)
    table = runner.int_buffer(np.zeros(1, np.int32))
    ways["copy_rows (library)"] = (source, "", "copy_rows", (round_up(size, 64), 1), None,
                                   [x, out, table, i32(0), i32(0), i32(size), i32(size),
                                    i32(1)], out)
    yield "concat 64x55x55 into 128 channels", ways, 2 * size
    ways = {}
    box = 64 * 40 * 55
    out = runner.buffer(size=box)
    table = runner.int_buffer(np.array([64, 40 * 55, 55 * 55, 1, 40 * 55, 1], np.int32))
    ways["copy_box (before)"] = (source, "", "copy_box", (round_up(box, 64),), None,
                                 [x, out, table, i32(2), i32(0), i32(0), i32(box)], out)
    out = runner.buffer(size=box)
    table = runner.int_buffer(np.array([64, 55 * 55, 40 * 55], np.int32))
    ways["copy_rows (library)"] = (source, "", "copy_rows", (round_up(40 * 55, 64), 64), None,
                                   [x, out, table, i32(1), i32(0), i32(0), i32(40 * 55),
                                    i32(64)], out)
    yield "slice 64 x (40 of 55) x 55", ways, box


def lane_by_lane(source: str, code: str) -> str:
    """``source`` with activate.h's vector form of activation ``code`` (a UNARY_* name)
    turned off, so that it takes the lane-by-lane form: the library before."""
    line = f"#elif ACTIVATION == {code}"
    assert line in source, line
    return source.replace(line, f"#elif 0 && ACTIVATION == {code}")


def activation_cases(runner: Runner, traits: DeviceTraits):
    """Fused activations: PP-OCR det's 1x1 16->32 on 320x320 (conv2d_gemm) with HardSwish,
    and its last ConvTranspose (2x2/2 24->1 to 640x640, conv_transpose2d_disjoint) with
    Sigmoid, each lane by lane (before) and in vectors (activate.h)."""
    from macecl.ops.conv import pack_filter_array
    from macecl.ops.conv_disjoint import disjoint_block, pack_disjoint_filter

    rng = np.random.default_rng(0)
    vw = traits.vector_width
    local = (1, 1, 1) if traits.cpu else None
    source = program_source("conv2d")
    c, m, pixels = 16, 32, 320 * 320
    x = runner.buffer(rng.standard_normal(c * pixels))
    packed = runner.buffer(pack_filter_array(rng.standard_normal((m, c, 1, 1)), 1))
    bias = runner.buffer(rng.standard_normal(m))
    grid = (round_up(m, 8) // 8, -(-pixels // (2 * vw)), 1)
    ways = {}
    for way, text in (("lane by lane (before)", lane_by_lane(source, "UNARY_HARD_SWISH")),
                      ("vectors (library)", source)):
        out = runner.buffer(size=m * pixels)
        ways[way] = (text, f"-DVW={vw} -DHAS_BIAS -DACTIVATION=7", "conv2d_gemm", grid, local,
                     [packed, x, bias, None, out, i32(m), i32(c), i32(pixels), i32(1), i32(1),
                      f32(0), f32(0), i32(0)], out)
    yield "conv2d_gemm 1x1 16->32 320x320 + HardSwish", ways, m * pixels
    source = program_source("conv_transpose2d")
    c, h, w = 24, 320, 320
    channels, vectors = disjoint_block(1, 4)
    x = runner.buffer(rng.standard_normal(c * h * w))
    packed = runner.buffer(pack_disjoint_filter(rng.standard_normal((c, 1, 2, 2)), 1, channels))
    bias = runner.buffer(rng.standard_normal(1))
    options = (f"-DVW={vw} -DHAS_BIAS -DACTIVATION=4 -DCO_BLOCK={channels} -DPX={vectors} "
               "-DSTEP_H=2 -DSTEP_W=2")
    ways = {}
    for way, text in (("lane by lane (before)", lane_by_lane(source, "UNARY_SIGMOID")),
                      ("vectors (library)", source)):
        out = runner.buffer(size=4 * h * w)
        ways[way] = (text, options, "conv_transpose2d_disjoint",
                     (1, -(-w // (vectors * vw)), h), local,
                     [x, packed, bias, out, *map(i32, (c, h, w, 1, 2 * h, 2 * w, 0, 0, 1, 1)),
                      f32(0), f32(0)], out)
    yield "conv_transpose2d_disjoint 2x2/2 24->1 320x320 + Sigmoid", ways, 4 * h * w


def excite_cases(runner: Runner, traits: DeviceTraits):
    """squeeze_excite.cl's excite_scale on the SE blocks of PP-OCR cls, rec and det (Relu,
    HardSigmoid), one item a group as on a CPU, the channels of a sample split into 1, 2, 4,
    8 or 16 groups: each group computes the first layer whole, so more groups are more
    parallel and more recomputation."""
    rng = np.random.default_rng(0)
    source = program_source("squeeze_excite")
    options = f"-DVW={traits.vector_width} -DHIDDEN_ACTIVATION=1 -DGATE_ACTIVATION=6"
    for channels, hidden, plane in ((88, 22, 288), (200, 50, 192), (480, 120, 480),
                                    (384, 96, 400), (96, 24, 25600)):
        x = runner.buffer(rng.standard_normal(channels * plane))
        weights = [runner.buffer(rng.standard_normal(size) * 0.1) for size in
                   (channels, hidden * channels, hidden, channels * hidden, channels)]
        ways = {}
        for blocks in (1, 2, 4, 8, 16):
            block = -(-channels // blocks)
            groups = -(-channels // block)
            out = runner.buffer(size=channels * plane)
            scratch = runner.buffer(size=groups * (hidden + block))
            ways[f"{blocks} groups"] = (
                source, options, "excite_scale", (groups,), (1,),
                [x, *weights, scratch, out, *map(i32, (1, channels, hidden, plane, block)),
                 f32(0), f32(0), f32(0.2), f32(0.5)], out)
        yield f"excite {channels}->{hidden}->{channels} x {plane}", ways, channels * plane


CASES = {"resize": resize_cases, "excite": excite_cases, "activation": activation_cases, "copy": copy_cases, "rows": rows_cases, "softmax": softmax_cases,
         "gemm": gemm_cases, "transpose": transpose_cases, "pool": pool_cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--device", default=None)
    parser.add_argument("--cases", default="", help="comma-separated names: " + ", ".join(CASES))
    options = parser.parse_args()
    device = select_device(options.device).cl_device
    traits = DeviceTraits.of(device)
    runner = Runner(device)
    print(f"{device.name}: {traits}")
    wanted = [c for c in options.cases.split(",") if c] or list(CASES)
    for family in wanted:
        for name, ways, size in CASES[family](runner, traits):
            times = {way: [] for way in ways}
            for _ in range(options.rounds):
                for way, launch in ways.items():
                    times[way].append(runner.time(launch))
            results = [runner.read(launch, size) for launch in ways.values()]
            scale = float(np.max(np.abs(results[0]))) if size else 1.0
            agree = all(np.allclose(r, results[0], rtol=1e-4, atol=1e-5 * scale)
                        for r in results)  # summation orders differ between ways
            first = statistics.median(next(iter(times.values())))
            cells = ", ".join(f"{way} {statistics.median(t):.3f} ms "
                              f"({statistics.median(t) / first:.2f}x)" for way, t in times.items())
            print(f"{name}: {cells}{'' if agree else '  DISAGREE'}", flush=True)


if __name__ == "__main__":
    main()
