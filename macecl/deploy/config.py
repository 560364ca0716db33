"""The deployment file: what to ship, read from YAML with every field checked.

In the spirit of MACE's deployment file::

    library_name: ocr                       # names the output; letters, digits, . _ -
    target_devices:                         # selectors, matched as `macecl devices` lists them
      - platform: Portable Computing Language   # substrings, case-insensitive; both must
        device: pthread                          # match when both are given
      - device: Mali-G78
    runtime:
      tune: false                           # true: tune work-group sizes on each device
                                            # into tuned_opencl_parameter.bin
    models:
      - name: det                           # default: the file's stem
        path: models/det.onnx               # relative to this file
        sha256: 5f0c...                     # of the ONNX file; checked
        data_type: float32
        input_names: [x]
        input_shapes: [[1, 3, 640, 640]]    # every input, every dim fixed
        output_names: [y]
        output_shapes: [[1, 1, 640, 640]]   # optional; checked against the converted model

Errors name the file, the line and the field: ``deploy.yml:12: models[0].input_shapes: ...``.
The YAML is read as a node tree (``yaml.compose``) so that every value keeps its line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from macecl.errors import ConfigError

T = TypeVar("T")

DATA_TYPES = ("float32",)  # what the engine runs
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_TAG = "tag:yaml.org,2002:"


@dataclasses.dataclass(frozen=True)
class TargetDevice:
    """A selector of devices by platform and/or device name (case-insensitive substrings)."""

    platform: str | None
    device: str | None

    def matches(self, platform_name: str, device_name: str) -> bool:
        return ((self.platform is None or self.platform.lower() in platform_name.lower())
                and (self.device is None or self.device.lower() in device_name.lower()))

    def describe(self) -> str:
        parts = [f"{k}: {v}" for k, v in (("platform", self.platform), ("device", self.device))
                 if v is not None]
        return "{" + ", ".join(parts) + "}"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model to ship. ``where`` maps each field to "file:line: models[i].field"."""

    name: str
    path: Path
    sha256: str
    data_type: str
    inputs: dict[str, tuple[int, ...]]
    output_names: list[str]
    output_shapes: list[tuple[int, ...]] | None
    where: dict[str, str]


@dataclasses.dataclass(frozen=True)
class DeployConfig:
    source: Path
    library_name: str
    models: list[ModelSpec]
    target_devices: list[TargetDevice]
    tune: bool


class _Field:
    """A YAML node with its dotted path: what an error message points at."""

    def __init__(self, node: yaml.Node, path: str, file: str):
        self.node, self.path, self.file = node, path, file

    @property
    def where(self) -> str:
        return f"{self.file}:{self.node.start_mark.line + 1}: {self.path or 'the top level'}"

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {message}")

    def child(self, node: yaml.Node, name: str | int) -> _Field:
        path = f"{self.path}[{name}]" if isinstance(name, int) else f"{self.path}.{name}"
        return _Field(node, path.lstrip("."), self.file)

    def mapping(self, required: tuple[str, ...], optional: tuple[str, ...] = ()
                ) -> dict[str, _Field]:
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"expected a mapping with {', '.join(required + optional)}, "
                             f"got {_kind(self.node)}")
        fields = {}
        for key, value in self.node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name not in required + optional:
                raise self.child(key, str(name)).error(
                    f"unknown field; expected {', '.join(required + optional)}")
            if name in fields:
                raise self.child(key, name).error("given twice")
            fields[name] = self.child(value, name)
        for name in required:
            if name not in fields:
                raise self.child(self.node, name).error("missing (a required field)")
        return fields

    def items(self, parse: Callable[[_Field], T], allow_empty: bool = False) -> list[T]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"expected a list, got {_kind(self.node)}")
        if not self.node.value and not allow_empty:
            raise self.error("expected a list of at least one item, got an empty list")
        return [parse(self.child(item, i)) for i, item in enumerate(self.node.value)]

    def scalar(self, kind: str, expected: str) -> Any:
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag != _TAG + kind:
            raise self.error(f"expected {expected}, got {_kind(self.node)}")
        return yaml.SafeLoader("").construct_object(self.node)

    def text(self) -> str:
        value = self.scalar("str", "a string")
        if not value.strip():
            raise self.error("expected a string, got an empty one")
        return value

    def flag(self) -> bool:
        return self.scalar("bool", "true or false")

    def shape(self) -> tuple[int, ...]:
        def dim(field: _Field) -> int:
            value = field.scalar("int", "a dimension (a whole number of at least 1)")
            if value < 1:
                raise field.error(f"expected a dimension of at least 1, got {value}")
            return value

        return tuple(self.items(dim))


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kind = node.tag.removeprefix(_TAG)
    return "nothing" if kind == "null" else f"{kind} {node.value!r}"


def _name(field: _Field) -> str:
    value = field.text()
    if not _NAME.fullmatch(value):
        raise field.error(f"expected letters, digits, '.', '_' or '-', got {value!r}")
    return value


def _target(field: _Field) -> TargetDevice:
    fields = field.mapping((), ("platform", "device"))
    if not fields:
        raise field.error("expected platform and/or device, got an empty mapping")
    given = {name: f.text() for name, f in fields.items()}
    return TargetDevice(given.get("platform"), given.get("device"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model(field: _Field, directory: Path) -> ModelSpec:
    fields = field.mapping(
        ("path", "sha256", "data_type", "input_names", "input_shapes", "output_names"),
        ("name", "output_shapes"))
    where = {name: f.where for name, f in fields.items()}
    path = directory / fields["path"].text()
    if not path.is_file():
        raise fields["path"].error(f"no file {path}")
    checksum = fields["sha256"].text().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", checksum):
        raise fields["sha256"].error("expected the SHA-256 of the model file, 64 hex digits")
    actual = _sha256(path)
    if actual != checksum:
        raise fields["sha256"].error(f"{path} has SHA-256 {actual}; the file was changed "
                                     "or the checksum is wrong")
    data_type = fields["data_type"].text()
    if data_type not in DATA_TYPES:
        raise fields["data_type"].error(f"expected {' or '.join(DATA_TYPES)}, got {data_type!r}")
    input_names = fields["input_names"].items(_Field.text)
    input_shapes = fields["input_shapes"].items(_Field.shape)
    if len(input_shapes) != len(input_names):
        raise fields["input_shapes"].error(
            f"expected one shape per input name ({len(input_names)}), got {len(input_shapes)}")
    if len(set(input_names)) != len(input_names):
        raise fields["input_names"].error("a name is listed twice")
    output_names = fields["output_names"].items(_Field.text)
    output_shapes = None
    if "output_shapes" in fields:
        output_shapes = fields["output_shapes"].items(_Field.shape)
        if len(output_shapes) != len(output_names):
            raise fields["output_shapes"].error(
                f"expected one shape per output name ({len(output_names)}), "
                f"got {len(output_shapes)}")
    name = _name(fields["name"]) if "name" in fields else path.stem
    return ModelSpec(name, path, checksum, data_type, dict(zip(input_names, input_shapes)),
                     output_names, output_shapes, where)


def load_config(path: str | Path) -> DeployConfig:
    """Read and check the deployment file ``path``; ConfigError names the line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the deployment file {path}: {error}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else 1
        raise ConfigError(f"{path}:{line}: not valid YAML: {error.problem}") from None
    if root is None:
        raise ConfigError(f"{path}:1: the deployment file is empty")
    top = _Field(root, "", str(path))
    fields = top.mapping(("library_name", "models", "target_devices"), ("runtime",))
    tune = False
    if "runtime" in fields:
        runtime = fields["runtime"].mapping((), ("tune",))
        if "tune" in runtime:
            tune = runtime["tune"].flag()
    models = fields["models"].items(lambda f: _model(f, path.parent))
    names = [m.name for m in models]
    for index, model in enumerate(models):
        if names.index(model.name) != index:
            raise ConfigError(f"{model.where.get('name', model.where['path'])}: the model name "
                              f"{model.name!r} is used twice; give each model its own name")
    return DeployConfig(path, _name(fields["library_name"]), models,
                        fields["target_devices"].items(_target), tune)
