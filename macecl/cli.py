"""The `macecl` command. The only place in macecl that prints for people or exits."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from macecl import config
from macecl.cache.format import CacheFile
from macecl.cache.store import CacheStore, opened
from macecl.errors import CacheFormatError, MaceclError

app = typer.Typer(help="Run neural networks on OpenCL devices, with MACE's compiled-program cache.",
                  no_args_is_help=True, add_completion=False)
cache_app = typer.Typer(help="Look into and manage compiled-program cache files.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")
out = Console()
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False):
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command()
def devices(as_json: JsonFlag = False) -> None:
    """List OpenCL platforms and devices with their fingerprints."""
    from macecl.runtime.device import list_devices, select_device

    found = list_devices()
    default = select_device().index if found else None
    if as_json:
        rows = [{"index": d.index, "type": d.type_name, "default": d.index == default,
                 "fingerprint": dataclasses.asdict(d.fingerprint)} for d in found]
        print(json.dumps({"devices": rows}, indent=2))
        return
    if not found:
        raise _fail("no OpenCL platform found; `pip install pocl-binary-distribution` "
                    "gives the CPU device")
    table = Table(title="OpenCL devices (* = default)")
    for column in ("#", "device", "type", "platform", "driver", "OpenCL C"):
        table.add_column(column)
    for d in found:
        fp = d.fingerprint
        table.add_row(f"{d.index}{'*' if d.index == default else ''}", fp.device_name,
                      d.type_name, fp.platform_name, fp.driver_version, fp.opencl_c_version)
    out.print(table)
    out.print("full fingerprints: macecl devices --json", highlight=False, soft_wrap=True)


def _cache_file(path: Path | None) -> Path:
    if path is None:
        from macecl.runtime.context import default_cache_path

        return default_cache_path()
    return path / config.CACHE_FILE_NAME if path.is_dir() else path


def _describe(cache: CacheFile) -> dict:
    h = cache.header
    devices = [dataclasses.asdict(d) for d in cache.devices]
    entries = [{"device": e.device, "program": e.key.name, "options": e.key.options,
                "size": e.length, "source_sha256": e.key.source_sha256.hex(),
                "payload_sha256": e.payload_sha256.hex(), "last_used": e.last_used}
               for e in cache.entries]
    per_device = [{"device": i, "entries": sum(1 for e in cache.entries if e.device == i),
                   "bytes": sum(e.length for e in cache.entries if e.device == i)}
                  for i in range(len(cache.devices))]
    return {
        "format": "MCLP",
        "header": {"version": h.version, "flags": h.flags, "total_size": h.total_size,
                   "device_count": h.device_count, "entry_count": h.entry_count,
                   "devices_offset": h.devices_offset, "table_offset": h.table_offset,
                   "payload_offset": h.payload_offset},
        "devices": devices,
        "entries": entries,
        "totals": {"entries": len(entries), "payload_bytes": sum(e.length for e in cache.entries),
                   "per_device": per_device},
    }


@contextlib.contextmanager
def _open_or_exit(path: Path) -> Iterator[CacheFile]:
    path = _cache_file(path)
    try:
        with opened(path) as cache:
            yield cache
    except FileNotFoundError:
        raise _fail(f"{path}: no such file") from None
    except CacheFormatError as error:
        raise _fail(f"{path}: not a sound MCLP file: {error}") from None
    except OSError as error:
        raise _fail(f"{path}: {error}") from None


@cache_app.command()
def inspect(file: Annotated[Path, typer.Argument(help="A compiled-program file or its directory.")],
            as_json: JsonFlag = False) -> None:
    """Show a cache file's header, devices, entries and totals (checks header and tables)."""
    with _open_or_exit(file) as cache:
        info = _describe(cache)
    if as_json:
        print(json.dumps({"file": str(file), **info}, indent=2))
        return
    h = info["header"]
    out.print(f"[bold]{file}[/]: MCLP v{h['version']}, {h['total_size']:,} bytes, "
              f"{h['device_count']} device(s), {h['entry_count']} program(s)", highlight=False, soft_wrap=True)
    devices = Table(title="devices")
    for column in ("#", "device", "platform", "driver", "programs", "bytes"):
        devices.add_column(column)
    for i, d in enumerate(info["devices"]):
        totals = info["totals"]["per_device"][i]
        devices.add_row(str(i), d["device_name"], d["platform_name"],
                        d["driver_version"], str(totals["entries"]), f"{totals['bytes']:,}")
    out.print(devices)
    entries = Table(title="programs")
    for column in ("device", "program", "build options", "size", "source", "last used"):
        entries.add_column(column)
    for e in info["entries"]:
        used = datetime.datetime.fromtimestamp(e["last_used"]).isoformat(timespec="seconds")
        entries.add_row(str(e["device"]), e["program"], e["options"] or "-", f"{e['size']:,}",
                        e["source_sha256"][:12], used)
    out.print(entries)
    out.print(f"total: {info['totals']['entries']} program(s), "
              f"{info['totals']['payload_bytes']:,} bytes of binaries", highlight=False, soft_wrap=True)


@cache_app.command()
def verify(file: Annotated[Path, typer.Argument(help="A compiled-program file or its directory.")]) -> None:
    """Check everything in a cache file; exit status 0 only when it is sound."""
    with _open_or_exit(file) as cache:
        problems = cache.verify()
        summary = f"{len(cache.entries)} program(s) for {len(cache.devices)} device(s)"
    if problems:
        for problem in problems:
            err.print(f"[red]bad:[/] {problem}", highlight=False, soft_wrap=True)
        raise _fail(f"{file}: {len(problems)} problem(s) found")
    out.print(f"{file}: sound ({summary}; header, tables, every payload and the "
              "whole-file hash check out)", highlight=False, soft_wrap=True)


@cache_app.command()
def clear(path: Annotated[Optional[Path], typer.Argument(  # noqa: UP007 (typer needs Optional)
        help="Cache file or its directory; default: the default cache file.")] = None) -> None:
    """Delete a cache file (and the damaged copy set aside beside it, if any)."""
    target = _cache_file(path)
    store = CacheStore(target, lock_timeout=config.settings().lock_timeout)
    removed = [str(target)] if store.clear() else []
    if store.corrupt_path.exists():
        store.corrupt_path.unlink()
        removed.append(str(store.corrupt_path))
    out.print(f"removed {', '.join(removed)}" if removed else f"nothing to remove at {target}",
              highlight=False, soft_wrap=True)


@app.command()
def demo(cache_dir: Annotated[Optional[Path], typer.Option(  # noqa: UP007
        help="Where to keep the demo's files; default: a new temporary directory.")] = None,
         device: Annotated[Optional[str], typer.Option(help="Device index or name.")] = None,  # noqa: UP007
         ) -> None:
    """Convert a real CNN, start it cold then warm in fresh processes, show the cache file."""
    import os
    import tempfile

    from macecl.demo import MODEL_NAME, demo_model, spawn
    from macecl.graph.model_file import SUFFIX

    directory = cache_dir or Path(tempfile.mkdtemp(prefix="macecl-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    cache = directory / config.CACHE_FILE_NAME
    cache.unlink(missing_ok=True)
    model = directory / f"{MODEL_NAME}{SUFFIX}"
    out.print(f"$ macecl convert {demo_model()} -o {model}", highlight=False, soft_wrap=True)
    convert(demo_model(), output=model, input_shape=None, as_json=False)
    # Keep the drivers' own caches out, so that "cold" means what a new device goes through.
    env = {**os.environ, "POCL_KERNEL_CACHE": "0", "CUDA_CACHE_DISABLE": "1"}
    table = Table(title=f"{MODEL_NAME}: start-up in fresh processes")
    for column in ("process", "init s", "first run s", "start to result s", "from source",
                   "from cache"):
        table.add_column(column, justify="right")
    runs = {}
    for name in ("cold", "warm"):
        with out.status(f"{name} start in a fresh process..."):
            runs[name] = run = spawn(model, cache, device, env=env)
        table.add_row(name, f"{run['init_seconds']:.3f}", f"{run['first_run_seconds']:.3f}",
                      f"{run['start_to_result_seconds']:.3f}", str(run["programs_from_source"]),
                      str(run["programs_from_cache"]))
    out.print(f"\ndevice: {runs['cold']['device']}", highlight=False, soft_wrap=True)
    out.print(table)
    cold, warm = runs["cold"], runs["warm"]
    same = "the same" if cold["output_sha256"] == warm["output_sha256"] else "DIFFERENT"
    out.print(f"warm init {cold['init_seconds'] / warm['init_seconds']:.0f}x faster than cold; "
              f"both runs gave {same} output {cold['output_shape']}; cache file: {cache}",
              highlight=False, soft_wrap=True)
    out.print(f"\n$ macecl cache inspect {cache}", highlight=False, soft_wrap=True)
    inspect(cache, as_json=False)


def _shape_option(text: str) -> tuple[str, list[int]]:
    name, _, dims = text.rpartition(":")
    try:
        shape = [int(d) for d in dims.split(",")]
    except ValueError:
        shape = []
    if not name or not shape or min(shape) < 0:
        raise _fail(f"--input-shape {text!r}: expected NAME:D1,D2,... (for example x:1,3,224,224)")
    return name, shape


@app.command()
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

    shapes = dict(_shape_option(text) for text in input_shape or [])
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


def _feeds(engine, specs: list[str]) -> dict:
    """--input NAME=FILE.npy | NAME=random | NAME=random:D1,D2,...; unnamed inputs are random."""
    import numpy as np

    given = {}
    for text in specs:
        name, sep, source = text.partition("=")
        if not sep:
            raise _fail(f"--input {text!r}: expected NAME=FILE.npy or NAME=random[:D1,D2,...]")
        given[name] = source
    declared = {s.name: s for s in engine.inputs}
    for name in given:
        if name not in declared:
            raise _fail(f"--input names {name!r}; the model's inputs are {sorted(declared)}")
    rng = np.random.default_rng(0)
    feeds = {}
    for name, spec in declared.items():
        source = given.get(name, "random")
        if source.startswith("random"):
            _, _, dims = source.partition(":")
            if dims:
                shape = _shape_option(f"{name}:{dims}")[1]
            elif all(isinstance(d, int) for d in spec.shape):
                shape = spec.shape
            else:
                raise _fail(f"input {name!r} has shape {spec.describe_shape()}: give one with "
                            f"--input {name}=random:D1,D2,... or a .npy file")
            feeds[name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            try:
                feeds[name] = np.load(source, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise _fail(f"--input {name}: cannot read {source}: {error}") from None
    return feeds


@app.command()
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
        feeds = _feeds(engine, input or [])
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
            table.add_row(row["node"], row["op"], row["kernel"], f"{row['global_size']:,}",
                          f"{row['ms']:.3f}")
        table.add_row("total", "", "", "", f"{sum(r['ms'] for r in rows):.3f}")
        out.print(table)


def main() -> None:
    """Entry point: run the app, turning macecl's errors into a message and exit status 1."""
    try:
        app()
    except MaceclError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
