"""The deployment workflow on PoCL: a YAML file in, converted models, one precompiled
program file (a section a device present), a manifest out; every bad field named with its
line."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tiny_models import chain_model
from typer.testing import CliRunner

import macecl
from macecl import config
from macecl.cache.store import opened
from macecl.cache.tuning_format import FILE_NAME as PARAMETER_FILE_NAME
from macecl.cache.tuning_format import TuningFile
from macecl.cli import app
from macecl.deploy import build, load_config
from macecl.errors import ConfigError
from macecl.runtime.device import list_devices

runner = CliRunner()

TEMPLATE = """\
library_name: tiny
target_devices:
  - platform: portable computing
  - device: Mali-G78
runtime:
  tune: false
models:
  - name: first
    path: a.onnx
    sha256: {a}
    data_type: float32
    input_names: [x]
    input_shapes: [[1, 3, 4, 4]]
    output_names: [y]
    output_shapes: [[1, 3, 4, 4]]
  - path: b.onnx
    sha256: {b}
    data_type: float32
    input_names: [x]
    input_shapes: [[2, 8]]
    output_names: [y]
"""


@pytest.fixture(autouse=True)
def on_pocl(cache_dir):
    """The deployment files target PoCL: the apps in these tests open PoCL too, also where a
    GPU would be the default device (the GPU machine)."""
    index = next(d.index for d in list_devices()
                 if d.fingerprint.platform_name == "Portable Computing Language")
    with config.override(device=str(index)):
        yield


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(tmp_path):
    """Two tiny models and a deployment file for them; the file's path."""
    a = chain_model(tmp_path / "a.onnx", ["Relu", "Tanh"], [1, 3, "H", 4])
    b = chain_model(tmp_path / "b.onnx", ["Sigmoid"], ["N", 8])
    path = tmp_path / "deploy.yml"
    path.write_text(TEMPLATE.format(a=digest(a), b=digest(b)))
    return path


def edited(path, old: str, new: str):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_convert_config_writes_models_binary_and_manifest(project, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", "--config", str(project), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "compiling 3 programs on" in result.output  # the progress bar of that step
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["first", "b"]
    assert manifest["models"][1]["sha256"] == digest(tmp_path / "b.onnx")
    assert manifest["models"][1]["outputs"] == [{"name": "y", "shape": [2, 8]}]
    assert manifest["macecl_version"] == macecl.__version__
    assert manifest["skipped_targets"] == [
        {"selector": "{device: Mali-G78}", "reason": "no such device on the machine that "
                                                     "built this"}]
    (device,) = manifest["devices"]
    assert device["fingerprint"]["platform_name"] == "Portable Computing Language"
    binary = out / config.CACHE_FILE_NAME
    with opened(binary) as cache:
        assert len(cache.devices) == 1 and not cache.verify()
        assert device["programs"] == len(cache.entries) == 3
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {"first.macecl", "b.macecl", config.CACHE_FILE_NAME}
    for name, entry in listed.items():
        assert entry["sha256"] == digest(out / name)
        assert entry["bytes"] == (out / name).stat().st_size
    assert sorted(p.name for p in out.iterdir()) == sorted([*listed, "manifest.json"])
    assert manifest["tuned"] is False and device["tuned_launches"] == 0


def test_an_app_loads_the_shipped_files_without_building_anything(project, tmp_path):
    out = tmp_path / "out"
    build(load_config(project), out)
    binary = out / config.CACHE_FILE_NAME
    before = binary.read_bytes()
    x = np.linspace(-2, 2, 48, dtype=np.float32).reshape(1, 3, 4, 4)
    with macecl.Engine(out / "first.macecl", compiled_program=binary) as engine:
        assert engine.stats.programs_from_precompiled == 2
        assert engine.stats.programs_from_source == engine.stats.programs_from_cache == 0
        np.testing.assert_allclose(engine.run({"x": x})["y"], np.tanh(np.maximum(x, 0)),
                                   atol=1e-6)
    assert binary.read_bytes() == before
    assert not (out / f"{config.CACHE_FILE_NAME}.lock").exists()


def test_the_binary_holds_just_the_programs_the_device_runs(tmp_path):
    """Kernel variants are chosen by the device's traits (PoCL's convolutions are not a GPU's):
    what is precompiled must be what an engine on that device asks for, and nothing more."""
    weights = numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weights])
    model = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                ir_version=8), model)
    config_file = tmp_path / "deploy.yml"
    config_file.write_text(
        "library_name: conv\ntarget_devices:\n  - platform: portable computing\n"
        f"models:\n  - path: conv.onnx\n    sha256: {digest(model)}\n    data_type: float32\n"
        "    input_names: [x]\n    input_shapes: [[1, 3, 16, 16]]\n    output_names: [y]\n")
    out = tmp_path / "out"
    build(load_config(config_file), out)
    binary = out / config.CACHE_FILE_NAME
    with macecl.Engine(out / "conv.macecl", compiled_program=binary) as engine:
        engine.run({"x": np.ones((1, 3, 16, 16), np.float32)})
        used = engine.stats.programs_from_precompiled
        assert used > 0 and engine.stats.programs_from_source == 0
    with opened(binary) as cache:
        assert len(cache.entries) == used


def test_a_second_build_replaces_the_first(project, tmp_path):
    out = tmp_path / "out"
    build(load_config(project), out)
    edited(project, "input_shapes: [[2, 8]]", "input_shapes: [[5, 8]]")
    manifest = build(load_config(project), out)
    assert manifest["models"][1]["inputs"] == [{"name": "x", "shape": [5, 8]}]
    with opened(out / config.CACHE_FILE_NAME) as cache:
        assert len(cache.entries) == manifest["devices"][0]["programs"] == 3


def test_tune_true_ships_the_tuned_parameters_of_every_launch(project, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", "--config", str(edited(project, "tune: false",
                                                                   "tune: true")), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "tuning first on" in result.output and "tuning b on" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    parameters = out / PARAMETER_FILE_NAME
    assert manifest["tuned"] is True
    assert {f["path"] for f in manifest["files"]} >= {PARAMETER_FILE_NAME}
    (device,) = manifest["devices"]
    entries = TuningFile(parameters.read_bytes()).entries
    assert device["tuned_launches"] == len(entries) == 3  # Relu, Tanh, Sigmoid: one launch each
    assert not (out / f"{PARAMETER_FILE_NAME}.lock").exists()


def test_quiet_and_json_print_no_progress(project, tmp_path):
    result = runner.invoke(app, ["convert", "--config", str(project), "-o",
                                 str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["library_name"] == "tiny"
    quiet = runner.invoke(app, ["convert", "--config", str(project), "-o",
                                str(tmp_path / "out2"), "--quiet"])
    assert quiet.exit_code == 0 and "compiling" not in quiet.output
    assert "precompiled 3 programs" in quiet.output


# (old text, new text, the line and field of the error, what it says)
BAD_FIELDS = [
    ("    sha256: {a}\n", "", 8, "models[0].sha256", "missing"),
    ("[[1, 3, 4, 4]]\n    output_names", "[[1, 3, four, 4]]\n    output_names", 13,
     "models[0].input_shapes[0][2]", "expected a dimension"),
    ("[[2, 8]]", "[[2, 0]]", 20, "models[1].input_shapes[0][1]", "at least 1, got 0"),
    ("[[2, 8]]", "[[2, 8], [1]]", 20, "models[1].input_shapes", "one shape per input name"),
    ("    input_names: [x]\n    input_shapes: [[2", "    input_name: [x]\n    input_shapes: [[2",
     19, "models[1].input_name", "unknown field"),
    ("data_type: float32\n    input_names: [x]\n    input_shapes: [[1",
     "data_type: fp16\n    input_names: [x]\n    input_shapes: [[1",
     11, "models[0].data_type", "expected float32, got 'fp16'"),
    ("tune: false", "tune: sometimes", 6, "runtime.tune", "expected true or false"),
    ("library_name: tiny\n", "", 1, "library_name", "missing"),
    ("  - device: Mali-G78\n", "  - device: Mali-G78\n    gpu: 1\n", 5,
     "target_devices[1].gpu", "unknown field"),
    ("path: a.onnx", "path: nowhere.onnx", 9, "models[0].path", "no file"),
    ("  - path: b.onnx", "  - name: first\n    path: b.onnx", 16, "models[1].name",
     "used twice"),
    ("library_name: tiny", "library_name: [tiny", 2, "", "not valid YAML"),
]


@pytest.mark.parametrize("old, new, line, field, message", BAD_FIELDS,
                         ids=[case[3] or "yaml" for case in BAD_FIELDS])
def test_bad_fields_are_named_with_their_line(project, old, new, line, field, message):
    text = project.read_text()
    old = old.format(a=digest(project.parent / "a.onnx"))
    edited(project, old, new)
    assert old in text
    with pytest.raises(ConfigError) as caught:
        load_config(project)
    assert str(caught.value).startswith(f"{project}:{line}: {field}")
    assert message in str(caught.value)


def test_a_wrong_checksum_is_refused_with_both_digests(project):
    (project.parent / "a.onnx").write_bytes((project.parent / "a.onnx").read_bytes() + b"\0")
    with pytest.raises(ConfigError) as caught:
        load_config(project)
    assert str(caught.value).startswith(f"{project}:10: models[0].sha256: ")
    assert f"has SHA-256 {digest(project.parent / 'a.onnx')}" in str(caught.value)


@pytest.mark.parametrize("old, new, line, field, message", [
    ("input_names: [x]\n    input_shapes: [[2", "input_names: [z]\n    input_shapes: [[2", 19,
     "models[1].input_names", "has inputs ['x']"),
    ("output_shapes: [[1, 3, 4, 4]]", "output_shapes: [[1, 3, 4, 5]]", 15,
     "models[0].output_shapes", "has shape [1, 3, 4, 4]"),
    ("output_names: [y]\n    output_shapes", "output_names: [logits]\n    output_shapes", 14,
     "models[0].output_names", "no output 'logits'"),
])
def test_names_and_shapes_the_model_does_not_have_are_named(project, tmp_path, old, new, line,
                                                            field, message):
    edited(project, old, new)
    result = runner.invoke(app, ["convert", "--config", str(project), "-o", str(tmp_path / "o")])
    assert isinstance(result.exception, ConfigError)  # main() prints it and exits with 1
    assert str(result.exception).startswith(f"{project}:{line}: {field}")
    assert message in str(result.exception)


def test_config_with_a_model_argument_is_refused(project, tmp_path):
    result = runner.invoke(app, ["convert", str(tmp_path / "a.onnx"), "--config", str(project),
                                 "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no MODEL" in result.output
    result = runner.invoke(app, ["convert", "--config", str(project)])
    assert result.exit_code == 1 and "-o OUT" in result.output
