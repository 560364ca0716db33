"""Pooling: MaxPool and AveragePool (1-D and 2-D), GlobalAveragePool and GlobalMaxPool (any
rank from 3), on the ``pooling`` program.

A 1-D pool runs as a 2-D one on an (N, C, 1, L) view. Output sizes follow ONNX with
onnxruntime's ceil_mode rule (a last window that would start in the right padding is
dropped, as PyTorch does); the kernel then counts the average's divisor. Global pools see
the input as (N * C, prod(spatial)) planes.

The windowed kernels run over a 3-D NDRange (ceil(OW / VW), OH, N * C): a work item computes
VW output pixels of a row as one float vector of the device's preferred width, loading its
taps as whole vectors (stride 1 or 2; at a row's edges from a staged copy of the segment).
`python bench/op_kernels.py --rounds 9 --cases pool` (PoCL 3.0, 2-core Xeon, VW 16, other jobs
running), median ms of the kernel before (a pixel a work item) against it: SqueezeNet's 3x3/2
max pool over 64 x 111 x 111 1.463 against 0.327 (0.22x); ShuffleNet's 3x3/2 average pools
with pads 1 over 24 x 56 x 56 0.248 against 0.094 (0.38x) and over 136 x 28 x 28, where a
row (14 outputs) is narrower than a vector, 0.345 against 0.187 (0.54x). Counting the
average's divisor tap by tap for each lane had made that last one 1.67x slower than before.
Global pools read each plane in float vectors: PP-OCR det's global average of 96 planes of
160 x 160, 1.33 ms with the scalar loop before against 0.32; of 192 x 20 x 20, 0.021
against 0.013 (same command, --cases pool).

On a CPU, a window that ops/depthwise.py's rows_fit accepts (dilation 1, horizontal stride 1
or 2, at most 7 taps a side) runs as ``pool_rows`` of the depthwise program instead: whole
output rows of a few planes a work item, each input row read once for the band of outputs
it feeds, as depthwise_rows convolves. Kernel ms, these kernels against it (PoCL 3.0, 2
cores, one profile each, machine not idle): ShuffleNet's 3x3/2 average pools 0.109 / 0.041,
0.096 / 0.035, 0.056 / 0.033 and its max pool 0.137 / 0.104; SqueezeNet's three max pools
0.21 / 0.15-0.20, 0.11 / 0.08, 0.10 / 0.055; ResNet-50's 0.38 / 0.30. A pool whose one
window covers the whole plane, unpadded (ShuffleNet's and ResNet-50's last), is a global
pool, on any device: 544 planes of 7 x 7 0.049 / 0.006 ms, 2048 of them about 0.17 / 0.020.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.conv import as_2d, auto_pad, check_window, lift, window_attrs, window_output
from macecl.ops.depthwise import pool_rows_launch, rows_fit
from macecl.ops.registry import checker, evaluation, ints, lowering
from macecl.ops.traits import group_side


@checker("MaxPool")
def _check_max_pool(node: Node) -> str | None:
    if len(node.outputs) > 1 and node.outputs[1]:
        return "MaxPool with an Indices output"
    return check_window(node, "MaxPool")


@checker("AveragePool")
def _check_average_pool(node: Node) -> str | None:
    return check_window(node, "AveragePool")


@lowering("MaxPool", "AveragePool")
def _lower_pool(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    if x.rank not in (3, 4):
        raise builder.fail(f"input of rank {x.rank} (shape {list(x.shape)}): macecl runs 1-D "
                           f"and 2-D {node.op} only")
    rank = x.rank - 2
    kernel = ints(node, "kernel_shape")
    if kernel is None or len(kernel) != rank:
        raise builder.fail(f"kernel_shape {kernel} does not match the input {list(x.shape)}")
    strides, dilations, begins, ends = window_attrs(node, rank, builder)
    mode = auto_pad(node)
    ceil_mode = bool(node.attrs.get("ceil_mode", 0))
    outs = []
    for axis in range(rank):
        size, begins[axis], ends[axis] = window_output(
            x.shape[2 + axis], kernel[axis], strides[axis], dilations[axis], begins[axis],
            ends[axis], mode, ceil_mode)
        outs.append(size)
    out = builder.new((*x.shape[:2], *outs))
    if out.size == 0:
        return [out]
    if node.op == "MaxPool" and len(node.outputs) > 1 and node.outputs[1]:
        raise builder.fail("MaxPool with an Indices output is not supported")
    x2, out2 = as_2d(builder, x, rank), as_2d(builder, out, rank)
    k, s = lift(kernel, rank, 1), lift(strides, rank, 1)
    d, b, e = lift(dilations, rank, 1), lift(begins, rank, 0), lift(ends, rank, 0)
    if out2.shape[2:] == (1, 1) and tuple(k) == x2.shape[2:] and not any(b) and not any(e):
        # one window over the whole plane (ShuffleNet's and ResNet's last pools): a global pool
        _launch_global(builder, x2, out2, "max" if node.op == "MaxPool" else "avg")
        return [out]
    if rows_fit(builder.traits, *k, *s, *d):
        counted = (0, x2.shape[2], 0, x2.shape[3])
        if node.op == "AveragePool" and int(node.attrs.get("count_include_pad", 0)):
            counted = (-b[0], x2.shape[2] + e[0], -b[1], x2.shape[3] + e[1])
        pool_rows_launch(builder, x2, out2, (*k, *s, *b), 1 if node.op == "MaxPool" else 2,
                         counted, _options(builder))
        return [out]
    geometry = [*x2.shape, *out2.shape[2:], *k, *s, *d, *b]
    width = builder.traits.vector_width
    grid = (-(-out2.shape[3] // width), out2.shape[2], out2.shape[0] * out2.shape[1])
    if node.op == "MaxPool":
        program_kernel, args = "max_pool2d", [x2, out2, *(np.int32(v) for v in geometry)]
    else:
        include = int(node.attrs.get("count_include_pad", 0))
        program_kernel = "avg_pool2d"
        args = [x2, out2, *(np.int32(v) for v in (*geometry, *e, include))]
    builder.launch("pooling", program_kernel, args, grid, options=_options(builder),
                   local_size=_window_items(builder, grid))
    return [out]


def _window_items(builder, grid: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """On a CPU (for the windows pool_rows does not take), a group of up to 16 output rows of
    one vector column of one plane; the driver's (or the tuner's) choice elsewhere. PoCL's
    own choice runs thousands of work items as one group, so a small pool ran on one core.
    Kernel ms, PoCL's choice against this (the tuner's best in brackets), PoCL 3.0 on 2
    cores, measured when these pools still ran here: SqueezeNet's 3x3/2 max pools
    0.354 / 0.214 (0.168), 0.165 / 0.088 (0.070), 0.089 / 0.087 (0.074); ShuffleNet's max
    pool 0.146 / 0.118 (0.096) and 3x3/2 average pools 0.074 / 0.047 (0.041), 0.155 / 0.082
    (0.080), 0.107 / 0.075 (0.073); PP-OCR rec's and ShuffleNet's last pools, one row, on a
    par (0.028-0.037). Measured with the tuner's search over every launch of the models."""
    if not builder.traits.cpu:
        return None
    return 1, group_side(grid[1], 16), 1


def _options(builder) -> list[str]:
    """Every pooling launch is built alike, so that a model's pools of one kernel share one
    program."""
    return [f"-DVW={builder.traits.vector_width}"]


def _global_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[:2], *(1,) * (len(shape) - 2))


@evaluation("GlobalAveragePool", "GlobalMaxPool")
def _evaluate_global(node: Node, arrays: list) -> list[np.ndarray]:
    x = arrays[0]
    axes = tuple(range(2, x.ndim))
    reduce = np.mean if node.op == "GlobalAveragePool" else np.max
    return [np.asarray(reduce(x, axis=axes, keepdims=True)).astype(x.dtype)]


@lowering("GlobalAveragePool", "GlobalMaxPool")
def _lower_global(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    if x.rank < 3:
        raise builder.fail(f"input of rank {x.rank} (shape {list(x.shape)}): {node.op} needs "
                           "N, C and at least one spatial dim")
    out = builder.new(_global_shape(x.shape))
    _launch_global(builder, x, out, "avg" if node.op == "GlobalAveragePool" else "max")
    return [out]


def _launch_global(builder, x, out, kind: str) -> None:
    """global_avg_pool or global_max_pool (kind "avg" or "max") of each (N, C) plane of x."""
    planes = x.shape[0] * x.shape[1]
    inner = x.size // planes if planes else 0
    builder.launch("pooling", f"global_{kind}_pool", [x, out, np.int32(planes), np.int32(inner)],
                   planes, options=_options(builder))
