"""SqueezeExcite (the converter's fused squeeze-and-excitation block) through the engine, against
NumPy written here: its two launches, any rank from 3, batches, with and without biases."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.ops.activations import CODES
from tests.ops.conftest import assert_close

RNG = np.random.default_rng(41)


def reference(x, w1, b1, w2, b2):
    """Relu hidden layer, HardSigmoid(0.2, 0.5) gate, as PP-OCR's blocks."""
    x64 = x.astype(np.float64)
    means = x64.reshape(*x.shape[:2], -1).mean(axis=2)
    hidden = np.maximum(means @ w1.reshape(w1.shape[0], -1).T + b1, 0)
    gate = np.clip(0.2 * (hidden @ w2.reshape(w2.shape[0], -1).T + b2) + 0.5, 0, 1)
    return x64 * gate.reshape(*gate.shape, *(1,) * (x.ndim - 2))


@pytest.mark.parametrize("shape,hidden,biases", [
    ((1, 8, 48, 24), 2, True),  # PP-OCR cls's first block
    ((2, 37, 5, 11), 9, True),  # batch 2, odd sizes
    ((3, 20, 13), 4, False),  # a 1-D block (rank 3), no biases
    ((1, 300, 3, 3), 75, True),  # a first layer of 22500 weights, 3x3 planes
])
def test_squeeze_excite(run_node, shape, hidden, biases):
    channels, taps = shape[1], (1,) * (len(shape) - 2)
    x = RNG.standard_normal(shape).astype(np.float32)
    w1 = (RNG.standard_normal((hidden, channels, *taps)) * 0.3).astype(np.float32)
    w2 = (RNG.standard_normal((channels, hidden, *taps)) * 0.3).astype(np.float32)
    b1 = RNG.standard_normal(hidden).astype(np.float32) if biases else np.zeros(hidden)
    b2 = RNG.standard_normal(channels).astype(np.float32) if biases else np.zeros(channels)
    constants = {"w1": w1, "w2": w2, **({"b1": b1, "b2": b2} if biases else {})}
    attrs = {"hidden_activation": [CODES["Relu"], 0.0, 0.0],
             "gate_activation": [CODES["HardSigmoid"], 0.2, 0.5]}
    inputs = ["x", "w1", "b1" if biases else "", "w2", "b2" if biases else ""]
    (got,) = run_node("SqueezeExcite", {"x": x}, attrs, constants, inputs=inputs)
    assert_close(got, reference(x, w1, b1, w2, b2))
