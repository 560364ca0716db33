"""Eight processes start at once on one storage path: all succeed, none waits forever, the
file verifies and holds the union of what they built."""

from __future__ import annotations

import os

import filelock
from starts import PROCESSES, built, models_for_round, start_together, stored_programs
from typer.testing import CliRunner

from macecl.cli import app
from macecl.runtime import pocl_scratch


def test_eight_starts_at_once_leave_the_union_round_after_round(cache_dir, tmp_path):
    path = cache_dir / "mace_cl_compiled_program.bin"
    expected: set = set()
    for number in range(2):
        reports = start_together(models_for_round(number, tmp_path), cache_dir)
        assert len(reports) == PROCESSES
        assert all(r["warnings"] == [] for r in reports), [r["warnings"] for r in reports]
        expected |= built(reports)
        assert stored_programs(path) == expected
        verified = CliRunner().invoke(app, ["cache", "verify", str(path)])
        assert verified.exit_code == 0, verified.output
    assert len(expected) >= 6  # the rounds really built different programs


def test_a_held_lock_times_out_and_each_start_runs_without_saving(cache_dir, tmp_path):
    """Another process holding the cache lock for good stands for a writer stuck on a dead
    network file system; the starts must not wait for it past MACECL_LOCK_TIMEOUT."""
    cache_dir.mkdir()
    path = cache_dir / "mace_cl_compiled_program.bin"
    with filelock.FileLock(f"{path}.lock"):
        reports = start_together(models_for_round(0, tmp_path), cache_dir, lock_timeout=0.5)
    for report in reports:
        assert report["from_source"] >= 1
        assert len(report["warnings"]) == 1, report["warnings"]
        assert "held the lock" in report["warnings"][0]
        assert "not saved" in report["warnings"][0] and "not saved" in report["stderr"]
    assert not path.exists()


def test_a_child_of_a_macecl_process_gets_its_own_pocl_scratch(tmp_path):
    """Children inherit the parent's POCL_CACHE_DIR; shared, PoCL's scratch files of one
    process are overwritten by another's (it failed the union test above with "Final linking
    of kernel max_pool2d failed")."""
    parents = tmp_path / f"{pocl_scratch.PREFIX}{os.getppid()}-abc"
    parents.mkdir()
    environ = {"POCL_CACHE_DIR": str(parents), "POCL_KERNEL_CACHE": "0"}
    own = pocl_scratch.prepare(environ, ram=tmp_path)
    assert own is not None and own != parents and environ["POCL_CACHE_DIR"] == str(own)
    users = {"POCL_CACHE_DIR": str(tmp_path / "my-pocl"), "POCL_KERNEL_CACHE": "0"}
    assert pocl_scratch.prepare(users, ram=tmp_path) is None  # the user's own: kept
    assert users["POCL_CACHE_DIR"] == str(tmp_path / "my-pocl")
