"""Conv and ConvTranspose against NumPy references (and onnxruntime, for the cases where ONNX is subtle)."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.graph.ir import Node
from macecl.ops.registry import unsupported_reason
from tests.ops.conftest import assert_close

RNG = np.random.default_rng(11)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def conv_reference(x, w, b=None, strides=(1, 1), dilations=(1, 1), pads=(0, 0, 0, 0), group=1):
    """Direct 2-D convolution: zero-pad, then add up one strided slice per tap."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, hp, wp = xp.shape
    m, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, m, oh, ow))
    mg = m // group
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * mg:(g + 1) * mg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                           j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def conv_transpose_reference(x, w, b=None, strides=(1, 1), dilations=(1, 1), begins=(0, 0, 0, 0),
                             out_size=None, output_padding=(0, 0), group=1):
    """Scatter every input pixel through the filter, then crop ``begins`` / ``out_size``."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x.shape
    _, mg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    full_h = sh * (h - 1) + dh * (kh - 1) + 1 + output_padding[0]
    full_w = sw * (wd - 1) + dw * (kw - 1) + 1 + output_padding[1]
    big = np.zeros((n, mg * group, full_h + 8, full_w + 8))  # room for an output_shape past it
    cg = c // group
    for g in range(group):
        for i in range(kh):
            for j in range(kw):
                contribution = np.einsum("nchw,cm->nmhw", x[:, g * cg:(g + 1) * cg],
                                         w[g * cg:(g + 1) * cg, :, i, j])
                big[:, g * mg:(g + 1) * mg, i * dh:i * dh + sh * (h - 1) + 1:sh,
                    j * dw:j * dw + sw * (wd - 1) + 1:sw] += contribution
    if out_size is None:
        out_size = (full_h - begins[0] - begins[2], full_w - begins[1] - begins[3])
    out = big[:, :, begins[0]:begins[0] + out_size[0], begins[1]:begins[1] + out_size[1]]
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    return out


def run_onnxruntime(op, feeds, constants, attrs, opset=17):
    """The same one-node model through onnxruntime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node(op, [*feeds, *constants], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


# (input shape, weight shape, attrs, reference keyword arguments)
CONV_CASES = {
    "plain_3x3": ((1, 3, 7, 6), (4, 3, 3, 3), {}, {}),
    "padded_strided": ((2, 3, 9, 8), (5, 3, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]},
                       {"pads": (1, 1, 1, 1), "strides": (2, 2)}),
    "asymmetric_pads": ((1, 2, 6, 7), (3, 2, 3, 2), {"pads": [0, 2, 1, 0]},
                        {"pads": (0, 2, 1, 0)}),
    "dilated": ((1, 2, 10, 9), (3, 2, 3, 3), {"dilations": [2, 3], "pads": [2, 1, 2, 1]},
                {"dilations": (2, 3), "pads": (2, 1, 2, 1)}),
    "groups": ((1, 6, 5, 5), (4, 3, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]},
               {"group": 2, "pads": (1, 1, 1, 1)}),
    "depthwise": ((2, 4, 6, 6), (4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]},
                  {"group": 4, "pads": (1, 1, 1, 1)}),
    "depthwise_multiplier": ((1, 3, 5, 6), (6, 1, 3, 3), {"group": 3, "strides": [2, 1]},
                             {"group": 3, "strides": (2, 1)}),
    "pointwise": ((1, 8, 4, 4), (5, 8, 1, 1), {"kernel_shape": [1, 1]}, {}),
    # SAME_UPPER, stride 2, 3x3 on 7x8: out 4x4, pads (1, 1, 1, 1) and (0, 1, 0, 1)... worked out:
    # H: total = 3 * 2 + 3 - 7 = 2 -> (1, 1); W: total = 3 * 2 + 3 - 8 = 1 -> (0 top, 1 bottom)
    "same_upper": ((1, 2, 7, 8), (3, 2, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
                   {"pads": (1, 0, 1, 1), "strides": (2, 2)}),
    # SAME_LOWER puts the odd pad first
    "same_lower": ((1, 2, 7, 8), (3, 2, 3, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
                   {"pads": (1, 1, 1, 0), "strides": (2, 2)}),
    "same_stride1_even_kernel": ((1, 2, 5, 5), (2, 2, 2, 4), {"auto_pad": "SAME_UPPER"},
                                 {"pads": (0, 1, 1, 2)}),
    "valid": ((1, 2, 7, 7), (2, 2, 3, 3), {"auto_pad": "VALID", "strides": [3, 2]},
              {"strides": (3, 2)}),
    # sizes past every block of the kernels (8 output channels, 16 pixels): tails everywhere
    "pointwise_tails": ((2, 19, 5, 7), (21, 19, 1, 1), {}, {}),
    "pointwise_strided": ((1, 6, 9, 9), (10, 6, 1, 1), {"strides": [2, 2]}, {"strides": (2, 2)}),
    "3x3_wide_rows": ((1, 5, 6, 37), (17, 5, 3, 3), {"pads": [1, 1, 1, 1]},
                      {"pads": (1, 1, 1, 1)}),
    # wide rows on both sides of ops/conv.py's choice: 31 output channels (direct), 33 per
    # group (im2col + GEMM), with batch 2, groups and a stride
    "3x3_wide_rows_31_channels_batch2": ((2, 5, 6, 37), (31, 5, 3, 3), {"pads": [1, 1, 1, 1]},
                                         {"pads": (1, 1, 1, 1)}),
    "3x3_wide_rows_groups_batch2": ((2, 6, 7, 40), (66, 3, 3, 3),
                                    {"group": 2, "strides": [1, 2], "pads": [1, 1, 1, 1]},
                                    {"group": 2, "strides": (1, 2), "pads": (1, 1, 1, 1)}),
    "depthwise_5x5_dilated": ((1, 3, 12, 21), (3, 1, 5, 5),
                              {"group": 3, "dilations": [2, 2], "pads": [4, 4, 4, 4]},
                              {"group": 3, "dilations": (2, 2), "pads": (4, 4, 4, 4)}),
    "depthwise_stride2_wide": ((1, 4, 9, 40), (4, 1, 3, 3),
                               {"group": 4, "strides": [2, 2], "pads": [1, 1, 1, 1]},
                               {"group": 4, "strides": (2, 2), "pads": (1, 1, 1, 1)}),
    "groups_of_many": ((1, 24, 6, 6), (12, 8, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]},
                       {"group": 3, "pads": (1, 1, 1, 1)}),
    # stride 1, few channels (conv2d_direct_wide on a CPU): rows whose interior fills blocks
    # with a tail, dilated, and groups with batch 2
    "3x3_wide_rows_det_like": ((1, 7, 5, 70), (24, 7, 3, 3), {"pads": [1, 1, 1, 1]},
                               {"pads": (1, 1, 1, 1)}),
    "3x3_wide_rows_dilated": ((1, 3, 8, 50), (10, 3, 3, 3),
                              {"dilations": [2, 2], "pads": [2, 2, 2, 2]},
                              {"dilations": (2, 2), "pads": (2, 2, 2, 2)}),
    "3x3_wide_rows_groups_stride1": ((2, 6, 4, 36), (20, 3, 3, 3),
                                     {"group": 2, "pads": [1, 1, 1, 1]},
                                     {"group": 2, "pads": (1, 1, 1, 1)}),
    # a network's first layer (conv.py stem_block on a CPU): blocks of 24 channels, of 16
    # with a tail block, batch 2, and ResNet's 7x7/2 window
    "stem_blocks_of_24": ((1, 3, 9, 40), (48, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]},
                          {"strides": (2, 2), "pads": (1, 1, 1, 1)}),
    "stem_blocks_of_16_tail_batch2": ((2, 3, 11, 37), (21, 3, 3, 3), {"pads": [0, 1, 1, 0]},
                                      {"pads": (0, 1, 1, 0)}),
    "stem_7x7": ((1, 3, 20, 45), (16, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]},
                 {"strides": (2, 2), "pads": (3, 3, 3, 3)}),
    # stems whose interior work items run their taps as straight-line code (conv.py
    # stem_taps), beside edge blocks and rows that keep the loops: stride 2, and 4 inputs
    # at dilation 2 (36 taps, the most that takes it)
    "stem_straight_stride2": ((1, 3, 40, 70), (24, 3, 3, 3),
                              {"strides": [2, 2], "pads": [1, 1, 1, 1]},
                              {"strides": (2, 2), "pads": (1, 1, 1, 1)}),
    "stem_straight_4_inputs_dilated": ((1, 4, 12, 40), (16, 4, 3, 3),
                                       {"dilations": [2, 2], "pads": [2, 2, 2, 2]},
                                       {"dilations": (2, 2), "pads": (2, 2, 2, 2)}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv(run_node, case, bias):
    x_shape, w_shape, attrs, kwargs = CONV_CASES[case]
    x, w, b = rand(*x_shape), rand(*w_shape), rand(w_shape[0])
    constants = {"w": w, "b": b} if bias else {"w": w}
    (got,) = run_node("Conv", {"x": x}, attrs, constants)
    assert_close(got, conv_reference(x, w, b if bias else None, **kwargs))


@pytest.mark.parametrize("case", ["same_upper", "same_lower", "dilated", "depthwise_multiplier"])
def test_conv_matches_onnxruntime(run_node, case):
    x_shape, w_shape, attrs, _ = CONV_CASES[case]
    x, w, b = rand(*x_shape), rand(*w_shape), rand(w_shape[0])
    (got,) = run_node("Conv", {"x": x}, attrs, {"w": w, "b": b})
    assert_close(got, run_onnxruntime("Conv", {"x": x}, {"w": w, "b": b}, attrs))


@pytest.mark.parametrize("attrs, pads, strides, dilations", [
    ({}, (0, 0), 1, 1),
    ({"pads": [2, 1], "strides": [2]}, (2, 1), 2, 1),
    ({"dilations": [3], "auto_pad": "SAME_UPPER"}, (3, 3), 1, 3),
])
def test_conv_1d(run_node, attrs, pads, strides, dilations):
    x, w, b = rand(2, 3, 11), rand(4, 3, 3), rand(4)
    (got,) = run_node("Conv", {"x": x}, attrs, {"w": w, "b": b})
    reference = conv_reference(x[:, :, None], w[:, :, None], b, strides=(1, strides),
                               dilations=(1, dilations), pads=(0, pads[0], 0, pads[1]))
    assert_close(got, reference[:, :, 0])


@pytest.mark.parametrize("activation", [(1, 0.0, 0.0), (3, -0.5, 0.5), (2, 0.1, 0.0)],
                         ids=["relu", "clip", "leaky"])
def test_conv_fused_activation(run_node, activation):
    x, w, b = rand(1, 3, 6, 6), rand(4, 3, 3, 3), rand(4)
    attrs = {"pads": [1, 1, 1, 1], "activation": list(activation)}
    (got,) = run_node("Conv", {"x": x}, attrs, {"w": w, "b": b})
    y = conv_reference(x, w, b, pads=(1, 1, 1, 1))
    code, a, c = activation
    reference = {1: np.maximum(y, 0), 3: np.clip(y, a, c), 2: np.where(y >= 0, y, a * y)}[code]
    assert_close(got, reference)


@pytest.mark.parametrize("case", ["plain_3x3", "pointwise_tails", "depthwise", "groups"])
def test_conv_residual_before_activation(run_node, case):
    """A fused residual (converter pass fuse_residual_add) is added before the activation."""
    x_shape, w_shape, attrs, kwargs = CONV_CASES[case]
    x, w, b = rand(*x_shape), rand(*w_shape), rand(w_shape[0])
    y = conv_reference(x, w, b, **kwargs)
    r = rand(*y.shape)
    (got,) = run_node("Conv", {"x": x, "r": r}, {**attrs, "activation": [1, 0.0, 0.0]},
                      {"w": w, "b": b}, inputs=["x", "w", "b", "r"])
    assert_close(got, np.maximum(y + r, 0))


def test_conv_residual_that_broadcasts(run_node):
    """A residual whose shape only broadcasts to the output: added after the convolution."""
    x, w = rand(1, 3, 5, 6), rand(4, 3, 3, 3)
    r = rand(1, 4, 1, 4)
    (got,) = run_node("Conv", {"x": x, "r": r}, {"activation": [1, 0.0, 0.0]}, {"w": w},
                      inputs=["x", "w", "", "r"])
    assert_close(got, np.maximum(conv_reference(x, w) + r, 0))


# (input shape, weight shape, attrs, reference keyword arguments)
TRANSPOSE_CASES = {
    "plain": ((1, 3, 4, 5), (3, 2, 3, 3), {}, {}),
    "stride2_pads": ((1, 2, 4, 4), (2, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]},
                     {"strides": (2, 2), "begins": (1, 1, 1, 1)}),
    "output_padding": ((2, 2, 3, 4), (2, 2, 3, 3),
                       {"strides": [2, 3], "pads": [1, 0, 0, 1], "output_padding": [1, 2]},
                       {"strides": (2, 3), "begins": (1, 0, 0, 1), "output_padding": (1, 2)}),
    "dilated": ((1, 2, 4, 3), (2, 2, 2, 3), {"dilations": [2, 2], "strides": [2, 1]},
                {"dilations": (2, 2), "strides": (2, 1)}),
    "groups": ((1, 4, 3, 3), (4, 3, 3, 3), {"group": 2, "strides": [2, 2]},
               {"group": 2, "strides": (2, 2)}),
    "depthwise": ((1, 3, 4, 4), (3, 1, 4, 4), {"group": 3, "strides": [2, 2],
                                                "pads": [1, 1, 1, 1]},
                  {"group": 3, "strides": (2, 2), "begins": (1, 1, 1, 1)}),
    # full size 2 * 2 + 3 = 7 -> output_shape 6 crops 1: NOTSET crops it at the start
    "output_shape": ((1, 2, 3, 3), (2, 2, 3, 3), {"strides": [2, 2], "output_shape": [6, 6]},
                     {"strides": (2, 2), "begins": (1, 1, 0, 0), "out_size": (6, 6)}),
    # larger than the full size: zeros past it
    "output_shape_larger": ((1, 2, 3, 3), (2, 2, 3, 3),
                            {"strides": [2, 2], "output_shape": [8, 8]},
                            {"strides": (2, 2), "begins": (0, 0, 0, 0), "out_size": (8, 8)}),
    # SAME_UPPER: output = input * stride = 6, total pad 1, at the end
    "same_upper": ((1, 2, 3, 3), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
                   {"strides": (2, 2), "begins": (0, 0, 0, 0), "out_size": (6, 6)}),
    "same_lower": ((1, 2, 3, 3), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"},
                   {"strides": (2, 2), "begins": (1, 1, 0, 0), "out_size": (6, 6)}),
    # kernel = stride: conv_transpose2d_disjoint on a CPU (the gather elsewhere)
    "disjoint_2x2": ((1, 5, 7, 37), (5, 6, 2, 2), {"strides": [2, 2]}, {"strides": (2, 2)}),
    "disjoint_pads_output_padding": (
        (2, 3, 4, 19), (3, 5, 2, 2),
        {"strides": [2, 2], "pads": [1, 2, 0, 3], "output_padding": [1, 1]},
        {"strides": (2, 2), "begins": (1, 2, 0, 3), "output_padding": (1, 1)}),
    "disjoint_groups_3x2": ((1, 6, 4, 21), (6, 5, 3, 2), {"strides": [3, 2], "group": 3},
                            {"strides": (3, 2), "group": 3}),
    "disjoint_one_channel": ((1, 24, 9, 40), (24, 1, 2, 2), {"strides": [2, 2]},
                             {"strides": (2, 2)}),
    "disjoint_output_shape_larger": ((1, 2, 3, 5), (2, 3, 2, 2),
                                     {"strides": [2, 2], "output_shape": [9, 13]},
                                     {"strides": (2, 2), "out_size": (9, 13)}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("case", sorted(TRANSPOSE_CASES))
def test_conv_transpose(run_node, case, bias):
    x_shape, w_shape, attrs, kwargs = TRANSPOSE_CASES[case]
    x, w = rand(*x_shape), rand(*w_shape)
    b = rand(w_shape[1] * attrs.get("group", 1))
    constants = {"w": w, "b": b} if bias else {"w": w}
    (got,) = run_node("ConvTranspose", {"x": x}, attrs, constants)
    assert_close(got, conv_transpose_reference(x, w, b if bias else None, **kwargs))


@pytest.mark.parametrize("case", ["output_padding", "output_shape", "output_shape_larger",
                                  "same_upper", "same_lower", "groups", "dilated"])
def test_conv_transpose_matches_onnxruntime(run_node, case):
    x_shape, w_shape, attrs, _ = TRANSPOSE_CASES[case]
    x, w = rand(*x_shape), rand(*w_shape)
    b = rand(w_shape[1] * attrs.get("group", 1))
    (got,) = run_node("ConvTranspose", {"x": x}, attrs, {"w": w, "b": b})
    assert_close(got, run_onnxruntime("ConvTranspose", {"x": x}, {"w": w, "b": b}, attrs))


def test_conv_transpose_1d_with_fused_relu(run_node):
    x, w, b = rand(2, 3, 5), rand(3, 2, 4), rand(2)
    attrs = {"strides": [3], "pads": [1, 2], "output_padding": [1], "activation": [1, 0.0, 0.0]}
    (got,) = run_node("ConvTranspose", {"x": x}, attrs, {"w": w, "b": b})
    reference = conv_transpose_reference(x[:, :, None], w[:, :, None], b, strides=(1, 3),
                                         begins=(0, 1, 0, 2), output_padding=(0, 1))
    assert_close(got, np.maximum(reference[:, :, 0], 0))


@pytest.mark.parametrize("code, function", [(1, lambda y: np.maximum(y, 0)),
                                            (4, lambda y: 1 / (1 + np.exp(-y)))],
                         ids=["relu", "sigmoid"])
def test_disjoint_conv_transpose_with_fused_activation(run_node, code, function):
    """PP-OCR det's head: 2x2 stride 2 with a fused Relu, then one channel with a Sigmoid."""
    x, w, b = rand(1, 8, 6, 35), rand(8, 3, 2, 2), rand(3)
    attrs = {"strides": [2, 2], "pads": [0, 1, 1, 0], "activation": [code, 0.0, 0.0]}
    (got,) = run_node("ConvTranspose", {"x": x}, attrs, {"w": w, "b": b})
    want = conv_transpose_reference(x, w, b, strides=(2, 2), begins=(0, 1, 1, 0))
    assert (want < 0).any()
    assert_close(got, function(want))


def test_disjoint_conv_transpose_1d(run_node):
    x, w, b = rand(2, 3, 21), rand(3, 4, 3), rand(4)
    attrs = {"strides": [3], "pads": [1, 2], "output_padding": [2]}
    (got,) = run_node("ConvTranspose", {"x": x}, attrs, {"w": w, "b": b})
    reference = conv_transpose_reference(x[:, :, None], w[:, :, None], b, strides=(1, 3),
                                         begins=(0, 1, 0, 2), output_padding=(0, 2))
    assert_close(got, reference[:, :, 0])


def test_conv_transpose_weights_computed_on_the_device(run_node):
    """Disjoint taps, but weights that are not constants: the gather computes it."""
    x, w = rand(1, 3, 4, 5), rand(3, 2, 2, 2)
    (got,) = run_node("ConvTranspose", {"x": x, "w": w}, {"strides": [2, 2]})
    assert_close(got, conv_transpose_reference(x, w, strides=(2, 2)))


def test_weights_computed_on_the_device(run_node):
    x, w = rand(1, 2, 5, 5), rand(3, 2, 3, 3)
    (got,) = run_node("Conv", {"x": x, "w": w}, {"pads": [1, 1, 1, 1]})
    assert_close(got, conv_reference(x, w, pads=(1, 1, 1, 1)))


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
def test_3d_is_rejected_at_conversion(op):
    node = Node(op, "n", ["x", "w"], ["y"], {"kernel_shape": [3, 3, 3]})
    assert unsupported_reason(node) == f"{op} with 3 spatial dims"
    node = Node(op, "n", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1, 1, 1]})
    assert unsupported_reason(node) == f"{op} with 3 spatial dims"
    assert unsupported_reason(Node(op, "n", ["x", "w"], ["y"], {"kernel_shape": [3, 3]})) is None


@pytest.mark.parametrize("channels, pixel_blocks, depth, first", [
    (800, 2, 8192, True),  # two pixel blocks
    (512, 7, 1024, True),  # 2 MiB of weights, 0.9 MiB of cols: ResNet-50's 512<-1024 x 196
    (256, 7, 1024, False),  # 1 MiB of weights: they stay in cache between pixel blocks
    (512, 7, 2304, False),  # 4.5 MiB of weights, but 2 MiB of cols
    (64, 98, 576, False),  # 64<-576 x 3136: the cols are what the order shares
])
def test_pixels_first_keeps_the_operand_that_fits_in_cache(channels, pixel_blocks, depth, first):
    from macecl.ops.conv import pixels_first
    assert pixels_first(channels, pixel_blocks, depth, 32) is first


@pytest.mark.parametrize("x_shape, w_shape, attrs, pixels_first", [
    ((2, 40, 5, 6), (20, 40, 1, 1), {}, True),  # 30 pixels: 1 or 2 blocks, a tail channel block
    ((1, 24, 9, 9), (16, 24, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, True),  # im2col
    ((1, 40, 15, 15), (20, 40, 1, 1), {}, False),  # 225 pixels: 5 to 8 blocks
    ((1, 520, 15, 15), (512, 520, 1, 1), {}, True),  # 1 MB of weights and more, 0.5 MB of cols
], ids=["pointwise_30", "im2col_25", "pointwise_225", "pointwise_heavy_weights"])
def test_gemm_grid_order(run_node, shared_context, x_shape, w_shape, attrs, pixels_first):
    """On a CPU, conv2d_gemm over a few pixel blocks runs them fastest (pixels_first, a
    transposed grid); both orders compute every output, residual and activation included."""
    from macecl.engine.plan import make_plan
    from macecl.graph import Graph, TensorSpec
    from macecl.ops.traits import DeviceTraits

    x, w, b = rand(*x_shape), rand(*w_shape), rand(w_shape[0])
    y = conv_reference(x, w, b, **{k: tuple(v) for k, v in attrs.items()})
    r = rand(*y.shape)
    attrs = {**attrs, "activation": [1, 0.0, 0.0]}
    graph = Graph(nodes=[Node("Conv", "conv", ["x", "w", "b", "r"], ["y"], attrs)],
                  inputs=[TensorSpec("x", "float32", list(x.shape)),
                          TensorSpec("r", "float32", list(r.shape))],
                  outputs=[TensorSpec("y", "float32", [])], constants={"w": w, "b": b},
                  opset=18)
    traits = DeviceTraits.of(shared_context.device.cl_device)
    gemms = [s for s in make_plan(graph, [x.shape, r.shape], traits).steps
             if s.kernel == "conv2d_gemm"]
    if traits.cpu:
        assert len(gemms) == 1 and int(gemms[0].args[-1]) == int(pixels_first)
    else:  # a GPU tiles (ops/conv_tiled.py); any GEMM it runs keeps channel blocks first
        assert all(int(s.args[-1]) == 0 for s in gemms)
    (got,) = run_node("Conv", {"x": x, "r": r}, attrs, {"w": w, "b": b},
                      inputs=["x", "w", "b", "r"])
    assert_close(got, np.maximum(y + r, 0))


@pytest.mark.parametrize("width", [16, 8])
@pytest.mark.parametrize("case, straight", [("stem_straight_stride2", True),
                                            ("stem_straight_4_inputs_dilated", True),
                                            ("stem_blocks_of_24", True), ("stem_7x7", False)])
def test_stem_taps_built_in(case, straight, width):
    """On a CPU of 16-float vectors a stem of at most STEM_TAPS taps builds its window into
    conv2d_direct (-DSTEM_TAPS ...); ResNet's 7x7 on 3 inputs (147 taps) keeps the loops,
    and so does every stem at 8-float vectors, where the straight-line taps lost. The
    kernel's straight-line path runs in tests/kernels/test_conv2d.py."""
    from macecl.engine.plan import make_plan
    from macecl.graph import Graph, TensorSpec
    from macecl.ops.traits import DeviceTraits

    x_shape, w_shape, attrs, _ = CONV_CASES[case]
    graph = Graph(nodes=[Node("Conv", "conv", ["x", "w"], ["y"], attrs)],
                  inputs=[TensorSpec("x", "float32", list(x_shape))],
                  outputs=[TensorSpec("y", "float32", [])], constants={"w": rand(*w_shape)},
                  opset=18)
    cpu = DeviceTraits(vector_width=width, work_group_size=4096, compute_units=2, cpu=True)
    (step,) = make_plan(graph, [x_shape], cpu).steps
    assert step.kernel == "conv2d_direct"
    c_in, kh, kw = w_shape[1:]
    window = ["-DSTEM_TAPS", f"-DSTEM_CIN={c_in}", f"-DSTEM_KH={kh}", f"-DSTEM_KW={kw}",
              f"-DSTEM_SW={attrs.get('strides', [1, 1])[1]}"]
    taps = straight and width == 16
    assert all(option in step.options for option in window) == taps
    assert ("-DSTEM_TAPS" in step.options) == taps
