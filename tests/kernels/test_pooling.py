"""pooling.cl against a per-tap NumPy implementation of ONNX MaxPool / AveragePool."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close, at_most_widest


def pool_ref(x, kind, kernel, stride, dilation, pads, out_hw, count_include_pad=False):
    """Visits the window tap by tap; counts the taps inside the input / the padded input."""
    x = x.astype(np.float64)
    n, c, h, w = x.shape
    (kh_n, kw_n), (sh, sw), (dh, dw), (pt, pl, pb, pr), (oh, ow) = (
        kernel, stride, dilation, pads, out_hw)
    best = np.full((n, c, oh, ow), -np.inf)
    total = np.zeros((n, c, oh, ow))
    inside = np.zeros((oh, ow))
    padded = np.zeros((oh, ow))
    for kh in range(kh_n):
        ih = np.arange(oh) * sh - pt + kh * dh
        for kw in range(kw_n):
            iw = np.arange(ow) * sw - pl + kw * dw
            valid = ((ih >= 0) & (ih < h))[:, None] & ((iw >= 0) & (iw < w))[None, :]
            in_pad = ((ih >= -pt) & (ih < h + pb))[:, None] & ((iw >= -pl) & (iw < w + pr))[None, :]
            vals = x[:, :, np.clip(ih, 0, h - 1)][:, :, :, np.clip(iw, 0, w - 1)]
            best = np.where(valid, np.maximum(best, vals), best)
            total += np.where(valid, vals, 0.0)
            inside += valid
            padded += in_pad
    if kind == "max":
        return best
    return total / (padded if count_include_pad else inside)


# (N, C, H, W), kernel, stride, dilation, pads (t, l, b, r), ceil_mode
CASES = {
    "k3_s2_p1": ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), False),
    "k2_s2_odd_ceil": ((1, 2, 5, 7), (2, 2), (2, 2), (1, 1), (0, 0, 0, 0), True),
    "k3x2_s1x2_asym": ((1, 3, 6, 5), (3, 2), (1, 2), (1, 1), (0, 1, 2, 0), False),
    "k3_s3_p1_ceil": ((2, 2, 8, 10), (3, 3), (3, 3), (1, 1), (1, 1, 1, 1), True),
    "whole_plane": ((1, 4, 3, 4), (3, 4), (1, 1), (1, 1), (0, 0, 0, 0), False),
    "k1_s2": ((1, 2, 5, 5), (1, 1), (2, 2), (1, 1), (0, 0, 0, 0), False),
    "k2x3_d2x1_pad": ((1, 2, 7, 6), (2, 3), (2, 1), (2, 1), (1, 1, 2, 0), True),  # opset 19
    # rows wider than a vector: whole-vector windows inside, staged ones at the edges, and a
    # last block that steps back to end at OW
    "wide_k3_s1_p1": ((1, 2, 5, 45), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), False),
    "wide_k3_s2_ceil": ((1, 3, 6, 75), (3, 3), (2, 2), (1, 1), (0, 0, 0, 0), True),
    "wide_k3_s2_p1": ((2, 2, 5, 56), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), False),
    "wide_k2_s3": ((1, 2, 4, 70), (2, 2), (3, 3), (1, 1), (0, 0, 0, 0), False),  # gathered
    "wide_k3_d2_s2": ((1, 2, 7, 90), (3, 3), (2, 2), (2, 2), (2, 2, 2, 2), False),
    "wide_k2_d25": ((1, 1, 3, 100), (1, 2), (1, 1), (1, 25), (0, 0, 0, 0), False),  # long span
}
MAX_CASES = dict(CASES)
MAX_CASES["k3_d2_asym"] = ((1, 3, 9, 8), (3, 3), (1, 2), (2, 2), (2, 1, 0, 1), False)
MAX_CASES["k2_d3_ceil"] = ((2, 1, 10, 11), (2, 2), (2, 2), (3, 3), (1, 0, 1, 0), True)


def _dims(x_shape, kernel, stride, dilation, pads, ceil_mode):
    (kh, kw), (sh, sw), (dh, dw), (pt, pl, pb, pr) = kernel, stride, dilation, pads
    oh = _windows(x_shape[2], kh, sh, dh, pt, pb, ceil_mode)
    ow = _windows(x_shape[3], kw, sw, dw, pl, pr, ceil_mode)
    return oh, ow


def _windows(size, k, s, d, pad_begin, pad_end, ceil_mode):
    span = size + pad_begin + pad_end - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + pad_begin:
        out -= 1  # a last window starting in the trailing pad is dropped (ONNX / PyTorch)
    return out


def _windowed_grid(x_shape, oh, ow, vw):
    """A work item per vector of VW output pixels of a row (pooling.cl's windowed kernels)."""
    return (-(-ow // vw), oh, x_shape[0] * x_shape[1])


@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
@pytest.mark.parametrize("case", list(MAX_CASES))
def test_max_pool2d(cl_env, rng, case, vw):
    x_shape, kernel, stride, dilation, pads, ceil_mode = MAX_CASES[case]
    x = rng.standard_normal(x_shape).astype(np.float32) - 3.0  # all negative: a pad 0 would win
    oh, ow = _dims(x_shape, kernel, stride, dilation, pads, ceil_mode)
    args = [*x_shape, oh, ow, *kernel, *stride, *dilation, *pads[:2]]
    got = cl_env.run("pooling", f"-DVW={vw}", "max_pool2d", (*x_shape[:2], oh, ow), [x], args,
                     work_items=_windowed_grid(x_shape, oh, ow, vw))
    assert_close(got, pool_ref(x, "max", kernel, stride, dilation, pads, (oh, ow)))


def test_max_pool2d_nan_wins(cl_env):
    """A NaN in a window gives NaN (as ReduceMax), at the row's left edge (a staged block)
    and inside it (whole vectors), and leaves the other windows alone."""
    x = np.arange(2 * 40, dtype=np.float32).reshape(1, 1, 2, 40)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 1, 20] = np.nan
    # 2x3 windows, stride (1, 2), left pad 1: window i covers columns 2i - 1 .. 2i + 1, OW 20
    args = [1, 1, 2, 40, 1, 20, 2, 3, 1, 2, 1, 1, 0, 1]
    got = cl_env.run("pooling", "-DVW=4", "max_pool2d", (1, 1, 1, 20), [x], args,
                     work_items=(5, 1, 1))[0, 0, 0]
    assert np.isnan(got[[0, 10]]).all()
    rest = [i for i in range(20) if i not in (0, 10)]
    assert_close(got[rest], np.asarray([40 + 2 * i + 1 for i in rest], np.float32))


@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_avg_pool2d(cl_env, rng, case, count_include_pad, vw):
    x_shape, kernel, stride, dilation, pads, ceil_mode = CASES[case]
    x = rng.standard_normal(x_shape).astype(np.float32) + 1.0
    oh, ow = _dims(x_shape, kernel, stride, dilation, pads, ceil_mode)
    args = [*x_shape, oh, ow, *kernel, *stride, *dilation, *pads, int(count_include_pad)]
    got = cl_env.run("pooling", f"-DVW={vw}", "avg_pool2d", (*x_shape[:2], oh, ow), [x], args,
                     work_items=_windowed_grid(x_shape, oh, ow, vw))
    want = pool_ref(x, "avg", kernel, stride, dilation, pads, (oh, ow), count_include_pad)
    assert_close(got, want)


def test_avg_pool2d_divisor_by_hand(cl_env):
    """Fixed numbers, independent of pool_ref: a 6x6 plane of ones, 3x3 window, stride 2,
    pads 1, ceil_mode (4 windows per axis). Per axis the windows hold 2, 3, 3, 1 real taps and
    3, 3, 3, 2 taps inside the padded input: the last one hangs a row past the bottom pad."""
    x = np.ones((1, 1, 6, 6), np.float32)
    for cip, want_axis in [(0, [1.0, 1.0, 1.0, 1.0]), (1, [2 / 3, 1.0, 1.0, 1 / 2])]:
        args = [1, 1, 6, 6, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, cip]
        got = cl_env.run("pooling", "", "avg_pool2d", (1, 1, 4, 4), [x], args,
                         work_items=(1, 4, 1))
        assert_close(got[0, 0], np.outer(want_axis, want_axis))


@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (3, 2, 16, 16), (1, 5, 20, 21)])
def test_global_pools(cl_env, rng, shape, vw):
    """Vector loads then a scalar tail; the max is in the tail of one plane, a NaN in a
    vector of another (NaN wins, as in ReduceMax)."""
    x = rng.standard_normal(shape).astype(np.float32) - 2.0
    nc, hw = shape[0] * shape[1], shape[2] * shape[3]
    flat = x.reshape(nc, hw)
    flat[0, -1] = 50.0
    if nc > 1 and hw > 1:
        flat[-1, 1] = np.nan
    got = cl_env.run("pooling", f"-DVW={vw}", "global_avg_pool", (nc,), [x], [nc, hw])
    assert_close(got, x.astype(np.float64).reshape(nc, hw).mean(axis=1))
    got = cl_env.run("pooling", f"-DVW={vw}", "global_max_pool", (nc,), [x], [nc, hw])
    assert_close(got, x.reshape(nc, hw).max(axis=1))
