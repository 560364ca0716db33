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


@dataclasses.dataclass(frozen=True)
class Settings:
    # MACECL_DEVICE: device index in `macecl devices` order, or a substring of its name.
    device: str | None = None
    # MACECL_CACHE_DIR: directory of the compiled-program cache (default: the user cache dir).
    cache_dir: Path | None = None
    # MACECL_LOCK_TIMEOUT: seconds to wait for another process's cache write before giving up
    # on writing (the run goes on without saving); a crashed holder must not block us forever.
    lock_timeout: float = 30.0
    # MACECL_CACHE_KEY: secret that signs compiled-program files (HMAC-SHA256); with it set,
    # unsigned files and files signed with another key are refused (docs/security.md).
    cache_key: str | None = None
    # MACECL_ALLOW_WORLD_WRITABLE_CACHE: 1 to use a cache in a directory any user may write
    # (refused by default: another user could plant binaries there).
    allow_world_writable_cache: bool = False


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
    if key := os.environ.get("MACECL_CACHE_KEY"):
        values["cache_key"] = key
    if allow := os.environ.get("MACECL_ALLOW_WORLD_WRITABLE_CACHE"):
        values["allow_world_writable_cache"] = _flag("MACECL_ALLOW_WORLD_WRITABLE_CACHE", allow)
    return values


def _flag(name: str, text: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}
    try:
        return words[text.strip().lower()]
    except KeyError:
        raise ConfigError(f"{name}={text!r} is not a yes/no value (1/0, true/false)") from None


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
