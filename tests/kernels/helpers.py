"""Host-side helpers of the kernel tests: comparisons, the vector widths to build with, and
the stride arithmetic the op families do before a launch (imported, so that the kernels are
tested with the real thing)."""

from __future__ import annotations

import math

import numpy as np

from macecl.ops.elementwise import broadcast_strides  # noqa: F401
from macecl.ops.registry import contiguous_strides  # noqa: F401
from macecl.ops.traits import DeviceTraits


def pocl_device():
    """The device every kernel test runs on: the first of PoCL's platform."""
    import pyopencl as cl

    for platform in cl.get_platforms():
        if "portable computing language" in platform.name.lower():
            return platform.get_devices()[0]
    raise RuntimeError("no PoCL platform: the kernel tests need pocl-binary-distribution")


# The float vector widths (-DVW) the tests build with: 4, 8 and 16 as far as macecl itself
# builds for this device. 16 only where PoCL compiles with AVX-512 (ops/traits.py: elsewhere
# a 16-float vector given to a builtin crashes), so on such a machine WIDEST is 8.
WIDEST = DeviceTraits.of(pocl_device()).vector_width
WIDTHS = tuple(w for w in (4, 8, 16) if w <= WIDEST)


def at_most_widest(params: list, at: int | None = None) -> list:
    """Parameters written for widths up to 16 with each width above WIDEST made WIDEST and
    the repeats this makes dropped: widths, or tuples whose item ``at`` is the width."""
    kept = []
    for param in params:
        if at is None:
            param = min(param, WIDEST)
        else:
            param = (*param[:at], min(param[at], WIDEST), *param[at + 1:])
        if param not in kept:
            kept.append(param)
    return kept


def assert_close(got, want, rtol=1e-4, atol=1e-5):
    """assert_allclose that also insists on identical shapes (NaN must match NaN)."""
    want = np.asarray(want, np.float32)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def erf(x):
    """erf of every element in float64, from the standard library (NumPy has no erf)."""
    x = np.asarray(x, np.float64)
    return np.array([math.erf(v) for v in x.flat]).reshape(x.shape)
