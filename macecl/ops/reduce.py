"""Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd (``reduce.cl``);
ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSum and ReduceLogSumExp made of those and
elementwise launches; ArgMax and ArgMin (``arg_reduce``).

Axes come from the ``axes`` attribute, or from the second input (ReduceSum from opset 13,
the others from 18); the node shows which. No axes reduce everything, unless
``noop_with_empty_axes`` makes the node an identity. keepdims is only a view.

The kernel reduces one contiguous run of axes of the tensor seen as (outer, reduced, inner).
Axes of size 1 change nothing, so they are skipped, and reduced axes separated only by dims
of 1 form one run; runs that are still apart are reduced one after the other (exact for
every op, Mean included: each run averages equal counts). A long run with few outputs is
cut in two launches, so that more than a handful of work items share the loop.
"""

from __future__ import annotations

import math

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.registry import evaluation, lowering

OPS = {"ReduceSum": 0, "ReduceMean": 1, "ReduceMax": 2, "ReduceMin": 3, "ReduceProd": 4}
SPLIT_WHEN = 4096  # a run at least this long, with fewer outputs than FEW_OUTPUTS, splits
FEW_OUTPUTS = 256


def reduce_axes(node: Node, rank: int, axes_input) -> list[int] | None:
    """The sorted axes to reduce, or None when the node is an identity."""
    axes = node.attrs.get("axes") if axes_input is None else axes_input
    axes = [] if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    if not axes:
        return None if int(node.attrs.get("noop_with_empty_axes", 0)) else list(range(rank))
    normalized = []
    for axis in axes:
        if not -rank <= axis < rank:
            raise ValueError(f"axis {axis} is out of range for rank {rank}")
        normalized.append(axis + rank if axis < 0 else axis)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axes {axes} repeat an axis")
    return sorted(normalized)


def _output_shape(shape, axes: list[int], keepdims: bool) -> list[int]:
    if keepdims:
        return [1 if i in axes else d for i, d in enumerate(shape)]
    return [d for i, d in enumerate(shape) if i not in axes]


def _evaluated_operand(node: Node, arrays: list) -> tuple[np.ndarray, list[int] | None, bool]:
    """A constant reduction's operand, the axes it reduces (None: none, the operand passes
    through as it is) and keepdims: what every reduction's evaluation starts from."""
    x = np.asarray(arrays[0])
    axes = reduce_axes(node, x.ndim, arrays[1] if len(arrays) > 1 else None)
    return x, axes, bool(node.attrs.get("keepdims", 1))


@evaluation(*OPS)
def _evaluate(node: Node, arrays: list) -> list[np.ndarray]:
    x, axes, keepdims = _evaluated_operand(node, arrays)
    if axes is None:
        return [x.copy()]
    axis = tuple(axes)
    with np.errstate(all="ignore"):
        if node.op == "ReduceSum":
            result = np.sum(x, axis=axis, keepdims=keepdims)
        elif node.op == "ReduceMean":
            result = np.mean(x, axis=axis, keepdims=keepdims) if x.size else \
                np.full(_output_shape(x.shape, axes, keepdims), np.nan)
        elif node.op == "ReduceProd":
            result = np.prod(x, axis=axis, keepdims=keepdims)
        else:
            if x.dtype.kind in "iu":
                small, big = np.iinfo(x.dtype).min, np.iinfo(x.dtype).max
            else:
                small, big = (-np.inf, np.inf) if x.dtype.kind == "f" else (0, 1)
            if node.op == "ReduceMax":
                result = np.max(x, axis=axis, keepdims=keepdims, initial=small)
            else:
                result = np.min(x, axis=axis, keepdims=keepdims, initial=big)
    return [np.asarray(result).astype(x.dtype)]


def _runs(shape, axes: list[int]) -> list[tuple[int, int]]:
    """(first, last) axis of each contiguous run of reduced axes of size > 1."""
    runs: list[tuple[int, int]] = []
    for axis in (a for a in axes if shape[a] != 1):
        if runs and all(shape[k] == 1 for k in range(runs[-1][1] + 1, axis)):
            runs[-1] = (runs[-1][0], axis)
        else:
            runs.append((axis, axis))
    return runs


def _split(size: int) -> int:
    """A divisor of ``size`` near its square root (1 if there is none worth using)."""
    for candidate in range(math.isqrt(size), 15, -1):
        if size % candidate == 0:
            return candidate
    return 1


@lowering(*OPS)
def _lower(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    axes_input = inputs[1] if len(inputs) > 1 else None
    try:
        axes = reduce_axes(node, x.rank,
                           None if axes_input is None else builder.host(axes_input, "axes"))
    except ValueError as error:
        raise builder.fail(str(error)) from None
    if axes is None:
        return [builder.view(x, x.shape)]
    keepdims = bool(node.attrs.get("keepdims", 1))
    options = [f"-DOP={OPS[node.op]}"]
    current, shape = x, list(x.shape)

    def launch(value, outer: int, size: int, inner: int):
        out = builder.new([outer * inner])
        builder.launch("reduce", "reduce", [value, out, np.int32(outer), np.int32(size),
                                            np.int32(inner)], outer * inner, options=options)
        return out

    for first, last in _runs(x.shape, axes):
        outer, inner = math.prod(shape[:first]), math.prod(shape[last + 1:])
        size = math.prod(shape[first:last + 1])
        split = _split(size) if size >= SPLIT_WHEN and outer * inner < FEW_OUTPUTS else 1
        if split > 1:  # (outer, size / split, split * inner), then (outer, split, inner)
            current = launch(current, outer, size // split, split * inner)
            size = split
        current = launch(current, outer, size, inner)
        shape[first:last + 1] = [1] * (last + 1 - first)
    result = _output_shape(x.shape, axes, keepdims)
    if current is x:  # every reduced axis was of size 1
        return [builder.view(x, result)]
    return [builder.view(current, result)]


# -- reductions made of others: ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSum(Exp) --------

COMPOSITES = ("ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")


@evaluation(*COMPOSITES)
def _evaluate_composite(node: Node, arrays: list) -> list[np.ndarray]:
    x, axes, keepdims = _evaluated_operand(node, arrays)
    if axes is None:
        return [x.copy()]
    axis = tuple(axes)
    wide = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if node.op == "ReduceLogSumExp":
            top = np.max(wide, axis=axis, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            result = np.log(np.sum(np.exp(wide - top), axis=axis, keepdims=True)) + top
            result = result if keepdims else np.squeeze(result, axis=axis)
        else:
            term = {"ReduceSumSquare": wide * wide, "ReduceL2": wide * wide,
                    "ReduceL1": np.abs(wide)}.get(node.op, wide)
            result = np.sum(term, axis=axis, keepdims=keepdims)
            if node.op == "ReduceL2":
                result = np.sqrt(result)
            elif node.op == "ReduceLogSum":
                result = np.log(result)
    return [np.asarray(result).astype(x.dtype)]


@lowering(*COMPOSITES)
def lower_composite(node: Node, inputs: list, builder) -> list:
    """ReduceSum of x * x or |x| (then sqrt or log), or the log-sum-exp shifted by the
    maximum: the reduce kernel's Sum and Max with elementwise launches around them."""
    from macecl.ops.activations import CODES, lower_unary
    from macecl.ops.elementwise import OPS as BINARY
    from macecl.ops.elementwise import lower_binary

    x, rest = inputs[0], list(inputs[1:])

    def reduce(op: str, value, keepdims: int):
        attrs = {**node.attrs, "keepdims": keepdims}
        return _lower(Node(op, node.name, node.inputs, node.outputs, attrs), [value, *rest],
                      builder)[0]

    def unary(op: str, value):
        return lower_unary(builder, CODES[op], 0.0, 0.0, value)

    keepdims = int(node.attrs.get("keepdims", 1))
    if node.op == "ReduceLogSumExp":
        top = reduce("ReduceMax", x, 1)
        shifted = unary("Exp", lower_binary(builder, BINARY["Sub"], x, top))
        total = unary("Log", reduce("ReduceSum", shifted, 1))
        result = lower_binary(builder, BINARY["Add"], total, top)
        axes = reduce_axes(node, x.rank, builder.host(rest[0], "axes") if rest else None)
        return [result if axes is None else
                builder.view(result, _output_shape(x.shape, axes, bool(keepdims)))]
    if node.op in ("ReduceSumSquare", "ReduceL2"):
        x = lower_binary(builder, BINARY["Mul"], x, x)
    elif node.op == "ReduceL1":
        x = unary("Abs", x)
    summed = reduce("ReduceSum", x, keepdims)
    if node.op == "ReduceL2":
        return [unary("Sqrt", summed)]
    if node.op == "ReduceLogSum":
        return [unary("Log", summed)]
    return [summed]


# -- ArgMax, ArgMin ----------------------------------------------------------------------------

ARG_OPS = {"ArgMax": 5, "ArgMin": 6}


def _arg_axis(node: Node, rank: int) -> int:
    axis = int(node.attrs.get("axis", 0))
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


@evaluation(*ARG_OPS)
def _evaluate_arg(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    axis = _arg_axis(node, x.ndim)
    pick = np.argmax if node.op == "ArgMax" else np.argmin
    if int(node.attrs.get("select_last_index", 0)):
        index = x.shape[axis] - 1 - pick(np.flip(x, axis), axis=axis)
    else:
        index = pick(x, axis=axis)
    if int(node.attrs.get("keepdims", 1)):
        index = np.expand_dims(index, axis)
    return [np.asarray(index, dtype=np.int64)]


@lowering(*ARG_OPS)
def _lower_arg(node: Node, inputs: list, builder) -> list:
    """One arg_reduce launch over the tensor seen as (outer, axis, inner); the indices are
    floats on the device (exact to 2^24), and the engine returns an int64 graph output as
    int64."""
    x = inputs[0]
    try:
        axis = _arg_axis(node, x.rank)
    except ValueError as error:
        raise builder.fail(str(error)) from None
    if x.shape[axis] == 0:
        raise builder.fail(f"{node.op} over an empty axis {axis}")
    if x.shape[axis] > 1 << 24:
        raise builder.fail(f"{node.op} over {x.shape[axis]} values: indices past 2^24 are "
                           "not exact in float32")
    outer, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
    out = builder.new([outer * inner])
    options = [f"-DOP={ARG_OPS[node.op]}",
               *(["-DSELECT_LAST"] if int(node.attrs.get("select_last_index", 0)) else [])]
    builder.launch("reduce", "arg_reduce", [x, out, np.int32(outer), np.int32(x.shape[axis]),
                                            np.int32(inner)], outer * inner, options=options)
    keepdims = bool(node.attrs.get("keepdims", 1))
    return [builder.view(out, _output_shape(x.shape, [axis], keepdims))]
