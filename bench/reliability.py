"""Reliability figures: crashes survived, concurrent starts, fuzzing, tampering, memory growth.

Runs the harnesses of tests/reliability at full counts (the test suite runs small ones) and
writes docs/reliability.md. bench/fuzz.py (atheris: `pip install '.[fuzz]'`) and
bench/tamper.py run as subprocesses; a section says so when its script failed.

    python bench/reliability.py [--full] [--output docs/reliability.md]

Without --full: a quick pass with small counts (a minute or two), for trying the script.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

import crashes
import leaks
import starts
import distinct_models

from macecl import config
from macecl.runtime.device import select_device

# (kills of the cache rewriter, of the tuned-parameters rewriter, of a build-and-flush app)
KILLS = {"full": {"cache": 120, "tuning": 60, "build": 40}, "quick": {"cache": 10, "tuning": 6,
                                                                      "build": 4}}
# How often a next start (which also writes) follows a kill: tuning one takes longer.
RECOVER_EVERY = {"cache": 1, "tuning": 5, "build": 1}
MAX_DELAY = {"cache": 0.4, "tuning": 0.4, "build": 1.5}  # seconds after the victim is ready
ROUNDS = {"full": 6, "quick": 1}  # rounds of 8 concurrent starts
RUNS = {"full": 10_000, "quick": 1_000}
CYCLES = {"full": 1_000, "quick": 100}
FUZZ_RUNS = {"full": 10_000, "quick": 500}
MiB = 1 << 20


def crash_figures(mode: str) -> dict:
    figures = {}
    for kind, kills in KILLS[mode].items():
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / crashes.FILE_NAMES[kind]
            with config.override(cache_dir=Path(directory)):
                started = time.perf_counter()
                counts = crashes.campaign(kind, path, kills, seed=7, max_delay=MAX_DELAY[kind],
                                          recover_every=RECOVER_EVERY[kind])
            counts["seconds"] = time.perf_counter() - started
            figures[kind] = counts  # a Counter: outcomes that never happened read 0
        print(f"crashes {kind}: {dict(figures[kind])}", flush=True)
    steps = collections.Counter()
    with tempfile.TemporaryDirectory() as directory:
        for kind in ("cache", "tuning"):
            for step in crashes.STEPS:
                path = Path(directory) / crashes.FILE_NAMES[kind]
                kill = crashes.kill_at_step(kind, path, step, seed=3, skip=1)
                assert kill.outcome == crashes.EXPECTED_AT_STEP[step]
                with config.override(cache_dir=Path(directory)):
                    crashes.next_start(kind, path, constant=1000 + sum(steps.values()))
                steps[kind] += 1
    figures["steps"] = dict(steps)
    return figures


def concurrency_figures(mode: str) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        storage, models = Path(directory) / "storage", Path(directory) / "models"
        models.mkdir()
        expected, seconds, starts_done = set(), [], 0
        for number in range(ROUNDS[mode]):
            reports = starts.start_together(starts.models_for_round(number, models), storage)
            assert all(not r["warnings"] for r in reports), [r["warnings"] for r in reports]
            expected |= starts.built(reports)
            assert starts.stored_programs(storage / config.CACHE_FILE_NAME) == expected
            seconds += [r["seconds"] for r in reports]
            starts_done += len(reports)
            print(f"concurrent round {number + 1}: {len(reports)} starts, "
                  f"{len(expected)} programs stored", flush=True)
        import filelock

        locked_storage = Path(directory) / "locked"
        locked_storage.mkdir()
        with filelock.FileLock(f"{locked_storage / config.CACHE_FILE_NAME}.lock"):
            held = starts.start_together(starts.models_for_round(0, models), locked_storage,
                                         lock_timeout=1.0)
        said = sum("not saved" in r["stderr"] for r in held)
    return {"rounds": ROUNDS[mode], "starts": starts_done, "programs": len(expected),
            "max_seconds": max(seconds), "locked_starts": len(held), "locked_said": said}


def leak_figures(mode: str) -> dict:
    with tempfile.TemporaryDirectory() as directory, config.override(cache_dir=Path(directory)):
        model = distinct_models.write("conv", Path(directory))
        runs = leaks.repeated_runs(model, RUNS[mode], warmup=500)
        cycles = leaks.create_destroy_cycles(model, CYCLES[mode])
    print(f"leaks: runs {runs}\n       cycles {cycles}", flush=True)
    return {"runs": runs, "cycles": cycles}


def external(script: str, *arguments: str) -> dict:
    """The JSON a sibling benchmark prints, or {"error": its last line of stderr}."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *arguments, "--json"],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def kib(count: int) -> str:
    return f"{count / 1024:+,.0f} KiB"


def render(mode: str, figures: dict, command: str) -> str:
    c, k = figures["concurrency"], figures["crashes"]
    lines = [
        "# Reliability",
        "",
        (f"Figures from one run of `{command}` on {figures['device']} ({figures['date']}, "
        f"Python {platform.python_version()}, {platform.machine()}). Each section names the "
        "harness; the test suite runs the same harnesses with smaller counts "
        "(`python -m pytest -q tests/reliability`)."),
        "",
        "## Crashes",
        "",
        ("A child process writes, and is killed with SIGKILL at a random moment after it is "
        "ready (tests/reliability/crashes.py, crash_writer.py). After each kill the file must "
        "be byte for byte absent, the old version or the new one (SHA-256 against what the "
        "child announced before each write); then a real start on the device must load it "
        "without calling it damaged, write to it, leave no temporary file, and "
        "`macecl cache verify` must pass (for the tuned-parameters file, which that command "
        "does not read, the MCLT reader's whole-file check)."),
        "",
        ("| writer | kills | inside a write | absent | old | new | temporary files left "
        "| next starts (all fine) |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, label in crashes.WRITERS.items():
        f = k[kind]
        lines.append(f"| {label} | {f['kills']} | {f['in_write']} | {f['absent']} | "
                     f"{f['old']} | {f['new']} | {f['leftovers']} | {f['next_starts']} |")
    total = sum(k[kind]["kills"] for kind in crashes.WRITERS)
    lines += [
        "",
        (f"{total} kills, every one absent, old or new. \"Inside a write\" counts kills that "
        "landed after the child announced a write and before it returned. Temporary files a "
        "killed writer left are removed by the next writer, under the lock."),
        "",
        (f"Kills at each step of the write (the `write_step` seam in macecl/cache/store.py "
        f"pauses the writer there): {k['steps'].get('cache', 0)} for the cache and "
        f"{k['steps'].get('tuning', 0)} for the tuned-parameters file, one per step "
        "(begin, written, synced: old; renamed: new), as expected."),
        "",
        "## Concurrent starts",
        "",
        (f"{c['rounds']} rounds of 8 processes started at once (a barrier) on one storage path, "
        "two pairs with the same model and four with different ones, each round bringing "
        f"models the earlier ones did not build (tests/reliability/starts.py): {c['starts']} "
        f"starts, all succeeded, the slowest took {c['max_seconds']:.1f} s; after every round "
        f"the file verified and held exactly the union of what was built ({c['programs']} "
        "programs at the end)."),
        "",
        (f"With the lock held by another process for good: {c['locked_starts']} starts at once "
        "with MACECL_LOCK_TIMEOUT=1, all succeeded without saving, and "
        f"{c['locked_said']} of them said so (a CacheWarning: \"... this run's programs are "
        "not saved\")."),
        "",
    ]
    lines += ["## Fuzzing", ""]
    fuzz = figures["fuzz"]
    if "error" in fuzz:
        lines.append(f"bench/fuzz.py failed: {fuzz['error']}")
    else:
        lines += [f"`python bench/fuzz.py --runs {FUZZ_RUNS[mode]} --json`", "",
                  "| target | executions | rejected | accepted | crashes | seconds |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {t['name']} | {t['executions']:,} | {t['rejected']:,} | "
                  f"{t['accepted']:,} | {t['crashes']} | {t['seconds']:.1f} |"
                  for t in fuzz["targets"]]
    lines += ["", "## Tampering", ""]
    tamper = figures["tamper"]
    if "error" in tamper:
        lines.append(f"bench/tamper.py failed: {tamper['error']}")
    else:
        refused = sum(bool(case["refused"]) for case in tamper["cases"])
        lines += [(f"`python bench/tamper.py --json`: {refused} of {len(tamper['cases'])} "
                  "cases refused."), "", "| case | refused | rebuilt |", "|---|---|---|"]
        lines += [f"| {case['name']} | {case['refused']} | {case['rebuilt']} |"
                  for case in tamper["cases"]]
    runs, cycles = figures["leaks"]["runs"], figures["leaks"]["cycles"]
    lines += [
        "",
        "## Memory and handles",
        "",
        ("tests/reliability/leaks.py, a one-Conv model; resident memory (psutil), open file "
        "descriptors (/proc/self/fd) and live pyopencl objects (contexts, queues, programs, "
        "kernels, buffers, events, counted after a garbage collection) before and after."),
        "",
        "| loop | count | resident memory | descriptors | OpenCL objects |",
        "|---|---|---|---|---|",
        (f"| runs of one engine (after 500 warm-up runs) | {runs['runs']:,} | "
        f"{kib(runs['rss_growth'])} | {runs['before'].fds} -> {runs['after'].fds} | "
        f"{runs['before'].opencl} -> {runs['after'].opencl} |"),
        (f"| engines made, run once, closed (own context each) | {cycles['cycles']:,} | "
        f"{kib(cycles['rss_growth'])} ({cycles['rss_growth'] / cycles['cycles']:,.0f} B a "
        f"cycle) | {cycles['before'].fds} -> {cycles['after'].fds} | "
        f"{cycles['before'].opencl} -> {cycles['after'].opencl} |"),
        "",
        ("The growth over create/destroy cycles is not ours to free: with PYOPENCL_NO_CACHE=1 "
        "(macecl sets it so that PyOpenCL's caches never stand in for its own), every "
        "`pyopencl.Kernel` made generates its argument-setting code anew and pytools registers "
        "that source in Python's `linecache`, where it stays (about one entry per kernel "
        "made). Runs make no kernels, so they stay flat."),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full counts (several minutes)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "reliability.md")
    options = parser.parse_args()
    mode = "full" if options.full else "quick"
    command = "python bench/reliability.py" + (" --full" if options.full else "")
    figures = {"device": select_device(None).name,
               "date": datetime.date.today().isoformat(),
               "crashes": crash_figures(mode),
               "concurrency": concurrency_figures(mode),
               "leaks": leak_figures(mode),
               "fuzz": external("fuzz.py", "--runs", str(FUZZ_RUNS[mode])),
               "tamper": external("tamper.py")}
    options.output.write_text(render(mode, figures, command))
    print(f"wrote {options.output}")


if __name__ == "__main__":
    main()
