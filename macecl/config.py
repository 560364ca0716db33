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
        try:
            values["lock_timeout"] = float(timeout)
        except ValueError:
            raise ConfigError(
                f"MACECL_LOCK_TIMEOUT={timeout!r} is not a number of seconds"
            ) from None
    if workers := os.environ.get("MACECL_BUILD_WORKERS"):
        try:
            values["build_workers"] = int(workers)
        except ValueError:
            raise ConfigError(
                f"MACECL_BUILD_WORKERS={workers!r} is not a whole number of workers"
            ) from None
    if mode := os.environ.get("MACECL_BUILD_MODE"):
        values["build_mode"] = mode.strip().lower()
    return values


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
