"""Filter taps that only ever read padding are dropped from a Conv.

A dilated convolution on a small feature map can have taps that no output pixel reads from
inside the input: DeepLabV3's ASPP runs 3x3 convolutions of dilation 24 and 36 (pads equal)
on a 14x14 map, where every tap but the centre lands in the zero padding for every pixel;
the same happens to a padded 3x3 convolution on a 1x1 map. Those taps add nothing, yet
im2col writes their zeros and the GEMM multiplies them: on torchvision's
deeplabv3_mobilenet_v3_large, PoCL spent 3.9 ms of GEMM and 1.1 ms of im2col on each of the
two convolutions that are 1x1 convolutions in fact (0.43 ms as such).

:func:`crop_padded_taps` keeps, along each spatial axis, the taps some output pixel reads
from inside the input (an interval), and shrinks the pads by what the dropped taps spanned,
so that the output size and every output value stay what they were.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Dim, Graph, Node
from macecl.ops.conv import window_output
from macecl.ops.registry import ints


def crop_padded_taps(graph: Graph, value_shapes: dict[str, list[Dim]]) -> None:
    """Conv nodes with constant weights and explicit pads, whose input's spatial size is
    known: drop the filter taps that read padding only."""
    known = {spec.name: spec.shape for spec in graph.inputs}
    known.update(value_shapes)
    for node in graph.nodes:
        weight = graph.constants.get(node.inputs[1]) if node.op == "Conv" else None
        shape = known.get(node.inputs[0]) if weight is not None else None
        if shape is None or weight.ndim < 3 or len(shape) != weight.ndim \
                or node.attrs.get("auto_pad", "NOTSET") != "NOTSET":
            continue
        sizes = shape[2:]
        if not all(isinstance(s, int) for s in sizes):
            continue
        crop = _kept_taps(node, sizes, weight.shape[2:])
        if crop is None:
            continue
        spans, pads = crop
        name = f"{node.inputs[1]}/taps"
        graph.constants[name] = np.ascontiguousarray(
            weight[(slice(None), slice(None), *(slice(a, b + 1) for a, b in spans))])
        node.inputs = [node.inputs[0], name, *node.inputs[2:]]
        node.attrs["pads"] = pads
        node.attrs["kernel_shape"] = [b - a + 1 for a, b in spans]
        node.attrs["dilations"] = [d if b > a else 1 for d, (a, b) in
                                   zip(ints(node, "dilations") or [1] * len(sizes), spans)]


def _kept_taps(node: Node, sizes: list[int], kernel: tuple[int, ...]
               ) -> tuple[list[tuple[int, int]], list[int]] | None:
    """The first and last tap kept on each axis and the pads after the crop, or None where
    every tap is read from inside the input somewhere (nothing to drop) or the case is not
    a plain one (a tap never read, between two that are)."""
    rank = len(sizes)  # the attributes as ops/conv.py's window_attrs reads them
    strides = ints(node, "strides") or [1] * rank
    dilations = ints(node, "dilations") or [1] * rank
    pads = ints(node, "pads") or [0] * (2 * rank)
    if len(strides) != rank or len(dilations) != rank or len(pads) != 2 * rank:
        return None
    spans, begins, ends = [], [], []
    for axis, (size, taps) in enumerate(zip(sizes, kernel)):
        stride, dilation = strides[axis], dilations[axis]
        begin, end = pads[axis], pads[rank + axis]
        outputs = window_output(size, taps, stride, dilation, begin, end, "NOTSET")[0]
        if outputs < 1:
            return None
        read = [k for k in range(taps) if _reads_input(k, size, outputs, stride, dilation, begin)]
        if not read or read != list(range(read[0], read[-1] + 1)):
            return None
        first, last = read[0], read[-1]
        begin -= first * dilation
        end -= (taps - 1 - last) * dilation
        if begin < 0 or end < 0:
            return None
        spans.append((first, last))
        begins.append(begin)
        ends.append(end)
    if all(span == (0, taps - 1) for span, taps in zip(spans, kernel)):
        return None
    return spans, begins + ends


def _reads_input(tap: int, size: int, outputs: int, stride: int, dilation: int,
                 begin: int) -> bool:
    """Whether some output position's ``tap`` reads inside [0, size): input index
    o * stride - begin + tap * dilation for o in [0, outputs)."""
    offset = tap * dilation - begin
    first = max(0, -(offset // stride))  # the smallest o with o * stride + offset >= 0
    return first < outputs and first * stride + offset < size
