"""lrn.cl against ONNX's LRN definition, written as a loop over channels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from .helpers import assert_close, at_most_widest


def lrn_ref(x, size, alpha, beta, bias):
    x = x.astype(np.float64)
    c = x.shape[1]
    square_sum = np.zeros_like(x)
    for ch in range(c):
        lo = max(0, ch - math.floor((size - 1) / 2))
        hi = min(c - 1, ch + math.ceil((size - 1) / 2))
        square_sum[:, ch] = (x[:, lo:hi + 1] ** 2).sum(axis=1)
    return x / (bias + alpha / size * square_sum) ** beta


@pytest.mark.parametrize(
    "shape,size,alpha,beta,bias",
    [
        ((2, 7, 3, 4), 5, 1e-4, 0.75, 1.0),  # ONNX defaults, AlexNet's size
        ((1, 7, 3, 4), 3, 0.5, 0.75, 1.0),  # large alpha: the normalization is visible
        ((1, 6, 2, 5), 4, 0.9, 0.6, 2.0),  # even size: window leans forward
        ((2, 3, 1, 1), 1, 1.0, 1.0, 0.5),
        ((1, 2, 3, 3), 7, 2.0, 0.5, 1.0),  # window wider than the channels
        ((2, 9, 5, 7), 5, 0.6, 0.75, 1.0),  # 35 pixels: whole vectors and a stepped-back one
    ],
)
@pytest.mark.parametrize("kernel,vw", at_most_widest([("lrn", 4), ("lrn_pixels", 4), ("lrn_pixels", 16)], at=1))
def test_lrn(cl_env, rng, shape, size, alpha, beta, bias, kernel, vw):
    """One float a work item (lrn), and pixel vectors through every channel (lrn_pixels):
    planes smaller than a vector (lane by lane), and larger ones whose last vector steps
    back over its neighbour's pixels."""
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    pixels = shape[2] * shape[3]
    items = x.size if kernel == "lrn" else (-(-pixels // vw), shape[0])
    got = cl_env.run("lrn", f"-DVW={vw}", kernel, shape, [x], [*shape, size, alpha, beta, bias],
                     work_items=items)
    want = lrn_ref(x, size, alpha, beta, bias)
    if alpha >= 0.5:
        assert not np.allclose(want, x, rtol=1e-2)  # the op must do more than copy
    assert_close(got, want)
