"""`macecl cache ...`: look into and manage compiled-program cache files."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from macecl import config
from macecl.cache.format import CacheFile
from macecl.cache.store import CacheStore, opened
from macecl.cli.common import JsonFlag, cache_file, err, fail, out
from macecl.errors import CacheFormatError

cache_app = typer.Typer(help="Look into and manage compiled-program cache files.",
                        no_args_is_help=True)

KeyOption = Annotated[str | None, typer.Option(
    "--key", help="Cache key to check the signature with; default MACECL_CACHE_KEY.",
    show_default=False)]


def signature_status(cache: CacheFile, key: str | None) -> dict:
    """Whether the file is signed, whether a key was given, and what the runtime would say."""
    key = key or config.settings().cache_key
    problem = cache.signature_problem(key.encode("utf-8") if key else None)
    if not cache.header.signed:
        state = "unsigned" if problem is None else "unsigned (refused under the key)"
    elif key is None:
        state = "signed (not checked: no key given)"
    else:
        state = "signed, signature valid" if problem is None else "signed, signature INVALID"
    return {"signed": cache.header.signed, "key_given": key is not None,
            "status": state, "problem": problem}


def describe(cache: CacheFile) -> dict:
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
    path = cache_file(path)
    try:
        with opened(path) as cache:
            yield cache
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except CacheFormatError as error:
        raise fail(f"{path}: not a sound MCLP file: {error}") from None
    except OSError as error:
        raise fail(f"{path}: {error}") from None


@cache_app.command()
def inspect(file: Annotated[Path, typer.Argument(help="A compiled-program file or its directory.")],
            as_json: JsonFlag = False, key: KeyOption = None) -> None:
    """Show a cache file's header, signature, devices, entries and totals (checks header and
    tables)."""
    with _open_or_exit(file) as cache:
        info = {**describe(cache), "signature": signature_status(cache, key)}
    if as_json:
        print(json.dumps({"file": str(file), **info}, indent=2))
        return
    h = info["header"]
    out.print(f"[bold]{file}[/]: MCLP v{h['version']}, {h['total_size']:,} bytes, "
              f"{h['device_count']} device(s), {h['entry_count']} program(s)", highlight=False, soft_wrap=True)
    out.print(f"signature: {info['signature']['status']}", highlight=False, soft_wrap=True)
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
def verify(file: Annotated[Path, typer.Argument(help="A compiled-program file or its directory.")],
           key: KeyOption = None) -> None:
    """Check everything in a cache file, its signature as the runtime would under the key;
    exit status 0 only when it is sound."""
    with _open_or_exit(file) as cache:
        signature = signature_status(cache, key)
        problems = cache.verify() + ([signature["problem"]] if signature["problem"] else [])
        summary = (f"{len(cache.entries)} program(s) for {len(cache.devices)} device(s), "
                   f"{signature['status']}")
    if problems:
        for problem in problems:
            err.print(f"[red]bad:[/] {problem}", highlight=False, soft_wrap=True)
        raise fail(f"{file}: {len(problems)} problem(s) found")
    out.print(f"{file}: sound ({summary}; header, tables, signature, every payload and the "
              "whole-file hash check out)", highlight=False, soft_wrap=True)


@cache_app.command()
def clear(path: Annotated[Path | None, typer.Argument(
        help="Cache file or its directory; default: the default cache file.")] = None) -> None:
    """Delete a cache file (and the damaged copy set aside beside it, if any)."""
    target = cache_file(path)
    store = CacheStore(target, lock_timeout=config.settings().lock_timeout)
    removed = [str(target)] if store.clear() else []
    if store.corrupt_path.exists():
        store.corrupt_path.unlink()
        removed.append(str(store.corrupt_path))
    out.print(f"removed {', '.join(removed)}" if removed else f"nothing to remove at {target}",
              highlight=False, soft_wrap=True)
