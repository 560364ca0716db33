"""A step that fails with an OpenCL error while its binaries came from storage is retried once
from source; only a second failure reaches the caller."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import ADD_SOURCE, assert_added, build_context, cache_with_add, run_add

from macecl import CacheWarning, KernelExecutionError
from macecl.cache.format import CacheFile, encode, entries_of
from macecl.runtime import faults

CL_OUT_OF_RESOURCES = -5


def test_wrong_binary_under_a_key_is_cleared_and_rebuilt(cache_dir):
    path = cache_with_add(6)
    # Store, under the key of the add program, the binary of a program with no kernel of
    # that name: the driver accepts it, and kernel creation fails for real
    # (CL_INVALID_KERNEL_NAME), as with a binary that a buggy tool filed under a wrong key.
    other = build_context(cache_dir / "other.bin")
    program = other.programs.get("other", source="__kernel void nothing(void) {}")
    wrong = program.binary()
    path.write_bytes(encode([dataclasses.replace(e, payload=wrong)
                             for e in entries_of(CacheFile(path.read_bytes()))]))

    context = build_context()
    with pytest.warns(CacheWarning, match="CL_INVALID_KERNEL_NAME") as caught:
        result = context.run_with_fallback(lambda: run_add(context, 6))
    assert len(caught) == 1
    assert_added(result, 6)
    assert (context.stats.from_cache, context.stats.from_source) == (1, 1)
    # This device's entries were erased, and the rebuilt program is what the flush saves.
    assert CacheFile(path.read_bytes()).entries == []
    assert context.flush() == 1
    assert build_context().programs.get(
        "add", source=ADD_SOURCE, options=["-DCONSTANT=6"]).origin.value == "cache"


def test_a_launch_failing_once_is_retried_from_source(cache_dir):
    cache_with_add(8)
    context = build_context()
    # Stands for clEnqueueNDRangeKernel failing on a GPU running a stale binary.
    with faults.inject("launch", CL_OUT_OF_RESOURCES, times=1):
        with pytest.warns(CacheWarning, match="CL_OUT_OF_RESOURCES"):
            assert_added(context.run_with_fallback(lambda: run_add(context, 8)), 8)
    assert context.stats.from_source == 1


def test_a_second_failure_names_kernel_program_and_error(cache_dir):
    cache_with_add(8)
    context = build_context()
    with faults.inject("launch", CL_OUT_OF_RESOURCES, times=2):
        with pytest.warns(CacheWarning), pytest.raises(KernelExecutionError) as raised:
            context.run_with_fallback(lambda: run_add(context, 8))
    error = raised.value
    assert error.kernel == "add_constant" and error.status == "CL_OUT_OF_RESOURCES"
    assert error.program.startswith("add [-DCONSTANT=8] #") and error.origin == "source"
    assert "add_constant" in str(error) and "CL_OUT_OF_RESOURCES" in str(error)


def test_failure_with_programs_from_source_is_not_retried(cache_dir):
    context = build_context()
    calls = []

    def step():
        calls.append(1)
        return run_add(context, 2)

    with faults.inject("launch", CL_OUT_OF_RESOURCES, times=1):
        with pytest.raises(KernelExecutionError, match="binary from source"):
            context.run_with_fallback(step)
    assert len(calls) == 1


def test_build_error_carries_the_build_log():
    from macecl import ProgramBuildError

    context = build_context()
    with pytest.raises(ProgramBuildError) as raised:
        context.programs.get("broken", source="__kernel void f(void) { undefined_thing(); }")
    assert raised.value.status == "CL_BUILD_PROGRAM_FAILURE"
    assert "undefined_thing" in raised.value.log


def test_a_build_the_driver_comments_on_warns_nothing_and_logs_what_it_said(caplog):
    """A driver's log of a build that succeeded (NVIDIA's writes one for many programs; here
    the source's own #warning makes PoCL write one) is no warning to the user: it goes to the
    debug log. pyopencl's own build would warn "Non-empty compiler output" at every build."""
    import logging
    import warnings

    context = build_context()
    source = "#warning the kernel has something to say\n__kernel void f(__global float* a) { }"
    with warnings.catch_warnings(record=True) as caught, \
            caplog.at_level(logging.DEBUG, logger="macecl.runtime.opencl"):
        warnings.simplefilter("always")
        context.programs.get("commented", source=source)
    assert caught == []
    assert "the kernel has something to say" in caplog.text
