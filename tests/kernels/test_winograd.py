"""winograd.cl (winograd_input, winograd_output) and the whole Winograd convolution
(input transform, conv2d_gemm over the T * T products, output transform) against NumPy.

The transforms are checked against their matrix definitions, tile by tile, in float64; the
whole convolution against the direct NumPy convolution of test_conv2d. Shapes put tiles
past the output's edge (OH, OW not multiples of the tile), rows of tiles narrower and wider
than a vector (the partial and the stepped-back blocks), every vector width and several
work-group shapes.
"""

from __future__ import annotations

import numpy as np
import pyopencl as cl
import pytest

from macecl.kernels import program_source
from macecl.ops.activations import apply
from macecl.ops.conv_winograd import TRANSFORMS, tile_grid, transformed_filter

from .helpers import WIDEST, WIDTHS, assert_close, at_most_widest
from .test_conv2d import VARIANTS, conv2d_ref

# (N, C_in, H, W), C_out, pads (top, left, bottom, right)
SHAPES = {
    "pad1_odd": ((2, 3, 7, 9), 5, (1, 1, 1, 1)),
    "pad0": ((1, 4, 10, 13), 3, (0, 0, 0, 0)),
    "pad2_asym": ((1, 5, 6, 11), 9, (2, 2, 1, 0)),
    "wide_rows": ((1, 3, 9, 75), 4, (1, 1, 1, 1)),  # tile rows wider than a vector
    "one_pixel": ((2, 2, 1, 1), 3, (1, 1, 1, 1)),
}
TILES = [2, 4]


def output_shape(x_shape, pads):
    return x_shape[2] + pads[0] + pads[2] - 2, x_shape[3] + pads[1] + pads[3] - 2


def input_transform_ref(x, tile, pads, tiles_h, tiles_w):
    """V (N, T*T, C, tiles): B^T d B of every tile's input patch d, zero outside the input."""
    bt = TRANSFORMS[tile][0]
    t = tile + 2
    n, c, h, w = x.shape
    xp = np.zeros((n, c, tile * tiles_h + 2, tile * tiles_w + 2))
    top, left = pads[0], pads[1]
    rows, cols = min(h, xp.shape[2] - top), min(w, xp.shape[3] - left)
    xp[:, :, top:top + rows, left:left + cols] = x[:, :, :rows, :cols]
    v = np.zeros((n, t, t, c, tiles_h, tiles_w))
    for ty, tx in np.ndindex(tiles_h, tiles_w):
        d = xp[:, :, tile * ty:tile * ty + t, tile * tx:tile * tx + t]
        v[..., ty, tx] = np.einsum("ia,ncab,jb->nijc", bt, d, bt)
    return v.reshape(n, t * t, c, tiles_h * tiles_w)


@pytest.mark.parametrize("vw,local_size", VARIANTS)
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", list(SHAPES))
def test_winograd_input(cl_env, rng, case, tile, vw, local_size):
    x_shape, _, pads = SHAPES[case]
    n, c, h, w = x_shape
    x = rng.standard_normal(x_shape).astype(np.float32)
    tiles_h, tiles_w = tile_grid(*output_shape(x_shape, pads), tile)
    want = input_transform_ref(x, tile, pads, tiles_h, tiles_w)
    got = cl_env.run("winograd", f"-DVW={vw} -DWINO_M={tile}", "winograd_input", want.shape,
                     [x], [c, h, w, tiles_h, tiles_w, pads[0], pads[1], n * c],
                     work_items=(n * c,), local_size=local_size and local_size[:1])
    assert_close(got, want, rtol=1e-5, atol=1e-5)


def output_transform_ref(products, tile, oh, ow, tiles_w, bias, residual):
    """A^T m A of every tile's products, clipped to (OH, OW), plus bias and residual."""
    at = TRANSFORMS[tile][2]
    t = tile + 2
    n, _, c_out, tiles = products.shape
    m = products.reshape(n, t, t, c_out, tiles // tiles_w, tiles_w).astype(np.float64)
    y = np.einsum("ia,nabohw,jb->nohiwj", at, m, at)
    y = y.reshape(n, c_out, tile * (tiles // tiles_w), tile * tiles_w)[:, :, :oh, :ow]
    return y + bias.reshape(1, -1, 1, 1) + residual


def with_spare(products: np.ndarray, vw: int) -> np.ndarray:
    """Mt as winograd_output reads it: flat, VW spare floats past its end (NaN here, so that
    an output computed from them would show)."""
    return np.concatenate([products.ravel(), np.full(vw, np.nan, np.float32)])


@pytest.mark.parametrize("vw,local_size", VARIANTS)
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", list(SHAPES))
def test_winograd_output(cl_env, rng, case, tile, vw, local_size):
    x_shape, c_out, pads = SHAPES[case]
    n = x_shape[0]
    oh, ow = output_shape(x_shape, pads)
    tiles_h, tiles_w = tile_grid(oh, ow, tile)
    t = tile + 2
    products = rng.standard_normal((n, t * t, c_out, tiles_h * tiles_w)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    residual = rng.standard_normal((n, c_out, oh, ow)).astype(np.float32)
    want = output_transform_ref(products, tile, oh, ow, tiles_w, bias, residual)
    # the input and filter are read only for pixels that come out infinite or NaN: none here
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((c_out, x_shape[1], 3, 3)).astype(np.float32)
    got = cl_env.run("winograd", f"-DVW={vw} -DWINO_M={tile} -DHAS_BIAS -DHAS_RESIDUAL",
                     "winograd_output", want.shape,
                     [with_spare(products, vw), x, w, bias, residual],
                     [*x_shape[1:], pads[0], pads[1], c_out, oh, ow, tiles_h, tiles_w,
                      n * c_out, 0.0, 0.0],
                     work_items=(-(-tiles_w // vw), tiles_h, n * c_out), local_size=local_size)
    assert_close(got, want, rtol=1e-5, atol=1e-4)


def winograd_conv(cl_env, x, w, bias, residual, pads, tile, vw, activation=(0, 0.0, 0.0),
                  local_size=None):
    """The three launches of ops/conv_winograd.py, each read back and passed on."""
    n, c, h, wd = x.shape
    c_out = w.shape[0]
    oh, ow = output_shape(x.shape, pads)
    tiles_h, tiles_w = tile_grid(oh, ow, tile)
    tiles, t = tiles_h * tiles_w, tile + 2
    code, act_a, act_b = activation
    v = cl_env.run("winograd", f"-DVW={vw} -DWINO_M={tile}", "winograd_input",
                   (n * t * t, c, tiles), [x], [c, h, wd, tiles_h, tiles_w, pads[0], pads[1],
                                                n * c],
                   work_items=(n * c,), local_size=local_size and local_size[:1])
    products = cl_env.run("conv2d", f"-DVW={vw}", "conv2d_gemm", (n * t * t, c_out, tiles),
                          [transformed_filter(w, tile, 8), v, None, None],
                          [c_out, c, tiles, t * t, n * t * t, 0.0, 0.0, 0],
                          work_items=(-(-c_out // 8), -(-tiles // (2 * vw)), n * t * t))
    options = f"-DVW={vw} -DWINO_M={tile} -DHAS_BIAS -DACTIVATION={code}"
    inputs = [with_spare(products, vw), x, w, bias, residual]
    if residual is not None:
        options += " -DHAS_RESIDUAL"
    return cl_env.run("winograd", options, "winograd_output", (n, c_out, oh, ow), inputs,
                      [c, h, wd, pads[0], pads[1], c_out, oh, ow, tiles_h, tiles_w, n * c_out,
                       act_a, act_b],
                      work_items=(-(-tiles_w // vw), tiles_h, n * c_out), local_size=local_size)


@pytest.mark.parametrize("vw,local_size", VARIANTS)
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", list(SHAPES))
def test_winograd_convolution(cl_env, rng, case, tile, vw, local_size):
    x_shape, c_out, pads = SHAPES[case]
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((c_out, x_shape[1], 3, 3)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    residual = rng.standard_normal((x_shape[0], c_out, *output_shape(x_shape, pads)))
    residual = residual.astype(np.float32)
    got = winograd_conv(cl_env, x, w, bias, residual, pads, tile, vw, local_size=local_size)
    want = conv2d_ref(x, w, bias, (1, 1), (1, 1), pads, 1, residual)
    assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
@pytest.mark.parametrize("tile", TILES)
def test_infinities_and_nan_come_out_as_a_direct_convolution_gives_them(cl_env, rng, tile, vw):
    """A direct convolution (and ONNX Runtime) gives +-inf or NaN only in the outputs whose
    windows hold an infinite or NaN input; the transforms' differences alone would spread
    NaN (inf - inf) over every tile whose patch holds one. Those pixels are computed again
    directly, and the rest stay as the transforms give them."""
    x = rng.standard_normal((1, 3, 12, 37)).astype(np.float32)
    x[0, 0, 2, 5], x[0, 1, 7, 20], x[0, 2, 10, 33] = np.inf, -np.inf, np.nan
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    got = winograd_conv(cl_env, x, w, bias, None, (1, 1, 1, 1), tile, vw)
    want = conv2d_ref(x, w, bias, (1, 1), (1, 1), (1, 1, 1, 1), 1)
    assert np.isposinf(want).any() and np.isneginf(want).any() and np.isnan(want).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)])
    finite = np.isfinite(want)
    assert_close(got[finite], want[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", [(1, 0.0, 0.0), (2, 0.1, 0.0), (3, -0.5, 1.5)])
@pytest.mark.parametrize("tile", TILES)
def test_winograd_activation_after_residual(cl_env, rng, activation, tile):
    """act(conv + bias + residual) on whole vectors and the clipped tail of a 37-wide row."""
    x = rng.standard_normal((1, 6, 5, 37)).astype(np.float32)
    w = (rng.standard_normal((7, 6, 3, 3)) * 0.3).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    residual = rng.standard_normal((1, 7, 5, 37)).astype(np.float32)
    plain = conv2d_ref(x, w, bias, (1, 1), (1, 1), (1, 1, 1, 1), 1, residual)
    want = apply(activation[0], plain, *activation[1:])
    assert not np.allclose(want, plain)  # the activation changes something
    got = winograd_conv(cl_env, x, w, bias, residual, (1, 1, 1, 1), tile, WIDEST, activation)
    assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("vw", WIDTHS)
@pytest.mark.parametrize("tile", TILES)
def test_every_variant_builds_strict_cl12(cl_env, tile, vw):
    """test_library builds the fullest variant; the swizzles differ with every tile and width."""
    prg = cl._cl._Program(cl_env.ctx, program_source("winograd"))
    prg.build(f"-cl-std=CL1.2 -Werror -DVW={vw} -DWINO_M={tile} -DACTIVATION=1".encode())
