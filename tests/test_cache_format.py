"""The MCLP format alone: round trips, and every damaged byte is caught (no device needed)."""

from __future__ import annotations

import struct

import pytest

from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey, ReusePolicy, normalize_options
from macecl.cache.format import HEADER_SIZE, TRAILER_SIZE, CacheFile, NewEntry, encode
from macecl.errors import CacheFormatError

GPU = DeviceFingerprint("Vendor OpenCL", "Vendor", "OpenCL 3.0", "Adreno 740", "Qualcomm",
                        "OpenCL 3.0", "512.0", "OpenCL C 3.0", 64, ("cl_khr_fp16",))
CPU = DeviceFingerprint("Portable Computing Language", "The pocl project", "OpenCL 3.0 PoCL",
                        "pthread-cpu", "GenuineIntel", "OpenCL 3.0", "3.0", "OpenCL C 1.2", 64)


def sample_file() -> bytes:
    return encode([
        NewEntry(GPU, ProgramKey.for_source("conv2d", "src-a", "-DB -DA"), b"\x01" * 40, 100),
        NewEntry(GPU, ProgramKey.for_source("pooling", "src-b", ""), b"\x02" * 24, 200),
        NewEntry(CPU, ProgramKey.for_source("conv2d", "src-a", "-DA -DB"), b"\x03" * 32, 300),
    ])


def regions(data: bytes) -> dict[str, range]:
    cache = CacheFile(data)
    h = cache.header
    return {
        "header": range(0, HEADER_SIZE),
        "fingerprints": range(h.devices_offset, h.devices_offset + h.devices_size),
        "table": range(h.table_offset, h.table_offset + h.table_size),
        "payload": range(h.payload_offset, h.total_size - TRAILER_SIZE),
        "trailer": range(h.total_size - TRAILER_SIZE, h.total_size),
    }


def test_round_trip_keeps_devices_keys_and_payloads():
    cache = CacheFile(sample_file())
    assert cache.devices == [GPU, CPU] or cache.devices == [CPU, GPU]
    assert len(cache.entries) == 3 and cache.verify() == []
    gpu = cache.devices.index(GPU)
    entry = cache.find(gpu, ProgramKey.for_source("conv2d", "src-a", "-DA -DB"))
    assert entry is not None and cache.payload(entry) == b"\x01" * 40
    assert entry.last_used == 100
    assert cache.find(gpu, ProgramKey.for_source("conv2d", "src-changed", "-DA -DB")) is None


def test_empty_file_is_sound():
    cache = CacheFile(encode([]))
    assert cache.entries == [] and cache.devices == [] and cache.verify() == []


@pytest.mark.parametrize("region", ["header", "fingerprints", "table", "payload", "trailer"])
def test_every_flipped_byte_is_detected(region):
    data = sample_file()
    for position in regions(data)[region]:
        for bit in (0x01, 0x80):
            damaged = bytearray(data)
            damaged[position] ^= bit
            with pytest.raises(CacheFormatError):
                cache = CacheFile(bytes(damaged))
                # header and tables are checked at load; payload and trailer by verify
                if problems := cache.verify():
                    raise CacheFormatError("; ".join(problems))


def test_every_truncation_and_extension_is_rejected():
    data = sample_file()
    for length in range(len(data)):
        with pytest.raises(CacheFormatError):
            CacheFile(data[:length])
    with pytest.raises(CacheFormatError, match="truncated or extended"):
        CacheFile(data + b"\x00")


def test_load_checks_only_used_payloads_and_names_the_damage():
    data = bytearray(sample_file())
    payload = regions(bytes(data))["payload"]
    data[payload.start] ^= 0xFF
    cache = CacheFile(bytes(data))  # header and tables are intact: the load succeeds
    damaged = min(cache.entries, key=lambda e: e.offset)
    with pytest.raises(CacheFormatError, match="damaged"):
        cache.payload(damaged)
    problems = cache.verify()
    assert any(damaged.key.name in p for p in problems)
    assert any("whole-file" in p for p in problems)


def test_huge_counts_and_lengths_are_refused_before_use():
    data = bytearray(sample_file())
    # A huge entry count with a recomputed header checksum: the check must come from sizes.
    import zlib

    struct.pack_into("<I", data, 16, 0xFFFFFFFF)
    struct.pack_into("<I", data, 76, zlib.crc32(bytes(data[:76])))
    with pytest.raises(CacheFormatError, match="cannot fit"):
        CacheFile(bytes(data))


def test_wrong_magic_and_version_are_named():
    with pytest.raises(CacheFormatError, match="not an MCLP file"):
        CacheFile(b"PK\x03\x04" + bytes(200))
    data = bytearray(sample_file())
    import zlib

    struct.pack_into("<H", data, 4, 2)
    struct.pack_into("<I", data, 76, zlib.crc32(bytes(data[:76])))
    with pytest.raises(CacheFormatError, match="version 2 is not supported"):
        CacheFile(bytes(data))


def test_program_key_covers_name_options_and_source():
    a = ProgramKey.for_source("conv2d", "src", ["-DB=1", "-DA=2"])
    assert a == ProgramKey.for_source("conv2d", "src", "-DA=2 -DB=1")
    assert a != ProgramKey.for_source("conv2d", "src ", "-DA=2 -DB=1")
    assert a != ProgramKey.for_source("conv2d", "src", "-DA=2")
    assert a != ProgramKey.for_source("pooling", "src", "-DA=2 -DB=1")
    assert normalize_options("  -DX   -DA ") == "-DA -DX"


def test_reuse_policy():
    updated = DeviceFingerprint(**{**GPU.__dict__, "driver_version": "615.0"})
    other = DeviceFingerprint(**{**GPU.__dict__, "device_name": "Adreno 750"})
    assert ReusePolicy.REUSE_NONE.accepts(GPU, GPU)
    assert not ReusePolicy.REUSE_NONE.accepts(updated, GPU)
    assert ReusePolicy.REUSE_SAME_GPU.accepts(updated, GPU)
    assert not ReusePolicy.REUSE_SAME_GPU.accepts(other, GPU)
    assert not ReusePolicy.REUSE_SAME_GPU.accepts(CPU, GPU)


def test_fingerprint_bytes_round_trip_and_reject_junk():
    assert DeviceFingerprint.from_bytes(GPU.to_bytes()) == GPU
    for junk in [b"[]", b'{"device_name": 1}', b"\xff\xfe", b"{}"]:
        with pytest.raises(ValueError):
            DeviceFingerprint.from_bytes(junk)
