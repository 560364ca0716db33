"""Tuning gain: each model's latency with the driver's local sizes versus tuned ones, same run.

For each model, one context (profiling queue, a private cache and tuned-parameters file) holds
two engines: `default` is planned before tuning, so it keeps the driver's choice; `tuned`
runs `Engine.tune` and launches the winners. Then --rounds runs alternate between the two,
so machine noise hits both alike. Also reported: the summed device time of the tuned launch
shapes, from the tuner's own profiling events.

    python bench/tuning.py [--rounds 10] [--repeats 3] [--models squeezenet,ppocr_cls]
                           [--device SELECTOR] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from latency import chosen_models, random_feeds  # noqa: E402  (a sibling script, not a package)


def measure(path: Path, shapes: dict, rounds: int, repeats: int, device: str | None,
            directory: Path) -> dict:
    import macecl

    context = (macecl.GPUContextBuilder().set_device(device).set_profiling(True)
               .set_storage_path(directory).finalize())
    default = macecl.Engine(path, context=context, input_shapes=shapes or None)
    feeds = random_feeds(default.inputs, shapes)
    expected = default.run(feeds)
    tuned = macecl.Engine(path, context=context, input_shapes=shapes or None)
    started = time.perf_counter()
    launches = tuned.tune(feeds, repeats=repeats)
    tuning_seconds = time.perf_counter() - started
    got = tuned.run(feeds)
    error = max(float(np.max(np.abs(got[k] - expected[k]))) for k in expected)
    times = {"default": [], "tuned": []}
    for _ in range(rounds):
        for name, engine in (("default", default), ("tuned", tuned)):
            started = time.perf_counter()
            engine.run(feeds)
            times[name].append(time.perf_counter() - started)
    default.close()
    tuned.close()
    context.close()
    medians = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {"device": context.device.name, "launch_shapes": len(launches),
            "retuned": sum(1 for t in launches if t.local_size is not None),
            "device_ms_default": sum(t.default_ns for t in launches) * 1e-6,
            "device_ms_tuned": sum(t.best_ns for t in launches) * 1e-6,
            "tuning_seconds": tuning_seconds, "max_abs_difference": error,
            "default_ms": medians["default"], "tuned_ms": medians["tuned"],
            "ratio": medians["tuned"] / medians["default"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="timed launches per local size")
    parser.add_argument("--models", help="comma-separated names (default: all)")
    parser.add_argument("--device")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    models = chosen_models(args.models)
    console = Console(width=160)
    results = {}
    with tempfile.TemporaryDirectory(prefix="macecl-tuning-") as scratch:
        for name, (path, shapes) in models.items():
            with console.status(f"{name}: tuning and timing..."):
                results[name] = measure(path, shapes, args.rounds, args.repeats, args.device,
                                        Path(scratch) / name)
    table = Table(title=f"tuned versus the driver's local sizes on {results[name]['device']} "
                        f"(median of {args.rounds} alternating runs)")
    for column in ("model", "launch shapes", "retuned", "device ms driver", "device ms tuned",
                   "latency ms driver", "latency ms tuned", "tuned / driver", "tuning s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, r in results.items():
        table.add_row(name, str(r["launch_shapes"]), str(r["retuned"]),
                      f"{r['device_ms_default']:.2f}", f"{r['device_ms_tuned']:.2f}",
                      f"{r['default_ms']:.2f}", f"{r['tuned_ms']:.2f}", f"{r['ratio']:.3f}",
                      f"{r['tuning_seconds']:.1f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
