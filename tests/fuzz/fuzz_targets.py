"""The fuzz targets: one function per reader, fed untrusted bytes.

A target returns normally when it accepted the input, raises a MaceclError subclass when it
rejected it cleanly; anything else (another exception, a failed consistency assertion) is a
bug. Shared by the hypothesis tests, the corpus replay test and bench/fuzz.py (atheris).
"""

from __future__ import annotations

import contextlib
import functools
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from macecl import config
from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey
from macecl.cache.format import _HEADER, CacheFile, NewEntry, encode, entries_of
from macecl.errors import MaceclError

CORPUS = Path(__file__).with_name("corpus")
KEY = b"fuzzing key"
GPU = DeviceFingerprint("P", "PV", "1", "GPU-X", "DV", "1", "100", "C", 64, ("cl_khr_fp16",))
CPU = DeviceFingerprint("pocl", "pocl", "3", "cpu", "x86", "3", "5", "C 1.2", 64)


# -- the MCLP cache reader ------------------------------------------------------------------


def cache_format(data: bytes) -> None:
    """Parse (with and without a key), read every payload, verify, and round-trip."""
    signed = None
    with contextlib.suppress(MaceclError):
        signed = CacheFile(data, key=KEY)  # the signed path: HMAC before the tables
    cache = CacheFile(data, authenticate=False)
    cache.signature_problem(KEY)
    problems = cache.verify()
    if problems:
        raise MaceclError("; ".join(problems))
    entries = entries_of(cache)
    again = CacheFile(encode(entries))  # what a writer merging this file would produce
    assert again.verify() == []
    assert {(e.device, e.key, e.payload) for e in entries_of(again)} == {
        (e.device, e.key, e.payload) for e in entries}
    if signed is not None:
        assert signed.entries == cache.entries


def fix_cache_checksums(data: bytes | bytearray) -> bytes:
    """Recompute the header and tables CRCs so that a mutation reaches the table parser."""
    data = bytearray(data)
    if len(data) < _HEADER.size + 4:
        return bytes(data)
    fields = list(_HEADER.unpack_from(data, 0))
    devices_offset, table_offset, table_size = fields[8], fields[10], fields[11]
    if devices_offset <= table_offset + table_size <= len(data):
        fields[-1] = zlib.crc32(data[devices_offset : table_offset + table_size])
    _HEADER.pack_into(data, 0, *fields)
    struct.pack_into("<I", data, _HEADER.size, zlib.crc32(data[: _HEADER.size]))
    return bytes(data)


def cache_seeds() -> list[bytes]:
    entries = [
        NewEntry(GPU, ProgramKey.for_source("conv2d", "a", "-DA -DB"), b"\x01" * 40, 100),
        NewEntry(GPU, ProgramKey.for_source("pooling", "b", ""), b"\x02" * 24, 200),
        NewEntry(CPU, ProgramKey.for_source("conv2d", "a", "-DA"), b"\x03" * 32, 300),
    ]
    return [encode(entries), encode(entries, key=KEY), encode([]), encode(entries[:1])]


# -- the .macecl model reader --------------------------------------------------------------


@contextlib.contextmanager
def _as_file(data: bytes, suffix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"model{suffix}"
        path.write_bytes(data)
        with config.override(cache_dir=Path(directory) / "cache"):
            yield path


def model_file(data: bytes) -> None:
    """Load a .macecl file through the engine's model loader; touch every weight."""
    from macecl.engine import models

    with _as_file(data, ".macecl") as path:
        graph, _, _ = models.load(path)
        for array in graph.constants.values():
            assert isinstance(array, np.ndarray) and not array.flags.writeable
            bytes(array.data)  # every weight byte lies inside the file
        del graph


@functools.cache
def tiny_onnx() -> bytes:
    """A small valid ONNX model (Conv, Relu, Add with a constant) as bytes."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    bias = numpy_helper.from_array(np.arange(2, dtype=np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "b4"], ["y"], name="add"),
        helper.make_node("Reshape", ["b", "shape"], ["b4"], name="reshape"),
    ]
    shape = numpy_helper.from_array(np.array([1, 2, 1, 1], np.int64), "shape")
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 5, 5])],
        [weight, bias, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def model_seeds() -> list[bytes]:
    from macecl.converter import convert
    from macecl.graph import model_file as files

    with tempfile.TemporaryDirectory() as directory:
        onnx_path = Path(directory) / "tiny.onnx"
        onnx_path.write_bytes(tiny_onnx())
        out = Path(directory) / "tiny.macecl"
        convert(onnx_path, out)
        converted = out.read_bytes()
        graph = files.load(out)
        graph.constants = {}
        files.save(graph, out)
        return [converted, out.read_bytes()]


def onnx_model(data: bytes) -> None:
    """Read and convert an .onnx file through the engine's model loader."""
    from macecl.engine import models

    with _as_file(data, ".onnx") as path:
        models.load(path)


def onnx_seeds() -> list[bytes]:
    return [tiny_onnx()]


# -- the tuned-parameters reader (tuned_opencl_parameter.bin) -------------------------------


def tuning_format(data: bytes) -> None:
    """Parse, look up for a device under both policies, and round-trip."""
    from macecl.cache import tuning_format as tuning
    from macecl.cache.fingerprint import ReusePolicy

    parsed = tuning.TuningFile(data)
    for policy in ReusePolicy:
        parsed.for_device(GPU, policy)
    again = tuning.TuningFile(tuning.encode(parsed.entries))
    assert set(again.entries) == set(parsed.entries)


def tuning_seeds() -> list[bytes]:
    from macecl.cache import tuning_format as tuning

    program = ProgramKey.for_source("conv2d", "a", "-DA")
    launches = [
        tuning.TunedLaunch(GPU, program, "conv2d", (64, 32, 1), (8, 4, 1), 1000, 1500),
        tuning.TunedLaunch(CPU, program, "conv2d", (64,), None, 2000, 2000),
    ]
    return [tuning.encode(launches), tuning.encode([])]


# -- the registry ---------------------------------------------------------------------------

TARGETS: dict[str, Callable[[bytes], None]] = {
    "cache_format": cache_format,
    "model_file": model_file,
    "onnx_model": onnx_model,
    "tuning_format": tuning_format,
}
SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "cache_format": cache_seeds,
    "model_file": model_seeds,
    "onnx_model": onnx_seeds,
    "tuning_format": tuning_seeds,
}


def corpus(target: str) -> list[Path]:
    """The stored inputs of ``target`` (found by bench/fuzz.py), sorted by name."""
    directory = CORPUS / target
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def run(target: str, data: bytes) -> bool:
    """Feed ``data`` to ``target``: True accepted, False rejected with a MaceclError.
    Any other exception propagates: it is a bug."""
    try:
        TARGETS[target](data)
    except MaceclError:
        return False
    return True
