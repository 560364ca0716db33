"""Host-side helpers of the kernel tests: comparisons, and the stride arithmetic the op
families do before a launch (imported, so that the kernels are tested with the real thing)."""

from __future__ import annotations

import math

import numpy as np

from macecl.ops.elementwise import broadcast_strides  # noqa: F401
from macecl.ops.registry import contiguous_strides  # noqa: F401


def assert_close(got, want, rtol=1e-4, atol=1e-5):
    """assert_allclose that also insists on identical shapes (NaN must match NaN)."""
    want = np.asarray(want, np.float32)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def erf(x):
    """erf of every element in float64, from the standard library (NumPy has no erf)."""
    x = np.asarray(x, np.float64)
    return np.array([math.erf(v) for v in x.flat]).reshape(x.shape)
