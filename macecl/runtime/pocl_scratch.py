"""Keeps PoCL's kernel cache from duplicating ours, and its scratch files in memory.

PoCL keeps a disk cache of compiled kernels of its own (``~/.cache/pocl/kcache``). Beside
macecl's compiled-program cache it is a second copy of the same work, and it would hide cold
starts. With it off (``POCL_KERNEL_CACHE=0``), PoCL still unpacks every program binary it is
handed into files under its cache directory and ``fdatasync``s each one: on a disk that is
most of the time a warm start takes (30 of 60 ms for the 18 programs of the demo). So, before
PoCL starts, and only where the user has set neither variable:

- ``POCL_KERNEL_CACHE`` is set to 0: macecl's cache is the one cache;
- ``POCL_CACHE_DIR`` is pointed at a directory of this process in ``/dev/shm`` (RAM), removed
  at exit; directories that dead processes left behind are swept on the next start.

A user who sets ``POCL_KERNEL_CACHE=1`` or ``POCL_CACHE_DIR`` keeps PoCL exactly as they
configured it. Nothing changes for other OpenCL drivers, which ignore these variables.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

RAM_DIRECTORY = Path("/dev/shm")
PREFIX = "macecl-pocl-"


def prepare(environ: os._Environ | dict = os.environ, ram: Path = RAM_DIRECTORY) -> Path | None:
    """Apply the policy above to ``environ``; return the scratch directory made, if any."""
    if _inherited(environ.get("POCL_CACHE_DIR"), ram):
        # NOTE: PoCL (kernel cache off) still writes each program's files under fixed names
        # in POCL_CACHE_DIR, so processes sharing one directory overwrite each other's
        # ("Final linking of kernel ... failed"). A child started by a macecl process
        # inherits its scratch variable: it makes a directory of its own instead.
        del environ["POCL_CACHE_DIR"]
    if "POCL_CACHE_DIR" in environ:
        return None
    environ.setdefault("POCL_KERNEL_CACHE", "0")
    if environ["POCL_KERNEL_CACHE"] != "0" or not _usable(ram):
        return None
    _sweep(ram)
    try:
        scratch = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=ram))
    except OSError:
        return None
    environ["POCL_CACHE_DIR"] = str(scratch)
    creator = os.getpid()
    atexit.register(lambda: os.getpid() == creator and shutil.rmtree(scratch, ignore_errors=True))
    return scratch


def _inherited(directory: str | None, ram: Path) -> bool:
    """Whether ``directory`` is the scratch directory of another (parent) macecl process."""
    if directory is None or Path(directory).parent != ram:
        return False
    name = Path(directory).name
    return name.startswith(PREFIX) and name[len(PREFIX):].split("-", 1)[0] != str(os.getpid())


def _usable(ram: Path) -> bool:
    return ram.is_dir() and os.access(ram, os.W_OK | os.X_OK)


def _sweep(ram: Path) -> None:
    """Remove the scratch directories of processes that no longer exist (killed ones)."""
    for leftover in ram.glob(f"{PREFIX}*"):
        pid = leftover.name[len(PREFIX):].split("-", 1)[0]
        try:
            mine = leftover.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
