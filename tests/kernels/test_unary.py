"""unary.cl: math ops, activations and PRelu against NumPy (float64 references)."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close, erf


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warning for large |x|


def _softplus(x):
    return np.logaddexp(0.0, x)



# name: (OP code, a, b, reference(x, a, b), input domain)
OPS = {
    "identity": (0, 0.0, 0.0, lambda x, a, b: x, "any"),
    "relu": (1, 0.0, 0.0, lambda x, a, b: np.maximum(x, 0), "any"),
    "leaky_relu": (2, 0.13, 0.0, lambda x, a, b: np.where(x >= 0, x, a * x), "any"),
    "clip": (3, -0.7, 1.2, lambda x, a, b: np.clip(x, a, b), "any"),
    "relu6": (3, 0.0, 6.0, lambda x, a, b: np.clip(x, a, b), "wide"),
    "sigmoid": (4, 0.0, 0.0, lambda x, a, b: _sigmoid(x), "wide"),
    "tanh": (5, 0.0, 0.0, lambda x, a, b: np.tanh(x), "wide"),
    "hard_sigmoid": (6, 0.3, 0.45, lambda x, a, b: np.clip(a * x + b, 0, 1), "wide"),
    "hard_swish": (7, 0.0, 0.0, lambda x, a, b: x * np.clip(x / 6 + 0.5, 0, 1), "wide"),
    "softplus": (8, 0.0, 0.0, lambda x, a, b: _softplus(x), "wide"),
    "elu": (9, 0.8, 0.0, lambda x, a, b: np.where(x >= 0, x, a * np.expm1(x)), "any"),
    "sqrt": (10, 0.0, 0.0, lambda x, a, b: np.sqrt(x), "positive"),
    "exp": (11, 0.0, 0.0, lambda x, a, b: np.exp(x), "any"),
    "log": (12, 0.0, 0.0, lambda x, a, b: np.log(x), "positive"),
    "abs": (13, 0.0, 0.0, lambda x, a, b: np.abs(x), "any"),
    "neg": (14, 0.0, 0.0, lambda x, a, b: -x, "any"),
    "reciprocal": (15, 0.0, 0.0, lambda x, a, b: 1.0 / x, "nonzero"),
    "swish": (16, 1.7, 0.0, lambda x, a, b: x * _sigmoid(a * x), "wide"),
    "silu": (16, 1.0, 0.0, lambda x, a, b: x * _sigmoid(x), "wide"),
    "hard_swish_affine": (17, -0.6, 0.35,
                          lambda x, a, b: a * x * np.clip(x / 6 + 0.5, 0, 1) + b, "wide"),
    "erf": (18, 0.0, 0.0, lambda x, a, b: erf(x), "wide"),
    "gelu": (19, 0.0, 0.0, lambda x, a, b: 0.5 * x * (1 + erf(x / np.sqrt(2))), "wide"),
    "gelu_tanh": (20, 0.0, 0.0,
                  lambda x, a, b: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
                  "wide"),
    "floor": (21, 0.0, 0.0, lambda x, a, b: np.floor(x), "halves"),
    "ceil": (22, 0.0, 0.0, lambda x, a, b: np.ceil(x), "halves"),
    "round": (23, 0.0, 0.0, lambda x, a, b: np.round(x), "halves"),
    "sign": (24, 0.0, 0.0, lambda x, a, b: np.sign(x), "halves"),
    "sin": (25, 0.0, 0.0, lambda x, a, b: np.sin(x), "any"),
    "cos": (26, 0.0, 0.0, lambda x, a, b: np.cos(x), "any"),
    "tan": (27, 0.0, 0.0, lambda x, a, b: np.tan(x), "unit"),
    "asin": (28, 0.0, 0.0, lambda x, a, b: np.arcsin(x), "unit"),
    "acos": (29, 0.0, 0.0, lambda x, a, b: np.arccos(x), "unit"),
    "atan": (30, 0.0, 0.0, lambda x, a, b: np.arctan(x), "wide"),
    "sinh": (31, 0.0, 0.0, lambda x, a, b: np.sinh(x), "any"),
    "cosh": (32, 0.0, 0.0, lambda x, a, b: np.cosh(x), "any"),
    "asinh": (33, 0.0, 0.0, lambda x, a, b: np.arcsinh(x), "wide"),
    "acosh": (34, 0.0, 0.0, lambda x, a, b: np.arccosh(x), "above_one"),
    "atanh": (35, 0.0, 0.0, lambda x, a, b: np.arctanh(x), "unit"),
    "selu": (36, 1.6732632, 1.0507010, lambda x, a, b: b * np.where(x > 0, x, a * np.expm1(x)),
             "wide"),
    "celu": (37, 0.6, 0.0, lambda x, a, b: np.maximum(x, 0) + np.minimum(0, a * np.expm1(x / a)),
             "wide"),
    "mish": (38, 0.0, 0.0, lambda x, a, b: x * np.tanh(_softplus(x)), "wide"),
    "softsign": (39, 0.0, 0.0, lambda x, a, b: x / (1 + np.abs(x)), "wide"),
    "thresholded_relu": (40, 0.9, 0.0, lambda x, a, b: np.where(x > a, x, 0), "halves"),
    "shrink": (41, 0.5, 0.25,
               lambda x, a, b: np.where(x < -a, x + b, np.where(x > a, x - b, 0)), "halves"),
}


def _input(domain, shape, rng):
    x = rng.standard_normal(shape) * 2.0
    if domain == "wide":
        # large magnitudes check the overflow-safe formulations, and the clip/knee points of
        # the piecewise functions appear exactly
        x.flat[:8] = [-100.0, -30.0, 0.0, 3.0, -3.0, 6.0, 30.0, 100.0][: x.size]
    elif domain == "positive":
        x = np.abs(x) + 1e-3
    elif domain == "nonzero":
        x = np.where(np.abs(x) < 0.1, 0.3, x)
    elif domain == "halves":
        # integers and halves (rounding's ties, the bounds of the thresholds) among the rest
        x.flat[: x.size // 2] = np.round(x.flat[: x.size // 2] * 2) / 2
        x.flat[:6] = [2.5, -2.5, 0.5, -0.5, 0.9, -0.0][: x.size]
    elif domain == "unit":
        x = np.tanh(x) * 0.95
    elif domain == "above_one":
        x = np.abs(x) + 1.0
    return x.astype(np.float32)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("shape", [(7,), (2, 3, 5, 7), (1, 1, 1)])
def test_unary(cl_env, rng, op, shape):
    code, a, b, ref, domain = OPS[op]
    x = _input(domain, shape, rng)
    got = cl_env.run("unary", f"-DOP={code}", "unary", shape, [x], [x.size, a, b])
    assert_close(got, ref(x.astype(np.float64), a, b))


@pytest.mark.parametrize(
    "shape,slope_shape,inner",
    [
        ((2, 3, 4, 5), (3,), 20),  # per channel of NCHW
        ((2, 3, 4, 5), (1,), 20),  # one shared slope
        ((5, 6), (6,), 1),  # (N, C) after a fully connected layer
        ((1, 7, 3, 1), (7,), 3),
    ],
)
def test_prelu(cl_env, rng, shape, slope_shape, inner):
    x = rng.standard_normal(shape).astype(np.float32)
    slope = rng.uniform(-0.5, 0.5, slope_shape).astype(np.float32)
    channels = slope.size
    got = cl_env.run("unary", "", "prelu", shape, [x, slope], [x.size, channels, inner])
    per_channel = slope.reshape((channels,) + (1,) * (len(shape) - 2)) if channels > 1 else slope
    want = np.where(x < 0, x * per_channel, x)
    assert_close(got, want)
