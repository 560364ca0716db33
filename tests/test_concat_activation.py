"""The converter's move of an activation before a Concat (converter/concat_activation.py):
the Concat's producers apply it, a Relu is dropped for inputs already non-negative, and
patterns where an input can do neither stay whole; ONNX Runtime checks the numbers."""

from __future__ import annotations

import numpy as np
from onnx import helper

from macecl.converter import convert
from macecl.ops.activations import CODES
from tests.test_residual_fusion import same_as_onnxruntime, save, weights

RNG = np.random.default_rng(23)


def feed(*shape):
    return {"x": RNG.standard_normal(shape).astype(np.float32) * 2}


def test_shufflenet_unit_relu_moves_into_the_conv(tmp_path):
    """Relu(Concat(Conv(r), AveragePool(r))), r a relu'd Conv output: ShuffleNet's first
    unit of a stage. The Conv takes the Relu; the pooled branch is non-negative already."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w0"], ["c0"]),
        helper.make_node("Relu", ["c0"], ["r"]),
        helper.make_node("Conv", ["r", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("Concat", ["c1", "p"], ["cat"], axis=1),
        helper.make_node("Relu", ["cat"], ["y"]),
    ], {"w0": weights(6, 3, 1, 1), "w1": weights(5, 6, 3, 3), "b1": weights(5)},
        [("x", [1, 3, 10, 12])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv", "Conv", "AveragePool", "Concat"]
    assert graph.nodes[1].attrs["activation"][0] == CODES["Relu"]
    assert graph.nodes[-1].outputs == ["y"]
    same_as_onnxruntime(path, feed(1, 3, 10, 12))


def test_clip_moves_into_every_producer(tmp_path):
    """Clip(0, 6) after a Concat of two Convs: each Conv applies it (Clip has no skip)."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w1"], ["a"]),
        helper.make_node("Conv", ["x", "w2"], ["b"]),
        helper.make_node("Concat", ["a", "b"], ["cat"], axis=1),
        helper.make_node("Clip", ["cat", "low", "high"], ["y"]),
    ], {"w1": weights(4, 3, 1, 1) * 10, "w2": weights(2, 3, 1, 1) * 10,
        "low": np.float32(0), "high": np.float32(6)}, [("x", [1, 3, 5, 7])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv", "Conv", "Concat"]
    assert [n.attrs["activation"] for n in graph.nodes[:2]] == [[CODES["Clip"], 0.0, 6.0]] * 2
    same_as_onnxruntime(path, feed(1, 3, 5, 7))


def test_patterns_that_must_stay(tmp_path):
    """Relu after a Concat of a Conv read twice, of a MaxPool over a possibly negative
    input, and of an input: no input can take it, and each Relu stays."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w1"], ["a"]),
        helper.make_node("Concat", ["a", "x"], ["cat1"], axis=1),  # x: a graph input
        helper.make_node("Relu", ["cat1"], ["r1"]),
        helper.make_node("MaxPool", ["a"], ["m"], kernel_shape=[1, 1]),  # a read twice
        helper.make_node("Conv", ["r1", "w2"], ["c"]),
        helper.make_node("Concat", ["c", "m"], ["cat2"], axis=1),  # m: may be negative
        helper.make_node("Relu", ["cat2"], ["y"]),
    ], {"w1": weights(4, 3, 1, 1), "w2": weights(2, 7, 1, 1)}, [("x", [1, 3, 5, 7])])
    graph = convert(path)
    assert [n.op for n in graph.nodes].count("Relu") == 2
    assert all("activation" not in n.attrs for n in graph.nodes if n.op == "Conv")
    same_as_onnxruntime(path, feed(1, 3, 5, 7))
