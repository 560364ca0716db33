"""The on-disk compiled-program cache: mapped reads, locked merge-writes, damaged files set aside.

The cache is an optimisation, so nothing here may crash the caller or lose data:
- readers take no lock: writers replace the file by an atomic rename, so a reader sees the
  old file or the new one, never a half-written one;
- a writer holds an inter-process lock around read-merge-write, so two processes that built
  different programs leave the union of both in the file;
- a file that fails a check is renamed aside (``*.corrupt``, the last one kept) and the run
  goes on as if the cache were empty;
- storage that cannot be written (read-only, full) leaves the run without a cache;
- with a cache key, a file that is unsigned or signed with another key is set aside like a
  damaged one; a cache path that is a symbolic link is too, and a cache in a directory any
  user may write is not used at all (macecl/cache/safe_files.py, docs/security.md).
Each of these warns once per store, then stays quiet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import mmap
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path

import filelock

from macecl import config
from macecl.cache import manage, safe_files
from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey
from macecl.cache.format import CacheFile, NewEntry, encode, entries_of
from macecl.errors import CacheFormatError, CacheTrustError, CacheWarning

log = logging.getLogger(__name__)

# A program loaded from the cache has its last_used refreshed at the next flush once it is
# older than this, so that a size bound drops what is really unused, while a warm start
# that finds everything fresh writes nothing.
REFRESH_AFTER_SECONDS = 24 * 60 * 60

# Crash-test seam: when set, called as ``write_step(step, data)`` at each step of atomic_write
# ("begin": nothing written yet; "written": temporary file filled, not synced; "synced": not
# yet renamed; "renamed": directory not yet synced). The crash tests set it in a child process
# to announce or pause at a step, so that their SIGKILL (standing for an OOM kill, a power cut
# or a user's kill -9) lands inside the write window on purpose, not only by chance.
write_step: Callable[[str, bytes], None] | None = None


def _reached(step: str, data: bytes) -> None:
    if write_step is not None:
        write_step(step, data)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a crash at any moment leaves old or new, never half.

    The bytes go to a temporary file in the same directory (a rename is atomic only within
    one file system), are flushed to the disk, and the rename is made durable by syncing the
    directory. The temporary file, and so the file it becomes, is readable and writable by
    its owner only (mkstemp creates it 0600).
    """
    _reached("begin", data)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            _reached("written", data)
            os.fsync(stream.fileno())
        _reached("synced", data)
        os.replace(temporary, path)
        _reached("renamed", data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # not every file system can sync a directory
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def remove_orphans(path: Path) -> None:
    """Delete the temporary files of writers of ``path`` killed mid-write (each would stay
    forever). Call it holding ``path``'s lock: only a lock holder writes them, so none is in use.
    """
    for orphan in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            orphan.unlink()
            log.debug("removed %s, left by a writer that died", orphan)


class _MappedFile:
    """A cache file mapped read-only; the mapping lives as long as this object."""

    def __init__(self, path: Path, key: bytes | None = None, authenticate: bool = True):
        with os.fdopen(safe_files.open_for_reading(path), "rb") as stream:
            self.inode = os.fstat(stream.fileno()).st_ino
            # An empty file cannot be mapped; it is as damaged as any other short file.
            if os.fstat(stream.fileno()).st_size == 0:
                raise CacheFormatError("file is empty")
            self._map = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        # On a CacheFormatError the map is left to the garbage collector: views of it may
        # live on in the exception's traceback, and closing a map with live views fails.
        self.cache = CacheFile(self._map, origin=str(path), key=key, authenticate=authenticate)

    def close(self) -> None:
        self.cache.release()
        self._map.close()


class CacheStore:
    """The writable compiled-program cache at one path, shared by every context that names it.

    ``key``: the cache key (None: files are neither signed nor expected to be).
    ``allow_world_writable``: use a cache even in a directory any user may write.
    ``max_bytes``: the size bound of ``save``; None: MACECL_CACHE_MAX_BYTES, read at each save.
    ``writable``: False for read-only mode: the store then never takes its lock nor writes, so
    neither the directory nor the lock file is ever created.
    """

    def __init__(
        self,
        path: Path,
        lock_timeout: float = 30.0,
        max_bytes: int | None = None,
        *,
        key: bytes | None = None,
        allow_world_writable: bool = False,
        writable: bool = True,
    ):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.key = key
        self.allow_world_writable = allow_world_writable
        self.writable = writable  # also turned off when the storage proves unwritable
        self._lock = filelock.FileLock(
            f"{self.path}.lock", timeout=lock_timeout, mode=safe_files.FILE_MODE
        )
        self._mapped: _MappedFile | None = None
        self._warned: set[str] = set()

    @property
    def corrupt_path(self) -> Path:
        return self.path.with_name(self.path.name + ".corrupt")

    def _warn(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            warnings.warn(message, CacheWarning, stacklevel=3)

    # -- reading ---------------------------------------------------------------------------

    def _refused_location(self) -> bool:
        """True (after one warning) when the cache's directory lets others replace it."""
        if self.allow_world_writable:
            return False
        problem = safe_files.directory_problem(self.path.parent)
        if problem is None:
            return False
        self.writable = False
        self._warn(
            "unsafe",
            f"compiled-program cache {self.path} is not used: {problem}, so another user could "
            "plant binaries there (allow it with MACECL_ALLOW_WORLD_WRITABLE_CACHE=1 or "
            "set_allow_world_writable_cache)",
        )
        return True

    def load(self) -> CacheFile | None:
        """The cache file with its header, tables and signature checked; None if absent or
        refused (damaged, untrusted, or in an unsafe directory)."""
        self.close()
        if self._refused_location():
            return None
        try:
            self._mapped = _MappedFile(self.path, key=self.key)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except CacheTrustError as error:
            self.quarantine(str(error), untrusted=True)
            return None
        except CacheFormatError as error:
            self.quarantine(str(error))
            return None
        except OSError as error:
            self._warn("storage", f"cannot read the compiled-program cache {self.path}: {error}")
            return None
        return self._mapped.cache

    def quarantine(self, reason: str, *, untrusted: bool = False) -> None:
        """Set a damaged (or untrusted) file aside as ``*.corrupt``, replacing an older one,
        and forget it."""
        inode = self._mapped.inode if self._mapped else None
        self.close()
        moved = False
        if self.writable:
            with contextlib.suppress(OSError, filelock.Timeout), self._lock:
                # lstat: a symbolic link is itself what is moved aside, never its target.
                current = os.lstat(self.path).st_ino
                # Another process may have replaced the damaged file by a sound one meanwhile.
                if inode is None or current == inode:
                    os.replace(self.path, self.corrupt_path)
                    moved = True
        self._warn_set_aside(reason, untrusted, moved)

    def _warn_set_aside(self, reason: str, untrusted: bool, moved: bool) -> None:
        where = f"moved aside to {self.corrupt_path}" if moved else "left in place"
        state = "refused" if untrusted else "damaged"
        self._warn(
            "untrusted" if untrusted else "corrupt",
            f"compiled-program cache {self.path} is {state} ({reason}); {where}; "
            "its programs will be rebuilt from source",
        )

    def close(self) -> None:
        if self._mapped is not None:
            self._mapped.close()
            self._mapped = None

    # -- writing -----------------------------------------------------------------------------

    def save(
        self,
        device: DeviceFingerprint,
        programs: Mapping[ProgramKey, bytes],
        *,
        forget_device: bool = False,
        touched: Collection[ProgramKey] = (),
    ) -> bool:
        """Merge ``programs`` built on ``device`` into the file; True if the file was written.

        Entries of other devices are kept. Entries of this same device under an older driver
        whose key was rebuilt now are dropped, so a driver update does not double the file.
        With ``forget_device``, every entry of this device is dropped first (the execution
        fallback: its stored binaries proved bad). Entries of ``device`` whose key is in
        ``touched`` (loaded from this file and used) get last_used = now. If the result
        exceeds the size bound, the least recently used entries are dropped first.
        """

        def drop(stored: DeviceFingerprint, key: ProgramKey) -> bool:
            if not stored.same_device(device):
                return False
            return forget_device or key in programs

        def refresh(entry: NewEntry) -> NewEntry:
            if entry.device == device and entry.key in touched:
                return dataclasses.replace(entry, last_used=max(entry.last_used, now))
            return entry

        now = int(time.time())
        limit = config.settings().cache_max_bytes if self.max_bytes is None else self.max_bytes
        new = [NewEntry(device, key, payload, now) for key, payload in programs.items()]
        return self._rewrite(
            lambda old: manage.bound(
                [refresh(e) for e in old if not drop(e.device, e.key)] + new, limit
            )
        )

    def update(self, change: Callable[[list[NewEntry]], list[NewEntry]]) -> bool:
        """Replace the file's entries by ``change(entries on disk)``, under the lock,
        atomically; True if the file was written. For tools (merge, prune): no size bound."""
        return self._rewrite(change)

    def clear(self) -> bool:
        """Delete the cache file; True if there was one."""
        try:
            with self._lock:
                self.close()
                self.path.unlink()
                return True
        except FileNotFoundError:
            return False

    def _rewrite(self, merge: Callable[[list[NewEntry]], list[NewEntry]]) -> bool:
        if not self.writable or self._refused_location():
            return False
        try:
            self.path.parent.mkdir(mode=safe_files.DIRECTORY_MODE, parents=True, exist_ok=True)
            with self._lock:
                old = self._read_for_merge()
                merged = merge(old)
                if merged == old:
                    return False
                remove_orphans(self.path)
                atomic_write(self.path, encode(merged, key=self.key))
                log.debug("wrote %d programs to %s", len(merged), self.path)
                return True
        except filelock.Timeout:
            self._warn(
                "lock",
                f"another process held the lock on {self.path} for over "
                f"{self._lock.timeout:g} s; this run's programs are not saved",
            )
        except OSError as error:
            self.writable = False
            self._warn(
                "storage",
                f"cannot write the compiled-program cache {self.path} ({error}); "
                "running without saving compiled programs",
            )
        return False

    def _read_for_merge(self) -> list[NewEntry]:
        """What is on disk now (another process may have written since we loaded), checked whole."""
        try:
            data = safe_files.read_bytes(self.path)
            cache = CacheFile(data, origin=str(self.path), key=self.key)
            problems = cache.verify()
            if problems:
                raise CacheFormatError("; ".join(problems))
            return entries_of(cache)
        except FileNotFoundError:
            return []
        except CacheFormatError as error:
            # Quarantine inline: we already hold the lock, and what is on disk is what we read.
            self.close()
            os.replace(self.path, self.corrupt_path)
            self._warn_set_aside(str(error), isinstance(error, CacheTrustError), moved=True)
            return []


@contextlib.contextmanager
def opened(path: Path) -> Iterator[CacheFile]:
    """A cache file read whole, for tools (inspect, verify): raises CacheFormatError if unsound.

    The signature is not enforced here: tools report it with ``signature_problem(key)``.
    """
    mapped = _MappedFile(Path(path), authenticate=False)
    try:
        yield mapped.cache
    finally:
        mapped.close()
