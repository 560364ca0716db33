"""Finding the graph to run: a ``.macecl`` file as it is, an ``.onnx`` file converted once.

A converted ONNX model is kept in the storage directory under the SHA-256 of the ONNX file,
the input shapes asked for and the converter's version, so the next start maps the stored
``.macecl`` instead of converting again; a stored file that no longer loads is converted anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from macecl.errors import ModelFormatError
from macecl.graph import model_file
from macecl.graph.ir import Graph

log = logging.getLogger(__name__)


def converted_dir() -> Path:
    """Where converted models are kept: ``models/`` beside the compiled-program cache."""
    from macecl.runtime.context import default_cache_path

    return default_cache_path().parent / "models"


def load(path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None = None
         ) -> tuple[Graph, Path, float]:
    """(graph, the .macecl file it came from, seconds spent converting)."""
    from macecl.converter import CONVERTER_VERSION, convert

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"model file {path} does not exist")
    if path.suffix != ".onnx":
        if input_shapes:
            raise ModelFormatError("input shapes are fixed at conversion; "
                                   f"{path} is already converted")
        return model_file.load(path), path, 0.0
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    shapes = {k: [int(d) for d in v] for k, v in sorted((input_shapes or {}).items())}
    digest.update(json.dumps([CONVERTER_VERSION, shapes]).encode())
    stored = converted_dir() / f"{path.stem}-{digest.hexdigest()[:24]}{model_file.SUFFIX}"
    if stored.is_file():
        try:
            return model_file.load(stored), stored, 0.0
        except ModelFormatError as error:
            log.warning("converting %s again: the stored conversion is unusable (%s)", path, error)
    started = time.perf_counter()
    graph = convert(path, input_shapes=input_shapes)
    elapsed = time.perf_counter() - started
    try:
        stored.parent.mkdir(parents=True, exist_ok=True)
        model_file.save(graph, stored)
        graph = model_file.load(stored)
    except OSError as error:
        log.warning("cannot keep the converted model in %s (%s); converting on every start",
                    stored.parent, error)
        return graph, path, elapsed
    return graph, stored, elapsed
