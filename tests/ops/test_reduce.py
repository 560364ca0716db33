"""ReduceSum / Mean / Max / Min / Prod on the device and on the host, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.errors import GraphError
from macecl.graph import Node
from macecl.ops import REGISTRY
from tests.ops.conftest import assert_close

RNG = np.random.default_rng(5)
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
# Prod of many normals under- or overflows; values near 1 keep it meaningful.
NEAR_ONE = (1 + 0.1 * RNG.standard_normal((2, 3, 4, 5))).astype(np.float32)
OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"]


def reference(op, x, axes, keepdims):
    """Reduction of float64 ``x`` over ``axes`` (all when None), one axis at a time."""
    axes = range(x.ndim) if axes is None else sorted(a % x.ndim for a in axes)
    result = x.astype(np.float64)
    for axis in reversed(list(axes)):
        result = {"ReduceSum": np.add, "ReduceMean": np.add, "ReduceMax": np.maximum,
                  "ReduceMin": np.minimum, "ReduceProd": np.multiply}[op].reduce(
            result, axis=axis, keepdims=True)
    if op == "ReduceMean":
        result = result / (x.size / max(result.size, 1))
    if not keepdims:
        result = result.reshape([d for i, d in enumerate(x.shape) if i not in axes])
    return result


def host(op, arrays, attrs):
    node = Node(op, "host", [f"in{i}" for i in range(len(arrays))], ["out"], attrs)
    return REGISTRY[op].evaluate(node, arrays)[0]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axes", [[1], [-1], [0, 1], [2, 3], [1, 3], [0, 2, 3], [0, 3], None,
                                  [3, 0, -3]])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_axes_attribute(run_node, op, axes, keepdims):
    x = NEAR_ONE if op == "ReduceProd" else X
    attrs = {"keepdims": keepdims}
    if axes is not None:
        attrs["axes"] = axes
    want = reference(op, x, axes, keepdims)
    (got,) = run_node(op, {"x": x}, attrs, opset=11)
    assert_close(got, want)
    assert_close(host(op, [x], attrs), want)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axes", [[0, -1], [2], [1, 2, 3]])
def test_reduce_axes_input(run_node, op, axes):
    """ReduceSum from opset 13, the others from 18: the axes are an input."""
    x = NEAR_ONE if op == "ReduceProd" else X
    want = reference(op, x, axes, 1)
    (got,) = run_node(op, {"x": x}, constants={"axes": np.array(axes, np.int64)})
    assert_close(got, want)
    assert_close(host(op, [x, np.array(axes)], {}), want)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax"])
def test_empty_axes(run_node, op):
    empty = {"axes": np.array([], np.int64)}
    (got,) = run_node(op, {"x": X}, {"keepdims": 0}, empty)  # all axes
    assert_close(got, reference(op, X, None, 0))
    (got,) = run_node(op, {"x": X}, {"noop_with_empty_axes": 1}, empty)  # identity
    assert_close(got, X)
    (got,) = run_node(op, {"x": X}, {"noop_with_empty_axes": 1})  # no axes input either
    assert_close(got, X)
    assert_close(host(op, [X, np.array([], np.int64)], {"noop_with_empty_axes": 1}), X)


@pytest.mark.parametrize("op", OPS)
def test_reduce_with_unit_dims(run_node, op):
    """Axes of size 1 are skipped; reduced axes apart only by dims of 1 are one run."""
    x = RNG.standard_normal((3, 1, 4, 1, 2)).astype(np.float32)
    if op == "ReduceProd":
        x = 1 + 0.1 * x
    for axes in ([1], [1, 3], [0, 2], [2, 4], [0, 1, 3]):
        (got,) = run_node(op, {"x": x}, {"axes": axes, "keepdims": 0}, opset=11)
        assert_close(got, reference(op, x, axes, 0))


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("shape,axes", [((64, 80), None), ((2, 6000), [1]), ((5003,), None)])
def test_long_reductions(run_node, op, shape, axes):
    """Long runs with few outputs are split in two launches (5003 is prime: not split)."""
    x = RNG.standard_normal(shape).astype(np.float32)
    attrs = {"keepdims": 0} if axes is None else {"axes": axes, "keepdims": 0}
    (got,) = run_node(op, {"x": x}, attrs, opset=11)
    assert_close(got, reference(op, x, axes, 0), tolerance=1e-4 * np.sqrt(x.size))


def test_reduce_integers_on_the_host():
    x = np.arange(12, dtype=np.int64).reshape(3, 4)
    got = host("ReduceSum", [x], {"axes": [1], "keepdims": 0})
    assert got.dtype == np.int64 and got.tolist() == [6, 22, 38]
    got = host("ReduceMax", [x], {"axes": [0]})
    assert got.dtype == np.int64 and got.tolist() == [[8, 9, 10, 11]]


def test_reduce_over_an_empty_axis(run_node):
    x = np.zeros((2, 0, 3), np.float32)
    (got,) = run_node("ReduceSum", {"x": x}, {"axes": [1], "keepdims": 0}, opset=11)
    assert_close(got, np.zeros((2, 3)))
    (got,) = run_node("ReduceMax", {"x": x}, {"axes": [1]}, opset=11)
    assert got.shape == (2, 1, 3) and np.all(got == -np.inf)


def test_bad_axes_fail(run_node):
    with pytest.raises(GraphError, match="out of range"):
        run_node("ReduceSum", {"x": X}, {"axes": [4]}, opset=11)
    with pytest.raises(GraphError, match="repeat"):
        run_node("ReduceMean", {"x": X}, {"axes": [1, -3]}, opset=11)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_nan_propagates_through_max_and_min_as_in_numpy(run_node, op):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x[1, 2, 0] = np.nan
    (got,) = run_node(op, {"x": x}, {"axes": [2], "keepdims": 0}, opset=13)
    want = (np.max if op == "ReduceMax" else np.min)(x, axis=2)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])


COMPOSITE_CASES = [
    ("ReduceSumSquare", {"axes": [1]}, 13),
    ("ReduceL1", {"axes": [0, 2], "keepdims": 0}, 13),
    ("ReduceL2", {}, 13),  # every axis
    ("ReduceLogSum", {"axes": [-1]}, 13),
    ("ReduceLogSumExp", {"axes": [1, 3], "keepdims": 0}, 13),
    ("ReduceLogSumExp", {"axes": [2]}, 18),  # axes as an input from opset 18
    ("ReduceL2", {"axes": [1]}, 18),
]


@pytest.mark.parametrize("op, attrs, opset", COMPOSITE_CASES)
def test_composite_reductions_as_onnxruntime(tmp_path, op, attrs, opset):
    """The reductions made of ReduceSum / ReduceMax and elementwise launches, large values in
    the log-sum-exp (the maximum is subtracted first), against ONNX Runtime."""
    from onnx import helper

    from tests.test_residual_fusion import same_as_onnxruntime, save

    constants, inputs = {}, ["x"]
    if opset >= 18 and "axes" in attrs:
        constants = {"axes": np.asarray(attrs.pop("axes"), np.int64)}
        inputs.append("axes")
    path = save(tmp_path, [helper.make_node(op, inputs, ["y"], **attrs)], constants,
                [("x", [2, 3, 4, 5])], opset=opset)
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    if op == "ReduceLogSumExp":
        x *= 40  # exp(x) overflows float32 unshifted
    elif op == "ReduceLogSum":
        x = np.abs(x) + 0.1
    same_as_onnxruntime(path, {"x": x})


ARG_CASES = [
    ("ArgMax", {"axis": 1}),
    ("ArgMin", {"axis": -1, "keepdims": 0}),
    ("ArgMax", {"axis": 0, "select_last_index": 1}),
    ("ArgMin", {"axis": 2, "select_last_index": 1, "keepdims": 0}),
]


@pytest.mark.parametrize("op, attrs", ARG_CASES)
def test_arg_reductions_as_onnxruntime(tmp_path, op, attrs):
    """Indices returned as the int64 the model declares, ties (rounded inputs) resolved to
    the first or, with select_last_index, the last, as ONNX Runtime does."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    import macecl
    from tests.test_residual_fusion import save

    path = save(tmp_path, [helper.make_node(op, ["x"], ["y"], **attrs)], {},
                [("x", [3, 4, 5])], opset=13)
    model = onnx.load(path)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    onnx.save(model, path)
    x = np.round(RNG.standard_normal((3, 4, 5)) * 2).astype(np.float32)  # many ties
    want = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    with macecl.Engine(path) as engine:
        got = engine.run({"x": x})["y"]
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op, attrs", [*((op, a) for op, a, opset in COMPOSITE_CASES
                                         if opset == 13), *ARG_CASES])
def test_composite_and_arg_folding_matches_the_device(run_node, op, attrs):
    """The NumPy evaluation (constant folding) gives what the device computes."""
    x = np.abs(RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)) + 0.1
    (got,) = run_node(op, {"x": x}, dict(attrs))
    (folded,) = REGISTRY[op].evaluate(Node(op, "r", ["x"], ["y"], dict(attrs)), [x])
    assert got.shape == folded.shape
    assert_close(got, folded.astype(np.float64))
