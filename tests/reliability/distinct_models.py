"""Small ONNX models, one operator each, so that each needs programs the others do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SHAPE = [1, 4, 8, 8]


def _weights(name: str, shape: list[int]) -> onnx.TensorProto:
    values = np.random.default_rng(len(name)).standard_normal(shape).astype(np.float32)
    return numpy_helper.from_array(values, name)


# name -> (op type, attributes, extra constant inputs)
MODELS = {
    "relu": ("Relu", {}, []),
    "sigmoid": ("Sigmoid", {}, []),
    "tanh": ("Tanh", {}, []),
    "softmax": ("Softmax", {"axis": -1}, []),
    "maxpool": ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, []),
    "avgpool": ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, []),
    "conv": ("Conv", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, [("w", [4, 4, 3, 3])]),
    "reduce": ("ReduceMean", {"axes": [2, 3], "keepdims": 1}, []),
    "transpose": ("Transpose", {"perm": [0, 2, 3, 1]}, []),
    "matmul": ("MatMul", {}, [("m", [8, 5])]),
}


def write(name: str, directory: Path, dims: list | None = None) -> Path:
    """``directory/NAME.onnx``: input x of SHAPE (or ``dims``, names allowed) through the one
    operator to y. IR version 8, so that ONNX Runtime can be the reference."""
    op, attrs, constants = MODELS[name]
    node = helper.make_node(op, ["x", *(c for c, _ in constants)], ["y"], name=name, **attrs)
    graph = helper.make_graph(
        [node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims or SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_weights(c, shape) for c, shape in constants])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    helper.set_model_props(model, {"purpose": "reliability tests"})
    path = Path(directory) / f"{name}{'-dynamic' if dims else ''}.onnx"
    onnx.save(model, path)
    return path
