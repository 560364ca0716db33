"""A process that writes a storage file over and over until it is killed (the crash tests' victim).

    python crash_writer.py KIND PATH SEED [--pause STEP] [--skip N]

KIND is what it writes:
  cache   the compiled-program cache, rewritten through CacheStore.save in a loop with
          a few hundred KiB of fresh payload each time (a large write window);
  build   the compiled-program cache as an application writes it: each round builds one
          more real program on the OpenCL device, launches it and flushes the context;
  tuning  the tuned-parameters file, rewritten through TuningStore.save in a loop (a few
          thousand launches, new times each round).

It tells its parent on stdout, one line per event, flushed at once:
  ready           set up; the parent may start its clock
  new SHA256      a write of exactly these bytes begins (nothing of it is on disk yet)
  at STEP         paused at STEP of the write (only with --pause; see store.write_step)
  done            that write returned: the file holds the announced bytes
With ``--pause STEP`` it stops for good at STEP of its first write after the ``--skip``
first ones, so that the parent's SIGKILL lands exactly there.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from macecl.cache import store
from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey

# A device no test machine has: its entries are kept by every merge, so the file stays large.
FAKE_DEVICE = DeviceFingerprint("Crash", "Test", "1", "Victim GPU", "Test", "1", "1", "C", 64)
PROGRAMS = 6  # keys the cache writer cycles through
PAYLOAD = 96 * 1024  # bytes per program
LAUNCHES = 1500  # tuned launches the tuning writer rewrites (~150 KiB)


def tell(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Announcer:
    """The write_step hook: announces each write and pauses where asked."""

    def __init__(self, pause: str | None, skip: int):
        self.pause, self.left = pause, skip

    def __call__(self, step: str, data: bytes) -> None:
        if step == "begin":
            tell(f"new {hashlib.sha256(data).hexdigest()}")
        if step == self.pause:
            if self.left == 0:
                tell(f"at {step}")
                time.sleep(3600)  # until killed
            self.left -= 1


def rewrite_cache(path: Path, seed: int) -> None:
    cache = store.CacheStore(path)
    rng = np.random.default_rng(seed)
    for round_ in range(10**9):
        key = ProgramKey.for_source(f"program{round_ % PROGRAMS}", "crash test", "")
        if cache.save(FAKE_DEVICE, {key: rng.bytes(PAYLOAD)}):
            tell("done")


def rewrite_tuning(path: Path, seed: int) -> None:
    from macecl.cache.tuning_format import TunedLaunch
    from macecl.cache.tuning_store import TuningStore

    tuning = TuningStore(path)
    rng = np.random.default_rng(seed)
    program = ProgramKey.for_source("conv2d", "crash test", "-DTILE=4")
    for round_ in range(10**9):
        times = rng.integers(1000, 10**6, size=LAUNCHES)
        launches = [TunedLaunch(FAKE_DEVICE, program, "conv2d", (64 + i, 8, 1), (8, 8, 1),
                                int(t), int(t) * 2) for i, t in enumerate(times)]
        if tuning.save(launches):
            tell("done")


def build_and_flush(path: Path, seed: int) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from conftest import assert_added, build_context, run_add

    context = build_context(path)
    for constant in range(seed * 1000, seed * 1000 + 10**6):
        assert_added(run_add(context, constant), constant)
        if context.flush():
            tell("done")


WRITERS = {"cache": rewrite_cache, "build": build_and_flush, "tuning": rewrite_tuning}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=list(WRITERS))
    parser.add_argument("path", type=Path)
    parser.add_argument("seed", type=int)
    parser.add_argument("--pause", choices=["begin", "written", "synced", "renamed"])
    parser.add_argument("--skip", type=int, default=0)
    options = parser.parse_args()
    store.write_step = Announcer(options.pause, options.skip)
    tell("ready")
    WRITERS[options.kind](options.path, options.seed)


if __name__ == "__main__":
    main()
