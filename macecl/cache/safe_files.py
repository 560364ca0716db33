"""Opening cache files so that another local user cannot slip in a file of their choosing.

The compiled-program cache holds machine code the driver runs, so a file planted in its place
is code run in our process. Three rules (docs/security.md says what they do and do not cover):
- the cache file is opened without following a symbolic link, and must be a regular file;
- a cache in a directory that every user may write is refused, and so is one below a
  world-writable directory without the sticky bit (anyone could rename the path away);
- what we create (the cache, its temporary file, its lock, its directory) is ours alone.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from macecl.errors import CacheTrustError

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
# NOTE: Windows has no O_NOFOLLOW (nor world-writable mode bits); there the checks are no-ops.
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_for_reading(path: Path) -> int:
    """A read-only descriptor of the regular file at ``path``, never through a symbolic link.

    Raises FileNotFoundError if there is nothing there, CacheTrustError if the path is a
    symbolic link or not a regular file (a FIFO would block a reader forever), OSError else.
    """
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | _NO_FOLLOW
    try:
        descriptor = os.open(path, flags)
    except OSError:
        if os.path.islink(path):  # ELOOP on Linux, EMLINK on FreeBSD, ENOENT never
            raise CacheTrustError(f"{path} is a symbolic link; a cache file is never "
                                  "followed through one") from None
        raise
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise CacheTrustError(f"{path} is not a regular file")
    return descriptor


def read_bytes(path: Path) -> bytes:
    """The whole file at ``path``, opened as ``open_for_reading`` does."""
    with os.fdopen(open_for_reading(path), "rb") as stream:
        return stream.read()


def directory_problem(directory: Path) -> str | None:
    """Why a cache in ``directory`` could be replaced by another local user, or None.

    The cache's own directory must not be world-writable, even with the sticky bit (another
    user could create the cache file before us). A directory above it may be world-writable
    only with the sticky bit (/tmp), which stops others renaming what they do not own.
    While the cache's directory does not exist yet, the nearest one that does stands in for
    it: under /tmp another user could create the directory first.
    """
    directory = Path(os.path.abspath(directory))
    own = True
    for current in (directory, *directory.parents):
        try:
            mode = os.stat(current).st_mode
        except FileNotFoundError:
            continue
        except OSError:
            return None  # cannot look: the write itself will fail and say why
        if mode & stat.S_IWOTH:
            if own:
                return f"its directory {current} is writable by every user"
            if not mode & stat.S_ISVTX:
                return f"{current}, above it, is writable by every user and has no sticky bit"
        own = False
    return None
