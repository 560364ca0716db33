"""Convolutions: Conv and ConvTranspose, 1-D and 2-D, on the ``conv2d`` and
``conv_transpose2d`` programs.

A 1-D operator runs as a 2-D one on a view with H = 1 (input (N, C, 1, L), filter
(M, C / group, 1, K)), so both kernels see NCHW only. The window geometry helpers here
(:func:`window_attrs`, :func:`window_output`) are shared with pooling: ONNX gives every
windowed operator the same attributes (kernel_shape, strides, dilations, pads, auto_pad).
Bottom/right pads only shape the output, so the kernels take the top/left pads and the
output size. An activation the converter fused (``node.attrs["activation"]``) is applied in
the same launch.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.activations import fused
from macecl.ops.registry import checker, ints, lowering

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def spatial_rank(node: Node) -> int | None:
    """The number of spatial dims the attributes imply, or None when none of them says."""
    for name in ("kernel_shape", "strides", "dilations"):
        value = node.attrs.get(name)
        if value is not None and len(value):
            return len(value)
    pads = node.attrs.get("pads")
    if pads is not None and len(pads):
        return len(pads) // 2
    return None


def auto_pad(node: Node) -> str:
    value = node.attrs.get("auto_pad", "NOTSET")
    if isinstance(value, bytes):
        value = value.decode()
    return str(value)


def check_window(node: Node, what: str) -> str | None:
    """The reasons shared by every windowed operator: more than 2 spatial dims, a bad auto_pad."""
    rank = spatial_rank(node)
    if rank is not None and rank > 2:
        return f"{what} with {rank} spatial dims"
    if auto_pad(node) not in AUTO_PADS:
        return f"{what} with auto_pad {auto_pad(node)}"
    return None


def window_attrs(node: Node, rank: int, builder) -> tuple[list[int], list[int], list[int],
                                                            list[int]]:
    """strides, dilations, pads_begin, pads_end of a node with ``rank`` spatial dims."""
    strides = ints(node, "strides") or [1] * rank
    dilations = ints(node, "dilations") or [1] * rank
    pads = ints(node, "pads") or [0] * (2 * rank)
    if len(strides) != rank or len(dilations) != rank or len(pads) != 2 * rank:
        raise builder.fail(f"strides {strides}, dilations {dilations} or pads {pads} do not "
                           f"match {rank} spatial dims")
    if any(s <= 0 for s in strides) or any(d <= 0 for d in dilations):
        raise builder.fail(f"strides {strides} and dilations {dilations} must be positive")
    return strides, dilations, pads[:rank], pads[rank:]


def window_output(size: int, kernel: int, stride: int, dilation: int, begin: int, end: int,
                  mode: str, ceil_mode: bool = False) -> tuple[int, int, int]:
    """(output size, pad begin, pad end) of one spatial axis of a Conv / pool window."""
    extent = dilation * (kernel - 1) + 1
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + extent - size)
        begin = total // 2 if mode == "SAME_UPPER" else total - total // 2
        return out, begin, total - begin
    if mode == "VALID":
        begin = end = 0
    span = size + begin + end - extent
    if span < 0:
        return 0, begin, end
    if ceil_mode:
        out = -(-span // stride) + 1
        # PyTorch and onnxruntime: the last window must start inside the input or left padding
        if (out - 1) * stride >= size + begin:
            out -= 1
    else:
        out = span // stride + 1
    return out, begin, end


def as_2d(builder, value, rank: int):
    """An NC + 1-D tensor as NC + (1, L); a 2-D one as is."""
    if rank == 1:
        return builder.view(value, (*value.shape[:2], 1, value.shape[2]))
    return value


def lift(values: list[int], rank: int, fill: int) -> list[int]:
    """Per-axis values of a 1-D window as those of the (1, L) 2-D one."""
    return [fill, *values] if rank == 1 else list(values)


@checker("Conv")
def _check_conv(node: Node) -> str | None:
    return check_window(node, "Conv")


@checker("ConvTranspose")
def _check_conv_transpose(node: Node) -> str | None:
    return check_window(node, "ConvTranspose")


def _operands(node: Node, inputs: list, builder, transposed: bool):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    if x is None or w is None:
        raise builder.fail("the input and the weights are required")
    if x.rank not in (3, 4):
        raise builder.fail(f"input of rank {x.rank} (shape {list(x.shape)}): macecl runs 1-D "
                           f"and 2-D {node.op} only")
    if w.rank != x.rank:
        raise builder.fail(f"weights {list(w.shape)} do not match the input {list(x.shape)}")
    rank = x.rank - 2
    kernel = list(w.shape[2:])
    declared = ints(node, "kernel_shape")
    if declared is not None and declared != kernel:
        raise builder.fail(f"kernel_shape {declared} does not match the weights {list(w.shape)}")
    group = int(node.attrs.get("group", 1))
    channels = x.shape[1]
    if group <= 0 or channels % group:
        raise builder.fail(f"{channels} input channels do not split into {group} groups")
    if transposed:
        if w.shape[0] != channels:
            raise builder.fail(f"weights {list(w.shape)} do not take {channels} input channels")
        out_channels = w.shape[1] * group
    else:
        out_channels = w.shape[0]
        if w.shape[1] * group != channels or out_channels % group:
            raise builder.fail(f"weights {list(w.shape)} with group {group} do not fit "
                               f"{channels} input channels")
    if bias is not None and bias.size != out_channels:
        raise builder.fail(f"bias of shape {list(bias.shape)} for {out_channels} output channels")
    return x, w, bias, rank, kernel, group, out_channels


def _convolve(node: Node, builder, program: str, x, w, bias, group: int, out_channels: int,
              strides: list[int], dilations: list[int], begins: list[int], outs: list[int]):
    """The output of ``program`` (conv2d or conv_transpose2d); a 1-D case runs as (1, L)."""
    out = builder.new((x.shape[0], out_channels, *outs))
    if out.size == 0:
        return out
    rank = len(outs)
    x2, w2, out2 = (as_2d(builder, v, rank) for v in (x, w, out))
    s, d, b = lift(strides, rank, 1), lift(dilations, rank, 1), lift(begins, rank, 0)
    options, act_a, act_b = fused(node)
    if bias is not None:
        options = ["-DHAS_BIAS", *options]
    n, c_in, h, wd = x2.shape
    _, c_out, oh, ow = out2.shape
    geometry = (n, c_in, h, wd, c_out, oh, ow, *w2.shape[2:], s[0], s[1], d[0], d[1], b[0], b[1],
                group)
    args = [x2, w2, bias, out2, *(np.int32(v) for v in geometry), act_a, act_b]
    builder.launch(program, program, args, out2.size, options=options)
    return out


@lowering("Conv")
def _lower_conv(node: Node, inputs: list, builder) -> list:
    x, w, bias, rank, kernel, group, out_channels = _operands(node, inputs, builder, False)
    strides, dilations, begins, ends = window_attrs(node, rank, builder)
    mode = auto_pad(node)
    outs = []
    for axis in range(rank):
        size, begins[axis], ends[axis] = window_output(
            x.shape[2 + axis], kernel[axis], strides[axis], dilations[axis], begins[axis],
            ends[axis], mode)
        outs.append(size)
    return [_convolve(node, builder, "conv2d", x, w, bias, group, out_channels, strides,
                      dilations, begins, outs)]


def transpose_geometry(node: Node, shape: tuple[int, ...], kernel: list[int], builder
                       ) -> tuple[list[int], list[int], list[int], list[int]]:
    """strides, dilations, pads_begin and output sizes of a ConvTranspose's spatial axes."""
    rank = len(kernel)
    strides, dilations, begins, ends = window_attrs(node, rank, builder)
    padding = ints(node, "output_padding") or [0] * rank
    if len(padding) != rank:
        raise builder.fail(f"output_padding {padding} does not match {rank} spatial dims")
    mode = auto_pad(node)
    requested = ints(node, "output_shape")
    if requested is not None:
        requested = requested[-rank:]  # it may list N and C too
        if len(requested) != rank:
            raise builder.fail(f"output_shape {ints(node, 'output_shape')} does not match "
                               f"{rank} spatial dims")
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        requested = [shape[2 + axis] * strides[axis] for axis in range(rank)]
    outs = []
    for axis in range(rank):
        full = (strides[axis] * (shape[2 + axis] - 1) + padding[axis]
                + dilations[axis] * (kernel[axis] - 1) + 1)
        if requested is not None:  # pads follow from the size (the pads attribute is ignored)
            total = max(0, full - requested[axis])
            begins[axis] = total // 2 if mode == "SAME_UPPER" else total - total // 2
            outs.append(requested[axis])
        else:
            if mode == "VALID":
                begins[axis] = ends[axis] = 0
            outs.append(full - begins[axis] - ends[axis])
    return strides, dilations, begins, outs


@lowering("ConvTranspose")
def _lower_conv_transpose(node: Node, inputs: list, builder) -> list:
    x, w, bias, rank, kernel, group, out_channels = _operands(node, inputs, builder, True)
    strides, dilations, begins, outs = transpose_geometry(node, x.shape, kernel, builder)
    return [_convolve(node, builder, "conv_transpose2d", x, w, bias, group, out_channels,
                      strides, dilations, begins, outs)]

