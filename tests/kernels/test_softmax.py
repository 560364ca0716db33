"""softmax.cl: Softmax and LogSoftmax along any axis, as (outer, axis, inner)."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import WIDTHS, assert_close


def _ref(x, axis, log):
    x = x.astype(np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted - log_sum if log else np.exp(shifted - log_sum)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize(
    "shape,axis",
    [((2, 3, 4, 5), 1), ((2, 3, 4, 5), 3), ((2, 3, 4, 5), 0), ((7,), 0), ((3, 1, 2), 1),
     ((1, 1000), 1)],
)
def test_softmax(cl_env, rng, log, shape, axis):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x.flat[0] = 100.0  # exp(100) overflows float32: the max shift must be there
    outer = int(np.prod(shape[:axis]))
    inner = int(np.prod(shape[axis + 1:]))
    options = "-DLOG" if log else ""
    got = cl_env.run("softmax", options, "softmax", shape, [x], [outer, shape[axis], inner],
                     work_items=outer * inner)
    assert_close(got, _ref(x, axis, log))


def test_softmax_large_and_equal_logits(cl_env):
    x = np.array([[1000.0, 1000.0, -1000.0], [-50.0, -50.0, -50.0]], np.float32)
    got = cl_env.run("softmax", "", "softmax", x.shape, [x], [2, 3, 1], work_items=2)
    assert_close(got, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    got = cl_env.run("softmax", "-DLOG", "softmax", x.shape, [x], [2, 3, 1], work_items=2)
    assert_close(got, [[np.log(0.5), np.log(0.5), -2000.0 + np.log(0.5)], [-np.log(3)] * 3])


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("vw", WIDTHS)
@pytest.mark.parametrize("outer, size", [(5, 3), (3, 16), (4, 37), (2, 1000), (3, 6625)])
def test_softmax_rows(cl_env, rng, log, vw, outer, size):
    """The last-axis kernel: vector passes over whole vectors, then a scalar tail."""
    x = (rng.standard_normal((outer, size)) * 3).astype(np.float32)
    x[0, -1] = 100.0  # the max in the tail: the shift must see it
    x[-1, 0] = -1000.0
    options = f"-DVW={vw}" + (" -DLOG" if log else "")
    got = cl_env.run("softmax", options, "softmax_rows", x.shape, [x], [outer, size],
                     work_items=outer)
    assert_close(got, _ref(x, 1, log))
