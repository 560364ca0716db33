"""Binary arithmetic with NumPy broadcasting: Add, Sub, Mul, Div, Pow, Max, Min, Sum, Mean.

The ``elementwise`` program takes the output shape and both inputs' strides (0 along
broadcast axes) in one meta buffer; inputs of the output's own shape take ``binary_flat``,
which does no index arithmetic, and a full input with a small one that broadcasts over a
run of middle dims, or is only those (a per-channel scale, a scalar, a bias over the last
axis, an attention mask), takes ``binary_3d``, over a 3-D NDRange (inner, middle, outer).
Measured when it was the 2-D ``binary_rows`` (outer 1; `python bench/op_kernels.py
--rounds 7 --cases rows`, PoCL 3.0, 2-core Xeon shared with other jobs), median ms of a Mul:

    scalar over 16x320x320:  1-D with a division per element (before) 2.79   2-D 0.68
                             2-D with 16 elements per item (vload16) 0.79
    per-row 24x320x320:      before 3.87   2-D 1.05   2-D x16 1.37
    per-row 192x20x20:       before 0.116  2-D 0.027  2-D x16 0.025

The 2-D kernel is 3.7-4x faster than the 1-D one, and vectorising by hand gained nothing
more. Whether the small operand skips the middle or is indexed by it is a build option:
indexing it as row * row_step + column * column_step from arguments instead made the kernel half as
fast (1.42 ms on the first case, 2.13 on the second: a gather where a broadcast was), so that is what it is. Variadic Sum / Max / Min / Mean chain binary launches.
On the host the same ops also compute the integer shape arithmetic exporters emit.
"""

from __future__ import annotations

import math

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.registry import evaluation, lowering
from macecl.ops.traits import row_width

OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Pow": 4, "Max": 5, "Min": 6}
VARIADIC = {"Sum": "Add", "Max": "Max", "Min": "Min", "Mean": "Add"}


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        quotient = np.abs(a) // np.where(b == 0, 1, np.abs(b))  # ONNX truncates toward zero
        return (quotient * np.sign(a) * np.sign(b)).astype(np.result_type(a, b))
    return a / b


_NUMPY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _divide,
          "Pow": np.power, "Max": np.maximum, "Min": np.minimum}


@evaluation("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean")
def _evaluate(node: Node, arrays: list) -> list[np.ndarray]:
    function = _NUMPY[VARIADIC.get(node.op, node.op)]
    with np.errstate(all="ignore"):
        result = arrays[0]
        for other in arrays[1:]:
            result = function(result, other)
        if node.op == "Pow":
            result = result.astype(arrays[0].dtype)  # ONNX: the base's type
        if node.op == "Mean":
            result = result / len(arrays)
    return [np.asarray(result)]


def broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """Element strides of a contiguous ``shape`` read as ``out``: 0 where it broadcasts."""
    padded = (1,) * (len(out) - len(shape)) + tuple(shape)
    strides, step = [0] * len(out), 1
    for axis in range(len(out) - 1, -1, -1):
        strides[axis] = 0 if padded[axis] == 1 and out[axis] != 1 else step
        step *= padded[axis]
    return strides


def split_3d(shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[int, int, int, bool] | None:
    """``shape`` broadcast to ``out`` as (outer, middle, inner, skip_middle) of binary_3d:
    (outer, 1, inner), the middle dims broadcast (skip_middle: a [C] bias over [N, T, C] has
    outer 1), or (1, middle, 1) (per-channel [N, C, 1, 1] over [N, C, H, W], a scalar);
    else None."""
    padded = (1,) * (len(out) - len(shape)) + tuple(shape)
    for first in range(len(out) + 1):
        for last in range(first, len(out) + 1):
            outer = math.prod(out[:first])
            middle, inner = math.prod(out[first:last]), math.prod(out[last:])
            ones = all(d == 1 for d in padded[first:last])
            if ones and padded[:first] == out[:first] and padded[last:] == out[last:]:
                return outer, middle, inner, True
            if (all(d == 1 for d in padded[:first] + padded[last:])
                    and padded[first:last] == out[first:last]):
                return outer, middle, inner, False
    return None


def lower_binary(builder, code: int, a, b):
    """One launch of ``elementwise`` with OP=code; returns the output value."""
    from macecl.engine.plan import meta

    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise builder.fail(f"inputs of shapes {list(a.shape)} and {list(b.shape)} do not "
                           "broadcast") from None
    out = builder.new(shape)
    options = [f"-DOP={code}"]
    if a.shape == shape and b.shape == shape:
        builder.launch("elementwise", "binary_flat", [a, b, out, np.int32(out.size)], out.size,
                       options=options)
    elif (split := split_3d(b.shape, shape) if a.shape == shape
          else split_3d(a.shape, shape) if b.shape == shape else None):
        outer, middle, inner, skip_middle = split
        options += ["-DA_SMALL"] if b.shape == shape else []
        options += ["-DSKIP_MIDDLE"] if skip_middle else []
        builder.launch("elementwise", "binary_3d",
                       [a, b, out, np.int32(inner), np.int32(middle), np.int32(outer)],
                       (row_width(inner), middle, outer), options=options)
    else:
        rank = max(len(shape), 1)
        dims = shape or (1,)
        table = meta(dims, broadcast_strides(a.shape, dims), broadcast_strides(b.shape, dims))
        builder.launch("elementwise", "binary", [a, b, out, table, np.int32(rank),
                                                 np.int32(out.size)], out.size, options=options)
    return out


def _is_square(node: Node, inputs: list) -> bool:
    """Pow by a constant 2 (LayerNorm's variance as exported): x * x, one multiply where
    pow() costs a log and an exp (PP-OCR rec's five were 0.53 ms each over 4800 values)."""
    if node.op != "Pow" or len(inputs) != 2 or inputs[1].host is None:
        return False
    exponent = np.asarray(inputs[1].host)
    return exponent.size == 1 and exponent.ndim <= inputs[0].rank and float(exponent.flat[0]) == 2.0


@lowering("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean")
def _lower(node: Node, inputs: list, builder) -> list:
    if _is_square(node, inputs):
        return [lower_binary(builder, OPS["Mul"], inputs[0], inputs[0])]
    code = OPS[VARIADIC.get(node.op, node.op)]
    result = inputs[0]
    for other in inputs[1:]:
        result = lower_binary(builder, code, result, other)
    if len(inputs) == 1:  # a one-input Sum / Max / Min is a copy; a view does
        result = builder.view(result, result.shape)
    if node.op == "Mean":
        result = lower_binary(builder, OPS["Mul"], result,
                              builder.constant(np.float32(1.0 / len(inputs))))
    return [result]
