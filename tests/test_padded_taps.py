"""converter/padded_taps.py: filter taps that read only padding leave the Conv, and the
outputs stay ONNX Runtime's."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from macecl.converter import convert
from tests.test_residual_fusion import same_as_onnxruntime, save, weights

RNG = np.random.default_rng(29)


def conv_model(tmp_path, size, channels, groups=1, kernel=(3, 3), **attrs):
    """x (1, channels, *size) -> Conv(w, b, attrs) -> y."""
    w = weights(6 if groups == 1 else channels, channels // groups, *kernel)
    return save(tmp_path, [helper.make_node("Conv", ["x", "w", "b"], ["y"], group=groups, **attrs)],
                {"w": w, "b": weights(w.shape[0])}, [("x", [1, channels, *size])])


def feed(channels, size):
    return {"x": RNG.standard_normal((1, channels, *size)).astype(np.float32)}


@pytest.mark.parametrize("dilation", [24, 36])
def test_aspp_branch_on_a_small_map_becomes_a_1x1_convolution(tmp_path, dilation):
    """DeepLabV3's ASPP: 3x3, dilation = pads = 24 or 36, on 14x14: only the centre tap
    reads the input, so the Conv is 1x1 with no pads, the centre weights its filter."""
    path = conv_model(tmp_path, (14, 14), 5, dilations=[dilation] * 2, pads=[dilation] * 4)
    (conv,) = convert(path).nodes
    assert conv.attrs["kernel_shape"] == [1, 1] and conv.attrs["pads"] == [0, 0, 0, 0]
    assert conv.attrs["dilations"] == [1, 1]
    same_as_onnxruntime(path, feed(5, (14, 14)))


def test_padded_3x3_on_a_1x1_map_keeps_its_centre(tmp_path):
    """A 3x3 pad-1 depthwise Conv on a 1x1 map (the last scales of detection heads)."""
    path = conv_model(tmp_path, (1, 1), 4, groups=4, pads=[1, 1, 1, 1])
    (conv,) = convert(path).nodes
    assert conv.attrs["kernel_shape"] == [1, 1] and conv.attrs["pads"] == [0, 0, 0, 0]
    same_as_onnxruntime(path, feed(4, (1, 1)))


def test_one_axis_and_a_stride(tmp_path):
    """1x7 over a 9x2 map, stride 2, pads 3 (one output column): the rows keep their one
    tap, the columns the two that land on the map, and the end pad the one past it."""
    path = conv_model(tmp_path, (9, 2), 3, kernel=(1, 7), strides=[2, 2], pads=[0, 3, 0, 3])
    (conv,) = convert(path).nodes
    assert conv.attrs["kernel_shape"] == [1, 2] and conv.attrs["pads"] == [0, 0, 0, 1]
    same_as_onnxruntime(path, feed(3, (9, 2)))


@pytest.mark.parametrize("size,case", [
    ((14, 14), {"dilations": [12, 12], "pads": [12, 12, 12, 12]}),  # edge pixels read all
    ((14, 14), {"pads": [1, 1, 1, 1]}),  # an ordinary 3x3
    ((1, 1), {"auto_pad": "SAME_UPPER"}),  # pads not written out: left alone
])
def test_convolutions_left_as_they_are(tmp_path, size, case):
    path = conv_model(tmp_path, size, 5, **case)
    (conv,) = convert(path).nodes
    assert conv.attrs.get("kernel_shape", [3, 3]) == [3, 3]
    assert conv.inputs[1] == "w"
    same_as_onnxruntime(path, feed(5, size))
