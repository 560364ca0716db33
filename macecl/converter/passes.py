"""Graph rewrites of the converter. Each pass takes a Graph and changes it in place.

Order matters and is fixed in :func:`optimize`: folding first (it turns the exporters'
Constant / Shape / Gather / Cast / Unsqueeze chains into constants, which the later patterns
need to see), then the filter taps that only read padding out of a Conv (padded_taps.py),
then BatchNormalization and constant scales and shifts into the convolution before or after
them (affine.py), then HardSwish, Swish and Gelu patterns, then LayerNorm chains
(layer_norm.py), then residual Adds into the convolution before them, then bias Adds into
the MatMul before them (matmul_bias.py), then activations into their producers (after
the Add, as ResNet's Add -> Relu has it), then activations after a Concat into the producers
of its inputs (concat_activation.py), then scalar affines after a fused HardSwish
(activation_patterns.py), then squeeze-and-excitation blocks, whose two convolutions carry
their activations by then (squeeze_excite.py), then channel shuffles into the depthwise
convolutions after them (channel_shuffle.py), then whatever no longer feeds an output.
"""

from __future__ import annotations

import logging

import numpy as np

from macecl.converter.activation_patterns import (
    fold_scalar_affine_into_activation,
    rewrite_gelu,
    rewrite_swish,
)
from macecl.converter.affine import fold_affine_into_consumer, fold_affine_into_producer
from macecl.converter.channel_shuffle import fuse_channel_shuffle
from macecl.converter.concat_activation import move_activation_before_concat
from macecl.converter.layer_norm import rewrite_layer_norm
from macecl.converter.matmul_bias import fold_bias_into_matmul
from macecl.converter.padded_taps import crop_padded_taps
from macecl.converter.squeeze_excite import fuse_squeeze_excite
from macecl.errors import UnsupportedModelError
from macecl.graph.ir import Dim, Graph, Node, only_reader
from macecl.ops import REGISTRY
from macecl.ops.activations import FUSABLE, FUSE_INTO, activation_of, constant_activation
from macecl.ops.registry import unsupported_reason

log = logging.getLogger(__name__)

FOLD_LIMIT = 1 << 24  # elements: folding never writes a constant larger than this
PASS_THROUGH = {"Identity", "Dropout"}


def optimize(graph: Graph, value_shapes: dict[str, list[Dim]] | None = None) -> Graph:
    remove_pass_through(graph)
    fold_constants(graph, value_shapes or {})
    crop_padded_taps(graph, value_shapes or {})
    fold_affine_into_producer(graph)
    fold_affine_into_consumer(graph)
    rewrite_hard_swish(graph)
    rewrite_swish(graph)
    rewrite_gelu(graph)
    rewrite_layer_norm(graph, value_shapes or {})
    fuse_residual_add(graph, value_shapes or {})
    fold_bias_into_matmul(graph, value_shapes or {})
    fuse_activations(graph)
    move_activation_before_concat(graph)
    fold_scalar_affine_into_activation(graph)
    fuse_squeeze_excite(graph)
    fuse_channel_shuffle(graph, value_shapes or {})
    remove_dead(graph)
    check_supported(graph)
    return graph


def _rename_input(graph: Graph, old: str, new: str) -> None:
    for node in graph.nodes:
        node.inputs = [new if name == old else name for name in node.inputs]


def _single_consumer(graph: Graph, name: str) -> Node | None:
    """``only_reader`` on the graph as it is now (the passes here change it as they go)."""
    return only_reader(name, graph.consumers(), graph.output_names())


def remove_pass_through(graph: Graph) -> None:
    """Identity and inference-time Dropout: readers take the input directly."""
    outputs = graph.output_names()
    read = graph.consumers()
    kept = []
    for node in graph.nodes:
        extra_used = [o for o in node.outputs[1:] if o and (o in read or o in outputs)]
        training = node.inputs[2:3] and node.inputs[2] and not (
            node.inputs[2] in graph.constants and not graph.constants[node.inputs[2]].any())
        if node.op in PASS_THROUGH and not extra_used and not training \
                and node.outputs[0] not in outputs:
            _rename_input(graph, node.outputs[0], node.inputs[0])
        else:
            kept.append(node)
    graph.nodes = kept


def fold_constants(graph: Graph, value_shapes: dict[str, list[Dim]]) -> None:
    """Evaluate on the host every node whose inputs are all constants (and Shape of static shapes)."""
    known = {spec.name: spec.shape for spec in graph.inputs}
    known.update(value_shapes)
    kept = []
    for node in graph.nodes:
        definition = REGISTRY.get(node.op)
        values = [graph.constants.get(name) if name else None for name in node.inputs]
        result = None
        if node.op == "Shape" and node.inputs[0] not in graph.constants:
            dims = known.get(node.inputs[0])
            if dims and all(isinstance(d, int) for d in dims):
                start, end = node.attrs.get("start", 0), node.attrs.get("end")
                result = [np.asarray(dims, dtype=np.int64)[start:end]]
        elif (definition is not None and definition.evaluate is not None
              and all(v is not None for v, name in zip(values, node.inputs) if name)):
            try:
                result = definition.evaluate(node, values)
            except Exception as error:  # left for the engine, which reports it in context
                log.debug("not folding %s: %s", node.describe(), error)
            if result is not None and any(np.size(r) > FOLD_LIMIT for r in result):
                result = None
        if result is None:
            kept.append(node)
            continue
        for name, array in zip(node.outputs, result):
            if name:
                graph.constants[name] = np.asarray(array)
    graph.nodes = kept


def _scalar(graph: Graph, name: str) -> float | None:
    array = graph.constants.get(name)
    if array is None or array.size != 1:
        return None
    return float(array.reshape(()))


def _constant_operand(graph: Graph, node: Node, value: float) -> str | None:
    """The other input of a binary ``node`` whose one constant input equals ``value``."""
    if len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if _scalar(graph, b) == value:
        return a
    if node.op in ("Add", "Mul") and _scalar(graph, a) == value:
        return b
    return None


def rewrite_hard_swish(graph: Graph) -> None:
    """x * HardSigmoid(x) and x * Clip(x + 3, 0, 6) / 6 (in either order) become HardSwish(x)."""
    producers = graph.producers()
    for mul in list(graph.nodes):
        if mul.op != "Mul" or len(mul.inputs) != 2:
            continue
        for x, gate_name in (mul.inputs, mul.inputs[::-1]):
            gate = producers.get(gate_name)
            found = _hard_swish_gate(graph, producers, gate, x)
            if found is None:
                continue
            divide_after, chain = found
            last = mul
            if divide_after:
                last = _single_consumer(graph, mul.outputs[0])
                if last is None or last.op != "Div" or _constant_operand(graph, last, 6.0) != mul.outputs[0]:
                    continue
            if any(_single_consumer(graph, n.outputs[0]) is None for n in chain):
                continue
            mul.op, mul.inputs, mul.outputs, mul.attrs = "HardSwish", [x], list(last.outputs), {}
            dropped = {id(n) for n in chain} | ({id(last)} if last is not mul else set())
            graph.nodes = [n for n in graph.nodes if id(n) not in dropped]
            producers = graph.producers()
            break


def _hard_swish_gate(graph, producers, gate: Node | None, x: str):
    """(whether the /6 comes after the Mul, the nodes of the gate) if ``gate`` is x's hard sigmoid."""
    if gate is None:
        return None
    if gate.op == "HardSigmoid" and gate.inputs[0] == x and \
            np.isclose(gate.attrs.get("alpha", 0.2), 1 / 6) and np.isclose(gate.attrs.get("beta", 0.5), 0.5):
        return False, [gate]
    divide = None
    if gate.op == "Div" and _constant_operand(graph, gate, 6.0) is not None:
        divide, gate = gate, producers.get(gate.inputs[0])
    if gate is None or gate.op not in ("Clip", "Relu6"):
        return None
    if gate.op == "Clip":
        bounds = [graph.constants.get(n) if n else None for n in gate.inputs[1:]]
        if activation_of(gate, bounds)[1:] != (0.0, 6.0):
            return None
    add = producers.get(gate.inputs[0])
    if add is None or add.op != "Add" or _constant_operand(graph, add, 3.0) != x:
        return None
    chain = [add, gate] + ([divide] if divide else [])
    return divide is None, chain


def fuse_residual_add(graph: Graph, value_shapes: dict[str, list[Dim]]) -> None:
    """Add(Conv(x), y): y becomes the Conv's fourth input, added in its kernel's epilogue.
    A two-input Sum is the same Add (older exporters, ResNet-50 among them, write Sum). An
    opset-6 Add broadcasting along an axis of a computed tensor stays, for check_supported.

    Only where the Conv's output feeds that Add alone, carries no activation yet (the
    activation must come after the Add) and is not known to differ in shape from y (shape
    inference may not know; the lowering then adds a broadcasting y after the convolution).
    The Conv moves to the Add's place in the node order, after y's producer.
    """
    producers = graph.producers()
    for add in list(graph.nodes):
        if add.op not in ("Add", "Sum") or len(add.inputs) != 2 \
                or add.inputs[0] == add.inputs[1] or "legacy_axis" in add.attrs:
            continue
        for conv_output, other in (add.inputs, add.inputs[::-1]):
            conv = producers.get(conv_output)
            if conv is None or conv.op != "Conv" or "activation" in conv.attrs \
                    or len(conv.inputs) > 3 or _single_consumer(graph, conv_output) is not add:
                continue
            if not _same_or_unknown(value_shapes.get(conv_output), value_shapes.get(other),
                                    graph.constants.get(other)):
                continue
            bias = conv.inputs[2] if len(conv.inputs) > 2 else ""
            conv.inputs = [conv.inputs[0], conv.inputs[1], bias, other]
            conv.outputs = list(add.outputs)
            graph.nodes = [n for n in graph.nodes if n is not conv]
            graph.nodes[graph.nodes.index(add)] = conv
            producers = graph.producers()
            break


def _same_or_unknown(conv_shape, other_shape, constant) -> bool:
    """False when y's shape is known to differ from the Conv output's (y would broadcast,
    or widen the output). An empty list is an unknown shape: a Conv output has rank 3 or 4."""
    if constant is not None:
        other_shape = list(constant.shape)
        if len(other_shape) < 3:  # a scalar or a per-channel vector: a broadcast, surely
            return False
    if not conv_shape or not other_shape:
        return True
    if len(conv_shape) != len(other_shape):
        return False
    return all(a == b for a, b in zip(conv_shape, other_shape)
               if isinstance(a, int) and isinstance(b, int))


def fuse_activations(graph: Graph) -> None:
    """Conv / ConvTranspose / Gemm / MatMul followed by an activation: the activation runs in
    their kernel (a MatMul over a batch of B matrices applies it in a launch of its own)."""
    producers = graph.producers()
    removed = set()
    for act in graph.nodes:
        if act.op not in FUSABLE:
            continue
        producer = producers.get(act.inputs[0])
        if producer is None or producer.op not in FUSE_INTO or "activation" in producer.attrs:
            continue
        if _single_consumer(graph, producer.outputs[0]) is not act:
            continue
        activation = constant_activation(act, graph.constants)
        if activation is None:
            continue  # Clip with bounds computed at run time
        producer.attrs["activation"] = list(activation)
        producer.outputs = list(act.outputs)
        producers = graph.producers()
        removed.add(id(act))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]


def remove_dead(graph: Graph) -> None:
    """Drop nodes and constants nothing reads (and which are not graph outputs)."""
    needed = graph.output_names()
    kept = []
    for node in reversed(graph.nodes):
        if any(o in needed for o in node.outputs if o):
            kept.append(node)
            needed.update(n for n in node.inputs if n)
    graph.nodes = kept[::-1]
    graph.constants = {k: v for k, v in graph.constants.items() if k in needed}


def check_supported(graph: Graph) -> None:
    """Every operator (and attribute case) the model uses must be implemented: else one error
    listing them all, with the nodes that use each."""
    problems: dict[str, list[str]] = {}
    for node in graph.nodes:
        reason = unsupported_reason(node)
        if "legacy_axis" in node.attrs:
            reason = f"{node.op} with opset-6 broadcasting along an axis of a computed tensor"
        if reason is not None:
            problems.setdefault(reason, []).append(node.name)
    for spec in graph.inputs:
        if spec.dtype != "float32":
            problems.setdefault(f"input of type {spec.dtype} (macecl runs float32 inputs)",
                                []).append(spec.name)
    if problems:
        raise UnsupportedModelError(problems)

