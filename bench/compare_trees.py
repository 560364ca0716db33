"""Latency of two macecl source trees on the same models, interleaved round by round.

A change's before/after, measured fairly on a shared machine: each tree's engine lives in its
own worker process (PYTHONPATH = that tree), and each of the three (the two trees, ONNX
Runtime CPU with --threads threads) takes turns of settling runs and --block timed runs
(macecl.benchmark.alternating_blocks), --rounds timed runs in all, so that machine noise hits
all three alike. Prints median ms of each and the ratios to ONNX Runtime.

    git archive REV | tar -x -C /tmp/base
    python bench/compare_trees.py /tmp/base [--rounds 7] [--block 3] [--threads 2] [--models ...]

The tree this script lives in is the "after"; the inputs are bench/latency.py's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def worker(model: str, feeds_file: str) -> None:
    """Serve runs of one engine: a line in, the run's wall time in ms out."""
    import macecl

    arrays = dict(np.load(feeds_file))
    engine = macecl.Engine(model)
    engine.run(arrays)
    print("ready", flush=True)
    for _ in sys.stdin:
        started = time.perf_counter()
        engine.run(arrays)
        print(f"{(time.perf_counter() - started) * 1e3:.4f}", flush=True)
    engine.close()


def start(tree: Path, model: Path, feeds_file: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree), "MACECL_CACHE_DIR": str(cache)}
    process = subprocess.Popen([sys.executable, __file__, "--worker", str(model), str(feeds_file)],
                               env=env, cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    if process.stdout.readline().strip() != "ready":
        raise SystemExit(f"the worker of {tree} did not start")
    return process


def remote_run(process: subprocess.Popen) -> Callable[[], float]:
    """A runner for timing.alternating_blocks: one run in the worker, its seconds as timed
    there (the pipe's round trip left out)."""
    def run() -> float:
        process.stdin.write("run\n")
        process.stdin.flush()
        return float(process.stdout.readline()) / 1e3
    return run


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(*sys.argv[2:4])
        return
    sys.path.insert(0, str(HERE))
    import onnxruntime
    from latency import chosen_models, random_feeds

    from macecl.benchmark import alternating_blocks, median_ms, stopwatch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the other source tree (the 'before')")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block", type=int, default=3, help="timed runs back to back per turn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="")
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    trees = {"before": options.base.resolve(), "after": HERE.parent}
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, (path, shapes) in chosen_models(options.models).items():
            settings = onnxruntime.SessionOptions()
            settings.intra_op_num_threads = options.threads
            settings.inter_op_num_threads = 1
            reference = onnxruntime.InferenceSession(str(path), settings,
                                                     providers=["CPUExecutionProvider"])
            feeds = random_feeds(reference.get_inputs(), shapes)
            feeds_file = Path(scratch) / f"{name}.npz"
            np.savez(feeds_file, **feeds)
            workers = {label: start(tree, path, feeds_file, Path(scratch) / label)
                       for label, tree in trees.items()}
            runners = {label: remote_run(process) for label, process in workers.items()}
            runners["onnxruntime"] = stopwatch(functools.partial(reference.run, None, feeds))
            medians = median_ms(alternating_blocks(runners, options.rounds, options.block))
            for process in workers.values():
                process.stdin.close()
                process.wait()
            results.append({"model": name, **{f"{k}_ms": v for k, v in medians.items()}})
            ort = medians["onnxruntime"]
            print(f"{name:14s} before {medians['before']:8.1f} ms ({medians['before'] / ort:5.2f}x "
                  f"ORT)   after {medians['after']:8.1f} ms ({medians['after'] / ort:5.2f}x ORT)   "
                  f"ORT {ort:7.1f} ms   after/before {medians['after'] / medians['before']:.2f}",
                  flush=True)
    if options.json:
        options.json.write_text(json.dumps({"rounds": options.rounds, "block": options.block,
                                            "threads": options.threads,
                                            "results": results}, indent=2))


if __name__ == "__main__":
    main()
