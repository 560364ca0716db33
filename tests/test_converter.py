"""The converter's rewrites: each leaves fewer nodes and the same numbers (ONNX Runtime checks)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import macecl
from macecl.converter import convert

RNG = np.random.default_rng(11)


def save(tmp_path, nodes, initializers, shape=(1, 4, 6, 6), opset=13, name="m.onnx"):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    path = tmp_path / name
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # what ONNX Runtime reads, whatever the onnx package writes by default
    onnx.save(model, path)
    return path


def same_as_onnxruntime(path, shape=(1, 4, 6, 6)):
    x = RNG.standard_normal(shape).astype(np.float32) * 2
    want = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    with macecl.Engine(path) as engine:
        got = engine.run({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(1.0, np.abs(want).max()))


def conv_weights():
    return {"w": RNG.standard_normal((4, 4, 3, 3)).astype(np.float32) * 0.3,
            "cb": RNG.standard_normal(4).astype(np.float32),
            "scale": RNG.uniform(0.5, 1.5, 4).astype(np.float32),
            "shift": RNG.standard_normal(4).astype(np.float32),
            "mean": RNG.standard_normal(4).astype(np.float32),
            "var": RNG.uniform(0.5, 1.5, 4).astype(np.float32)}


def test_batch_norm_and_relu6_fold_into_the_convolution(tmp_path):
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["b"]),
        helper.make_node("Clip", ["b", "lo", "hi"], ["y"]),
    ], {**conv_weights(), "lo": np.float32(0), "hi": np.float32(6)})
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv"]
    assert graph.nodes[0].attrs["activation"] == [3, 0.0, 6.0]
    same_as_onnxruntime(path)


@pytest.mark.parametrize("form", ["mul-then-div", "div-then-mul", "hard-sigmoid"])
def test_hard_swish_patterns_become_one_op(tmp_path, form):
    consts = {"three": np.float32(3), "zero": np.float32(0), "six": np.float32(6)}
    if form == "hard-sigmoid":
        nodes = [helper.make_node("HardSigmoid", ["x"], ["g"], alpha=1 / 6, beta=0.5),
                 helper.make_node("Mul", ["x", "g"], ["y"])]
    else:
        nodes = [helper.make_node("Add", ["x", "three"], ["a"]),
                 helper.make_node("Clip", ["a", "zero", "six"], ["c"])]
        if form == "mul-then-div":  # Paddle2ONNX's hard_swish
            nodes += [helper.make_node("Mul", ["x", "c"], ["m"]),
                      helper.make_node("Div", ["m", "six"], ["y"])]
        else:
            nodes += [helper.make_node("Div", ["c", "six"], ["d"]),
                      helper.make_node("Mul", ["d", "x"], ["y"])]
    path = save(tmp_path, nodes, consts)
    assert [n.op for n in convert(path).nodes] == ["HardSwish"]
    same_as_onnxruntime(path)


def test_a_gate_on_another_tensor_is_not_mistaken_for_hard_swish(tmp_path):
    """SE blocks multiply x by HardSigmoid(f(x)): that must stay a HardSigmoid and a Mul."""
    path = save(tmp_path, [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("HardSigmoid", ["r"], ["g"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["x", "g"], ["y"]),
    ], {})
    assert [n.op for n in convert(path).nodes] == ["Relu", "HardSigmoid", "Mul"]
    same_as_onnxruntime(path)


def test_exporter_shape_chains_fold_and_identity_goes(tmp_path):
    """Constant -> Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters write it."""
    path = save(tmp_path, [
        helper.make_node("Identity", ["x"], ["i"]),
        helper.make_node("Shape", ["i"], ["s"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.int64(0))),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Dropout", ["i"], ["d"]),
        helper.make_node("Reshape", ["d", "target"], ["y"]),
    ], {"axes": np.array([0], np.int64), "minus_one": np.array([-1], np.int64)})
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Reshape"]
    assert graph.constants[graph.nodes[0].inputs[1]].tolist() == [1, -1]
    same_as_onnxruntime(path)


def test_fixed_input_shapes_are_recorded_and_a_wrong_name_is_refused(tmp_path):
    path = save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], {}, shape=("N", 4, "H", "W"))
    graph = convert(path, input_shapes={"x": [2, 4, 5, 5]})
    assert graph.inputs[0].shape == [2, 4, 5, 5]
    with pytest.raises(macecl.ModelFormatError, match="'image'"):
        convert(path, input_shapes={"image": [1, 4, 5, 5]})


def test_an_opset_24_model_runs_and_25_is_refused(tmp_path):
    """Opsets 19 to 24 changed the operators macecl runs by types and attributes only (and
    added Gelu): a model of opset 24 (Conv, a wrap Pad, AveragePool with dilations, Gelu,
    Reshape, Transpose) runs as ONNX Runtime does; opset 25 is refused, naming the range."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Pad", ["c", "pads"], ["p"], mode="wrap"),
        helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[2, 2], dilations=[2, 2]),
        helper.make_node("Gelu", ["a"], ["g"]),
        helper.make_node("Reshape", ["g", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 1]),
    ]
    constants = {**conv_weights(), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
                 "shape": np.array([1, 4, -1], np.int64)}
    path = save(tmp_path, nodes, constants, opset=24)
    assert "Gelu" in [n.op for n in convert(path).nodes]
    same_as_onnxruntime(path)
    with pytest.raises(macecl.UnsupportedModelError, match="opset 25 .macecl reads 6 to 24"):
        convert(save(tmp_path, nodes, constants, opset=25, name="newer.onnx"))


def test_mod_and_scatter_nd_on_shapes_fold_away(tmp_path):
    """Swin's pattern: a pad computed with Mod from the input's width, and a mask written by
    ScatterND into zeros: both are constants after conversion, and the numbers ONNX
    Runtime's."""
    def i64(*values):
        return np.array(values, np.int64)

    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "three"], ["w"], axis=0),
        helper.make_node("Mod", ["w", "seven"], ["r"]),
        helper.make_node("Sub", ["seven", "r"], ["p"]),
        helper.make_node("Mod", ["p", "seven"], ["pad"]),
        helper.make_node("Concat", ["zeros7", "pad"], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads"], ["xp"]),
        helper.make_node("ConstantOfShape", ["mask_shape"], ["zero_mask"]),
        helper.make_node("ScatterND", ["zero_mask", "at", "values"], ["mask"]),
        helper.make_node("Add", ["xp", "mask"], ["y"]),
    ]
    path = save(tmp_path, nodes, {
        "three": np.array(3, np.int64), "seven": i64(7), "zeros7": i64(0, 0, 0, 0, 0, 0, 0),
        "mask_shape": i64(1, 1, 6, 7), "at": i64(0, 0, 0, 0, 0, 0, 5, 6).reshape(2, 4),
        "values": np.array([-1.0, -2.0], np.float32)})
    graph = convert(path)
    assert not {"Mod", "ScatterND", "Shape"} & {n.op for n in graph.nodes}
    same_as_onnxruntime(path)
