"""`macecl cache ...`: look into and manage compiled-program cache files."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from macecl import config
from macecl.cache import mace_format, manage, tuning_format
from macecl.cache.fingerprint import DeviceFingerprint
from macecl.cache.format import MAGIC, CacheFile, NewEntry, encode, encoded_size, entries_of
from macecl.cache.store import CacheStore, atomic_write, opened
from macecl.cli.common import JsonFlag, cache_file, err, fail, out
from macecl.errors import CacheFormatError, CacheWarning, ConfigError

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


def describe_mace(mace: mace_format.MaceFile) -> dict:
    programs = [{"key": p.key, "program": p.name, "options": p.options, "size": len(p.binary),
                 "source_hash": p.source_hash} for p in mace.programs]
    return {
        "format": "MACE",
        "platform": mace.platform_fields(),
        "platform_info": mace.platform_info,
        "device_name": mace.device_name,
        "crc32": {"stored": f"{mace.stored_crc:08x}", "computed": f"{mace.computed_crc:08x}",
                  "ok": mace.crc_ok},
        "programs": programs,
        "other_keys": mace.other_keys,
        "totals": {"programs": len(programs), "binary_bytes": sum(p["size"] for p in programs)},
    }


def describe_tuning(tuned: tuning_format.TuningFile) -> dict:
    launches = [{"device": tuned.devices.index(e.device), "program": e.program.name,
                 "options": e.program.options, "kernel": e.kernel,
                 "global_size": list(e.global_size),
                 "local_size": list(e.local_size) if e.local_size else None,
                 "best_ns": e.best_ns, "default_ns": e.default_ns}
                for e in tuned.entries]
    return {"format": "MCLT", "devices": [dataclasses.asdict(d) for d in tuned.devices],
            "launches": launches, "totals": {"launches": len(launches)}}


def _tuning_or_exit(path: Path, data: bytes) -> tuning_format.TuningFile:
    try:
        return tuning_format.TuningFile(data, origin=str(path))
    except CacheFormatError as error:
        raise fail(f"{path}: not a sound tuned-parameters (MCLT) file: {error}") from None


def _print_tuning(file: Path, info: dict) -> None:
    out.print(f"[bold]{file}[/]: MCLT tuned-parameters file, {len(info['devices'])} device(s), "
              f"{info['totals']['launches']} launch shape(s)", highlight=False, soft_wrap=True)
    devices = Table(title="devices")
    for column in ("#", "device", "platform", "driver"):
        devices.add_column(column)
    for i, d in enumerate(info["devices"]):
        devices.add_row(str(i), d["device_name"], d["platform_name"], d["driver_version"])
    out.print(devices)
    launches = Table(title="tuned launches (ms: the driver's choice -> the tuned size)")
    for column in ("device", "program", "kernel", "global size", "local size", "ms"):
        launches.add_column(column)
    for e in info["launches"]:
        local = "x".join(map(str, e["local_size"])) if e["local_size"] else "driver's"
        launches.add_row(str(e["device"]), e["program"], e["kernel"],
                         "x".join(map(str, e["global_size"])), local,
                         f"{e['default_ns'] / 1e6:.3f} -> {e['best_ns'] / 1e6:.3f}")
    out.print(launches)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except OSError as error:
        raise fail(f"{path}: {error}") from None


def _mace_or_exit(path: Path, data: bytes, *, check_crc: bool) -> mace_format.MaceFile:
    """``data`` as a MACE file, recognised by content; exits naming both formats' problems."""
    if data[: len(MAGIC)] == MAGIC:
        raise fail(f"{path}: is an MCLP file, not a MACE file")
    try:
        mace = mace_format.parse(data, check_crc=False)
    except CacheFormatError as error:
        problem = str(error)
    else:
        # Without a sound CRC, only MACE's own platform key tells a damaged MACE file from
        # bytes that happen to parse as protobuf.
        if mace.crc_ok or mace.platform_info is not None:
            if check_crc and not mace.crc_ok:
                raise fail(f"{path}: MACE file with a CRC-32 mismatch (stored "
                           f"{mace.stored_crc:08x}, computed {mace.computed_crc:08x}): damaged")
            return mace
        problem = "its CRC-32 does not match and it has no MACE platform key"
    raise fail(f"{path}: not an MCLP file (magic {data[:4]!r}, not {MAGIC!r}), nor a MACE "
               f"file ({problem})")


def _entries_or_exit(path: Path) -> list[NewEntry]:
    """Every entry of a sound MCLP file (all payloads checked), or exit naming the problem."""
    data = _read(path)
    if data[: len(MAGIC)] != MAGIC and mace_format.looks_like_mace(data):
        raise fail(f"{path}: is a MACE file; `macecl cache convert` it to MCLP first")
    try:
        cache = CacheFile(data, origin=str(path))
        problems = cache.verify()
        if problems:
            raise CacheFormatError("; ".join(problems))
        return entries_of(cache)
    except CacheFormatError as error:
        raise fail(f"{path}: not a sound MCLP file: {error}") from None


def _print_mace(file: Path, info: dict) -> None:
    platform, crc = info["platform"], info["crc32"]
    status = "[green]ok[/]" if crc["ok"] else f"[bold red]MISMATCH[/] (computed {crc['computed']})"
    out.print(f"[bold]{file}[/]: MACE compiled-program file, {info['totals']['programs']} "
              f"program(s), {info['totals']['binary_bytes']:,} bytes of binaries; CRC-32 "
              f"{crc['stored']} {status}", highlight=False, soft_wrap=True)
    header = Table(title="platform and device (MACE records only these)")
    for column in ("platform", "profile", "platform version", "written by", "device name"):
        header.add_column(column)
    header.add_row(platform["name"], platform["profile"], platform["version"],
                   platform["mace_version"], info["device_name"] or "(none recorded)")
    out.print(header)
    programs = Table(title="programs")
    for column in ("program", "build options", "size", "source hash"):
        programs.add_column(column)
    for p in info["programs"]:
        programs.add_row(p["program"], p["options"] or "-", f"{p['size']:,}",
                         (p["source_hash"] or "(none)")[:16])
    out.print(programs)
    if info["other_keys"]:
        out.print(f"other keys: {', '.join(info['other_keys'])}", highlight=False, soft_wrap=True)


@cache_app.command()
def inspect(file: Annotated[Path, typer.Argument(help="A compiled-program file or its directory.")],
            as_json: JsonFlag = False, key: KeyOption = None) -> None:
    """Show a cache file's header, signature, devices, entries and totals (checks header and
    tables).

    Recognised by content too: MACE's own files (platform, device, programs, CRC status) and
    tuned-parameters files (devices, and each launch's tuned local size and times).
    """
    path = cache_file(file)
    data = _read(path)
    if data[: len(MAGIC)] != MAGIC:
        tuned = data[: len(tuning_format.MAGIC)] == tuning_format.MAGIC
        info = (describe_tuning(_tuning_or_exit(path, data)) if tuned
                else describe_mace(_mace_or_exit(path, data, check_crc=False)))
        if as_json:
            print(json.dumps({"file": str(file), **info}, indent=2))
        else:
            (_print_tuning if tuned else _print_mace)(file, info)
        return
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
    """Check everything in a cache file (MCLP or MACE) or a tuned-parameters file, an MCLP
    file's signature as the runtime would under the key; exit status 0 only when it is
    sound."""
    path = cache_file(file)
    data = _read(path)
    if data[: len(tuning_format.MAGIC)] == tuning_format.MAGIC:
        tuned = _tuning_or_exit(path, data)
        out.print(f"{file}: sound tuned-parameters file ({len(tuned.entries)} launch shape(s) "
                  f"for {len(tuned.devices)} device(s); the SHA-256 trailer and every record "
                  "check out)", highlight=False, soft_wrap=True)
        return
    if data[: len(MAGIC)] != MAGIC:
        mace = _mace_or_exit(path, data, check_crc=True)
        out.print(f"{file}: sound MACE file ({len(mace.programs)} program(s); the CRC-32 and "
                  "the protobuf message check out)", highlight=False, soft_wrap=True)
        return
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


def _write_or_exit(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as error:
        raise fail(f"cannot write {path}: {error}") from None


def _size_or_exit(text: str) -> int:
    try:
        return config.parse_size(text, "--max-size")
    except ConfigError as error:
        raise fail(str(error)) from None


def _local_device(selector: str) -> DeviceFingerprint:
    from macecl.runtime.device import select_device

    return select_device(selector).fingerprint


def _mace_to_mclp(path: Path, data: bytes, local: str | None) -> tuple[bytes, dict]:
    mace = _mace_or_exit(path, data, check_crc=True)
    device = None
    if local is not None:
        device = _local_device(local)
        if not mace_format.matches(mace, device):
            raise fail(f"{path} was written on {mace.platform_fields()['name']!r} device "
                       f"{mace.device_name or '(unnamed)'!r}, not on {device.describe()}")
    fingerprint = mace_format.fingerprint(mace, device)
    entries, skipped = mace_format.to_entries(mace, fingerprint, int(path.stat().st_mtime))
    unknown = [f for f in mace_format.UNKNOWN_FIELDS if device is None
               or (f == "driver_version" and not fingerprint.driver_version)]
    if device is None:
        policy = ("no device's fingerprint equals it and the empty vendors fail the same-device "
                  "test, so neither REUSE_NONE nor REUSE_SAME_GPU uses these programs; pass "
                  "--local-device to take the unknown fields from a device of this machine")
    elif unknown:
        policy = ("the platform version differs from the local driver's, so the driver version "
                  "is unknown: REUSE_SAME_GPU tries these binaries (and rebuilds any the driver "
                  "rejects); REUSE_NONE does not use them")
    else:
        policy = "the fingerprint equals the local device's: both reuse policies use them"
    report = {"programs": len(entries), "device": dataclasses.asdict(fingerprint),
              "unknown_fields": unknown, "reuse": policy,
              "skipped": [dataclasses.asdict(s) for s in skipped]}
    return encode(entries), report


def _mclp_to_mace(path: Path, device_index: int | None) -> tuple[bytes, dict]:
    entries = _entries_or_exit(path)
    devices: list[DeviceFingerprint] = []
    for entry in entries:
        if entry.device not in devices:
            devices.append(entry.device)
    if not devices:
        raise fail(f"{path} holds no program to convert")
    if device_index is None and len(devices) > 1:
        listing = "; ".join(f"{i}: {d.describe()}" for i, d in enumerate(devices))
        raise fail(f"{path} holds programs of {len(devices)} devices and a MACE file holds one: "
                   f"choose one with --device-index ({listing})")
    index = device_index or 0
    if not 0 <= index < len(devices):
        raise fail(f"--device-index {index}: {path} has devices 0 to {len(devices) - 1}")
    device = devices[index]
    try:
        data = mace_format.from_entries(entries, device)
    except ValueError as error:
        raise fail(f"{path}: {error}") from None
    programs = sum(1 for e in entries if e.device == device)
    report = {"programs": programs, "device": dataclasses.asdict(device),
              "device_name_recorded": mace_format.mace_device_name(device),
              "left_out_devices": len(devices) - 1}
    return data, report


@cache_app.command()
def convert(
    file: Annotated[Path, typer.Argument(help="An MCLP or MACE compiled-program file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    device_index: Annotated[Optional[int], typer.Option(  # noqa: UP007
        help="MCLP to MACE: which device's programs (as `cache inspect` numbers them).")] = None,
    local_device: Annotated[Optional[str], typer.Option(  # noqa: UP007
        help="MACE to MCLP: take the fingerprint fields MACE does not record from this "
             "machine's device (index or name, as `macecl devices` lists them).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Turn an MCLP file into MACE's format or a MACE file into MCLP (told apart by content)."""
    path = cache_file(file)
    data = _read(path)
    if data[: len(MAGIC)] == MAGIC:
        converted, report = _mclp_to_mace(path, device_index)
        formats = ("MCLP", "MACE")
    else:
        converted, report = _mace_to_mclp(path, data, local_device)
        formats = ("MACE", "MCLP")
    _write_or_exit(output, converted)
    report = {"input": str(file), "input_format": formats[0], "output": str(output),
              "output_format": formats[1], "output_bytes": len(converted), **report}
    if as_json:
        print(json.dumps(report, indent=2))
        return
    out.print(f"{file} ({formats[0]}) -> {output} ({formats[1]}): {report['programs']} "
              f"program(s), {len(converted):,} bytes", highlight=False, soft_wrap=True)
    for skipped in report.get("skipped", []):
        out.print(f"  left out {skipped['key']}: {skipped['reason']}", highlight=False,
                  soft_wrap=True)
    if "unknown_fields" in report:
        unknown = ", ".join(report["unknown_fields"]) or "none"
        out.print(f"fingerprint fields MACE does not record, left empty: {unknown}; "
                  f"{report['reuse']}", highlight=False, soft_wrap=True)
    if report.get("left_out_devices"):
        out.print(f"programs of {report['left_out_devices']} other device(s) left out",
                  highlight=False, soft_wrap=True)


@cache_app.command()
def merge(
    files: Annotated[list[Path], typer.Argument(help="Two or more MCLP files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The merged file to write.")],
    as_json: JsonFlag = False,
) -> None:
    """Merge MCLP files: the union of their programs; per device and program the most
    recently used entry wins. The output is replaced atomically."""
    if len(files) < 2:
        raise fail("merge needs two or more files")
    sources = [_entries_or_exit(cache_file(f)) for f in files]
    merged = manage.merge(*sources)
    data = encode(merged)
    _write_or_exit(output, data)
    report = {"inputs": [{"file": str(f), "programs": len(s)} for f, s in zip(files, sources,
                                                                           strict=True)],
              "output": str(output), "programs": len(merged), "output_bytes": len(data),
              "duplicates_resolved": sum(len(s) for s in sources) - len(merged)}
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title="merged")
    for column in ("file", "programs"):
        table.add_column(column)
    for item in report["inputs"]:
        table.add_row(item["file"], str(item["programs"]))
    table.add_row(f"[bold]{output}[/]", f"[bold]{len(merged)}[/]")
    out.print(table)
    out.print(f"{report['duplicates_resolved']} duplicate(s) resolved (most recently used "
              f"kept); {len(data):,} bytes written", highlight=False, soft_wrap=True)


@cache_app.command()
def prune(
    file: Annotated[Path, typer.Argument(help="An MCLP file or its directory.")],
    max_size: Annotated[Optional[str], typer.Option(  # noqa: UP007
        help="Drop the least recently used programs until the file fits (4096, 64K, 256M).")
    ] = None,
    drop_unmatched: Annotated[bool, typer.Option(
        help="Also drop programs of every fingerprint that no device of this machine has now "
             "(other devices, older drivers).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Shrink a cache file in place, under its lock, least recently used programs first."""
    path = cache_file(file)
    if max_size is None and not drop_unmatched:
        raise fail("nothing to do: give --max-size, --drop-unmatched or both")
    limit = _size_or_exit(max_size) if max_size is not None else None
    before = _entries_or_exit(path)  # a sound file, or a clear error before any lock is taken
    keep = None
    if drop_unmatched:
        from macecl.runtime.device import list_devices

        keep = [d.fingerprint for d in list_devices()]
    results: list[manage.Pruned] = []

    def change(entries: list[NewEntry]) -> list[NewEntry]:
        bound = encoded_size(entries) if limit is None else limit
        results.append(manage.prune(entries, bound, keep))
        kept = {id(e) for e in results[-1].kept}
        return [e for e in entries if id(e) in kept]

    store = CacheStore(path, lock_timeout=config.settings().lock_timeout)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        store.update(change)
    problems = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    if problems:
        raise fail(f"{path}: not pruned: {'; '.join(problems)}")
    result = results[-1] if results else manage.Pruned(before, [], [])
    report = {"file": str(file), "programs_before": len(before), "programs": len(result.kept),
              "bytes_before": encoded_size(before), "bytes": result.size,
              "dropped_least_recently_used": [str(e.key) for e in result.least_recently_used],
              "dropped_unmatched": [str(e.key) for e in result.unmatched]}
    if as_json:
        print(json.dumps(report, indent=2))
        return
    out.print(f"{file}: {report['programs_before']} -> {report['programs']} program(s), "
              f"{report['bytes_before']:,} -> {report['bytes']:,} bytes; dropped "
              f"{len(result.least_recently_used)} least recently used, "
              f"{len(result.unmatched)} of no local device", highlight=False, soft_wrap=True)
