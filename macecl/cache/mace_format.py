"""MACE's own compiled-program file: a protobuf key-value container and a CRC-32 after it.

The layout (docs/cache-format.md, "MACE's format"): a serialized ``mace.PairContainer``
holding ``KVPair {key, bytes_value}`` records, then 4 bytes, little-endian: the CRC-32
(zlib) of the serialized message. MACE keeps everything under string keys:

- ``mace_opencl_precompiled_platform_info_key``: "platform name, profile, platform
  version, MACE version" of the driver that built the binaries;
- ``mace_opencl_precompiled_device_name_key``: MACE's device name (Adreno: taken from
  CL_DEVICE_VERSION; Mali, PowerVR: CL_DEVICE_NAME; any other device: empty);
- a program binary under the program name followed by each build option, sorted, each
  after one space (``conv2d -DA -DB``);
- ``program_hash_ `` plus that program key: the hash of the program's source.

One file holds one device's programs. The two messages are built at run time from a
descriptor in a private pool, so an application that also loads MACE's generated
``mace_pb2`` gets no clash of names. This module knows bytes, not pyopencl.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import zlib

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from macecl.cache import format as mclp
from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey
from macecl.cache.format import MAGIC, NewEntry
from macecl.errors import CacheFormatError

log = logging.getLogger(__name__)
PLATFORM_INFO_KEY = "mace_opencl_precompiled_platform_info_key"
DEVICE_NAME_KEY = "mace_opencl_precompiled_device_name_key"
HASH_PREFIX = "program_hash_ "
# MACE's platform info ends with its own version; ours says who wrote the file.
WRITER_VERSION = "macecl"
# CL_PLATFORM_PROFILE is not in a fingerprint; every desktop and phone GPU driver reports this.
ASSUMED_PROFILE = "FULL_PROFILE"
_CRC = struct.Struct("<I")

# Fingerprint fields a MACE file does not record, and what the reader puts there.
UNKNOWN_FIELDS = (
    "platform_vendor",
    "device_vendor",
    "device_version",
    "driver_version",
    "opencl_c_version",
    "address_bits",
    "extensions",
)


def _message_classes() -> tuple[type[message.Message], type[message.Message]]:
    """KVPair and PairContainer, from a descriptor equal to mace.proto's two messages."""
    proto = descriptor_pb2.FileDescriptorProto(name="macecl_mace_kv.proto", package="mace")
    proto.syntax = "proto2"
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    types = descriptor_pb2.FieldDescriptorProto
    pair = proto.message_type.add(name="KVPair")
    pair.field.add(name="key", number=1, label=optional, type=types.TYPE_STRING)
    pair.field.add(name="bytes_value", number=2, label=optional, type=types.TYPE_BYTES)
    container = proto.message_type.add(name="PairContainer")
    container.field.add(
        name="pairs", number=1, label=repeated, type=types.TYPE_MESSAGE, type_name=".mace.KVPair"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("mace.KVPair")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("mace.PairContainer")),
    )


KVPair, PairContainer = _message_classes()


@dataclasses.dataclass(frozen=True)
class MaceProgram:
    """One program binary of a MACE file, with its key split into name and options."""

    key: str
    name: str
    options: str  # sorted, joined by one space, as in ProgramKey
    binary: bytes
    source_hash: str | None  # the ``program_hash_`` value; None when the file has none

    @property
    def source_sha256(self) -> bytes | None:
        """The hash as macecl's SHA-256 of the full source, when it is one (files we wrote)."""
        text = self.source_hash or ""
        if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
            return bytes.fromhex(text)
        return None


@dataclasses.dataclass(frozen=True)
class MaceFile:
    """A parsed MACE file. ``crc_ok`` is False only when read with ``check_crc=False``."""

    platform_info: str | None
    device_name: str | None
    programs: list[MaceProgram]
    other_keys: list[str]  # keys that are neither MACE's nor a program's (kept, not used)
    stored_crc: int
    computed_crc: int

    @property
    def crc_ok(self) -> bool:
        return self.stored_crc == self.computed_crc

    def platform_fields(self) -> dict[str, str]:
        """The platform info split into its four parts (missing parts are empty).

        NOTE: platform versions may hold commas (PoCL's lists its build options), so the
        version is everything between the second comma and the last one.
        """
        text = self.platform_info or ""
        name, _, rest = text.partition(",")
        profile, _, rest = rest.partition(",")
        version, _, writer = rest.rpartition(",")
        if not version:  # fewer than four parts: what there is, in order
            version, writer = writer, ""
        parts = (name, profile, version, writer)
        return dict(zip(("name", "profile", "version", "mace_version"),
                        (p.strip() for p in parts), strict=True))


def program_key(name: str, options: str) -> str:
    """MACE's key of a program: the name, then each option after one space."""
    return name + "".join(f" {option}" for option in options.split())


def looks_like_mace(data: bytes | memoryview) -> bool:
    """True when ``data`` is no MCLP file and its last 4 bytes are the CRC-32 of the rest:
    recognised by content, never by name."""
    if len(data) < _CRC.size or bytes(data[: len(MAGIC)]) == MAGIC:
        return False
    (stored,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    return zlib.crc32(data[: len(data) - _CRC.size]) == stored


def parse(data: bytes | memoryview, *, check_crc: bool = True) -> MaceFile:
    """Read a MACE file; raises CacheFormatError naming what is wrong."""
    data = bytes(data)
    if len(data) < _CRC.size:
        raise CacheFormatError(f"file is {len(data)} bytes, too short for a MACE file's CRC")
    body = data[: -_CRC.size]
    (stored,) = _CRC.unpack(data[-_CRC.size :])
    computed = zlib.crc32(body)
    if check_crc and stored != computed:
        raise CacheFormatError(
            f"CRC-32 mismatch (stored {stored:08x}, computed {computed:08x}): "
            "not a MACE file, or a damaged one"
        )
    container = PairContainer()
    try:
        container.ParseFromString(body)
    except (message.DecodeError, UnicodeDecodeError) as error:
        raise CacheFormatError(f"not a MACE PairContainer message: {error}") from None
    except RuntimeWarning as error:  # upb warns of invalid UTF-8 in some versions
        raise CacheFormatError(f"not a MACE PairContainer message: {error}") from None
    values: dict[str, bytes] = {}
    for number, pair in enumerate(container.pairs):
        key = pair.key
        # NOTE: protobuf does not check proto2 strings when it parses; upb hands back the
        # raw bytes of one that is not UTF-8 (the pure-Python runtime raises).
        if isinstance(key, bytes):
            raise CacheFormatError(f"key of pair {number} is not UTF-8 text")
        if not pair.HasField("key"):
            raise CacheFormatError(f"pair {number} has no key")
        if key in values:
            raise CacheFormatError(f"key {key!r} appears twice")
        values[key] = pair.bytes_value

    def text(key: str) -> str | None:
        raw = values.get(key)
        try:
            return None if raw is None else raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CacheFormatError(f"value of {key} is not UTF-8 text") from None

    reserved = {PLATFORM_INFO_KEY, DEVICE_NAME_KEY}
    programs, others = [], []
    for key, value in values.items():
        if key in reserved or key.startswith(HASH_PREFIX):
            continue
        name, _, options = key.partition(" ")
        if not name:
            others.append(key)
            continue
        source_hash = text(HASH_PREFIX + key)
        options = " ".join(sorted(options.split()))
        programs.append(MaceProgram(key, name, options, value, source_hash))
    orphans = [k for k in values if k.startswith(HASH_PREFIX) and k[len(HASH_PREFIX):] not in values]
    return MaceFile(
        platform_info=text(PLATFORM_INFO_KEY),
        device_name=text(DEVICE_NAME_KEY),
        programs=sorted(programs, key=lambda p: p.key),
        other_keys=sorted(others + orphans),
        stored_crc=stored,
        computed_crc=computed,
    )


def mace_device_name(device: DeviceFingerprint) -> str:
    """The device name MACE records: Adreno's from its version string, Mali's and PowerVR's
    from CL_DEVICE_NAME, none for any other device."""
    if device.device_name == "QUALCOMM Adreno(TM)":
        words = device.device_version.split(" ", 2)
        return words[2] if len(words) == 3 else ""
    if "Mali" in device.device_name or "PowerVR" in device.device_name:
        return device.device_name
    return ""


def platform_info(device: DeviceFingerprint) -> str:
    """MACE's platform info: name, profile, version, writer (the profile is assumed)."""
    return f"{device.platform_name}, {ASSUMED_PROFILE}, {device.platform_version}, {WRITER_VERSION}"


def encode(device: DeviceFingerprint, programs: dict[ProgramKey, bytes]) -> bytes:
    """One device's programs as a MACE file; each program's hash is its source SHA-256."""
    container = PairContainer()
    pairs = {
        PLATFORM_INFO_KEY: platform_info(device).encode("utf-8"),
        DEVICE_NAME_KEY: mace_device_name(device).encode("utf-8"),
    }
    for key, binary in programs.items():
        name = program_key(key.name, key.options)
        if name in pairs:
            raise ValueError(f"two programs share MACE's key {name!r} (sources differ)")
        pairs[name] = binary
        pairs[HASH_PREFIX + name] = key.source_sha256.hex().encode("ascii")
    for key in sorted(pairs):  # sorted, as MACE's std::map writes them
        container.pairs.add(key=key, bytes_value=pairs[key])
    body = container.SerializeToString()
    return body + _CRC.pack(zlib.crc32(body))


def fingerprint(mace: MaceFile, local: DeviceFingerprint | None = None) -> DeviceFingerprint:
    """The fingerprint a MACE file's programs get in an MCLP file.

    MACE records only the platform name and version and its own device name. Without
    ``local``, the other fields (UNKNOWN_FIELDS) are empty, so no device's fingerprint
    equals it and ``same_device`` fails on the empty vendors: under either reuse policy
    these programs are used by no device. With ``local`` (a device of this machine that
    ``matches``), the unknown fields are taken from it; when the platform versions differ
    the driver version stays unknown, so only REUSE_SAME_GPU tries the binaries.
    """
    platform = mace.platform_fields()
    if local is None:
        return DeviceFingerprint(
            platform_name=platform["name"],
            platform_vendor="",
            platform_version=platform["version"],
            device_name=mace.device_name or "",
            device_vendor="",
            device_version="",
            driver_version="",
            opencl_c_version="",
            address_bits=0,
        )
    same_driver = platform["version"] == local.platform_version
    return dataclasses.replace(
        local,
        platform_version=platform["version"],
        driver_version=local.driver_version if same_driver else "",
    )


def matches(mace: MaceFile, local: DeviceFingerprint) -> bool:
    """True when the MACE file could be for ``local``: same platform name, and MACE's device
    name is empty (MACE records none for most devices) or names ``local``."""
    name = mace.device_name or ""
    if mace.platform_fields()["name"] != local.platform_name:
        return False
    return not name or name == local.device_name or name == mace_device_name(local)


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A program of a MACE file that cannot become an MCLP entry, and why."""

    key: str
    reason: str


def to_entries(
    mace: MaceFile, device: DeviceFingerprint, last_used: int
) -> tuple[list[NewEntry], list[Skipped]]:
    """The MACE file's programs as MCLP entries of ``device``, and those left out.

    A program keeps its binary only when its ``program_hash_`` value is a SHA-256 of the
    source (files macecl wrote): MACE's own hash identifies MACE's kernel sources, which
    macecl's programs never match, so such a program could never be used.
    """
    entries, skipped = [], []
    for program in mace.programs:
        digest = program.source_sha256
        if digest is None:
            reason = (
                "no program_hash_ entry"
                if program.source_hash is None
                else f"source hash {program.source_hash[:16]!r} is not a SHA-256 of the source"
            )
            skipped.append(Skipped(program.key, reason))
            continue
        key = ProgramKey(program.name, program.options, digest)
        entries.append(NewEntry(device, key, program.binary, last_used))
    return entries, skipped


def from_entries(entries: list[NewEntry], device: DeviceFingerprint) -> bytes:
    """The entries of ``device`` as a MACE file (a MACE file holds one device)."""
    programs = {e.key: e.payload for e in entries if e.device == device}
    return encode(device, programs)


def as_precompiled(data: bytes, local: DeviceFingerprint, last_used: int = 0) -> bytes | None:
    """A MACE file given as a precompiled binary, re-encoded as MCLP bytes for ``local``;
    None when it is for another platform or device, or holds nothing macecl can use.

    Raises CacheFormatError when ``data`` is not a sound MACE file.
    """
    mace = parse(data)
    if not matches(mace, local):
        log.debug("MACE file for %r on %r is not for %s", mace.device_name,
                  mace.platform_info, local.describe())
        return None
    entries, skipped = to_entries(mace, fingerprint(mace, local), last_used)
    for program in skipped:
        log.debug("MACE program %s left out: %s", program.key, program.reason)
    return mclp.encode(entries) if entries else None
