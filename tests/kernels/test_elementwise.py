"""elementwise.cl against NumPy broadcasting."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close, broadcast_strides

OPS = {
    "add": (0, np.add),
    "sub": (1, np.subtract),
    "mul": (2, np.multiply),
    "div": (3, np.divide),
    "pow": (4, np.power),
    "max": (5, np.maximum),
    "min": (6, np.minimum),
    "prelu": (7, lambda a, b: np.where(a < 0, a * b, a)),
}

SHAPES = [
    ((3, 5), (3, 5)),
    ((2, 3, 4, 5), (5,)),  # trailing vector
    ((2, 1, 4, 1), (3, 1, 5)),  # both sides broadcast
    ((), (2, 3)),  # 0-d scalar operand
    ((1,), (2, 3, 1, 2, 3, 5)),  # 6-D against a one-element tensor
    ((2, 3, 1, 1, 5, 1), (1, 3, 4, 1, 1, 7)),  # 6-D, every dim broadcast by one side
    ((7, 1, 3), (7, 1, 3)),  # size-1 dim on both sides
]
# the mirror of each case catches a kernel that mixes up which strides belong to which input
SHAPES += [(b, a) for a, b in SHAPES if a != b]


def _operands(op, a_shape, b_shape, rng):
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    if op == "div":
        b = np.where(np.abs(b) < 0.25, 0.5, b).astype(np.float32)  # keep away from 0
    if op == "pow":
        a = (np.abs(a) + 0.1).astype(np.float32)  # a real power needs a positive base
        b = np.clip(b, -3, 3).astype(np.float32)
    return a, b


def _run_binary(cl_env, code, a, b):
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    rank = len(out_shape)
    strides = broadcast_strides(a.shape, out_shape) + broadcast_strides(b.shape, out_shape)
    meta = np.array(list(out_shape) + strides, np.int32)
    total = int(np.prod(out_shape))
    return cl_env.run(
        "elementwise", f"-DOP={code}", "binary", out_shape, [a, b], [meta, rank, total]
    )


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
def test_binary_broadcast(cl_env, rng, op, a_shape, b_shape):
    code, ref = OPS[op]
    a, b = _operands(op, a_shape, b_shape, rng)
    got = _run_binary(cl_env, code, a, b)
    assert_close(got, ref(a.astype(np.float64), b.astype(np.float64)))


@pytest.mark.parametrize("op", list(OPS))
def test_binary_flat(cl_env, rng, op):
    code, ref = OPS[op]
    a, b = _operands(op, (3, 37), (3, 37), rng)  # 111 elements: not a multiple of anything
    got = cl_env.run("elementwise", f"-DOP={code}", "binary_flat", a.shape, [a, b], [a.size])
    assert_close(got, ref(a.astype(np.float64), b.astype(np.float64)))


# (outer, middle, inner, skip middle, full shape, small shape): the small operand is one value
# per middle index (a row) or per (outer, inner) pair of the full one; odd sizes leave tails
SPLITS = [
    (1, 3, 37, False, (3, 37), (3, 1)),
    (1, 1, 111, False, (3, 37), (1, 1)),  # a scalar: one middle of one
    (1, 6, 35, True, (6, 5, 7), (5, 7)),  # per column
    (1, 70, 1, False, (70, 1), (70, 1)),
    (2, 3, 20, True, (2, 3, 4, 5), (2, 1, 4, 5)),  # an attention mask: skips the heads
    (2, 3, 20, False, (2, 3, 4, 5), (3, 1, 1)),  # per channel, batch 2
]


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("small_first", [False, True])
@pytest.mark.parametrize("outer, middle, inner, skip_middle, full, small", SPLITS)
def test_binary_3d(cl_env, rng, op, small_first, outer, middle, inner, skip_middle, full,
                   small):
    code, ref = OPS[op]
    a, b = _operands(op, small if small_first else full, full if small_first else small, rng)
    options = f"-DOP={code}" + (" -DA_SMALL" if small_first else "") + (
        " -DSKIP_MIDDLE" if skip_middle else "")
    got = cl_env.run("elementwise", options, "binary_3d", full, [a, b], [inner, middle, outer],
                     work_items=(inner, middle, outer))
    assert_close(got, ref(a.astype(np.float64), b.astype(np.float64)))


def test_pow_negative_base_integral_exponent(cl_env):
    a = np.array([-2.0, -1.5, -3.0, 2.0, -0.5, 0.0], np.float32)
    b = np.array([2.0, 3.0, -1.0, 0.5, 4.0, 2.0], np.float32)
    got = cl_env.run("elementwise", "-DOP=4", "binary_flat", a.shape, [a, b], [a.size])
    assert_close(got, np.power(a.astype(np.float64), b))
