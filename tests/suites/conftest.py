"""Model suites: whole models through macecl on the OpenCL device, against stored outputs
or ONNX Runtime (CPU). Every model file and data set comes from an installed package
(``onnx`` ships its backend test data; ``rapidocr_onnxruntime`` ships the PP-OCR models).

One context (``shared_context`` of tests/conftest.py) serves the whole session, so each
program is built once however many models use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from macecl.engine import Engine

# The suites' rule: max abs error <= TOLERANCE x max |reference|, per output.
TOLERANCE = 1e-3


@pytest.fixture(autouse=True)
def _remove_large_files(tmp_path: Path):
    """After each test, delete its large files: random-weight models and the converted copies
    the engine keeps beside its cache (tests/conftest.py puts that in tmp_path) reach 0.5 GB
    each for VGG-19, and pytest keeps the temporary directories of three sessions."""
    yield
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_size > 1 << 20:
            path.unlink()


def run_macecl(context, model: str | Path, feeds: Mapping[str, np.ndarray],
               input_shapes: Mapping[str, list[int]] | None = None) -> dict[str, np.ndarray]:
    """Convert ``model`` (fixing ``input_shapes`` if given), run it once on ``feeds``."""
    engine = Engine(model, context=context, input_shapes=input_shapes)
    try:
        return engine.run(dict(feeds))
    finally:
        engine.close()


def ort_session(model: str | Path | bytes):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_ort(model: str | Path | bytes, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX Runtime's outputs (CPU, every optimization on), by output name."""
    session = ort_session(model)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds))))


def with_logits(model):
    """``model`` (a ModelProto, changed in place) also returning the input of a final Softmax
    (one whose output is a graph output, directly or through Identity): a softmax easily
    saturates to one-hot, which would hide errors in everything before it. True if changed."""
    from onnx import TensorProto, helper

    outputs = {o.name for o in model.graph.output}
    finals = set(outputs)
    for node in model.graph.node:
        if node.op_type == "Identity" and node.output[0] in outputs:
            finals.add(node.input[0])
    changed = False
    for node in model.graph.node:
        if node.op_type == "Softmax" and node.output[0] in finals and node.input[0] not in outputs:
            model.graph.output.append(helper.make_tensor_value_info(
                node.input[0], TensorProto.FLOAT, None))
            outputs.add(node.input[0])
            changed = True
    return changed


def assert_close(got: np.ndarray, want: np.ndarray, name: str = "output",
                 tolerance: float = TOLERANCE) -> None:
    """max |got - want| <= tolerance x max |want|; shapes must agree, NaN only where want has it."""
    want = np.asarray(want)
    got = np.asarray(got)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != reference {want.shape}"
    if not want.size:
        return
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    nan_want, nan_got = np.isnan(want64), np.isnan(got64)
    assert np.array_equal(nan_want, nan_got), (
        f"{name}: NaN at {int(nan_got.sum())} places, reference at {int(nan_want.sum())}")
    finite = ~nan_want
    scale = float(np.max(np.abs(want64[finite]))) if finite.any() else 0.0
    error = np.abs(got64[finite] - want64[finite])
    worst = float(np.max(error)) if error.size else 0.0
    if worst <= tolerance * scale:
        return
    where = np.unravel_index(int(np.argmax(np.where(finite, np.abs(got64 - want64), -1))),
                             want.shape)
    raise AssertionError(
        f"{name}: max abs error {worst:.3g} > {tolerance:g} x max|ref| = {tolerance * scale:.3g}"
        f" (at {tuple(int(i) for i in where)}: got {got64[where]:.6g}, ref {want64[where]:.6g};"
        f" {int(np.sum(error > tolerance * scale))} of {error.size} elements off)")


def assert_outputs_close(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> None:
    assert list(got) == list(want), f"outputs {list(got)} != reference {list(want)}"
    for name in want:
        assert_close(got[name], want[name], name)
