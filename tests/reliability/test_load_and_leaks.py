"""Load: thousands of runs in one process keep resident memory flat; engines made and closed
over and over leave no OpenCL object and no file descriptor behind (CI counts; the bench runs
10,000 runs and 1,000 cycles)."""

from __future__ import annotations

import distinct_models
from leaks import create_destroy_cycles, held, repeated_runs

MiB = 1 << 20


def test_thousands_of_runs_keep_memory_and_handles_flat(tmp_path):
    result = repeated_runs(distinct_models.write("conv", tmp_path), runs=3000)
    before, after = result["before"], result["after"]
    assert (after.fds, after.opencl) == (before.fds, before.opencl)
    # Nothing on the run path allocates for good: outputs are freed, buffers are the plan's.
    assert result["rss_growth"] < 1 * MiB, result


def test_engines_made_and_closed_leave_no_opencl_object_or_descriptor(tmp_path):
    start = held()
    result = create_destroy_cycles(distinct_models.write("conv", tmp_path), cycles=150)
    before, after = result["before"], result["after"]
    assert after.opencl == before.opencl == start.opencl  # every context, queue, kernel freed
    assert after.fds == before.fds
