"""The MCLP compiled-program file, version 1: bytes in, bytes out (docs/cache-format.md).

Layout, little-endian: an 80-byte header, a block of device fingerprints, an entry table,
in a signed file a 32-byte HMAC-SHA256 of everything before it, the payload (the binaries),
and a 40-byte trailer holding a SHA-256 of all that precedes it.

Reading is defensive because the file comes from disk, another process or another
machine: every count, length and offset is checked against the bytes actually present
before it is used, and every failure is a CacheFormatError naming the check. ``parse``
checks the header and the tables (cheap, done at every load); each payload is checked
when it is used; ``verify`` checks everything.

The checksums only catch accidents. Authenticity comes from the optional signature: with a
cache key, the HMAC covers the header and both tables, and the tables hold each payload's
SHA-256, so no byte of a signed file can change unnoticed by someone without the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import struct
import zlib
from collections.abc import Iterable

from macecl.cache.fingerprint import (
    SMALLEST_RECORD,
    DeviceFingerprint,
    ProgramKey,
    fingerprint_records,
    read_fingerprint_record,
)
from macecl.errors import CacheFormatError, CacheTrustError

MAGIC = b"MCLP"
VERSION = 1
TRAILER_MAGIC = b"MCLPEND\x00"
# Header flag: an HMAC-SHA256 block follows the entry table.
FLAG_SIGNED = 0x0001
KNOWN_FLAGS = FLAG_SIGNED
SIGNATURE_SIZE = 32

# magic, version, flags, header size, device count, entry count, reserved, total size,
# devices offset, devices size, table offset, table size, payload offset, tables CRC32.
_HEADER = struct.Struct("<4sHHIIII6QI")
_HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size + _HEADER_CRC.size  # 80
# device index, name length, options length, payload offset, payload length, last used
# (Unix seconds), source SHA-256, payload SHA-256; then the name and options in UTF-8.
_ENTRY = struct.Struct("<IHHQQQ32s32s")
TRAILER_SIZE = len(TRAILER_MAGIC) + 32


@dataclasses.dataclass(frozen=True)
class Entry:
    """One program binary as listed in the entry table."""

    device: int
    key: ProgramKey
    offset: int
    length: int
    payload_sha256: bytes
    last_used: int


@dataclasses.dataclass(frozen=True)
class NewEntry:
    """A program binary to write: its device, key, bytes and last use."""

    device: DeviceFingerprint
    key: ProgramKey
    payload: bytes
    last_used: int


@dataclasses.dataclass(frozen=True)
class Header:
    version: int
    flags: int
    header_size: int
    device_count: int
    entry_count: int
    total_size: int
    devices_offset: int
    devices_size: int
    table_offset: int
    table_size: int
    payload_offset: int
    tables_crc32: int
    header_crc32: int

    @property
    def signed(self) -> bool:
        return bool(self.flags & FLAG_SIGNED)

    @property
    def tables_end(self) -> int:
        """Where the entry table ends: the signature block, if any, starts here."""
        return self.table_offset + self.table_size


def _fail(message: str) -> CacheFormatError:
    return CacheFormatError(message)


def sign(key: bytes, signed_bytes: bytes | memoryview) -> bytes:
    """The HMAC-SHA256 that a signed file stores after its entry table."""
    return hmac.digest(key, signed_bytes, hashlib.sha256)


class CacheFile:
    """A parsed MCLP file over a buffer (bytes or a memory map); payloads are read lazily.

    ``key`` is the cache key in force (None: no key). With ``authenticate`` (the default, as
    every reader that uses the binaries must) a file is refused with CacheTrustError when it
    is signed and no key is set, unsigned while a key is set, or signed under another key.
    Tools that only describe a file pass ``authenticate=False`` and ask
    ``signature_problem`` themselves.
    """

    def __init__(
        self,
        buffer: bytes | memoryview,
        origin: str = "<bytes>",
        key: bytes | None = None,
        authenticate: bool = True,
    ):
        self.origin = origin
        self._data = memoryview(buffer)
        self.header = self._parse_header()
        if authenticate and (problem := self.signature_problem(key)):
            raise CacheTrustError(problem)
        self.devices = self._parse_devices()
        self.entries = self._parse_table()
        self._index = {(e.device, e.key): e for e in self.entries}
        if len(self._index) != len(self.entries):
            raise _fail("the entry table lists the same program twice for one device")

    # -- parsing: header and tables, checked at every load ------------------------------

    def _parse_header(self) -> Header:
        data = self._data
        size = len(data)
        if size < HEADER_SIZE + TRAILER_SIZE:
            raise _fail(f"file is {size} bytes, shorter than an empty MCLP file")
        fields = _HEADER.unpack_from(data, 0)
        if fields[0] != MAGIC:
            raise _fail(f"magic is {bytes(fields[0])!r}, not {MAGIC!r}: not an MCLP file")
        (header_crc,) = _HEADER_CRC.unpack_from(data, _HEADER.size)
        if zlib.crc32(data[: _HEADER.size]) != header_crc:
            raise _fail("header checksum mismatch: the header is damaged")
        header = Header(*fields[1:6], *fields[7:], header_crc)  # fields[6] is reserved
        if header.version != VERSION:
            raise _fail(f"format version {header.version} is not supported (this reads {VERSION})")
        if header.header_size != HEADER_SIZE:
            raise _fail(f"header size field says {header.header_size}, expected {HEADER_SIZE}")
        if header.flags & ~KNOWN_FLAGS:
            raise _fail(f"header flags {header.flags:#06x} hold bits this reader does not know")
        if header.total_size != size:
            raise _fail(
                f"header says the file is {header.total_size} bytes but it is {size}: "
                "truncated or extended"
            )
        expected = [
            ("device block", header.devices_offset, HEADER_SIZE),
            ("entry table", header.table_offset, header.devices_offset + header.devices_size),
            ("payload", header.payload_offset,
             header.tables_end + (SIGNATURE_SIZE if header.signed else 0)),
        ]
        for what, offset, where in expected:
            if offset != where:
                raise _fail(f"{what} offset {offset} is not {where}, where it must start")
        if header.payload_offset > size - TRAILER_SIZE:
            raise _fail("the tables run past the start of the trailer")
        tables = data[header.devices_offset : header.tables_end]
        if zlib.crc32(tables) != header.tables_crc32:
            raise _fail("checksum of the device block and entry table mismatch: tables damaged")
        return header

    def _parse_devices(self) -> list[DeviceFingerprint]:
        h = self.header
        block = self._data[h.devices_offset : h.devices_offset + h.devices_size]
        if h.device_count * SMALLEST_RECORD > len(block):
            raise _fail(f"{h.device_count} devices cannot fit in a {len(block)}-byte block")
        devices, position = [], 0
        for number in range(h.device_count):
            try:
                device, position = read_fingerprint_record(block, position, len(block), number,
                                                           "the device block")
            except ValueError as error:
                raise _fail(str(error)) from None
            devices.append(device)
        if position != len(block):
            raise _fail(f"{len(block) - position} unexplained bytes after the device block")
        return devices

    def _parse_table(self) -> list[Entry]:
        h = self.header
        table = self._data[h.table_offset : h.table_offset + h.table_size]
        if h.entry_count * _ENTRY.size > len(table):
            raise _fail(f"{h.entry_count} entries cannot fit in a {len(table)}-byte table")
        payload_end = h.total_size - TRAILER_SIZE
        entries, position = [], 0
        for number in range(h.entry_count):
            if position + _ENTRY.size > len(table):
                raise _fail(f"entry {number} starts past the end of the entry table")
            device, name_len, options_len, offset, length, last_used, source_sha, payload_sha = (
                _ENTRY.unpack_from(table, position)
            )
            position += _ENTRY.size
            if position + name_len + options_len > len(table):
                raise _fail(f"entry {number} name and options run past the entry table")
            try:
                name = bytes(table[position : position + name_len]).decode("utf-8")
                position += name_len
                options = bytes(table[position : position + options_len]).decode("utf-8")
                position += options_len
            except UnicodeDecodeError:
                raise _fail(f"entry {number} name or options are not UTF-8") from None
            if device >= h.device_count:
                raise _fail(f"entry {number} names device {device} of {h.device_count}")
            if not (h.payload_offset <= offset and offset + length <= payload_end):
                raise _fail(
                    f"entry {number} ({name}) payload [{offset}, {offset + length}) lies outside "
                    f"the payload area [{h.payload_offset}, {payload_end})"
                )
            key = ProgramKey(name, options, bytes(source_sha))
            entries.append(Entry(device, key, offset, length, bytes(payload_sha), last_used))
        if position != len(table):
            raise _fail(f"{len(table) - position} unexplained bytes after the entry table")
        return entries

    # -- signature: checked at every load when a key is in force ---------------------------

    def signature_problem(self, key: bytes | None) -> str | None:
        """Why this file must not be trusted under ``key`` (None: no key), or None if it may."""
        h = self.header
        if not h.signed:
            if key is None:
                return None
            return "the file is not signed but a cache key is set: only signed files are trusted"
        if key is None:
            return "the file is signed but no cache key is set (MACECL_CACHE_KEY or set_cache_key)"
        stored = bytes(self._data[h.tables_end : h.tables_end + SIGNATURE_SIZE])
        if not hmac.compare_digest(stored, sign(key, self._data[: h.tables_end])):
            return ("its signature does not match the cache key: the header or tables were "
                    "altered after signing, or it was signed with another key")
        return None

    # -- payloads: checked when used ------------------------------------------------------

    def find(self, device: int, key: ProgramKey) -> Entry | None:
        return self._index.get((device, key))

    def payload(self, entry: Entry) -> bytes:
        """The entry's bytes, after checking them against the SHA-256 in the table."""
        data = bytes(self._data[entry.offset : entry.offset + entry.length])
        if hashlib.sha256(data).digest() != entry.payload_sha256:
            raise _fail(f"payload of {entry.key} is damaged (SHA-256 mismatch)")
        return data

    def verify(self) -> list[str]:
        """Check every payload and the whole-file hash; returns the problems (none: sound)."""
        problems = []
        for entry in self.entries:
            try:
                self.payload(entry)
            except CacheFormatError as error:
                problems.append(str(error))
        end = self.header.total_size - TRAILER_SIZE
        trailer = self._data[end:]
        if bytes(trailer[: len(TRAILER_MAGIC)]) != TRAILER_MAGIC:
            problems.append("trailer magic is missing: the end of the file is damaged")
        elif hashlib.sha256(self._data[:end]).digest() != bytes(trailer[len(TRAILER_MAGIC) :]):
            problems.append("whole-file SHA-256 in the trailer does not match the contents")
        return problems

    def release(self) -> None:
        """Drop the view of the buffer, so a memory map under it can be closed."""
        self._data.release()


def encode(entries: Iterable[NewEntry], key: bytes | None = None) -> bytes:
    """Serialize entries (for any number of devices) into one MCLP v1 file, signed with ``key``."""
    entries = sorted(entries, key=lambda e: (e.device.to_bytes(), e.key.name, e.key.options))
    devices: list[DeviceFingerprint] = []
    for entry in entries:
        if entry.device not in devices:
            devices.append(entry.device)
    device_block = fingerprint_records(devices)
    names = [(e.key.name.encode("utf-8"), e.key.options.encode("utf-8")) for e in entries]
    table_size = sum(_ENTRY.size + len(n) + len(o) for n, o in names)
    tables_end = HEADER_SIZE + len(device_block) + table_size
    payload_offset = tables_end + (SIGNATURE_SIZE if key is not None else 0)
    table, payloads, offset = [], [], payload_offset
    for entry, (name, options) in zip(entries, names, strict=True):
        if len(name) > 0xFFFF or len(options) > 0xFFFF:
            raise ValueError(f"program name or options of {entry.key} exceed 65535 bytes")
        table.append(
            _ENTRY.pack(
                devices.index(entry.device),
                len(name),
                len(options),
                offset,
                len(entry.payload),
                entry.last_used,
                entry.key.source_sha256,
                hashlib.sha256(entry.payload).digest(),
            )
            + name
            + options
        )
        payloads.append(entry.payload)
        offset += len(entry.payload)
    table_bytes = b"".join(table)
    total_size = offset + TRAILER_SIZE
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        FLAG_SIGNED if key is not None else 0,
        HEADER_SIZE,
        len(devices),
        len(entries),
        0,
        total_size,
        HEADER_SIZE,
        len(device_block),
        HEADER_SIZE + len(device_block),
        table_size,
        payload_offset,
        zlib.crc32(device_block + table_bytes),
    )
    body = b"".join([header, _HEADER_CRC.pack(zlib.crc32(header)), device_block, table_bytes])
    if key is not None:
        body += sign(key, body)
    body += b"".join(payloads)
    return body + TRAILER_MAGIC + hashlib.sha256(body).digest()


def encoded_size(entries: Iterable[NewEntry]) -> int:
    """The size of ``encode(entries)`` in bytes, without building it (for size bounds)."""
    devices: set[DeviceFingerprint] = set()
    size = HEADER_SIZE + TRAILER_SIZE
    for entry in entries:
        if entry.device not in devices:
            devices.add(entry.device)
            size += len(fingerprint_records([entry.device]))
        size += _ENTRY.size + len(entry.key.name.encode("utf-8"))
        size += len(entry.key.options.encode("utf-8")) + len(entry.payload)
    return size


def entries_of(cache: CacheFile) -> list[NewEntry]:
    """The entries of a parsed file as NewEntry values (payloads checked), to re-encode."""
    return [NewEntry(cache.devices[e.device], e.key, cache.payload(e), e.last_used) for e in cache.entries]
