"""The converter's activation patterns (converter/activation_patterns.py): Swish spelled as
Mul and Sigmoid, Gelu spelled with Erf, and scalar affines after a fused HardSwish, each
become one fused activation; ONNX Runtime checks the numbers, and the cases that must stay
are checked to."""

from __future__ import annotations

import numpy as np
from onnx import helper

from macecl.converter import convert
from macecl.ops.activations import CODES, HARD_SWISH_AFFINE
from tests.test_residual_fusion import same_as_onnxruntime, save, weights

RNG = np.random.default_rng(17)


def scalar(value, rank=1):
    return np.full((1,) * rank, value, np.float32)


def feed(*shape):
    return RNG.standard_normal(shape).astype(np.float32) * 3


def test_paddle_swish_fuses_into_the_conv_before_it(tmp_path):
    """Conv -> Mul(c, alpha) -> Sigmoid -> Mul(c, sigmoid): one Conv with Swish(alpha)."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[0, 1, 0, 1]),
        helper.make_node("Mul", ["c", "alpha"], ["scaled"]),
        helper.make_node("Sigmoid", ["scaled"], ["gate"]),
        helper.make_node("Mul", ["c", "gate"], ["y"]),
    ], {"w": weights(6, 4, 1, 3), "b": weights(6), "alpha": scalar(1.7)}, [("x", [1, 4, 3, 9])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv"]
    assert graph.nodes[0].attrs["activation"] == [CODES["Swish"], np.float32(1.7), 0.0]
    same_as_onnxruntime(path, {"x": feed(1, 4, 3, 9)})


def test_silu_on_an_input_becomes_one_swish_node(tmp_path):
    """Mul(Sigmoid(x), x), the gate first: Swish with alpha 1, on its own (no producer)."""
    path = save(tmp_path, [
        helper.make_node("Sigmoid", ["x"], ["gate"]),
        helper.make_node("Mul", ["gate", "x"], ["y"]),
    ], {}, [("x", [2, 5, 7])])
    graph = convert(path)
    assert [(n.op, n.attrs) for n in graph.nodes] == [("Swish", {"alpha": 1.0})]
    same_as_onnxruntime(path, {"x": feed(2, 5, 7)})


def test_swish_cases_that_must_stay(tmp_path):
    """A gate read twice; a gate of another tensor; a per-channel alpha (not a Swish)."""
    path = save(tmp_path, [
        helper.make_node("Sigmoid", ["x"], ["g1"]),
        helper.make_node("Mul", ["x", "g1"], ["m1"]),
        helper.make_node("Add", ["m1", "g1"], ["a1"]),
        helper.make_node("Sigmoid", ["z"], ["g2"]),
        helper.make_node("Mul", ["a1", "g2"], ["m2"]),
        helper.make_node("Mul", ["m2", "alpha"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["g3"]),
        helper.make_node("Mul", ["m2", "g3"], ["y"]),
    ], {"alpha": RNG.uniform(0.5, 2, (1, 3, 1)).astype(np.float32)},
        [("x", [2, 3, 5]), ("z", [2, 3, 5])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Sigmoid", "Mul", "Add", "Sigmoid", "Mul", "Mul",
                                           "Sigmoid", "Mul"]
    same_as_onnxruntime(path, {"x": feed(2, 3, 5), "z": feed(2, 3, 5)})


def test_learnable_affine_after_hard_swish_joins_the_activation(tmp_path):
    """Conv(HardSwish) -> Mul(s) -> Add(b) -> padded depthwise Conv(HardSwish) -> Sub(t) ->
    Mul(u), PP-OCRv4's block (the padded Conv stops affine.py's forward fold): two Convs,
    each with a * HardSwish(x) + b, composed through the chain."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"]),
        helper.make_node("HardSwish", ["c1"], ["h1"]),
        helper.make_node("Mul", ["s", "h1"], ["m1"]),
        helper.make_node("Add", ["m1", "t"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=6),
        helper.make_node("HardSwish", ["c2"], ["h2"]),
        helper.make_node("Sub", ["h2", "u"], ["d2"]),
        helper.make_node("Mul", ["d2", "v"], ["y"]),
    ], {"w1": weights(6, 4, 1, 1), "b1": weights(6), "s": scalar(0.8), "t": scalar(-0.3),
        "w2": weights(6, 1, 3, 3), "u": scalar(0.2, rank=4), "v": scalar(1.5, rank=0)},
        [("x", [1, 4, 7, 9])], opset=14)
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv", "Conv"]
    first, second = (n.attrs["activation"] for n in graph.nodes)
    np.testing.assert_allclose(first, [HARD_SWISH_AFFINE, 0.8, -0.3], rtol=1e-6)
    np.testing.assert_allclose(second, [HARD_SWISH_AFFINE, 1.5, -0.3], rtol=1e-6)
    same_as_onnxruntime(path, {"x": feed(1, 4, 7, 9)})


def test_affine_cases_that_must_stay(tmp_path):
    """After a Relu (not HardSwish); a per-channel scale; a constant minus the activation; an
    activation read twice; a scalar of higher rank than the output (it widens it)."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Mul", ["r1", "s"], ["m1"]),
        helper.make_node("Conv", ["m1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c2"], ["h2"]),
        helper.make_node("Mul", ["h2", "per_channel"], ["m2"]),
        helper.make_node("Conv", ["m2", "w2"], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c3"], ["h3"]),
        helper.make_node("Sub", ["s", "h3"], ["d3"]),
        helper.make_node("Conv", ["d3", "w2"], ["c4"], pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c4"], ["h4"]),
        helper.make_node("Mul", ["h4", "s"], ["m4"]),
        helper.make_node("Add", ["m4", "h4"], ["a4"]),
        helper.make_node("Conv", ["a4", "w2"], ["c5"], pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c5"], ["h5"]),
        helper.make_node("Mul", ["h5", "wide"], ["y"]),
    ], {"w1": weights(3, 3, 3, 3), "w2": weights(3, 3, 3, 3), "s": scalar(0.7),
        "per_channel": RNG.uniform(0.5, 2, (3, 1, 1)).astype(np.float32),
        "wide": scalar(1.1, rank=5)}, [("x", [1, 3, 6, 5])], opset=14)
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv", "Mul", "Conv", "Mul", "Conv", "Sub", "Conv",
                                           "Mul", "Add", "Conv", "Mul"]
    assert all(n.attrs.get("activation", (0,))[0] != HARD_SWISH_AFFINE for n in graph.nodes)
    same_as_onnxruntime(path, {"x": feed(1, 3, 6, 5)})


def test_torch_gelu_fuses_into_the_matmul_before_it(tmp_path):
    """MatMul -> Div(sqrt 2) -> Erf -> Add(1) -> Mul(m, .) -> Mul(., 0.5), as PyTorch's
    TorchScript exporter writes nn.GELU before opset 20 (ConvNeXt's and Swin's MLPs): one
    MatMul with Gelu fused."""
    path = save(tmp_path, [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Div", ["m", "root2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["p"]),
        helper.make_node("Mul", ["m", "p"], ["q"]),
        helper.make_node("Mul", ["q", "half"], ["y"]),
    ], {"w": weights(8, 12), "root2": np.float32(np.sqrt(2)), "one": np.float32(1),
        "half": np.float32(0.5)}, [("x", [3, 5, 8])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["MatMul"]
    assert graph.nodes[0].attrs["activation"][0] == CODES["Gelu"]
    same_as_onnxruntime(path, {"x": feed(3, 5, 8)})


def test_gelu_by_a_half_computed_beside_it_becomes_one_node(tmp_path):
    """Mul(x, 1/sqrt 2) -> Erf -> Add(1, .) -> Mul(Mul(x, 0.5), .): Gelu on the input."""
    path = save(tmp_path, [
        helper.make_node("Mul", ["x", "half"], ["h"]),
        helper.make_node("Mul", ["inv_root2", "x"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["one", "e"], ["p"]),
        helper.make_node("Mul", ["h", "p"], ["y"]),
    ], {"half": scalar(0.5), "inv_root2": scalar(np.sqrt(0.5)), "one": scalar(1.0)},
        [("x", [2, 4, 6])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Gelu"]
    same_as_onnxruntime(path, {"x": feed(2, 4, 6)})


def test_gelu_cases_that_must_stay(tmp_path):
    """Erf of x / 2 (not sqrt 2); an Add of 1 read twice; a last Mul by 0.25: each Erf stays
    a plain Erf and the numbers stay ONNX Runtime's."""
    path = save(tmp_path, [
        helper.make_node("Div", ["x", "two"], ["d1"]),
        helper.make_node("Erf", ["d1"], ["e1"]),
        helper.make_node("Add", ["e1", "one"], ["p1"]),
        helper.make_node("Mul", ["x", "p1"], ["q1"]),
        helper.make_node("Mul", ["q1", "half"], ["y1"]),
        helper.make_node("Div", ["y1", "root2"], ["d2"]),
        helper.make_node("Erf", ["d2"], ["e2"]),
        helper.make_node("Add", ["e2", "one"], ["p2"]),
        helper.make_node("Mul", ["y1", "p2"], ["q2"]),
        helper.make_node("Mul", ["q2", "quarter"], ["r2"]),
        helper.make_node("Add", ["r2", "p2"], ["y"]),
    ], {"two": np.float32(2), "one": np.float32(1), "half": np.float32(0.5),
        "root2": np.float32(np.sqrt(2)), "quarter": np.float32(0.25)}, [("x", [2, 3, 5])])
    graph = convert(path)
    assert [n.op for n in graph.nodes].count("Erf") == 2
    assert "Gelu" not in [n.op for n in graph.nodes]
    same_as_onnxruntime(path, {"x": feed(2, 3, 5)})
