"""Tamper evidence and file safety on the real PoCL driver: every planted or altered cache is
refused with a warning that says why, the program is rebuilt from source, and what is saved
afterwards is trusted under the reader's key (cases in tamper_cases.py)."""

from __future__ import annotations

import os
import re
import stat

import pytest
import tamper_cases
from conftest import assert_added, build_context, run_add

from macecl import CacheWarning, config
from macecl.cache.format import CacheFile

WHY = {
    "unsigned": "not signed but a cache key is set",
    "signed_read_without_key": "signed but no cache key is set",
    "wrong_key": "signature does not match",
    "re_signed": "signature does not match",
    "altered_header": "signature does not match",
    "altered_table": "signature does not match",
    "altered_table_and_payload": "signature does not match",
    "altered_payload": "SHA-256 mismatch",
    "symlink": "is a symbolic link",
    "world_writable_directory": "writable by every user",
    "fifo": "not a regular file",
    "precompiled_with_other_key": "precompiled binary file .* signature does not match",
}


def test_every_case_has_its_expected_reason():
    assert set(WHY) == set(tamper_cases.CASES)


@pytest.mark.parametrize("name", sorted(tamper_cases.CASES))
def test_tampered_cache_is_refused_and_rebuilt(tmp_path, name):
    directory = tmp_path / "c"
    directory.mkdir(mode=0o700)
    outcome = tamper_cases.run_case(name, directory)
    assert (outcome.refused, outcome.rebuilt) == (True, True), outcome
    assert len(outcome.warnings) == 1
    assert re.search(WHY[name], outcome.warnings[0]), outcome.warnings


def test_symlink_target_is_neither_read_nor_written(tmp_path):
    directory = tmp_path / "c"
    directory.mkdir(mode=0o700)
    target = directory / "elsewhere" / tamper_cases.FILE_NAME
    outcome = tamper_cases.run_case("symlink", directory)
    assert outcome.refused and outcome.rebuilt
    before = target.read_bytes()
    assert CacheFile(before, key=tamper_cases.KEY).entries[0].key.name == "add"
    link = directory / (tamper_cases.FILE_NAME + ".corrupt")
    assert link.is_symlink() and link.resolve() == target.resolve()  # moved aside, as a link
    assert not (directory / tamper_cases.FILE_NAME).is_symlink()
    assert target.read_bytes() == before


def test_world_writable_directory_is_left_untouched_unless_allowed(tmp_path):
    directory = tmp_path / "c"
    directory.mkdir(mode=0o700)
    path = tamper_cases.signed_cache(directory)
    directory.chmod(0o777)
    before = path.read_bytes()
    with pytest.warns(CacheWarning, match="writable by every user") as caught:
        refused = build_context(path, cache_key=tamper_cases.KEY)
        assert_added(run_add(refused, 6), 6)
        assert refused.flush() == 0
    assert len(caught) == 1 and refused.stats.from_source == 1
    assert path.read_bytes() == before and not path.with_suffix(".bin.corrupt").exists()

    allowed = build_context(path, cache_key=tamper_cases.KEY, allow_world_writable_cache=True)
    assert_added(run_add(allowed, tamper_cases.CONSTANT), tamper_cases.CONSTANT)
    assert allowed.stats.from_cache == 1
    with config.override(allow_world_writable_cache=True):
        from_setting = build_context(path, cache_key=tamper_cases.KEY)
        assert_added(run_add(from_setting, tamper_cases.CONSTANT), tamper_cases.CONSTANT)
    assert from_setting.stats.from_cache == 1


def test_world_writable_parent_needs_the_sticky_bit(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    path = shared / "mine" / tamper_cases.FILE_NAME
    shared.chmod(0o777 | stat.S_ISVTX)  # like /tmp: others cannot rename what is ours
    with pytest.warns(CacheWarning, match="its directory .*shared is writable by every user"):
        squattable = build_context(path)  # mine/ does not exist: another user could make it
    assert_added(run_add(squattable, 2), 2)
    assert squattable.flush() == 0 and not path.parent.exists()
    path.parent.mkdir(mode=0o700)
    context = build_context(path)
    assert_added(run_add(context, 2), 2)
    assert context.flush() == 1
    shared.chmod(0o777)  # without the sticky bit anyone may rename mine/ away
    with pytest.warns(CacheWarning, match="above it, is writable by every user"):
        refused = build_context(path)
    assert_added(run_add(refused, 2), 2)
    assert refused.stats.from_cache == 0


def test_created_files_are_private(tmp_path):
    path = tmp_path / "new" / "dir" / tamper_cases.FILE_NAME
    context = build_context(path)
    assert_added(run_add(context, 1), 1)
    context.flush()
    mode = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in (path, path.parent)}
    lock = path.with_name(path.name + ".lock")
    if lock.exists():  # filelock may delete its file on release
        mode["lock"] = stat.S_IMODE(os.stat(lock).st_mode)
        assert mode["lock"] == 0o600
    assert mode[path.name] == 0o600 and mode["dir"] == 0o700


def test_signed_cache_is_used_under_its_key_and_from_the_setting(tmp_path):
    path = tamper_cases.signed_cache(tmp_path)
    assert CacheFile(path.read_bytes(), key=tamper_cases.KEY).header.signed
    warm = build_context(path, cache_key=tamper_cases.KEY.decode())  # str keys are UTF-8
    assert_added(run_add(warm, tamper_cases.CONSTANT), tamper_cases.CONSTANT)
    assert (warm.stats.from_cache, warm.stats.from_source) == (1, 0)
    with config.override(cache_key=tamper_cases.KEY.decode()):
        from_setting = build_context(path)
        assert_added(run_add(from_setting, tamper_cases.CONSTANT), tamper_cases.CONSTANT)
    assert from_setting.stats.from_cache == 1


def test_unsigned_cache_still_reads_without_a_key(tmp_path):
    path = tamper_cases.signed_cache(tmp_path, key=None)
    assert not CacheFile(path.read_bytes()).header.signed
    warm = build_context(path)
    assert_added(run_add(warm, tamper_cases.CONSTANT), tamper_cases.CONSTANT)
    assert warm.stats.from_cache == 1


def test_precompiled_file_signed_with_the_key_is_used(tmp_path):
    (tmp_path / "shipped").mkdir()
    shipped = tamper_cases.signed_cache(tmp_path / "shipped")
    app = build_context(tmp_path / "cache.bin", cache_key=tamper_cases.KEY,
                        opencl_binary_paths=[shipped])
    assert_added(run_add(app, tamper_cases.CONSTANT), tamper_cases.CONSTANT)
    assert app.stats.from_precompiled == 1


def test_empty_key_is_refused():
    from macecl import GPUContextBuilder
    from macecl.errors import ConfigError

    with pytest.raises(ConfigError, match="empty"):
        GPUContextBuilder().set_cache_key("")
