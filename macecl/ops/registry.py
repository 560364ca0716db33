"""Where operator families register what they can do with each ONNX operator type.

Three hooks, each optional:

- ``evaluate(node, arrays) -> arrays``: NumPy on the host. Used to fold constants in the
  converter and, at plan time, for the small integer tensors exporters compute from shapes
  (Shape -> Gather -> Concat -> Reshape). Never on the run path.
- ``lower(node, inputs, builder) -> values``: emits the kernel launches of one node for
  concrete input shapes, and returns its outputs (device tensors, views, or host arrays).
- ``check(node) -> str | None``: at conversion, a reason the node cannot run (a 3-D Conv,
  an unsupported mode), so a model fails before anything runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from macecl.graph.ir import Node

if TYPE_CHECKING:
    from macecl.engine.plan import Builder

Evaluate = Callable[[Node, list[Any]], list[np.ndarray]]
Lower = Callable[[Node, list[Any], "Builder"], list[Any]]
Check = Callable[[Node], "str | None"]


@dataclasses.dataclass
class OpDef:
    evaluate: Evaluate | None = None
    lower: Lower | None = None
    check: Check | None = None


REGISTRY: dict[str, OpDef] = {}


def _register(hook: str, types: tuple[str, ...]):
    def decorate(function):
        for op_type in types:
            definition = REGISTRY.setdefault(op_type, OpDef())
            if getattr(definition, hook) is not None:
                raise RuntimeError(f"{hook} of {op_type} registered twice")
            setattr(definition, hook, function)
        return function

    return decorate


def evaluation(*types: str):
    """Register a NumPy evaluation for ``types``."""
    return _register("evaluate", types)


def lowering(*types: str):
    """Register a lowering to kernel launches for ``types``."""
    return _register("lower", types)


def checker(*types: str):
    """Register a conversion-time check for ``types``."""
    return _register("check", types)


def supported_types() -> list[str]:
    return sorted(t for t, d in REGISTRY.items() if d.lower is not None or d.evaluate is not None)


def unsupported_reason(node: Node) -> str | None:
    """Why ``node`` cannot run, or None. Names the operator type, or the case of it."""
    definition = REGISTRY.get(node.op)
    if definition is None:
        return node.op
    if definition.check is not None:
        return definition.check(node)
    return None


# Attribute helpers shared by the families.

def ints(node: Node, name: str, default: list[int] | None = None) -> list[int] | None:
    value = node.attrs.get(name, default)
    return None if value is None else [int(v) for v in value]


def contiguous_strides(shape) -> list[int]:
    """Element strides of a contiguous (C-order) tensor of ``shape``."""
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return strides[::-1]
