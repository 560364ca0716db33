"""The tuned-parameters file (MCLT): round trip, every kind of damage refused by name, and the
store's merge-writes, set-aside of damaged files and per-device look-up. No device needed."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from macecl import CacheWarning, ReusePolicy
from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey
from macecl.cache.tuning_format import TunedLaunch, TuningFile, TuningFormatError, encode
from macecl.cache.tuning_store import TuningStore

GPU = DeviceFingerprint("NVIDIA CUDA", "NVIDIA Corporation", "OpenCL 3.0 CUDA 12.4",
                        "NVIDIA H100", "NVIDIA Corporation", "OpenCL 3.0 CUDA",
                        "550.54", "OpenCL C 1.2", 64, ("cl_khr_fp16",))
GPU_UPDATED = dataclasses.replace(GPU, driver_version="560.10")
OTHER = dataclasses.replace(GPU, device_name="NVIDIA A100")
CONV = ProgramKey.for_source("conv2d", "kernel void conv2d() {}", ["-DACTIVATION=1"])


def launch(device=GPU, kernel="conv2d", global_size=(4096,), local_size=(64,), best=900):
    return TunedLaunch(device, CONV, kernel, global_size, local_size, best, 1000)


def test_round_trip_keeps_every_field_and_several_devices():
    launches = [launch(), launch(GPU, "conv2d", (32, 16, 3), (8, 4, 1)),
                launch(OTHER, local_size=None), launch(GPU_UPDATED, "pool", (7,), (7,), 5)]
    parsed = TuningFile(encode(launches))
    assert sorted(parsed.entries, key=repr) == sorted(launches, key=repr)
    assert set(parsed.devices) == {GPU, OTHER, GPU_UPDATED}


def test_encoding_is_canonical():
    a, b = launch(), launch(OTHER)
    assert encode([a, b]) == encode([b, a])


def test_look_up_follows_the_reuse_policy_and_prefers_the_exact_driver():
    exact = launch(local_size=(128,))
    older = launch(GPU_UPDATED, local_size=(32,))
    other = launch(OTHER, kernel="other")
    parsed = TuningFile(encode([exact, older, other]))
    same_gpu = parsed.for_device(GPU, ReusePolicy.REUSE_SAME_GPU)
    assert same_gpu == {exact.key: exact}
    assert parsed.for_device(GPU_UPDATED, ReusePolicy.REUSE_SAME_GPU) == {older.key: older}
    only_older = TuningFile(encode([older]))
    assert only_older.for_device(GPU, ReusePolicy.REUSE_SAME_GPU) == {older.key: older}
    assert only_older.for_device(GPU, ReusePolicy.REUSE_NONE) == {}


def damaged(change) -> bytes:
    data = bytearray(encode([launch(), launch(kernel="pool", global_size=(9, 9), local_size=(3, 3))]))
    change(data)
    return bytes(data)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.__setitem__(slice(0, 4), b"MCLP"), "not a tuned-parameters file"),
    (lambda d: d.__setitem__(slice(4, 6), struct.pack("<H", 9)), "version 9"),
    (lambda d: d.__delitem__(slice(60, 61)), "truncated or extended"),
    (lambda d: d.__setitem__(40, d[40] ^ 1), "SHA-256"),
    (lambda d: d.__setitem__(slice(-40, -32), b"XXXXXXXX"), "trailer magic"),
    (lambda d: d.__delitem__(slice(10, len(d))), "shorter than an empty"),
])
def test_damage_is_refused_by_name(change, message):
    with pytest.raises(TuningFormatError, match=message):
        TuningFile(damaged(change))


def resigned(data: bytearray) -> bytes:
    """Re-hash a file after editing its body, as a hostile or buggy writer could."""
    import hashlib

    end = len(data) - 40
    return bytes(data[:end]) + b"MCLTEND\x00" + hashlib.sha256(bytes(data[:end])).digest()


@pytest.mark.parametrize("field, value, message", [
    (16, 2**40, "truncated or extended"),  # body size
    (8, 2**31, "cannot fit"),  # device count
    (12, 2**31, "cannot fit"),  # entry count
])
def test_huge_counts_and_lengths_are_refused_without_allocating(field, value, message):
    data = bytearray(encode([launch()]))
    fmt = "<Q" if field == 16 else "<I"
    data[field: field + struct.calcsize(fmt)] = struct.pack(fmt, value)
    with pytest.raises(TuningFormatError, match=message):
        TuningFile(resigned(data))


def test_store_merges_devices_and_replaces_the_same_launch(tmp_path):
    store = TuningStore(tmp_path / "deep" / "tuned_opencl_parameter.bin")
    assert store.load() is None
    assert store.save([launch(), launch(OTHER)])
    assert store.save([launch(local_size=(256,))])
    entries = store.load().entries
    assert len(entries) == 2
    assert {e.local_size for e in entries if e.device == GPU} == {(256,)}


def test_store_sets_a_damaged_file_aside_and_warns(tmp_path):
    path = tmp_path / "tuned_opencl_parameter.bin"
    path.write_bytes(damaged(lambda d: d.__setitem__(40, d[40] ^ 1)))
    store = TuningStore(path)
    with pytest.warns(CacheWarning, match="damaged .*SHA-256.*moved aside"):
        assert store.load() is None
    assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
    assert store.save([launch()]) and len(store.load().entries) == 1


def test_store_on_unwritable_storage_warns_and_returns_false(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.warns(CacheWarning, match="not saved"):
        assert not TuningStore(blocker / "tuned_opencl_parameter.bin").save([launch()])


def test_a_read_only_store_neither_moves_a_damaged_file_nor_writes(tmp_path):
    path = tmp_path / "tuned_opencl_parameter.bin"
    damage = damaged(lambda d: d.__setitem__(40, d[40] ^ 1))
    path.write_bytes(damage)
    store = TuningStore(path, writable=False)
    with pytest.warns(CacheWarning, match="left in place"):
        assert store.load() is None
    assert not store.save([launch()])
    assert path.read_bytes() == damage and not path.with_name(path.name + ".corrupt").exists()


def test_the_store_follows_the_cache_file_rules(tmp_path):
    """The tuned-parameters file is opened and created like the cache (safe_files): a symbolic
    link in its place (another user's file, say) is refused and moved aside as the link, never
    its target, and what the store creates is its owner's alone."""
    target = tmp_path / "elsewhere.bin"
    target.write_bytes(encode([launch()]))
    path = tmp_path / "cache" / "tuned_opencl_parameter.bin"
    path.parent.mkdir()
    path.symlink_to(target)
    store = TuningStore(path)
    with pytest.warns(CacheWarning, match="refused .*symbolic link.*moved aside"):
        assert store.load() is None
    assert path.with_name(path.name + ".corrupt").is_symlink() and target.exists()
    fresh = TuningStore(tmp_path / "new" / "tuned_opencl_parameter.bin")
    assert fresh.save([launch()])
    assert fresh.path.stat().st_mode & 0o777 == 0o600
    assert fresh.path.parent.stat().st_mode & 0o777 == 0o700


def test_cache_inspect_and_verify_read_a_tuned_parameters_file(tmp_path):
    import json

    from typer.testing import CliRunner

    from macecl.cli import app

    path = tmp_path / "tuned_opencl_parameter.bin"
    path.write_bytes(encode([launch(), launch(OTHER, "pool", (9, 9), None, 700)]))
    runner = CliRunner()
    shown = runner.invoke(app, ["cache", "inspect", str(path), "--json"])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["format"] == "MCLT" and {d["device_name"] for d in info["devices"]} == {
        "NVIDIA H100", "NVIDIA A100"}
    by_kernel = {e["kernel"]: e for e in info["launches"]}
    assert by_kernel["conv2d"]["local_size"] == [64] and by_kernel["pool"]["local_size"] is None
    assert by_kernel["pool"]["global_size"] == [9, 9] and by_kernel["pool"]["best_ns"] == 700
    table = runner.invoke(app, ["cache", "inspect", str(path)])
    assert table.exit_code == 0 and "driver's" in table.stdout and "NVIDIA A100" in table.stdout
    sound = runner.invoke(app, ["cache", "verify", str(path)])
    assert sound.exit_code == 0 and "2 launch shape(s) for 2 device(s)" in sound.stdout
    data = bytearray(path.read_bytes())
    data[40] ^= 1
    path.write_bytes(bytes(data))
    for command in ("inspect", "verify"):
        bad = runner.invoke(app, ["cache", command, str(path)])
        assert bad.exit_code == 1 and "not a sound tuned-parameters (MCLT) file" in bad.output
        assert "SHA-256" in bad.output
