"""The model between the converter and the engine: a graph of nodes and its constants."""

from macecl.graph.ir import Graph, Node, TensorSpec

__all__ = ["Graph", "Node", "TensorSpec"]
