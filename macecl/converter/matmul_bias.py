"""A constant bias added after a MatMul by a constant matrix: the MatMul's third input.

PyTorch and Paddle export a linear layer over a 3-D tensor as MatMul(x, W) then Add(b) (Gemm
takes matrices only), which is two launches where one ``gemm`` launch adds the bias in its
epilogue; with the Add gone an activation after it (PP-OCR rec's Swish MLP) fuses as well.
PP-OCR rec has nine. The bias must be one value per output column (or one value): macecl's
MatMul with a third input C computes A @ B + C, C broadcast along the rows.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Dim, Graph


def fold_bias_into_matmul(graph: Graph, value_shapes: dict[str, list[Dim]]) -> None:
    """MatMul(A, constant 2-D B) read only by Add(., constant C of N values): MatMul(A, B, C)."""
    shapes = {spec.name: spec.shape for spec in graph.inputs}
    shapes.update(value_shapes)
    consumers, outputs = graph.consumers(), graph.output_names()
    removed: set[int] = set()
    for matmul in graph.nodes:
        if matmul.op != "MatMul" or len(matmul.inputs) != 2 or "activation" in matmul.attrs:
            continue
        weight = graph.constants.get(matmul.inputs[1])
        readers = consumers.get(matmul.outputs[0], [])
        if weight is None or weight.ndim != 2 or len(readers) != 1 \
                or matmul.outputs[0] in outputs:
            continue
        add = readers[0]
        if add.op != "Add" or len(add.inputs) != 2 or add.inputs[0] == add.inputs[1]:
            continue
        other = add.inputs[1] if add.inputs[0] == matmul.outputs[0] else add.inputs[0]
        rank = len(shapes.get(matmul.inputs[0]) or []) or None
        if not _is_column_bias(graph.constants.get(other), weight.shape[1], rank):
            continue
        matmul.inputs = [*matmul.inputs, other]
        matmul.outputs = list(add.outputs)
        removed.add(id(add))
    graph.nodes = [n for n in graph.nodes if id(n) not in removed]


def _is_column_bias(value: np.ndarray | None, columns: int, rank: int | None) -> bool:
    """A float constant of one value per column, or one value, that cannot widen a result of
    ``rank`` (A's rank: the MatMul's, for A of rank 2 and more; 1 if unknown)."""
    if value is None or value.dtype != np.float32 or value.ndim > max(rank or 1, 1):
        return False
    dims = [d for d in value.shape]
    while dims and dims[0] == 1 and len(dims) > 1:
        dims.pop(0)
    return dims in ([columns], [1], [])
