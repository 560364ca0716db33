"""Activations, math ops and PRelu against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.ops.activations import CODES, HARD_SWISH_AFFINE, apply
from tests.kernels.helpers import erf
from tests.ops.conftest import assert_close

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32) * 3
POSITIVE = np.abs(X) + 0.1


@pytest.mark.parametrize("op", sorted(CODES))
def test_unary(run_node, op):
    x = POSITIVE if op in ("Sqrt", "Log") else X
    attrs = {"LeakyRelu": {"alpha": 0.2}, "HardSigmoid": {"alpha": 0.3, "beta": 0.4},
             "Elu": {"alpha": 0.7}, "Swish": {"alpha": 1.3}}.get(op, {})
    constants = {"lo": np.float32(-1.5), "hi": np.float32(2.0)} if op == "Clip" else {}
    (got,) = run_node(op, {"x": x}, attrs, constants)
    with np.errstate(all="ignore"):
        reference = _references(x)
    assert_close(got, reference[op])


def _references(x):
    return {
        "Relu": np.maximum(x, 0), "LeakyRelu": np.where(x >= 0, x, 0.2 * x),
        "Clip": np.clip(x, -1.5, 2.0), "Sigmoid": 1 / (1 + np.exp(-x.astype(np.float64))),
        "Tanh": np.tanh(x), "HardSigmoid": np.clip(0.3 * x + 0.4, 0, 1),
        "HardSwish": x * np.clip(x / 6 + 0.5, 0, 1), "Softplus": np.log1p(np.exp(x.astype(np.float64))),
        "Elu": np.where(x >= 0, x, 0.7 * (np.exp(x.astype(np.float64)) - 1)), "Sqrt": np.sqrt(x),
        "Exp": np.exp(x.astype(np.float64)), "Log": np.log(x), "Abs": np.abs(x), "Neg": -x,
        "Reciprocal": 1 / x, "Swish": x / (1 + np.exp(-1.3 * x.astype(np.float64))),
        "Erf": erf(x), "Gelu": 0.5 * x * (1 + erf(x / np.sqrt(2))),
    }



def test_gelu_tanh_approximation(run_node):
    (got,) = run_node("Gelu", {"x": X}, {"approximate": "tanh"}, opset=20)
    x = X.astype(np.float64)
    assert_close(got, 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))))


def test_clip_before_opset_11_takes_attributes(run_node):
    (got,) = run_node("Clip", {"x": X}, {"min": -0.5, "max": 0.5}, opset=6)
    assert_close(got, np.clip(X, -0.5, 0.5))


def test_numpy_twin_matches_the_references():
    assert_close(apply(CODES["HardSwish"], X, 0, 0), X * np.minimum(np.maximum(X + 3, 0), 6) / 6)
    assert_close(apply(HARD_SWISH_AFFINE, X, 0.5, -2.0),
                 0.5 * X * np.minimum(np.maximum(X + 3, 0), 6) / 6 - 2.0)


@pytest.mark.parametrize("slope_shape", [(1,), (3, 1, 1), (5,), (4, 5), (1, 3, 1, 1)])
def test_prelu_broadcasts(run_node, slope_shape):
    slope = RNG.standard_normal(slope_shape).astype(np.float32)
    (got,) = run_node("PRelu", {"x": X}, constants={"slope": slope})
    assert_close(got, np.where(X < 0, X * slope, X))
