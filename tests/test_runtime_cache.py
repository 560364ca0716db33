"""The runtime and its cache on the real PoCL driver: cold and warm starts, damage, other
devices, rejected binaries, concurrent writers, read-only storage, precompiled binaries."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys

import pytest
from conftest import (
    WORKLOAD,
    assert_added,
    build_context,
    cache_with_add,
    finish_workload,
    foreign_binary,
    run_add,
    run_workload,
    start_workload,
)

from macecl import CacheWarning, ReusePolicy, config, select_device
from macecl.cache.format import CacheFile, encode, entries_of
from macecl.runtime.programs import NO_PRECOMPILED_MESSAGE


def programs_in(path) -> set[tuple[str, str]]:
    cache = CacheFile(path.read_bytes())
    assert cache.verify() == []
    return {(e.key.name, e.key.options) for e in cache.entries}


def rewrite(path, change) -> None:
    """Re-encode the cache file with ``change`` applied to each entry (a well-formed file)."""
    path.write_bytes(encode([change(e) for e in entries_of(CacheFile(path.read_bytes()))]))


def test_cold_start_writes_the_file_and_a_second_process_builds_nothing(cache_dir):
    path = cache_dir / "mace_cl_compiled_program.bin"
    cold = run_workload(path, [1, 2, 3])
    assert (cold["from_source"], cold["from_cache"], cold["saved"]) == (3, 0, 3)
    assert cold["build_seconds"] > 0
    assert programs_in(path) == {("add", f"-DCONSTANT={c}") for c in (1, 2, 3)}
    warm = run_workload(path, [1, 2, 3])
    assert (warm["from_source"], warm["from_cache"], warm["saved"]) == (0, 3, 0)
    assert warm["build_seconds"] == 0 and warm["warnings"] == []


def test_programs_are_written_at_flush_not_at_build(cache_dir):
    context = build_context()
    assert_added(run_add(context, 5), 5)
    assert not context.cache_path.exists()
    assert context.flush() == 1 and context.cache_path.exists()
    assert context.flush() == 0  # nothing new since


@pytest.mark.parametrize("region", ["header", "fingerprints", "table", "payload"])
def test_damage_in_each_region_is_detected_and_recovered(cache_dir, region):
    path = cache_with_add(7)
    cache = CacheFile(path.read_bytes())
    h = cache.header
    position = {"header": 30, "fingerprints": h.devices_offset + 20,
                "table": h.table_offset + 5, "payload": h.payload_offset + 100}[region]
    damaged = bytearray(path.read_bytes())
    damaged[position] ^= 0x20
    path.write_bytes(bytes(damaged))

    with pytest.warns(CacheWarning, match="damaged") as caught:
        second = build_context()
        assert_added(run_add(second, 7), 7)
    assert len(caught) == 1
    assert second.stats.from_source == 1 and second.stats.from_cache == 0
    assert path.with_name(path.name + ".corrupt").read_bytes() == bytes(damaged)
    assert second.flush() == 1
    assert programs_in(path) == {("add", "-DCONSTANT=7")}


def test_entry_from_another_device_is_not_used(cache_dir):
    path = cache_with_add(3)
    rewrite(path, lambda e: dataclasses.replace(
        e, device=dataclasses.replace(e.device, device_name="Mali-G78")))

    second = build_context()
    assert_added(run_add(second, 3), 3)
    assert (second.stats.from_cache, second.stats.from_source) == (0, 1)
    second.flush()
    devices = {d.device_name for d in CacheFile(path.read_bytes()).devices}
    assert devices == {"Mali-G78", second.device.name}  # the other device's entry is kept


@pytest.mark.parametrize("policy, expect_cache", [
    (ReusePolicy.REUSE_SAME_GPU, 1), (ReusePolicy.REUSE_NONE, 0)])
def test_driver_update_follows_the_reuse_policy(cache_dir, policy, expect_cache):
    path = cache_with_add(4)
    rewrite(path, lambda e: dataclasses.replace(
        e, device=dataclasses.replace(e.device, driver_version="0.9-old")))

    second = build_context(opencl_cache_reuse_policy=policy)
    assert_added(run_add(second, 4), 4)
    assert second.stats.from_cache == expect_cache
    assert second.stats.from_source == 1 - expect_cache
    # Either way the program is stored again under the current driver, replacing the old.
    assert second.flush() == 1
    drivers = {d.driver_version for d in CacheFile(path.read_bytes()).devices}
    assert drivers == {second.device.fingerprint.driver_version}


def test_rejected_binary_falls_back_to_source(cache_dir):
    path = cache_with_add(9)
    # A well-formed entry whose bytes the driver cannot load (another driver's binary, or one
    # from a driver that changed its format): a real CL_INVALID_BINARY.
    foreign = foreign_binary(select_device())
    rewrite(path, lambda e: dataclasses.replace(e, payload=foreign))

    with pytest.warns(CacheWarning, match="CL_INVALID_BINARY") as caught:
        second = build_context()
        assert_added(run_add(second, 9), 9)
    assert len(caught) == 1
    assert (second.stats.rejected_binaries, second.stats.from_source) == (1, 1)
    assert second.flush() == 1  # the rebuilt binary replaces the rejected one
    third = build_context()
    assert_added(run_add(third, 9), 9)
    assert third.stats.from_cache == 1 and third.stats.rejected_binaries == 0


def test_two_processes_building_different_programs_leave_the_union(cache_dir):
    path = cache_dir / "mace_cl_compiled_program.bin"
    for _round in range(2):
        path.unlink(missing_ok=True)
        first = start_workload(path, [11, 12, 13])
        second = start_workload(path, [21, 22, 23])
        results = [finish_workload(first), finish_workload(second)]
        assert [r["saved"] for r in results] == [3, 3]
        assert programs_in(path) == {("add", f"-DCONSTANT={c}") for c in (11, 12, 13, 21, 22, 23)}


def readonly_command(directory, command: list[str]) -> list[str]:
    """Run ``command`` with ``directory`` read-only. Root ignores file modes, so as root the
    directory is bind-mounted read-only in a private user and mount namespace."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return command
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    return ["unshare", "-rm", "sh", "-c", script, "sh", str(directory), *command]


@pytest.mark.parametrize("with_existing_cache", [True, False])
def test_read_only_directory_still_runs(cache_dir, with_existing_cache):
    cache_dir.mkdir()
    path = cache_dir / "mace_cl_compiled_program.bin"
    if with_existing_cache:
        run_workload(path, [1])
    before = path.read_bytes() if with_existing_cache else None
    command = readonly_command(cache_dir, [sys.executable, str(WORKLOAD), str(path), "1", "2"])
    env = {**os.environ, "POCL_KERNEL_CACHE": "0"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    cache_dir.chmod(0o755)
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["from_cache"] == (1 if with_existing_cache else 0)
    assert result["saved"] == 0
    assert len(result["warnings"]) == 1 and "running without saving" in result["warnings"][0]
    assert (path.read_bytes() if path.exists() else None) == before


def test_precompiled_binaries_come_first_and_are_never_written(cache_dir, tmp_path, caplog):
    shipped = tmp_path / "shipped.bin"
    builder = build_context(shipped)
    assert_added(run_add(builder, 1), 1)
    builder.flush()
    shipped.chmod(0o444)
    shipped_bytes = shipped.read_bytes()

    for source in ({"opencl_binary_paths": [shipped]}, {"opencl_binary_bytes": [shipped_bytes]}):
        shutil.rmtree(cache_dir, ignore_errors=True)
        with caplog.at_level(logging.DEBUG, logger="macecl.runtime.programs"):
            app = build_context(**source)
            assert_added(run_add(app, 1), 1)  # shipped
            assert_added(run_add(app, 2), 2)  # not shipped: from source, saved to the cache
        assert (app.stats.from_precompiled, app.stats.from_source) == (1, 1)
        assert caplog.messages.count(NO_PRECOMPILED_MESSAGE) == 1
        caplog.clear()
        assert app.flush() == 1
        assert programs_in(app.cache_path) == {("add", "-DCONSTANT=2")}
        assert shipped.read_bytes() == shipped_bytes


def test_damaged_precompiled_file_is_ignored_with_a_warning(tmp_path):
    shipped = tmp_path / "shipped.bin"
    shipped.write_bytes(b"MCLP" + bytes(300))
    with pytest.warns(CacheWarning, match="not usable"):
        app = build_context(opencl_binary_paths=[shipped])
    assert_added(run_add(app, 1), 1)
    assert app.stats.from_source == 1


def test_cache_location_follows_settings(tmp_path):
    with config.override(cache_dir=tmp_path / "elsewhere"):
        assert build_context().cache_path == tmp_path / "elsewhere" / "mace_cl_compiled_program.bin"
    context = build_context(storage_path=tmp_path / "store")
    assert context.cache_path == tmp_path / "store" / "mace_cl_compiled_program.bin"
    full = tmp_path / "x" / "my.bin"
    assert build_context(full, storage_path=tmp_path / "store").cache_path == full


def test_a_stored_binary_runs_with_the_options_it_was_built_with(cache_dir):
    """A program built with -cl-denorms-are-zero (every CPU program: ops/traits.py) flushes a
    denormal input to zero, and so does the same program loaded from the cache file, whose
    binary the driver must be handed that option again (cache/fingerprint.py's
    binary_options). Loaded with no options, PoCL ran it with denormals live: 100x slower
    where attention probabilities underflow."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    import macecl

    one = numpy_helper.from_array(np.ones((1, 16), np.float32), "one")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "one"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [one])
    path = cache_dir / "mul.onnx"
    cache_dir.mkdir(exist_ok=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    x = np.full((1, 16), 1e-40, np.float32)  # denormal
    from macecl.ops.traits import DeviceTraits

    results = []
    for _ in range(2):  # built from source, then from the cache file
        with macecl.Engine(path) as engine:
            results.append(engine.run({"x": x})["y"])
            cpu = DeviceTraits.of(engine.context.device.cl_device).cpu
    assert engine.stats.programs_from_cache >= 1
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], np.zeros_like(x) if cpu else x)
