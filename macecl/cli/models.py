"""`macecl convert` and `macecl run`: turn an ONNX model into a .macecl one, and run either."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from macecl.cli.common import JsonFlag, fail, out, shape_option


def convert(
    model: Annotated[Path, typer.Argument(help="The ONNX model to convert.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help=(  # noqa: UP007
        "Where to write the .macecl model; default: beside MODEL."))] = None,
    input_shape: Annotated[Optional[list[str]], typer.Option(  # noqa: UP007
        "--input-shape", help="Fix an input's dims: NAME:1,3,224,224 (repeatable).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Convert an ONNX model to a .macecl model (folded, fused, weights ready to map)."""
    import collections
    import time

    from macecl.converter import convert as convert_model
    from macecl.graph.model_file import SUFFIX

    shapes = dict(shape_option(text) for text in input_shape or [])
    target = output or model.with_suffix(SUFFIX)
    started = time.perf_counter()
    with out.status(f"converting {model}..."):
        graph = convert_model(model, target, input_shapes=shapes)
    elapsed = time.perf_counter() - started
    ops = collections.Counter(graph.op_types())
    summary = {"model": str(model), "output": str(target), "seconds": round(elapsed, 3),
               "opset": graph.opset, "nodes": len(graph.nodes),
               "weights": len(graph.constants), "bytes": target.stat().st_size,
               "inputs": [vars(s) for s in graph.inputs], "outputs": [vars(s) for s in graph.outputs],
               "ops": dict(ops.most_common())}
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    out.print(f"wrote {target} ({summary['bytes']:,} bytes) in {elapsed:.2f} s: "
              f"{len(graph.nodes)} nodes, {len(graph.constants)} weights", highlight=False,
              soft_wrap=True)
    for label, specs in (("inputs", graph.inputs), ("outputs", graph.outputs)):
        out.print(f"{label}: " + ", ".join(f"{s.name} {s.dtype} {s.describe_shape()}" for s in specs),
                  highlight=False, soft_wrap=True)
    out.print("ops: " + ", ".join(f"{op} {n}" for op, n in ops.most_common()), highlight=False,
              soft_wrap=True)


def feeds_from_options(engine, specs: list[str]) -> dict:
    """--input NAME=FILE.npy | NAME=random | NAME=random:D1,D2,...; unnamed inputs are random."""
    import numpy as np

    given = {}
    for text in specs:
        name, sep, source = text.partition("=")
        if not sep:
            raise fail(f"--input {text!r}: expected NAME=FILE.npy or NAME=random[:D1,D2,...]")
        given[name] = source
    declared = {s.name: s for s in engine.inputs}
    for name in given:
        if name not in declared:
            raise fail(f"--input names {name!r}; the model's inputs are {sorted(declared)}")
    rng = np.random.default_rng(0)
    feeds = {}
    for name, spec in declared.items():
        source = given.get(name, "random")
        if source.startswith("random"):
            _, _, dims = source.partition(":")
            if dims:
                shape = shape_option(f"{name}:{dims}")[1]
            elif all(isinstance(d, int) for d in spec.shape):
                shape = spec.shape
            else:
                raise fail(f"input {name!r} has shape {spec.describe_shape()}: give one with "
                            f"--input {name}=random:D1,D2,... or a .npy file")
            feeds[name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            try:
                feeds[name] = np.load(source, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise fail(f"--input {name}: cannot read {source}: {error}") from None
    return feeds


def run(
    model: Annotated[Path, typer.Argument(help="A .macecl or .onnx model.")],
    input: Annotated[Optional[list[str]], typer.Option(  # noqa: UP007, A002
        "--input", help="NAME=FILE.npy, NAME=random or NAME=random:D1,D2,... (repeatable); "
                        "inputs not named get random data of their declared shape.")] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs after the first.")] = 1,
    rounds: Annotated[int, typer.Option(min=1, help="Timed runs for the latency.")] = 10,
    profile: Annotated[bool, typer.Option(help="Per-op times from OpenCL profiling events.")] = False,
    device: Annotated[Optional[str], typer.Option(help="Device index or name.")] = None,  # noqa: UP007
    as_json: JsonFlag = False,
) -> None:
    """Run a model: init time and where programs came from, first run, median latency, outputs."""
    import statistics
    import time

    from macecl.engine import Engine

    with out.status(f"loading {model}..."):
        engine = Engine(model, device=device, profiling=profile)
    with engine:
        feeds = feeds_from_options(engine, input or [])
        results = engine.run(feeds)
        for _ in range(warmup):
            engine.run(feeds)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            engine.run(feeds)
            times.append(time.perf_counter() - started)
        rows = engine.profile(feeds) if profile else []
        stats = engine.stats
        report = {
            "model": str(model), "device": engine.context.device.name,
            "init_seconds": stats.init_seconds, "convert_seconds": stats.convert_seconds,
            "programs_from_precompiled": stats.programs_from_precompiled,
            "programs_from_cache": stats.programs_from_cache,
            "programs_from_source": stats.programs_from_source,
            "first_run_seconds": stats.first_run_seconds,
            "latency_ms_median": statistics.median(times) * 1e3,
            "latency_ms_min": min(times) * 1e3, "rounds": rounds,
            "cache_file": str(engine.context.cache_path),
            "outputs": {name: {"shape": list(a.shape), "dtype": str(a.dtype),
                               "min": float(a.min()) if a.size else None,
                               "max": float(a.max()) if a.size else None,
                               "mean": float(a.mean()) if a.size else None}
                        for name, a in results.items()},
        }
        if profile:
            report["profile"] = rows
    if as_json:
        print(json.dumps(report, indent=2))
        return
    out.print(f"{model} on {report['device']}", highlight=False, soft_wrap=True)
    out.print(f"init {stats.init_seconds:.3f} s (converting {stats.convert_seconds:.3f} s); "
              f"programs: {stats.programs_from_precompiled} precompiled, "
              f"{stats.programs_from_cache} from cache, {stats.programs_from_source} from source",
              highlight=False, soft_wrap=True)
    out.print(f"first run {stats.first_run_seconds * 1e3:.1f} ms; median of {rounds} runs "
              f"{report['latency_ms_median']:.2f} ms (min {report['latency_ms_min']:.2f} ms)",
              highlight=False, soft_wrap=True)
    out.print(f"cache file: {report['cache_file']}", highlight=False, soft_wrap=True)
    table = Table(title="outputs")
    for column in ("name", "shape", "min", "max", "mean"):
        table.add_column(column)
    for name, o in report["outputs"].items():
        table.add_row(name, str(o["shape"]), *(f"{o[k]:.5g}" if o[k] is not None else "-"
                                               for k in ("min", "max", "mean")))
    out.print(table)
    if profile:
        table = Table(title="per-op time of one run (OpenCL profiling events)")
        for column in ("node", "op", "kernel", "work items", "ms"):
            table.add_column(column, justify="right" if column in ("work items", "ms") else "left")
        for row in sorted(rows, key=lambda r: -r["ms"]):
            table.add_row(row["node"], row["op"], row["kernel"], " x ".join(map(str, row["global_size"])),
                          f"{row['ms']:.3f}")
        table.add_row("total", "", "", "", f"{sum(r['ms'] for r in rows):.3f}")
        out.print(table)
