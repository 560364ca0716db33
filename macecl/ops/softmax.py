"""Softmax and LogSoftmax (``softmax.cl``), the tensor seen as (outer, axis, inner).

From opset 13 they normalize along ``axis`` (default -1). Before 13 the input is coerced to
2-D at ``axis`` (default 1): (prod(dims before axis), prod(dims from axis on)), normalized
along the second. The node does not say its opset; the converter gives these nodes an
``opset`` attribute (13 if missing).

Along the last axis (inner 1, the usual case) ``softmax_rows`` reads each row in float
vectors of the device's preferred width; other axes take ``softmax``, one scalar work item
per (outer, inner) pair. `python bench/op_kernels.py --rounds 7 --cases softmax` (PoCL 3.0,
2-core Xeon shared with other jobs), median ms: PP-OCR rec's 40 x 6625 classes: softmax
(before) 3.23, softmax_rows 0.29 (11x faster); its attention's 320 x 40: 0.153, 0.059.
"""

from __future__ import annotations

import math

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.registry import evaluation, lowering


def softmax_view(node: Node, shape) -> tuple[int, int, int]:
    """(outer, axis size, inner) of ``shape`` for ``node``'s opset and axis."""
    rank = len(shape)
    opset = int(node.attrs.get("opset", 13))
    axis = int(node.attrs.get("axis", -1 if opset >= 13 else 1))
    if opset >= 13:
        if not -rank <= axis < rank:
            raise ValueError(f"axis {axis} is out of range for rank {rank}")
        axis += rank if axis < 0 else 0
        return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    if not -rank <= axis <= rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    axis += rank if axis < 0 else 0
    return math.prod(shape[:axis]), math.prod(shape[axis:]), 1


@evaluation("Softmax", "LogSoftmax")
def _evaluate(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    outer, size, inner = softmax_view(node, x.shape)
    z = x.astype(np.float64).reshape(outer, size, inner)
    with np.errstate(all="ignore"):
        z = z - z.max(axis=1, keepdims=True) if size else z
        log_sum = np.log(np.exp(z).sum(axis=1, keepdims=True))
        result = z - log_sum if node.op == "LogSoftmax" else np.exp(z - log_sum)
    return [result.reshape(x.shape).astype(x.dtype if x.dtype.kind == "f" else np.float32)]


@lowering("Softmax", "LogSoftmax")
def _lower(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    try:
        outer, size, inner = softmax_view(node, x.shape)
    except ValueError as error:
        raise builder.fail(str(error)) from None
    out = builder.new(x.shape)
    # Both kernels built alike, so that a model's softmaxes share one program.
    options = [*(["-DLOG"] if node.op == "LogSoftmax" else []),
               f"-DVW={builder.traits.vector_width}"]
    if inner == 1:
        builder.launch("softmax", "softmax_rows", [x, out, np.int32(outer), np.int32(size)],
                       outer, options=options)
    else:
        builder.launch("softmax", "softmax",
                       [x, out, np.int32(outer), np.int32(size), np.int32(inner)],
                       outer * inner, options=options)
    return [out]
