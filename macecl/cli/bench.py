"""`macecl bench`: cold versus warm start and latency against ONNX Runtime, as a table and a chart."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from macecl.cli.common import JsonFlag, QuietFlag, out, progress_bars, shape_option


def bench(
    models: Annotated[list[Path], typer.Argument(help="ONNX or .macecl models.")],
    plot: Annotated[Optional[Path], typer.Option(  # noqa: UP007
        "--plot", help="Also draw the results as a chart (PNG); needs matplotlib.")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Cold and warm starts, each.")] = 3,
    rounds: Annotated[int, typer.Option(min=1, help="Timed runs for the latency.")] = 20,
    input_shape: Annotated[Optional[list[str]], typer.Option(  # noqa: UP007
        "--input-shape", help="Fix an ONNX input's dims: NAME:1,3,224,224 (repeatable).")] = None,
    device: Annotated[Optional[str], typer.Option(help="Device index or name.")] = None,  # noqa: UP007
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Cold versus warm start in fresh processes, and latency against ONNX Runtime."""
    from macecl import benchmark

    if plot is not None:
        benchmark.require_matplotlib()
    shapes = dict(shape_option(text) for text in input_shape or [])
    results = []
    with tempfile.TemporaryDirectory(prefix="macecl-bench-") as work_dir, \
            progress_bars(quiet or as_json) as steps:
        for model in models:
            results.append(benchmark.measure(model, Path(work_dir), shapes or None, runs, rounds,
                                             device, steps))
    if plot is not None:
        benchmark.plot(results, plot)
    if as_json:
        rows = [{**dataclasses.asdict(r), "warm_speed_up": r.warm_speed_up,
                 "ratio_to_onnxruntime": r.ratio_to_onnxruntime} for r in results]
        print(json.dumps({"results": rows, "plot": str(plot) if plot else None}, indent=2))
        return
    table = Table(title=f"start-up: median of {runs} cold and {runs} warm; latency: median of "
                        f"{rounds} runs")
    for column in ("model", "cold s", "warm s", "speed-up", "built", "macecl ms", "ORT ms",
                   "ratio"):
        table.add_column(column, justify="left" if column == "model" else "right",
                         no_wrap=column == "model")
    for r in results:
        ratio = r.ratio_to_onnxruntime
        table.add_row(r.model, f"{r.cold_start_s:.3f}", f"{r.warm_start_s:.3f}",
                      f"{r.warm_speed_up:.1f}x", str(r.cold_programs_from_source),
                      f"{r.macecl_ms:.2f}",
                      "-" if r.onnxruntime_ms is None else f"{r.onnxruntime_ms:.2f}",
                      "-" if ratio is None else f"{ratio:.2f}")
    out.print(f"device: {results[0].device}; built: programs the cold start built from source; "
              "ORT: ONNX Runtime on the CPU; ratio: macecl / ORT latency (below 1: macecl is "
              "faster)", highlight=False, soft_wrap=True)
    out.print(table)
    for note in dict.fromkeys(r.note for r in results if r.note):
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
    if plot is not None:
        out.print(f"chart: {plot}", highlight=False, soft_wrap=True)
