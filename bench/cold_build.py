"""Cold start of a real model with its programs built one by one, on threads, or in processes.

Each sample is a fresh process with no compiled-program cache: it opens the engine (model
already converted, so conversion is not timed), runs it once, and reports
  init       Engine(...) returning: planning, buffers, and builds that were not left running;
  first      start to first result: init plus the first run, which waits per step for
             programs still being built;
  build      seconds of building summed over programs (above the wall time when concurrent).
Variants, run round-robin so that machine noise hits them alike:
  sequential MACECL_BUILD_WORKERS=1, every program built in turn at init (the old path);
  threads    MACECL_BUILD_WORKERS=N, MACECL_BUILD_MODE=threads;
  processes  MACECL_BUILD_WORKERS=N, MACECL_BUILD_MODE=processes;
  threads-wait-all, processes-wait-all  the same, but start-up waits for every build before
             the first run (``programs.wait()``): init is then the builds' wall time, and
             first result shows what waiting per step gains over waiting for all.
The drivers' own caches are kept out: POCL_KERNEL_CACHE=0, CUDA_CACHE_DISABLE=1,
PYOPENCL_NO_CACHE=1. Every variant's outputs must be bit-identical to the sequential ones.

    python bench/cold_build.py [--runs 5] [--workers N] [--models squeezenet,ppocr_rec]
                               [--variants sequential,threads,processes]
                               [--device SELECTOR] [--json OUT.json]
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

from latency import model_list  # the same models, found the same way
from rich.console import Console
from rich.table import Table

CACHE_FILE = "mace_cl_compiled_program.bin"
VARIANTS = ("sequential", "threads", "processes", "threads-wait-all", "processes-wait-all")

# The fresh process: argv = model file, device selector ("" for the default), "wait" or "".
COLD_START = """
import hashlib, json, sys, time
import numpy as np
started = time.perf_counter()
import macecl
engine = macecl.Engine(sys.argv[1], device=sys.argv[2] or None)
if sys.argv[3] == "wait":
    waiting = time.perf_counter()
    engine.context.programs.wait()
    engine.stats.init_seconds += time.perf_counter() - waiting
rng = np.random.default_rng(0)
feeds = {s.name: rng.random(s.shape, dtype=np.float32) for s in engine.inputs}
outputs = engine.run(feeds)
done = time.perf_counter()
digest = hashlib.sha256(b"".join(np.ascontiguousarray(v).tobytes() for v in outputs.values()))
stats = engine.stats
print(json.dumps({"device": engine.context.device.name, "init": stats.init_seconds,
                  "first": stats.init_seconds + stats.first_run_seconds,
                  "total": done - started, "build": engine.context.stats.build_seconds,
                  "from_source": stats.programs_from_source, "outputs": digest.hexdigest()}))
"""


def environment(cache_dir: str, variant: str, workers: int) -> dict:
    env = {**os.environ, "POCL_KERNEL_CACHE": "0", "CUDA_CACHE_DISABLE": "1",
           "PYOPENCL_NO_CACHE": "1", "MACECL_CACHE_DIR": cache_dir,
           "MACECL_BUILD_WORKERS": "1" if variant == "sequential" else str(workers),
           "MACECL_BUILD_MODE": "processes" if variant.startswith("processes") else "threads"}
    env.pop("POCL_CACHE_DIR", None)  # each process gets its own scratch directory
    return env


def cold_start(model: Path, device: str, env: dict, wait_all: bool) -> dict:
    (Path(env["MACECL_CACHE_DIR"]) / CACHE_FILE).unlink(missing_ok=True)
    command = [sys.executable, "-c", COLD_START, str(model), device, "wait" if wait_all else ""]
    done = subprocess.run(command, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cold start of {model.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def converted(path: Path, shapes: dict, cache_dir: str) -> Path:
    """Convert once, in this process, so that no timed process converts."""
    os.environ["MACECL_CACHE_DIR"] = cache_dir
    from macecl.engine import models

    return models.load(path, shapes)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="MACECL_BUILD_WORKERS of the concurrent variants")
    parser.add_argument("--models", default="squeezenet,resnet50,ppocr_rec")
    parser.add_argument("--variants", default="sequential,threads,processes")
    parser.add_argument("--device", default="", help="device index or name substring")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    options = parser.parse_args()
    models = model_list()
    chosen = [m for m in options.models.split(",") if m]
    variants = [v for v in options.variants.split(",") if v]
    unknown = [m for m in chosen if m not in models] + [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown names {unknown}; models: {', '.join(models)}; "
                         f"variants: {', '.join(VARIANTS)}")
    console = Console(width=None if sys.stdout.isatty() else 120)  # a log keeps whole columns
    samples: dict[str, dict[str, list[dict]]] = {m: {v: [] for v in variants} for m in chosen}
    with tempfile.TemporaryDirectory() as cache_dir:
        for name in chosen:
            model = converted(*models[name], cache_dir)
            for run in range(options.runs):
                for variant in variants:
                    env = environment(cache_dir, variant, options.workers)
                    samples[name][variant].append(
                        cold_start(model, options.device, env, variant.endswith("wait-all")))
                line = ", ".join(f"{v} {samples[name][v][-1]['first']:.2f} s" for v in variants)
                console.print(f"{name} run {run + 1}/{options.runs}: first result: {line}",
                              highlight=False)
    device = next(iter(next(iter(samples.values())).values()))[0]["device"]
    table = Table(title=f"cold start on {device}, {options.workers} workers, median of "
                        f"{options.runs} fresh processes (seconds)")
    for column in ("model", "programs", "variant", "init", "first result", "vs sequential",
                   "build (summed)", "outputs"):
        table.add_column(column, justify="left" if column in ("model", "variant") else "right")
    summary = []
    for name, by_variant in samples.items():
        reference = by_variant[variants[0]][0]
        base = statistics.median(r["first"] for r in by_variant[variants[0]])
        for variant, runs in by_variant.items():
            row = {"model": name, "variant": variant, "programs": reference["from_source"],
                   **{f: statistics.median(r[f] for r in runs) for f in ("init", "first", "build")},
                   "same_outputs": all(r["outputs"] == reference["outputs"] for r in runs)}
            summary.append(row)
            table.add_row(name, str(row["programs"]), variant, f"{row['init']:.3f}",
                          f"{row['first']:.3f}", f"{base / row['first']:.2f}x",
                          f"{row['build']:.3f}", "same" if row["same_outputs"] else "DIFFER")
    console.print(table)
    if options.json:
        options.json.write_text(json.dumps(
            {"device": device, "workers": options.workers, "runs": options.runs,
             "summary": summary, "samples": samples, "date": time.strftime("%Y-%m-%d")},
            indent=2))
    if not all(row["same_outputs"] for row in summary):
        raise SystemExit("outputs differ between variants")


if __name__ == "__main__":
    main()
