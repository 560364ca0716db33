"""Constant scales and shifts folded into the convolution's weights and bias.

PP-OCRv4's backbones (PP-LCNetV3, PP-HGNet) follow almost every convolution with a
"learnable affine block": a Mul and an Add by one constant each, before and after the
activation: Conv -> Mul(s) -> Add(b) -> HardSwish -> Mul(s') -> Add(b') -> Conv. Run as
written, that is four full passes over the tensor beside each convolution (the Mul and Add
were 20% of PP-OCR det's kernel time on PoCL, and they keep the HardSwish from fusing).

- :func:`fold_affine_into_producer`: an inference BatchNormalization, or a Mul / Add / Sub by
  a constant per output channel or a scalar, after a Conv or ConvTranspose (of one group)
  that nothing else reads and that has no activation yet, becomes part of the convolution:
  W' = s W, B' = s B + b. The activation after it then fuses as usual. In any order and
  number: PP-OCR det's head has ConvTranspose -> Add(bias) -> BatchNormalization -> Relu.
- :func:`fold_affine_into_consumer`: a Mul / Add by a scalar constant whose only reader is
  a Conv without padding becomes part of that Conv: Conv(s x + b) = (s W) x + (B + b sum W).
  Padding would make this wrong at the borders (the padded zeros are not shifted by b), so
  a padded Conv is left alone; so is a per-channel constant (a scalar is what the models
  have, and it needs no care for groups).

Both work in float64 and store float32; the result differs from the unfolded graph by
rounding only.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Graph, Node, only_reader

FOLDABLE_INTO_PRODUCER = {"Mul", "Add", "Sub", "BatchNormalization"}
FOLDABLE_INTO_CONSUMER = {"Mul", "Add"}


def _output_axis(conv: Node) -> int:
    """The weight's axis of output channels: 0 for Conv, 1 for a one-group ConvTranspose."""
    return 1 if conv.op == "ConvTranspose" else 0


def _weights(graph: Graph, conv: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """(weight, bias) of a Conv whose both are constants (a missing bias is zeros), else None."""
    weight = graph.constants.get(conv.inputs[1]) if len(conv.inputs) > 1 else None
    if weight is None or weight.dtype != np.float32 or weight.ndim < 3:
        return None
    bias_name = conv.inputs[2] if len(conv.inputs) > 2 else ""
    if not bias_name:
        return weight, np.zeros(weight.shape[_output_axis(conv)], np.float32)
    bias = graph.constants.get(bias_name)
    return None if bias is None else (weight, bias)


def _set_weights(graph: Graph, conv: Node, weight: np.ndarray, bias: np.ndarray, tag: str) -> None:
    weight_name, bias_name = f"{conv.name}/{tag}_weight", f"{conv.name}/{tag}_bias"
    graph.constants[weight_name] = weight.astype(np.float32)
    graph.constants[bias_name] = bias.astype(np.float32)
    conv.inputs = [conv.inputs[0], weight_name, bias_name]


def _constant_input(graph: Graph, node: Node, data: str) -> np.ndarray | None:
    """The constant operand of a two-input ``node`` whose other operand is ``data``."""
    if len(node.inputs) != 2 or data not in node.inputs or node.inputs[0] == node.inputs[1]:
        return None
    other = node.inputs[1] if node.inputs[0] == data else node.inputs[0]
    if node.op == "Sub" and node.inputs[0] != data:
        return None  # b - Conv(x) would negate the weights: left as it is
    value = graph.constants.get(other)
    if value is None or value.dtype != np.float32:
        return None
    return value


def _per_channel(value: np.ndarray, rank: int, channels: int) -> np.ndarray | None:
    """``value`` as one number per channel of an [N, C, ...] tensor of ``rank``, if it
    broadcasts that way without widening the tensor; else None."""
    if value.ndim > rank:
        return None
    padded = (1,) * (rank - value.ndim) + value.shape
    if padded[0] != 1 or any(d != 1 for d in padded[2:]) or padded[1] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1).astype(np.float64), (channels,))


def fold_affine_into_producer(graph: Graph) -> None:
    """Conv -> Mul / Add / Sub by a per-channel or scalar constant: one Conv."""
    while _sweep(graph, _fold_into_producer):
        pass


def _sweep(graph: Graph, fold) -> bool:
    """Try ``fold(graph, node, producers, consumers, outputs)`` on every node once, the maps
    built once per sweep; a node a fold changed is left for the next sweep. True if any did."""
    producers, consumers, outputs = graph.producers(), graph.consumers(), graph.output_names()
    touched: set[int] = set()
    for node in list(graph.nodes):
        if id(node) in touched:
            continue
        changed = fold(graph, node, producers, consumers, outputs)
        if changed:
            touched.update(id(n) for n in changed)
    return bool(touched)


def _fold_into_producer(graph: Graph, node: Node, producers, consumers, outputs):
    if node.op not in FOLDABLE_INTO_PRODUCER or len([o for o in node.outputs if o]) != 1:
        return None
    conv = next((producers[name] for name in node.inputs[:2]
                 if name in producers and producers[name].op in ("Conv", "ConvTranspose")), None)
    if conv is None or "activation" in conv.attrs or len(conv.inputs) > 3 \
            or (conv.op == "ConvTranspose" and int(conv.attrs.get("group", 1)) != 1) \
            or only_reader(conv.outputs[0], consumers, outputs) is not node:
        return None
    found = _weights(graph, conv)
    if found is None:
        return None
    weight, bias = found
    affine = _affine(graph, node, conv.outputs[0], weight.ndim, weight.shape[_output_axis(conv)])
    if affine is None:
        return None
    scale, shift = affine
    shape = [1] * weight.ndim
    shape[_output_axis(conv)] = -1
    weight = weight.astype(np.float64) * scale.reshape(shape)
    bias = bias.astype(np.float64) * scale + shift
    _set_weights(graph, conv, weight, bias, "affine")
    conv.outputs = [node.outputs[0]]
    graph.nodes.remove(node)
    return [node, conv]


def _affine(graph: Graph, node: Node, data: str, rank: int, channels: int
            ) -> tuple[np.ndarray, np.ndarray] | None:
    """``node`` applied to ``data`` as (scale, shift) per channel, float64, if it is one."""
    ones, zeros = np.ones(channels), np.zeros(channels)
    if node.op == "BatchNormalization":
        params = [graph.constants.get(name) for name in node.inputs[1:5]]
        if node.inputs[0] != data or len(params) != 4 or any(
                p is None or p.shape != (channels,) for p in params):
            return None
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        factor = gamma / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
        return factor, beta - mean * factor
    constant = _constant_input(graph, node, data)
    values = None if constant is None else _per_channel(constant, rank, channels)
    if values is None:
        return None
    if node.op == "Mul":
        return values, zeros
    return ones, values if node.op == "Add" else -values


def _unpadded(conv: Node) -> bool:
    auto_pad = conv.attrs.get("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    return auto_pad in ("NOTSET", "VALID") and not any(conv.attrs.get("pads") or [])


def fold_affine_into_consumer(graph: Graph) -> None:
    """Mul / Add by a scalar constant -> Conv without padding: one Conv."""
    while _sweep(graph, _fold_into_consumer):
        pass


def _fold_into_consumer(graph: Graph, node: Node, producers, consumers, outputs):
    if node.op not in FOLDABLE_INTO_CONSUMER or len(node.outputs) != 1:
        return None
    conv = only_reader(node.outputs[0], consumers, outputs)
    if conv is None or conv.op != "Conv" or conv.inputs[0] != node.outputs[0] \
            or "activation" in conv.attrs or len(conv.inputs) > 3 or not _unpadded(conv):
        return None
    found = _weights(graph, conv)
    data = next((name for name in node.inputs if name not in graph.constants), None)
    constant = None if data is None else _constant_input(graph, node, data)
    if found is None or constant is None or constant.size != 1 \
            or constant.ndim > found[0].ndim:  # a constant of higher rank widens x's shape
        return None
    value = float(constant.reshape(()))
    weight, bias = (a.astype(np.float64) for a in found)
    if node.op == "Mul":
        weight = weight * value
    else:
        bias = bias + value * weight.sum(axis=tuple(range(1, weight.ndim)))
    _set_weights(graph, conv, weight, bias, "input_affine")
    conv.inputs[0] = data
    graph.nodes.remove(node)
    return [node, conv]
