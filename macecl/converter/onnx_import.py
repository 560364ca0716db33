"""ONNX ModelProto -> macecl Graph: attributes made plain, constants made NumPy, shapes inferred.

Nothing is optimized here (that is :mod:`macecl.converter.passes`); this module only reads.
Each node keeps ONNX's operator type, inputs and attributes. Operators whose meaning changed
across opsets without a visible difference in the node (Softmax's 2-D coercion before 13)
get the model's opset as an ``opset`` attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from macecl.errors import ModelFormatError, UnsupportedModelError
from macecl.graph.ir import Dim, Graph, Node, TensorSpec

# Opsets 19 to 24 changed the operators macecl runs only by types it does not run (bfloat16,
# float8, int4, strings) and by attributes each op's check refuses where it cannot honour
# them (Resize's half_pixel_symmetric), besides Gelu (20) and AveragePool's dilations (19).
MIN_OPSET, MAX_OPSET = 6, 24
OPSET_SENSITIVE = {"Softmax", "LogSoftmax", "Hardmax"}
DEFAULT_DOMAINS = {"", "ai.onnx"}


def read(path: str | Path):
    """The ModelProto of ``path`` (external data included), with a clear error if unreadable."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"ONNX model {path} does not exist")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as error:
        raise ModelFormatError(f"{path} is not a readable ONNX model: {error}") from error
    if not model.HasField("graph"):  # an empty file, or bytes that happen to parse
        raise ModelFormatError(f"{path} is not an ONNX model: it holds no graph")
    return model


def _dtype_name(elem_type: int) -> str:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return f"onnx-type-{elem_type}"


def _dims(type_proto) -> list[Dim]:
    if not type_proto.tensor_type.HasField("shape"):
        return []
    dims: list[Dim] = []
    for dim in type_proto.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def _attribute(attribute) -> Any:
    from onnx import AttributeProto, helper, numpy_helper

    if attribute.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        raise ValueError("subgraph attribute")
    try:
        if attribute.type == AttributeProto.TENSOR:
            value = numpy_helper.to_array(attribute.t)
            # A string tensor holds bytes objects: plain strings, as for STRING attributes.
            return value if value.dtype != object else _attribute_strings(value.ravel().tolist())
        value = helper.get_attribute_value(attribute)
    except (KeyError, TypeError, ValueError) as error:  # an unknown type, malformed tensor data
        raise ModelFormatError(f"attribute {attribute.name!r} is malformed: {error!r}") from error
    if value is None:
        raise ModelFormatError(f"attribute {attribute.name!r} has no value "
                               f"(attribute type {attribute.type})")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return _attribute_strings(value)
    return value


def _attribute_strings(values: list) -> list:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]


def _check_names(graph: Graph) -> None:
    """Every name must be text. ONNX is proto2, whose parser lets a string field hold bytes
    that are not UTF-8; such a name would fail much later, far from its cause."""
    named = [("input", s.name) for s in graph.inputs + graph.outputs]
    named += [(f"dimension of {s.name!r}", d) for s in graph.inputs + graph.outputs
              for d in s.shape if d is not None and not isinstance(d, int)]
    named += [("metadata entry", t) for item in graph.metadata.items() for t in item]
    named += [(f"model {key}", v) for key, v in graph.info.items() if not isinstance(v, int)]
    named += [("initializer", name) for name in graph.constants]
    for node in graph.nodes:
        named += [("node", node.name), ("operator type", node.op)]
        named += [(f"tensor of node {node.name!r}", t) for t in node.inputs + node.outputs]
        named += [(f"attribute of node {node.name!r}", a) for a in node.attrs]
    for what, name in named:
        if not isinstance(name, str):
            raise ModelFormatError(f"a name of a {what} is not valid UTF-8: {name!r}")


def _set_input_shapes(model, input_shapes: Mapping[str, Sequence[int]]) -> None:
    initializers = {i.name for i in model.graph.initializer}
    inputs = {i.name: i for i in model.graph.input if i.name not in initializers}
    for name, shape in input_shapes.items():
        if name not in inputs:
            raise ModelFormatError(f"--input-shape names {name!r}, but the model's inputs are "
                                   f"{sorted(inputs)}")
        dims = inputs[name].type.tensor_type.shape.dim
        if len(dims) and len(dims) != len(shape):
            raise ModelFormatError(f"input {name!r} has rank {len(dims)}; the shape given, "
                                   f"{list(shape)}, has rank {len(shape)}")
        del dims[:]
        for size in shape:
            dims.add().dim_value = int(size)


# Opset 6 operators whose second input was aligned by a `broadcast` / `axis` attribute.
LEGACY_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater",
                    "Less"}


def _opset6_broadcasts(nodes: list[Node], constants: dict, shapes: dict) -> None:
    """Opset 6 to NumPy broadcasting: reshape the constant operand so it aligns by suffix.

    Binary ops with ``broadcast=1, axis=k`` matched B to A's dims from k on; PRelu's 1-D
    slope ran along the channel axis. A reshape of the constant to ``B.shape + (1,) * n``
    says the same in opset 7's terms. Where B is not a constant, the node is refused.
    """
    for node in nodes:
        if node.op in LEGACY_BROADCAST:
            axis = node.attrs.pop("axis", None)
            node.attrs.pop("broadcast", None)
            if axis is None:
                continue
            target, operand = node.inputs[0], node.inputs[1]
        elif node.op == "PRelu":
            axis, target, operand = 1, node.inputs[0], node.inputs[1]
        else:
            continue
        rank = len(shapes.get(target) or [])
        value = constants.get(operand)
        if value is None or not rank or (node.op == "PRelu" and value.ndim != 1):
            if node.op != "PRelu":
                node.attrs["legacy_axis"] = axis  # refused by check: cannot be expressed
            continue
        axis = axis + rank if axis < 0 else axis
        trailing = rank - axis - value.ndim
        if trailing > 0:
            name = f"{operand}/aligned_for_{node.name}"
            constants[name] = value.reshape(value.shape + (1,) * trailing)
            node.inputs[1] = name


def _initializer(tensor) -> np.ndarray:
    """An initializer as an array; a malformed one (no element type, data that does not fill
    its dims) is a ModelFormatError naming it."""
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(tensor)
    except (KeyError, TypeError, ValueError) as error:  # KeyError: an unknown element type
        raise ModelFormatError(f"initializer {tensor.name!r} is malformed: {error}") from error


def import_model(model, input_shapes: Mapping[str, Sequence[int]] | None = None
                 ) -> tuple[Graph, dict[str, list[Dim]]]:
    """Read ``model`` (a ModelProto) into a Graph; ``input_shapes`` fixes input dims first.

    Also returns the shapes ONNX shape inference found for intermediate tensors, which let
    the passes fold ``Shape`` of a tensor whose shape is static.
    """
    import onnx

    opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)
    if opset is None:
        raise ModelFormatError("the model imports no version of the default ONNX operator set")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedModelError({f"opset {opset} (macecl reads {MIN_OPSET} to {MAX_OPSET})":
                                     ["the model"]})
    if input_shapes:
        _set_input_shapes(model, input_shapes)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # a model the checker rejects still runs if its ops are known
        inferred = model
    graph = inferred.graph
    constants = {i.name: _initializer(i) for i in graph.initializer}
    inputs = [TensorSpec(i.name, _dtype_name(i.type.tensor_type.elem_type), _dims(i.type))
              for i in graph.input if i.name not in constants]
    outputs = [TensorSpec(o.name, _dtype_name(o.type.tensor_type.elem_type), _dims(o.type))
               for o in graph.output]
    nodes, problems = [], {}
    for index, proto in enumerate(graph.node):
        name = proto.name or f"{proto.op_type}_{index}"
        if proto.domain not in DEFAULT_DOMAINS:
            problems.setdefault(f"{proto.domain}.{proto.op_type}", []).append(name)
            continue
        try:
            attrs = {a.name: _attribute(a) for a in proto.attribute}
        except ModelFormatError as error:
            raise ModelFormatError(f"node {name!r} ({proto.op_type}): {error}") from None
        except ValueError:
            problems.setdefault(f"{proto.op_type} (with a subgraph)", []).append(name)
            continue
        if proto.op_type in OPSET_SENSITIVE:
            attrs["opset"] = opset
        nodes.append(Node(proto.op_type, name, list(proto.input), list(proto.output), attrs))
    if problems:
        raise UnsupportedModelError(problems)
    value_shapes = {v.name: _dims(v.type) for v in graph.value_info}
    value_shapes.update({spec.name: spec.shape for spec in inputs})
    if opset < 7:
        _opset6_broadcasts(nodes, constants, value_shapes)
    metadata = {p.key: p.value for p in model.metadata_props}
    info = {"producer_name": model.producer_name, "graph_name": graph.name,
            "domain": model.domain, "description": model.doc_string,
            "graph_description": graph.doc_string, "version": int(model.model_version)}
    graph = Graph(nodes, inputs, outputs, constants, opset, metadata, info)
    _check_names(graph)
    return graph, value_shapes
