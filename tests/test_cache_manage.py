"""Cache management: merge, prune, the runtime's size bound and how last_used stays fresh."""

from __future__ import annotations

import json
import time

import pytest
from conftest import assert_added, build_context, cache_with_add, run_add
from typer.testing import CliRunner

from macecl import config
from macecl.cache import mace_format, manage
from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey
from macecl.cache.format import CacheFile, NewEntry, encode, encoded_size, entries_of
from macecl.cache.store import REFRESH_AFTER_SECONDS, CacheStore
from macecl.cli import app
from macecl.errors import ConfigError

DEVICE = DeviceFingerprint("P", "PV", "1", "GPU-X", "DV", "1", "100", "C", 64)
UPDATED = DeviceFingerprint("P", "PV", "1", "GPU-X", "DV", "1", "101", "C", 64)
OTHER = DeviceFingerprint("P", "PV", "1", "GPU-Y", "DV", "1", "100", "C", 64)

runner = CliRunner()


def key(name: str) -> ProgramKey:
    return ProgramKey.for_source(name, f"source of {name}", "")


def entry(name: str, last_used: int, device=DEVICE, payload: bytes | None = None) -> NewEntry:
    return NewEntry(device, key(name), payload or name.encode() * 100, last_used)


def stored(path) -> dict[str, tuple[bytes, int]]:
    cache = CacheFile(path.read_bytes())
    assert cache.verify() == []
    return {f"{cache.devices[e.device].device_name}/{e.key.name}": (cache.payload(e), e.last_used)
            for e in cache.entries}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# -- merge and prune on entries ----------------------------------------------------------------


def test_merge_is_the_union_and_the_most_recently_used_wins():
    a = [entry("conv", 10, payload=b"old conv"), entry("gemm", 50), entry("conv", 10, OTHER)]
    b = [entry("conv", 20, payload=b"new conv"), entry("gemm", 40, payload=b"older gemm")]
    merged = {(e.device.device_name, e.key.name): e for e in manage.merge(a, b)}
    assert set(merged) == {("GPU-X", "conv"), ("GPU-X", "gemm"), ("GPU-Y", "conv")}
    assert merged["GPU-X", "conv"].payload == b"new conv"  # newer, in the second file
    assert merged["GPU-X", "gemm"].last_used == 50  # newer, in the first file
    tie = manage.merge([entry("pool", 5, payload=b"first")], [entry("pool", 5, payload=b"second")])
    assert [e.payload for e in tie] == [b"second"]  # equally recent: the later file


def test_prune_drops_least_recently_used_until_the_file_fits():
    entries = [entry(f"p{i}", last_used=i) for i in range(6)]
    limit = encoded_size(entries[2:]) + 10  # room for the four newest, not five
    result = manage.prune(entries, limit)
    assert [e.key.name for e in result.least_recently_used] == ["p0", "p1"]
    assert sorted(e.key.name for e in result.kept) == ["p2", "p3", "p4", "p5"]
    assert result.size == encoded_size(result.kept) <= limit
    assert encoded_size(result.kept + [entries[1]]) > limit, "dropped more than it had to"
    assert manage.prune(entries, 0).kept == []
    assert manage.bound(entries, 0) == entries  # 0: no bound


def test_prune_can_drop_what_no_local_device_has():
    entries = [entry("a", 100, DEVICE), entry("a", 200, UPDATED), entry("b", 300, OTHER)]
    result = manage.prune(entries, 10**9, keep_devices=[UPDATED])
    assert [e.device for e in result.kept] == [UPDATED]
    assert {e.device for e in result.unmatched} == {DEVICE, OTHER}


def test_size_setting_parses_units_and_refuses_nonsense(monkeypatch):
    assert [config.parse_size(t) for t in ("4096", "64K", "256M", "1G", "1.5MiB")] == [
        4096, 65536, 256 * 2**20, 2**30, 3 * 2**19]
    monkeypatch.setenv("MACECL_CACHE_MAX_BYTES", "32M")
    assert config.settings().cache_max_bytes == 32 * 2**20
    monkeypatch.setenv("MACECL_CACHE_MAX_BYTES", "lots")
    with pytest.raises(ConfigError, match="MACECL_CACHE_MAX_BYTES='lots' is not a size"):
        config.settings()


# -- the store's size bound and last_used ------------------------------------------------------


def test_save_keeps_the_file_under_the_bound_dropping_the_oldest(tmp_path):
    path = tmp_path / "c.bin"
    store = CacheStore(path)
    store.update(lambda old: [entry("old", 100), entry("recent", 200), entry("other", 150, OTHER)])
    new = {key("new"): b"n" * 100}
    limit = encoded_size([entry("recent", 0), entry("other", 0, OTHER),
                          NewEntry(DEVICE, key("new"), new[key("new")], 0)])
    with config.override(cache_max_bytes=limit):
        assert store.save(DEVICE, new)
    assert set(stored(path)) == {"GPU-X/recent", "GPU-Y/other", "GPU-X/new"}
    assert path.stat().st_size <= limit
    with config.override(cache_max_bytes=0):  # unbounded: nothing more is dropped
        assert store.save(DEVICE, {key("more"): b"m" * 500})
    assert len(stored(path)) == 4


def test_touched_entries_get_a_fresh_last_used(tmp_path):
    path = tmp_path / "c.bin"
    store = CacheStore(path)
    store.update(lambda old: [entry("used", 100), entry("unused", 100),
                              entry("used", 100, OTHER)])
    before = time.time()
    assert store.save(DEVICE, {}, touched={key("used")})
    after = stored(path)
    assert after["GPU-X/used"][1] >= int(before)
    assert after["GPU-X/unused"][1] == 100 and after["GPU-Y/used"][1] == 100  # only this device


def age_every_entry(path, seconds: int) -> None:
    """Rewrite the cache as if every entry had last been used ``seconds`` ago."""
    old = int(time.time()) - seconds
    entries = [NewEntry(e.device, e.key, e.payload, old)
               for e in entries_of(CacheFile(path.read_bytes()))]
    path.write_bytes(encode(entries))


def test_a_warm_start_refreshes_last_used_only_when_over_a_day_old(tmp_path):
    path = cache_with_add(3)
    age_every_entry(path, REFRESH_AFTER_SECONDS // 2)
    fresh = path.stat().st_mtime_ns, path.stat().st_ino
    context = build_context()
    assert_added(run_add(context, 3), 3)
    assert context.stats.from_cache == 1
    assert context.flush() == 0
    context.close()
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == fresh, "a fresh cache was rewritten"

    age_every_entry(path, 2 * REFRESH_AFTER_SECONDS)
    started = int(time.time())
    context = build_context()
    assert_added(run_add(context, 3), 3)
    context.flush()
    context.close()
    ((payload, last_used),) = stored(path).values()
    assert last_used >= started and payload


# -- the command line ------------------------------------------------------------------------


def write(path, entries) -> None:
    path.write_bytes(encode(entries))


def test_merge_command_writes_the_union(tmp_path):
    write(tmp_path / "a.bin", [entry("conv", 10, payload=b"old"), entry("gemm", 10)])
    write(tmp_path / "b.bin", [entry("conv", 20, payload=b"new"), entry("pool", 10, OTHER)])
    result = invoke("cache", "merge", tmp_path / "a.bin", tmp_path / "b.bin",
                    "-o", tmp_path / "c.bin", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["programs"], report["duplicates_resolved"]) == (3, 1)
    merged = stored(tmp_path / "c.bin")
    assert merged["GPU-X/conv"] == (b"new", 20) and set(merged) == {
        "GPU-X/conv", "GPU-X/gemm", "GPU-Y/pool"}
    assert not list(tmp_path.glob("*.tmp"))
    table = invoke("cache", "merge", tmp_path / "a.bin", tmp_path / "b.bin", "-o",
                   tmp_path / "d.bin")
    assert table.exit_code == 0 and "1 duplicate(s) resolved" in table.stdout


def test_merge_command_refuses_bad_inputs_by_name(tmp_path):
    write(tmp_path / "a.bin", [entry("conv", 10)])
    damaged = bytearray(encode([entry("gemm", 10)]))
    damaged[-50] ^= 1
    (tmp_path / "bad.bin").write_bytes(bytes(damaged))
    result = invoke("cache", "merge", tmp_path / "a.bin", tmp_path / "bad.bin", "-o",
                    tmp_path / "c.bin")
    assert result.exit_code == 1 and "bad.bin: not a sound MCLP file" in result.output
    (tmp_path / "mace.bin").write_bytes(mace_format.encode(DEVICE, {key("x"): b"x"}))
    result = invoke("cache", "merge", tmp_path / "a.bin", tmp_path / "mace.bin", "-o",
                    tmp_path / "c.bin")
    assert result.exit_code == 1 and "is a MACE file" in result.output
    assert not (tmp_path / "c.bin").exists()


def test_prune_command_drops_least_recently_used_in_place(tmp_path):
    path = tmp_path / "c.bin"
    entries = [entry(f"p{i}", last_used=i) for i in range(5)]
    write(path, entries)
    limit = encoded_size(entries[3:])
    result = invoke("cache", "prune", path, "--max-size", limit, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["dropped_least_recently_used"]) == 3 and report["bytes"] <= limit
    assert set(stored(path)) == {"GPU-X/p3", "GPU-X/p4"}
    assert invoke("cache", "prune", path).exit_code == 1  # nothing asked
    bad = invoke("cache", "prune", path, "--max-size", "lots")
    assert bad.exit_code == 1 and "is not a size" in bad.output


def test_prune_command_drops_programs_of_no_local_device(tmp_path):
    context = build_context(tmp_path / "c.bin")
    assert_added(run_add(context, 4), 4)
    context.flush()
    context.close()
    path = context.cache_path
    foreign = [entry("foreign", int(time.time()) + 100, OTHER)]  # newest, but of no device here
    write(path, entries_of(CacheFile(path.read_bytes())) + foreign)
    result = invoke("cache", "prune", path, "--drop-unmatched", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["dropped_unmatched"]) == 1
    cache = CacheFile(path.read_bytes())
    assert cache.devices == [context.device.fingerprint] and len(cache.entries) == 1
