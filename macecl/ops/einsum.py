"""Einsum, as the ops it is made of: per operand a ReduceSum of the indices no one else reads,
then, operand pair by operand pair, a batched MatMul between two Transposes, and a last
Transpose into the output's order. Each step is an existing lowering (shape_ops' Transpose,
gemm's MatMul, reduce's ReduceSum) on views, so Einsum runs wherever those run.

Equations: explicit ("bhid,bhjd->bhij") or implicit (no "->": the indices seen once, in
alphabetical order), with "..." for broadcast dims, any number of operands. An index
repeated within one operand (a diagonal, "ii->i") is refused by name.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.registry import checker, evaluation, lowering

ELLIPSIS_LETTERS = "0123456789"  # stand-ins for the dims "..." covers (never einsum letters)


def _equation(node: Node) -> str:
    equation = node.attrs.get("equation", "")
    return (equation.decode() if isinstance(equation, bytes) else str(equation)).replace(" ", "")


def parse(equation: str, ranks: Sequence[int]) -> tuple[list[str], str]:
    """(the operands' index strings, the output's), "..." spelled out with ELLIPSIS_LETTERS
    (right-aligned, as NumPy broadcasts). Raises ValueError naming what is wrong."""
    left, arrow, right = equation.partition("->")
    terms = left.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"equation {equation!r} names {len(terms)} operands, the node has "
                         f"{len(ranks)}")
    widest = 0
    spelled = []
    for term, rank in zip(terms, ranks):
        letters = term.replace("...", "")
        if letters and not letters.isalpha():
            raise ValueError(f"equation {equation!r}: {term!r} is not letters and '...'")
        covered = rank - len(letters)
        if "..." not in term and covered != 0 or covered < 0:
            raise ValueError(f"equation {equation!r}: {term!r} does not fit an operand of "
                             f"rank {rank}")
        widest = max(widest, covered)
        spelled.append(term.replace("...", ELLIPSIS_LETTERS[10 - covered:] if covered else ""))
    for term in spelled:
        repeated = sorted({c for c in term if term.count(c) > 1})
        if repeated:
            raise ValueError(f"equation {equation!r}: index {repeated[0]!r} repeats within an "
                             "operand (a diagonal), which Einsum here does not take")
    broadcast = ELLIPSIS_LETTERS[10 - widest:] if widest else ""
    if arrow:
        output = right.replace("...", broadcast)
        named = right.replace("...", "")
        if named and not named.isalpha() or len(set(output)) != len(output):
            raise ValueError(f"equation {equation!r}: the output {right!r} is not distinct "
                             "letters and '...'")
        unknown = sorted(set(output) - set("".join(spelled)))
        if unknown:
            raise ValueError(f"equation {equation!r}: output index {unknown[0]!r} is in no "
                             "operand")
    else:
        counts = "".join(spelled)
        output = broadcast + "".join(sorted(c for c in set(counts)
                                            if c.isalpha() and counts.count(c) == 1))
    return spelled, output


@evaluation("Einsum")
def _evaluate(node: Node, arrays: list) -> list[np.ndarray]:
    equation = _equation(node)
    terms, output = parse(equation, [np.ndim(a) for a in arrays])
    free = [c for c in string.ascii_letters if c not in equation]  # NumPy takes letters only
    letters = dict(zip(ELLIPSIS_LETTERS, free))
    spell = (lambda t: "".join(letters.get(c, c) for c in t))
    result = np.einsum(f"{','.join(spell(t) for t in terms)}->{spell(output)}", *arrays)
    return [np.asarray(result, dtype=np.result_type(*arrays))]


@checker("Einsum")
def _check(node: Node) -> str | None:
    if not _equation(node):
        return "Einsum without an equation"
    return None


class _Operand:
    """A device value and the index of each of its axes."""

    def __init__(self, value, indices: str):
        self.value, self.indices = value, indices


def _transpose(builder, operand: _Operand, order: str) -> _Operand:
    from macecl.ops.shape_ops import _lower_transpose

    if order == operand.indices:
        return operand
    perm = [operand.indices.index(c) for c in order]
    node = Node("Transpose", "einsum_transpose", [], [], {"perm": perm})
    (moved,) = _lower_transpose(node, [operand.value], builder)
    return _Operand(moved, order)


def _sum_out(builder, operand: _Operand, keep: set[str]) -> _Operand:
    """ReduceSum over the operand's indices outside ``keep``."""
    from macecl.ops.reduce import _lower as lower_reduce

    axes = [i for i, c in enumerate(operand.indices) if c not in keep]
    if not axes:
        return operand
    node = Node("ReduceSum", "einsum_sum", [], [], {"axes": axes, "keepdims": 0})
    (summed,) = lower_reduce(node, [operand.value], builder)
    return _Operand(summed, "".join(c for c in operand.indices if c in keep))


def _sizes(operands: Sequence[_Operand]) -> dict[str, int]:
    """Each index's size; 1 only where every operand with it has 1 (broadcasting)."""
    sizes: dict[str, int] = {}
    for operand in operands:
        for c, d in zip(operand.indices, operand.value.shape):
            if sizes.get(c, 1) not in (1, d) and d != 1:
                raise ValueError(f"index {c!r} is {sizes[c]} in one operand and {d} in another")
            sizes[c] = max(sizes.get(c, 1), d)
    return sizes


def _contract(builder, a: _Operand, b: _Operand, keep: set[str]) -> _Operand:
    """The pair's product, summed over their shared indices outside ``keep``: a batched MatMul
    of (batch, rows, depth) by (batch, depth, columns)."""
    from macecl.ops.gemm import _lower_matmul

    sizes = _sizes([a, b])
    batch = [c for c in a.indices if c in b.indices and c in keep]
    depth = [c for c in a.indices if c in b.indices and c not in keep]
    for c in depth:
        if dict(zip(a.indices, a.value.shape))[c] != dict(zip(b.indices, b.value.shape))[c]:
            raise ValueError(f"summed index {c!r} differs in size between two operands")
    rows = [c for c in a.indices if c not in b.indices]
    columns = [c for c in b.indices if c not in a.indices]
    a = _transpose(builder, a, "".join(batch + rows + depth))
    b = _transpose(builder, b, "".join(batch + depth + columns))

    def matrix(operand: _Operand, first: list[str], second: list[str]):
        shape = dict(zip(operand.indices, operand.value.shape))
        dims = [shape[c] for c in batch]
        return builder.view(operand.value, (*dims, math.prod(shape[c] for c in first),
                                            math.prod(shape[c] for c in second)))

    node = Node("MatMul", "einsum_matmul", [], [], {})
    (product,) = _lower_matmul(node, [matrix(a, rows, depth), matrix(b, depth, columns)],
                               builder)
    indices = "".join(batch + rows + columns)
    return _Operand(builder.view(product, [sizes[c] for c in indices]), indices)


@lowering("Einsum")
def _lower(node: Node, inputs: list, builder) -> list:
    try:
        terms, output = parse(_equation(node), [v.rank for v in inputs])
        operands = [_Operand(v, t) for v, t in zip(inputs, terms)]
        _sizes(operands)
        result = None
        for i, operand in enumerate(operands):
            later = set(output).union(*(o.indices for o in operands[i + 1:]))
            if result is None:
                result = _sum_out(builder, operand, later)
                continue
            operand = _sum_out(builder, operand, later | set(result.indices))
            result = _sum_out(builder, result, later | set(operand.indices))
            result = _contract(builder, result, operand, later)
        result = _transpose(builder, result, output)
        return [result.value]
    except ValueError as error:
        raise builder.fail(str(error)) from None
