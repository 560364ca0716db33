"""What the cache tools cost on a real cache: every kernel-library program, built on this device.

One fresh process (python -m macecl.kernels.exercise) writes the cache; then, in this
process, medians of several runs of:
  mclp read       parse the MCLP file and check every payload and the whole-file hash;
  mace write      the same programs as MACE's protobuf file (MCLP -> MACE);
  mace read       parse that file, CRC checked, and turn it back into entries;
  merge           merge two copies of the file's entries (one a second newer) and encode;
  prune           prune to half the file's size;
  save, bound     CacheStore.save of one new program with the default bound;
  save, unbound   the same with no bound (MACECL_CACHE_MAX_BYTES=0): the bound's cost.

    python bench/cache_tools.py [--runs 7] [--device SELECTOR] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from macecl import config
from macecl.cache import mace_format, manage
from macecl.cache.fingerprint import ProgramKey
from macecl.cache.format import CacheFile, encode, entries_of
from macecl.cache.store import CacheStore


def median_seconds(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="macecl-bench-tools-"))
    cache = directory / "mace_cl_compiled_program.bin"
    env = {**os.environ, "POCL_KERNEL_CACHE": "0"}
    command = [sys.executable, "-m", "macecl.kernels.exercise", str(cache)]
    subprocess.run(command + ([args.device] if args.device else []), env=env, check=True,
                   capture_output=True)
    data = cache.read_bytes()
    entries = entries_of(CacheFile(data))
    device = entries[0].device
    mace = mace_format.from_entries(entries, device)
    newer = [dataclasses.replace(e, last_used=e.last_used + 1) for e in entries]
    scratch = directory / "scratch.bin"

    def save(bound: int) -> None:
        shutil.copyfile(cache, scratch)
        key = ProgramKey.for_source("bench", f"{time.perf_counter_ns()}", "")
        with config.override(cache_max_bytes=bound):
            CacheStore(scratch).save(device, {key: b"x" * 4096})

    timings = {
        "mclp read": lambda: CacheFile(data).verify(),
        "mace write": lambda: mace_format.from_entries(entries, device),
        "mace read": lambda: mace_format.to_entries(mace_format.parse(mace), device, 0),
        "merge": lambda: encode(manage.merge(entries, newer)),
        "prune": lambda: manage.prune(entries, len(data) // 2),
        "save, bound": lambda: save(config.Settings().cache_max_bytes),
        "save, unbound": lambda: save(0),
    }
    results = {name: median_seconds(action, args.runs) for name, action in timings.items()}
    summary = {"device": device.describe(), "programs": len(entries), "mclp_bytes": len(data),
               "mace_bytes": len(mace), "runs": args.runs,
               "median_ms": {k: round(v * 1e3, 3) for k, v in results.items()},
               "bound_over_unbound": round(results["save, bound"] / results["save, unbound"], 3)}
    shutil.rmtree(directory, ignore_errors=True)
    table = Table(title=f"cache tools on {summary['programs']} programs, {len(data):,} bytes "
                        f"(MACE: {len(mace):,}), median of {args.runs}")
    table.add_column("step")
    table.add_column("ms", justify="right")
    for name, milliseconds in summary["median_ms"].items():
        table.add_row(name, f"{milliseconds:.3f}")
    console = Console()
    console.print(f"device: {summary['device']}", highlight=False)
    console.print(table)
    console.print(f"save with the bound / without: {summary['bound_over_unbound']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
