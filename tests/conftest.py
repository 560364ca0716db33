"""Shared fixtures: every test gets its own cache directory; nothing touches the user's."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from macecl import GPUContextBuilder, config
from macecl.runtime.opencl import cl

WORKLOAD = Path(__file__).with_name("workload.py")

# A tiny program whose build options pick the constant it adds: many distinct programs at
# the price of one source, each quick to build on PoCL.
ADD_SOURCE = """
__kernel void add_constant(__global float* data, int count) {
    int i = get_global_id(0);
    if (i < count) data[i] += (float)(CONSTANT);
}
"""


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path):
    directory = tmp_path / "cache"
    with config.override(cache_dir=directory, device=None):
        yield directory


@pytest.fixture(scope="session")
def shared_context(tmp_path_factory):
    """One context (and cache file) for the op and model tests: each program built once."""
    path = tmp_path_factory.mktemp("shared-cache") / "mace_cl_compiled_program.bin"
    context = GPUContextBuilder().set_opencl_cache_full_path(path).finalize()
    yield context
    context.close()


def build_context(cache_path: Path | None = None, **settings):
    builder = GPUContextBuilder()
    if cache_path is not None:
        builder.set_opencl_cache_full_path(cache_path)
    for name, value in settings.items():
        getattr(builder, f"set_{name}")(value)
    return builder.finalize()


def run_add(context, constant: int, count: int = 37) -> np.ndarray:
    """Build (or load) the add program for ``constant``, launch it, return the result."""
    program = context.programs.get("add", source=ADD_SOURCE, options=[f"-DCONSTANT={constant}"])
    kernel = program.kernel("add_constant")
    data = np.arange(count, dtype=np.float32)
    buffer = cl.Buffer(context.cl_context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR,
                       hostbuf=data)
    kernel.set_args(buffer, np.int32(count))
    kernel.launch(context.queue, (count,))
    cl.enqueue_copy(context.queue, data, buffer)
    return data


def assert_added(result: np.ndarray, constant: int) -> None:
    np.testing.assert_array_equal(result, np.arange(result.size, dtype=np.float32) + constant)


def cache_with_add(constant: int):
    """Run the add program for ``constant`` in a first context and save it; the cache path."""
    first = build_context()
    assert_added(run_add(first, constant), constant)
    first.flush()
    first.close()
    return first.cache_path


def start_workload(cache_path: Path, constants: list[int], *extra: str, **popen) -> subprocess.Popen:
    """A fresh process that runs the add program for each constant and flushes the cache."""
    env = {**os.environ, "POCL_KERNEL_CACHE": "0"}
    command = [sys.executable, str(WORKLOAD), str(cache_path), *map(str, constants), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def finish_workload(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def run_workload(cache_path: Path, constants: list[int], *extra: str, **popen) -> dict:
    return finish_workload(start_workload(cache_path, constants, *extra, **popen))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
