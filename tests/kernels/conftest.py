"""Shared fixture of the kernel tests: one OpenCL context on the first PoCL device.

Programs are built through the raw ``pyopencl._cl._Program`` so that pyopencl's own binary cache
never serves a stale build, and each (program, options) pair is built once per session.
"""

from __future__ import annotations

import os

os.environ["PYOPENCL_NO_CACHE"] = "1"  # must be set before pyopencl is imported

import numpy as np
import pyopencl as cl
import pytest

from macecl.kernels import program_source

from .helpers import pocl_device

_MF = cl.mem_flags
# Global sizes are rounded up to this, so every launch also runs work items past the end and
# the kernels' `gid >= total` guards are exercised by every test.
_ROUND = 64
# NaN floats after every output buffer; larger than the rounding, so unguarded items land here
_CANARY = 256


class ClEnv:
    """A context, a queue and the little glue the tests need to launch library kernels."""

    def __init__(self, device: cl.Device):
        self.device = device
        self.ctx = cl.Context([device])
        self.queue = cl.CommandQueue(self.ctx)
        self._programs: dict[tuple[str, str], cl._cl._Program] = {}

    def program(self, name: str, options: str = "") -> cl._cl._Program:
        key = (name, options)
        if key not in self._programs:
            prg = cl._cl._Program(self.ctx, program_source(name))
            prg.build(options.encode())
            self._programs[key] = prg
        return self._programs[key]

    def buffer(self, array) -> cl.Buffer:
        """A device copy of ``array`` (float32 unless it is an integer array: then int32)."""
        array = np.asarray(array)
        dtype = np.int32 if np.issubdtype(array.dtype, np.integer) else np.float32
        host = np.ascontiguousarray(array, dtype=dtype)
        if host.size == 0:  # OpenCL buffers cannot be empty; a kernel never reads this one
            host = np.zeros(1, dtype)
        return cl.Buffer(self.ctx, _MF.READ_ONLY | _MF.COPY_HOST_PTR, hostbuf=host)

    def output(self, shape) -> cl.Buffer:
        """An output buffer filled with NaN, so that an element a kernel forgets shows up, and
        followed by a NaN canary that ``read`` checks, so that a write past the end does too."""
        host = np.full(int(np.prod(shape)) + _CANARY, np.nan, np.float32)
        return cl.Buffer(self.ctx, _MF.READ_WRITE | _MF.COPY_HOST_PTR, hostbuf=host)

    def read(self, buf: cl.Buffer, shape) -> np.ndarray:
        """The contents of an ``output`` buffer, after checking its canary is untouched."""
        host = np.empty(buf.size // 4, np.float32)
        cl.enqueue_copy(self.queue, host, buf)
        self.queue.finish()
        size = int(np.prod(shape))
        assert np.isnan(host[size:]).all(), "a kernel wrote past the end of its output"
        return host[:size].reshape(shape)

    def launch(self, name: str, options: str, kernel: str, work_items, *args,
               local_size=None) -> None:
        """Runs ``kernel`` of program ``name`` over at least ``work_items`` items (an int, or
        a tuple of 1 to 3 dimensions), local size left to the driver unless given. Python ints
        become int32 arguments and floats float32."""
        knl = cl._cl.Kernel(self.program(name, options), kernel)
        knl.set_args(*[_arg(a) for a in args])
        if isinstance(work_items, (int, np.integer)):
            global_size = (max(-(-work_items // _ROUND) * _ROUND, _ROUND),)
        else:  # each dimension padded past its end, as the engine's rounding may do
            local = local_size or (1,) * len(work_items)
            global_size = tuple(-(-(g + 3) // l) * l for g, l in zip(work_items, local))
        cl.enqueue_nd_range_kernel(self.queue, knl, global_size, local_size)
        self.queue.finish()

    def run(self, name, options, kernel, out_shape, inputs, scalars, work_items=None,
            local_size=None):
        """Uploads ``inputs`` (arrays, or None for a NULL buffer), launches with the output
        buffer placed after them and ``scalars`` after that (NumPy arrays there are uploaded
        as int32 meta buffers), and returns the output array."""
        out = self.output(out_shape)
        bufs = [None if a is None else self.buffer(a) for a in inputs]
        # arrays among the trailing arguments are meta buffers (int32)
        rest = [self.buffer(a) if isinstance(a, np.ndarray) else a for a in scalars]
        if work_items is None:
            work_items = int(np.prod(out_shape))
        self.launch(name, options, kernel, work_items, *bufs, out, *rest, local_size=local_size)
        return self.read(out, out_shape)


def _arg(a):
    if isinstance(a, bool):
        return np.int32(a)
    if isinstance(a, (int, np.integer)):
        return np.int32(a)
    if isinstance(a, (float, np.floating)):
        return np.float32(a)
    return a


@pytest.fixture(scope="session")
def cl_env() -> ClEnv:
    return ClEnv(pocl_device())


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)

