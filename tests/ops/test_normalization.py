"""BatchNormalization, InstanceNormalization, GroupNormalization, LayerNormalization and LRN
against NumPy (GroupNormalization against ONNX Runtime too)."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.graph.ir import Node
from macecl.ops import REGISTRY
from macecl.ops.registry import unsupported_reason
from tests.ops.conftest import assert_close

RNG = np.random.default_rng(9)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def batch_norm_params(channels):
    return {"scale": rand(channels), "bias": rand(channels), "mean": rand(channels),
            "var": np.abs(rand(channels)) + 0.1}


def batch_norm_reference(x, scale, bias, mean, var, epsilon):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x = x.astype(np.float64)
    return ((x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + epsilon)
            * scale.reshape(shape) + bias.reshape(shape))


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 4, 5), (1, 3, 2, 3, 2)])
def test_batch_norm(run_node, shape):
    x = rand(*shape)
    params = batch_norm_params(3)
    (got,) = run_node("BatchNormalization", {"x": x}, {"epsilon": 1e-3}, params)
    assert_close(got, batch_norm_reference(x, *params.values(), 1e-3))


def test_batch_norm_parameters_on_the_device(run_node):
    x = rand(2, 4, 3, 3)
    params = batch_norm_params(4)
    (got,) = run_node("BatchNormalization", {"x": x, **params})
    assert_close(got, batch_norm_reference(x, *params.values(), 1e-5))


def test_batch_norm_evaluate():
    x = rand(2, 3, 4)
    params = batch_norm_params(3)
    node = Node("BatchNormalization", "bn", ["x", *params], ["y"], {"epsilon": 0.01})
    (y,) = REGISTRY["BatchNormalization"].evaluate(node, [x, *params.values()])
    assert_close(y, batch_norm_reference(x, *params.values(), 0.01))


def test_batch_norm_training_is_rejected():
    inputs = ["x", "s", "b", "m", "v"]
    training = Node("BatchNormalization", "bn", inputs, ["y"], {"training_mode": 1})
    assert unsupported_reason(training) == "BatchNormalization in training mode"
    extra = Node("BatchNormalization", "bn", inputs, ["y", "running_mean", "running_var"])
    assert "training" in unsupported_reason(extra)
    assert unsupported_reason(Node("BatchNormalization", "bn", inputs, ["y"])) is None


@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 4, 3, 5), (2, 2, 2, 3, 2)])
def test_instance_norm(run_node, shape):
    x = rand(*shape) * 3 + 1
    scale, bias = rand(shape[1]), rand(shape[1])
    (got,) = run_node("InstanceNormalization", {"x": x}, {"epsilon": 1e-4},
                      {"scale": scale, "bias": bias})
    axes = tuple(range(2, len(shape)))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = x64.var(axis=axes, keepdims=True)
    channel = (1, -1) + (1,) * (len(shape) - 2)
    reference = (x64 - mean) / np.sqrt(var + 1e-4) * scale.reshape(channel) + bias.reshape(channel)
    assert_close(got, reference)


def lrn_reference(x, size, alpha, beta, bias):
    x = x.astype(np.float64)
    channels = x.shape[1]
    out = np.empty_like(x)
    for c in range(channels):
        lo = max(0, c - (size - 1) // 2)
        hi = min(channels - 1, c + int(np.ceil((size - 1) / 2)))
        square_sum = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        out[:, c] = x[:, c] / (bias + alpha / size * square_sum) ** beta
    return out


@pytest.mark.parametrize("shape, size, attrs", [
    ((2, 7, 3, 4), 3, {}),
    ((1, 6, 4, 4), 4, {"alpha": 0.01, "beta": 0.5, "bias": 2.0}),
    ((1, 5, 2, 2), 5, {"alpha": 1e-3, "beta": 0.9, "bias": 1.5}),
    ((2, 6, 5), 2, {"alpha": 0.1}),  # rank 3, viewed as (N, C, L, 1)
    ((1, 4, 2, 3, 2), 3, {"beta": 1.0, "alpha": 0.05}),  # rank 5
    ((3, 5), 3, {"alpha": 0.2}),  # rank 2
])
def test_lrn(run_node, shape, size, attrs):
    x = rand(*shape) * 2
    (got,) = run_node("LRN", {"x": x}, {"size": size, **attrs})
    full = {"alpha": 1e-4, "beta": 0.75, "bias": 1.0, **attrs}
    assert_close(got, lrn_reference(x, size, full["alpha"], full["beta"], full["bias"]))


def layer_norm_reference(x, axis, scale, bias, epsilon):
    axes = tuple(range(axis % x.ndim, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = x64.var(axis=axes, keepdims=True)
    return (x64 - mean) / np.sqrt(var + epsilon) * scale + (0.0 if bias is None else bias)


@pytest.mark.parametrize("shape, axis, scale_shape, with_bias", [
    ((2, 5, 7), -1, (7,), True),
    ((2, 3, 4, 5), 2, (4, 5), False),  # two normalized axes
    ((3, 6), 0, (3, 6), True),  # the whole tensor is one row
    ((1, 40, 120), -1, (1, 1, 120), True),  # gamma with leading ones (the converter's)
    ((4, 9), -1, (1,), True),  # a one-element gamma, broadcast on the host
])
def test_layer_norm(run_node, shape, axis, scale_shape, with_bias):
    x = rand(*shape) * 3 + 1
    scale = RNG.uniform(0.5, 1.5, scale_shape).astype(np.float32)
    bias = rand(*scale_shape) if with_bias else None
    constants = {"scale": scale, **({"bias": bias} if with_bias else {})}
    (got,) = run_node("LayerNormalization", {"x": x}, {"axis": axis, "epsilon": 1e-4}, constants)
    assert_close(got, layer_norm_reference(x, axis, scale, bias, 1e-4))


def test_layer_norm_scale_computed_on_the_device(run_node):
    x, scale = rand(3, 8) * 2, rand(8)
    (got,) = run_node("LayerNormalization", {"x": x, "scale": scale}, {"epsilon": 1e-5})
    assert_close(got, layer_norm_reference(x, -1, scale, None, 1e-5))


def test_layer_norm_with_mean_output_is_refused():
    node = Node("LayerNormalization", "ln", ["x", "s"], ["y", "mean"], {})
    assert "Mean" in unsupported_reason(node)
    assert REGISTRY["LayerNormalization"].lower is not None


@pytest.mark.parametrize("opset, shape, groups", [
    (18, (2, 6, 5, 7), 3),  # scale and bias per group
    (21, (2, 6, 5, 7), 3),  # per channel
    (21, (1, 8, 33), 2),  # 1-D spatial
    (21, (1, 4, 3, 3), 4),  # a group per channel: InstanceNormalization
])
def test_group_norm_as_onnxruntime(tmp_path, opset, shape, groups):
    """Both meanings of scale and bias (per group before opset 21, per channel from it),
    against ONNX Runtime, which runs the op's ONNX function."""
    import onnx
    from onnx import helper

    from tests.test_residual_fusion import same_as_onnxruntime, save

    params = groups if opset == 18 else shape[1]
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups,
                            epsilon=1e-3)
    path = save(tmp_path, [node], {"s": rand(params), "b": rand(params)}, [("x", list(shape))],
                opset=opset)
    if opset >= 21:  # opset 21 comes with IR version 10
        model = onnx.load(path)
        model.ir_version = 10
        onnx.save(model, path)
    same_as_onnxruntime(path, {"x": rand(*shape) * 3 + 1})


def test_group_norm_evaluate_matches_the_device(run_node):
    x, scale, bias = rand(2, 6, 4, 4), rand(6), rand(6)
    attrs = {"num_groups": 2, "epsilon": 1e-4}
    (got,) = run_node("GroupNormalization", {"x": x}, attrs, {"s": scale, "b": bias})
    node = Node("GroupNormalization", "g", ["x", "s", "b"], ["y"], attrs)
    assert_close(got, REGISTRY["GroupNormalization"].evaluate(node, [x, scale, bias])[0])


def test_group_norm_refuses_groups_that_do_not_divide_the_channels(run_node):
    from macecl.errors import GraphError

    with pytest.raises(GraphError, match="num_groups 4 does not divide the 6 channels"):
        run_node("GroupNormalization", {"x": rand(1, 6, 2, 2)}, {"num_groups": 4},
                 {"s": rand(4), "b": rand(4)})


@pytest.mark.parametrize("attrs", [{}, {"axis": 1, "p": 1}, {"axis": 0, "p": 2}])
def test_lp_norm_as_onnxruntime(tmp_path, attrs):
    """x over its L2 (default, last axis) or L1 norm, as ArcFace-style embeddings end."""
    from onnx import helper

    from tests.test_residual_fusion import same_as_onnxruntime, save

    node = helper.make_node("LpNormalization", ["x"], ["y"], **attrs)
    path = save(tmp_path, [node], {}, [("x", [3, 4, 6])])
    same_as_onnxruntime(path, {"x": rand(3, 4, 6)})
