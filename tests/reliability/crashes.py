"""Kill real writers with SIGKILL, at random moments or at chosen steps, and judge what is left.

After every kill the file must be exactly one of the versions the victim could have left:
absent (nothing was ever written), the old one (the last write that returned, or the file
as it was before the victim started) or the new one (the write in flight). Bytes are
compared by SHA-256 against what the victim announced before each write (crash_writer.py).
Then the next start must work: a real context on the device loads the file without calling
it damaged, builds, flushes, and ``macecl cache verify`` passes.

Used by the tests (small counts) and by bench/reliability.py (the full counts).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

WRITER = Path(__file__).with_name("crash_writer.py")
STEPS = ("begin", "written", "synced", "renamed")
# Where a kill at each step must leave the file: before the rename, the old version.
EXPECTED_AT_STEP = {"begin": "old", "written": "old", "synced": "old", "renamed": "new"}
# What each writer kind rewrites, and the file name it writes.
WRITERS = {"cache": "compiled-program cache", "build": "compiled-program cache (build+flush)",
           "tuning": "tuned-parameters file"}
FILE_NAMES = {"cache": "mace_cl_compiled_program.bin", "build": "mace_cl_compiled_program.bin",
              "tuning": "tuned_opencl_parameter.bin"}


@dataclasses.dataclass
class Kill:
    kind: str
    outcome: str  # "absent", "old" or "new"
    in_write: bool  # a write had begun and had not returned when the kill landed
    leftovers: int  # temporary files the victim left beside the file


def sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def temporaries(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{path.name}.*.tmp"))


def start_writer(kind: str, path: Path, seed: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "POCL_KERNEL_CACHE": "0"}
    command = [sys.executable, str(WRITER), kind, str(path), str(seed), *extra]
    victim = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    first = victim.stdout.readline().strip()
    if first != "ready":
        victim.kill()
        raise RuntimeError(f"the writer did not start: {first!r}\n{victim.communicate()[1]}")
    return victim


def judge(kind: str, path: Path, before: str | None, victim: subprocess.Popen,
          heard: list[str] = ()) -> Kill:
    """Kill ``victim`` now and say what it left; AssertionError if the file is anything else.

    ``heard``: lines of the victim's transcript already read by the caller.
    """
    os.kill(victim.pid, signal.SIGKILL)
    rest, errors = victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL, f"the writer died on its own:\n{errors}"
    committed, in_flight = before, None
    for line in [*heard, *rest.splitlines()]:
        if line.startswith("new "):
            in_flight = line.split()[1]
        elif line == "done":
            committed, in_flight = in_flight, None
    now = sha256(path)
    if now is not None and now == in_flight:
        outcome = "new"
    elif now == committed:
        outcome = "old" if now is not None else "absent"
    else:
        raise AssertionError(
            f"after a kill the {WRITERS[kind]} is neither absent, old nor new: sha256 {now}, "
            f"old {committed}, new {in_flight}")
    return Kill(kind, outcome, in_flight is not None, len(temporaries(path)))


def kill_at_random(kind: str, path: Path, delay: float, seed: int) -> Kill:
    before = sha256(path)
    victim = start_writer(kind, path, seed)
    time.sleep(delay)
    return judge(kind, path, before, victim)


def kill_at_step(kind: str, path: Path, step: str, seed: int, skip: int = 0) -> Kill:
    """Kill the victim paused at ``step`` of its write number ``skip`` (counting from 0)."""
    before = sha256(path)
    victim = start_writer(kind, path, seed, "--pause", step, "--skip", str(skip))
    heard = []
    for line in victim.stdout:
        heard.append(line.strip())
        if heard[-1] == f"at {step}":
            return judge(kind, path, before, victim, heard)
    raise RuntimeError(f"the writer never reached {step}: {victim.communicate()[1]}")


def next_start(kind: str, path: Path, constant: int) -> str:
    """Start as an application would after the crash, and make it write: the SHA-256 of the
    file it leaves. Raises AssertionError if the start calls the file damaged, waits on a
    dead writer's lock, leaves a temporary file, or leaves a file that does not check out."""
    from macecl import config

    with warnings.catch_warnings(record=True) as caught, config.override(lock_timeout=10.0):
        warnings.simplefilter("always")
        if kind == "tuning":
            _tune(path)
        else:
            _build(path, constant)
    assert not caught, f"the start after a crash warned: {[str(w.message) for w in caught]}"
    assert not temporaries(path), f"temporary files left: {temporaries(path)}"
    if kind == "tuning":
        from macecl.cache.tuning_format import TuningFile

        TuningFile(path.read_bytes(), origin=str(path))  # checked whole: raises if unsound
    else:
        from typer.testing import CliRunner

        from macecl.cli import app

        verified = CliRunner().invoke(app, ["cache", "verify", str(path)])
        assert verified.exit_code == 0, verified.output
    return sha256(path)


def _build(path: Path, constant: int) -> None:
    """Build one program not yet in the file (add ``constant``) and flush it."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from conftest import assert_added, build_context, run_add

    context = build_context(path)
    assert_added(run_add(context, constant), constant)
    assert context.flush() == 1
    context.close()


def _tune(path: Path) -> None:
    """Tune a small model, which merges its launches into the tuned-parameters file (a Relu:
    on a CPU a convolution's launches all have fixed local sizes, so none to tune)."""
    import distinct_models

    from macecl import Engine, GPUContextBuilder

    models = path.parent / "models-src"
    models.mkdir(exist_ok=True)
    context = (GPUContextBuilder().set_opencl_cache_full_path(path.parent / "programs.bin")
               .set_opencl_parameter_path(path).set_profiling(True).finalize())
    with context, Engine(distinct_models.write("relu", models), context=context) as engine:
        assert engine.tune(repeats=1)


def campaign(kind: str, path: Path, kills: int, seed: int, max_delay: float,
             recover_every: int = 1) -> collections.Counter:
    """``kills`` random kills of ``kind`` writers on ``path``; a next start after every
    ``recover_every`` kills. Returns counts of outcomes, kills inside writes, leftovers."""
    rng = random.Random(seed)
    counts: collections.Counter = collections.Counter()
    for number in range(kills):
        kill = kill_at_random(kind, path, rng.uniform(0, max_delay), seed * 100_000 + number)
        counts[kill.outcome] += 1
        counts["in_write"] += kill.in_write
        counts["leftovers"] += kill.leftovers
        counts["kills"] += 1
        if (number + 1) % recover_every == 0 or number + 1 == kills:
            next_start(kind, path, constant=seed * 100_000 + number)
            counts["next_starts"] += 1
    return counts
