"""The converter's squeeze-and-excitation fusion (converter/squeeze_excite.py): GlobalAveragePool
-> Conv 1x1 (+ activation) -> Conv 1x1 (+ activation) -> Mul becomes one SqueezeExcite node;
ONNX Runtime checks the numbers, and blocks that differ are checked to stay."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from macecl.converter import convert
from tests.test_residual_fusion import same_as_onnxruntime, save

RNG = np.random.default_rng(31)
N, C, HIDDEN, H, W = 2, 19, 5, 7, 9  # odd sizes: every tail of the kernel


def block(hidden="Relu", gate="HardSigmoid", biases=True, gate_first=False, squeeze_pads=None):
    """x -> Conv 3x3 -> the SE block -> "y" (with activation nodes as exporters write them)."""
    squeeze_inputs = ["m", "w1", "b1"] if biases else ["m", "w1"]
    excite_inputs = ["h", "w2", "b2"] if biases else ["h", "w2"]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["f"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["f"], ["m"]),
        helper.make_node("Conv", squeeze_inputs, ["h0" if hidden else "h"],
                         **({"pads": squeeze_pads} if squeeze_pads else {})),
    ]
    if hidden:
        nodes.append(_activation(hidden, "h0", "h"))
    nodes.append(helper.make_node("Conv", excite_inputs, ["s0" if gate else "s"]))
    if gate:
        nodes.append(_activation(gate, "s0", "s"))
    nodes.append(helper.make_node("Mul", ["s", "f"] if gate_first else ["f", "s"], ["y"]))
    return nodes


def _activation(op, source, target):
    attrs = {"HardSigmoid": {"alpha": 0.2, "beta": 0.5}, "LeakyRelu": {"alpha": 0.1}}
    return helper.make_node(op, [source], [target], **attrs.get(op, {}))


def constants(hidden=HIDDEN, squeeze_taps=1):
    return {"w0": RNG.standard_normal((C, 3, 3, 3)).astype(np.float32) * 0.4,
            "w1": RNG.standard_normal((hidden, C, squeeze_taps, squeeze_taps)).astype(
                np.float32) * 0.5,
            "b1": RNG.standard_normal(hidden).astype(np.float32),
            "w2": RNG.standard_normal((C, hidden, 1, 1)).astype(np.float32) * 0.5,
            "b2": RNG.standard_normal(C).astype(np.float32)}


def feed():
    return {"x": RNG.standard_normal((N, 3, H, W)).astype(np.float32)}


@pytest.mark.parametrize("hidden,gate,biases,gate_first", [
    ("Relu", "HardSigmoid", True, False),  # MobileNetV3's and PP-OCR's block
    ("Relu", "Sigmoid", False, True),  # SENet's, the Mul's operands the other way round
    ("HardSwish", None, True, False),  # no gate activation
    (None, "HardSigmoid", False, False),  # no hidden activation
    ("LeakyRelu", "Sigmoid", True, True),
])
def test_block_becomes_one_node(tmp_path, hidden, gate, biases, gate_first):
    path = save(tmp_path, block(hidden, gate, biases, gate_first), constants(),
                [("x", [N, 3, H, W])], opset=14)
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv", "SqueezeExcite"]
    fused = graph.nodes[1]
    assert fused.inputs == ["f", "w1", "b1" if biases else "", "w2", "b2" if biases else ""]
    assert fused.attrs["hidden_activation"][0] == {None: 0, "Relu": 1, "HardSwish": 7,
                                                   "LeakyRelu": 2}[hidden]
    assert fused.attrs["gate_activation"][0] == {None: 0, "HardSigmoid": 6, "Sigmoid": 4}[gate]
    same_as_onnxruntime(path, feed())


def test_one_hidden_unit(tmp_path):
    path = save(tmp_path, block(), constants(hidden=1), [("x", [N, 3, H, W])])
    assert "SqueezeExcite" in [n.op for n in convert(path).nodes]
    same_as_onnxruntime(path, feed())


def _mean_read_twice(nodes):
    """The means are an output of the graph too (added to the result)."""
    nodes[-1].output[0] = "z"
    return [*nodes, helper.make_node("Add", ["z", "m"], ["y"])]


def _scaled_other_tensor(nodes):
    """The Mul scales the Conv's input, not the tensor that was pooled."""
    nodes[-1].input[:] = ["s", "x2"]
    return [helper.make_node("Conv", ["x", "w0"], ["x2"], pads=[1, 1, 1, 1]), *nodes]


def test_padded_3x3_squeeze_on_the_pooled_map_is_1x1(tmp_path):
    """A padded 3x3 squeeze reads only its centre tap on the pooled 1x1 map:
    converter/padded_taps.py makes it the 1x1 convolution it is, and the block fuses."""
    path = save(tmp_path, block(squeeze_pads=[1, 1, 1, 1]), constants(squeeze_taps=3),
                [("x", [N, 3, H, W])])
    assert [n.op for n in convert(path).nodes] == ["Conv", "SqueezeExcite"]
    same_as_onnxruntime(path, feed())


@pytest.mark.parametrize("nodes", [
    _mean_read_twice(block()),  # an intermediate read elsewhere
    _scaled_other_tensor(block()),
], ids=["used_intermediate", "other_tensor"])
def test_blocks_that_must_stay(tmp_path, nodes):
    path = save(tmp_path, nodes, constants(), [("x", [N, 3, H, W])])
    assert "SqueezeExcite" not in [n.op for n in convert(path).nodes]
    same_as_onnxruntime(path, feed())
