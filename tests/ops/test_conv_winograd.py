"""Conv through the engine where ops/conv_winograd.py takes it (3x3, stride 1, one group,
constant weights, on a CPU), against test_conv.py's NumPy convolution; and the choice itself:
which tile each shape takes, and where the other kernels keep it.

The cases take F(4x4, 3x3) and F(2x2, 3x3) (each asserted on the plan), with padding 0, 1,
2 and uneven, outputs that are not multiples of the tile, odd channel counts, batch 2, and
the epilogue: bias, a fused residual, activations.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from macecl.engine.plan import make_plan
from macecl.graph import Graph, Node, TensorSpec
from macecl.ops.conv_winograd import winograd_tile
from macecl.ops.traits import DeviceTraits
from tests.ops.conftest import assert_close
from tests.ops.test_conv import conv_reference, rand

POCL = DeviceTraits(vector_width=16, local_memory_bytes=0, work_group_size=4096,
                    compute_units=2, cpu=True)  # as DeviceTraits.of reads PoCL's CPU device

# input shape, output channels, ONNX pads (top, left, bottom, right), the tile it takes
CASES = {
    "f4_pad1_odd_channels": ((1, 5, 23, 29), 7, (1, 1, 1, 1), 4),
    "f4_pad0_batch2": ((2, 3, 26, 30), 9, (0, 0, 0, 0), 4),
    "f4_uneven_pads": ((1, 4, 25, 27), 10, (0, 1, 2, 0), 4),
    "f2_pad2": ((1, 6, 9, 20), 11, (2, 2, 2, 2), 2),
    "f2_batch2_one_row_of_tiles": ((2, 5, 2, 70), 3, (1, 1, 0, 1), 2),
    # ResNet's 7x7 maps: 16 tiles, one vector at VW 16, so the GEMM takes one (-DPX=1)
    "f2_one_vector_of_tiles": ((1, 10, 7, 7), 12, (1, 1, 1, 1), 2),
}


def conv_graph(x_shape, w, b, residual_shape=None, attrs=None):
    inputs = ["x", "w", "b"] + (["r"] if residual_shape else [])
    specs = [TensorSpec("x", "float32", list(x_shape))]
    if residual_shape:
        specs.append(TensorSpec("r", "float32", list(residual_shape)))
    return Graph(nodes=[Node("Conv", "conv", inputs, ["y"], dict(attrs or {}))], inputs=specs,
                 outputs=[TensorSpec("y", "float32", [])], constants={"w": w, "b": b}, opset=18)


@pytest.mark.parametrize("case", list(CASES))
def test_the_cases_take_their_tile(case):
    x_shape, c_out, pads, tile = CASES[case]
    graph = conv_graph(x_shape, rand(c_out, x_shape[1], 3, 3), rand(c_out),
                       attrs={"pads": list(pads)})
    steps = make_plan(graph, [x_shape], POCL).steps
    assert [s.kernel for s in steps] == ["winograd_input", "conv2d_gemm", "winograd_output"]
    assert f"-DWINO_M={tile}" in steps[0].options
    oh, ow = x_shape[2] + pads[0] + pads[2] - 2, x_shape[3] + pads[1] + pads[3] - 2
    tiles = -(-oh // tile) * -(-ow // tile)
    assert ("-DPX=1" in steps[1].options) == (tiles < 32)  # fewer than two vectors of 16


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("case", list(CASES))
def test_winograd_conv(run_node, case, bias):
    x_shape, c_out, pads, _ = CASES[case]
    x, w, b = rand(*x_shape), rand(c_out, x_shape[1], 3, 3), rand(c_out)
    constants = {"w": w, "b": b} if bias else {"w": w}
    (got,) = run_node("Conv", {"x": x}, {"pads": list(pads)}, constants)
    assert_close(got, conv_reference(x, w, b if bias else None, pads=pads))


@pytest.mark.parametrize("activation", [(1, 0.0, 0.0), (3, -0.5, 0.5), (2, 0.1, 0.0)],
                         ids=["relu", "clip", "leaky"])
@pytest.mark.parametrize("case", ["f4_pad1_odd_channels", "f2_pad2"])
def test_winograd_residual_before_activation(run_node, case, activation):
    x_shape, c_out, pads, _ = CASES[case]
    x, w, b = rand(*x_shape), rand(c_out, x_shape[1], 3, 3), rand(c_out)
    y = conv_reference(x, w, b, pads=pads)
    r = rand(*y.shape)
    (got,) = run_node("Conv", {"x": x, "r": r}, {"pads": list(pads), "activation": list(activation)},
                      {"w": w, "b": b}, inputs=["x", "w", "b", "r"])
    code, low, high = activation
    z = y + r
    want = {1: np.maximum(z, 0), 3: np.clip(z, low, high), 2: np.where(z >= 0, z, low * z)}[code]
    assert_close(got, want)


def test_real_sized_layer_within_the_suite_tolerance(run_node):
    """ResNet's 3x3 64 -> 64 on 56x56 (F(4x4, 3x3), the least accurate tile), with weights of
    a trained layer's scale: within assert_close's 1e-4 of the largest output."""
    x = np.abs(rand(1, 64, 56, 56))
    w = rand(64, 64, 3, 3) * np.float32(np.sqrt(2 / (64 * 9)))
    (got,) = run_node("Conv", {"x": x}, {"pads": [1, 1, 1, 1]}, {"w": w})
    assert_close(got, conv_reference(x, w, pads=(1, 1, 1, 1)))


def _tile(traits, window=(3, 3, 1, 1, 1, 1), group=1, constant=True, out=(56, 56)):
    weights = types.SimpleNamespace(host=np.zeros(1) if constant else None)
    return winograd_tile(types.SimpleNamespace(traits=traits), window, group, weights, *out)


def test_where_winograd_is_not_taken():
    assert _tile(POCL) == 4
    assert _tile(POCL, out=(14, 14)) == 2  # 16 tiles of 4x4 are fewer than a GEMM block
    assert _tile(POCL, out=(7, 7)) == 2  # 16 tiles of 2x2 fill one vector (-DPX=1)
    assert _tile(POCL, out=(5, 5)) is None  # 9 do not
    assert _tile(POCL, window=(3, 3, 2, 2, 1, 1)) is None
    assert _tile(POCL, window=(3, 3, 1, 1, 2, 2)) is None
    assert _tile(POCL, window=(5, 5, 1, 1, 1, 1)) is None
    assert _tile(POCL, group=2) is None
    assert _tile(POCL, constant=False) is None
    gpu = DeviceTraits(vector_width=4, local_memory_bytes=48 * 1024, work_group_size=1024,
                       compute_units=16)
    assert _tile(gpu) is None
