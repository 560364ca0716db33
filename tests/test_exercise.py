"""The kernel-library start-up workload behind bench/init_latency.py, cold then warm."""

from __future__ import annotations

from macecl import kernels
from macecl.kernels.exercise import sample_launches, start_up


def test_sample_launches_cover_the_whole_kernel_library():
    assert {launch.program for launch in sample_launches()} == set(kernels.program_names())


def test_cold_start_builds_everything_and_warm_start_builds_nothing(cache_dir):
    path = cache_dir / "demo.bin"
    cold = start_up(path)
    assert cold["from_source"] == cold["programs"] >= 12 and cold["saved"] == cold["programs"]
    warm = start_up(path)
    assert (warm["from_cache"], warm["from_source"], warm["saved"]) == (cold["programs"], 0, 0)
    assert warm["build_seconds"] == 0
