"""Depthwise Conv through the engine: which kernel the lowering takes (ops/depthwise.py's
rows_fit), and PP-OCR's kind of layer (5x5, stride 2 x 1, HardSwish, residual) end to end."""

from __future__ import annotations

import pytest

from macecl.engine.plan import make_plan
from macecl.graph import Graph, Node, TensorSpec
from macecl.ops.activations import apply
from macecl.ops.traits import DeviceTraits
from tests.ops.conftest import assert_close
from tests.ops.test_conv import conv_reference, rand

CPU = DeviceTraits(vector_width=16, local_memory_bytes=0, work_group_size=4096,
                   compute_units=2, cpu=True)
GPU = DeviceTraits(vector_width=4, local_memory_bytes=48 * 1024, work_group_size=1024,
                   compute_units=16)


def kernels(attrs, traits, channels=4, kernel=3):
    w = rand(channels, 1, kernel, kernel)
    graph = Graph(nodes=[Node("Conv", "conv", ["x", "w"], ["y"], {"group": channels, **attrs})],
                  inputs=[TensorSpec("x", "float32", [1, channels, 9, 20])],
                  outputs=[TensorSpec("y", "float32", [])], constants={"w": w}, opset=18)
    return [step.kernel for step in make_plan(graph, [(1, channels, 9, 20)], traits).steps]


@pytest.mark.parametrize("attrs,kernel,want", [
    ({"pads": [1, 1, 1, 1]}, 3, "depthwise_rows"),
    ({"pads": [2, 2, 2, 2], "strides": [2, 1]}, 5, "depthwise_rows"),
    ({"strides": [3, 2]}, 3, "depthwise_rows"),
    ({"strides": [1, 3]}, 3, "depthwise_conv2d"),  # rows load strides 1 and 2 only
    ({"dilations": [2, 2], "pads": [2, 2, 2, 2]}, 3, "depthwise_rows"),
    ({"dilations": [3, 3], "pads": [6, 6, 6, 6]}, 5, "depthwise_conv2d"),  # spans 13 rows
    ({"pads": [4, 4, 4, 4]}, 9, "depthwise_conv2d"),  # wider than MAX_TAPS
])
def test_cpu_takes_depthwise_rows_where_it_fits(attrs, kernel, want):
    assert kernels(attrs, CPU, kernel=kernel) == [want]
    assert kernels(attrs, GPU, kernel=kernel) == ["depthwise_conv2d"]


def test_ppocr_like_layer_with_residual_and_hard_swish(run_node):
    """5x5, stride (2, 1), multiplier 2, batch 2, bias, a fused residual and HardSwish."""
    x, w, b = rand(2, 3, 9, 37), rand(6, 1, 5, 5), rand(6)
    attrs = {"group": 3, "pads": [2, 2, 2, 2], "strides": [2, 1]}
    y = conv_reference(x, w, b, strides=(2, 1), pads=(2, 2, 2, 2), group=3)
    r = rand(*y.shape)
    (got,) = run_node("Conv", {"x": x, "r": r}, {**attrs, "activation": [7, 0.0, 0.0]},
                      {"w": w, "b": b}, inputs=["x", "w", "b", "r"])
    assert_close(got, apply(7, y + r, 0.0, 0.0))
