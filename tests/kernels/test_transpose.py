"""transpose.cl against np.transpose."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close, at_most_widest, contiguous_strides


@pytest.mark.parametrize(
    "shape,perm",
    [
        ((3, 5), (1, 0)),
        ((2, 3, 4), (2, 0, 1)),
        ((2, 3, 4, 5), (0, 2, 3, 1)),  # NCHW -> NHWC
        ((2, 5, 4, 3), (0, 3, 1, 2)),  # NHWC -> NCHW
        ((2, 3, 1, 4, 5, 3), (5, 3, 0, 2, 4, 1)),
        ((1, 2, 1, 3, 1, 2), (2, 4, 0, 5, 1, 3)),  # size-1 dims moving around
        ((2, 3, 4), (0, 1, 2)),  # identity
        ((9,), (0,)),
        ((2, 9, 3), (2, 0, 1)),  # rows of 9: two whole vectors and a tail, 3 apart
        ((4, 6, 5), (0, 2, 1)),  # rows of 6, 5 apart
    ],
)
def test_transpose(cl_env, rng, shape, perm):
    x = rng.standard_normal(shape).astype(np.float32)
    in_strides = contiguous_strides(shape)
    out_shape = tuple(shape[p] for p in perm)
    meta = np.array(list(out_shape[:-1]) + [in_strides[p] for p in perm[:-1]] + [0], np.int32)
    inner, rows = out_shape[-1], x.size // out_shape[-1]
    got = cl_env.run("transpose", "-DVW=4", "transpose", out_shape, [x],
                     [meta, len(shape) - 1, inner, in_strides[perm[-1]], rows],
                     work_items=(-(-inner // 4), rows))
    np.testing.assert_array_equal(got, np.transpose(x, perm))


@pytest.mark.parametrize(
    "shape,perm",
    [
        ((4, 28, 37), (1, 0, 2)),  # a channel shuffle: whole rows move
        ((2, 3, 5, 7), (2, 0, 1, 3)),
        ((3, 1), (0, 1)),  # rows of one element
        ((5, 2, 3, 11), (1, 2, 0, 3)),
    ],
)
def test_transpose_rows(cl_env, rng, shape, perm):
    """The last axis stays last: meta covers the axes before it, rows are copied whole."""
    x = rng.standard_normal(shape).astype(np.float32)
    in_strides = contiguous_strides(shape)
    lead = perm[:-1]
    meta = np.array([shape[p] for p in lead] + [in_strides[p] for p in lead], np.int32)
    inner, rows = shape[-1], x.size // shape[-1]
    out_shape = tuple(shape[p] for p in perm)
    for vw in at_most_widest([4, 16]):  # whole vectors and a row's tail, or a row shorter than one vector
        got = cl_env.run("transpose", f"-DVW={vw}", "transpose_rows", out_shape, [x],
                         [meta, len(lead), inner, rows], work_items=(-(-inner // vw), rows))
        assert_close(got, np.transpose(x, perm))


@pytest.mark.parametrize("shape", [(2, 32, 48), (1, 40, 37), (3, 5, 70), (1, 16, 16), (2, 3, 2)])
@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
def test_transpose_tiles(cl_env, rng, shape, vw):
    """(B, X, Y) -> (B, Y, X) by VW x VW tiles: whole ones, and tiles crossing X, Y or both."""
    x = rng.standard_normal(shape).astype(np.float32)
    batches, rows, columns = shape
    got = cl_env.run("transpose", f"-DVW={vw}", "transpose_tiles", (batches, columns, rows), [x],
                     [rows, columns, batches],
                     work_items=(-(-columns // vw), -(-rows // vw), batches))
    assert_close(got, np.transpose(x, (0, 2, 1)))
