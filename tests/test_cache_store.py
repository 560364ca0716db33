"""The on-disk store: merge, atomic replace, quarantine, lock time-out (no device needed)."""

from __future__ import annotations

import filelock
import pytest

from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey
from macecl.cache.format import CacheFile
from macecl.cache.store import CacheStore
from macecl.errors import CacheWarning

DEVICE = DeviceFingerprint("P", "PV", "1", "GPU-X", "DV", "1", "100", "C", 64)
UPDATED = DeviceFingerprint("P", "PV", "1", "GPU-X", "DV", "1", "101", "C", 64)
OTHER = DeviceFingerprint("P", "PV", "1", "GPU-Y", "DV", "1", "100", "C", 64)


def key(name: str) -> ProgramKey:
    return ProgramKey.for_source(name, f"source of {name}", "")


def stored(path) -> dict[tuple[str, str], bytes]:
    cache = CacheFile(path.read_bytes())
    assert cache.verify() == []
    return {(cache.devices[e.device].device_name + "/" + cache.devices[e.device].driver_version,
             e.key.name): cache.payload(e) for e in cache.entries}


def test_two_stores_leave_the_union(tmp_path):
    path = tmp_path / "c.bin"
    first, second = CacheStore(path), CacheStore(path)
    first.load(), second.load()  # both loaded an absent file before either wrote
    assert first.save(DEVICE, {key("a"): b"A"})
    assert second.save(DEVICE, {key("b"): b"B"})
    assert stored(path) == {("GPU-X/100", "a"): b"A", ("GPU-X/100", "b"): b"B"}
    assert not list(tmp_path.glob("*.tmp")), "a temporary file was left behind"


def test_other_devices_are_kept_and_driver_update_replaces(tmp_path):
    path = tmp_path / "c.bin"
    store = CacheStore(path)
    store.save(DEVICE, {key("a"): b"old-a", key("b"): b"old-b"})
    store.save(OTHER, {key("a"): b"other-a"})
    store.save(UPDATED, {key("a"): b"new-a"})
    assert stored(path) == {
        ("GPU-X/100", "b"): b"old-b",  # not rebuilt under the new driver: kept
        ("GPU-X/101", "a"): b"new-a",  # rebuilt: replaces the old driver's entry
        ("GPU-Y/100", "a"): b"other-a",  # another device: untouched
    }
    store.save(UPDATED, {}, forget_device=True)
    assert stored(path) == {("GPU-Y/100", "a"): b"other-a"}


def test_damaged_file_is_set_aside_once_and_replaced(tmp_path):
    path = tmp_path / "c.bin"
    CacheStore(path).save(DEVICE, {key("a"): b"A"})
    damaged = bytearray(path.read_bytes())
    damaged[10] ^= 0x40
    path.write_bytes(bytes(damaged))
    store = CacheStore(path)
    with pytest.warns(CacheWarning, match="damaged") as caught:
        assert store.load() is None
        assert store.load() is None  # no second warning
    assert len(caught) == 1
    assert store.corrupt_path.read_bytes() == bytes(damaged)
    assert not path.exists()
    assert store.save(DEVICE, {key("b"): b"B"})
    assert stored(path) == {("GPU-X/100", "b"): b"B"}


def test_damaged_file_found_while_merging_is_set_aside(tmp_path):
    path = tmp_path / "c.bin"
    CacheStore(path).save(DEVICE, {key("a"): b"A" * 100})
    damaged = bytearray(path.read_bytes())
    damaged[-60] ^= 0x01  # inside the payload: only a full check finds it
    path.write_bytes(bytes(damaged))
    with pytest.warns(CacheWarning, match="damaged"):
        assert CacheStore(path).save(DEVICE, {key("b"): b"B"})
    assert stored(path) == {("GPU-X/100", "b"): b"B"}


def test_lock_held_elsewhere_times_out_without_writing(tmp_path):
    path = tmp_path / "c.bin"
    CacheStore(path).save(DEVICE, {key("a"): b"A"})
    before = path.read_bytes()
    store = CacheStore(path, lock_timeout=0.2)
    # Stands for another process that holds the lock (a crashed holder's lock is released by
    # the kernel, so only a live, stuck writer can make us wait).
    with filelock.FileLock(f"{path}.lock"):
        with pytest.warns(CacheWarning, match="held the lock"):
            assert not store.save(DEVICE, {key("b"): b"B"})
    assert path.read_bytes() == before


def test_unwritable_directory_degrades_to_no_cache(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    store = CacheStore(blocker / "sub" / "c.bin")
    assert store.load() is None
    with pytest.warns(CacheWarning, match="running without saving"):
        assert not store.save(DEVICE, {key("a"): b"A"})
    assert not store.writable
    assert not store.save(DEVICE, {key("a"): b"A"})  # quietly, the second time


def test_clear_removes_the_file(tmp_path):
    path = tmp_path / "c.bin"
    store = CacheStore(path)
    store.save(DEVICE, {key("a"): b"A"})
    assert store.clear() and not path.exists()
    assert not store.clear()
