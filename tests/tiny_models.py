"""Tiny ONNX models for the deployment, shipped-binary and bench tests: quick to build on PoCL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper


def chain_model(path: Path, ops: list[str], shape: list[int | str] = (1, 3, 4, 4)) -> Path:
    """x -> ops[0] -> ops[1] -> ... -> y, each a one-input operator such as Relu or Tanh.

    IR version 8, so that ONNX Runtime 1.31 loads what onnx 1.23's helper makes.
    """
    names = ["x"] + [f"t{i}" for i in range(len(ops) - 1)] + ["y"]
    nodes = [helper.make_node(op, [a], [b], name=f"{op.lower()}{i}")
             for i, (op, a, b) in enumerate(zip(ops, names, names[1:]))]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def zeros_for(shape: list[int]) -> dict[str, np.ndarray]:
    return {"x": np.zeros(shape, np.float32)}
