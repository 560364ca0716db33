"""Activations and single-input math: the ``unary`` program, and fused activations.

One numbering (the UNARY_* codes of ``kernels/cl/common.h``) serves both the standalone
``unary`` kernel and the activation fused into a convolution or Gemm, so the two compute
the same function. ``activation_of`` turns a node into (code, a, b), the fused form.
"""

from __future__ import annotations

import math

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.registry import evaluation, lowering

CODES = {"Relu": 1, "LeakyRelu": 2, "Clip": 3, "Sigmoid": 4, "Tanh": 5, "HardSigmoid": 6,
         "HardSwish": 7, "Softplus": 8, "Elu": 9, "Sqrt": 10, "Exp": 11, "Log": 12, "Abs": 13,
         "Neg": 14, "Reciprocal": 15, "Swish": 16, "Erf": 18, "Gelu": 19, "Floor": 21,
         "Ceil": 22, "Round": 23, "Sign": 24, "Sin": 25, "Cos": 26, "Tan": 27, "Asin": 28,
         "Acos": 29, "Atan": 30, "Sinh": 31, "Cosh": 32, "Asinh": 33, "Acosh": 34, "Atanh": 35,
         "Selu": 36, "Celu": 37, "Mish": 38, "Softsign": 39, "ThresholdedRelu": 40,
         "Shrink": 41}
# Gelu with approximate="tanh"
GELU_TANH = 20
# Activations the converter may fuse into the op before them (math ops stay standalone).
FUSABLE = {"Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish",
           "Softplus", "Elu", "Swish", "Gelu", "Selu", "Celu", "Mish", "Softsign",
           "ThresholdedRelu"}
# Ops whose kernels apply a fused activation (the node's "activation" attribute).
FUSE_INTO = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
# a * HardSwish(x) + b: no ONNX op has this code; the converter writes it into a fused
# activation (converter/activation_affine.py).
HARD_SWISH_AFFINE = 17


def clip_bounds(node: Node, bounds: list[np.ndarray | None]) -> tuple[float, float]:
    """Clip's min and max: attributes before opset 11, optional inputs from 11 on."""
    low = node.attrs.get("min", -np.inf)
    high = node.attrs.get("max", np.inf)
    if len(bounds) > 0 and bounds[0] is not None:
        low = float(np.asarray(bounds[0]).reshape(()))
    if len(bounds) > 1 and bounds[1] is not None:
        high = float(np.asarray(bounds[1]).reshape(()))
    return float(low), float(high)


def activation_of(node: Node, extra: list[np.ndarray | None] = ()) -> tuple[int, float, float]:
    """(UNARY code, a, b) of a unary node; ``extra``: its inputs after the first (Clip's bounds)."""
    op, attrs = node.op, node.attrs
    if op == "LeakyRelu":
        return CODES[op], float(attrs.get("alpha", 0.01)), 0.0
    if op == "Clip":
        return (CODES[op], *clip_bounds(node, list(extra)))
    if op == "HardSigmoid":
        return CODES[op], float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    if op in ("Elu", "Swish", "Celu", "ThresholdedRelu"):
        return CODES[op], float(attrs.get("alpha", 1.0)), 0.0
    if op == "Selu":
        return (CODES[op], float(attrs.get("alpha", 1.67326319217681884765625)),
                float(attrs.get("gamma", 1.05070102214813232421875)))
    if op == "Shrink":
        return CODES[op], float(attrs.get("lambd", 0.5)), float(attrs.get("bias", 0.0))
    if op == "Gelu" and attrs.get("approximate", "none") == "tanh":
        return GELU_TANH, 0.0, 0.0
    return CODES[op], 0.0, 0.0


def constant_activation(node: Node, constants: dict[str, np.ndarray]
                        ) -> tuple[int, float, float] | None:
    """``activation_of(node)`` where its inputs after the first (Clip's bounds) are all
    ``constants``; None where one is computed at run time, as no kernel can fuse that."""
    bounds = [constants.get(name) if name else None for name in node.inputs[1:]]
    if any(b is None for b, name in zip(bounds, node.inputs[1:]) if name):
        return None
    return activation_of(node, bounds)


# codes 21-35: one NumPy function each (np.round rounds halves to even, as ONNX Round)
UFUNCS = dict(zip(range(21, 36), (np.floor, np.ceil, np.round, np.sign, np.sin, np.cos, np.tan,
                                   np.arcsin, np.arccos, np.arctan, np.sinh, np.cosh,
                                   np.arcsinh, np.arccosh, np.arctanh)))


def apply(code: int, x: np.ndarray, a: float, b: float) -> np.ndarray:
    """NumPy twin of ``unary_op`` in common.h (constant folding, and the tests' reference)."""
    with np.errstate(all="ignore"):
        match code:
            case 0: return x
            case 1: return np.maximum(x, 0)
            case 2: return np.where(x >= 0, x, a * x)
            case 3: return np.minimum(np.maximum(x, a), b)
            case 4: return 1 / (1 + np.exp(-x))
            case 5: return np.tanh(x)
            case 6: return np.clip(a * x + b, 0, 1)
            case 7: return x * np.clip(x / 6 + 0.5, 0, 1)
            case 8: return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
            case 9: return np.where(x >= 0, x, a * np.expm1(x))
            case 10: return np.sqrt(x)
            case 11: return np.exp(x)
            case 12: return np.log(x)
            case 13: return np.abs(x)
            case 14: return -x
            case 15: return 1 / x
            case 16: return x / (1 + np.exp(-a * x))
            case 17: return a * (x * np.clip(x / 6 + 0.5, 0, 1)) + b
            case 18: return _erf(x)
            case 19: return 0.5 * x * (1 + _erf(x / np.sqrt(2)))
            case 20: return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
            case code if code in UFUNCS: return UFUNCS[code](x)
            case 36: return b * np.where(x > 0, x, a * np.expm1(x))
            case 37: return np.maximum(x, 0) + np.minimum(0, a * np.expm1(x / a))
            case 38: return x * np.tanh(np.logaddexp(0, x))
            case 39: return x / (1 + np.abs(x))
            case 40: return np.where(x > a, x, 0)
            case 41: return np.where(x < -a, x + b, np.where(x > a, x - b, 0))
    raise ValueError(f"unknown activation code {code}")


def _erf(x: np.ndarray) -> np.ndarray:
    """erf of every element, in float64 (NumPy has no erf ufunc; constant folding and the
    tests' references are all this serves, on small arrays)."""
    values = np.asarray(x, dtype=np.float64)
    return np.vectorize(math.erf, otypes=[np.float64])(values) if values.size else values


def fused(node: Node) -> tuple[list[str], np.float32, np.float32]:
    """Build options and the two float arguments of the activation fused into ``node``."""
    code, a, b = node.attrs.get("activation", (0, 0.0, 0.0))
    options = [f"-DACTIVATION={int(code)}"] if code else []
    return options, np.float32(a), np.float32(b)


@evaluation(*CODES)
def _evaluate(node: Node, arrays: list) -> list[np.ndarray]:
    x = arrays[0]
    code, a, b = activation_of(node, arrays[1:])
    result = apply(code, x, a, b)
    return [np.asarray(result, dtype=x.dtype) if x.dtype.kind == "f" else np.asarray(result)]


@lowering(*CODES)
def _lower(node: Node, inputs: list, builder) -> list:
    x = inputs[0]
    extra = [builder.host(v, f"input {i + 1}") if v is not None else None
             for i, v in enumerate(inputs[1:])]
    return [lower_unary(builder, *activation_of(node, extra), x)]


def lower_unary(builder, code: int, a: float, b: float, x):
    """One ``unary`` launch of UNARY code ``code`` (parameters a, b) over x; the output."""
    out = builder.new(x.shape)
    builder.launch("unary", "unary", [x, out, np.int32(x.size), np.float32(a), np.float32(b)],
                   x.size, options=[f"-DOP={code}"])
    return out


@evaluation("PRelu")
def _evaluate_prelu(node: Node, arrays: list) -> list[np.ndarray]:
    x, slope = arrays
    return [np.where(x < 0, x * slope, x).astype(x.dtype)]


@lowering("PRelu")
def _lower_prelu(node: Node, inputs: list, builder) -> list:
    from macecl.ops.elementwise import lower_binary

    x, slope = inputs
    try:
        shape = np.broadcast_shapes(x.shape, slope.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise builder.fail(f"slope {list(slope.shape)} does not broadcast to the input "
                           f"{list(x.shape)}")
    # A slope that varies along axis 1 at most (per channel, or one for all): the cheap kernel.
    padded = (1,) * (x.rank - slope.rank) + slope.shape
    if all(d == 1 for axis, d in enumerate(padded) if axis != 1):
        channels = padded[1] if x.rank > 1 else 1
        inner = int(np.prod(x.shape[2:], dtype=np.int64))
        out = builder.new(x.shape)
        builder.launch("unary", "prelu",
                       [x, slope, out, np.int32(x.size), np.int32(channels), np.int32(inner)],
                       x.size)
        return [out]
    return [lower_binary(builder, 7, x, slope)]
