"""Activations that exporters spell as several nodes, made one activation the kernels fuse.

Each node an exported graph keeps is one kernel launch, and on PoCL's CPU device a launch
costs more than these nodes' arithmetic (bench/kernel_profile.py: PP-OCR rec's 191 launches
left 2 ms between kernels on an idle machine, up to 9 ms on a loaded one).

- :func:`rewrite_swish`: ``x * Sigmoid(x)`` and ``x * Sigmoid(x * a)`` (SiLU, Swish as
  PaddlePaddle exports it: PP-OCR rec's SVTR neck has seven) become ONNX's ``Swish(alpha)``,
  which then fuses into the Conv or MatMul before it like any activation.
- :func:`rewrite_gelu`: ``x * 0.5 * (1 + Erf(x / sqrt(2)))`` in the orders exporters write
  it (PyTorch's TorchScript exporter before opset 20: ConvNeXt's and Swin's MLPs) becomes
  ONNX's ``Gelu``, fused like any activation: five launches become none.
- :func:`fold_scalar_affine_into_activation`: a HardSwish fused into its producer, then a
  Mul and / or Add / Sub by scalar constants (PP-OCRv4's "learnable affine block", where the
  next convolution is padded and affine.py cannot fold it forward): the fused activation
  becomes ``a * HardSwish(x) + b`` (UNARY_HARD_SWISH_AFFINE). PP-OCR rec has 21 such pairs.

Both leave a pattern alone when an intermediate value is read elsewhere or is an output.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Graph, Node, only_reader
from macecl.ops.activations import CODES, HARD_SWISH_AFFINE

HARD_SWISH = CODES["HardSwish"]


def _scalar_operand(graph: Graph, node: Node, data: str, rank: int | None) -> float | None:
    """The value of the one-element float constant ``node`` combines with ``data``, if that
    constant cannot widen ``data``'s shape (its rank is at most ``rank``, or 1 if unknown)."""
    if len(node.inputs) != 2 or node.inputs.count(data) != 1:
        return None
    other = node.inputs[1] if node.inputs[0] == data else node.inputs[0]
    value = graph.constants.get(other)
    if value is None or value.size != 1 or value.dtype != np.float32 \
            or value.ndim > (1 if rank is None else rank):
        return None
    return float(value.reshape(()))


def rewrite_swish(graph: Graph) -> None:
    """Mul(x, Sigmoid(x)) or Mul(x, Sigmoid(Mul(x, a))), inputs in either order: Swish(x)."""
    maps = graph.producers(), graph.consumers(), graph.output_names()
    for mul in list(graph.nodes):
        if mul.op != "Mul" or len(mul.inputs) != 2 or mul.inputs[0] == mul.inputs[1]:
            continue
        for x, gate_name in (mul.inputs, mul.inputs[::-1]):
            found = _swish_gate(graph, maps, gate_name, x)
            if found is None:
                continue
            alpha, chain = found
            mul.op, mul.inputs, mul.attrs = "Swish", [x], {"alpha": alpha}
            dropped = {id(n) for n in chain}
            graph.nodes = [n for n in graph.nodes if id(n) not in dropped]
            maps = graph.producers(), graph.consumers(), graph.output_names()
            break


def _swish_gate(graph: Graph, maps, gate_name: str, x: str):
    """(alpha, the gate's nodes) if ``gate_name`` is Sigmoid(x) or Sigmoid(x * alpha), each
    read only by the next."""
    producers, consumers, outputs = maps
    sigmoid = producers.get(gate_name)
    if sigmoid is None or sigmoid.op != "Sigmoid" \
            or only_reader(gate_name, consumers, outputs) is None:
        return None
    if sigmoid.inputs[0] == x:
        return 1.0, [sigmoid]
    scale = producers.get(sigmoid.inputs[0])
    if scale is None or scale.op != "Mul" \
            or only_reader(scale.outputs[0], consumers, outputs) is not sigmoid:
        return None
    alpha = _scalar_operand(graph, scale, x, None)
    return None if alpha is None else (alpha, [scale, sigmoid])


def rewrite_gelu(graph: Graph) -> None:
    """Erf(x / sqrt(2)) (or x * 1/sqrt(2)), then + 1, then times x and 0.5 (two Muls in
    either order, or one by a Mul(x, 0.5) computed beside it): Gelu(x)."""
    maps = graph.producers(), graph.consumers(), graph.output_names()
    for erf in list(graph.nodes):
        if erf.op != "Erf":
            continue
        found = _gelu_chain(graph, maps, erf)
        if found is None:
            continue
        x, last, chain = found
        last.op, last.inputs, last.attrs = "Gelu", [x], {}
        dropped = {id(n) for n in chain}
        graph.nodes = [n for n in graph.nodes if id(n) not in dropped]
        maps = graph.producers(), graph.consumers(), graph.output_names()


def _gelu_chain(graph: Graph, maps, erf: Node):
    """(x, the pattern's last Mul, its other nodes) if ``erf`` starts a Gelu, else None."""
    producers, consumers, outputs = maps
    scale = producers.get(erf.inputs[0])
    if scale is None or only_reader(scale.outputs[0], consumers, outputs) is not erf:
        return None
    x = next((name for name in scale.inputs if graph.constants.get(name) is None), None)
    factor = None if x is None else _scalar_operand(graph, scale, x, None)
    if factor is None or not (
            (scale.op == "Div" and scale.inputs[0] == x and np.isclose(factor, np.sqrt(2)))
            or (scale.op == "Mul" and np.isclose(factor, np.sqrt(0.5)))):
        return None
    plus = only_reader(erf.outputs[0], consumers, outputs)
    if plus is None or plus.op != "Add" or _scalar_operand(graph, plus, erf.outputs[0], None) != 1.0:
        return None
    chain, value, factors = [scale, erf, plus], plus.outputs[0], []
    for _ in range(2):  # the Muls by x and by 0.5, or the one by Mul(x, 0.5)
        mul = only_reader(value, consumers, outputs)
        if mul is None or mul.op != "Mul" or mul.inputs.count(value) != 1:
            break
        factors.append(mul.inputs[1] if mul.inputs[0] == value else mul.inputs[0])
        chain.append(mul)
        value = mul.outputs[0]
        if _is_half_of(graph, factors, x, producers):
            return x, chain[-1], chain[:-1]
    return None


def _is_half_of(graph: Graph, factors: list[str], x: str, producers) -> bool:
    """Whether the product of the tensors ``factors`` is x * 0.5."""
    if len(factors) == 2 and factors.count(x) == 1:
        half = graph.constants.get(factors[0] if factors[1] == x else factors[1])
        return half is not None and half.size == 1 and half.ndim <= 1 \
            and float(half.reshape(())) == 0.5
    if len(factors) == 1:
        half = producers.get(factors[0])
        return half is not None and half.op == "Mul" and half.inputs.count(x) == 1 \
            and _scalar_operand(graph, half, x, None) == 0.5
    return False


def fold_scalar_affine_into_activation(graph: Graph) -> None:
    """An op with HardSwish fused, then Mul / Add / Sub(x - c) by scalars: one fused
    activation ``a * HardSwish(x) + b``; runs after the activations are fused."""
    # The maps stay true as nodes go: a removed node's output name passes to its producer.
    consumers, outputs = graph.consumers(), graph.output_names()
    removed: set[int] = set()
    for node in graph.nodes:
        while node.attrs.get("activation", (0,))[0] in (HARD_SWISH, HARD_SWISH_AFFINE):
            code, scale, shift = node.attrs["activation"]
            if code == HARD_SWISH:
                scale, shift = 1.0, 0.0
            after = only_reader(node.outputs[0], consumers, outputs)
            affine = None if after is None else _as_affine(graph, after, node.outputs[0],
                                                           _output_rank(graph, node))
            if affine is None:
                break
            s, b = affine
            node.attrs["activation"] = [HARD_SWISH_AFFINE, scale * s, shift * s + b]
            node.outputs = list(after.outputs)
            removed.add(id(after))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]


def _as_affine(graph: Graph, node: Node, data: str, rank: int | None
               ) -> tuple[float, float] | None:
    """``node`` applied to ``data`` as (scale, shift) if it is a Mul, Add or ``data - c`` by
    a scalar constant."""
    if node.op not in ("Mul", "Add", "Sub") or len([o for o in node.outputs if o]) != 1:
        return None
    if node.op == "Sub" and node.inputs[0] != data:
        return None
    value = _scalar_operand(graph, node, data, rank)
    if value is None:
        return None
    return {"Mul": (value, 0.0), "Add": (1.0, value), "Sub": (1.0, -value)}[node.op]


def _output_rank(graph: Graph, node: Node) -> int | None:
    """The output rank of a Conv or ConvTranspose (its weight's), else unknown."""
    if node.op in ("Conv", "ConvTranspose") and len(node.inputs) > 1:
        weight = graph.constants.get(node.inputs[1])
        return None if weight is None else weight.ndim
    return None
