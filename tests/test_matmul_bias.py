"""The converter's MatMul bias fold (converter/matmul_bias.py): MatMul by a constant matrix
then Add of a per-column constant is one MatMul (one gemm launch), and an activation after
it then fuses too; ONNX Runtime checks the numbers, and the cases that must stay are
checked to."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from macecl.converter import convert
from macecl.ops.activations import CODES
from tests.test_residual_fusion import same_as_onnxruntime, save

RNG = np.random.default_rng(29)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def test_linear_layer_and_swish_become_one_matmul(tmp_path):
    """PP-OCR rec's MLP: MatMul -> Add(b) -> Mul(alpha) -> Sigmoid -> Mul."""
    path = save(tmp_path, [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["b", "mm"], ["h"]),
        helper.make_node("Mul", ["h", "alpha"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["g"]),
        helper.make_node("Mul", ["h", "g"], ["y"]),
    ], {"w": rand(8, 6), "b": rand(6), "alpha": np.asarray([1.0], np.float32)},
        [("x", [2, 5, 8])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["MatMul"]
    assert graph.nodes[0].inputs == ["x", "w", "b"]
    assert graph.nodes[0].attrs["activation"][0] == CODES["Swish"]
    same_as_onnxruntime(path, {"x": rand(2, 5, 8)})


@pytest.mark.parametrize("bias_shape", [(1, 6), (1,)])
def test_bias_with_leading_ones_or_one_value(tmp_path, bias_shape):
    path = save(tmp_path, [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["y"]),
    ], {"w": rand(7, 6), "b": rand(*bias_shape)}, [("x", [3, 7])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["MatMul"]
    same_as_onnxruntime(path, {"x": rand(3, 7)})


@pytest.mark.parametrize("case", ["per_row", "computed_b", "read_twice", "wider"])
def test_cases_that_must_stay(tmp_path, case):
    """A bias per row; B computed; the product read elsewhere too; a bias of higher rank
    than the product (it widens it)."""
    nodes = [helper.make_node("MatMul", ["x", "z" if case == "computed_b" else "w"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["a" if case == "read_twice" else "y"])]
    if case == "read_twice":
        nodes.append(helper.make_node("Mul", ["a", "mm"], ["y"]))
    bias = {"per_row": rand(5, 1), "wider": rand(1, 1, 1, 6)}.get(case, rand(6))
    inputs = [("x", [2, 5, 8])] + ([("z", [8, 6])] if case == "computed_b" else [])
    path = save(tmp_path, nodes, {"w": rand(8, 6), "b": bias}, inputs)
    graph = convert(path)
    assert [n.op for n in graph.nodes][:2] == ["MatMul", "Add"]
    assert len(graph.nodes[0].inputs) == 2
    feeds = {"x": rand(2, 5, 8), **({"z": rand(8, 6)} if case == "computed_b" else {})}
    same_as_onnxruntime(path, feeds)
