"""Where a run's time goes, per kernel and per ONNX op type, for the bench models.

For each model: one engine with a profiling queue (``Engine(profiling=True)``), a warm-up
run, then --rounds runs, alternating a plain timed run (wall time, as bench/latency.py
measures it) and ``Engine.profile`` (one device time per launch, from OpenCL profiling
events). Prints, per kernel and per op type, the launches of one run, the median summed
device time and its share, then the median wall time of a run and the gap between the two:
what the host and the launches cost beyond the kernels' own time (on PoCL's CPU device the
kernels run on the same cores, so the gap is launch and scheduling overhead).

    python bench/kernel_profile.py squeezenet,ppocr_rec [--rounds 5] [--device SELECTOR]
                            [--top 15] [--json OUT.json]

Models and inputs are bench/latency.py's (chosen_models, random_feeds).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import chosen_models, random_feeds


def profile_model(path: Path, shapes: dict, rounds: int, device: str | None) -> dict:
    """Launch counts and median device ms per kernel and per op type, and wall ms of a run."""
    import macecl

    engine = macecl.Engine(path, device=device, profiling=True)
    with engine:
        feeds = random_feeds(engine.inputs, shapes)
        engine.run(feeds)
        walls, by_kernel, by_op, totals = [], collections.defaultdict(list), \
            collections.defaultdict(list), []
        launches_kernel, launches_op = collections.Counter(), collections.Counter()
        for _ in range(rounds):
            started = time.perf_counter()
            engine.run(feeds)
            walls.append((time.perf_counter() - started) * 1e3)
            rows = engine.profile(feeds)
            kernel_ms, op_ms = collections.Counter(), collections.Counter()
            launches_kernel.clear()
            launches_op.clear()
            for row in rows:
                kernel = f"{row['program']}.{row['kernel']}"
                kernel_ms[kernel] += row["ms"]
                op_ms[row["op"]] += row["ms"]
                launches_kernel[kernel] += 1
                launches_op[row["op"]] += 1
            for name, ms in kernel_ms.items():
                by_kernel[name].append(ms)
            for name, ms in op_ms.items():
                by_op[name].append(ms)
            totals.append(sum(row["ms"] for row in rows))
        device_name = engine.context.device.name
    return {
        "device": device_name, "wall_ms": statistics.median(walls),
        "device_ms": statistics.median(totals), "launches": sum(launches_kernel.values()),
        "kernels": {k: {"launches": launches_kernel[k], "ms": statistics.median(v)}
                    for k, v in by_kernel.items()},
        "ops": {k: {"launches": launches_op[k], "ms": statistics.median(v)}
                for k, v in by_op.items()},
    }


def _table(title: str, rows: dict, total: float, top: int) -> Table:
    table = Table(title=title)
    for column in ("name", "launches", "device ms", "share"):
        table.add_column(column, justify="left" if column == "name" else "right")
    ranked = sorted(rows.items(), key=lambda item: -item[1]["ms"])
    for name, row in ranked[:top]:
        table.add_row(name, str(row["launches"]), f"{row['ms']:.2f}",
                      f"{100 * row['ms'] / max(total, 1e-9):.1f}%")
    rest = ranked[top:]
    if rest:
        ms = sum(r["ms"] for _, r in rest)
        table.add_row(f"({len(rest)} more)", str(sum(r["launches"] for _, r in rest)),
                      f"{ms:.2f}", f"{100 * ms / max(total, 1e-9):.1f}%")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", help="comma-separated names of bench/latency.py's models")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    console = Console()
    results = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        os.environ["MACECL_CACHE_DIR"] = cache_dir
        for name, (path, shapes) in chosen_models(options.models).items():
            with console.status(f"{name}..."):
                r = results[name] = profile_model(path, shapes, options.rounds, options.device)
            total = r["device_ms"]
            console.print(f"\n[bold]{name}[/] on {r['device']}: {r['launches']} launches; "
                          f"median wall {r['wall_ms']:.1f} ms, device {total:.1f} ms, gap "
                          f"{r['wall_ms'] - total:.1f} ms "
                          f"({100 * (r['wall_ms'] - total) / r['wall_ms']:.0f}% of wall)",
                          highlight=False)
            console.print(_table("per kernel (program.kernel)", r["kernels"], total, options.top))
            console.print(_table("per ONNX op type", r["ops"], total, options.top))
    if options.json:
        options.json.write_text(json.dumps({"rounds": options.rounds, "results": results},
                                           indent=2))


if __name__ == "__main__":
    main()
