"""The on-disk compiled-program cache: mapped reads, locked merge-writes, damaged files set aside.

The cache is an optimisation, so nothing here may crash the caller or lose data:
- readers take no lock: writers replace the file by an atomic rename, so a reader sees the
  old file or the new one, never a half-written one;
- a writer holds an inter-process lock around read-merge-write, so two processes that built
  different programs leave the union of both in the file;
- a file that fails a check is renamed aside (``*.corrupt``, the last one kept) and the run
  goes on as if the cache were empty;
- storage that cannot be written (read-only, full) leaves the run without a cache.
Each of these warns once per store, then stays quiet.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import mmap
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import filelock

from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey
from macecl.cache.format import CacheFile, NewEntry, encode, entries_of
from macecl.errors import CacheFormatError, CacheWarning

log = logging.getLogger(__name__)

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
    directory.
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

    def __init__(self, path: Path):
        with open(path, "rb") as stream:
            self.inode = os.fstat(stream.fileno()).st_ino
            # An empty file cannot be mapped; it is as damaged as any other short file.
            if os.fstat(stream.fileno()).st_size == 0:
                raise CacheFormatError("file is empty")
            self._map = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        # On a CacheFormatError the map is left to the garbage collector: views of it may
        # live on in the exception's traceback, and closing a map with live views fails.
        self.cache = CacheFile(self._map, origin=str(path))

    def close(self) -> None:
        self.cache.release()
        self._map.close()


class CacheStore:
    """The writable compiled-program cache at one path, shared by every context that names it."""

    def __init__(self, path: Path, lock_timeout: float = 30.0):
        self.path = Path(path)
        self.writable = True
        self._lock = filelock.FileLock(f"{self.path}.lock", timeout=lock_timeout)
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

    def load(self) -> CacheFile | None:
        """The cache file with its header and tables checked, or None if absent or damaged."""
        self.close()
        try:
            self._mapped = _MappedFile(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except CacheFormatError as error:
            self.quarantine(str(error))
            return None
        except OSError as error:
            self._warn("storage", f"cannot read the compiled-program cache {self.path}: {error}")
            return None
        return self._mapped.cache

    def quarantine(self, reason: str) -> None:
        """Set a damaged file aside as ``*.corrupt`` (replacing an older one) and forget it."""
        inode = self._mapped.inode if self._mapped else None
        self.close()
        moved = False
        if self.writable:
            with contextlib.suppress(OSError, filelock.Timeout), self._lock:
                current = os.stat(self.path).st_ino
                # Another process may have replaced the damaged file by a sound one meanwhile.
                if inode is None or current == inode:
                    os.replace(self.path, self.corrupt_path)
                    moved = True
        where = f"moved aside to {self.corrupt_path}" if moved else "left in place"
        self._warn(
            "corrupt",
            f"compiled-program cache {self.path} is damaged ({reason}); {where}; "
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
    ) -> bool:
        """Merge ``programs`` built on ``device`` into the file; True if the file was written.

        Entries of other devices are kept. Entries of this same device under an older driver
        whose key was rebuilt now are dropped, so a driver update does not double the file.
        With ``forget_device``, every entry of this device is dropped first (the execution
        fallback: its stored binaries proved bad).
        """

        def drop(stored: DeviceFingerprint, key: ProgramKey) -> bool:
            if not stored.same_device(device):
                return False
            return forget_device or key in programs

        now = int(time.time())
        new = [NewEntry(device, key, payload, now) for key, payload in programs.items()]
        return self._rewrite(lambda old: [e for e in old if not drop(e.device, e.key)] + new)

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
        if not self.writable:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                old = self._read_for_merge()
                merged = merge(old)
                if merged == old:
                    return False
                remove_orphans(self.path)
                atomic_write(self.path, encode(merged))
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
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            cache = CacheFile(data, origin=str(self.path))
            problems = cache.verify()
            if problems:
                raise CacheFormatError("; ".join(problems))
            return entries_of(cache)
        except CacheFormatError as error:
            # Quarantine inline: we already hold the lock, and what is on disk is what we read.
            self.close()
            os.replace(self.path, self.corrupt_path)
            self._warn(
                "corrupt",
                f"compiled-program cache {self.path} is damaged ({error}); moved aside to "
                f"{self.corrupt_path}; its programs will be rebuilt from source",
            )
            return []


@contextlib.contextmanager
def opened(path: Path) -> Iterator[CacheFile]:
    """A cache file read whole, for tools (inspect, verify): raises CacheFormatError if unsound."""
    mapped = _MappedFile(Path(path))
    try:
        yield mapped.cache
    finally:
        mapped.close()
