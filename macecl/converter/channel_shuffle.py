"""A channel shuffle feeding a depthwise convolution, read by the convolution in place.

ShuffleNet's units shuffle channels as three nodes, then convolve each channel alone:

    r = Reshape(x, [N, g, C / g, H, W])     t = Transpose(r, perm=[0, 2, 1, 3, 4])
    s = Reshape(t, [N, C, H, W])            y = Conv(s, w (C, 1, KH, KW), group=C)

The Transpose is a copy of the whole tensor and a launch of its own (ShuffleNet v1 has 16:
0.53 ms of its 3.4 ms of kernels on PoCL, plus the idle gap before each launch, about 6 us
there). Channel c of s is channel (c % g) * (C / g) + c / g of x, so the Conv reads
x directly with ``attrs["input_shuffle"] = g`` and the depthwise kernels pick each output
channel's input plane by that map (ops/conv.py).

Taken only whole: x's shape known and fixed, the two Reshapes exactly that split and that
merge, each intermediate read by the next node alone and not a graph output, and the Conv
depthwise with one output channel per input channel. The reshapes and the transpose are
left for remove_dead.
"""

from __future__ import annotations

from macecl.graph.ir import Dim, Graph, Node, only_reader
from macecl.ops.shape_ops import reshape_target

SHUFFLE_PERM = [0, 2, 1, 3, 4]


def fuse_channel_shuffle(graph: Graph, value_shapes: dict[str, list[Dim]]) -> None:
    consumers, outputs = graph.consumers(), graph.output_names()
    for split in graph.nodes:
        if split.op != "Reshape":
            continue
        transpose = only_reader(split.outputs[0], consumers, outputs)
        if transpose is None or transpose.op != "Transpose" \
                or list(transpose.attrs.get("perm", [])) != SHUFFLE_PERM:
            continue
        merge = only_reader(transpose.outputs[0], consumers, outputs)
        conv = None if merge is None or merge.op != "Reshape" \
            else only_reader(merge.outputs[0], consumers, outputs)
        if conv is None or conv.op != "Conv" or conv.inputs[0] != merge.outputs[0] \
                or "input_shuffle" in conv.attrs:
            continue
        groups = _shuffle_groups(graph, split, merge, value_shapes.get(split.inputs[0]))
        if groups is None or not _depthwise(graph, conv, value_shapes[split.inputs[0]][1]):
            continue
        conv.inputs = [split.inputs[0], *conv.inputs[1:]]
        conv.attrs["input_shuffle"] = groups


def _shuffle_groups(graph: Graph, split: Node, merge: Node, shape: list[Dim] | None
                    ) -> int | None:
    """g, where ``split`` reshapes x of ``shape`` (N, C, H, W) to (N, g, C / g, H, W) and
    ``merge`` the transposed tensor back to (N, C, H, W); else None."""
    if not shape or len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape):
        return None
    requested = [graph.constants.get(node.inputs[1]) if len(node.inputs) > 1 else None
                 for node in (split, merge)]
    if any(r is None or r.ndim != 1 for r in requested) \
            or any(node.attrs.get("allowzero", 0) for node in (split, merge)):
        return None
    n, c, h, w = shape
    try:
        split_shape = reshape_target(shape, requested[0].tolist(), False)
        if len(split_shape) != 5:
            return None
        groups = split_shape[1]
        transposed = [split_shape[i] for i in SHUFFLE_PERM]
        merged = reshape_target(transposed, requested[1].tolist(), False)
    except ValueError:
        return None
    if split_shape != [n, groups, c // groups, h, w] or merged != shape or c % groups:
        return None
    return groups


def _depthwise(graph: Graph, conv: Node, channels: int) -> bool:
    """Whether ``conv`` convolves each of ``channels`` input channels alone into one output
    channel (its weight a constant (channels, 1, KH, KW))."""
    weight = graph.constants.get(conv.inputs[1]) if len(conv.inputs) > 1 else None
    return (weight is not None and weight.ndim == 4 and weight.shape[:2] == (channels, 1)
            and int(conv.attrs.get("group", 1)) == channels)
