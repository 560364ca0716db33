"""The converter's residual fusion: Add(Conv(x), y) becomes one Conv with y as a fourth
input, added in the kernel before the activation (ONNX Runtime checks the numbers)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import macecl
from macecl.converter import convert

RNG = np.random.default_rng(5)


def save(tmp_path, nodes, initializers, inputs, opset=13):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


def same_as_onnxruntime(path, feeds):
    want = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, feeds)[0]
    with macecl.Engine(path) as engine:
        got = engine.run(feeds)["y"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(1.0, np.abs(want).max()))


def weights(*shape):
    return RNG.standard_normal(shape).astype(np.float32) * 0.3


def bn(channels):
    return {"scale": RNG.uniform(0.5, 1.5, channels).astype(np.float32),
            "shift": RNG.standard_normal(channels).astype(np.float32),
            "mean": RNG.standard_normal(channels).astype(np.float32),
            "var": RNG.uniform(0.5, 1.5, channels).astype(np.float32)}


@pytest.mark.parametrize("add", ["Add", "Sum"])
def test_resnet_block_becomes_two_convolutions(tmp_path, add):
    """Conv -> BN -> Add(shortcut Conv) -> Relu, the shortcut listed after the Add's other
    input: the fused Conv must move after it, and Relu must come after the Add. ONNX's
    ResNet-50 writes the Add as a two-input Sum."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["b"]),
        helper.make_node("Conv", ["x", "w2", "b2"], ["s"]),
        helper.make_node(add, ["b", "s"], ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ], {"w1": weights(6, 4, 3, 3), "w2": weights(6, 4, 1, 1), "b2": weights(6), **bn(6)},
        [("x", [1, 4, 9, 11])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv", "Conv"]
    shortcut, fused = graph.nodes
    assert fused.inputs[3] == shortcut.outputs[0]
    assert fused.attrs["activation"][0] == 1  # Relu, applied after the residual
    same_as_onnxruntime(path, {"x": RNG.standard_normal((1, 4, 9, 11)).astype(np.float32)})


def test_bias_free_conv_gets_an_empty_bias_slot(tmp_path):
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], group=4),
        helper.make_node("Add", ["r", "c"], ["y"]),
    ], {"w": weights(4, 1, 3, 3)}, [("x", [1, 4, 7, 7]), ("r", [1, 4, 7, 7])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv"]
    assert graph.nodes[0].inputs[2:] == ["", "r"]
    same_as_onnxruntime(path, {"x": RNG.standard_normal((1, 4, 7, 7)).astype(np.float32),
                               "r": RNG.standard_normal((1, 4, 7, 7)).astype(np.float32)})


def test_broadcast_add_and_shared_outputs_stay_apart(tmp_path):
    """A per-channel constant and a scalar (broadcasts, known at conversion), and a Conv
    output read twice, are not residuals: the Conv output read twice keeps its Add, and the
    constants fold into the bias (converter/affine.py), never into a fourth input."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Add", ["c", "k"], ["a0"]),
        helper.make_node("Conv", ["a0", "w"], ["c1"]),
        helper.make_node("Add", ["s", "c1"], ["a"]),
        helper.make_node("Conv", ["a", "w"], ["d"]),
        helper.make_node("Relu", ["d"], ["d2"]),
        helper.make_node("Add", ["d", "d2"], ["y"]),
    ], {"w": weights(4, 4, 1, 1), "k": weights(1, 4, 1, 1), "s": np.float32(0.5)},
        [("x", [1, 4, 5, 5])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv", "Conv", "Conv", "Relu", "Add"]
    assert all(len(n.inputs) <= 3 for n in graph.nodes if n.op == "Conv")
    same_as_onnxruntime(path, {"x": RNG.standard_normal((1, 4, 5, 5)).astype(np.float32)})


def test_residual_of_unknown_shape_that_broadcasts_at_run_time(tmp_path):
    """Shape inference cannot tell y's shape: the Add is fused, and when y turns out to
    broadcast, the engine adds it after the convolution, then applies the activation."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "r"], ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ], {"w": weights(3, 2, 3, 3), "b": weights(3)},
        [("x", [1, 2, "h", "w"]), ("r", ["n", "c", "rh", "rw"])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv"]
    feeds = {"x": RNG.standard_normal((1, 2, 6, 5)).astype(np.float32),
             "r": RNG.standard_normal((1, 3, 1, 5)).astype(np.float32)}
    same_as_onnxruntime(path, feeds)
    feeds["r"] = RNG.standard_normal((1, 3, 6, 5)).astype(np.float32)  # and when it does not
    same_as_onnxruntime(path, feeds)


def test_an_opset6_axis_broadcast_of_a_computed_tensor_is_still_refused(tmp_path):
    """Add(broadcast=1, axis=1) of a Conv output and a graph input cannot be expressed as a
    NumPy broadcast: the fusion must not hide it from the converter's refusal."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]),
         helper.make_node("Add", ["c", "r"], ["y"], broadcast=1, axis=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5]),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, None)],  # shape unknown
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weights(4, 4, 1, 1), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
    path = tmp_path / "opset6.onnx"
    onnx.save(model, path)
    with pytest.raises(macecl.UnsupportedModelError, match="opset-6 broadcasting"):
        convert(path)
