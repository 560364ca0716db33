"""Softmax and LogSoftmax: along one axis (opset 13+) and the 2-D coercion before 13."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.errors import GraphError
from macecl.graph import Node
from macecl.ops import REGISTRY
from tests.ops.conftest import assert_close

RNG = np.random.default_rng(3)
X = (RNG.standard_normal((2, 3, 4, 5)) * 4).astype(np.float32)


def along(op, x, axis):
    """Softmax / LogSoftmax along ``axis`` in float64."""
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    soft = e / e.sum(axis=axis, keepdims=True)
    return np.log(soft) if op == "LogSoftmax" else soft


def coerced(op, x, axis):
    """Before opset 13: x as (prod(dims before axis), prod(dims from axis)), along the second."""
    axis = axis + x.ndim if axis < 0 else axis
    rows = int(np.prod(x.shape[:axis]))
    return along(op, x.reshape(rows, -1), 1).reshape(x.shape)


def host(op, x, attrs):
    return REGISTRY[op].evaluate(Node(op, "host", ["x"], ["y"], attrs), [x])[0]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -2, None])
def test_along_an_axis(run_node, op, axis):
    attrs = {} if axis is None else {"axis": axis}
    want = along(op, X, -1 if axis is None else axis)
    (got,) = run_node(op, {"x": X}, attrs)
    assert_close(got, want)
    assert_close(host(op, X, attrs), want)
    (got,) = run_node(op, {"x": X}, {**attrs, "opset": 13})
    assert_close(got, want)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [0, 1, 2, 3, 4, -1, -3, None])
def test_opset_11_coerces_to_2d(run_node, op, axis):
    attrs = {"opset": 11} if axis is None else {"opset": 11, "axis": axis}
    want = coerced(op, X, 1 if axis is None else axis)
    (got,) = run_node(op, {"x": X}, attrs, opset=11)
    assert_close(got, want)
    assert_close(host(op, X, attrs), want)


def test_opset_11_coercion_differs_from_13(run_node):
    (old,) = run_node("Softmax", {"x": X}, {"opset": 11, "axis": 2}, opset=11)
    (new,) = run_node("Softmax", {"x": X}, {"axis": 2})
    assert_close(old.sum(axis=(2, 3)), np.ones((2, 3)))
    assert_close(new.sum(axis=2), np.ones((2, 3, 5)))


def test_large_logits_do_not_overflow(run_node):
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]], np.float32)
    (got,) = run_node("Softmax", {"x": x})
    assert np.all(np.isfinite(got))
    assert_close(got, along("Softmax", x, -1))
    (got,) = run_node("LogSoftmax", {"x": x})
    assert_close(got, along("LogSoftmax", x, -1))


def test_rank_1_and_2(run_node):
    v = RNG.standard_normal(7).astype(np.float32)
    (got,) = run_node("Softmax", {"x": v})
    assert_close(got, along("Softmax", v, 0))
    m = RNG.standard_normal((3, 6)).astype(np.float32)
    (got,) = run_node("LogSoftmax", {"x": m}, {"axis": 0})
    assert_close(got, along("LogSoftmax", m, 0))


def test_axis_out_of_range_fails(run_node):
    with pytest.raises(GraphError, match="out of range"):
        run_node("Softmax", {"x": X}, {"axis": 4})
