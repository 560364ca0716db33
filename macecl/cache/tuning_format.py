"""The tuned-parameters file (``tuned_opencl_parameter.bin``), format MCLT version 1: pure bytes.

It maps (device fingerprint, program, kernel, global size) to the local work size the tuner
found fastest, with the times it measured. It is small (tens of bytes an entry), so it is read
and checked whole at every load.

Layout, little-endian (docs/cache-format.md has the table):
  header   magic "MCLT", version u16, flags u16, device count u32, entry count u32,
           body size u64
  body     devices: for each, u32 length + fingerprint JSON;
           entries: for each, the fixed part below + program name, build options and kernel
           name in UTF-8
  trailer  "MCLTEND\\0" + SHA-256 of everything before it

Every count and length is checked against the bytes present before it is used, and the
trailer hash first of all, so a damaged or hostile file costs one hash and a TuningFormatError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Iterable

from macecl.cache.fingerprint import (
    SMALLEST_RECORD,
    DeviceFingerprint,
    ProgramKey,
    ReusePolicy,
    fingerprint_records,
    read_fingerprint_record,
)
from macecl.errors import CacheFormatError

MAGIC = b"MCLT"
VERSION = 1
TRAILER_MAGIC = b"MCLTEND\x00"
FILE_NAME = "tuned_opencl_parameter.bin"

_HEADER = struct.Struct("<4sHHIIQ")
# device index, program name length, options length, kernel name length, dimensions,
# reserved, program source SHA-256, global size (3), local size (3; 0 = the driver's choice),
# best time (ns), time with the driver's choice (ns).
_ENTRY = struct.Struct("<IHHHBB32s3I3IQQ")
TRAILER_SIZE = len(TRAILER_MAGIC) + 32


class TuningFormatError(CacheFormatError):
    """A tuned-parameters file is not a sound MCLT file; the message says which check failed."""


@dataclasses.dataclass(frozen=True)
class TunedLaunch:
    """The best local size measured for one kernel launch shape on one device.

    ``local_size`` None means the driver's own choice (NULL local size) measured best.
    """

    device: DeviceFingerprint
    program: ProgramKey
    kernel: str
    global_size: tuple[int, ...]
    local_size: tuple[int, ...] | None
    best_ns: int
    default_ns: int

    @property
    def key(self) -> tuple:
        return launch_key(self.program, self.kernel, self.global_size)


def launch_key(program: ProgramKey, kernel: str, global_size: tuple[int, ...]) -> tuple:
    """What a tuned size is looked up by, for one device: the launch shape of one kernel."""
    return (program, kernel, global_size)


class TuningFile:
    """A parsed MCLT file: its devices and entries, looked up per device."""

    def __init__(self, data: bytes | memoryview, origin: str = "<bytes>"):
        self.origin = origin
        self.entries = _parse(memoryview(data))
        self.devices = list(dict.fromkeys(e.device for e in self.entries))

    def for_device(self, current: DeviceFingerprint, policy: ReusePolicy
                   ) -> dict[tuple, TunedLaunch]:
        """The entries ``policy`` lets ``current`` use, keyed by launch; its own win."""
        chosen: dict[tuple, TunedLaunch] = {}
        # The exact fingerprint's entries come last, so they win over another driver's.
        for entry in sorted(self.entries, key=lambda e: e.device == current):
            if policy.accepts(entry.device, current):
                chosen[entry.key] = entry
        return chosen


def _fail(message: str) -> TuningFormatError:
    return TuningFormatError(message)


def _parse(data: memoryview) -> list[TunedLaunch]:
    size = len(data)
    if size < _HEADER.size + TRAILER_SIZE:
        raise _fail(f"file is {size} bytes, shorter than an empty MCLT file")
    magic, version, _flags, device_count, entry_count, body_size = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise _fail(f"magic is {bytes(magic)!r}, not {MAGIC!r}: not a tuned-parameters file")
    if version != VERSION:
        raise _fail(f"format version {version} is not supported (this reads {VERSION})")
    end = size - TRAILER_SIZE
    if _HEADER.size + body_size != end:
        raise _fail(f"header says the body is {body_size} bytes but the file holds "
                    f"{end - _HEADER.size}: truncated or extended")
    if bytes(data[end : end + len(TRAILER_MAGIC)]) != TRAILER_MAGIC:
        raise _fail("trailer magic is missing: the end of the file is damaged")
    if hashlib.sha256(data[:end]).digest() != bytes(data[end + len(TRAILER_MAGIC) :]):
        raise _fail("SHA-256 in the trailer does not match the contents: the file is damaged")
    if device_count * SMALLEST_RECORD + entry_count * _ENTRY.size > body_size:
        raise _fail(f"{device_count} devices and {entry_count} entries cannot fit in "
                    f"{body_size} bytes")
    position = _HEADER.size
    devices = []
    for number in range(device_count):
        try:
            device, position = read_fingerprint_record(data, position, end, number, "the body")
        except ValueError as error:
            raise _fail(str(error)) from None
        devices.append(device)
    entries = []
    for number in range(entry_count):
        if position + _ENTRY.size > end:
            raise _fail(f"entry {number} starts past the end of the body")
        (device, name_len, options_len, kernel_len, dims, _reserved, source_sha, g0, g1, g2,
         l0, l1, l2, best_ns, default_ns) = _ENTRY.unpack_from(data, position)
        position += _ENTRY.size
        if position + name_len + options_len + kernel_len > end:
            raise _fail(f"entry {number} names run past the end of the body")
        try:
            texts = []
            for length in (name_len, options_len, kernel_len):
                texts.append(bytes(data[position : position + length]).decode("utf-8"))
                position += length
        except UnicodeDecodeError:
            raise _fail(f"entry {number} program or kernel name is not UTF-8") from None
        if device >= device_count:
            raise _fail(f"entry {number} names device {device} of {device_count}")
        if not 1 <= dims <= 3:
            raise _fail(f"entry {number} has {dims} dimensions (1 to 3 are possible)")
        global_size, local_size = (g0, g1, g2)[:dims], (l0, l1, l2)[:dims]
        if min(global_size) == 0:
            raise _fail(f"entry {number} has an empty global size {global_size}")
        if any(local_size) and not all(local_size):
            raise _fail(f"entry {number} has a partly empty local size {local_size}")
        name, options, kernel = texts
        entries.append(TunedLaunch(devices[device], ProgramKey(name, options, bytes(source_sha)),
                                   kernel, global_size, local_size if all(local_size) else None,
                                   best_ns, default_ns))
    if position != end:
        raise _fail(f"{end - position} unexplained bytes at the end of the body")
    if len({(e.device, e.key) for e in entries}) != len(entries):
        raise _fail("the same launch is listed twice for one device")
    return entries


def encode(entries: Iterable[TunedLaunch]) -> bytes:
    """Serialize tuned launches (any number of devices) into one MCLT file."""
    entries = sorted(entries, key=lambda e: (e.device.to_bytes(), e.program.name,
                                             e.program.options, e.kernel, e.global_size))
    devices = list(dict.fromkeys(e.device for e in entries))
    parts = [fingerprint_records(devices)]
    for entry in entries:
        texts = [t.encode("utf-8") for t in (entry.program.name, entry.program.options,
                                             entry.kernel)]
        if max(map(len, texts)) > 0xFFFF:
            raise ValueError(f"a name of {entry.program} / {entry.kernel} exceeds 65535 bytes")
        dims = len(entry.global_size)
        local = entry.local_size or (0,) * dims
        if not 1 <= dims <= 3 or len(local) != dims:
            raise ValueError(f"{entry.kernel}: global size {entry.global_size} and local size "
                             f"{entry.local_size} must have the same 1 to 3 dimensions")
        pad = (0,) * (3 - dims)
        parts.append(_ENTRY.pack(devices.index(entry.device), *map(len, texts), dims, 0,
                                 entry.program.source_sha256, *entry.global_size, *pad,
                                 *local, *pad, entry.best_ns, entry.default_ns))
        parts += texts
    body = b"".join(parts)
    head = _HEADER.pack(MAGIC, VERSION, 0, len(devices), len(entries), len(body)) + body
    return head + TRAILER_MAGIC + hashlib.sha256(head).digest()
