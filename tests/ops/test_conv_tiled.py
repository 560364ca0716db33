"""Conv and Gemm through the engine with the traits of a GPU forced on PoCL: the tiled lowering.

PoCL reports CL_GLOBAL local memory, so on its own it never takes ops/conv_tiled.py's path;
here DeviceTraits.of answers as a device with dedicated local memory would, and every Conv
test of test_conv.py runs again through conv2d_tiled (depthwise ones stay on their kernel),
as do test_gemm.py's Gemm tests (those with transB, alpha 1 and a bias-like C take it).
Few compute units are claimed so that small convolutions split K too.
"""

from __future__ import annotations

import numpy as np
import pytest

from macecl.engine.plan import make_plan
from macecl.graph import Graph, Node, TensorSpec
from macecl.ops.conv_tiled import split_count, tiled_fits
from macecl.ops.traits import DeviceTraits
from macecl.runtime.device import select_device
from tests.ops import test_conv as plain
from tests.ops import test_gemm as plain_gemm
from tests.ops.conftest import assert_close

GPU_LIKE = DeviceTraits(vector_width=4, local_memory_bytes=48 * 1024, work_group_size=1024,
                        compute_units=16)


@pytest.fixture(autouse=True)
def gpu_traits(monkeypatch):
    monkeypatch.setattr(DeviceTraits, "of", classmethod(lambda cls, device: GPU_LIKE))


# test_conv.py's Conv tests, collected again here under the forced traits
test_conv = plain.test_conv
test_conv_matches_onnxruntime = plain.test_conv_matches_onnxruntime
test_conv_1d = plain.test_conv_1d
test_conv_fused_activation = plain.test_conv_fused_activation
test_conv_residual_before_activation = plain.test_conv_residual_before_activation
test_conv_residual_that_broadcasts = plain.test_conv_residual_that_broadcasts
test_gemm_transposes = plain_gemm.test_gemm_transposes
test_gemm_c_broadcasts = plain_gemm.test_gemm_c_broadcasts
test_gemm_without_c_and_beta_zero = plain_gemm.test_gemm_without_c_and_beta_zero
test_gemm_both_inputs_on_the_device_with_fused_activation = (
    plain_gemm.test_gemm_both_inputs_on_the_device_with_fused_activation)


def conv_graph(x_shape, w, inputs=("x", "w", "b"), attrs=None, feeds=("x",)):
    return Graph(nodes=[Node("Conv", "conv", list(inputs), ["y"], dict(attrs or {}))],
                 inputs=[TensorSpec(name, "float32", list(x_shape)) for name in feeds],
                 outputs=[TensorSpec("y", "float32", [])],
                 constants={"w": w, "b": np.zeros(w.shape[0], np.float32)}, opset=18)


def kernels(graph, shapes, traits):
    return [step.kernel for step in make_plan(graph, shapes, traits).steps]


def test_gpu_traits_take_the_tiled_kernel_and_cpu_traits_do_not():
    graph = conv_graph((1, 8, 9, 9), plain.rand(12, 8, 3, 3), attrs={"pads": [1, 1, 1, 1]})
    assert kernels(graph, [(1, 8, 9, 9)], GPU_LIKE) == ["conv2d_tiled"]
    cpu = DeviceTraits(vector_width=16, local_memory_bytes=0, work_group_size=4096,
                       compute_units=2)  # PoCL's, as test_traits.py reads them
    assert "conv2d_tiled" not in kernels(graph, [(1, 8, 9, 9)], cpu)


def test_pocl_reports_no_dedicated_local_memory():
    device = select_device("portable").cl_device
    local = int(device.local_mem_type)
    assert local != 1, "PoCL's CPU device now has CL_LOCAL memory: re-measure the choice"
    assert not tiled_fits(DeviceTraits(local_memory_bytes=0, work_group_size=4096))


def test_a_late_layer_splits_k_and_reduces_with_the_epilogue(run_node):
    """ResNet's 7x7 maps in miniature: one output tile, 54 K steps -> split-K, then the
    reduction adds bias and residual before the Relu."""
    x, w, b = plain.rand(1, 96, 7, 7), plain.rand(40, 96, 3, 3) * 0.1, plain.rand(40)
    y = plain.conv_reference(x, w, b, pads=(1, 1, 1, 1))
    r = plain.rand(*y.shape)
    attrs = {"pads": [1, 1, 1, 1], "activation": [1, 0.0, 0.0]}
    graph = conv_graph(x.shape, w, ["x", "w", "b", "r"], attrs, feeds=("x", "r"))
    assert kernels(graph, [x.shape, r.shape], GPU_LIKE) == ["conv2d_tiled",
                                                            "conv2d_tiled_reduce"]
    (got,) = run_node("Conv", {"x": x, "r": r}, attrs, {"w": w, "b": b},
                      inputs=["x", "w", "b", "r"])
    assert_close(got, np.maximum(y + r, 0))


@pytest.mark.parametrize("tiles,k_steps,units,splits", [
    (264, 300, 132, 1),   # enough tiles: no split
    (8, 288, 132, 33),    # ResNet 3x3 512 at 7x7: two groups per unit
    (8, 24, 132, 3),      # too little K to cut finer than 8 steps a split
    (8, 16, 132, 1),      # two parts are not worth a reduction
    (8, 7, 132, 1),
])
def test_split_count(tiles, k_steps, units, splits):
    assert split_count(tiles, k_steps, units) == splits


@pytest.mark.parametrize("m,c_shape", [(1, (70,)), (1, (1, 70)), (3, (3, 70)), (2, None)])
def test_a_fully_connected_gemm_runs_as_a_pointwise_convolution(run_node, m, c_shape):
    """Y = relu(A B^T + C): C a bias row, or a whole (M, N) residual; K = 500 splits."""
    a, b = plain.rand(m, 500), plain.rand(70, 500) * 0.1
    constants = {"b": b} if c_shape is None else {"b": b, "c": plain.rand(*c_shape)}
    attrs = {"transB": 1, "activation": [1, 0.0, 0.0]}
    graph = Graph(nodes=[Node("Gemm", "fc", ["a", *constants], ["y"], attrs)],
                  inputs=[TensorSpec("a", "float32", [m, 500])],
                  outputs=[TensorSpec("y", "float32", [])], constants=constants, opset=18)
    assert kernels(graph, [(m, 500)], GPU_LIKE) == ["conv2d_tiled", "conv2d_tiled_reduce"]
    (got,) = run_node("Gemm", {"a": a}, attrs, constants)
    want = a.astype(np.float64) @ b.T.astype(np.float64)
    if c_shape is not None:
        want = want + constants["c"]
    assert_close(got, np.maximum(want, 0))
