"""An ONNX Runtime-shaped front door: code written for onnxruntime runs by changing one import.

    import macecl as ort                      # was: import onnxruntime as ort
    session = ort.InferenceSession("det.onnx", providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (probabilities,) = session.run(None, {name: image})

Provider names and SessionOptions are accepted and recorded (macecl always runs on its
OpenCL device); their tuning knobs have no effect here. macecl's own options go where
ONNX Runtime takes an execution provider's, under the name "OpenCLExecutionProvider":

    session = ort.InferenceSession("det.onnx", providers=[("OpenCLExecutionProvider", {
        "device": "0", "compiled_program": "assets/mace_cl_compiled_program.bin"})])

``compiled_program`` is what ``Engine(compiled_program=...)`` takes: a path, bytes, or a list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from macecl.engine import Engine
from macecl.errors import ConfigError, InputError
from macecl.graph.ir import Dim, TensorSpec

PROVIDER = "OpenCLExecutionProvider"
PROVIDER_OPTIONS = ("device", "compiled_program")

# onnxruntime's names of tensor types, by NumPy dtype name.
_ORT_TYPES = {"float32": "tensor(float)", "float64": "tensor(double)", "float16": "tensor(float16)",
              "int64": "tensor(int64)", "int32": "tensor(int32)", "int8": "tensor(int8)",
              "uint8": "tensor(uint8)", "bool": "tensor(bool)"}


@dataclasses.dataclass(frozen=True)
class NodeArg:
    """What ``get_inputs()`` / ``get_outputs()`` return: name, shape (dims or names), type."""

    name: str
    shape: list[Dim]
    type: str


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    producer_name: str = ""
    graph_name: str = ""
    domain: str = ""
    description: str = ""
    graph_description: str = ""
    version: int = 0
    custom_metadata_map: dict[str, str] = dataclasses.field(default_factory=dict)


class SessionOptions:
    """Accepted for compatibility; any attribute may be set (``intra_op_num_threads``...)."""

    def __init__(self) -> None:
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.graph_optimization_level = None
        self.log_severity_level = 2
        self.enable_profiling = False


class RunOptions:
    """Accepted by ``run`` for compatibility."""


def _our_provider_options(providers: Sequence[Any], provider_options: Sequence[Mapping] | None
                          ) -> dict[str, Any]:
    """The options given to OpenCLExecutionProvider, as a (name, options) pair in ``providers``
    or in ``provider_options`` beside its name (ONNX Runtime's two spellings)."""
    options: dict[str, Any] = {}
    names = []
    for index, provider in enumerate(providers):
        name, given = provider if isinstance(provider, tuple) else (provider, {})
        if provider_options is not None and index < len(provider_options):
            given = {**given, **provider_options[index]}
        names.append(name)
        if name == PROVIDER:
            options.update(given)
    if provider_options is not None and len(provider_options) != len(names):
        raise ConfigError(f"provider_options has {len(provider_options)} entries for "
                          f"{len(names)} providers; give one per provider")
    unknown = sorted(set(options) - set(PROVIDER_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown {PROVIDER} option(s) {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(PROVIDER_OPTIONS)}")
    return options


def _node_arg(spec: TensorSpec) -> NodeArg:
    return NodeArg(spec.name, list(spec.shape), _ORT_TYPES.get(spec.dtype, f"tensor({spec.dtype})"))


class InferenceSession:
    """``onnxruntime.InferenceSession`` over a macecl Engine (an .onnx or .macecl path)."""

    def __init__(
        self,
        path_or_bytes: str | Path,
        sess_options: SessionOptions | None = None,
        providers: Sequence[Any] | None = None,
        provider_options: Sequence[Mapping] | None = None,
        **kwargs: Any,
    ):
        if isinstance(path_or_bytes, (bytes, bytearray)):
            raise InputError("macecl.InferenceSession takes a model path; "
                             "write the bytes to a file first")
        self._options = sess_options or SessionOptions()
        self._requested_providers = list(providers or [])
        options = _our_provider_options(self._requested_providers, provider_options)
        device = options.get("device", kwargs.get("device"))
        self._engine = Engine(path_or_bytes, device=device,
                              compiled_program=options.get("compiled_program"))

    @property
    def engine(self) -> Engine:
        return self._engine

    def get_inputs(self) -> list[NodeArg]:
        return [_node_arg(s) for s in self._engine.inputs]

    def get_outputs(self) -> list[NodeArg]:
        return [_node_arg(s) for s in self._engine.outputs]

    def get_overridable_initializers(self) -> list[NodeArg]:
        return []

    def get_providers(self) -> list[str]:
        return [PROVIDER]

    def get_provider_options(self) -> dict[str, dict]:
        return {PROVIDER: {"device": self._engine.context.device.name}}

    def get_session_options(self) -> SessionOptions:
        return self._options

    def get_modelmeta(self) -> ModelMetadata:
        graph = self._engine.graph
        known = {f.name for f in dataclasses.fields(ModelMetadata)}
        info = {k: v for k, v in graph.info.items() if k in known}
        return ModelMetadata(**info, custom_metadata_map=dict(graph.metadata))

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray],
            run_options: RunOptions | None = None) -> list[np.ndarray]:
        """Outputs in the order of ``output_names`` (all outputs when None or empty)."""
        results = self._engine.run(input_feed, output_names or None)
        return list(results.values())

    def end_profiling(self) -> str:
        return ""


def get_available_providers() -> list[str]:
    return [PROVIDER, "CPUExecutionProvider"]


def get_device() -> str:
    return "GPU"
