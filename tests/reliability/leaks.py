"""What a process holds (resident memory, file descriptors, live OpenCL objects), and loops
that must not make it grow: many runs of one engine, many engines made and closed.

Used by the tests (CI counts) and by bench/reliability.py (10,000 runs, 1,000 cycles).
"""

from __future__ import annotations

import dataclasses
import gc
import os
from pathlib import Path

import numpy as np
import psutil

import macecl
from macecl.runtime.opencl import cl

OPENCL_TYPES = (cl.Context, cl.CommandQueue, cl._cl._Program, cl.Kernel, cl.MemoryObjectHolder,
                cl.Event)


@dataclasses.dataclass(frozen=True)
class Held:
    rss: int  # bytes resident
    fds: int  # open file descriptors
    opencl: int  # live pyopencl objects (contexts, queues, programs, kernels, buffers, events)


def held() -> Held:
    gc.collect()
    opencl = sum(1 for o in gc.get_objects() if isinstance(o, OPENCL_TYPES))
    return Held(psutil.Process().memory_info().rss, len(os.listdir("/proc/self/fd")), opencl)


def feeds_for(engine: macecl.Engine) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {s.name: rng.standard_normal(s.shape).astype(np.float32) for s in engine.inputs}


def repeated_runs(model: Path, runs: int, warmup: int = 200) -> dict:
    """``runs`` runs of one engine after ``warmup``; what was held before and after them."""
    with macecl.Engine(model) as engine:
        feeds = feeds_for(engine)
        for _ in range(warmup):
            engine.run(feeds)
        before = held()
        for _ in range(runs):
            engine.run(feeds)
        after = held()
    return {"runs": runs, "before": before, "after": after,
            "rss_growth": after.rss - before.rss}


def create_destroy_cycles(model: Path, cycles: int, warmup: int = 20) -> dict:
    """``cycles`` engines, each with its own context, made, run once and closed."""
    feeds = None

    def cycle() -> None:
        nonlocal feeds
        with macecl.Engine(model) as engine:
            feeds = feeds or feeds_for(engine)
            engine.run(feeds)

    for _ in range(warmup):
        cycle()
    before = held()
    for _ in range(cycles):
        cycle()
    after = held()
    return {"cycles": cycles, "before": before, "after": after,
            "rss_growth": after.rss - before.rss}
