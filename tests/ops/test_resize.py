"""Resize and Upsample against a NumPy reference of the ONNX formulas (and onnxruntime)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from macecl.errors import GraphError
from macecl.graph.ir import Node
from macecl.ops.registry import unsupported_reason
from tests.ops.conftest import assert_close

RNG = np.random.default_rng(13)
X = RNG.standard_normal((2, 3, 6, 4)).astype(np.float32)
COORDS = ["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def source(out_size, in_size, scale, coord):
    """Input coordinate of each output index along one axis (ONNX's formulas, float64)."""
    x = np.arange(out_size, dtype=np.float64)
    if coord == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if coord == "align_corners":
        return x * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros(out_size)
    if coord == "asymmetric":
        return x / scale
    if coord == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_size > 1 else np.zeros(out_size)
    raise ValueError(coord)


def resize_axis(x, axis, out_size, scale, mode, coord, nearest="round_prefer_floor"):
    in_size = x.shape[axis]
    s = source(out_size, in_size, scale, coord)
    if mode == "nearest":
        index = {"round_prefer_floor": np.ceil(s - 0.5), "round_prefer_ceil": np.floor(s + 0.5),
                 "floor": np.floor(s), "ceil": np.ceil(s)}[nearest]
        return np.take(x, np.clip(index, 0, in_size - 1).astype(int), axis=axis)
    s = np.clip(s, 0, in_size - 1)
    low = np.floor(s).astype(int)
    high = np.minimum(low + 1, in_size - 1)
    weight = (s - low).reshape([-1 if a == axis % x.ndim else 1 for a in range(x.ndim)])
    return np.take(x, low, axis=axis) * (1 - weight) + np.take(x, high, axis=axis) * weight


def resize_reference(x, out_hw, scales_hw, mode, coord, nearest="round_prefer_floor"):
    y = x.astype(np.float64)
    for axis, size, scale in zip((-2, -1), out_hw, scales_hw):
        y = resize_axis(y, axis, size, scale, mode, coord, nearest)
    return y


def run_resize(run_node, x, attrs, scales=None, sizes=None, axes_attr=None):
    """Resize-11+ with roi omitted: (X, "", scales, "") or (X, "", "", sizes)."""
    attrs = dict(attrs)
    if axes_attr is not None:
        attrs["axes"] = axes_attr
    if scales is not None:
        constants, inputs = {"scales": np.asarray(scales, np.float32)}, ["x", "", "scales"]
    else:
        constants, inputs = {"sizes": np.asarray(sizes, np.int64)}, ["x", "", "", "sizes"]
    (got,) = run_node("Resize", {"x": x}, attrs, constants, inputs=inputs)
    return got


def run_onnxruntime(x, attrs, scales=None, sizes=None, opset=13, op="Resize"):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    constants = {}
    if op == "Resize" and opset >= 11:
        constants["roi"] = np.zeros(0, np.float32)
        constants["scales"] = np.asarray(scales if scales is not None else [], np.float32)
        if sizes is not None:
            constants["sizes"] = np.asarray(sizes, np.int64)
    elif scales is not None:
        constants["scales"] = np.asarray(scales, np.float32)
    node = helper.make_node(op, ["x", *constants], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


# scales (1, 1, 0.5, 1.5) on (6, 4): out (3, 6); the downscaled axis hits exact .5 ties
@pytest.mark.parametrize("nearest", NEAREST)
@pytest.mark.parametrize("coord", COORDS)
def test_nearest_scales(run_node, coord, nearest):
    attrs = {"mode": "nearest", "coordinate_transformation_mode": coord, "nearest_mode": nearest}
    got = run_resize(run_node, X, attrs, scales=[1, 1, 0.5, 1.5])
    assert_close(got, resize_reference(X, (3, 6), (0.5, 1.5), "nearest", coord, nearest))
    assert_close(got, run_onnxruntime(X, attrs, scales=[1, 1, 0.5, 1.5]))


@pytest.mark.parametrize("scales, out_hw", [((2.0, 2.0), (12, 8)), ((0.5, 0.75), (3, 3)),
                                            ((1.5, 0.5), (9, 2)), ((1.0, 3.0), (6, 12))])
@pytest.mark.parametrize("coord", COORDS)
def test_linear_scales(run_node, coord, scales, out_hw):
    attrs = {"mode": "linear", "coordinate_transformation_mode": coord}
    got = run_resize(run_node, X, attrs, scales=[1, 1, *scales])
    assert_close(got, resize_reference(X, out_hw, scales, "linear", coord))
    assert_close(got, run_onnxruntime(X, attrs, scales=[1, 1, *scales]))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("coord", COORDS)
def test_sizes(run_node, mode, coord):
    # (6, 4) -> (9, 2) and (4, 8): the scale is out / in
    for out_hw in ((9, 2), (4, 8), (1, 1)):
        attrs = {"mode": mode, "coordinate_transformation_mode": coord}
        got = run_resize(run_node, X, attrs, sizes=[2, 3, *out_hw])
        scales = (out_hw[0] / 6, out_hw[1] / 4)
        assert_close(got, resize_reference(X, out_hw, scales, mode, coord))
        assert_close(got, run_onnxruntime(X, attrs, sizes=[2, 3, *out_hw]))


def test_output_size_is_floor_of_size_times_scale(run_node):
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
             "nearest_mode": "floor"}
    got = run_resize(run_node, X, attrs, scales=[1, 1, 1.7, 0.6])
    assert got.shape == (2, 3, math.floor(6 * 1.7), math.floor(4 * 0.6))
    assert_close(got, resize_reference(X, got.shape[2:], (1.7, 0.6), "nearest", "asymmetric",
                                       "floor"))


def test_opset_18_axes_and_aspect_ratio(run_node):
    attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    got = run_resize(run_node, X, attrs, scales=[2.0, 0.5], axes_attr=[2, 3])
    assert_close(got, resize_reference(X, (12, 2), (2.0, 0.5), "linear", "half_pixel"))
    got = run_resize(run_node, X, attrs, sizes=[3], axes_attr=[-2])
    assert_close(got, resize_reference(X, (3, 4), (0.5, 1.0), "linear", "half_pixel"))
    # sizes (12, 12) on (6, 4): not_larger keeps ratio 2 -> (12, 8); not_smaller 3 -> (18, 12)
    for policy, out_hw, scale in (("not_larger", (12, 8), 2.0), ("not_smaller", (18, 12), 3.0)):
        policy_attrs = {**attrs, "keep_aspect_ratio_policy": policy}
        got = run_resize(run_node, X, policy_attrs, sizes=[12, 12], axes_attr=[2, 3])
        assert_close(got, resize_reference(X, out_hw, (scale, scale), "linear", "half_pixel"))
        assert_close(got, run_onnxruntime(X, {**policy_attrs, "axes": [2, 3]}, sizes=[12, 12],
                                          opset=18))


@pytest.mark.parametrize("shape, scales", [((5, 4), [2.0, 0.5]), ((3, 5, 4), [1.0, 0.5, 2.0]),
                                           ((7,), [2.0]), ((1, 2, 1, 3, 4), [1, 1, 1, 2, 2])])
def test_other_ranks(run_node, shape, scales):
    x = RNG.standard_normal(shape).astype(np.float32)
    attrs = {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}
    got = run_resize(run_node, x, attrs, scales=scales)
    y = x.astype(np.float64)
    for axis, scale in enumerate(scales):
        if scale != 1:
            y = resize_axis(y, axis, math.floor(shape[axis] * scale), scale, "linear",
                            "pytorch_half_pixel")
    assert_close(got, y)


# Resize-10 (X, scales) and Upsample: asymmetric; nearest is floor upsampling, ceil downsampling
def legacy_nearest(x, scales_hw):
    y = x.astype(np.float64)
    for axis, scale in zip((-2, -1), scales_hw):
        out_size = math.floor(np.float32(x.shape[axis]) * np.float32(scale))
        y = resize_axis(y, axis, out_size, scale, "nearest", "asymmetric",
                        "floor" if scale >= 1 else "ceil")
    return y


@pytest.mark.parametrize("scales_hw", [(2.0, 3.0), (0.5, 0.75), (1.5, 0.5), (0.6, 1.0)])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_10(run_node, mode, scales_hw):
    scales = np.array([1, 1, *scales_hw], np.float32)
    (got,) = run_node("Resize", {"x": X}, {"mode": mode}, {"scales": scales}, opset=10)
    if mode == "nearest":
        reference = legacy_nearest(X, scales_hw)
    else:
        out_hw = [math.floor(np.float32(n) * np.float32(s)) for n, s in zip((6, 4), scales_hw)]
        reference = resize_reference(X, out_hw, scales_hw, "linear", "asymmetric")
    assert_close(got, reference)
    assert_close(got, run_onnxruntime(X, {"mode": mode}, scales=scales, opset=10))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(run_node, mode):
    scales = [1.0, 1.0, 2.0, 1.5]
    (got7,) = run_node("Upsample", {"x": X}, {"mode": mode, "scales": scales}, opset=7)
    (got9,) = run_node("Upsample", {"x": X}, {"mode": mode},
                       {"scales": np.array(scales, np.float32)}, opset=9)
    if mode == "nearest":
        reference = legacy_nearest(X, (2.0, 1.5))
    else:
        reference = resize_reference(X, (12, 6), (2.0, 1.5), "linear", "asymmetric")
    assert_close(got7, reference)
    assert_close(got9, reference)
    assert_close(got9, run_onnxruntime(X, {"mode": mode}, scales=scales, opset=9, op="Upsample"))


def test_rejected_at_conversion():
    def reason(op="Resize", inputs=("x", "", "s"), **attrs):
        return unsupported_reason(Node(op, "r", list(inputs), ["y"], attrs))

    assert reason(mode="cubic") == "Resize with mode cubic"
    assert reason(coordinate_transformation_mode="tf_crop_and_resize") == \
        "Resize with coordinate_transformation_mode tf_crop_and_resize"
    assert reason(coordinate_transformation_mode="tf_half_pixel_for_nn") is not None
    assert reason(keep_aspect_ratio_policy="fit") is not None
    assert reason(mode="linear", coordinate_transformation_mode="align_corners") is None
    assert reason(op="Upsample", inputs=("x",), scales=[1.0, 2.0, 2.0, 2.0]) is not None
    assert reason(op="Upsample", inputs=("x",), scales=[1.0, 1.0, 2.0, 2.0]) is None


def test_rejected_when_planned(run_node):
    with pytest.raises(GraphError, match="last two axes"):
        run_resize(run_node, X, {"mode": "nearest"}, scales=[1, 2, 2, 2])
    with pytest.raises(GraphError, match="antialias"):
        run_resize(run_node, X, {"mode": "linear", "antialias": 1}, scales=[1, 1, 0.5, 0.5])
    # antialias only matters when downscaling
    got = run_resize(run_node, X, {"mode": "linear", "antialias": 1}, scales=[1, 1, 2, 2])
    assert_close(got, resize_reference(X, (12, 8), (2, 2), "linear", "half_pixel"))


def test_whole_factor_blocks_only_where_every_mode_agrees():
    """The host's choice of resize_nearest_blocks: index o // f along both axes, checked
    against the kernel's own formulas, so that a mode that rounds differently keeps the
    general kernel."""
    from macecl.ops.resize import COORD_MODES, NEAREST_MODES, _whole_factors

    asym, half = COORD_MODES["asymmetric"], COORD_MODES["half_pixel"]
    floor, prefer_floor = NEAREST_MODES["floor"], NEAREST_MODES["round_prefer_floor"]
    ceil = NEAREST_MODES["ceil"]
    assert _whole_factors(asym, floor, (20, 20, 160, 160), (8.0, 8.0))
    assert _whole_factors(half, prefer_floor, (5, 7, 15, 14), (3.0, 2.0))
    assert not _whole_factors(asym, ceil, (4, 4, 8, 8), (2.0, 2.0))  # ceil takes the next one
    assert _whole_factors(asym, prefer_floor, (4, 4, 8, 8), (2.0, 2.0))  # .5 ties go down
    prefer_ceil = NEAREST_MODES["round_prefer_ceil"]
    assert not _whole_factors(asym, prefer_ceil, (4, 4, 8, 8), (2.0, 2.0))  # and here up
    assert not _whole_factors(asym, floor, (4, 4, 6, 8), (1.5, 2.0))  # not a whole factor
    assert not _whole_factors(COORD_MODES["align_corners"], floor, (4, 4, 8, 8), (2.0, 2.0))
