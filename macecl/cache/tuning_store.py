"""The tuned-parameters file on disk: read whole, merge-written under a lock, atomically.

Like the compiled-program cache it is an optimisation: a damaged file is set aside
(``*.corrupt``) with a warning and the run goes on with default work-group sizes; storage that
cannot be written leaves the tuning results unsaved, with a warning, never a crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import filelock

from macecl.cache.store import atomic_write
from macecl.cache.tuning_format import TunedLaunch, TuningFile, TuningFormatError, encode
from macecl.errors import CacheWarning

log = logging.getLogger(__name__)


class TuningStore:
    """The tuned-parameters file at one path."""

    def __init__(self, path: Path, lock_timeout: float = 30.0):
        self.path = Path(path)
        self._lock = filelock.FileLock(f"{self.path}.lock", timeout=lock_timeout)

    def load(self) -> TuningFile | None:
        """The file, checked whole; None when it is absent, unreadable or damaged (warned)."""
        try:
            return TuningFile(self.path.read_bytes(), origin=str(self.path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except TuningFormatError as error:
            self._set_aside(str(error))
        except OSError as error:
            warnings.warn(f"cannot read the tuned-parameters file {self.path}: {error}; "
                          "using default work-group sizes", CacheWarning, stacklevel=2)
        return None

    def save(self, launches: Iterable[TunedLaunch]) -> bool:
        """Merge ``launches`` into the file (replacing the same device's same launches)."""
        launches = list(launches)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                old = self._read_for_merge()
                new = {(e.device, e.key) for e in launches}
                kept = [e for e in old if (e.device, e.key) not in new]
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

    def _read_for_merge(self) -> list[TunedLaunch]:
        try:
            return TuningFile(self.path.read_bytes(), origin=str(self.path)).entries
        except FileNotFoundError:
            return []
        except TuningFormatError as error:
            self._set_aside(str(error))
            return []

    def _set_aside(self, reason: str) -> None:
        corrupt = self.path.with_name(self.path.name + ".corrupt")
        moved = False
        with contextlib.suppress(OSError):
            os.replace(self.path, corrupt)
            moved = True
        where = f"moved aside to {corrupt}" if moved else "left in place"
        warnings.warn(f"tuned-parameters file {self.path} is damaged ({reason}); {where}; "
                      "using default work-group sizes", CacheWarning, stacklevel=3)
