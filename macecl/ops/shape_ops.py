"""Shape and data-movement operators, and the small host ops of exporters' shape arithmetic.

Three kinds:

- views (no copy; ``lower`` returns ``builder.view``): Reshape, Flatten, Squeeze, Unsqueeze,
  Identity, inference Dropout, Cast to float32; and, without a copy where the device lets a
  sub-buffer start at the range, a Slice or Split output that is one range of its input
  (``builder.view_range``) and a Concat whose inputs are each one range of its output
  (``builder.place_within``: their producers write them there);
- copies through ``copy.cl`` (``copy_box``: a strided box, which covers Concat, Split, Slice
  with steps, Expand and Tile through 0 strides, and Gather one run of indices at a time;
  ``pad``: Pad in its four modes) and ``transpose.cl``;
- host only: Shape, Size, Constant, ConstantOfShape, Range, comparisons, logic and Where,
  the integer chains (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) exporters compute
  from input shapes. Shape and Size also lower: a device tensor's shape is known when planning.

Every operator has a NumPy ``evaluate`` (constant folding and the host chains). Operators
whose meaning moved from attributes to inputs across opsets (Reshape, Squeeze, Unsqueeze,
Split, Slice, Pad) read the attribute when the node has it, else the input: the node shows
which form it is. Indices, axes and shapes must be known at planning (``builder.host``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.registry import checker, contiguous_strides, evaluation, lowering
from macecl.ops.traits import row_width

# ONNX TensorProto.DataType -> NumPy (8 string, 14/15 complex, 16 bfloat16: not supported).
ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
               7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32,
               13: np.uint64}
PAD_MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


# -- helpers ---------------------------------------------------------------------------------

def _arg(arrays: Sequence, index: int):
    """Optional input ``index``: None when absent or omitted ("")."""
    return arrays[index] if index < len(arrays) else None


def _int_list(array) -> list[int]:
    return [int(v) for v in np.asarray(array).reshape(-1)]


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    axis = int(axis)
    if not -rank <= axis < rank:
        raise ValueError(f"{what} {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _axes(axes: Sequence[int], rank: int, what: str = "axes") -> list[int]:
    result = [_axis(a, rank, what) for a in axes]
    if len(set(result)) != len(result):
        raise ValueError(f"{what} {list(axes)} repeat an axis")
    return result



def _device_lowering(*types: str):
    """``lowering`` whose shape errors (ValueError) become the node's GraphError."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(node, inputs, builder):
            try:
                return function(node, inputs, builder)
            except (ValueError, IndexError) as error:
                raise builder.fail(str(error)) from None

        lowering(*types)(wrapper)
        return function

    return decorate


def _host_args(builder, inputs: Sequence, first: int, names: Sequence[str]) -> list:
    """The host arrays of inputs ``first``... (None where omitted), named for errors."""
    result = []
    for offset, name in enumerate(names):
        value = _arg(inputs, first + offset)
        result.append(None if value is None else builder.host(value, name))
    return result


def copy_box(builder, src, dst, box: Sequence[int], src_strides: Sequence[int],
             dst_strides: Sequence[int], src_offset: int = 0, dst_offset: int = 0) -> None:
    """One copy launch; dims of extent 1 are dropped and mergeable dims merged first. A box
    whose innermost dim is contiguous on both sides (Concat, Split, Slice off the last axis)
    is copied as rows (``copy_rows``); any other by the rank-generic ``copy_box``.
    `python bench/op_kernels.py --rounds 9 --cases copy` (PoCL 3.0, 2-core Xeon shared with
    other jobs, load 2.4), median ms, copy_box against copy_rows: SqueezeNet's Concat of
    64 x 55 x 55 (one contiguous run) 0.353 against 0.043; a slice of 40 rows of 55 in
    64 planes 0.449 against 0.284."""
    from macecl.engine.plan import meta

    dims = [(int(n), int(s), int(d)) for n, s, d in zip(box, src_strides, dst_strides) if n != 1]
    total = math.prod(n for n, _, _ in dims)
    if total == 0:
        return
    merged: list[tuple[int, int, int]] = []
    for n, s, d in reversed(dims):  # innermost first
        if merged:
            m, ms, md = merged[-1]
            if s == ms * m and d == md * m:
                merged[-1] = (m * n, ms, md)
                continue
        merged.append((n, s, d))
    merged = merged[::-1] or [(1, 1, 1)]
    inner, src_step, dst_step = merged[-1]
    if src_step == 1 and dst_step == 1:  # rows: no index arithmetic per element
        outer = merged[:-1]
        table = meta([m[0] for m in outer], [m[1] for m in outer], [m[2] for m in outer])
        rows = total // inner
        vector = builder.traits.vector_width
        builder.launch("copy", "copy_rows",
                       [src, dst, table, np.int32(len(outer)), np.int32(src_offset),
                        np.int32(dst_offset), np.int32(inner), np.int32(rows)],
                       (row_width(-(-inner // vector)), rows), options=[f"-DVW={vector}"])
        return
    rank = len(merged)
    table = meta([m[0] for m in merged], [m[1] for m in merged], [m[2] for m in merged])
    builder.launch("copy", "copy_box", [src, dst, table, np.int32(rank), np.int32(src_offset),
                                        np.int32(dst_offset), np.int32(total)], total)


# -- views: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout, Cast --------------------

def reshape_target(shape: Sequence[int], requested: Sequence[int], allowzero: bool) -> list[int]:
    """ONNX Reshape's output shape: 0 copies the input's dim (unless allowzero), -1 is inferred."""
    out = []
    for index, dim in enumerate(int(d) for d in requested):
        if dim == 0 and not allowzero:
            if index >= len(shape):
                raise ValueError(f"shape {list(requested)} copies dim {index} (0), but the input "
                                 f"{list(shape)} has rank {len(shape)}")
            dim = shape[index]
        elif dim < -1:
            raise ValueError(f"shape {list(requested)} has a negative dim")
        out.append(dim)
    total = math.prod(shape)
    if out.count(-1) > 1:
        raise ValueError(f"shape {list(requested)} has more than one -1")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or total % known:
            raise ValueError(f"cannot reshape {list(shape)} to {list(requested)}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total:
        raise ValueError(f"cannot reshape {list(shape)} to {list(requested)}")
    return out


def _reshape_shape(node: Node, shape, arrays) -> list[int]:
    requested = _arg(arrays, 1)
    if requested is None:
        if "shape" not in node.attrs:
            raise ValueError("Reshape needs a shape (input 1, or the 'shape' attribute "
                             "of opset < 5)")
        requested = node.attrs["shape"]
    return reshape_target(shape, _int_list(requested), bool(node.attrs.get("allowzero", 0)))


def _flatten_shape(node: Node, shape) -> list[int]:
    rank = len(shape)
    axis = int(node.attrs.get("axis", 1))
    if not -rank <= axis <= rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    return [math.prod(shape[:axis]), math.prod(shape[axis:])]


def _squeeze_shape(node: Node, shape, arrays) -> list[int]:
    axes = _arg(arrays, 1)
    axes = node.attrs.get("axes") if axes is None else axes
    if axes is None:
        return [d for d in shape if d != 1]
    axes = _axes(_int_list(axes), len(shape))
    for axis in axes:
        if shape[axis] != 1:
            raise ValueError(f"cannot squeeze axis {axis} of shape {list(shape)}: it is not 1")
    return [d for i, d in enumerate(shape) if i not in axes]


def _unsqueeze_shape(node: Node, shape, arrays) -> list[int]:
    axes = _arg(arrays, 1)
    axes = node.attrs.get("axes") if axes is None else axes
    if axes is None:
        raise ValueError("Unsqueeze needs axes")
    axes = _int_list(axes)
    rank = len(shape) + len(axes)
    axes = set(_axes(axes, rank))
    rest = iter(shape)
    return [1 if i in axes else next(rest) for i in range(rank)]


def _cast_dtype(node: Node) -> np.dtype:
    to = int(node.attrs.get("to", 1))
    if to not in ONNX_DTYPES:
        raise ValueError(f"Cast to ONNX type {to} is not supported")
    return np.dtype(ONNX_DTYPES[to])


def _view_shape(node: Node, shape, arrays) -> list[int]:
    """The output shape of a Reshape / Flatten / Squeeze / Unsqueeze of a tensor of ``shape``;
    ``arrays``: the node's inputs as host arrays where known (the input data may be None)."""
    if node.op == "Flatten":
        return _flatten_shape(node, shape)
    return {"Reshape": _reshape_shape, "Squeeze": _squeeze_shape,
            "Unsqueeze": _unsqueeze_shape}[node.op](node, shape, arrays)


@evaluation("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _evaluate_view(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    return [x.reshape(_view_shape(node, x.shape, arrays))]


@evaluation("Identity", "Dropout")
def _evaluate_identity(node: Node, arrays: list) -> list[np.ndarray]:
    _check_dropout_mode(node, arrays)
    return [np.asarray(arrays[0])]


@evaluation("Cast")
def _evaluate_cast(node: Node, arrays: list) -> list[np.ndarray]:
    return [np.asarray(arrays[0]).astype(_cast_dtype(node))]


def _check_dropout_mode(node: Node, arrays: list) -> None:
    if node.op == "Dropout":
        training = _arg(arrays, 2)
        if training is not None and bool(np.asarray(training).reshape(-1)[0]):
            raise ValueError("Dropout in training mode is not supported (inference only)")


@_device_lowering("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast")
def _lower_view(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    op = node.op
    if op in ("Reshape", "Squeeze", "Unsqueeze"):
        what = ["shape"] if op == "Reshape" else ["axes"]
        shape = _view_shape(node, x.shape, [None, *_host_args(builder, inputs, 1, what)])
    elif op == "Flatten":
        shape = _flatten_shape(node, x.shape)
    elif op == "Cast":
        dtype = _cast_dtype(node)
        if dtype != np.float32:
            raise builder.fail(f"casting a device tensor to {dtype} is not supported (tensors "
                               f"computed on the device are float32)")
        shape = x.shape
    else:
        if op == "Dropout":
            training = _host_args(builder, inputs, 2, ["training_mode"])
            _check_dropout_mode(node, [None, None, *training])
        shape = x.shape
    return [builder.view(x, shape)]


@checker("Dropout")
def _check_dropout(node: Node) -> str | None:
    if any(node.outputs[1:]):
        return "Dropout (with its mask output)"
    return None


@checker("Cast")
def _check_cast(node: Node) -> str | None:
    to = int(node.attrs.get("to", 1))
    if to not in ONNX_DTYPES:
        return f"Cast (to ONNX type {to})"
    return None


# -- Concat and Split ------------------------------------------------------------------------

@evaluation("Concat")
def _evaluate_concat(node: Node, arrays: list) -> list[np.ndarray]:
    arrays = [np.asarray(a) for a in arrays if a is not None]
    axis = _axis(node.attrs.get("axis", 0), arrays[0].ndim)
    return [np.concatenate(arrays, axis=axis)]


@_device_lowering("Concat")
def _lower_concat(node: Node, inputs: list, builder) -> list:
    """Each input that is one range of the output is placed there (its producer writes it in
    place); the others are copied. `python bench/kernel_profile.py squeezenet --rounds 7`
    (PoCL 3.0, 2-core Xeon shared with other jobs): 64 -> 48 launches, the 16 copy_rows
    (0.29-0.31 ms of device time a run) gone; the plans of the light models and PP-OCR
    (PoCL's 128-byte sub-buffer alignment): ShuffleNet 81 -> 76 launches (one Concat input
    at an unaligned offset still copies), DenseNet-121 653 -> 537, Inception v1 139 -> 107,
    v2 175 -> 137, PP-OCR det 115 -> 111."""
    parts = [v for v in inputs if v is not None]
    rank = parts[0].rank
    axis = _axis(node.attrs.get("axis", 0), rank)
    for part in parts:
        pairs = enumerate(zip(part.shape, parts[0].shape))
        if part.rank != rank or any(a != b for d, (a, b) in pairs if d != axis):
            shapes = [list(p.shape) for p in parts]
            raise ValueError(f"inputs of shapes {shapes} do not concatenate along axis {axis}")
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    if len(parts) == 1:
        return [builder.view(parts[0], shape)]
    out = builder.new(shape)
    out_strides = contiguous_strides(shape)
    # Where every dim before the axis is 1, each input is one contiguous range of the output:
    # its producer can write it there (SqueezeNet's fire modules, DenseNet's growing Concats).
    in_ranges = math.prod(shape[:axis]) == 1
    position = 0
    for part in parts:
        offset = position * out_strides[axis]
        if not (in_ranges and builder.place_within(part, out, offset)):
            copy_box(builder, part, out, part.shape, contiguous_strides(part.shape), out_strides,
                     dst_offset=offset)
        position += part.shape[axis]
    return [out]


def split_sizes(node: Node, dim: int, split) -> list[int]:
    """Split's part sizes: the split input (13+) or attribute, else num_outputs (18) or as many
    parts as outputs, of ceil(dim / n) each but the last."""
    if split is None:
        split = node.attrs.get("split")
    if split is not None and len(_int_list(split)):
        sizes = _int_list(split)
        if sum(sizes) != dim or any(s < 0 for s in sizes):
            raise ValueError(f"split {sizes} does not add up to the dim {dim}")
        if len(sizes) != len(node.outputs):
            raise ValueError(f"split {sizes} has {len(sizes)} parts for "
                             f"{len(node.outputs)} outputs")
        return sizes
    parts = int(node.attrs.get("num_outputs", len(node.outputs)))
    chunk = -(-dim // parts)
    sizes = [chunk] * (parts - 1) + [dim - chunk * (parts - 1)]
    if sizes[-1] < 0:
        raise ValueError(f"cannot split a dim of {dim} into {parts} parts")
    return sizes


@evaluation("Split")
def _evaluate_split(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    axis = _axis(node.attrs.get("axis", 0), x.ndim)
    sizes = split_sizes(node, x.shape[axis], _arg(arrays, 1))
    bounds = np.cumsum([0] + sizes)
    return [np.take(x, np.arange(bounds[i], bounds[i + 1]), axis=axis) for i in range(len(sizes))]


@_device_lowering("Split")
def _lower_split(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    (split,) = _host_args(builder, inputs, 1, ["split"])
    axis = _axis(node.attrs.get("axis", 0), x.rank)
    sizes = split_sizes(node, x.shape[axis], split)
    strides = contiguous_strides(x.shape)
    results, position = [], 0
    for index, size in enumerate(sizes):
        shape = list(x.shape)
        shape[axis] = size
        if index < len(node.outputs) and not node.outputs[index]:
            results.append(None)  # an output nothing reads: no copy
        elif size == x.shape[axis]:
            results.append(builder.view(x, shape))
        else:
            results.append(_range_or_copy(builder, x, shape, strides, position * strides[axis]))
        position += size
    return results


def _range_or_copy(builder, x, shape: Sequence[int], strides: Sequence[int], offset: int):
    """The box of ``shape`` at element ``offset`` of ``x`` (``strides``: the box's steps
    through ``x``): a view where it is one range of ``x`` that a sub-buffer can start at
    (``builder.view_range``), else a copy."""
    dense = contiguous_strides(shape)
    if all(n == 1 or s == d for n, s, d in zip(shape, strides, dense)):  # no gaps between rows
        view = builder.view_range(x, offset, shape)
        if view is not None:
            return view
    out = builder.new(shape)
    copy_box(builder, x, out, shape, strides, contiguous_strides(shape), src_offset=offset)
    return out


# -- Slice -----------------------------------------------------------------------------------

def slice_params(node: Node, shape: Sequence[int], args: Sequence) -> list[tuple[int, int, int]]:
    """(start, step, length) of every dim. ``args``: starts, ends, axes, steps (from opset 10)
    as host arrays or None; before opset 10 they are the attributes starts, ends, axes."""
    rank = len(shape)
    if "starts" in node.attrs:
        starts, ends = node.attrs["starts"], node.attrs.get("ends")
        axes, steps = node.attrs.get("axes"), None
    else:
        starts, ends, axes, steps = (list(args) + [None] * 4)[:4]
    if starts is None or ends is None:
        raise ValueError("Slice needs starts and ends")
    starts, ends = _int_list(starts), _int_list(ends)
    axes = list(range(len(starts))) if axes is None else _axes(_int_list(axes), rank)
    steps = [1] * len(starts) if steps is None else _int_list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"starts {starts}, ends {ends}, axes {axes} and steps {steps} differ "
                         "in length")
    params = [(0, 1, d) for d in shape]
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if axis >= rank:
            raise ValueError(f"axis {axis} is out of range for rank {rank}")
        if step == 0:
            raise ValueError("a Slice step cannot be 0")
        first, stop, step = slice(start, end, step).indices(shape[axis])  # ONNX's clamping
        params[axis] = (first, step, len(range(first, stop, step)))
    return params


@evaluation("Slice")
def _evaluate_slice(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    params = slice_params(node, x.shape, [_arg(arrays, i) for i in range(1, 5)])
    index = []
    for start, step, length in params:
        stop = start + step * length
        index.append(slice(start, stop if stop >= 0 else None, step))
    return [x[tuple(index)].copy()]


@_device_lowering("Slice")
def _lower_slice(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    args = _host_args(builder, inputs, 1, ["starts", "ends", "axes", "steps"])
    params = slice_params(node, x.shape, args)
    shape = [length for _, _, length in params]
    if all(start == 0 and length == dim for (start, _, length), dim in zip(params, x.shape)):
        return [builder.view(x, shape)]  # the whole tensor (steps of 1 or a dim of 1)
    strides = contiguous_strides(x.shape)
    offset = sum(start * s for (start, _, _), s in zip(params, strides))
    steps = [step * s for (_, step, _), s in zip(params, strides)]
    return [_range_or_copy(builder, x, shape, steps, offset)]


# -- Transpose -------------------------------------------------------------------------------

def _perm(node: Node, rank: int) -> list[int]:
    perm = node.attrs.get("perm")
    if perm is None:
        return list(range(rank))[::-1]
    perm = _int_list(perm)
    if sorted(_axes(perm, rank, "perm")) != list(range(rank)) or len(perm) != rank:
        raise ValueError(f"perm {perm} is not a permutation of {rank} axes")
    return [p + rank if p < 0 else p for p in perm]


@evaluation("Transpose")
def _evaluate_transpose(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    return [np.ascontiguousarray(np.transpose(x, _perm(node, x.ndim)))]


@_device_lowering("Transpose")
def _lower_transpose(node: Node, inputs: list, builder) -> list:
    """A permutation over the fewest axes (merged_permutation); when the last axis stays
    last, whole rows are copied (transpose_rows). `python bench/op_kernels.py --rounds 9
    --cases transpose` (PoCL 3.0, 2-core Xeon shared with other jobs), ShuffleNet's channel
    shuffle (4, 28, 56x56) -> (28, 4, 56x56), median ms: the 4-D walk before 1.10, the merged
    3-D walk 0.84, rows 0.55. Rows copied a float vector (VW) per work item instead of one
    float, with vector.h's loads, in a later run of the same command: 0.072 against 0.616.
    Where the last two merged axes swap (NCHW <-> NHWC), a CPU moves VW x VW tiles
    (transpose_tiles; ConvNeXt-tiny's 96 x 56 x 56 permutes 0.51 -> 0.21 ms, all its 36
    transposes 10.9 -> 3.2 ms, one profile each)."""
    from macecl.engine.plan import meta

    x = inputs[0]
    perm = _perm(node, x.rank)
    shape = [x.shape[p] for p in perm]
    moved = [p for p in perm if x.shape[p] != 1]
    if moved == sorted(moved):  # only dims of 1 move: the memory order is unchanged
        return [builder.view(x, shape)]
    dims, order = merged_permutation(x.shape, perm)
    strides = contiguous_strides(dims)
    out = builder.new(shape)
    width = builder.traits.vector_width
    options = [f"-DVW={width}"]  # both kernels, so that a model's transposes share a program
    if order[-1] == len(dims) - 1:  # the last axis stays last: copy whole rows
        inner = dims[-1]
        table = meta([dims[p] for p in order[:-1]], [strides[p] for p in order[:-1]])
        builder.launch("transpose", "transpose_rows",
                       [x, out, table, np.int32(len(order) - 1), np.int32(inner),
                        np.int32(out.size // inner)], (-(-inner // width), out.size // inner),
                       options=options)
        return [out]
    if builder.traits.cpu and order[-2:] == [len(dims) - 1, len(dims) - 2] \
            and order[:-2] == list(range(len(dims) - 2)):  # (B, X, Y) -> (B, Y, X): tiles
        batches, (rows, columns) = math.prod(dims[:-2]), dims[-2:]
        builder.launch("transpose", "transpose_tiles",
                       [x, out, np.int32(rows), np.int32(columns), np.int32(batches)],
                       (-(-columns // width), -(-rows // width), batches), options=options,
                       local_size=(1, 1, 1))
        return [out]
    inner, inner_stride = dims[order[-1]], strides[order[-1]]
    table = meta([dims[p] for p in order[:-1]], [strides[p] for p in order[:-1]])
    builder.launch("transpose", "transpose",
                   [x, out, table, np.int32(len(order) - 1), np.int32(inner),
                    np.int32(inner_stride), np.int32(out.size // inner)],
                   (row_width(-(-inner // width)), out.size // inner), options=options)
    return [out]


# -- DepthToSpace / SpaceToDepth ---------------------------------------------------------------

def block_rearrangement(node: Node, shape: Sequence[int]
                        ) -> tuple[list[int], list[int], list[int]]:
    """(view, perm, result): DepthToSpace or SpaceToDepth of an (N, C, H, W) tensor is a
    reshape to the 6-D ``view``, a Transpose by ``perm``, and a reshape to ``result``."""
    blocksize = int(node.attrs.get("blocksize", 0))
    if len(shape) != 4:
        raise ValueError(f"{node.op} takes an (N, C, H, W) tensor, not {list(shape)}")
    if blocksize < 1:
        raise ValueError(f"{node.op} needs a positive blocksize, not {blocksize}")
    n, c, h, w = shape
    b = blocksize
    if node.op == "SpaceToDepth":
        if h % b or w % b:
            raise ValueError(f"SpaceToDepth blocksize {b} does not divide the input's height "
                             f"and width {h} x {w}")
        return [n, c, h // b, b, w // b, b], [0, 3, 5, 1, 2, 4], [n, c * b * b, h // b, w // b]
    mode = node.attrs.get("mode", "DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if c % (b * b):
        raise ValueError(f"DepthToSpace blocksize {b}: {c} channels are not a multiple of {b * b}")
    depth = c // (b * b)
    result = [n, depth, h * b, w * b]
    if mode == "DCR":
        return [n, b, b, depth, h, w], [0, 3, 4, 1, 5, 2], result
    if mode == "CRD":
        return [n, depth, b, b, h, w], [0, 1, 4, 2, 5, 3], result
    raise ValueError(f"DepthToSpace mode {mode!r} is not DCR or CRD")


@evaluation("DepthToSpace", "SpaceToDepth")
def _evaluate_block_rearrangement(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    view, perm, result = block_rearrangement(node, x.shape)
    return [np.ascontiguousarray(np.transpose(x.reshape(view), perm)).reshape(result)]


@_device_lowering("DepthToSpace", "SpaceToDepth")
def _lower_block_rearrangement(node: Node, inputs: list, builder) -> list:
    """A view, the Transpose lowering's copy, a view: super-resolution's pixel shuffle and
    YOLO's space-to-depth stems are one transpose launch each."""
    x = inputs[0]
    view, perm, result = block_rearrangement(node, x.shape)
    transpose = Node("Transpose", node.name, node.inputs, node.outputs, {"perm": perm})
    (moved,) = _lower_transpose(transpose, [builder.view(x, view)], builder)
    return [builder.view(moved, result)]


def merged_permutation(shape: Sequence[int], perm: Sequence[int]) -> tuple[list[int], list[int]]:
    """The same transpose over fewer axes: dims of 1 dropped (they index nothing) and input
    axes that stay neighbours, in order, merged into one. Returns (input dims, permutation)."""
    kept = [p for p in perm if shape[p] != 1]
    runs: list[list[int]] = []  # runs of input axes, in output order
    for p in kept:
        if runs and _only_ones_between(shape, runs[-1][-1], p):
            runs[-1].append(p)
        else:
            runs.append([p])
    by_input = sorted(range(len(runs)), key=lambda r: runs[r][0])
    dims = [math.prod(shape[p] for p in runs[r]) for r in by_input]
    order = [by_input.index(r) for r in range(len(runs))]
    return dims or [1], order or [0]


def _only_ones_between(shape: Sequence[int], a: int, b: int) -> bool:
    """Whether input axis b follows a in memory (nothing but dims of 1 between them)."""
    return a < b and all(shape[i] == 1 for i in range(a + 1, b))


# -- Pad -------------------------------------------------------------------------------------

def pad_params(node: Node, rank: int, args: Sequence) -> tuple[list[int], list[int], str, float]:
    """(begin, end, mode, value). ``args``: the pads, constant_value and axes inputs (opset 11+)
    as host arrays or None; before 11 the attributes pads and value."""
    mode = node.attrs.get("mode", "constant")
    if mode not in PAD_MODES:
        raise ValueError(f"Pad mode {mode!r} is not supported")
    if "pads" in node.attrs:
        pads, value, axes = _int_list(node.attrs["pads"]), float(node.attrs.get("value", 0.0)), None
    else:
        pads, value, axes = (list(args) + [None] * 3)[:3]
        if pads is None:
            raise ValueError("Pad needs pads")
        pads = _int_list(pads)
        value = 0.0 if value is None or np.size(value) == 0 else np.asarray(value).reshape(-1)[0]
    axes = list(range(rank)) if axes is None else _axes(_int_list(axes), rank)
    if len(pads) != 2 * len(axes):
        raise ValueError(f"pads {pads} should have {2 * len(axes)} values (2 per axis)")
    begin, end = [0] * rank, [0] * rank
    for index, axis in enumerate(axes):
        begin[axis], end[axis] = pads[index], pads[len(axes) + index]
    return begin, end, mode, value


def _pad_source(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """NumPy twin of pad_source_index in copy.cl."""
    if mode == "reflect":
        if n == 1:
            return np.zeros_like(i)
        period = 2 * (n - 1)
        i = np.mod(i, period)
        return np.where(i < n, i, period - i)
    if mode == "edge":
        return np.clip(i, 0, n - 1)
    return np.mod(i, n)  # wrap


def pad_numpy(x: np.ndarray, begin, end, mode: str, value) -> np.ndarray:
    out_shape = [b + d + e for b, d, e in zip(begin, x.shape, end)]
    if any(d < 0 for d in out_shape):
        raise ValueError(f"pads crop more than the input {list(x.shape)}")
    if mode == "constant":
        out = np.full(out_shape, value, dtype=x.dtype)
        dst = tuple(slice(max(b, 0), min(b + d, o)) for b, d, o in zip(begin, x.shape, out_shape))
        src = tuple(slice(s.start - b, s.stop - b) for s, b in zip(dst, begin))
        if all(s.stop > s.start for s in dst):
            out[dst] = x[src]
        return out
    if any(d == 0 and o > 0 for d, o in zip(x.shape, out_shape)):
        raise ValueError(f"Pad mode {mode!r} cannot extend an empty dim")
    if x.ndim == 0:
        return x.copy()
    index = [_pad_source(np.arange(o) - b, d, mode) if d else np.arange(0)
             for o, b, d in zip(out_shape, begin, x.shape)]
    return x[np.ix_(*index)]


@evaluation("Pad")
def _evaluate_pad(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    begin, end, mode, value = pad_params(node, x.ndim, [_arg(arrays, i) for i in range(1, 4)])
    return [pad_numpy(x, begin, end, mode, np.asarray(value).astype(x.dtype))]


@_device_lowering("Pad")
def _lower_pad(node: Node, inputs: list, builder) -> list:
    from macecl.engine.plan import meta

    x = inputs[0]
    args = _host_args(builder, inputs, 1, ["pads", "constant_value", "axes"])
    begin, end, mode, value = pad_params(node, x.rank, args)
    shape = [b + d + e for b, d, e in zip(begin, x.shape, end)]
    if any(d < 0 for d in shape):
        raise ValueError(f"pads {begin + end} crop more than the input {list(x.shape)}")
    if not any(begin) and not any(end):
        return [builder.view(x, shape)]
    if mode != "constant" and any(d == 0 and o > 0 for d, o in zip(x.shape, shape)):
        raise ValueError(f"Pad mode {mode!r} cannot extend an empty dim")
    out = builder.new(shape)
    builder.launch("copy", "pad", [x, out, meta(shape, x.shape, begin), np.int32(x.rank),
                                   np.int32(out.size), np.float32(value)],
                   out.size, options=[f"-DMODE={PAD_MODES[mode]}"])
    return [out]


@checker("Pad")
def _check_pad(node: Node) -> str | None:
    mode = node.attrs.get("mode", "constant")
    return None if mode in PAD_MODES else f"Pad (mode {mode!r})"


# -- Expand and Tile -------------------------------------------------------------------------

def _expand_shape(x_shape, shape) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(tuple(x_shape), tuple(_int_list(shape))))
    except ValueError:
        raise ValueError(f"cannot expand {list(x_shape)} to {_int_list(shape)}") from None


@evaluation("Expand")
def _evaluate_expand(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    return [np.broadcast_to(x, _expand_shape(x.shape, arrays[1])).copy()]


@_device_lowering("Expand")
def _lower_expand(node: Node, inputs: list, builder) -> list:
    from macecl.ops.elementwise import broadcast_strides

    x = inputs[0]
    (shape,) = _host_args(builder, inputs, 1, ["shape"])
    shape = _expand_shape(x.shape, shape)
    if math.prod(shape) == x.size:
        return [builder.view(x, shape)]
    out = builder.new(shape)
    copy_box(builder, x, out, shape, broadcast_strides(x.shape, shape), contiguous_strides(shape))
    return [out]


def _repeats(x_shape, repeats) -> list[int]:
    repeats = _int_list(repeats)
    if len(repeats) != len(x_shape) or any(r < 0 for r in repeats):
        raise ValueError(f"repeats {repeats} do not fit the input {list(x_shape)}")
    return repeats


@evaluation("Tile")
def _evaluate_tile(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    return [np.tile(x, _repeats(x.shape, arrays[1])) if x.ndim else x.copy()]


@_device_lowering("Tile")
def _lower_tile(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    (repeats,) = _host_args(builder, inputs, 1, ["repeats"])
    repeats = _repeats(x.shape, repeats)
    shape = [d * r for d, r in zip(x.shape, repeats)]
    if all(r == 1 for r in repeats):
        return [builder.view(x, shape)]
    # The output read as (r0, d0, r1, d1, ...): tile t, position i of axis k sits at t*d_k + i.
    out = builder.new(shape)
    in_strides, out_strides = contiguous_strides(x.shape), contiguous_strides(shape)
    box, src, dst = [], [], []
    for d, r, s, o in zip(x.shape, repeats, in_strides, out_strides):
        box += [r, d]
        src += [0, s]
        dst += [d * o, o]
    copy_box(builder, x, out, box, src, dst)
    return [out]


# -- Gather ----------------------------------------------------------------------------------

def _gather_indices(indices, dim: int) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise ValueError(f"Gather indices must be integers, not {indices.dtype}")
    indices = indices.astype(np.int64)
    if indices.size and (indices.min() < -dim or indices.max() >= dim):
        raise ValueError(f"Gather indices out of range [{-dim}, {dim})")
    return np.where(indices < 0, indices + dim, indices)


@evaluation("Gather")
def _evaluate_gather(node: Node, arrays: list) -> list[np.ndarray]:
    data = np.asarray(arrays[0])
    axis = _axis(node.attrs.get("axis", 0), data.ndim)
    indices = _gather_indices(arrays[1], data.shape[axis])
    return [np.asarray(np.take(data, indices, axis=axis))]


def _runs(indices: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(first position, length, first index, step): the indices cut into arithmetic runs."""
    flat = [int(i) for i in indices.reshape(-1)]
    runs, position = [], 0
    while position < len(flat):
        length, step = 1, 0
        if position + 1 < len(flat):
            step = flat[position + 1] - flat[position]
            while position + length < len(flat) and \
                    flat[position + length] - flat[position + length - 1] == step:
                length += 1
        runs.append((position, length, flat[position], step))
        position += length
    return runs


@_device_lowering("Gather")
def _lower_gather(node: Node, inputs: list, builder) -> list:
    data = inputs[0]
    (indices,) = _host_args(builder, inputs, 1, ["indices"])
    axis = _axis(node.attrs.get("axis", 0), data.rank)
    dim = data.shape[axis]
    indices = _gather_indices(indices, dim)
    shape = [*data.shape[:axis], *indices.shape, *data.shape[axis + 1:]]
    outer, inner = math.prod(data.shape[:axis]), math.prod(data.shape[axis + 1:])
    count = indices.size
    if count == dim and np.array_equal(indices.reshape(-1), np.arange(dim)):
        return [builder.view(data, shape)]
    out = builder.new(shape)
    for position, length, first, step in _runs(indices):
        copy_box(builder, data, out, [outer, length, inner], [dim * inner, step * inner, 1],
                 [count * inner, inner, 1], src_offset=first * inner, dst_offset=position * inner)
    return [out]


# -- host values: Shape, Size, Constant, ConstantOfShape, Range --------------------------------

def _shape_of(node: Node, shape) -> np.ndarray:
    rank = len(shape)
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    end = rank if end is None else int(end)
    start, end = (max(0, min(rank, v + rank if v < 0 else v)) for v in (start, end))
    return np.asarray(shape[start:end], dtype=np.int64).reshape(-1)


@evaluation("Shape")
def _evaluate_shape(node: Node, arrays: list) -> list[np.ndarray]:
    return [_shape_of(node, list(np.shape(arrays[0])))]


@evaluation("Size")
def _evaluate_size(node: Node, arrays: list) -> list[np.ndarray]:
    return [np.asarray(np.size(arrays[0]), dtype=np.int64)]


@lowering("Shape", "Size")
def _lower_shape(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    if node.op == "Size":
        return [builder.constant(np.asarray(x.size, dtype=np.int64))]
    return [builder.constant(_shape_of(node, list(x.shape)))]


CONSTANT_ATTRS = ("value", "value_float", "value_floats", "value_int", "value_ints")


@evaluation("Constant")
def _evaluate_constant(node: Node, arrays: list) -> list[np.ndarray]:
    attrs = node.attrs
    if "value" in attrs:
        return [np.asarray(attrs["value"])]
    if "value_float" in attrs:
        return [np.asarray(attrs["value_float"], dtype=np.float32)]
    if "value_floats" in attrs:
        return [np.asarray(attrs["value_floats"], dtype=np.float32).reshape(-1)]
    if "value_int" in attrs:
        return [np.asarray(attrs["value_int"], dtype=np.int64)]
    if "value_ints" in attrs:
        return [np.asarray(attrs["value_ints"], dtype=np.int64).reshape(-1)]
    raise ValueError(f"Constant without a supported value attribute (has {sorted(attrs)})")


@checker("Constant")
def _check_constant(node: Node) -> str | None:
    if any(name in node.attrs for name in CONSTANT_ATTRS):
        return None
    kinds = [k for k in node.attrs if k.startswith(("value", "sparse"))]
    return f"Constant ({kinds[0] if kinds else 'without a value'})"


@evaluation("ConstantOfShape")
def _evaluate_constant_of_shape(node: Node, arrays: list) -> list[np.ndarray]:
    shape = _int_list(arrays[0])
    if any(d < 0 for d in shape):
        raise ValueError(f"ConstantOfShape of a negative shape {shape}")
    value = node.attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return [np.full(shape, value[0], dtype=value.dtype)]


@evaluation("Range")
def _evaluate_range(node: Node, arrays: list) -> list[np.ndarray]:
    start, limit, delta = (np.asarray(a).reshape(()) for a in arrays[:3])
    if delta == 0:
        raise ValueError("Range with a delta of 0")
    count = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    return [(start + np.arange(count) * delta).astype(start.dtype)]


# -- comparisons, logic and Where (host only) ----------------------------------------------------

_HOST_BINARY = {"Equal": np.equal, "Less": np.less, "Greater": np.greater,
                "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
                "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}


@evaluation(*_HOST_BINARY)
def _evaluate_compare(node: Node, arrays: list) -> list[np.ndarray]:
    return [np.asarray(_HOST_BINARY[node.op](arrays[0], arrays[1]))]


@evaluation("Not")
def _evaluate_not(node: Node, arrays: list) -> list[np.ndarray]:
    return [np.asarray(np.logical_not(arrays[0]))]


@evaluation("Where")
def _evaluate_where(node: Node, arrays: list) -> list[np.ndarray]:
    condition, x, y = (np.asarray(a) for a in arrays[:3])
    return [np.where(condition.astype(bool), x, y).astype(np.result_type(x, y))]


@evaluation("Mod")
def _evaluate_mod(node: Node, arrays: list) -> list[np.ndarray]:
    """Mod on the host (exporters compute pads from shapes with it: Swin's windows): the
    divisor's sign (NumPy's mod), or with fmod=1 the dividend's (C's fmod, floats' only)."""
    a, b = np.asarray(arrays[0]), np.asarray(arrays[1])
    fmod = int(node.attrs.get("fmod", 0))
    if not fmod and a.dtype.kind == "f":
        raise ValueError("Mod of floats needs fmod=1")
    with np.errstate(divide="ignore", invalid="ignore"):
        return [(np.fmod if fmod else np.mod)(a, b).astype(np.result_type(a, b))]


SCATTER_REDUCTIONS = {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum,
                      "min": np.minimum}


@evaluation("ScatterND")
def _evaluate_scatter_nd(node: Node, arrays: list) -> list[np.ndarray]:
    """ScatterND on the host (Swin's attention mask, written slice by slice into zeros):
    data with updates written, or combined by ``reduction``, at the index tuples of the
    indices' last axis, in order."""
    data, indices, updates = (np.asarray(a) for a in arrays[:3])
    reduction = node.attrs.get("reduction", "none")
    if reduction not in SCATTER_REDUCTIONS:
        raise ValueError(f"ScatterND reduction {reduction!r}")
    depth = indices.shape[-1]
    if depth > data.ndim or updates.shape != indices.shape[:-1] + data.shape[depth:]:
        raise ValueError(f"ScatterND updates {list(updates.shape)} do not fit data "
                         f"{list(data.shape)} at indices {list(indices.shape)}")
    out = data.copy()
    tuples = indices.reshape(-1, depth)
    slices = updates.reshape((len(tuples), *data.shape[depth:]))
    combine = SCATTER_REDUCTIONS[reduction]
    for at, update in zip(map(tuple, tuples), slices):
        out[at] = update if combine is None else combine(out[at], update)
    return [out]
