"""resize.cl: ONNX Resize, nearest (4 rounding modes) and bilinear, 4 coordinate modes.

Source coordinates are computed in float32 in the same operation order as the kernel (as ONNX
Runtime does), so that rounding ties fall the same way; the rounding and the interpolation are
written differently from the kernel: ties via ceil(x - 0.5) / floor(x + 0.5), and bilinear
with edge-padded neighbours rather than a clamped coordinate, as ONNX's reference does.
"""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close

COORD_MODES = {"half_pixel": 0, "align_corners": 1, "asymmetric": 2, "pytorch_half_pixel": 3}
NEAREST_MODES = {"round_prefer_floor": 0, "round_prefer_ceil": 1, "floor": 2, "ceil": 3}
F = np.float32


def source_coords(out_size, in_size, scale, mode):
    x = np.arange(out_size, dtype=F)
    scale = F(scale)
    if mode == "half_pixel":
        return (x + F(0.5)) / scale - F(0.5)
    if mode == "pytorch_half_pixel":
        return (x + F(0.5)) / scale - F(0.5) if out_size > 1 else np.zeros(1, F)
    if mode == "align_corners":
        return x * F(in_size - 1) / F(out_size - 1) if out_size > 1 else np.zeros(1, F)
    return x / scale  # asymmetric


def nearest_indices(coords, in_size, mode):
    rounded = {
        "round_prefer_floor": np.ceil(coords - F(0.5)),
        "round_prefer_ceil": np.floor(coords + F(0.5)),
        "floor": np.floor(coords),
        "ceil": np.ceil(coords),
    }[mode]
    return np.clip(rounded.astype(np.int64), 0, in_size - 1)


def bilinear_ref(x, ys, xs):
    x = x.astype(np.float64)
    h, w = x.shape[2:]

    def taps(coords, size):
        lo = np.floor(coords.astype(np.float64))
        ratio = coords - lo
        lo = lo.astype(np.int64)
        return np.clip(lo, 0, size - 1), np.clip(lo + 1, 0, size - 1), ratio

    y0, y1, ry = taps(ys, h)
    x0, x1, rx = taps(xs, w)
    ry, rx = ry[:, None], rx[None, :]
    top = x[:, :, y0][:, :, :, x0] * (1 - rx) + x[:, :, y0][:, :, :, x1] * rx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - rx) + x[:, :, y1][:, :, :, x1] * rx
    return top * (1 - ry) + bottom * ry


# input shape, output (OH, OW); scales are OH / H as a model with `sizes` implies
CASES = {
    "up_x2": ((2, 3, 4, 5), (8, 10)),
    "down_x0.5": ((1, 2, 8, 10), (4, 5)),  # half_pixel lands exactly on .5: rounding ties
    "down_odd": ((1, 2, 9, 7), (4, 3)),
    "up_fractional": ((1, 1, 3, 4), (7, 9)),
    "to_1x1": ((1, 2, 5, 6), (1, 1)),
    "mixed": ((2, 1, 1, 6), (3, 4)),
}


def _run(cl_env, kernel, coord, nearest, x, out_hw):
    n, c, h, w = x.shape
    oh, ow = out_hw
    options = f"-DCOORD_MODE={COORD_MODES[coord]} -DNEAREST_MODE={NEAREST_MODES[nearest]}"
    args = [n, c, h, w, oh, ow, F(oh / h), F(ow / w)]
    return cl_env.run("resize", options, kernel, (n, c, oh, ow), [x], args,
                      work_items=(ow, oh, n * c))


@pytest.mark.parametrize("nearest", list(NEAREST_MODES))
@pytest.mark.parametrize("coord", list(COORD_MODES))
@pytest.mark.parametrize("case", list(CASES))
def test_resize_nearest(cl_env, rng, case, coord, nearest):
    shape, (oh, ow) = CASES[case]
    x = rng.standard_normal(shape).astype(np.float32)
    got = _run(cl_env, "resize_nearest", coord, nearest, x, (oh, ow))
    iy = nearest_indices(source_coords(oh, shape[2], oh / shape[2], coord), shape[2], nearest)
    ix = nearest_indices(source_coords(ow, shape[3], ow / shape[3], coord), shape[3], nearest)
    assert_close(got, x[:, :, iy][:, :, :, ix])


def test_nearest_ties_fall_per_mode(cl_env):
    """Asymmetric x2 upsampling puts every odd output on a .5 source coordinate."""
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    expected = {
        "round_prefer_floor": [0, 0, 1, 1, 2, 2, 3, 3],
        "round_prefer_ceil": [0, 1, 1, 2, 2, 3, 3, 3],
        "floor": [0, 0, 1, 1, 2, 2, 3, 3],
        "ceil": [0, 1, 1, 2, 2, 3, 3, 3],
    }
    for nearest, want in expected.items():
        got = _run(cl_env, "resize_nearest", "asymmetric", nearest, x, (1, 8))
        assert_close(got.ravel(), want)


@pytest.mark.parametrize("coord", list(COORD_MODES))
@pytest.mark.parametrize("case", list(CASES))
def test_resize_bilinear(cl_env, rng, case, coord):
    shape, (oh, ow) = CASES[case]
    x = rng.standard_normal(shape).astype(np.float32)
    got = _run(cl_env, "resize_bilinear", coord, "round_prefer_floor", x, (oh, ow))
    ys = source_coords(oh, shape[2], oh / shape[2], coord)
    xs = source_coords(ow, shape[3], ow / shape[3], coord)
    assert_close(got, bilinear_ref(x, ys, xs))


def test_bilinear_align_corners_by_hand(cl_env):
    x = np.array([[[[0.0, 3.0], [6.0, 9.0]]]], np.float32)
    got = _run(cl_env, "resize_bilinear", "align_corners", "round_prefer_floor", x, (3, 4))
    assert_close(got[0, 0], [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])


@pytest.mark.parametrize("shape, fh, fw", [((2, 3, 4, 5), 2, 2), ((1, 2, 3, 7), 8, 3),
                                           ((1, 1, 5, 1), 1, 4)])
def test_resize_nearest_blocks(cl_env, rng, shape, fh, fw):
    """Whole factors: each input pixel copied into its fh x fw block."""
    x = rng.standard_normal(shape).astype(np.float32)
    n, c, h, w = shape
    got = cl_env.run("resize", "", "resize_nearest_blocks", (n, c, h * fh, w * fw), [x],
                     [n * c, h, w, fh, fw], work_items=(w, h, n * c))
    assert_close(got, np.repeat(np.repeat(x, fh, axis=2), fw, axis=3))
