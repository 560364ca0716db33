"""The `macecl` command: devices and the cache subcommands, as a user runs them."""

from __future__ import annotations

import json

from conftest import assert_added, build_context, run_add
from typer.testing import CliRunner

from macecl.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def cache_with(*constants: int):
    context = build_context()
    for constant in constants:
        assert_added(run_add(context, constant), constant)
    context.flush()
    context.close()
    return context.cache_path


def test_devices_json_lists_fingerprints():
    result = invoke("devices", "--json")
    assert result.exit_code == 0, result.output
    devices = json.loads(result.stdout)["devices"]
    assert devices and sum(d["default"] for d in devices) == 1
    assert {"device_name", "driver_version", "opencl_c_version", "address_bits",
            "extensions"} <= set(devices[0]["fingerprint"])
    assert invoke("devices").exit_code == 0


def test_inspect_shows_devices_entries_and_totals():
    path = cache_with(1, 2)
    result = invoke("cache", "inspect", path, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["header"]["entry_count"] == 2 and info["header"]["version"] == 1
    assert {e["options"] for e in info["entries"]} == {"-DCONSTANT=1", "-DCONSTANT=2"}
    assert info["totals"]["payload_bytes"] == sum(e["size"] for e in info["entries"]) > 0
    table = invoke("cache", "inspect", path.parent)  # a directory names the file inside
    assert table.exit_code == 0 and "-DCONSTANT=2" in table.stdout


def test_verify_passes_a_sound_file_and_names_the_damage():
    path = cache_with(3)
    sound = invoke("cache", "verify", path)
    assert sound.exit_code == 0 and "sound" in sound.stdout
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # in the last payload: only the full check sees it
    path.write_bytes(bytes(data))
    damaged = invoke("cache", "verify", path)
    assert damaged.exit_code == 1
    assert "SHA-256 mismatch" in damaged.output and "whole-file" in damaged.output
    data[5] ^= 0x01  # in the header
    path.write_bytes(bytes(data))
    header = invoke("cache", "verify", path)
    assert header.exit_code == 1 and "header checksum" in header.output


def test_verify_and_inspect_refuse_other_files(tmp_path):
    other = tmp_path / "model.onnx"
    other.write_bytes(b"\x08\x07" + bytes(500))
    for command in ("inspect", "verify"):
        result = invoke("cache", command, other)
        assert result.exit_code == 1 and "not an MCLP file" in result.output
    missing = invoke("cache", "verify", tmp_path / "absent.bin")
    assert missing.exit_code == 1 and "no such file" in missing.output


def test_clear_removes_the_default_cache():
    path = cache_with(4)
    result = invoke("cache", "clear")
    assert result.exit_code == 0 and str(path) in result.stdout
    assert not path.exists()
    assert "nothing to remove" in invoke("cache", "clear").stdout


def test_convert_then_run_reports_what_a_user_needs(tmp_path):
    from test_engine import small_model

    onnx_path, _ = small_model(tmp_path / "m.onnx", batch=1)
    converted = tmp_path / "m.macecl"
    result = invoke("convert", onnx_path, "-o", converted, "--input-shape", "x:1,3,4,6", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["inputs"][0]["shape"] == [1, 3, 4, 6] and converted.is_file()
    assert summary["ops"]["Sigmoid"] == 1
    np_input = tmp_path / "x.npy"
    import numpy as np

    np.save(np_input, np.ones((1, 3, 4, 6), np.float32))
    result = invoke("run", converted, "--input", f"x={np_input}", "--rounds", "3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("init_seconds", "programs_from_precompiled", "programs_from_cache",
                "programs_from_source", "first_run_seconds", "latency_ms_median", "cache_file"):
        assert key in report
    assert report["programs_from_source"] > 0 and report["outputs"]["y"]["shape"] == [1, 3, 4, 6]
    again = json.loads(invoke("run", converted, "--json").stdout)
    assert again["programs_from_cache"] == report["programs_from_source"]
    assert again["programs_from_source"] == 0


def test_run_profile_lists_every_launch(tmp_path):
    from test_engine import small_model

    onnx_path, _ = small_model(tmp_path / "m.onnx")
    result = invoke("run", onnx_path, "--input", "x=random:2,3,4,5", "--profile", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["profile"]
    assert [r["op"] for r in rows] == ["Mul", "Add", "Sigmoid", "Sub", "Relu"]
    assert all(r["ms"] >= 0 for r in rows)
    table = invoke("run", onnx_path, "--input", "x=random:1,3,4,5", "--profile")
    assert "per-op time" in table.stdout


def test_run_and_convert_refuse_bad_arguments_clearly(tmp_path):
    from test_engine import small_model

    onnx_path, _ = small_model(tmp_path / "m.onnx")
    result = invoke("run", onnx_path)  # x has symbolic dims: random data needs a shape
    assert result.exit_code == 1 and "random:D1,D2" in result.output
    result = invoke("run", onnx_path, "--input", "nope=random")
    assert result.exit_code == 1 and "'nope'" in result.output
    result = invoke("convert", onnx_path, "--input-shape", "x=1,2")
    assert result.exit_code == 1 and "NAME:D1,D2" in result.output


def test_demo_converts_a_real_model_and_starts_it_cold_then_warm(tmp_path):
    result = invoke("demo", "--cache-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "light_squeezenet" in result.output and "both runs gave the same output" in result.output
    assert (tmp_path / "mace_cl_compiled_program.bin").is_file()
    assert "MCLP v1" in result.output
