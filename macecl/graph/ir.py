"""macecl's graph: ONNX's node list made plain Python, with constants as NumPy arrays.

Node inputs and outputs are tensor names, as in ONNX; an omitted optional input is ``""``.
Attributes are plain values (int, float, str, lists of them, or NumPy arrays), so the graph
can be written as JSON beside its constants (see :mod:`macecl.graph.model_file`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclasses.dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        """``Conv 'conv1'``: how errors name a node."""
        return f"{self.op} {self.name!r}"


@dataclasses.dataclass
class TensorSpec:
    """A graph input or output as declared: dtype name and dims."""

    name: str
    dtype: str
    shape: list[Dim]

    def describe_shape(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclasses.dataclass
class Graph:
    nodes: list[Node]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    constants: dict[str, np.ndarray]
    opset: int
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)  # the model's own
    # What the model file says of itself: producer_name, graph_name, domain, description,
    # graph_description, version (ONNX ModelProto fields, as onnxruntime's ModelMetadata).
    info: dict[str, str | int] = dataclasses.field(default_factory=dict)

    def consumers(self) -> dict[str, list[Node]]:
        """Tensor name -> the nodes that read it."""
        readers: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    readers.setdefault(name, []).append(node)
        return readers

    def producers(self) -> dict[str, Node]:
        return {name: node for node in self.nodes for name in node.outputs if name}

    def output_names(self) -> set[str]:
        return {spec.name for spec in self.outputs}

    def op_types(self) -> Iterator[str]:
        return (node.op for node in self.nodes)


def only_reader(name: str, consumers: dict[str, list[Node]], outputs: set[str]) -> Node | None:
    """The one node that reads tensor ``name`` (from ``Graph.consumers``), if exactly one
    does and ``name`` is not among the graph's ``outputs``: a value a fusion may fold away."""
    readers = consumers.get(name, [])
    return readers[0] if len(readers) == 1 and name not in outputs else None
