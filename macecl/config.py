"""Every MACECL_* setting, typed, in one place.

The environment is read when ``settings()`` is called, not at import, so a process that sets a
variable before creating its first context is honoured. Tests change settings with
``override(...)`` instead of editing ``os.environ``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

from macecl.errors import ConfigError

CACHE_FILE_NAME = "mace_cl_compiled_program.bin"
BUILD_MODES = ("threads", "processes")


def default_build_workers() -> int:
    """One build per core, at most 8 (a model has rarely more programs than that in flight)."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclasses.dataclass(frozen=True)
class Settings:
    # MACECL_DEVICE: device index in `macecl devices` order, or a substring of its name.
    device: str | None = None
    # MACECL_CACHE_DIR: directory of the compiled-program cache (default: the user cache dir).
    cache_dir: Path | None = None
    # MACECL_LOCK_TIMEOUT: seconds to wait for another process's cache write before giving up
    # on writing (the run goes on without saving); a crashed holder must not block us forever.
    lock_timeout: float = 30.0
    # MACECL_CACHE_MAX_BYTES: bound on the cache file's size (bytes, or with a K/M/G suffix);
    # a write that would pass it drops the least recently used programs first. 0: no bound.
    cache_max_bytes: int = 256 * 1024 * 1024
    # MACECL_CACHE_READ_ONLY: use the cache file as it is and never write it (no directory, no
    # lock file, no converted models): for apps whose storage may not be written.
    cache_read_only: bool = False
    # MACECL_CACHE_KEY: secret that signs compiled-program files (HMAC-SHA256); with it set,
    # unsigned files and files signed with another key are refused (docs/security.md).
    cache_key: str | None = None
    # MACECL_ALLOW_WORLD_WRITABLE_CACHE: 1 to use a cache in a directory any user may write
    # (refused by default: another user could plant binaries there).
    allow_world_writable_cache: bool = False
    # MACECL_BUILD_WORKERS: programs built from source at once when a model's programs are
    # fetched together (Engine start-up); 1 builds them one after another in the calling
    # thread, as before. See bench/cold_build.py for the figures behind the default.
    build_workers: int = dataclasses.field(default_factory=default_build_workers)
    # MACECL_BUILD_MODE: "threads" (the driver builds with the GIL released) or "processes"
    # (worker processes build and hand the binaries over: for drivers that compile one
    # program at a time per process; the application's main module must then be guarded by
    # `if __name__ == "__main__":`, as for any use of multiprocessing's spawn).
    build_mode: str = "threads"

    def __post_init__(self) -> None:
        if self.cache_dir is not None and not isinstance(self.cache_dir, Path):
            # override(cache_dir="...") from an application: a str or any os.PathLike
            object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())
        if self.build_workers < 1:
            raise ConfigError(f"MACECL_BUILD_WORKERS={self.build_workers} must be 1 or more")
        if self.build_mode not in BUILD_MODES:
            raise ConfigError(f"MACECL_BUILD_MODE={self.build_mode!r} is not one of "
                              f"{', '.join(BUILD_MODES)}")


_overrides: dict[str, object] = {}


def _from_environment() -> dict[str, object]:
    values: dict[str, object] = {}
    if device := os.environ.get("MACECL_DEVICE"):
        values["device"] = device
    if cache_dir := os.environ.get("MACECL_CACHE_DIR"):
        values["cache_dir"] = Path(cache_dir).expanduser()
    if timeout := os.environ.get("MACECL_LOCK_TIMEOUT"):
        values["lock_timeout"] = _number("MACECL_LOCK_TIMEOUT", timeout, float,
                                         "a number of seconds")
    if max_bytes := os.environ.get("MACECL_CACHE_MAX_BYTES"):
        values["cache_max_bytes"] = parse_size(max_bytes, "MACECL_CACHE_MAX_BYTES")
    if read_only := os.environ.get("MACECL_CACHE_READ_ONLY"):
        values["cache_read_only"] = _flag("MACECL_CACHE_READ_ONLY", read_only)
    if key := os.environ.get("MACECL_CACHE_KEY"):
        values["cache_key"] = key
    if allow := os.environ.get("MACECL_ALLOW_WORLD_WRITABLE_CACHE"):
        values["allow_world_writable_cache"] = _flag("MACECL_ALLOW_WORLD_WRITABLE_CACHE", allow)
    if workers := os.environ.get("MACECL_BUILD_WORKERS"):
        values["build_workers"] = _number("MACECL_BUILD_WORKERS", workers, int,
                                          "a whole number of workers")
    if mode := os.environ.get("MACECL_BUILD_MODE"):
        values["build_mode"] = mode.strip().lower()
    return values


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str, what: str = "size") -> int:
    """``4096``, ``64K``, ``256M``, ``1G`` (binary units, an optional trailing B) as bytes."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _SIZE_UNITS else ""
    number = value[: len(value) - len(unit)].strip()
    try:
        size = int(float(number) * _SIZE_UNITS[unit])
    except (ValueError, OverflowError):
        size = -1
    if size < 0:
        raise ConfigError(f"{what}={text!r} is not a size (examples: 4096, 64K, 256M, 1G)")
    return size


def _number(name: str, text: str, kind: type, what: str) -> float | int:
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not {what}") from None


def _flag(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={text!r} is not a flag; use 1/0, true/false, yes/no or on/off")


def settings() -> Settings:
    """The settings in force: defaults, then the environment, then ``override``."""
    return Settings(**{**_from_environment(), **_overrides})


@contextlib.contextmanager
def override(**values: object) -> Iterator[Settings]:
    """Change settings inside a ``with`` block (for tests and embedding applications)."""
    unknown = set(values) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    saved = dict(_overrides)
    _overrides.update(values)
    try:
        yield settings()
    finally:
        _overrides.clear()
        _overrides.update(saved)
