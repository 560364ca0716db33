"""MACE's own compiled-program file, checked against classes protoc generates from mace.proto.

The reference path is independent of ours: a copy of MACE's two messages is compiled by
protoc (grpcio-tools) in a temporary directory, and the generated classes write files our
reader must read and read files our writer wrote.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
import sys
import zlib

import pytest
from conftest import ADD_SOURCE, assert_added, build_context, run_add
from grpc_tools import protoc
from typer.testing import CliRunner

from macecl.cache import mace_format
from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey, ReusePolicy
from macecl.cache.format import CacheFile, NewEntry, encode, entries_of
from macecl.cli import app
from macecl.errors import CacheFormatError

# MACE's two key-value messages as mace.proto declares them (proto2, package mace).
MACE_PROTO = """
syntax = "proto2";
package mace;

message KVPair {
  optional string key = 1;
  optional bytes bytes_value = 2;
}

message PairContainer {
  repeated KVPair pairs = 1;
}
"""

POCL = DeviceFingerprint("Portable Computing Language", "The pocl project",
                         "OpenCL 3.0 PoCL 6.0  Linux, Release, LLVM 18",  # commas, as PoCL has
                         "cpu-haswell", "GenuineIntel", "OpenCL 3.0 PoCL", "6.0",
                         "OpenCL C 1.2 PoCL", 64, ("cl_khr_fp64",))
ADRENO = DeviceFingerprint("QUALCOMM Snapdragon(TM)", "QUALCOMM", "OpenCL 2.0 QUALCOMM build",
                           "QUALCOMM Adreno(TM)", "QUALCOMM", "OpenCL 2.0 Adreno(TM) 640",
                           "OpenCL 2.0 QUALCOMM build", "OpenCL C 2.0 Adreno(TM) 640", 64)

runner = CliRunner()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The protoc-generated module for MACE_PROTO (``mace_pb2``)."""
    directory = tmp_path_factory.mktemp("mace-proto")
    (directory / "mace.proto").write_text(MACE_PROTO)
    status = protoc.main(["protoc", f"-I{directory}", f"--python_out={directory}",
                          str(directory / "mace.proto")])
    assert status == 0, "protoc failed on the copy of mace.proto"
    spec = importlib.util.spec_from_file_location("reference_mace_pb2", directory / "mace_pb2.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def reference_file(reference, pairs: dict[str, bytes]) -> bytes:
    """A MACE file as MACE writes it: the container, then the little-endian CRC-32 of it."""
    container = reference.PairContainer()
    for key, value in pairs.items():
        container.pairs.add(key=key, bytes_value=value)
    body = container.SerializeToString()
    return body + struct.pack("<I", zlib.crc32(body))


def reference_read(reference, data: bytes) -> dict[str, bytes]:
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    assert zlib.crc32(body) == crc, "our writer's CRC is not the CRC-32 of the message"
    container = reference.PairContainer()
    container.ParseFromString(body)
    return {pair.key: pair.bytes_value for pair in container.pairs}


def key(name: str, *options: str) -> ProgramKey:
    return ProgramKey.for_source(name, f"source of {name}", list(options))


def sha_hex(name: str) -> bytes:
    return hashlib.sha256(f"source of {name}".encode()).hexdigest().encode()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# -- the format, both directions --------------------------------------------------------------


def test_reads_what_the_reference_classes_write(reference):
    data = reference_file(reference, {
        mace_format.PLATFORM_INFO_KEY: b"QUALCOMM Snapdragon(TM), FULL_PROFILE, OpenCL 2.0 "
                                       b"QUALCOMM build, 1.1.0",
        mace_format.DEVICE_NAME_KEY: b"Adreno(TM) 640",
        "conv2d -DBIAS -DRELU": b"\x01binary-a",
        "program_hash_ conv2d -DBIAS -DRELU": sha_hex("conv2d"),
        "pooling": b"\x02binary-b",
        "program_hash_ pooling": b"d41d8cd98f00b204e9800998ecf8427e",  # not a SHA-256
    })
    mace = mace_format.parse(data)
    assert mace.crc_ok
    assert mace.platform_fields() == {"name": "QUALCOMM Snapdragon(TM)", "profile": "FULL_PROFILE",
                                      "version": "OpenCL 2.0 QUALCOMM build",
                                      "mace_version": "1.1.0"}
    assert mace.device_name == "Adreno(TM) 640"
    conv, pooling = mace.programs
    assert (conv.name, conv.options, conv.binary) == ("conv2d", "-DBIAS -DRELU", b"\x01binary-a")
    assert conv.source_sha256 == bytes.fromhex(sha_hex("conv2d").decode())
    assert (pooling.name, pooling.options, pooling.source_sha256) == ("pooling", "", None)
    entries, skipped = mace_format.to_entries(mace, mace_format.fingerprint(mace), last_used=7)
    assert [e.key for e in entries] == [key("conv2d", "-DRELU", "-DBIAS")]
    assert [s.key for s in skipped] == ["pooling"] and "not a SHA-256" in skipped[0].reason


def test_reference_classes_read_what_we_write(reference):
    programs = {key("conv2d", "-DB", "-DA"): b"\x00A" * 50, key("softmax"): b"B"}
    data = mace_format.encode(ADRENO, programs)
    pairs = reference_read(reference, data)
    assert pairs == {
        mace_format.PLATFORM_INFO_KEY: b"QUALCOMM Snapdragon(TM), FULL_PROFILE, "
                                       b"OpenCL 2.0 QUALCOMM build, macecl",
        mace_format.DEVICE_NAME_KEY: b"Adreno(TM) 640",  # MACE's Adreno name: from the version
        "conv2d -DA -DB": b"\x00A" * 50,  # options sorted, each after one space
        "program_hash_ conv2d -DA -DB": sha_hex("conv2d"),
        "softmax": b"B",
        "program_hash_ softmax": sha_hex("softmax"),
    }


def test_mclp_to_mace_and_back_keeps_every_program():
    entries = [NewEntry(POCL, key("conv2d", "-DX=1"), b"\x7fELF one", 100),
               NewEntry(POCL, key("gemm"), b"\x7fELF two", 100)]
    mace = mace_format.parse(mace_format.from_entries(entries, POCL))
    assert mace.device_name == ""  # MACE names no device but Adreno, Mali and PowerVR
    back, skipped = mace_format.to_entries(mace, POCL, last_used=100)
    assert skipped == [] and sorted(back, key=str) == sorted(entries, key=str)


def test_device_names_as_mace_records_them():
    mali = DeviceFingerprint("ARM Platform", "ARM", "OpenCL 2.1", "Mali-G78", "ARM",
                             "OpenCL 2.1 v1.r32p1", "2.1", "OpenCL C 2.0", 64)
    assert mace_format.mace_device_name(ADRENO) == "Adreno(TM) 640"
    assert mace_format.mace_device_name(mali) == "Mali-G78"
    assert mace_format.mace_device_name(POCL) == ""


@pytest.mark.parametrize(("damage", "message"), [
    (lambda d: d[:3], "too short"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "CRC-32 mismatch"),
    (lambda d: d[:10] + d[11:], "CRC-32 mismatch"),  # a byte lost in the middle
])
def test_damaged_files_are_refused_with_the_reason(damage, message):
    data = mace_format.encode(POCL, {key("gemm"): b"binary"})
    with pytest.raises(CacheFormatError, match=message):
        mace_format.parse(damage(data))


def test_malformed_messages_are_refused_with_the_reason(reference):
    body = b"\x0a\x05\x0a\x03abc\xff\xff"  # a pair, then a truncated field
    garbage = body + struct.pack("<I", zlib.crc32(body))
    with pytest.raises(CacheFormatError, match="not a MACE PairContainer"):
        mace_format.parse(garbage)
    twice = reference_file(reference, {"a": b"1"})[:-4] * 2
    with pytest.raises(CacheFormatError, match="'a' appears twice"):
        mace_format.parse(twice + struct.pack("<I", zlib.crc32(twice)))
    # A key that is not UTF-8: field 1 of a pair holding the byte 0xff.
    pair = b"\x0a\x01\xff"
    body = b"\x0a" + bytes([len(pair)]) + pair
    with pytest.raises(CacheFormatError, match="not UTF-8"):
        mace_format.parse(body + struct.pack("<I", zlib.crc32(body)))


def test_an_mclp_file_is_not_taken_for_a_mace_file():
    mclp = encode([NewEntry(POCL, key("gemm"), b"binary", 1)])
    assert not mace_format.looks_like_mace(mclp)
    assert mace_format.looks_like_mace(mace_format.encode(POCL, {key("gemm"): b"binary"}))


def test_unknown_fingerprint_fields_and_the_reuse_policies():
    mace = mace_format.parse(mace_format.encode(POCL, {key("gemm"): b"binary"}))
    bare = mace_format.fingerprint(mace)
    assert (bare.platform_vendor, bare.driver_version, bare.address_bits) == ("", "", 0)
    for policy in ReusePolicy:
        assert not policy.accepts(bare, POCL), "an incomplete fingerprint must match nothing"
    assert mace_format.matches(mace, POCL)
    assert mace_format.fingerprint(mace, POCL) == POCL  # same platform version: same driver
    updated = DeviceFingerprint(**{**POCL.__dict__, "platform_version": "OpenCL 3.0 PoCL 6.1",
                                   "driver_version": "6.1"})
    completed = mace_format.fingerprint(mace, updated)
    assert completed.driver_version == "" and completed.platform_version == POCL.platform_version
    assert ReusePolicy.REUSE_SAME_GPU.accepts(completed, updated)
    assert not ReusePolicy.REUSE_NONE.accepts(completed, updated)
    assert not mace_format.matches(mace_format.parse(mace_format.encode(ADRENO, {})), POCL)


# -- the runtime: a MACE file given as a precompiled binary ------------------------------------


def test_runtime_loads_a_mace_file_as_precompiled_binary(tmp_path):
    first = build_context(tmp_path / "first.bin")
    assert_added(run_add(first, 5), 5)
    first.flush()
    first.close()
    cache = CacheFile((tmp_path / "first.bin").read_bytes())
    shipped = tmp_path / "shipped.bin"
    shipped.write_bytes(mace_format.from_entries(entries_of(cache), first.device.fingerprint))
    assert mace_format.looks_like_mace(shipped.read_bytes())

    context = build_context(tmp_path / "second.bin", opencl_binary_paths=[shipped])
    assert_added(run_add(context, 5), 5)
    assert (context.stats.from_precompiled, context.stats.from_source) == (1, 0)
    context.close()


def test_runtime_skips_a_mace_file_of_another_device(tmp_path):
    program = ProgramKey.for_source("add", ADD_SOURCE, ["-DCONSTANT=6"])
    shipped = tmp_path / "adreno.bin"
    shipped.write_bytes(mace_format.encode(ADRENO, {program: b"not for this device"}))
    context = build_context(tmp_path / "cache.bin", opencl_binary_paths=[shipped])
    assert_added(run_add(context, 6), 6)
    assert (context.stats.from_precompiled, context.stats.from_source) == (0, 1)
    context.close()


# -- the command line ------------------------------------------------------------------------


def test_inspect_recognises_a_mace_file_by_content(tmp_path, reference):
    path = tmp_path / "any-name.dat"
    path.write_bytes(reference_file(reference, {
        mace_format.PLATFORM_INFO_KEY: b"Mali Platform, FULL_PROFILE, OpenCL 2.1, 1.0.0",
        mace_format.DEVICE_NAME_KEY: b"Mali-G78",
        "winograd -DIN_TILE=4": b"x" * 300,
        "program_hash_ winograd -DIN_TILE=4": b"0123abcd",
    }))
    result = invoke("cache", "inspect", path, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["format"] == "MACE" and info["crc32"]["ok"]
    assert info["platform"]["name"] == "Mali Platform" and info["device_name"] == "Mali-G78"
    assert info["programs"] == [{"key": "winograd -DIN_TILE=4", "program": "winograd",
                                 "options": "-DIN_TILE=4", "size": 300,
                                 "source_hash": "0123abcd"}]
    table = invoke("cache", "inspect", path)
    assert table.exit_code == 0 and "Mali-G78" in table.stdout and "ok" in table.stdout
    assert invoke("cache", "verify", path).exit_code == 0


def test_inspect_shows_a_crc_mismatch_and_verify_fails_it(tmp_path):
    path = tmp_path / "damaged.bin"
    data = bytearray(mace_format.encode(POCL, {key("gemm"): b"binary" * 10}))
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    result = invoke("cache", "inspect", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["crc32"]["ok"] is False
    failed = invoke("cache", "verify", path)
    assert failed.exit_code == 1 and "CRC-32 mismatch" in failed.output


def test_inspect_names_both_formats_for_a_file_of_neither(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"this is not a cache file at all")
    result = invoke("cache", "inspect", path)
    assert result.exit_code == 1
    assert "not an MCLP file" in result.output and "nor a MACE file" in result.output


def test_convert_both_ways_on_the_command_line(tmp_path):
    mclp = tmp_path / "cache.bin"
    mclp.write_bytes(encode([NewEntry(POCL, key("gemm", "-DT=4"), b"gemm-binary", 1),
                             NewEntry(ADRENO, key("gemm", "-DT=4"), b"adreno-binary", 1)]))
    mace = tmp_path / "mace.bin"
    ambiguous = invoke("cache", "convert", mclp, "-o", mace)
    assert ambiguous.exit_code == 1 and "--device-index" in ambiguous.output
    assert not mace.exists()

    index = CacheFile(mclp.read_bytes()).devices.index(ADRENO)
    result = invoke("cache", "convert", mclp, "-o", mace, "--device-index", index, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["programs"] == 1
    assert mace_format.parse(mace.read_bytes()).programs[0].binary == b"adreno-binary"

    back = tmp_path / "back.bin"
    result = invoke("cache", "convert", mace, "-o", back, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["output_format"] == "MCLP" and report["programs"] == 1
    assert "driver_version" in report["unknown_fields"] and "neither" in report["reuse"]
    (entry,) = entries_of(CacheFile(back.read_bytes()))
    assert (entry.key, entry.payload) == (key("gemm", "-DT=4"), b"adreno-binary")
    assert entry.device.device_name == "Adreno(TM) 640"


def test_convert_completes_the_fingerprint_from_a_local_device(tmp_path):
    context = build_context(tmp_path / "cache.bin")
    assert_added(run_add(context, 8), 8)
    context.flush()
    context.close()
    local = context.device.fingerprint
    mace = tmp_path / "mace.bin"
    assert invoke("cache", "convert", tmp_path / "cache.bin", "-o", mace).exit_code == 0
    back = tmp_path / "back.bin"
    result = invoke("cache", "convert", mace, "-o", back, "--local-device",
                    context.device.index, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unknown_fields"] == []
    assert CacheFile(back.read_bytes()).devices == [local]
    reused = build_context(tmp_path / "other.bin", opencl_binary_paths=[back])
    assert_added(run_add(reused, 8), 8)
    assert reused.stats.from_precompiled == 1
    reused.close()
