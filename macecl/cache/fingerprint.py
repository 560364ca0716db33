"""Device fingerprints, program keys and the reuse policy: the identities the cache stores.

This module is pure data. The runtime fills a fingerprint from the driver; the cache only
compares and serializes them, so the cache never needs pyopencl.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import struct
from collections.abc import Iterable

# Extensions whose presence changes the code a compiler may emit (half and double types,
# sub-group intrinsics, vendor dot products). Other extensions do not affect a binary.
CODEGEN_EXTENSIONS = frozenset(
    {
        "cl_khr_fp16",
        "cl_khr_fp64",
        "cl_khr_int64_base_atomics",
        "cl_khr_subgroups",
        "cl_khr_integer_dot_product",
        "cl_intel_subgroups",
        "cl_intel_subgroups_short",
        "cl_intel_required_subgroup_size",
        "cl_arm_integer_dot_product_int8",
        "cl_qcom_reqd_sub_group_size",
        "cl_nv_pragma_unroll",
    }
)


@dataclasses.dataclass(frozen=True)
class DeviceFingerprint:
    """Everything about a device and its driver that decides whether a binary still fits."""

    platform_name: str
    platform_vendor: str
    platform_version: str
    device_name: str
    device_vendor: str
    device_version: str
    driver_version: str
    opencl_c_version: str
    address_bits: int
    extensions: tuple[str, ...] = ()

    def same_device(self, other: DeviceFingerprint) -> bool:
        """True when both name the same hardware, whatever the driver versions say."""
        return (
            self.platform_vendor,
            self.device_vendor,
            self.device_name,
            self.address_bits,
        ) == (other.platform_vendor, other.device_vendor, other.device_name, other.address_bits)

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys): equal fingerprints give equal bytes."""
        fields = dataclasses.asdict(self)
        fields["extensions"] = sorted(self.extensions)
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> DeviceFingerprint:
        """Parse ``to_bytes`` output; raises ValueError (or a subclass) on anything else."""
        fields = json.loads(data.decode("utf-8"))
        if not isinstance(fields, dict):
            raise ValueError("a fingerprint is a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        if set(fields) != names:
            raise ValueError(f"fingerprint fields {sorted(fields)} are not {sorted(names)}")
        for name in names - {"address_bits", "extensions"}:
            if not isinstance(fields[name], str):
                raise ValueError(f"fingerprint field {name} is not a string")
        if not isinstance(fields["address_bits"], int):
            raise ValueError("fingerprint field address_bits is not an integer")
        extensions = fields["extensions"]
        if not isinstance(extensions, list) or not all(isinstance(e, str) for e in extensions):
            raise ValueError("fingerprint field extensions is not a list of strings")
        fields["extensions"] = tuple(extensions)
        return cls(**fields)

    def describe(self) -> str:
        return f"{self.device_name} ({self.platform_name}, driver {self.driver_version})"


# How both file formats (MCLP, MCLT) store a fingerprint: a u32 length, then ``to_bytes()``.
_RECORD_LENGTH = struct.Struct("<I")
SMALLEST_RECORD = _RECORD_LENGTH.size  # for readers checking a count before any loop
# A fingerprint is a few hundred bytes of JSON; anything far larger is a damaged length.
_MAX_FINGERPRINT = 64 * 1024


def fingerprint_records(devices: Iterable[DeviceFingerprint]) -> bytes:
    """``devices`` as consecutive length-prefixed records, in order."""
    return b"".join(_RECORD_LENGTH.pack(len(raw)) + raw for raw in (d.to_bytes() for d in devices))


def read_fingerprint_record(data: bytes | memoryview, position: int, end: int, number: int,
                            area: str) -> tuple[DeviceFingerprint, int]:
    """Record ``number`` of ``area`` at ``position`` (which must end by ``end``), and the
    position after it. Raises ValueError saying what is wrong: the file readers turn it into
    their own format error."""
    if position + _RECORD_LENGTH.size > end:
        raise ValueError(f"device {number} starts past the end of {area}")
    (length,) = _RECORD_LENGTH.unpack_from(data, position)
    position += _RECORD_LENGTH.size
    if length > _MAX_FINGERPRINT or position + length > end:
        raise ValueError(f"device {number} length {length} runs past {area}")
    try:
        device = DeviceFingerprint.from_bytes(bytes(data[position : position + length]))
    except (ValueError, TypeError) as error:
        raise ValueError(f"device {number} fingerprint is unreadable: {error}") from None
    return device, position + length


def normalize_options(options: str | list[str] | tuple[str, ...]) -> str:
    """Build options in canonical order, so ``-DA -DB`` and ``-DB -DA`` share one key."""
    words = options.split() if isinstance(options, str) else list(options)
    return " ".join(sorted(w for w in words if w))


def binary_options(options: str) -> bytes:
    """What clBuildProgram takes for a program created from a binary: the options that are
    not preprocessor ones (-D, -I), such as -cl-denorms-are-zero. A driver reads those at
    that call, not from the binary: PoCL built a stored binary with no options and ran its
    kernels with denormals live (ops/traits.py's build_options says what that costs)."""
    return " ".join(w for w in options.split() if not w.startswith(("-D", "-I"))).encode()


@dataclasses.dataclass(frozen=True)
class ProgramKey:
    """What identifies a compiled program: its name, its build options and its full source."""

    name: str
    options: str
    source_sha256: bytes

    @classmethod
    def for_source(cls, name: str, source: str, options: str | list[str] | tuple[str, ...]):
        digest = hashlib.sha256(source.encode("utf-8")).digest()
        return cls(name, normalize_options(options), digest)

    def __str__(self) -> str:
        options = f" [{self.options}]" if self.options else ""
        return f"{self.name}{options} #{self.source_sha256.hex()[:12]}"


class ReusePolicy(enum.Enum):
    """When a binary stored for one fingerprint may be tried on another (MACE's names)."""

    # Only a binary from an identical fingerprint is used.
    REUSE_NONE = "none"
    # The same device with another driver (an update): try the binary, rebuild if rejected.
    REUSE_SAME_GPU = "same_gpu"

    def accepts(self, stored: DeviceFingerprint, current: DeviceFingerprint) -> bool:
        if stored == current:
            return True
        return self is ReusePolicy.REUSE_SAME_GPU and stored.same_device(current)
