"""Timing runners against each other in one process, in alternating blocks.

Runners are timed in turn so that machine noise (these are shared 2-core machines) falls on
all of them alike, but in blocks of back-to-back runs, not one run each: ONNX Runtime's
intra-op threads spin for a while after a run returns (its default
``session.intra_op.allow_spinning``), and whatever runs next on the same cores pays for it.
Run for run, PP-OCR cls measured 2.0-2.1 ms with macecl right after ONNX Runtime against
0.8-0.9 ms back to back. So each block starts with one untimed run, which takes that hit
and warms the runner's caches, and only the runs after it are timed: each runner's steady
state, as an app that runs one model in a loop sees it.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable


def alternating_blocks(runners: dict[str, Callable[[], object]], rounds: int, block: int = 3
                       ) -> dict[str, list[float]]:
    """Seconds of ``rounds * block`` timed runs per runner: ``rounds`` times, each runner in
    turn does one untimed settling run and then ``block`` timed ones."""
    if rounds < 1 or block < 1:
        raise ValueError(f"rounds and block must be at least 1, got {rounds} and {block}")
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            run()
            for _ in range(block):
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
    return times


def median_ms(times: dict[str, list[float]]) -> dict[str, float]:
    """Median of each runner's seconds, in ms."""
    return {name: statistics.median(seconds) * 1e3 for name, seconds in times.items()}
