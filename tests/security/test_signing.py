"""Signed MCLP files without a device: what is signed, which reader refuses what, and how
`macecl cache inspect/verify` report it."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from typer.testing import CliRunner

from macecl import config
from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey
from macecl.cache.format import (
    FLAG_SIGNED,
    HEADER_SIZE,
    SIGNATURE_SIZE,
    TRAILER_SIZE,
    CacheFile,
    NewEntry,
    encode,
)
from macecl.cli import app
from macecl.errors import CacheFormatError, CacheTrustError

KEY, OTHER = b"k" * 16, b"o" * 16
GPU = DeviceFingerprint("P", "PV", "1", "GPU-X", "DV", "1", "100", "C", 64, ("cl_khr_fp16",))
ENTRIES = [NewEntry(GPU, ProgramKey.for_source(n, f"src {n}", "-DX"), bytes([i]) * 50, 7)
           for i, n in enumerate(["conv2d", "pooling"])]


def test_signed_file_round_trips_and_adds_only_the_signature_block():
    signed, plain = encode(ENTRIES, key=KEY), encode(ENTRIES)
    assert len(signed) == len(plain) + SIGNATURE_SIZE
    cache = CacheFile(signed, key=KEY)
    assert cache.header.signed and cache.header.flags == FLAG_SIGNED
    assert cache.verify() == []
    assert [cache.payload(e) for e in cache.entries] == [e.payload for e in ENTRIES]
    assert not CacheFile(plain).header.signed and CacheFile(plain).header.flags == 0


@pytest.mark.parametrize("data_key, reader_key, why", [
    (None, KEY, "not signed but a cache key is set"),
    (KEY, None, "signed but no cache key is set"),
    (KEY, OTHER, "signature does not match"),
])
def test_reader_refuses_a_file_its_key_does_not_vouch_for(data_key, reader_key, why):
    data = encode(ENTRIES, key=data_key)
    with pytest.raises(CacheTrustError, match=why):
        CacheFile(data, key=reader_key)
    assert CacheFile(data, key=reader_key, authenticate=False).signature_problem(reader_key)


def test_every_signed_byte_is_covered():
    """Flip each byte before the payload: a CRC or the HMAC refuses every one."""
    data = encode(ENTRIES, key=KEY)
    payload_offset = CacheFile(data, key=KEY).header.payload_offset
    for position in range(payload_offset):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        with pytest.raises(CacheFormatError):
            CacheFile(bytes(damaged), key=KEY)


def test_unknown_flags_are_refused():
    data = bytearray(encode(ENTRIES))
    struct.pack_into("<H", data, 6, 0x8000)
    struct.pack_into("<I", data, HEADER_SIZE - 4, zlib.crc32(data[: HEADER_SIZE - 4]))
    with pytest.raises(CacheFormatError, match="flags 0x8000"):
        CacheFile(bytes(data))


def test_trailer_still_covers_the_signature_block():
    data = bytearray(encode(ENTRIES, key=KEY))
    end = len(data) - TRAILER_SIZE
    data[end - 1] ^= 0x01  # last payload byte: not signed itself, caught by its SHA-256
    assert len(CacheFile(bytes(data), key=KEY).verify()) == 2  # payload hash and trailer


runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def signed_file(tmp_path):
    path = tmp_path / "c.bin"
    path.write_bytes(encode(ENTRIES, key=KEY))
    return path


def test_cli_verify_checks_the_signature_as_the_runtime_would(signed_file):
    good = cli("cache", "verify", str(signed_file), "--key", KEY.decode())
    assert good.exit_code == 0 and "signature valid" in good.output
    wrong = cli("cache", "verify", str(signed_file), "--key", OTHER.decode())
    assert wrong.exit_code == 1 and "signature does not match" in wrong.output
    missing = cli("cache", "verify", str(signed_file))
    assert missing.exit_code == 1 and "no cache key is set" in missing.output
    with config.override(cache_key=KEY.decode()):
        from_setting = cli("cache", "verify", str(signed_file))
    assert from_setting.exit_code == 0


def test_cli_inspect_shows_the_signature_status(signed_file):
    unchecked = json.loads(cli("cache", "inspect", str(signed_file), "--json").output)
    assert unchecked["signature"] == {"signed": True, "key_given": False, "problem":
                                      unchecked["signature"]["problem"],
                                      "status": "signed (not checked: no key given)"}
    checked = json.loads(cli("cache", "inspect", str(signed_file), "--json", "--key",
                             KEY.decode()).output)
    assert checked["signature"]["status"] == "signed, signature valid"
    text = cli("cache", "inspect", str(signed_file), "--key", OTHER.decode())
    assert text.exit_code == 0 and "signature: signed, signature INVALID" in text.output
