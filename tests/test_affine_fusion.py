"""The converter's affine folds: constant Mul / Add / Sub beside a Conv go into its weights
and bias (PP-OCRv4's learnable affine blocks); ONNX Runtime checks the numbers, and the
cases the folds must leave alone are checked to stay."""

from __future__ import annotations

import numpy as np
from onnx import helper

from macecl.converter import convert
from tests.test_residual_fusion import bn, same_as_onnxruntime, save, weights

RNG = np.random.default_rng(11)


def scalar(value):
    return np.asarray([value], np.float32)


def test_learnable_affine_block_folds_into_both_convolutions(tmp_path):
    """Conv -> Mul -> Add -> HardSigmoid -> Mul -> Add -> 1x1 Conv: two Convs, the first
    with the activation fused (it could not fuse while the Mul and Add stood between).
    PP-OCRv4 has HardSwish there, which needs opset 14; this graph is opset 13."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["s1", "c1"], ["m1"]),
        helper.make_node("Add", ["m1", "t1"], ["a1"]),
        helper.make_node("HardSigmoid", ["a1"], ["h"], alpha=0.3, beta=0.4),
        helper.make_node("Mul", ["h", "s2"], ["m2"]),
        helper.make_node("Add", ["t2", "m2"], ["a2"]),
        helper.make_node("Conv", ["a2", "w2", "b2"], ["y"]),
    ], {"w1": weights(6, 4, 3, 3), "b1": weights(6), "s1": scalar(1.3), "t1": scalar(-0.4),
        "s2": scalar(0.7), "t2": scalar(0.25), "w2": weights(5, 6, 1, 1), "b2": weights(5)},
        [("x", [1, 4, 9, 11])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv", "Conv"]
    assert graph.nodes[0].attrs["activation"][0] == 6  # HardSigmoid
    assert graph.nodes[1].inputs[0] == graph.nodes[0].outputs[0]
    same_as_onnxruntime(path, {"x": RNG.standard_normal((1, 4, 9, 11)).astype(np.float32)})


def test_per_channel_scale_and_subtraction_fold_into_a_bias_free_conv(tmp_path):
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w"], ["c"], group=2),
        helper.make_node("Mul", ["c", "s"], ["m"]),
        helper.make_node("Sub", ["m", "t"], ["y"]),
    ], {"w": weights(6, 2, 3, 3), "s": RNG.uniform(0.5, 2, (6, 1, 1)).astype(np.float32),
        "t": RNG.standard_normal((1, 6, 1, 1)).astype(np.float32)}, [("x", [2, 4, 8, 7])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["Conv"]
    same_as_onnxruntime(path, {"x": RNG.standard_normal((2, 4, 8, 7)).astype(np.float32)})


def test_cases_that_must_stay(tmp_path):
    """A constant minus the Conv; a per-pixel constant; a Conv read twice; a scalar shift
    before a padded Conv (the padded zeros would not be shifted); a per-channel shift before
    a Conv (only scalars fold forward)."""
    path = save(tmp_path, [
        helper.make_node("Conv", ["x", "w1"], ["c1"]),
        helper.make_node("Sub", ["t", "c1"], ["d"]),
        helper.make_node("Conv", ["d", "w2"], ["c2"]),
        helper.make_node("Add", ["c2", "pixel"], ["e"]),
        helper.make_node("Conv", ["e", "w3"], ["c3"]),
        helper.make_node("Mul", ["c3", "s"], ["f"]),
        helper.make_node("Add", ["f", "c3"], ["g"]),
        helper.make_node("Add", ["g", "t"], ["k"]),
        helper.make_node("Conv", ["k", "w4"], ["c4"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c4", "channel"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("Mul", ["r", "channel"], ["p"]),
        helper.make_node("Conv", ["p", "w4"], ["y"]),
    ], {"w1": weights(4, 4, 1, 1), "w2": weights(4, 4, 1, 1), "w3": weights(4, 4, 1, 1),
        "w4": weights(4, 4, 3, 3), "t": scalar(0.5), "s": scalar(2.0),
        "pixel": RNG.standard_normal((1, 1, 6, 5)).astype(np.float32),
        "channel": RNG.standard_normal((1, 4, 1, 1)).astype(np.float32)},
        [("x", [1, 4, 6, 5])])
    graph = convert(path)
    ops = [n.op for n in graph.nodes]
    # The Add of a per-channel constant after the padded Conv folds into it (a producer
    # fold is exact with padding), and the Relu then fuses; everything else stays.
    assert ops == ["Conv", "Sub", "Conv", "Add", "Conv", "Mul", "Add", "Add", "Conv", "Mul",
                   "Conv"], ops
    same_as_onnxruntime(path, {"x": RNG.standard_normal((1, 4, 6, 5)).astype(np.float32)})


def test_conv_transpose_bias_add_batch_norm_and_relu_become_one_node(tmp_path):
    """PP-OCR det's head: ConvTranspose -> Add(bias) -> BatchNormalization -> Relu; the BN
    folds after the Add has (the fold takes either, in any order), then Relu fuses."""
    c = 4
    path = save(tmp_path, [
        helper.make_node("ConvTranspose", ["x", "w"], ["t"], strides=[2, 2]),
        helper.make_node("Add", ["t", "b"], ["a"]),
        helper.make_node("BatchNormalization", ["a", "scale", "shift", "mean", "var"], ["n"]),
        helper.make_node("Relu", ["n"], ["y"]),
    ], {"w": weights(3, c, 2, 2), "b": RNG.standard_normal((1, c, 1, 1)).astype(np.float32),
        **bn(c)}, [("x", [1, 3, 5, 6])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["ConvTranspose"]
    assert graph.nodes[0].attrs["activation"][0] == 1
    same_as_onnxruntime(path, {"x": RNG.standard_normal((1, 3, 5, 6)).astype(np.float32)})


def test_grouped_conv_transpose_keeps_its_add(tmp_path):
    path = save(tmp_path, [
        helper.make_node("ConvTranspose", ["x", "w"], ["t"], group=2),
        helper.make_node("Add", ["t", "b"], ["y"]),
    ], {"w": weights(4, 3, 3, 3), "b": RNG.standard_normal((1, 6, 1, 1)).astype(np.float32)},
        [("x", [1, 4, 5, 5])])
    graph = convert(path)
    assert [n.op for n in graph.nodes] == ["ConvTranspose", "Add"]
    same_as_onnxruntime(path, {"x": RNG.standard_normal((1, 4, 5, 5)).astype(np.float32)})
