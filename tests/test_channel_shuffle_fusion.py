"""The converter's channel-shuffle fusion (converter/channel_shuffle.py): Reshape ->
Transpose -> Reshape -> depthwise Conv becomes the Conv reading the unshuffled input through
its channel map, in both depthwise kernels; ONNX Runtime checks the numbers, and patterns
that differ are checked to stay."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import macecl
from macecl.converter import convert
from macecl.errors import MaceclError
from tests.test_residual_fusion import same_as_onnxruntime, save

RNG = np.random.default_rng(17)


def shuffle_block(groups, channels, h, w, n=1, conv_attrs=None, perm=(0, 2, 1, 3, 4),
                  split_shape=None, merge_shape=None, extra_output=False):
    """x -> Conv 1x1 (so that x is computed) -> channel shuffle -> depthwise Conv -> y."""
    conv_attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], **(conv_attrs or {})}
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["a"]),
        helper.make_node("Reshape", ["a", "split"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=list(perm)),
        helper.make_node("Reshape", ["t", "merge"], ["s"]),
        helper.make_node("Conv", ["s", "wd", "bd"], ["d"], group=channels, **conv_attrs),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    if extra_output:  # the transposed tensor also read by another node
        nodes.append(helper.make_node("Relu", ["t"], ["t2"]))
    kh, kw = conv_attrs["kernel_shape"]
    constants = {
        "w0": RNG.standard_normal((channels, 3, 1, 1)).astype(np.float32),
        "split": np.array(split_shape or [n, groups, channels // groups, h, w], np.int64),
        "merge": np.array(merge_shape or [n, channels, h, w], np.int64),
        "wd": RNG.standard_normal((channels, 1, kh, kw)).astype(np.float32) * 0.5,
        "bd": RNG.standard_normal(channels).astype(np.float32),
    }
    return nodes, constants


def feed(n, h, w):
    return {"x": RNG.standard_normal((n, 3, h, w)).astype(np.float32)}


@pytest.mark.parametrize("groups,channels,h,w,n,conv_attrs", [
    (3, 12, 9, 21, 1, None),  # depthwise_rows on a CPU, stride 1
    (4, 24, 14, 14, 2, {"strides": [2, 2]}),  # two images, stride 2
    (2, 10, 7, 19, 1, {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),  # depthwise_conv2d
    (5, 5, 6, 33, 1, None),  # one channel per group: the shuffle is the identity
])
def test_shuffle_is_read_in_place(tmp_path, groups, channels, h, w, n, conv_attrs):
    nodes, constants = shuffle_block(groups, channels, h, w, n, conv_attrs)
    path = save(tmp_path, nodes, constants, [("x", [n, 3, h, w])])
    graph = convert(path)
    assert [node.op for node in graph.nodes] == ["Conv", "Conv"]
    assert graph.nodes[1].inputs[0] == graph.nodes[0].outputs[0]
    assert graph.nodes[1].attrs["input_shuffle"] == groups
    same_as_onnxruntime(path, feed(n, h, w))


def test_minus_one_and_zero_in_the_shapes(tmp_path):
    """Exporters write the shapes with -1 and 0 (copy the input's dim)."""
    nodes, constants = shuffle_block(4, 16, 8, 8, split_shape=[0, 4, -1, 8, 8],
                                     merge_shape=[0, -1, 8, 8])
    path = save(tmp_path, nodes, constants, [("x", [1, 3, 8, 8])])
    assert convert(path).nodes[1].attrs["input_shuffle"] == 4
    same_as_onnxruntime(path, feed(1, 8, 8))


@pytest.mark.parametrize("case", ["other_perm", "read_twice", "not_a_split", "grouped_conv"])
def test_patterns_that_must_stay(tmp_path, case):
    """Another permutation, the transposed tensor read elsewhere, reshapes that do not split
    the channel axis, or a Conv that is not depthwise: the shuffle stays a Transpose."""
    channels = 12
    kwargs = {  # the input is (1, 12, 6, 10)
        "other_perm": {"perm": (0, 1, 2, 4, 3), "split_shape": [1, 3, 4, 6, 10],
                       "merge_shape": [1, 12, 10, 6]},
        "read_twice": {"extra_output": True},
        "not_a_split": {"split_shape": [1, 3, 4, 10, 6], "merge_shape": [1, 12, 10, 6]},
        "grouped_conv": {},
    }[case]
    nodes, constants = shuffle_block(3, channels, 6, 10, **kwargs)
    if case == "grouped_conv":  # two input channels per group
        nodes[4] = helper.make_node("Conv", ["s", "wd", "bd"], ["d"], group=channels // 2,
                                    kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        constants["wd"] = RNG.standard_normal((channels, 2, 3, 3)).astype(np.float32)
    path = save(tmp_path, nodes, constants, [("x", [1, 3, 6, 10])])
    graph = convert(path)
    assert "Transpose" in [node.op for node in graph.nodes]
    assert not any("input_shuffle" in node.attrs for node in graph.nodes)
    same_as_onnxruntime(path, feed(1, 6, 10))


def test_shuffle_on_a_conv_that_is_not_depthwise_is_refused(tmp_path):
    """A graph handed to the engine with input_shuffle on a full convolution (not what the
    converter writes): a clear error naming the Conv, not a wrong result."""
    nodes, constants = shuffle_block(3, 12, 6, 10)
    path = save(tmp_path, nodes, constants, [("x", [1, 3, 6, 10])])
    graph = convert(path)
    graph.nodes[0].attrs["input_shuffle"] = 3  # the 1x1 Conv from 3 channels
    with pytest.raises(MaceclError, match="input_shuffle 3 on a Conv that is not depthwise"), \
            macecl.Engine(graph) as engine:
        engine.run(feed(1, 6, 10))
