"""The converter's LayerNorm rewrite (converter/layer_norm.py): the nine-node chain exporters
write becomes one LayerNormalization; ONNX Runtime checks the numbers, and chains that are
not a LayerNorm over trailing axes are checked to stay."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from onnx import helper

import macecl
from macecl.converter import convert
from tests.test_residual_fusion import same_as_onnxruntime, save

RNG = np.random.default_rng(23)
SHAPE = [2, 6, 10]


def feed(shape=SHAPE):
    return (RNG.standard_normal(shape) * 2 + 1.5).astype(np.float32)


def chain(axes=(-1,), var_axes=None, square="Pow", gamma="gamma", beta="beta", x="x",
          keepdims=1):
    """The exported LayerNorm of ``x``, ending in "y" (opset 13: axes are attributes)."""
    var_axes = axes if var_axes is None else var_axes
    nodes = [
        helper.make_node("ReduceMean", [x], ["mean"], axes=list(axes), keepdims=keepdims),
        helper.make_node("Sub", [x, "mean"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["sq"]) if square == "Pow"
        else helper.make_node("Mul", ["d", "d"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=list(var_axes)),
        helper.make_node("Add", ["eps", "var"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["root"]),
        helper.make_node("Div", ["d", "root"], ["n" if gamma or beta else "y"]),
    ]
    if gamma:
        nodes.append(helper.make_node("Mul", [gamma, "n"], ["g" if beta else "y"]))
    if beta:
        nodes.append(helper.make_node("Add", ["g" if gamma else "n", beta], ["y"]))
    return nodes


def constants(gamma_shape=(10,)):
    return {"two": np.float32(2.0), "eps": np.asarray([1e-5], np.float32),
            "gamma": RNG.uniform(0.5, 1.5, gamma_shape).astype(np.float32),
            "beta": RNG.standard_normal(gamma_shape[-1:]).astype(np.float32)}


def test_paddle_layer_norm_becomes_one_node(tmp_path):
    path = save(tmp_path, chain(), constants(), [("x", SHAPE)])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["LayerNormalization"]
    node = graph.nodes[0]
    assert node.inputs == ["x", "gamma", "beta"] and node.attrs["axis"] == -1
    assert node.attrs["epsilon"] == pytest.approx(1e-5)
    same_as_onnxruntime(path, {"x": feed()})


def test_two_axes_with_a_self_product_and_no_affine(tmp_path):
    """Mean over the last two axes (positive, as shape inference makes negative), x * x
    for the square, neither gamma nor beta: LayerNormalization(axis=-2) with a unit scale."""
    path = save(tmp_path, chain(axes=(1, 2), square="Mul", gamma=None, beta=None),
                constants(), [("x", SHAPE)])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["LayerNormalization"]
    assert graph.nodes[0].attrs["axis"] == -2
    same_as_onnxruntime(path, {"x": feed()})


def test_a_gamma_along_other_axes_stays_a_mul(tmp_path):
    """gamma of shape (6, 1) varies along axis 1, which axis -1 does not normalize: the
    LayerNorm fuses, the Mul and the Add after it stay."""
    path = save(tmp_path, chain(), constants(gamma_shape=(6, 1)), [("x", SHAPE)])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["LayerNormalization", "Mul", "Add"]
    same_as_onnxruntime(path, {"x": feed()})


def _extra_reader(nodes):
    """``d`` read a third time: added to the output."""
    nodes[-1].output[0] = "z"
    return [*nodes, helper.make_node("Add", ["z", "d"], ["y"])]


@pytest.mark.parametrize("nodes, shape", [
    (chain(axes=(1,)), [2, 6, 6]),  # not the trailing axis
    (chain(axes=(-1,), var_axes=(-2, -1)), SHAPE),  # variance over other axes than the mean
    (chain(keepdims=0), [6, 6]),  # the mean loses its axis: Sub broadcasts it along rows
    (_extra_reader(chain()), SHAPE),  # an intermediate read elsewhere
], ids=["axis", "variance_axes", "keepdims", "used_intermediate"])
def test_chains_that_must_stay(tmp_path, nodes, shape):
    path = save(tmp_path, nodes, constants((shape[-1],)), [("x", shape)])
    graph = convert(path)
    assert "LayerNormalization" not in [n.op for n in graph.nodes]
    same_as_unoptimized_onnxruntime(path, {"x": feed(shape)})


def same_as_unoptimized_onnxruntime(path, feeds):
    """ONNX Runtime with its graph optimizations off: its own LayerNorm fusion (1.31) takes
    the keepdims=0 chain for a LayerNorm and computes something else than the graph says."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = onnxruntime.InferenceSession(str(path), options,
                                        providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    with macecl.Engine(path) as engine:
        got = engine.run(feeds)["y"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(1.0, np.abs(want).max()))
