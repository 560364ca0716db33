"""Squeeze-and-excitation blocks made one SqueezeExcite node.

    m = GlobalAveragePool(x)          h = Conv 1x1(m) [+ activation, fused]
    s = Conv 1x1(h) [+ activation]    y = Mul(x, s)   (s broadcast over x's spatial dims)

is four launches, three of them on a few hundred numbers, and on PoCL's CPU device a launch
costs more than that arithmetic (bench/kernel_profile.py: PP-OCR cls's 75 launches left
about half its wall time between kernels; it has 9 such blocks, det 12, rec 2). The
lowering (ops/squeeze_excite.py) runs the block in two launches: the channel means, then
one kernel that computes both small layers and scales x's planes.

The pattern runs after the activations are fused into the convolutions, so either layer may
carry any fused activation; bias or not; the Mul's operands in either order. It is taken
only whole: each intermediate read by the next node alone and not a graph output, both
layers 1x1 (all-ones kernels, no padding, one group) with constant float weights and
biases, C -> any hidden width -> C channels, and neither layer adding a residual. The fused
node takes the Mul's place in the node order.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Graph, Node, only_reader

NO_ACTIVATION = [0, 0.0, 0.0]


def fuse_squeeze_excite(graph: Graph) -> None:
    """Each whole block above: SqueezeExcite(x, W1, B1, W2, B2), an omitted bias as ""."""
    consumers, outputs = graph.consumers(), graph.output_names()
    removed: set[int] = set()
    for pool in graph.nodes:
        if pool.op != "GlobalAveragePool":
            continue
        found = _match(graph, pool, consumers, outputs)
        if found is None:
            continue
        squeeze, excite, mul = found
        mul.op, mul.name = "SqueezeExcite", f"{mul.name}/squeeze_excite"
        mul.inputs = [pool.inputs[0], *_weight_and_bias(squeeze), *_weight_and_bias(excite)]
        mul.attrs = {"hidden_activation": list(squeeze.attrs.get("activation", NO_ACTIVATION)),
                     "gate_activation": list(excite.attrs.get("activation", NO_ACTIVATION))}
        removed.update((id(pool), id(squeeze), id(excite)))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]


def _match(graph: Graph, pool: Node, consumers, outputs) -> tuple[Node, Node, Node] | None:
    """(the squeeze Conv, the excite Conv, the Mul) if ``pool`` starts a whole block."""
    x = pool.inputs[0]
    squeeze = only_reader(pool.outputs[0], consumers, outputs)
    w1 = _pointwise_weight(graph, squeeze)
    excite = None if w1 is None else only_reader(squeeze.outputs[0], consumers, outputs)
    w2 = _pointwise_weight(graph, excite)
    if w2 is None or w2.ndim != w1.ndim or w2.shape[:2] != (w1.shape[1], w1.shape[0]):
        return None
    mul = only_reader(excite.outputs[0], consumers, outputs)
    if mul is None or mul.op != "Mul" or sorted(mul.inputs) != sorted([x, excite.outputs[0]]) \
            or x == excite.outputs[0]:
        return None
    return squeeze, excite, mul


def _pointwise_weight(graph: Graph, conv: Node | None) -> np.ndarray | None:
    """The weight of ``conv`` if it is a 1x1, one-group, unpadded Conv with constant float
    weight (and bias, if any) and no residual input; else None."""
    if conv is None or conv.op != "Conv" or not 2 <= len(conv.inputs) <= 3:
        return None
    weight = graph.constants.get(conv.inputs[1])
    bias = conv.inputs[2] if len(conv.inputs) > 2 else ""
    if weight is None or weight.dtype != np.float32 or weight.ndim < 3 \
            or any(d != 1 for d in weight.shape[2:]):
        return None
    if bias and (bias not in graph.constants or graph.constants[bias].dtype != np.float32
                 or graph.constants[bias].size != weight.shape[0]):
        return None
    if int(conv.attrs.get("group", 1)) != 1 or any(int(p) for p in conv.attrs.get("pads", [])) \
            or any(int(k) != 1 for k in conv.attrs.get("kernel_shape", [])):
        return None
    return weight


def _weight_and_bias(conv: Node) -> list[str]:
    return [conv.inputs[1], conv.inputs[2] if len(conv.inputs) > 2 else ""]
