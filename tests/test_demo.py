"""The main demo's start-up: a real CNN, cold then warm, the same result both times."""

from __future__ import annotations

from macecl.converter import convert
from macecl.demo import demo_model, start_up


def test_warm_start_takes_every_program_from_the_cache_and_gives_the_same_output(tmp_path):
    model = tmp_path / "squeezenet.macecl"
    convert(demo_model(), model)
    cache = tmp_path / "programs.bin"
    cold = start_up(model, cache)
    warm = start_up(model, cache)
    assert cold["programs_from_source"] >= 3 and cold["programs_from_cache"] == 0
    assert warm["programs_from_cache"] == cold["programs_from_source"]
    assert warm["programs_from_source"] == 0
    assert warm["output_sha256"] == cold["output_sha256"] and cold["output_shape"] == [1, 1000, 1, 1]
