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


UNIT = np.tanh(X) * 0.95  # inside the domains of Asin, Acos, Atanh and a reasonable Tan
INPUTS = {"Sqrt": POSITIVE, "Log": POSITIVE, "Acosh": POSITIVE + 1, "Asin": UNIT, "Acos": UNIT,
          "Atanh": UNIT, "Tan": UNIT}
ATTRS = {"LeakyRelu": {"alpha": 0.2}, "HardSigmoid": {"alpha": 0.3, "beta": 0.4},
         "Elu": {"alpha": 0.7}, "Swish": {"alpha": 1.3}, "Celu": {"alpha": 0.6},
         "ThresholdedRelu": {"alpha": 0.9}, "Shrink": {"lambd": 0.7, "bias": 0.2},
         "Selu": {"alpha": 1.5, "gamma": 1.1}}


@pytest.mark.parametrize("op", sorted(CODES))
def test_unary(run_node, op):
    x = INPUTS.get(op, X)
    attrs = ATTRS.get(op, {})
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
        "Erf": erf(x), "Gelu": 0.5 * x * (1 + erf(x / np.sqrt(2))), "Floor": np.floor(x),
        "Ceil": np.ceil(x), "Round": np.round(x), "Sign": np.sign(x), "Sin": np.sin(x),
        "Cos": np.cos(x), "Tan": np.tan(x), "Asin": np.arcsin(x), "Acos": np.arccos(x),
        "Atan": np.arctan(x), "Sinh": np.sinh(x), "Cosh": np.cosh(x), "Asinh": np.arcsinh(x),
        "Acosh": np.arccosh(x), "Atanh": np.arctanh(x),
        "Selu": 1.1 * np.where(x > 0, x, 1.5 * np.expm1(x.astype(np.float64))),
        "Celu": np.maximum(x, 0) + np.minimum(0, 0.6 * np.expm1(x.astype(np.float64) / 0.6)),
        "Mish": x * np.tanh(np.logaddexp(0, x.astype(np.float64))),
        "Softsign": x / (1 + np.abs(x)), "ThresholdedRelu": np.where(x > 0.9, x, 0),
        "Shrink": np.where(x < -0.7, x + 0.2, np.where(x > 0.7, x - 0.2, 0)),
    }


# ONNX's newer unary ops, each with its attributes' defaults: as ONNX Runtime runs them, alone
# and, for the activations, fused into the Conv before them
ONNX_UNARY = {"Floor": 6, "Ceil": 6, "Round": 11, "Sign": 9, "Sin": 7, "Cos": 7, "Atan": 7,
              "Sinh": 9, "Cosh": 9, "Asinh": 9, "Selu": 6, "Celu": 12, "Mish": 18,
              "Softsign": 1, "ThresholdedRelu": 10, "Shrink": 9}


@pytest.mark.parametrize("op", sorted(ONNX_UNARY))
def test_unary_as_onnxruntime(tmp_path, op):
    """op(x) + op(Conv(x)): on an input with halves and integers (Round's ties, Sign's zero),
    and after a 3x3 Conv, into which an activation fuses (the math ops stay standalone)."""
    from onnx import helper

    from tests.test_residual_fusion import same_as_onnxruntime, save, weights

    nodes = [helper.make_node(op, ["x"], ["a"]),
             helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node(op, ["c"], ["d"]),
             helper.make_node("Add", ["a", "d"], ["y"])]
    path = save(tmp_path, nodes, {"w": weights(3, 3, 3, 3), "b": weights(3)},
                [("x", [1, 3, 6, 7])], opset=max(13, ONNX_UNARY[op]))
    x = RNG.standard_normal((1, 3, 6, 7)).astype(np.float32) * 2
    x.flat[:12] = [0.5, -0.5, 1.5, -2.5, 0.0, 3.0, -1.0, 0.25, 2.0, 2.5, -1.5, 0.75]
    same_as_onnxruntime(path, {"x": x})


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
