"""Cold versus warm start-up: every kernel-library program, first launch of every kernel.

Each run starts fresh processes (python -m macecl.kernels.exercise):
  cold      no cache file: every program is built from source;
  warm      the file the cold process wrote: every program comes from it;
  baseline  no macecl: read the same file and create the programs from its bytes with raw
            pyopencl calls; the floor any loader pays.
Times run from the start of device selection (imports excluded, they are the same in all
three) to the end of the first launch of every kernel. The drivers' own caches are kept
out: POCL_KERNEL_CACHE=0, CUDA_CACHE_DISABLE=1, PYOPENCL_NO_CACHE=1.

    python bench/init_latency.py [--runs 5] [--device SELECTOR] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BASELINE = """
import sys, time
from macecl.runtime.device import select_device
from macecl.runtime.opencl import RawProgram, cl
from macecl.cache.format import CacheFile
started = time.perf_counter()
device = select_device(sys.argv[2] if len(sys.argv) > 2 else None)
context = cl.Context([device.cl_device])
ready = time.perf_counter()
with open(sys.argv[1], "rb") as stream:
    data = stream.read()
cache = CacheFile(data)
for entry in cache.entries:
    if cache.devices[entry.device] == device.fingerprint:
        RawProgram(context, [device.cl_device], [bytes(data[entry.offset:entry.offset + entry.length])]).build(b"")
done = time.perf_counter()
print('{"init_seconds": %f, "context_seconds": %f}' % (done - started, ready - started))
"""


def environment() -> dict:
    return {**os.environ, "POCL_KERNEL_CACHE": "0", "CUDA_CACHE_DISABLE": "1",
            "PYOPENCL_NO_CACHE": "1"}


def fresh(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, *args], env=environment(), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default=None, help="device index or name substring")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    options = parser.parse_args()
    device = [options.device] if options.device else []
    console = Console()
    samples: dict[str, list[dict]] = {"cold": [], "warm": [], "baseline": []}
    with tempfile.TemporaryDirectory() as directory:
        cache = str(Path(directory) / "mace_cl_compiled_program.bin")
        for run in range(options.runs):
            Path(cache).unlink(missing_ok=True)
            samples["cold"].append(fresh(["-m", "macecl.kernels.exercise", cache, *device]))
            samples["warm"].append(fresh(["-m", "macecl.kernels.exercise", cache, *device]))
            samples["baseline"].append(fresh(["-c", BASELINE, cache, *device]))
            console.print(f"run {run + 1}/{options.runs}: cold "
                          f"{samples['cold'][-1]['init_seconds']:.3f} s, warm "
                          f"{samples['warm'][-1]['init_seconds']:.4f} s", highlight=False)
        cache_bytes = Path(cache).stat().st_size
    first = samples["cold"][0]
    for phase, runs in samples.items():
        if phase != "baseline":
            origins = {(r["from_source"], r["from_cache"]) for r in runs}
            expected = {(first["programs"], 0)} if phase == "cold" else {(0, first["programs"])}
            if origins != expected:
                raise SystemExit(f"{phase} runs did not take programs where expected: {origins}")

    def median(phase: str, field: str = "init_seconds") -> float:
        return statistics.median(r[field] for r in samples[phase])

    cold, warm, baseline = median("cold"), median("warm"), median("baseline")
    table = Table(title=f"start-up on {first['device']}: {first['programs']} programs, "
                        f"{first['kernels']} kernels, median of {options.runs} fresh processes")
    for column in ("start", "median s", "min s", "max s", "vs cold", "vs baseline"):
        table.add_column(column, justify="right")
    for phase in samples:
        values = [r["init_seconds"] for r in samples[phase]]
        table.add_row(phase, f"{median(phase):.4f}", f"{min(values):.4f}", f"{max(values):.4f}",
                      f"1/{cold / median(phase):.1f}", f"{median(phase) / baseline:.2f}x")
    console.print(table)
    console.print(
        f"cold: building from source {median('cold', 'build_seconds'):.3f} s, then the flush "
        f"(taking and writing binaries) {median('cold', 'flush_seconds'):.3f} s; warm: creating "
        f"programs from binaries {median('warm', 'load_seconds'):.4f} s; cache file "
        f"{cache_bytes:,} bytes", highlight=False)
    console.print(f"targets: warm <= 1/50 of cold: {'met' if warm * 50 <= cold else 'MISSED'} "
                  f"(1/{cold / warm:.1f}); warm <= 2x baseline: "
                  f"{'met' if warm <= 2 * baseline else 'MISSED'} ({warm / baseline:.2f}x)",
                  highlight=False)
    if options.json:
        options.json.write_text(json.dumps({"samples": samples, "cache_bytes": cache_bytes,
                                            "date": time.strftime("%Y-%m-%d")}, indent=2))


if __name__ == "__main__":
    main()
