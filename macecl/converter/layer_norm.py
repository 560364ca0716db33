"""LayerNorm as exporters before ONNX 17 spell it, made one LayerNormalization node.

    mean = ReduceMean(x, trailing axes)      d = x - mean
    var = ReduceMean(d ** 2 or d * d)        y = d / Sqrt(var + eps) [* gamma] [+ beta]

is nine nodes, so nine launches each a pass over the tensor (PP-OCR rec's SVTR neck has
five: 45 of its 191 launches). The lowering's ``layer_norm`` kernel does it in one. The
pattern is taken only whole: every intermediate read by the next node alone (``d`` by the
square and the Div), the two means over the same trailing axes with keepdims, eps, gamma
and beta constants, gamma and beta varying along the normalized axes only.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Dim, Graph, Node, only_reader


def rewrite_layer_norm(graph: Graph, value_shapes: dict[str, list[Dim]]) -> None:
    """Each whole pattern above: one LayerNormalization(x, gamma, beta) in the first mean's
    place (x is known there; gamma and beta are constants)."""
    shapes = {spec.name: spec.shape for spec in graph.inputs}
    shapes.update(value_shapes)
    maps = graph.producers(), graph.consumers(), graph.output_names()
    for mean in list(graph.nodes):
        if mean.op != "ReduceMean":
            continue
        found = _match(graph, mean, maps[1], maps[2], shapes.get(mean.inputs[0]) or None)
        if found is None:
            continue
        axis, epsilon, scale, bias, chain = found
        if scale is None:
            scale = f"{mean.name}/layer_norm_scale"
            graph.constants[scale] = np.ones(1, np.float32)
        fused = Node("LayerNormalization", f"{mean.name}/layer_norm",
                     [mean.inputs[0], scale, *([bias] if bias else [])], list(chain[-1].outputs),
                     {"axis": axis, "epsilon": epsilon})
        dropped = {id(n) for n in chain[1:]}
        graph.nodes = [fused if n is mean else n for n in graph.nodes if id(n) not in dropped]
        maps = graph.producers(), graph.consumers(), graph.output_names()


def _match(graph: Graph, mean: Node, consumers, outputs, shape: list[Dim] | None):
    """(axis, epsilon, gamma name or None, beta name or None, the nodes from ``mean`` to the
    last one) if ``mean`` starts the pattern."""
    x, rank = mean.inputs[0], (len(shape) if shape is not None else None)
    axis = _trailing_axes(graph, mean, rank)
    if axis is None:
        return None
    sub = only_reader(mean.outputs[0], consumers, outputs)
    if sub is None or sub.op != "Sub" or sub.inputs != [x, mean.outputs[0]]:
        return None
    d = sub.outputs[0]
    readers = list({id(n): n for n in consumers.get(d, [])}.values())  # d * d reads d twice
    if len(readers) != 2 or d in outputs:
        return None
    square = next((n for n in readers if _is_square(graph, n, d)), None)
    divide = next((n for n in readers if n.op == "Div" and n.inputs[0] == d), None)
    if square is None or divide is None:
        return None
    var = only_reader(square.outputs[0], consumers, outputs)
    if var is None or var.op != "ReduceMean" or _trailing_axes(graph, var, rank) != axis:
        return None
    add = only_reader(var.outputs[0], consumers, outputs)
    epsilon = None if add is None or add.op != "Add" else _scalar_other(graph, add,
                                                                        var.outputs[0])
    root = None if epsilon is None else only_reader(add.outputs[0], consumers, outputs)
    if root is None or root.op != "Sqrt" or divide.inputs[1] != root.outputs[0] \
            or only_reader(root.outputs[0], consumers, outputs) is not divide:
        return None
    chain = [mean, sub, square, var, add, root, divide]
    scale = bias = None
    after = only_reader(divide.outputs[0], consumers, outputs)
    if after is not None and after.op == "Mul":
        scale = _parameter(graph, after, divide.outputs[0], -axis, shape)
        if scale is not None:
            chain.append(after)
            after = only_reader(after.outputs[0], consumers, outputs)
    if after is not None and after.op == "Add":
        bias = _parameter(graph, after, chain[-1].outputs[0], -axis, shape)
        if bias is not None:
            chain.append(after)
    return axis, epsilon, scale, bias, chain


def _trailing_axes(graph: Graph, node: Node, rank: int | None) -> int | None:
    """-k if ``node`` averages the last k axes keeping their dims, else None."""
    if int(node.attrs.get("keepdims", 1)) != 1:
        return None
    axes = node.attrs.get("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        axes = graph.constants.get(node.inputs[1])
    if axes is None:
        return None
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    if rank is not None:
        axes = [a - rank if a >= 0 else a for a in axes]
    if not axes or sorted(axes) != list(range(-len(axes), 0)):
        return None
    return -len(axes)


def _is_square(graph: Graph, node: Node, d: str) -> bool:
    if node.op == "Mul":
        return node.inputs == [d, d]
    if node.op == "Pow" and len(node.inputs) == 2 and node.inputs[0] == d:
        exponent = graph.constants.get(node.inputs[1])
        return exponent is not None and exponent.size == 1 and float(exponent.reshape(())) == 2.0
    return False


def _scalar_other(graph: Graph, node: Node, data: str) -> float | None:
    other = [name for name in node.inputs if name != data]
    value = graph.constants.get(other[0]) if len(other) == 1 and len(node.inputs) == 2 else None
    return None if value is None or value.size != 1 else float(value.reshape(()))


def _parameter(graph: Graph, node: Node, data: str, count: int, shape: list[Dim] | None
               ) -> str | None:
    """The name of the float constant ``node`` combines with ``data``, if it varies along
    the last ``count`` axes only and cannot widen ``data`` (of ``shape``, if known)."""
    if len(node.inputs) != 2 or node.inputs.count(data) != 1:
        return None
    name = node.inputs[1] if node.inputs[0] == data else node.inputs[0]
    value = graph.constants.get(name)
    if value is None or value.dtype != np.float32:
        return None
    dims = list(value.shape)
    while len(dims) > count and dims[0] == 1:
        dims.pop(0)
    if len(dims) > count or (shape is not None and value.ndim > len(shape)) \
            or (shape is None and value.ndim > count):
        return None
    trailing = shape[len(shape) - len(dims):] if shape is not None and dims else []
    if any(isinstance(t, int) and d not in (1, t) for d, t in zip(dims, trailing)):
        return None
    return name
