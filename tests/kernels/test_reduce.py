"""reduce.cl: Sum, Mean, Max, Min, Prod over runs of axes, viewed as (outer, reduced, inner)."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close

OPS = {"sum": (0, np.sum), "mean": (1, np.mean), "max": (2, np.max), "min": (3, np.min),
       "prod": (4, np.prod)}


def _reduce(cl_env, x, op, first, last):
    """Reduces the adjacent axes first..last (inclusive); returns the keepdims=False result."""
    outer = int(np.prod(x.shape[:first]))
    size = int(np.prod(x.shape[first:last + 1]))
    inner = int(np.prod(x.shape[last + 1:]))
    out_shape = x.shape[:first] + x.shape[last + 1:]
    got = cl_env.run("reduce", f"-DOP={OPS[op][0]}", "reduce", (outer * inner,), [x],
                     [outer, size, inner])
    return got.reshape(out_shape)


def _input(op, shape, rng):
    if op == "prod":  # near 1, so long products neither vanish nor explode
        return rng.uniform(0.8, 1.25, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(
    "shape,first,last",
    [
        ((2, 3, 4, 5), 1, 2),
        ((2, 3, 4, 5), 0, 0),
        ((2, 3, 4, 5), 3, 3),
        ((2, 3, 4, 5), 0, 3),  # everything
        ((3, 1, 7), 1, 1),  # a size-1 axis
        ((5, 1000), 1, 1),  # long reduction
    ],
)
def test_reduce(cl_env, rng, op, shape, first, last):
    x = _input(op, shape, rng)
    got = _reduce(cl_env, x, op, first, last)
    want = OPS[op][1](x.astype(np.float64), axis=tuple(range(first, last + 1)))
    long = int(np.prod(shape[first:last + 1])) >= 1000
    assert_close(got, want, atol=1e-4 if long else 1e-5)


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_reduce_non_adjacent_axes_in_two_passes(cl_env, rng, op):
    """Axes (1, 3) of a 4-D tensor: reduce axis 3, then axis 1 of the result."""
    x = _input(op, (2, 3, 4, 5), rng)
    once = _reduce(cl_env, x, op, 3, 3)
    twice = _reduce(cl_env, once, op, 1, 1)
    assert_close(twice, OPS[op][1](x.astype(np.float64), axis=(1, 3)))


@pytest.mark.parametrize("op, pick", [(5, np.argmax), (6, np.argmin)])
@pytest.mark.parametrize("last", [False, True])
def test_arg_reduce_ties_and_nan(cl_env, op, pick, last):
    """The index of the extreme along the middle axis of (outer, size, inner), as a float:
    ties go to the first index (the last with -DSELECT_LAST), and a NaN wins at its first
    place, as in NumPy."""
    x = np.round(np.random.default_rng(4).standard_normal((3, 9, 4))).astype(np.float32)
    x[1, 5, 2] = x[1, 7, 2] = np.nan
    options = f"-DOP={op}" + (" -DSELECT_LAST" if last else "")
    got = cl_env.run("reduce", options, "arg_reduce", (12,), [x], [3, 9, 4]).reshape(3, 4)
    want = pick(x, axis=1) if not last else 8 - pick(x[:, ::-1], axis=1)
    want[1, 2] = 5  # the first NaN, either way
    np.testing.assert_array_equal(got, want.astype(np.float32))
