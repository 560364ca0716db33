"""MaxPool, AveragePool and the global pools against NumPy (and onnxruntime where installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from macecl.graph.ir import Node
from macecl.ops.registry import unsupported_reason
from tests.ops.conftest import assert_close
from tests.ops.test_conv import run_onnxruntime

RNG = np.random.default_rng(5)


def pool_reference(x, op, kernel, strides, pads, dilations=(1, 1), ceil_mode=False,
                   count_include_pad=False):
    """Window by window over a (N, C, H, W) input; ``pads`` is (top, left, bottom, right)."""
    n, c, h, w = x.shape
    top, left, bottom, right = pads

    def size(length, k, s, d, begin, end):
        span = (length + begin + end - d * (k - 1) - 1) / s
        out = (math.ceil(span) if ceil_mode else math.floor(span)) + 1
        if ceil_mode and (out - 1) * s >= length + begin:  # a window starting in the end pad
            out -= 1
        return out

    oh = size(h, kernel[0], strides[0], dilations[0], top, bottom)
    ow = size(w, kernel[1], strides[1], dilations[1], left, right)
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        rows = [i * strides[0] - top + k * dilations[0] for k in range(kernel[0])]
        for j in range(ow):
            cols = [j * strides[1] - left + k * dilations[1] for k in range(kernel[1])]
            inside = [(r, q) for r in rows for q in cols if 0 <= r < h and 0 <= q < w]
            values = np.array([x[:, :, r, q] for r, q in inside], dtype=np.float64)
            if op == "MaxPool":
                out[:, :, i, j] = values.max(axis=0) if inside else -np.inf
                continue
            if count_include_pad:
                count = (sum(-top <= r < h + bottom for r in rows)
                         * sum(-left <= q < w + right for q in cols))
            else:
                count = len(inside)
            out[:, :, i, j] = values.sum(axis=0) / count
    return out


def lifted(attrs):
    """The pool_reference arguments of 2-D ONNX attributes with explicit pads."""
    pads = attrs.get("pads", [0, 0, 0, 0])
    return dict(kernel=attrs["kernel_shape"], strides=attrs.get("strides", [1, 1]),
                pads=(pads[0], pads[1], pads[2], pads[3]),
                dilations=attrs.get("dilations", [1, 1]),
                ceil_mode=bool(attrs.get("ceil_mode", 0)),
                count_include_pad=bool(attrs.get("count_include_pad", 0)))


KINDS = [("MaxPool", 0), ("AveragePool", 0), ("AveragePool", 1)]  # (op, count_include_pad)
X = RNG.standard_normal((2, 3, 7, 8)).astype(np.float32)

CASES = {
    "k2s2": {"kernel_shape": [2, 2], "strides": [2, 2]},
    "k3s1_pad": {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
    "asym_pads": {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [0, 1, 2, 0]},
    "ceil": {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    "ceil_pads": {"kernel_shape": [2, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                  "ceil_mode": 1},
    # ceil would add a window that starts in the bottom pad: dropped
    "ceil_drops_window": {"kernel_shape": [2, 3], "strides": [2, 3], "pads": [1, 0, 1, 2],
                          "ceil_mode": 1},
    "dilated": {"kernel_shape": [2, 3], "dilations": [2, 2], "pads": [1, 0, 1, 0]},
}


@pytest.mark.parametrize("op, count_include_pad", KINDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_pool(run_node, case, op, count_include_pad):
    attrs = dict(CASES[case])
    if op == "AveragePool":
        attrs["count_include_pad"] = count_include_pad
    (got,) = run_node(op, {"x": X}, attrs)
    assert_close(got, pool_reference(X, op, **lifted(attrs)))


WIDE = RNG.standard_normal((2, 5, 29, 45)).astype(np.float32)  # rows wider than two vectors
ROWS_CASES = {  # pool_rows on a CPU (dilation 1, horizontal stride 1 or 2, at most 7 taps)
    "k3s2_pad": {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    "k3s1_pad": {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
    "k7s3x1": {"kernel_shape": [7, 5], "strides": [3, 1], "pads": [3, 2, 1, 0]},
    "ceil_pads": {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [0, 1, 1, 1],
                  "ceil_mode": 1},
    "band_of_4": {"kernel_shape": [7, 3], "strides": [7, 2]},  # 4 output rows
    "whole_plane": {"kernel_shape": [7, 7]},  # on a 7x7 crop: ShuffleNet's last, a global pool
}


@pytest.mark.parametrize("op, count_include_pad", KINDS)
@pytest.mark.parametrize("case", sorted(ROWS_CASES))
def test_pool_over_wide_rows(run_node, case, op, count_include_pad):
    """Whole-vector loads inside the rows, the lane selects at their edges, bands of 8 and
    of 4 rows and the average's divisor per lane; a window over the whole plane."""
    attrs = dict(ROWS_CASES[case])
    if op == "AveragePool":
        attrs["count_include_pad"] = count_include_pad
    x = WIDE[:, :, :7, :7] if case == "whole_plane" else WIDE
    (got,) = run_node(op, {"x": x}, attrs)
    assert_close(got, pool_reference(x, op, **lifted(attrs)))


NAN_CASES = {  # where the NaN lies: a block at a row's edge; a block inside a wide row
    "edge": (WIDE, (0, 1, 11, 21), {"pads": [1, 1, 1, 1]}),
    "inside": (RNG.standard_normal((1, 2, 9, 111)).astype(np.float32), (0, 1, 4, 40), {}),
}


@pytest.mark.parametrize("case", sorted(NAN_CASES))
def test_max_pool_nan_wins(run_node, case):
    """A NaN in a window makes its maximum NaN, wherever it lies in the window (as
    onnxruntime and ReduceMax); windows without it are unaffected. pool_rows finds it by the
    sum of a block's inputs and pools that block again, NaN-aware."""
    x, at, pads = NAN_CASES[case]
    x = x.copy()
    x[at] = np.nan  # an odd row and column: in two windows each way
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], **pads}
    (got,) = run_node("MaxPool", {"x": x}, attrs)
    want = pool_reference(np.nan_to_num(x, nan=np.inf), "MaxPool", **lifted(attrs))
    want[np.isinf(want) & (want > 0)] = np.nan
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).sum() == 4
    assert_close(np.nan_to_num(got), np.nan_to_num(want))


def test_max_pool_infinities_are_not_nan(run_node):
    """+inf and -inf in one block make its input sum NaN, which sends pool_rows to its
    NaN-aware pass: the maxima there are still +inf where a window holds it, never NaN."""
    x = RNG.standard_normal((1, 1, 9, 111)).astype(np.float32)
    x[0, 0, 4, 40] = np.inf  # an even row and column: in two windows each way
    x[0, 0, 6, 44] = -np.inf
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2]}
    (got,) = run_node("MaxPool", {"x": x}, attrs)
    want = pool_reference(x, "MaxPool", **lifted(attrs))
    assert not np.isnan(got).any()
    np.testing.assert_array_equal(got, want)
    assert np.isposinf(got).sum() == 4


@pytest.mark.parametrize("op, count_include_pad", KINDS)
@pytest.mark.parametrize("case", ["ceil_pads", "ceil_drops_window", "asym_pads", "dilated"])
def test_pool_matches_onnxruntime(run_node, case, op, count_include_pad):
    attrs = dict(CASES[case])
    if op == "AveragePool":
        attrs["count_include_pad"] = count_include_pad
    (got,) = run_node(op, {"x": X}, attrs)
    assert_close(got, run_onnxruntime(op, {"x": X}, {}, attrs, opset=19))


@pytest.mark.parametrize("op, count_include_pad", KINDS)
@pytest.mark.parametrize("auto_pad, kernel, strides, pads", [
    # H 7, W 8: SAME_UPPER k3 s2 -> out (4, 4), totals (2, 1) -> pads (1, 0 | 1, 1)
    ("SAME_UPPER", [3, 3], [2, 2], (1, 0, 1, 1)),
    ("SAME_LOWER", [3, 3], [2, 2], (1, 1, 1, 0)),
    # k4 s1: totals (3, 3) -> upper (1, 1 | 2, 2), lower (2, 2 | 1, 1)
    ("SAME_UPPER", [4, 4], [1, 1], (1, 1, 2, 2)),
    ("SAME_LOWER", [4, 4], [1, 1], (2, 2, 1, 1)),
    ("VALID", [3, 2], [2, 3], (0, 0, 0, 0)),
])
def test_pool_auto_pad(run_node, op, count_include_pad, auto_pad, kernel, strides, pads):
    attrs = {"kernel_shape": kernel, "strides": strides, "auto_pad": auto_pad}
    if op == "AveragePool":
        attrs["count_include_pad"] = count_include_pad
    (got,) = run_node(op, {"x": X}, attrs)
    reference = pool_reference(X, op, kernel, strides, pads,
                               count_include_pad=bool(count_include_pad))
    assert_close(got, reference)
    assert_close(got, run_onnxruntime(op, {"x": X}, {}, attrs, opset=19))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_1d(run_node, op):
    x = RNG.standard_normal((2, 3, 11)).astype(np.float32)
    attrs = {"kernel_shape": [3], "strides": [2], "pads": [1, 2], "ceil_mode": 1}
    if op == "AveragePool":
        attrs["count_include_pad"] = 1
    (got,) = run_node(op, {"x": x}, attrs)
    reference = pool_reference(x[:, :, None], op, kernel=[1, 3], strides=[1, 2],
                               pads=(0, 1, 0, 2), ceil_mode=True,
                               count_include_pad=op == "AveragePool")
    assert_close(got, reference[:, :, 0])


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 4)])
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(run_node, op, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    (got,) = run_node(op, {"x": x})
    axes = tuple(range(2, len(shape)))
    reduce = np.mean if op == "GlobalAveragePool" else np.max
    assert_close(got, reduce(x.astype(np.float64), axis=axes, keepdims=True))


def test_rejected_at_conversion():
    indices = Node("MaxPool", "n", ["x"], ["y", "i"], {"kernel_shape": [2, 2]})
    assert unsupported_reason(indices) == "MaxPool with an Indices output"
    no_indices = Node("MaxPool", "n", ["x"], ["y", ""], {"kernel_shape": [2, 2]})
    assert unsupported_reason(no_indices) is None
    for op in ("MaxPool", "AveragePool"):
        volume = Node(op, "n", ["x"], ["y"], {"kernel_shape": [2, 2, 2]})
        assert unsupported_reason(volume) == f"{op} with 3 spatial dims"
