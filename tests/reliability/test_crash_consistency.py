"""Crash consistency: writers SIGKILLed inside and around their writes leave old or new, never
half, and the next start works (CI counts; bench/reliability.py --full runs hundreds)."""

from __future__ import annotations

import pytest
from crashes import EXPECTED_AT_STEP, STEPS, campaign, kill_at_step, next_start, sha256


@pytest.mark.parametrize("skip", [0, 1], ids=["first-write", "over-an-old-file"])
@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step_of_a_write_leaves_old_or_new(cache_dir, step, skip):
    """A writer killed while paused at ``step`` (the write_step seam), standing for a power
    cut, an OOM kill or kill -9 at that instant of atomic_write."""
    cache_dir.mkdir()
    path = cache_dir / "mace_cl_compiled_program.bin"
    kill = kill_at_step("cache", path, step, seed=skip, skip=skip)
    expected = EXPECTED_AT_STEP[step]
    if expected == "old" and skip == 0:
        expected = "absent"  # there was no old file
    assert (kill.outcome, kill.in_write) == (expected, True)
    # Only between writing and renaming is there a temporary file to leave behind.
    assert kill.leftovers == (1 if step in ("written", "synced") else 0)
    before = sha256(path)
    assert next_start(path, constant=3) != before  # wrote, removed the leftover, verifies


def test_random_kills_of_a_writer_rewriting_a_large_cache(cache_dir):
    """Kills at random moments of a process that rewrites a ~600 KiB cache in a loop."""
    cache_dir.mkdir()
    counts = campaign("cache", cache_dir / "mace_cl_compiled_program.bin", kills=10, seed=1,
                      max_delay=0.4, recover_every=5)
    assert counts["kills"] == 10 and counts["next_starts"] == 2
    assert counts["absent"] + counts["old"] + counts["new"] == 10


def test_random_kills_of_an_application_building_and_flushing(cache_dir):
    """Kills at random moments of a process that builds real programs and flushes each one."""
    cache_dir.mkdir()
    counts = campaign("build", cache_dir / "mace_cl_compiled_program.bin", kills=4, seed=2,
                      max_delay=1.5, recover_every=2)
    assert counts["kills"] == 4 and counts["next_starts"] == 2
    assert counts["absent"] + counts["old"] + counts["new"] == 4
