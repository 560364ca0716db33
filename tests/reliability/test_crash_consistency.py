"""Crash consistency: writers SIGKILLed inside and around their writes leave old or new, never
half, and the next start works (CI counts; bench/reliability.py --full runs hundreds)."""

from __future__ import annotations

import pytest
from crashes import (
    EXPECTED_AT_STEP,
    FILE_NAMES,
    STEPS,
    campaign,
    kill_at_step,
    next_start,
    sha256,
)

# Both files through every step; the first write ever only for the cache (the same code).
CASES = [(kind, step, skip) for kind in ("cache", "tuning") for skip in (0, 1) for step in STEPS
         if kind == "cache" or skip == 1]


@pytest.mark.parametrize("kind, step, skip", CASES)
def test_kill_at_each_step_of_a_write_leaves_old_or_new(cache_dir, kind, step, skip):
    """A writer killed while paused at ``step`` (the write_step seam), standing for a power
    cut, an OOM kill or kill -9 at that instant of atomic_write."""
    cache_dir.mkdir()
    path = cache_dir / FILE_NAMES[kind]
    kill = kill_at_step(kind, path, step, seed=skip, skip=skip)
    expected = EXPECTED_AT_STEP[step]
    if expected == "old" and skip == 0:
        expected = "absent"  # there was no old file
    assert (kill.outcome, kill.in_write) == (expected, True)
    # Only between writing and renaming is there a temporary file to leave behind.
    assert kill.leftovers == (1 if step in ("written", "synced") else 0)
    before = sha256(path)
    assert next_start(kind, path, constant=3) != before  # wrote, removed the leftover, checks


@pytest.mark.parametrize("kind, kills", [("cache", 10), ("tuning", 6)])
def test_random_kills_of_a_writer_rewriting_a_large_file(cache_dir, kind, kills):
    """Kills at random moments of a process that rewrites a few hundred KiB in a loop."""
    cache_dir.mkdir()
    counts = campaign(kind, cache_dir / FILE_NAMES[kind], kills=kills, seed=1, max_delay=0.4,
                      recover_every=kills // 2)
    assert counts["kills"] == kills and counts["next_starts"] == 2
    assert counts["absent"] + counts["old"] + counts["new"] == kills


def test_random_kills_of_an_application_building_and_flushing(cache_dir):
    """Kills at random moments of a process that builds real programs and flushes each one."""
    cache_dir.mkdir()
    counts = campaign("build", cache_dir / FILE_NAMES["build"], kills=4, seed=2,
                      max_delay=1.5, recover_every=2)
    assert counts["kills"] == 4 and counts["next_starts"] == 2
    assert counts["absent"] + counts["old"] + counts["new"] == 4
