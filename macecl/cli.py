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
        help="Where to keep the demo's cache file; default: a new temporary directory.")] = None,
         device: Annotated[Optional[str], typer.Option(help="Device index or name.")] = None,  # noqa: UP007
         ) -> None:
    """Start twice in fresh processes, cold then warm, and show what the cache file holds."""
    import os
    import tempfile

    from macecl.demo import spawn

    directory = cache_dir or Path(tempfile.mkdtemp(prefix="macecl-demo-"))
    path = directory / config.CACHE_FILE_NAME
    path.unlink(missing_ok=True)
    # Keep the drivers' own caches out, so that "cold" means what a new device goes through.
    env = {**os.environ, "POCL_KERNEL_CACHE": "0", "CUDA_CACHE_DISABLE": "1"}
    args = [str(path), *([device] if device else [])]
    table = Table(title="start-up: every kernel-library program, first launch of every kernel")
    for column in ("process", "init s", "from source", "from cache", "build s", "saved"):
        table.add_column(column, justify="right")
    runs = {}
    for name in ("cold", "warm"):
        with out.status(f"{name} start in a fresh process..."):
            runs[name] = run = spawn(*args, env=env)
        table.add_row(name, f"{run['init_seconds']:.3f}", str(run["from_source"]),
                      str(run["from_cache"]), f"{run['build_seconds']:.3f}", str(run["saved"]))
    out.print(f"device: {runs['cold']['device']}; {runs['cold']['programs']} programs, "
              f"{runs['cold']['kernels']} kernels", highlight=False, soft_wrap=True)
    out.print(table)
    speedup = runs["cold"]["init_seconds"] / runs["warm"]["init_seconds"]
    out.print(f"warm start {speedup:.0f}x faster; cache file: {path}", highlight=False,
              soft_wrap=True)
    out.print(f"\n$ macecl cache inspect {path}", highlight=False, soft_wrap=True)
    inspect(path, as_json=False)


def main() -> None:
    """Entry point: run the app, turning macecl's errors into a message and exit status 1."""
    try:
        app()
    except MaceclError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
