"""Property-based fuzzing of the readers of untrusted bytes: the MCLP cache file, the .macecl
model file and the ONNX path of the model loader. Random bytes, truncations, bit flips and
huge count and length fields (with the checksums fixed, so they reach the parser) must all be
accepted or rejected with a MaceclError; nothing else may escape, and a huge field must not
make a reader allocate."""

from __future__ import annotations

import json
import struct
import tracemalloc

import fuzz_targets
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macecl.cache.format import HEADER_SIZE
from macecl.errors import MaceclError

# Bounded and reproducible: a few hundred examples per target, the same ones every run.
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HUGE = [0xFFFF, 0xFFFF_FFFF, 0x8000_0000, 2**63 - 1, 2**63, 2**64 - 1, 2**40]
SEEDS = {name: make() for name, make in fuzz_targets.SEEDS.items()}


@st.composite
def mutated(draw, target: str) -> bytes:
    """A seed of ``target`` with a few bit flips, overwritten integers, cuts or insertions."""
    data = bytearray(draw(st.sampled_from(SEEDS[target])))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "integer", "truncate", "insert"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "integer":
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from(HUGE + [0, 1])) & ((1 << (8 * width)) - 1)
            data[position : position + width] = value.to_bytes(width, "little")
        elif kind == "truncate":
            del data[position:]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
    if target == "cache_format" and draw(st.booleans()):
        return fuzz_targets.fix_cache_checksums(data)
    return bytes(data)


def feed(target: str, data: bytes) -> None:
    fuzz_targets.run(target, data)  # anything but a MaceclError fails the test


@pytest.mark.parametrize("target", sorted(fuzz_targets.TARGETS))
def test_seeds_are_accepted(target):
    assert all(fuzz_targets.run(target, seed) for seed in SEEDS[target])


@FUZZ
@given(data=st.binary(max_size=4096))
def test_cache_reader_random_bytes(data):
    feed("cache_format", data)


@FUZZ
@given(data=mutated("cache_format"))
def test_cache_reader_mutations(data):
    feed("cache_format", data)


@FUZZ
@given(header=st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE), rest=st.binary(max_size=512))
def test_cache_reader_forged_headers(header, rest):
    """Any header whose CRC is right (an attacker's, not an accident's) over any bytes."""
    feed("cache_format", fuzz_targets.fix_cache_checksums(b"MCLP" + header[4:] + rest))


@FUZZ
@given(data=st.binary(max_size=2048))
def test_model_reader_random_bytes(data):
    feed("model_file", data)


@FUZZ
@given(data=mutated("model_file"))
def test_model_reader_mutations(data):
    feed("model_file", data)


def _safetensors(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


@st.composite
def forged_tensor_tables(draw) -> bytes:
    """A real model whose tensor table lies: huge shapes, offsets or odd dtypes."""
    seed = SEEDS["model_file"][0]
    (length,) = struct.unpack("<Q", seed[:8])
    header, body = json.loads(seed[8 : 8 + length]), seed[8 + length :]
    names = sorted(k for k in header if k != "__metadata__")
    info = header[draw(st.sampled_from(names))]
    number = st.one_of(st.sampled_from(HUGE + [0, -1]), st.integers(-(2**70), 2**70))
    field = draw(st.sampled_from(["shape", "data_offsets", "dtype"]))
    if field == "dtype":
        info["dtype"] = draw(st.sampled_from(["F32", "F64", "BOOL", "U8", "XX", 7, None]))
    else:
        info[field] = draw(st.lists(number, max_size=6))
    return _safetensors(header, body)


@FUZZ
@given(data=forged_tensor_tables())
def test_model_reader_forged_tensor_tables(data):
    feed("model_file", data)


@FUZZ
@given(data=st.one_of(st.binary(max_size=2048), mutated("tuning_format")))
def test_tuning_reader(data):
    feed("tuning_format", data)


@settings(FUZZ, max_examples=150)
@given(data=st.one_of(st.binary(max_size=1024), mutated("onnx_model")))
def test_onnx_loader(data):
    feed("onnx_model", data)


def _huge_inputs() -> list[tuple[str, bytes]]:
    cache = SEEDS["cache_format"][0]
    cases = []
    for offset, width in [(12, 4), (16, 4), (24, 8), (40, 8), (56, 8)]:  # counts and sizes
        data = bytearray(cache)
        data[offset : offset + width] = (2 ** (8 * width) - 1).to_bytes(width, "little")
        cases.append(("cache_format", fuzz_targets.fix_cache_checksums(data)))
    table = struct.unpack_from("<Q", cache, 48)[0]
    for field, width in [(4, 2), (6, 2), (16, 8)]:  # name and options length, payload length
        data = bytearray(cache)
        data[table + field : table + field + width] = b"\xff" * width
        cases.append(("cache_format", fuzz_targets.fix_cache_checksums(data)))
    model = SEEDS["model_file"][0]
    cases.append(("model_file", b"\xff" * 8 + model[8:]))
    (length,) = struct.unpack("<Q", model[:8])
    header, body = json.loads(model[8 : 8 + length]), model[8 + length :]
    name = next(k for k in header if k != "__metadata__")
    for shape in ([2**62, 4], [2**32, 2**32], [2**40]):
        forged = json.loads(json.dumps(header))
        forged[name]["shape"] = shape
        cases.append(("model_file", _safetensors(forged, body)))
    return cases


HUGE_INPUTS = _huge_inputs()


# NOTE: numbered ids, not the bytes, so that every pytest-xdist worker collects the same names
@pytest.mark.parametrize("target, data", HUGE_INPUTS,
                         ids=[f"{target}-{n}" for n, (target, _) in enumerate(HUGE_INPUTS)])
def test_huge_counts_and_lengths_are_refused_without_allocating(target, data):
    tracemalloc.start()
    try:
        with pytest.raises(MaceclError):
            fuzz_targets.TARGETS[target](data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"{peak} bytes allocated to refuse a {len(data)}-byte input"


@pytest.mark.parametrize("target", sorted(fuzz_targets.TARGETS))
def test_stored_corpus_replays_cleanly(target):
    """The inputs bench/fuzz.py found (crashes once fixed, and new coverage) stay handled."""
    files = fuzz_targets.corpus(target)
    assert files, f"no corpus for {target} in {fuzz_targets.CORPUS}"
    outcomes = [fuzz_targets.run(target, path.read_bytes()) for path in files]
    assert len(outcomes) == len(files)
