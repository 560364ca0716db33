"""`macecl tune`: time every launch of a model over the local sizes its kernel allows."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from macecl.cli.common import JsonFlag, out
from macecl.cli.models import feeds_from_options


def tune(
    model: Annotated[Path, typer.Argument(help="A .macecl or .onnx model.")],
    input: Annotated[Optional[list[str]], typer.Option(  # noqa: UP007, A002
        "--input", help="NAME=FILE.npy, NAME=random or NAME=random:D1,D2,... (repeatable); "
                        "the launch shapes tuned are those of these inputs.")] = None,
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP007
        "-o", "--output", help="Tuned-parameters file to merge the results into; default: "
                               "tuned_opencl_parameter.bin beside the compiled-program cache.")
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed launches per local size.")] = 5,
    device: Annotated[Optional[str], typer.Option(help="Device index or name.")] = None,  # noqa: UP007
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Tune local work sizes for MODEL on a device and save them (tuned_opencl_parameter.bin)."""
    from macecl.engine import Engine
    from macecl.runtime.context import GPUContextBuilder

    builder = GPUContextBuilder().set_device(device).set_profiling(True)
    if output is not None:
        builder.set_opencl_parameter_path(output)
    context = builder.finalize()
    with out.status(f"loading {model}...") if not quiet else contextlib.nullcontext():
        engine = Engine(model, context=context)
    with context, engine:
        feeds = feeds_from_options(engine, input or [])
        columns = (TextColumn("tuning launches"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=out, disable=quiet or as_json, transient=True) as bar:
            task = bar.add_task("tune", total=None)
            results = engine.tune(feeds, repeats=repeats,
                                  progress=lambda done, total: bar.update(task, completed=done,
                                                                          total=total))
    rows = [{"program": str(r.program), "kernel": r.kernel, "global_size": list(r.global_size),
             "local_size": list(r.local_size) if r.local_size else None,
             "default_ms": r.default_ns * 1e-6, "tuned_ms": r.best_ns * 1e-6} for r in results]
    default_ms = sum(r["default_ms"] for r in rows)
    tuned_ms = sum(r["tuned_ms"] for r in rows)
    report = {"model": str(model), "device": context.device.name,
              "parameter_file": str(context.parameter_path), "launches": rows,
              "default_ms": default_ms, "tuned_ms": tuned_ms,
              "speedup": default_ms / tuned_ms if tuned_ms else None}
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{model} on {context.device.name}: device time per launch")
    for column in ("kernel", "global", "local", "driver's choice ms", "tuned ms"):
        table.add_column(column, justify="left" if column == "kernel" else "right")
    for r in sorted(rows, key=lambda r: -r["default_ms"]):
        table.add_row(r["kernel"], "x".join(map(str, r["global_size"])),
                      "x".join(map(str, r["local_size"])) if r["local_size"] else "driver",
                      f"{r['default_ms']:.3f}", f"{r['tuned_ms']:.3f}")
    out.print(table)
    if not rows:
        out.print("no launch of this model takes a tunable local size", highlight=False)
        return
    out.print(f"{len(rows)} launch shape(s): {default_ms:.2f} ms with the driver's choice, "
              f"{tuned_ms:.2f} ms tuned ({report['speedup']:.2f}x); saved to "
              f"{report['parameter_file']}", highlight=False, soft_wrap=True)
