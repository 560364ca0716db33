"""Tamper cases on a real PoCL context: each plants a cache an attacker (or an accident) could
leave, starts a context, and reports whether the file was refused and the program rebuilt.

Shared by tests/security/test_tamper.py (one assertion set per case) and bench/tamper.py
(the table of all cases). The attacker knows the format (it is public) and so fixes every
checksum after an edit; only the key is secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from conftest import assert_added, build_context, run_add

from macecl import config
from macecl.cache.format import (
    _HEADER,
    TRAILER_MAGIC,
    TRAILER_SIZE,
    CacheFile,
    encode,
    entries_of,
)

KEY = b"the application's cache key"
OTHER_KEY = b"someone else's key"
CONSTANT = 5
FILE_NAME = config.CACHE_FILE_NAME


@dataclasses.dataclass
class Outcome:
    name: str
    refused: bool  # no stored binary was used and a CacheWarning said why
    rebuilt: bool  # the program was built from source, ran right, and what was saved reads
    warnings: list[str]

    def row(self) -> dict:
        return {"name": self.name, "refused": self.refused, "rebuilt": self.rebuilt}


def fix_checksums(data: bytes | bytearray) -> bytes:
    """Recompute the header CRC, the tables CRC and the trailer hash, as an attacker would."""
    data = bytearray(data)
    fields = list(_HEADER.unpack_from(data, 0))
    devices_offset, table_offset, table_size = fields[8], fields[10], fields[11]
    fields[-1] = zlib.crc32(data[devices_offset : table_offset + table_size])
    _HEADER.pack_into(data, 0, *fields)
    struct.pack_into("<I", data, _HEADER.size, zlib.crc32(data[: _HEADER.size]))
    end = len(data) - TRAILER_SIZE
    data[end:] = TRAILER_MAGIC + hashlib.sha256(data[:end]).digest()
    return bytes(data)


def signed_cache(directory: Path, key: bytes | None = KEY) -> Path:
    """A real cache, written by a context under ``key``, holding the add program."""
    path = directory / FILE_NAME
    context = build_context(path, cache_key=key)
    assert_added(run_add(context, CONSTANT), CONSTANT)
    context.flush()
    context.close()
    return path


def _swap_payload(path: Path, key: bytes | None) -> None:
    """Replace the binary by another well-formed one and re-encode under ``key``."""
    cache = CacheFile(path.read_bytes(), key=KEY)
    entries = [dataclasses.replace(e, payload=e.payload[:-1] + b"\x00") for e in entries_of(cache)]
    cache.release()
    path.write_bytes(encode(entries, key=key))


# -- the cases: each prepares ``directory`` and returns (reader key, extra builder settings) --


def unsigned(directory: Path) -> tuple[bytes | None, dict]:
    """An unsigned file (older macecl, or an attacker who dropped the signature)."""
    _swap_payload(signed_cache(directory), key=None)
    return KEY, {}


def signed_read_without_key(directory: Path) -> tuple[bytes | None, dict]:
    signed_cache(directory)
    return None, {}


def wrong_key(directory: Path) -> tuple[bytes | None, dict]:
    """The reader's key is not the writer's (a key rotated, or another application's file)."""
    signed_cache(directory, key=OTHER_KEY)
    return KEY, {}


def re_signed(directory: Path) -> tuple[bytes | None, dict]:
    """An attacker swapped the binary and signed the result with a key of their own."""
    _swap_payload(signed_cache(directory), key=OTHER_KEY)
    return KEY, {}


def altered_header(directory: Path) -> tuple[bytes | None, dict]:
    """A header field changed (the reserved word) with the header CRC fixed."""
    path = signed_cache(directory)
    data = bytearray(path.read_bytes())
    data[20] ^= 0x01
    path.write_bytes(fix_checksums(data))
    return KEY, {}


def altered_table(directory: Path) -> tuple[bytes | None, dict]:
    """A byte of the entry table changed (its last-used time) with every CRC fixed."""
    path = signed_cache(directory)
    data = bytearray(path.read_bytes())
    table_offset = CacheFile(bytes(data), key=KEY).header.table_offset
    data[table_offset + 24] ^= 0x01
    path.write_bytes(fix_checksums(data))
    return KEY, {}


def altered_table_and_payload(directory: Path) -> tuple[bytes | None, dict]:
    """The binary replaced and its SHA-256 in the table updated: only the HMAC can tell."""
    path = signed_cache(directory)
    data = bytearray(path.read_bytes())
    cache = CacheFile(bytes(data), key=KEY)
    entry, h = cache.entries[0], cache.header
    data[entry.offset + entry.length - 1] ^= 0x01
    digest = hashlib.sha256(data[entry.offset : entry.offset + entry.length]).digest()
    data[h.table_offset + 64 : h.table_offset + 96] = digest  # the only entry's payload_sha256
    path.write_bytes(fix_checksums(data))
    return KEY, {}


def altered_payload(directory: Path) -> tuple[bytes | None, dict]:
    """A byte of the binary changed, trailer fixed: the entry's SHA-256 (signed) catches it."""
    path = signed_cache(directory)
    data = bytearray(path.read_bytes())
    entry = CacheFile(bytes(data), key=KEY).entries[0]
    data[entry.offset + entry.length // 2] ^= 0x01
    path.write_bytes(fix_checksums(data))
    return KEY, {}


def symlink(directory: Path) -> tuple[bytes | None, dict]:
    """The cache path is a symbolic link to a file elsewhere (sound and signed)."""
    elsewhere = directory / "elsewhere"
    elsewhere.mkdir()
    target = signed_cache(elsewhere)
    (directory / FILE_NAME).symlink_to(target)
    return KEY, {}


def world_writable_directory(directory: Path) -> tuple[bytes | None, dict]:
    """A sound signed cache, but in a directory every user may write."""
    signed_cache(directory)
    directory.chmod(0o777)
    return KEY, {}


def fifo(directory: Path) -> tuple[bytes | None, dict]:
    """A FIFO at the cache path: a plain open() would wait forever for a writer."""
    os.mkfifo(directory / FILE_NAME)
    return KEY, {}


def precompiled_with_other_key(directory: Path) -> tuple[bytes | None, dict]:
    """A shipped precompiled file signed with another key: same rule as the cache."""
    shipped = directory / "shipped"
    shipped.mkdir()
    return KEY, {"opencl_binary_paths": [signed_cache(shipped, key=OTHER_KEY)]}


CASES: dict[str, Callable[[Path], tuple[bytes | None, dict]]] = {
    case.__name__: case
    for case in (unsigned, signed_read_without_key, wrong_key, re_signed, altered_header,
                 altered_table, altered_table_and_payload, altered_payload, symlink,
                 world_writable_directory, fifo, precompiled_with_other_key)
}


def run_case(name: str, directory: Path) -> Outcome:
    """Prepare case ``name`` in the empty private ``directory``, then start a context on it."""
    with config.override(cache_key=None, allow_world_writable_cache=False):
        reader_key, settings = CASES[name](directory)
        path = directory / FILE_NAME
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            context = build_context(path, cache_key=reader_key, **settings)
            result = run_add(context, CONSTANT)
            context.flush()
            context.close()
        stats = context.stats
        refused = stats.from_cache == stats.from_precompiled == 0 and len(caught) > 0
        expected = np.arange(result.size, dtype=np.float32) + CONSTANT
        rebuilt = stats.from_source == 1 and np.array_equal(result, expected)
        if rebuilt and context.store.writable and path.is_file() and not path.is_symlink():
            saved = CacheFile(path.read_bytes(), key=reader_key)  # raises if not trusted
            rebuilt = saved.verify() == [] and len(saved.entries) == 1
    return Outcome(name, refused, rebuilt, [str(w.message) for w in caught])
