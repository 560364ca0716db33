"""Shape and data-movement operators, and the host shape arithmetic, against NumPy.

Operators that lower run twice: on the device (a graph input through the engine) and on the
host (the registry's NumPy evaluation, as constant folding uses it), both against a
reference written here.
"""

from __future__ import annotations

import numpy as np
import pytest

from macecl.engine import Engine
from macecl.errors import GraphError
from macecl.graph import Graph, Node, TensorSpec
from macecl.ops import REGISTRY
from macecl.ops.registry import unsupported_reason
from macecl.ops.shape_ops import merged_permutation
from tests.ops.conftest import assert_close

RNG = np.random.default_rng(11)
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def evaluate(op, arrays, attrs=None, outputs=1):
    node = Node(op, f"{op.lower()}_host", [f"in{i}" for i in range(len(arrays))],
                [f"out{i}" for i in range(outputs)], dict(attrs or {}))
    return REGISTRY[op].evaluate(node, list(arrays))


def both(run_node, op, x, attrs=None, constants=None, outputs=1, inputs=None):
    """(device outputs, host outputs) of ``op`` on ``x`` with host ``constants``."""
    constants = {k: np.asarray(v) for k, v in (constants or {}).items()}
    device = run_node(op, {"x": x}, attrs, constants, outputs=outputs, inputs=inputs)
    names = inputs if inputs is not None else ["x", *constants]
    table = {"x": x, **constants}
    host = evaluate(op, [table[n] if n else None for n in names], attrs, outputs)
    return device, host


def check_both(run_node, op, x, want, attrs=None, constants=None, inputs=None):
    (device,), (host,) = both(run_node, op, x, attrs, constants, inputs=inputs)
    assert_close(device, want)
    assert host.dtype == x.dtype
    np.testing.assert_array_equal(host, want)


# -- views -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,want", [
    ([0, -1], (2, 60)), ([4, -1, 5], (4, 6, 5)), ([-1], (120,)), ([0, 0, 20], (2, 3, 20)),
    ([2, 0, 0, 5], (2, 3, 4, 5)), ([6, 20], (6, 20)), ([1, -1, 1, 5], (1, 24, 1, 5)),
])
def test_reshape(run_node, shape, want):
    check_both(run_node, "Reshape", X, X.reshape(want), constants={"s": np.array(shape, np.int64)})


def test_reshape_before_opset_5_takes_the_shape_attribute(run_node):
    (got,) = run_node("Reshape", {"x": X}, {"shape": [0, 4, -1]}, opset=4)
    assert_close(got, X.reshape(2, 4, 15))


def test_reshape_allowzero_keeps_zero_dims():
    x = np.zeros((2, 0, 3), np.float32)
    (got,) = evaluate("Reshape", [x, np.array([3, 0, 2])], {"allowzero": 1})
    assert got.shape == (3, 0, 2)
    (got,) = evaluate("Reshape", [x, np.array([0, 3, -1])])  # 0 copies: (2, 3, 0)
    assert got.shape == (2, 3, 0)


def test_reshape_rejects_a_wrong_size(run_node):
    with pytest.raises(GraphError, match="Reshape"):
        run_node("Reshape", {"x": X}, constants={"s": np.array([7, -1])})


@pytest.mark.parametrize("axis", [0, 1, 2, 3, 4, -1, -3])
def test_flatten(run_node, axis):
    split = axis % 4 if axis < 0 else axis
    want = X.reshape(int(np.prod(X.shape[:split])), -1)
    check_both(run_node, "Flatten", X, want, {"axis": axis})


Y = RNG.standard_normal((2, 1, 3, 1)).astype(np.float32)


@pytest.mark.parametrize("axes,want", [([1], (2, 3, 1)), ([-1], (2, 1, 3)), ([1, -1], (2, 3)),
                                       (None, (2, 3))])
def test_squeeze_attribute_and_input(run_node, axes, want):
    attrs = {} if axes is None else {"axes": axes}
    check_both(run_node, "Squeeze", Y, Y.reshape(want), attrs)  # opset < 13
    if axes is not None:  # opset 13: an input
        check_both(run_node, "Squeeze", Y, Y.reshape(want), constants={"a": np.array(axes)})


def test_squeeze_of_a_dim_that_is_not_1_fails(run_node):
    with pytest.raises(GraphError, match="Squeeze"):
        run_node("Squeeze", {"x": Y}, constants={"a": np.array([0])})


@pytest.mark.parametrize("axes,want", [([0], (1, 2, 1, 3, 1)), ([-1], (2, 1, 3, 1, 1)),
                                       ([1, 3], (2, 1, 1, 1, 3, 1)), ([0, -1], (1, 2, 1, 3, 1, 1)),
                                       ([-2, 2], (2, 1, 1, 3, 1, 1))])
def test_unsqueeze_attribute_and_input(run_node, axes, want):
    check_both(run_node, "Unsqueeze", Y, Y.reshape(want), {"axes": axes})
    check_both(run_node, "Unsqueeze", Y, Y.reshape(want), constants={"a": np.array(axes)})


@pytest.mark.parametrize("op", ["Identity", "Dropout"])
def test_identity_and_inference_dropout(run_node, op):
    constants = {"ratio": np.float32(0.5)} if op == "Dropout" else {}
    check_both(run_node, op, X, X, constants=constants)


def test_dropout_training_mode_and_mask_are_rejected(run_node):
    with pytest.raises(GraphError, match="training"):
        run_node("Dropout", {"x": X}, constants={"r": np.float32(0.5), "t": np.array(True)})
    node = Node("Dropout", "d", ["x"], ["y", "mask"])
    assert "mask" in unsupported_reason(node)
    assert unsupported_reason(Node("Dropout", "d", ["x"], ["y", ""])) is None


def test_cast_on_the_device_is_float32_only(run_node):
    (got,) = run_node("Cast", {"x": X}, {"to": 1})
    assert_close(got, X)
    with pytest.raises(GraphError, match="Cast"):
        run_node("Cast", {"x": X}, {"to": 7})
    assert unsupported_reason(Node("Cast", "c", ["x"], ["y"], {"to": 8})) is not None
    assert unsupported_reason(Node("Cast", "c", ["x"], ["y"], {"to": 7})) is None


@pytest.mark.parametrize("to,dtype", [(1, np.float32), (6, np.int32), (7, np.int64), (9, np.bool_),
                                      (10, np.float16), (11, np.float64), (2, np.uint8)])
def test_cast_on_the_host(to, dtype):
    x = np.array([-2.7, -0.5, 0.0, 1.5, 3.9], np.float32)
    (got,) = evaluate("Cast", [x], {"to": to})
    assert got.dtype == dtype
    if dtype in (np.int32, np.int64):
        np.testing.assert_array_equal(got, [-2, 0, 0, 1, 3])  # toward zero
    elif dtype == np.bool_:
        np.testing.assert_array_equal(got, [True, True, False, True, True])
    (back,) = evaluate("Cast", [np.array([3, 4], np.int64)], {"to": 1})
    assert back.dtype == np.float32 and back.tolist() == [3.0, 4.0]


# -- Concat, Split ---------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_concat(run_node, axis):
    shapes = []
    for size in (2, 1, 3):
        shape = list(X.shape)
        shape[axis] = size
        shapes.append(shape)
    a, b, c = (RNG.standard_normal(s).astype(np.float32) for s in shapes)
    want = np.concatenate([a, b, c], axis=axis)
    (got,) = run_node("Concat", {"a": a, "c": c}, {"axis": axis}, {"b": b}, inputs=["a", "b", "c"])
    assert_close(got, want)
    (host,) = evaluate("Concat", [a, b, c], {"axis": axis})
    np.testing.assert_array_equal(host, want)


def test_concat_with_an_empty_input(run_node):
    a, b = X, np.zeros((2, 0, 4, 5), np.float32)
    (got,) = run_node("Concat", {"a": a, "b": b}, {"axis": 1})
    assert_close(got, X)


def _split_reference(x, sizes, axis):
    bounds = np.cumsum([0] + list(sizes))
    index = [slice(None)] * x.ndim
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        index[axis] = slice(lo, hi)
        parts.append(x[tuple(index)])
    return parts


@pytest.mark.parametrize("case", [
    dict(axis=1, outputs=3, attrs={}, want=[1, 1, 1]),  # equal parts
    dict(axis=2, outputs=2, attrs={}, want=[2, 2]),
    dict(axis=-1, outputs=3, attrs={"split": [1, 3, 1]}, want=[1, 3, 1]),  # opset < 13
    dict(axis=3, outputs=3, constants={"s": np.array([2, 0, 3])}, want=[2, 0, 3]),  # 13+
    dict(axis=-2, outputs=3, attrs={"num_outputs": 3}, want=[2, 2, 0]),  # 18, ceil
    dict(axis=0, outputs=1, attrs={}, want=[2]),
])
def test_split(run_node, case):
    attrs = {"axis": case["axis"], **case.get("attrs", {})}
    constants = case.get("constants", {})
    want = _split_reference(X, case["want"], case["axis"])
    device, host = both(run_node, "Split", X, attrs, constants, outputs=case["outputs"])
    for got_device, got_host, part in zip(device, host, want):
        assert_close(got_device, part)
        np.testing.assert_array_equal(got_host, part)


def test_split_uneven_by_num_outputs():
    x = np.arange(7, dtype=np.float32)
    parts = evaluate("Split", [x], {"num_outputs": 3}, outputs=3)
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5], [6]]


def test_split_with_an_unused_output(shared_context):
    graph = Graph(nodes=[Node("Split", "s", ["x"], ["a", "", "c"], {"axis": 1})],
                  inputs=[TensorSpec("x", "float32", list(X.shape))],
                  outputs=[TensorSpec("a", "float32", []), TensorSpec("c", "float32", [])],
                  constants={}, opset=13)
    result = _run(graph, {"x": X}, shared_context)
    assert_close(result["a"], X[:, :1])
    assert_close(result["c"], X[:, 2:])


# -- Slice -----------------------------------------------------------------------------------------

SLICES = [
    # starts, ends, axes, steps
    ([1], [3], [0], [1]),
    ([0, 1], [2, 3], [1, 2], None),
    ([-3], [-1], [-1], None),
    ([1], [1000], [2], None),  # clamped end
    ([0], [INT64_MAX], [3], [2]),
    ([-1], [INT64_MIN], [1], [-1]),  # reversed
    ([4], [0], [3], [-2]),
    ([10], [-10], [2], [-3]),  # clamped start, negative step
    ([1, 0, 3], [2, 3, 0], None, [1, 2, -1]),  # axes omitted
    ([2], [1], [1], [1]),  # empty
    ([0, 0], [INT64_MAX, INT64_MAX], [0, -1], [1, 1]),  # the whole tensor: a view
]


def _slice_reference(x, starts, ends, axes, steps):
    index = [slice(None)] * x.ndim
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis] = slice(start, end, step)
    return x[tuple(index)]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICES)
def test_slice(run_node, starts, ends, axes, steps):
    constants = {"starts": np.array(starts, np.int64), "ends": np.array(ends, np.int64)}
    names = ["x", "starts", "ends", "", ""]
    if axes is not None:
        constants["axes"] = np.array(axes, np.int64)
        names[3] = "axes"
    if steps is not None:
        constants["steps"] = np.array(steps, np.int64)
        names[4] = "steps"
    while names[-1] == "":
        names.pop()
    want = _slice_reference(X, starts, ends, axes, steps)
    check_both(run_node, "Slice", X, want, constants=constants, inputs=names)


def test_slice_before_opset_10_takes_attributes(run_node):
    attrs = {"starts": [1, -2], "ends": [INT64_MAX, 100], "axes": [0, 3]}
    (got,) = run_node("Slice", {"x": X}, attrs, opset=9)
    assert_close(got, X[1:, :, :, -2:])
    (got,) = run_node("Slice", {"x": X}, {"starts": [0, 1], "ends": [1, 2]}, opset=9)
    assert_close(got, X[0:1, 1:2])


def test_slice_of_the_integer_shape_on_the_host():
    shape = np.array([1, 3, 224, 224], np.int64)
    (got,) = evaluate("Slice", [shape, np.array([-2]), np.array([INT64_MAX])])
    assert got.dtype == np.int64 and got.tolist() == [224, 224]


# -- Transpose -------------------------------------------------------------------------------------

@pytest.mark.parametrize("perm", [None, [0, 2, 1, 3], [3, 1, 0, 2], [1, 0, 3, 2], [0, 1, 2, 3]])
def test_transpose(run_node, perm):
    attrs = {} if perm is None else {"perm": perm}
    want = np.ascontiguousarray(np.transpose(X, perm))
    check_both(run_node, "Transpose", X, want, attrs)


@pytest.mark.parametrize("perm", [[1, 0, 2, 3], [0, 3, 2, 1], [2, 0, 1, 3]])
def test_transpose_with_unit_dims(run_node, perm):
    x = RNG.standard_normal((1, 3, 1, 4)).astype(np.float32)
    check_both(run_node, "Transpose", x, np.ascontiguousarray(np.transpose(x, perm)),
               {"perm": perm})


@pytest.mark.parametrize("shape, perm", [
    ((1, 4, 6, 5, 3), [0, 2, 1, 3, 4]),  # a channel shuffle: rows of 15 move whole
    ((2, 3, 4, 1, 5), [1, 0, 2, 3, 4]),  # a dim of 1 inside the merged trailing run
    ((2, 3, 4, 5), [2, 3, 0, 1]),  # two runs swap: the generic kernel over 2 axes
    ((2, 3, 4, 5, 2), [4, 0, 1, 2, 3]),
])
def test_transpose_merges_neighbouring_axes(run_node, shape, perm):
    x = RNG.standard_normal(shape).astype(np.float32)
    check_both(run_node, "Transpose", x, np.ascontiguousarray(np.transpose(x, perm)),
               {"perm": perm})


def test_merged_permutation():
    assert merged_permutation((1, 4, 28, 56, 56), [0, 2, 1, 3, 4]) == ([4, 28, 3136], [1, 0, 2])
    assert merged_permutation((2, 3, 1, 4), [1, 0, 2, 3]) == ([2, 3, 4], [1, 0, 2])
    assert merged_permutation((2, 3, 4, 5), [2, 3, 0, 1]) == ([6, 20], [1, 0])
    assert merged_permutation((2, 3, 4), [2, 1, 0]) == ([2, 3, 4], [2, 1, 0])
    assert merged_permutation((1, 1), [1, 0]) == ([1], [0])


# -- Pad -------------------------------------------------------------------------------------------

P = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)


def _pad_reference(x, begin, end, mode, value=0.0):
    grow = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    padded = (np.pad(x, grow, mode="constant", constant_values=value) if mode == "constant"
              else np.pad(x, grow, mode=mode))
    crop = tuple(slice(-min(b, 0), padded.shape[i] + min(e, 0))
                 for i, (b, e) in enumerate(zip(begin, end)))
    return padded[crop]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("begin,end", [
    ([0, 0, 1, 2], [0, 0, 2, 1]),
    ([1, 0, 3, 0], [0, 2, 0, 4]),
    ([0, 0, 0, 0], [0, 0, 0, 0]),
])
def test_pad_modes(run_node, mode, begin, end):
    constants = {"pads": np.array(begin + end, np.int64), "value": np.float32(1.5)}
    want = _pad_reference(P, begin, end, mode, 1.5)
    check_both(run_node, "Pad", P, want, {"mode": mode}, constants)


@pytest.mark.parametrize("mode", ["reflect", "wrap"])
def test_pad_wider_than_the_dim(run_node, mode):
    begin, end = [0, 0, 5, 0], [0, 0, 6, 7]
    want = _pad_reference(P, begin, end, mode)
    check_both(run_node, "Pad", P, want, {"mode": mode},
               {"pads": np.array(begin + end, np.int64)})


def test_pad_negative_crops(run_node):
    begin, end = [0, -1, 2, -2], [-1, 1, -3, 1]
    want = _pad_reference(P, begin, end, "constant", -2.0)
    check_both(run_node, "Pad", P, want, {},
               {"pads": np.array(begin + end, np.int64), "v": np.float32(-2.0)})


def test_pad_before_opset_11_takes_attributes(run_node):
    attrs = {"pads": [0, 1, 1, 0, 0, 2, 0, 1], "value": 3.0}
    (got,) = run_node("Pad", {"x": P}, attrs, opset=10)
    assert_close(got, _pad_reference(P, [0, 1, 1, 0], [0, 2, 0, 1], "constant", 3.0))
    (got,) = run_node("Pad", {"x": P}, {"pads": [0, 0, 2, 2, 0, 0, 1, 3], "mode": "reflect"},
                      opset=2)
    assert_close(got, _pad_reference(P, [0, 0, 2, 2], [0, 0, 1, 3], "reflect"))


def test_pad_with_axes_input(run_node):
    constants = {"pads": np.array([1, 2, 3, 0], np.int64), "v": np.float32(0.5),
                 "axes": np.array([-1, 1], np.int64)}
    want = _pad_reference(P, [0, 2, 0, 1], [0, 0, 0, 3], "constant", 0.5)
    check_both(run_node, "Pad", P, want, {}, constants)


def test_pad_without_constant_value_and_an_unknown_mode(run_node):
    (got,) = run_node("Pad", {"x": P}, constants={"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1])})
    assert_close(got, _pad_reference(P, [0, 0, 1, 1], [0, 0, 1, 1], "constant"))
    assert "mode" in unsupported_reason(Node("Pad", "p", ["x", "p"], ["y"], {"mode": "mirror"}))
    assert unsupported_reason(Node("Pad", "p", ["x", "p"], ["y"], {"mode": "edge"})) is None


def test_pad_integer_on_the_host():
    (got,) = evaluate("Pad", [np.array([1, 2, 3], np.int64), np.array([2, 1]), np.array(9)])
    assert got.dtype == np.int64 and got.tolist() == [9, 9, 1, 2, 3, 9]


# -- Expand, Tile ----------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape,shape,want", [
    ((3, 1), [2, 3, 4], (2, 3, 4)), ((1,), [2, 3], (2, 3)), ((2, 3, 4), [3, 1], (2, 3, 4)),
    ((2, 1, 4), [1, 5, 1], (2, 5, 4)), ((1, 3, 1, 1), [2, 1, 4, 5], (2, 3, 4, 5)),
])
def test_expand(run_node, x_shape, shape, want):
    x = RNG.standard_normal(x_shape).astype(np.float32)
    reference = x * np.ones(want, np.float32)
    check_both(run_node, "Expand", x, reference, constants={"s": np.array(shape, np.int64)})


@pytest.mark.parametrize("repeats", [[2, 1, 3], [1, 1, 1], [1, 2, 1], [3, 2, 2]])
def test_tile(run_node, repeats):
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    reference = x
    for axis, r in enumerate(repeats):  # tile by concatenating copies, axis by axis
        reference = np.concatenate([reference] * r, axis=axis)
    check_both(run_node, "Tile", x, reference, constants={"r": np.array(repeats, np.int64)})


# -- Gather ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis,indices", [
    (0, np.array(1)), (1, np.array([[0, 2], [1, 1]])), (2, np.array([-1, 0, -4])),
    (-1, np.array([1, 2, 3])), (3, np.array([4, 3, 2, 1, 0])), (1, np.array([0, 1, 2])),
    (3, np.array([0, 2, 4, 1, 1, 1, 3])), (2, np.array([], np.int64)),
])
def test_gather(run_node, axis, indices):
    a = axis % X.ndim
    positive = np.where(indices < 0, indices + X.shape[a], indices)
    reference = np.moveaxis(X, a, 0)[positive]  # (index dims..., other dims)
    reference = np.moveaxis(reference.reshape(positive.shape + tuple(np.delete(X.shape, a))),
                            list(range(positive.ndim)), list(range(a, a + positive.ndim)))
    check_both(run_node, "Gather", X, np.ascontiguousarray(reference), {"axis": axis},
               {"i": indices.astype(np.int64)})


def test_gather_out_of_range_fails(run_node):
    with pytest.raises(GraphError, match="Gather"):
        run_node("Gather", {"x": X}, {"axis": 1}, {"i": np.array([3])})


# -- Shape, Size, Constant, ConstantOfShape, Range, logic ------------------------------------------

@pytest.mark.parametrize("attrs,want", [({}, [2, 3, 4, 5]), ({"start": 1}, [3, 4, 5]),
                                        ({"end": -1}, [2, 3, 4]),
                                        ({"start": -2, "end": 10}, [4, 5]),
                                        ({"start": 3, "end": 1}, [])])
def test_shape(run_node, attrs, want):
    (got,) = run_node("Shape", {"x": X}, attrs)
    assert got.dtype == np.int64 and got.tolist() == want
    (host,) = evaluate("Shape", [X], attrs)
    assert host.dtype == np.int64 and host.tolist() == want


def test_size(run_node):
    (got,) = run_node("Size", {"x": X})
    assert got.dtype == np.int64 and got.shape == () and int(got) == 120


@pytest.mark.parametrize("attrs,want,dtype", [
    ({"value": np.array([[1.5, 2.0]], np.float32)}, [[1.5, 2.0]], np.float32),
    ({"value_float": 2.5}, 2.5, np.float32), ({"value_floats": [1.0, 2.0]}, [1.0, 2.0], np.float32),
    ({"value_int": 7}, 7, np.int64), ({"value_ints": [3, -1]}, [3, -1], np.int64),
])
def test_constant(attrs, want, dtype):
    (got,) = evaluate("Constant", [], attrs)
    assert got.dtype == dtype and got.tolist() == want
    assert unsupported_reason(Node("Constant", "c", [], ["y"], attrs)) is None


def test_constant_of_a_kind_not_supported():
    reason = unsupported_reason(Node("Constant", "c", [], ["y"], {"value_strings": ["a"]}))
    assert reason is not None and "value_strings" in reason


def test_constant_of_shape():
    (got,) = evaluate("ConstantOfShape", [np.array([2, 3], np.int64)])
    assert got.dtype == np.float32 and got.shape == (2, 3) and not got.any()
    (got,) = evaluate("ConstantOfShape", [np.array([4], np.int64)],
                      {"value": np.array([7], np.int64)})
    assert got.dtype == np.int64 and got.tolist() == [7] * 4
    (got,) = evaluate("ConstantOfShape", [np.array([], np.int64)],
                      {"value": np.array([1.5], np.float32)})
    assert got.shape == () and float(got) == 1.5


@pytest.mark.parametrize("start,limit,delta,want", [
    (np.int64(0), np.int64(5), np.int64(1), [0, 1, 2, 3, 4]),
    (np.int64(10), np.int64(1), np.int64(-3), [10, 7, 4]),
    (np.int64(3), np.int64(3), np.int64(1), []),
    (np.float32(1.0), np.float32(2.0), np.float32(0.25), [1.0, 1.25, 1.5, 1.75]),
])
def test_range(start, limit, delta, want):
    (got,) = evaluate("Range", [start, limit, delta])
    assert got.dtype == start.dtype and got.tolist() == want


def test_comparisons_logic_and_where():
    a, b = np.array([1, 2, 3], np.int64), np.array([2, 2, 2], np.int64)
    assert evaluate("Equal", [a, b])[0].tolist() == [False, True, False]
    assert evaluate("Less", [a, b])[0].tolist() == [True, False, False]
    assert evaluate("Greater", [a, b])[0].tolist() == [False, False, True]
    t, f = np.array([True, True, False]), np.array([True, False, False])
    assert evaluate("Not", [t])[0].tolist() == [False, False, True]
    assert evaluate("And", [t, f])[0].tolist() == [True, False, False]
    assert evaluate("Or", [t, f])[0].tolist() == [True, True, False]
    (got,) = evaluate("Where", [np.array([True, False, True]), a, np.array(-1, np.int64)])
    assert got.dtype == np.int64 and got.tolist() == [1, -1, 3]


def test_mod_takes_the_divisor_sign_or_with_fmod_the_dividend():
    a, b = np.array([7, -7, 7, -7], np.int64), np.array([3, 3, -3, -3], np.int64)
    assert evaluate("Mod", [a, b])[0].tolist() == [1, 2, -2, -1]
    assert evaluate("Mod", [a, b], {"fmod": 1})[0].tolist() == [1, -1, 1, -1]
    (got,) = evaluate("Mod", [np.float32([5.5, -5.5]), np.float32(2)], {"fmod": 1})
    assert got.dtype == np.float32 and got.tolist() == [1.5, -1.5]
    with pytest.raises(ValueError, match="fmod=1"):
        evaluate("Mod", [np.float32([5.5]), np.float32(2)])


@pytest.mark.parametrize("reduction,want", [
    ("none", [[0, 0], [5, 6], [0, 0], [1, 2]]),
    ("add", [[1, 1], [6, 7], [1, 1], [2, 3]]),
    ("max", [[1, 1], [5, 6], [1, 1], [1, 2]]),
])
def test_scatter_nd_writes_rows_in_order(reduction, want):
    """Index tuples shorter than the rank write whole rows; a repeated index takes the later
    update (or both, combined)."""
    data = np.zeros((4, 2), np.float32) + (0 if reduction == "none" else 1)
    indices = np.array([[3], [1]], np.int64)
    updates = np.array([[1, 2], [5, 6]], np.float32)
    (got,) = evaluate("ScatterND", [data, indices, updates], {"reduction": reduction})
    assert got.dtype == np.float32 and got.tolist() == want
    assert data.max() <= 1  # the input is not written


def test_scatter_nd_of_single_elements_and_a_mismatch():
    data = np.zeros((2, 3), np.int64)
    (got,) = evaluate("ScatterND", [data, np.array([[0, 2], [1, 0]]), np.array([7, 8])])
    assert got.tolist() == [[0, 0, 7], [8, 0, 0]]
    with pytest.raises(ValueError, match="do not fit"):
        evaluate("ScatterND", [data, np.array([[0, 2]]), np.array([7, 8])])


def test_a_host_only_op_on_a_device_tensor_fails(run_node):
    with pytest.raises(GraphError, match="Equal"):
        run_node("Equal", {"x": X}, constants={"y": np.float32(0)})


# -- graphs: host shape arithmetic feeding device views --------------------------------------------

def _run(graph, feeds, context):
    engine = Engine(graph, context=context)
    try:
        return engine.run(feeds)
    finally:
        engine.close()


def test_shape_gather_unsqueeze_concat_reshape_chain(shared_context):
    """x (N, C, H, W) -> Reshape(x, [N, -1]) with N computed on the host from Shape(x)."""
    nodes = [
        Node("Shape", "shape", ["x"], ["s"]),
        Node("Gather", "gather", ["s", "zero"], ["n"], {"axis": 0}),
        Node("Unsqueeze", "unsqueeze", ["n", "axes"], ["n1"]),
        Node("Concat", "concat", ["n1", "minus_one"], ["target"], {"axis": 0}),
        Node("Reshape", "reshape", ["x", "target"], ["y"]),
        Node("Shape", "shape2", ["y"], ["y_shape"]),
    ]
    graph = Graph(nodes=nodes, inputs=[TensorSpec("x", "float32", ["N", 3, "H", "W"])],
                  outputs=[TensorSpec("y", "float32", []), TensorSpec("y_shape", "int64", [])],
                  constants={"zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
                             "minus_one": np.array([-1], np.int64)}, opset=13)
    engine = Engine(graph, context=shared_context)
    try:
        for shape in ((2, 3, 4, 5), (1, 3, 2, 2)):
            x = RNG.standard_normal(shape).astype(np.float32)
            result = engine.run({"x": x})
            assert_close(result["y"], x.reshape(shape[0], -1))
            assert result["y_shape"].tolist() == [shape[0], int(np.prod(shape[1:]))]
        assert engine.stats.plans == 2
    finally:
        engine.close()


def test_views_and_copies_chained(shared_context):
    """Transpose -> Flatten -> Slice -> Unsqueeze -> Concat -> Split: device data through them."""
    nodes = [
        Node("Transpose", "t", ["x"], ["xt"], {"perm": [0, 2, 3, 1]}),
        Node("Flatten", "f", ["xt"], ["flat"], {"axis": 3}),
        Node("Slice", "s", ["flat", "st", "en", "ax", "sp"], ["sl"]),
        Node("Unsqueeze", "u", ["sl", "uax"], ["un"]),
        Node("Concat", "c", ["un", "un"], ["cat"], {"axis": 0}),
        Node("Split", "sp", ["cat"], ["a", "b"], {"axis": 0}),
    ]
    graph = Graph(nodes=nodes, inputs=[TensorSpec("x", "float32", [2, 3, 4, 5])],
                  outputs=[TensorSpec("a", "float32", []), TensorSpec("b", "float32", [])],
                  constants={"st": np.array([-1]), "en": np.array([0]), "ax": np.array([0]),
                             "sp": np.array([-2]), "uax": np.array([0])}, opset=13)
    result = _run(graph, {"x": X}, shared_context)
    flat = np.transpose(X, (0, 2, 3, 1)).reshape(40, 3)
    want = flat[-1:0:-2][None]
    assert_close(result["a"], want)
    assert_close(result["b"], want)


def test_a_shape_computed_on_the_device_fails(shared_context):
    nodes = [Node("Reshape", "r", ["x", "x"], ["y"])]
    graph = Graph(nodes=nodes, inputs=[TensorSpec("x", "float32", [2])],
                  outputs=[TensorSpec("y", "float32", [])], constants={}, opset=13)
    with pytest.raises(GraphError, match="planning time"):
        Engine(graph, context=shared_context)


def test_single_input_concat_and_scalar_gather(run_node):
    (got,) = run_node("Concat", {"x": X}, {"axis": 2})
    assert_close(got, X)
    (got,) = evaluate("Gather", [np.array([5, 6, 7], np.int64), np.array(-1, np.int64)])
    assert isinstance(got, np.ndarray) and got.shape == () and int(got) == 7


BLOCK_CASES = [
    ("DepthToSpace", {"blocksize": 2}, (1, 8, 3, 5)),  # DCR, the default
    ("DepthToSpace", {"blocksize": 3, "mode": "CRD"}, (2, 18, 4, 3)),
    ("DepthToSpace", {"blocksize": 2, "mode": "DCR"}, (1, 4, 16, 17)),
    ("SpaceToDepth", {"blocksize": 2}, (1, 3, 6, 8)),
    ("SpaceToDepth", {"blocksize": 4}, (2, 2, 8, 16)),
]


@pytest.mark.parametrize("op, attrs, shape", BLOCK_CASES)
def test_depth_space_rearrangements_as_onnxruntime(tmp_path, op, attrs, shape):
    """Pixel shuffle (super-resolution's upsampling) and space-to-depth (YOLO stems), both
    DepthToSpace modes, against ONNX Runtime."""
    from onnx import helper

    from tests.test_residual_fusion import same_as_onnxruntime, save

    path = save(tmp_path, [helper.make_node(op, ["x"], ["y"], **attrs)], {}, [("x", list(shape))])
    same_as_onnxruntime(path, {"x": RNG.standard_normal(shape).astype(np.float32)})


@pytest.mark.parametrize("op, attrs, shape", BLOCK_CASES)
def test_depth_space_folding_matches_the_device(run_node, op, attrs, shape):
    """The NumPy evaluation (constant folding) computes what the device does."""
    x = RNG.standard_normal(shape).astype(np.float32)
    (got,) = run_node(op, {"x": x}, attrs)
    np.testing.assert_array_equal(got, evaluate(op, [x], attrs)[0])


def test_depth_to_space_refuses_channels_its_block_does_not_divide(run_node):
    with pytest.raises(GraphError, match="6 channels are not a multiple of 4"):
        run_node("DepthToSpace", {"x": np.zeros((1, 6, 2, 2), np.float32)}, {"blocksize": 2})
