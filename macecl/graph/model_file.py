"""The ``.macecl`` model file: a safetensors file whose metadata holds the graph.

safetensors is a documented, widely read format (8-byte header length, JSON header, raw
little-endian tensors), so any safetensors tool can list a model's weights. macecl writes and
reads it itself. Writing: the ``safetensors`` package orders the metadata by a hash map seeded
anew in every process, so one graph saved twice gave two different files; ours are the same
bytes every time (sorted keys), which content hashes and shipped artifacts rely on. Reading:
the file is mapped and each weight viewed in place, so loading costs no copy and no time that
grows with the weights.

The graph goes in the header's ``__metadata__`` under ``macecl.graph`` (JSON), with
``macecl.format`` the version of that JSON's layout.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np

from macecl.cache.store import atomic_write
from macecl.errors import ModelFormatError
from macecl.graph.ir import Graph, Node, TensorSpec

FORMAT_VERSION = "1"
SUFFIX = ".macecl"
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32",
           "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16",
           "U8": "uint8", "BOOL": "bool"}
_MAX_HEADER = 256 * 1024 * 1024


def _encode_attr(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": value.dtype.name, "shape": list(value.shape)}
    return value


def _decode_attr(value: Any) -> Any:
    if isinstance(value, dict) and "__array__" in value:
        return np.asarray(value["__array__"], dtype=value["dtype"]).reshape(value["shape"])
    return value


def graph_to_json(graph: Graph) -> str:
    return json.dumps({
        "opset": graph.opset,
        "metadata": graph.metadata,
        "info": graph.info,
        "inputs": [vars(spec) for spec in graph.inputs],
        "outputs": [vars(spec) for spec in graph.outputs],
        "nodes": [{"op": n.op, "name": n.name, "inputs": n.inputs, "outputs": n.outputs,
                   "attrs": {k: _encode_attr(v) for k, v in n.attrs.items()}}
                  for n in graph.nodes],
    }, ensure_ascii=False)


def encode(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file of ``tensors``, its bytes fixed by its content alone.

    Tensors go widest element first, then by name, so each starts at a multiple of its
    element size (the header is padded with spaces to 8 bytes, as safetensors does).
    """
    codes = {np.dtype(name): code for code, name in _DTYPES.items()}
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name, array in sorted(tensors.items(), key=lambda item: (-item[1].itemsize, item[0])):
        code = codes.get(array.dtype.newbyteorder("="))
        if code is None:
            raise ModelFormatError(f"constant {name!r} has dtype {array.dtype}, which a "
                                   f"{SUFFIX} file cannot hold (one of {sorted(_DTYPES)})")
        raw = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save(graph: Graph, path: str | Path) -> Path:
    """Write ``graph`` to ``path`` atomically (a crash leaves the old file or none)."""
    path = Path(path)
    tensors = {name: np.asarray(array) for name, array in graph.constants.items()}
    try:
        layout = graph_to_json(graph)
    except (TypeError, ValueError) as error:  # NOTE: protobuf hands non-UTF-8 names as bytes
        raise ModelFormatError(f"the graph cannot be stored: {error} (names or attributes "
                               "that are not UTF-8 text?)") from error
    metadata = {"macecl.format": FORMAT_VERSION, "macecl.graph": layout}
    atomic_write(path, encode(tensors, metadata=metadata))
    return path


def load(path: str | Path) -> Graph:
    """Read a ``.macecl`` file; its weights are read-only views of the mapped file."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            size = stream.seek(0, 2)
            mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except OSError as error:
        raise ModelFormatError(f"cannot read model file {path}: {error.strerror}") from error
    return parse(memoryview(mapped), str(path))


def parse(data: memoryview | bytes, origin: str = "<bytes>") -> Graph:
    data = memoryview(data)

    def fail(why: str) -> ModelFormatError:
        return ModelFormatError(f"{origin} is not a valid {SUFFIX} model: {why}")

    if len(data) < 8:
        raise fail(f"{len(data)} bytes, too short for a safetensors header")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > min(_MAX_HEADER, len(data) - 8):
        raise fail(f"header length {header_size} runs past the end of the {len(data)}-byte file")
    try:
        header = json.loads(bytes(data[8:8 + header_size]))
        metadata = header.pop("__metadata__", None) or {}
        layout = json.loads(metadata["macecl.graph"])
    except (ValueError, KeyError, TypeError) as error:
        raise fail(f"no macecl graph in its header ({error})") from error
    if metadata.get("macecl.format") != FORMAT_VERSION:
        raise fail(f"format {metadata.get('macecl.format')!r}; this macecl reads {FORMAT_VERSION}")
    base, constants = 8 + header_size, {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
            shape = [int(d) for d in info["shape"]]
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as error:
            raise fail(f"tensor {name!r} has a malformed entry: {info!r}") from error
        count = math.prod(shape)  # Python ints: a forged huge shape cannot wrap around
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= len(data) - base \
                or end - begin != count * dtype.itemsize:
            raise fail(f"tensor {name!r}: offsets {begin}..{end} do not hold shape {shape} "
                       f"of {dtype.name} inside the file")
        constants[name] = np.frombuffer(data, dtype, count, base + begin).reshape(shape)
    try:
        return Graph(
            nodes=[Node(n["op"], n["name"], list(n["inputs"]), list(n["outputs"]),
                        {k: _decode_attr(v) for k, v in n["attrs"].items()})
                   for n in layout["nodes"]],
            inputs=[TensorSpec(**spec) for spec in layout["inputs"]],
            outputs=[TensorSpec(**spec) for spec in layout["outputs"]],
            constants=constants,
            opset=int(layout["opset"]),
            metadata=dict(layout["metadata"]),
            info=dict(layout.get("info", {})),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise fail(f"malformed graph description ({error!r})") from error
