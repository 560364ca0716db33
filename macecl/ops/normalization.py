"""Normalizations: BatchNormalization (inference), InstanceNormalization,
GroupNormalization, LayerNormalization, LpNormalization and LRN.

BatchNormalization is y = x * s + t with per-channel s = scale / sqrt(var + eps) and
t = B - mean * s: computed on the host when the parameters are constants (the usual case),
else by a few small launches, then two broadcasting ``elementwise`` launches over x.
InstanceNormalization reduces each (n, c) plane with the global pooling kernels (mean, then
the mean of squared deviations) and applies the result with elementwise launches;
GroupNormalization does the same over an (N, groups, rest) view of its input.
LayerNormalization (ONNX 17, and what the converter makes of the ReduceMean / Sub / Pow /
ReduceMean / Add / Sqrt / Div / Mul / Add chains older exports spell it with:
converter/layer_norm.py) is one ``layer_norm`` launch, a work item per normalized row. LRN
is the ``lrn`` kernel on an (N, C, H, W) view of its input.
"""

from __future__ import annotations

import math

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.elementwise import OPS, lower_binary
from macecl.ops.registry import checker, evaluation, lowering


def _param_shape(size: int, x_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """How a per-channel parameter of ``size`` values broadcasts against ``x_shape``."""
    if size == x_shape[1]:
        return (x_shape[1], *(1,) * (len(x_shape) - 2))
    if size == math.prod(x_shape[1:]):  # BatchNormalization-7's spatial=0: per element
        return tuple(x_shape[1:])
    return None


@checker("BatchNormalization")
def _check_batch_norm(node: Node) -> str | None:
    if int(node.attrs.get("training_mode", 0)):
        return "BatchNormalization in training mode"
    if any(node.outputs[1:]):
        return "BatchNormalization with running mean / variance outputs (training mode)"
    return None


def _batch_norm_host(node: Node, scale, bias, mean, var) -> tuple[np.ndarray, np.ndarray]:
    epsilon = float(node.attrs.get("epsilon", 1e-5))
    factor = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + epsilon)
    shift = np.asarray(bias, np.float64) - np.asarray(mean, np.float64) * factor
    return factor.astype(np.float32), shift.astype(np.float32)


@evaluation("BatchNormalization")
def _evaluate_batch_norm(node: Node, arrays: list) -> list[np.ndarray]:
    x = arrays[0]
    factor, shift = _batch_norm_host(node, *arrays[1:5])
    shape = _param_shape(factor.size, x.shape)
    if shape is None:
        raise ValueError(f"parameters of {factor.size} values for an input of shape {x.shape}")
    return [(x * factor.reshape(shape) + shift.reshape(shape)).astype(x.dtype)]


@lowering("BatchNormalization")
def _lower_batch_norm(node: Node, inputs: list, builder) -> list:
    reason = _check_batch_norm(node)
    if reason:
        raise builder.fail(f"{reason} is not supported")
    if len(inputs) < 5 or any(v is None for v in inputs[:5]):
        raise builder.fail("X, scale, B, mean and var are all required")
    x, scale, bias, mean, var = inputs[:5]
    if x.rank < 2:
        raise builder.fail(f"input of rank {x.rank}: BatchNormalization needs N and C")
    sizes = {v.size for v in (scale, bias, mean, var)}
    shape = _param_shape(scale.size, x.shape)
    if len(sizes) != 1 or shape is None:
        raise builder.fail(f"parameters of shapes {[list(v.shape) for v in inputs[1:5]]} do "
                           f"not fit the input {list(x.shape)}")
    if all(v.host is not None for v in (scale, bias, mean, var)):
        factor, shift = _batch_norm_host(node, scale.host, bias.host, mean.host, var.host)
        factor = builder.constant(factor.reshape(shape))
        shift = builder.constant(shift.reshape(shape))
    else:  # parameters computed on the device: a few launches of C elements each
        epsilon = builder.constant(np.float32(node.attrs.get("epsilon", 1e-5)))
        flat = [builder.view(v, (v.size,)) for v in (scale, bias, mean, var)]
        root = lower_binary(builder, OPS["Add"], flat[3], epsilon)
        root = lower_binary(builder, OPS["Pow"], root, builder.constant(np.float32(-0.5)))
        factor = lower_binary(builder, OPS["Mul"], flat[0], root)
        shift = lower_binary(builder, OPS["Sub"], flat[1],
                             lower_binary(builder, OPS["Mul"], flat[2], factor))
        factor, shift = builder.view(factor, shape), builder.view(shift, shape)
    scaled = lower_binary(builder, OPS["Mul"], x, factor)
    return [lower_binary(builder, OPS["Add"], scaled, shift)]


@evaluation("InstanceNormalization")
def _evaluate_instance_norm(node: Node, arrays: list) -> list[np.ndarray]:
    x, scale, bias = arrays[:3]
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    shape = (x.shape[1], *(1,) * (x.ndim - 2))
    epsilon = float(node.attrs.get("epsilon", 1e-5))
    y = (x - mean) / np.sqrt(var + epsilon) * scale.reshape(shape) + bias.reshape(shape)
    return [y.astype(x.dtype)]


@lowering("InstanceNormalization")
def _lower_instance_norm(node: Node, inputs: list, builder) -> list:
    x, scale, bias = inputs[:3]
    if x.rank < 3:
        raise builder.fail(f"input of rank {x.rank}: InstanceNormalization needs N, C and "
                           "spatial dims")
    channels = x.shape[1]
    if scale.size != channels or bias.size != channels:
        raise builder.fail(f"scale {list(scale.shape)} and B {list(bias.shape)} must have "
                           f"{channels} values")
    centered, root = _plane_statistics(builder, x, float(node.attrs.get("epsilon", 1e-5)))
    per_channel = (channels, *(1,) * (x.rank - 2))
    factor = lower_binary(builder, OPS["Mul"], root, builder.view(scale, per_channel))
    scaled = lower_binary(builder, OPS["Mul"], centered, factor)
    return [lower_binary(builder, OPS["Add"], scaled, builder.view(bias, per_channel))]


def _plane_statistics(builder, x, epsilon: float):
    """(x - mean, 1 / sqrt(var + epsilon)) of each (n, c) plane of x (N, C, ...): the mean
    and the mean squared deviation by the global pooling kernel, the rest elementwise."""
    planes = x.shape[0] * x.shape[1]
    inner = x.size // planes if planes else 0
    stats = (x.shape[0], x.shape[1], *(1,) * (x.rank - 2))

    def plane_mean(value):
        out = builder.new(stats)
        builder.launch("pooling", "global_avg_pool",
                       [value, out, np.int32(planes), np.int32(inner)], planes)
        return out

    centered = lower_binary(builder, OPS["Sub"], x, plane_mean(x))
    var = plane_mean(lower_binary(builder, OPS["Mul"], centered, centered))
    root = lower_binary(builder, OPS["Pow"],
                        lower_binary(builder, OPS["Add"], var,
                                     builder.constant(np.float32(epsilon))),
                        builder.constant(np.float32(-0.5)))
    return centered, root


def _group_norm_shapes(node: Node, shape: tuple[int, ...], params: int) -> tuple[int, int]:
    """(groups, affine): GroupNormalization's group count, and how many channel runs its
    scale and bias cover: C (opset 21, per channel) or the groups (opset 18, per group)."""
    groups = int(node.attrs.get("num_groups", 0))
    if len(shape) < 2:
        raise ValueError(f"GroupNormalization needs N and C dims, not {list(shape)}")
    channels = shape[1]
    if groups < 1 or channels % groups:
        raise ValueError(f"num_groups {groups} does not divide the {channels} channels")
    if params not in (channels, groups):
        raise ValueError(f"scale and bias must have {channels} (per channel) or {groups} "
                         f"(per group) values, not {params}")
    return groups, params


@evaluation("GroupNormalization")
def _evaluate_group_norm(node: Node, arrays: list) -> list[np.ndarray]:
    x, scale, bias = arrays[:3]
    groups, affine = _group_norm_shapes(node, x.shape, np.size(scale))
    rows = x.reshape(x.shape[0], groups, -1).astype(np.float64)
    mean = rows.mean(axis=2, keepdims=True)
    var = ((rows - mean) ** 2).mean(axis=2, keepdims=True)
    y = (rows - mean) / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
    y = y.reshape(x.shape[0], affine, -1) * np.reshape(scale, (affine, 1)) \
        + np.reshape(bias, (affine, 1))
    return [y.reshape(x.shape).astype(x.dtype)]


@lowering("GroupNormalization")
def _lower_group_norm(node: Node, inputs: list, builder) -> list:
    """InstanceNormalization's statistics over an (N, groups, rest) view, then the scale and
    bias over an (N, C or groups, rest) one."""
    x, scale, bias = inputs[:3]
    if scale.size != bias.size:
        raise builder.fail(f"scale {list(scale.shape)} and bias {list(bias.shape)} differ")
    try:
        groups, affine = _group_norm_shapes(node, x.shape, scale.size)
    except ValueError as error:
        raise builder.fail(str(error)) from None
    n = x.shape[0]
    grouped = builder.view(x, (n, groups, x.size // max(n * groups, 1)))
    centered, root = _plane_statistics(builder, grouped,
                                       float(node.attrs.get("epsilon", 1e-5)))
    normalized = lower_binary(builder, OPS["Mul"], centered, root)
    runs = builder.view(normalized, (n, affine, x.size // max(n * affine, 1)))
    scaled = lower_binary(builder, OPS["Mul"], runs, builder.view(scale, (affine, 1)))
    shifted = lower_binary(builder, OPS["Add"], scaled, builder.view(bias, (affine, 1)))
    return [builder.view(shifted, x.shape)]


@lowering("LRN")
def _lower_lrn(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    if x.rank < 2:
        raise builder.fail(f"input of rank {x.rank}: LRN needs N and C")
    size = node.attrs.get("size")
    if size is None or int(size) <= 0:
        raise builder.fail(f"size {size} must be a positive int")
    inner = math.prod(x.shape[2:])
    view = builder.view(x, (x.shape[0], x.shape[1], inner, 1))
    out = builder.new(x.shape)
    result = builder.view(out, view.shape)
    args = [view, result, *(np.int32(d) for d in view.shape), np.int32(size),
            np.float32(node.attrs.get("alpha", 1e-4)), np.float32(node.attrs.get("beta", 0.75)),
            np.float32(node.attrs.get("bias", 1.0))]
    width = builder.traits.vector_width
    if builder.traits.cpu:  # pixel vectors through the channels (lrn.cl says why)
        builder.launch("lrn", "lrn_pixels", args, (-(-inner // width), x.shape[0]),
                       options=[f"-DVW={width}"])
    else:
        builder.launch("lrn", "lrn", args, out.size, options=[f"-DVW={width}"])
    return [out]


@checker("LayerNormalization")
def _check_layer_norm(node: Node) -> str | None:
    if any(node.outputs[1:]):
        return "LayerNormalization with Mean / InvStdDev outputs"
    return None


def _layer_norm_axis(node: Node, rank: int) -> int:
    axis = int(node.attrs.get("axis", -1))
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


@evaluation("LayerNormalization")
def _evaluate_layer_norm(node: Node, arrays: list) -> list[np.ndarray]:
    x, scale = arrays[0], arrays[1]
    bias = arrays[2] if len(arrays) > 2 and arrays[2] is not None else 0.0
    axes = tuple(range(_layer_norm_axis(node, x.ndim), x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5))) * scale + bias
    return [y.astype(x.dtype)]


@lowering("LayerNormalization")
def _lower_layer_norm(node: Node, inputs: list, builder) -> list:
    reason = _check_layer_norm(node)
    if reason:
        raise builder.fail(f"{reason} is not supported")
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    if x.rank == 0:
        raise builder.fail("LayerNormalization of a scalar")
    try:
        axis = _layer_norm_axis(node, x.rank)
    except ValueError as error:
        raise builder.fail(str(error)) from None
    normalized = x.shape[axis:]
    inner = math.prod(normalized)
    params = [_per_element(builder, v, normalized, name)
              for v, name in ((scale, "Scale"), (bias, "B")) if v is not None]
    out = builder.new(x.shape)
    epsilon = np.float32(node.attrs.get("epsilon", 1e-5))
    builder.launch("layer_norm", "layer_norm",
                   [x, params[0], params[1] if bias is not None else None, out,
                    np.int32(x.size // max(inner, 1)), np.int32(inner), epsilon],
                   x.size // max(inner, 1),
                   options=[f"-DVW={builder.traits.vector_width}",
                            *(["-DHAS_BIAS"] if bias is not None else [])])
    return [out]


def _per_element(builder, value, normalized: tuple[int, ...], name: str):
    """``value`` as one number per element of the normalized dims: broadcast on the host
    when it is known there (a one-element or per-last-axis constant), else it must have
    that many elements already."""
    extra = value.rank - len(normalized)
    if extra > 0 and all(d == 1 for d in value.shape[:extra]):
        value = builder.view(value, value.shape[extra:])
    try:
        shape = np.broadcast_shapes(value.shape, normalized)
    except ValueError:
        shape = None
    if shape != tuple(normalized):
        raise builder.fail(f"{name} {list(value.shape)} does not broadcast to the normalized "
                           f"dims {list(normalized)}")
    if value.shape == tuple(normalized):
        return value
    if value.host is None:
        raise builder.fail(f"{name} {list(value.shape)} is computed on the device and smaller "
                           f"than the normalized dims {list(normalized)}")
    return builder.constant(np.broadcast_to(value.host.astype(np.float32), normalized).copy())


def _lp_axis(node: Node, rank: int) -> tuple[int, int]:
    """LpNormalization's (axis, p)."""
    axis, p = int(node.attrs.get("axis", -1)), int(node.attrs.get("p", 2))
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    if p not in (1, 2):
        raise ValueError(f"p {p} is not 1 or 2")
    return axis + rank if axis < 0 else axis, p


@evaluation("LpNormalization")
def _evaluate_lp_norm(node: Node, arrays: list) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    axis, p = _lp_axis(node, x.ndim)
    norm = np.linalg.norm(x.astype(np.float64), ord=p, axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        return [(x / norm).astype(x.dtype)]


@lowering("LpNormalization")
def _lower_lp_norm(node: Node, inputs: list, builder) -> list:
    """x divided by its L1 or L2 norm along the axis: ReduceL1 / ReduceL2 (ops/reduce.py)
    with keepdims, then one broadcasting division."""
    from macecl.ops.reduce import lower_composite

    x = inputs[0]
    try:
        axis, p = _lp_axis(node, x.rank)
    except ValueError as error:
        raise builder.fail(str(error)) from None
    reduce = Node("ReduceL2" if p == 2 else "ReduceL1", node.name, node.inputs, node.outputs,
                  {"axes": [axis], "keepdims": 1})
    (norm,) = lower_composite(reduce, [x], builder)
    return [lower_binary(builder, OPS["Div"], x, norm)]
