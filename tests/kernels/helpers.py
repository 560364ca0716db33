"""Host-side helpers of the kernel tests: comparisons and the stride arithmetic callers do."""

from __future__ import annotations

import numpy as np


def assert_close(got, want, rtol=1e-4, atol=1e-5):
    """assert_allclose that also insists on identical shapes (NaN must match NaN)."""
    want = np.asarray(want, np.float32)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def contiguous_strides(shape) -> list[int]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return strides[::-1]


def broadcast_strides(shape, out_shape) -> list[int]:
    """Element strides of a contiguous ``shape`` aligned right against ``out_shape``, 0 on every
    dim it broadcasts along (missing or of size 1)."""
    padded = [1] * (len(out_shape) - len(shape)) + list(shape)
    strides = contiguous_strides(padded)
    return [0 if dim == 1 and o != 1 else s for dim, o, s in zip(padded, out_shape, strides)]
