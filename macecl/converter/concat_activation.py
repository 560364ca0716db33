"""An activation after a Concat, moved into the producers of the Concat's inputs.

An elementwise activation commutes with a concatenation: ``act(Concat(a, b))`` is
``Concat(act(a), act(b))``. After the move the activation costs no launch of its own: it
runs in the epilogue of each input's convolution or Gemm, and a Relu is dropped outright
for an input already known to be non-negative (the output of a Relu, or a pooling of one).
ShuffleNet v1 has three such blocks, ``Relu(Concat(grouped Conv, AveragePool(relu'd x)))``
at each stage's first unit; each Relu was a launch of 8 to 25 us of kernel time on PoCL,
and without them the model ran in 0.95x the time (bench/compare_trees.py --rounds 30).

The pattern is left whole unless every input can take the activation, the Concat's output
is read by the activation alone (and is not a graph output), and each producer that takes
it is read by the Concat alone.
"""

from __future__ import annotations

from macecl.graph.ir import Graph, Node, only_reader
from macecl.ops.activations import CODES, FUSABLE, FUSE_INTO, constant_activation

RELU = CODES["Relu"]
# Pools keep the sign of what they pool: a max or mean of non-negative values is one.
SIGN_KEEPING = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Concat"}
NON_NEGATIVE_CODES = {RELU, CODES["Sigmoid"], CODES["HardSigmoid"]}
SEARCH_DEPTH = 8  # producers walked back through pools and Concats


def move_activation_before_concat(graph: Graph) -> None:
    """Relu / Clip / ... (Concat(x1, x2, ...)): each xi's producer applies it instead, or,
    for a Relu, xi is already non-negative; the Concat then writes the activation's output."""
    producers, consumers, outputs = graph.producers(), graph.consumers(), graph.output_names()
    removed: set[int] = set()
    for act in graph.nodes:
        if act.op not in FUSABLE:
            continue
        concat = producers.get(act.inputs[0])
        activation = constant_activation(act, graph.constants)
        if concat is None or concat.op != "Concat" or activation is None \
                or only_reader(act.inputs[0], consumers, outputs) is not act:
            continue
        takers = _producers_taking(graph, concat, activation, producers, consumers, outputs)
        if takers is None:
            continue
        for producer in takers:
            producer.attrs["activation"] = list(activation)
        concat.outputs = list(act.outputs)
        producers[act.outputs[0]] = concat
        removed.add(id(act))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]


def _producers_taking(graph: Graph, concat: Node, activation: tuple, producers, consumers,
                      outputs) -> list[Node] | None:
    """The producers that must apply ``activation`` for the Concat to skip it, or None
    if some input can neither take it nor do without it."""
    takers = []
    for name in concat.inputs:
        if activation[0] == RELU and _non_negative(graph, name, producers, SEARCH_DEPTH):
            continue
        producer = producers.get(name)
        if producer is None or producer.op not in FUSE_INTO or "activation" in producer.attrs \
                or only_reader(name, consumers, outputs) is not concat:
            return None
        takers.append(producer)
    return takers


def _non_negative(graph: Graph, name: str, producers: dict[str, Node], depth: int) -> bool:
    """Whether tensor ``name`` is known to hold no negative value."""
    if name in graph.constants:
        return bool((graph.constants[name] >= 0).all())
    node = producers.get(name)
    if node is None or depth == 0:
        return False
    if node.op == "Relu":
        return True
    code, low = (node.attrs.get("activation") or (0, 0.0, 0.0))[:2]
    if code in NON_NEGATIVE_CODES or (code == CODES["Clip"] and low >= 0):
        return True
    if node.op in SIGN_KEEPING:
        data = node.inputs if node.op == "Concat" else node.inputs[:1]
        return all(_non_negative(graph, n, producers, depth - 1) for n in data)
    return False
