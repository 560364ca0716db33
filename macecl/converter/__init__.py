"""ONNX -> ``.macecl``: read the model, optimize the graph, check every operator is supported.

    graph = convert("model.onnx", input_shapes={"x": [1, 3, 224, 224]})
    convert("model.onnx", output="model.macecl")      # also writes the file

A model with an operator macecl does not implement fails here, with every such operator
type and the names of its nodes, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from macecl.converter.onnx_import import import_model, read
from macecl.converter.passes import optimize
from macecl.errors import ModelFormatError
from macecl.graph import model_file
from macecl.graph.ir import Graph

# Part of the key of converted models kept by the engine: bump when conversion output changes.
CONVERTER_VERSION = "9"


def convert(
    model: str | Path,
    output: str | Path | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Graph:
    """Convert the ONNX file ``model``; write it to ``output`` if given. Returns the graph."""
    proto = read(model)
    try:
        graph, value_shapes = import_model(proto, input_shapes)
    except ModelFormatError as error:
        raise ModelFormatError(f"{model}: {error}") from None
    optimize(graph, value_shapes)
    if output is not None:
        model_file.save(graph, output)
    return graph


__all__ = ["CONVERTER_VERSION", "convert"]
