"""Shipped precompiled binaries and the read-only cache, on PoCL: the shipped file is only
read, new programs go to the writable cache, and read-only mode writes nothing at all."""

from __future__ import annotations

import os

import numpy as np
import pytest
from tiny_models import chain_model, zeros_for

import macecl
from macecl import config
from macecl.errors import ConfigError
from macecl.runtime.context import default_cache_path

SHAPE = [1, 3, 4, 4]


@pytest.fixture
def shipped(tmp_path):
    """A precompiled file holding the programs of a Relu -> Tanh model, made read-only on
    disk as an app's assets are; (model path, file path)."""
    model = chain_model(tmp_path / "relu_tanh.onnx", ["Relu", "Tanh"], SHAPE)
    path = tmp_path / "assets" / config.CACHE_FILE_NAME
    context = macecl.GPUContextBuilder().set_opencl_cache_full_path(path).finalize()
    with macecl.Engine(model, context=context) as engine:
        engine.warmup()
    context.close()
    path.chmod(0o444)
    return model, path


def snapshot(path):
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_ino


def test_engine_takes_every_program_from_a_shipped_file_and_writes_nothing(shipped):
    model, path = shipped
    before = snapshot(path)
    with macecl.Engine(model, compiled_program=path) as engine:
        assert engine.stats.programs_from_precompiled > 0
        assert engine.stats.programs_from_source == engine.stats.programs_from_cache == 0
        engine.warmup()
    assert snapshot(path) == before
    assert not default_cache_path().exists()  # nothing new, so nothing to save


def test_new_programs_land_in_the_writable_cache_not_the_shipped_file(shipped, tmp_path):
    _, path = shipped
    before = snapshot(path)
    other = chain_model(tmp_path / "relu_sigmoid.onnx", ["Relu", "Sigmoid"], SHAPE)
    with macecl.Engine(other, compiled_program=str(path)) as engine:
        engine.warmup()  # program counts are final once the builds in flight are done
        assert engine.stats.programs_from_precompiled >= 1  # Relu's program
        assert engine.stats.programs_from_source >= 1  # Sigmoid's
        built = engine.stats.programs_from_source
    assert snapshot(path) == before
    with macecl.Engine(other, compiled_program=path) as again:
        assert again.stats.programs_from_cache == built
        assert again.stats.programs_from_source == 0
        assert again.context.cache_path == default_cache_path() != path


def test_compiled_program_as_bytes_or_a_list(shipped):
    model, path = shipped
    with macecl.Engine(model, compiled_program=path.read_bytes()) as engine:
        precompiled = engine.stats.programs_from_precompiled
        assert precompiled > 0 and engine.stats.programs_from_source == 0
    with macecl.Engine(model, compiled_program=[path, path.read_bytes()]) as engine:
        assert engine.stats.programs_from_precompiled == precompiled


def test_compiled_program_with_a_shared_context_is_refused(shipped):
    model, path = shipped
    context = macecl.GPUContextBuilder().finalize()
    with pytest.raises(ConfigError, match="GPUContextBuilder"):
        macecl.Engine(model, context=context, compiled_program=path)
    with pytest.raises(ConfigError, match="not int"):
        macecl.Engine(model, compiled_program=[3])
    context.close()


def test_inference_session_takes_the_shipped_file_as_a_provider_option(shipped):
    model, path = shipped
    session = macecl.InferenceSession(
        str(model), providers=[("OpenCLExecutionProvider", {"compiled_program": str(path)})])
    assert session.engine.stats.programs_from_precompiled > 0
    assert session.engine.stats.programs_from_source == 0
    (y,) = session.run(None, zeros_for(SHAPE))
    np.testing.assert_array_equal(y, np.zeros(SHAPE, np.float32))
    spelled_apart = macecl.InferenceSession(
        str(model), providers=["CPUExecutionProvider", "OpenCLExecutionProvider"],
        provider_options=[{}, {"compiled_program": path.read_bytes()}])
    assert spelled_apart.engine.stats.programs_from_precompiled > 0
    with pytest.raises(ConfigError, match="unknown OpenCLExecutionProvider option.*'tune'"):
        macecl.InferenceSession(str(model), providers=[("OpenCLExecutionProvider", {"tune": 1})])


def test_read_only_mode_creates_no_directory_lock_or_converted_model(tmp_path, cache_dir):
    model = chain_model(tmp_path / "m.onnx", ["Relu", "Tanh"], SHAPE)
    with config.override(cache_read_only=True), macecl.Engine(model, profiling=True) as engine:
        engine.warmup(rounds=2)
        assert engine.stats.programs_from_source > 0
        assert engine.context.flush() == 0
        assert engine.tune(repeats=1)  # tuned sizes are used in memory, not saved
    assert not cache_dir.exists()


def test_read_only_mode_uses_an_existing_cache_and_never_changes_it(shipped, tmp_path):
    model, path = shipped
    path.chmod(0o644)  # an ordinary cache file: read-only mode alone must keep it unchanged
    (path.parent / f"{path.name}.lock").unlink()  # left by the writer that made the file
    before = snapshot(path)
    other = chain_model(tmp_path / "relu_sigmoid.onnx", ["Relu", "Sigmoid"], SHAPE)
    for name in (model, other):
        context = (macecl.GPUContextBuilder().set_opencl_cache_full_path(path)
                   .set_cache_read_only().finalize())
        with macecl.Engine(name, context=context) as engine:
            assert engine.stats.programs_from_cache >= 1
            engine.warmup()
        context.close()
    assert snapshot(path) == before
    assert sorted(os.listdir(path.parent)) == [config.CACHE_FILE_NAME]  # no lock file


@pytest.mark.parametrize("text, expected", [("1", True), ("yes", True), ("0", False),
                                            ("off", False)])
def test_read_only_setting_from_the_environment(monkeypatch, text, expected):
    monkeypatch.setenv("MACECL_CACHE_READ_ONLY", text)
    assert config.settings().cache_read_only is expected


def test_read_only_setting_that_is_not_a_flag_is_named(monkeypatch):
    monkeypatch.setenv("MACECL_CACHE_READ_ONLY", "maybe")
    with pytest.raises(ConfigError, match="MACECL_CACHE_READ_ONLY='maybe'"):
        config.settings()
