"""The tuned-parameters file on disk: read whole, merge-written under a lock, atomically.

Like the compiled-program cache it is an optimisation: a damaged file is set aside
(``*.corrupt``) with a warning and the run goes on with default work-group sizes; storage that
cannot be written leaves the tuning results unsaved, with a warning, never a crash. It is
opened and created by the cache's own rules (macecl/cache/safe_files.py): never through a
symbolic link, and readable by its owner only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import filelock

from macecl.cache import safe_files
from macecl.cache.store import atomic_write, remove_orphans
from macecl.cache.tuning_format import TunedLaunch, TuningFile, encode
from macecl.errors import CacheFormatError, CacheTrustError, CacheWarning

log = logging.getLogger(__name__)


class TuningStore:
    """The tuned-parameters file at one path."""

    def __init__(self, path: Path, lock_timeout: float = 30.0, writable: bool = True):
        self.path = Path(path)
        self.writable = writable  # False: read-only storage; a damaged file is left in place
        self._lock = filelock.FileLock(f"{self.path}.lock", timeout=lock_timeout,
                                       mode=safe_files.FILE_MODE)

    def load(self) -> TuningFile | None:
        """The file, checked whole; None when it is absent, unreadable, damaged or refused
        (warned)."""
        try:
            return self._read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except CacheFormatError as error:  # damaged, or refused: a link, not a regular file
            self._set_aside(error)
        except OSError as error:
            warnings.warn(f"cannot read the tuned-parameters file {self.path}: {error}; "
                          "using default work-group sizes", CacheWarning, stacklevel=2)
        return None

    def save(self, launches: Iterable[TunedLaunch]) -> bool:
        """Merge ``launches`` into the file (replacing the same device's same launches)."""
        launches = list(launches)
        if not self.writable:
            return False
        try:
            self.path.parent.mkdir(mode=safe_files.DIRECTORY_MODE, parents=True, exist_ok=True)
            with self._lock:
                old = self._read_for_merge()
                new = {(e.device, e.key) for e in launches}
                kept = [e for e in old if (e.device, e.key) not in new]
                remove_orphans(self.path)
                atomic_write(self.path, encode(kept + launches))
            log.debug("wrote %d tuned launches to %s", len(kept) + len(launches), self.path)
            return True
        except filelock.Timeout:
            warnings.warn(f"another process held the lock on {self.path} for over "
                          f"{self._lock.timeout:g} s; the tuning results are not saved",
                          CacheWarning, stacklevel=2)
        except OSError as error:
            warnings.warn(f"cannot write the tuned-parameters file {self.path} ({error}); "
                          "the tuning results are not saved", CacheWarning, stacklevel=2)
        return False

    def _read(self) -> TuningFile:
        return TuningFile(safe_files.read_bytes(self.path), origin=str(self.path))

    def _read_for_merge(self) -> list[TunedLaunch]:
        try:
            return self._read().entries
        except FileNotFoundError:
            return []
        except CacheFormatError as error:
            self._set_aside(error)
            return []

    def _set_aside(self, error: CacheFormatError) -> None:
        corrupt = self.path.with_name(self.path.name + ".corrupt")
        moved = False
        if self.writable:
            with contextlib.suppress(OSError):
                os.replace(self.path, corrupt)
                moved = True
        where = f"moved aside to {corrupt}" if moved else "left in place"
        state = "refused" if isinstance(error, CacheTrustError) else "damaged"
        warnings.warn(f"tuned-parameters file {self.path} is {state} ({error}); {where}; "
                      "using default work-group sizes", CacheWarning, stacklevel=3)
