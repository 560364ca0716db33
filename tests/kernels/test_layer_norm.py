"""layer_norm.cl against LayerNormalization written in NumPy (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close, at_most_widest


def layer_norm_ref(x, scale, bias, epsilon):
    x = x.astype(np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * scale + (0.0 if bias is None else bias)


@pytest.mark.parametrize(
    "rows,inner,with_bias,epsilon",
    [
        (40, 120, True, 1e-5),  # PP-OCR rec's SVTR neck
        (1, 1, True, 1e-5),  # one element: the output is the bias
        (67, 7, False, 1e-6),  # rows past any work-group multiple, an odd row
        (3, 1000, True, 1e-3),
        (130, 33, True, 1e-5),
    ],
)
@pytest.mark.parametrize("width", at_most_widest([4, 16]))  # vectors and a tail, or a tail alone
def test_layer_norm(cl_env, rng, rows, inner, with_bias, epsilon, width):
    # an offset and a spread per row: the mean and the variance both matter
    x = (rng.standard_normal((rows, inner)) * rng.uniform(0.5, 4, (rows, 1))
         + rng.uniform(-5, 5, (rows, 1))).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, inner).astype(np.float32)
    bias = rng.standard_normal(inner).astype(np.float32) if with_bias else None
    options = f"-DVW={width}" + (" -DHAS_BIAS" if with_bias else "")
    got = cl_env.run("layer_norm", options, "layer_norm", (rows, inner), [x, scale, bias],
                     [rows, inner, epsilon], work_items=rows)
    assert_close(got, layer_norm_ref(x, scale, bias, epsilon))
