"""Broadcasting arithmetic through the engine, against NumPy: each of the three kernels
(same shapes; one operand that skips or is only the middle dims of the other: per row, per
column, a mask, a scalar; the rank-generic walk) on both sides of the non-commutative ops,
since the 3-D kernel swaps which operand is small."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.engine.plan import make_plan
from macecl.graph import Graph, Node, TensorSpec
from macecl.ops.elementwise import split_3d

RNG = np.random.default_rng(11)
SHAPES = [
    ((2, 3, 4, 5), (2, 3, 4, 5)),  # flat
    ((2, 3, 4, 5), (2, 3, 1, 1)),  # per channel: rows
    ((2, 3, 1, 1), (2, 3, 4, 5)),  # per channel on the left: rows, swapped
    ((2, 3, 4, 5), ()),  # a scalar: one row
    ((), (3, 7)),
    ((2, 3, 9, 11), (2, 3, 1, 1)),  # rows of 99: the width is rounded up to 128
    ((2, 3, 4, 5), (4, 5)),  # per column: a bias over the last axes
    ((5,), (3, 7, 5)),  # per column on the left, swapped
    ((2, 3, 4, 5), (3, 1, 1)),  # per channel without the batch: 3-D, the middle
    ((2, 1, 4, 5), (2, 3, 4, 5)),  # an attention mask on the left: 3-D, skipping the middle
    ((2, 3, 9, 11), (2, 1, 9, 11)),  # the same on the right, rows rounded up to 128
    ((4, 1), (1, 5)),  # both broadcast: the generic walk
    ((2, 3, 4, 5), (2, 1, 4, 1)),  # two broadcast runs: the generic walk
]


@pytest.mark.parametrize("op, function", [("Sub", np.subtract), ("Div", np.divide),
                                          ("Add", np.add), ("Pow", np.power)])
@pytest.mark.parametrize("a_shape, b_shape", SHAPES)
def test_broadcasting_matches_numpy(run_node, op, function, a_shape, b_shape):
    a = RNG.uniform(0.5, 2.0, a_shape).astype(np.float32)
    b = RNG.uniform(0.5, 2.0, b_shape).astype(np.float32)
    (got,) = run_node(op, {"a": np.atleast_1d(a) if not a.shape else a,
                           "b": np.atleast_1d(b) if not b.shape else b})
    expected = function(np.atleast_1d(a) if not a.shape else a,
                        np.atleast_1d(b) if not b.shape else b)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_split_3d_recognises_a_skipped_or_a_lone_middle():
    assert split_3d((2, 3, 1, 1), (2, 3, 4, 5)) == (1, 6, 20, False)  # per channel
    assert split_3d((), (2, 3)) == (1, 1, 6, False)  # a scalar
    assert split_3d((4, 5), (2, 3, 4, 5)) == (1, 6, 20, True)  # per column
    assert split_3d((1, 3, 4, 5), (2, 3, 4, 5)) == (1, 2, 60, True)
    assert split_3d((4, 1), (4, 5)) == (1, 4, 5, False)
    assert split_3d((2, 1, 4, 5), (2, 3, 4, 5)) == (2, 3, 20, True)  # an attention mask
    assert split_3d((8, 1, 1, 49, 49), (8, 2, 3, 49, 49)) == (8, 6, 2401, True)
    assert split_3d((3, 1, 1), (2, 3, 4, 5)) == (2, 3, 20, False)  # per channel, batch 2
    assert split_3d((1, 5, 1), (3, 5, 7)) == (3, 5, 7, False)
    assert split_3d((2, 1, 4, 1), (2, 3, 4, 5)) is None
    assert split_3d((4, 1), (1, 5)) is None


@pytest.mark.parametrize("a_shape, b_shape, kernel", [
    ((2, 3, 4, 5), (2, 1, 4, 5), "binary_3d"), ((2, 3, 4, 5), (3, 1, 1), "binary_3d"),
    ((2, 3, 4, 5), (2, 3, 1, 1), "binary_3d"), ((2, 3, 4, 5), (2, 1, 4, 1), "binary")])
def test_each_broadcast_takes_its_kernel(a_shape, b_shape, kernel):
    graph = Graph(nodes=[Node("Add", "add", ["a", "b"], ["y"])],
                  inputs=[TensorSpec("a", "float32", list(a_shape)),
                          TensorSpec("b", "float32", list(b_shape))],
                  outputs=[TensorSpec("y", "float32", [])], constants={}, opset=18)
    (step,) = make_plan(graph, [a_shape, b_shape]).steps
    assert step.kernel == kernel


def test_pow_by_a_constant_two_is_a_square(run_node):
    """Lowered as x * x: negative bases square, and the output keeps x's shape."""
    x = RNG.standard_normal((2, 3, 5)).astype(np.float32)
    x[0, 0, 0] = -3.0
    (got,) = run_node("Pow", {"x": x}, constants={"two": np.array([2.0], np.float32)})
    np.testing.assert_allclose(got, x * x, rtol=1e-6)
    assert got[0, 0, 0] == 9.0
    (got,) = run_node("Pow", {"x": x}, constants={"e": np.array(3.0, np.float32)})
    np.testing.assert_allclose(got, x ** 3, rtol=1e-5)
    graph = Graph(nodes=[Node("Pow", "p", ["x", "two"], ["y"])],
                  inputs=[TensorSpec("x", "float32", [2, 3, 5])],
                  outputs=[TensorSpec("y", "float32", [])],
                  constants={"two": np.array([2.0], np.float32)}, opset=18)
    (step,) = make_plan(graph, [(2, 3, 5)]).steps
    assert (step.kernel, step.options) == ("binary_flat", ("-DOP=2",))
