"""Winograd convolution F(m x m, 3 x 3) for 3x3 stride-1 convolutions: ``winograd.cl``'s
transforms around conv2d.cl's batched GEMM.

A tile of m x m output pixels is A^T [(G g G^T) . (B^T d B)] A with d its (m + 2)^2 input
patch, so the T * T (T = m + 2) element-wise products, summed over the input channels, are
T * T independent GEMMs of C_out x C_in by C_in x tiles: conv2d_gemm's groups. They do
C_out * C_in * T^2 multiplications a tile against 9 * m^2 for im2col + GEMM: 2.25x fewer
for F(2x2, 3x3), 4x fewer for F(4x4, 3x3). The filter transform runs once, on the host.

On PoCL (bench/conv_kernels.py, figures in its docstring) F(4x4, 3x3) takes ResNet-50's
3x3 64 on 56x56 from 3.99 ms (im2col + GEMM) to 1.48, 128 on 28x28 from 3.21 to 1.32,
PP-OCR det's 96->24 on 160x160 from 26.6 (conv2d_direct) to 13.2; F(2x2, 3x3) 256 on
14x14 from 3.07 to 1.92. Accuracy against a float64 NumPy convolution (non-negative
inputs, He-scaled weights) on ResNet-50's four 3x3 shapes, SqueezeNet's 16->64 on 55x55
and det's 96->24 on 80x80: max |error| / max |output| 0.3-0.7e-6 for F(2x2), 2.4-10e-6
for F(4x4) (max error relative to each output, those under 1e-3 of the largest left out:
up to 3e-3), 0.5-2e-6 for im2col + GEMM; the suites accept 1e-4 (ops) and 1e-3 (models) of
the largest output.
"""

from __future__ import annotations

import math

import numpy as np

from macecl.ops import conv  # as a module: conv.py imports this one to choose it

# m: (B^T, G, A^T) of F(m x m, 3 x 3), interpolation points 0, +-1, (+-2,) infinity.
# winograd.cl's input_1d and output_1d are B^T and A^T written out.
TRANSFORMS = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], np.float64)),
}


def transformed_filter(filt: np.ndarray, tile: int, channels: int) -> np.ndarray:
    """U = G g G^T of every (C_out, C_in) pair of a 3x3 filter, as conv2d_gemm reads T * T
    groups of C_out x C_in weights in blocks of ``channels`` (CO_BLOCK): (T * T,
    ceil(C_out / channels), C_in, channels), computed in float64."""
    g = TRANSFORMS[tile][1]
    u = np.einsum("ia,ocab,jb->ijoc", g, filt.astype(np.float64), g)  # (T, T, C_out, C_in)
    t = tile + 2
    return conv.pack_filter_array(u.reshape(t * t * filt.shape[0], filt.shape[1], 1, 1), t * t,
                                  channels)


def tile_grid(oh: int, ow: int, tile: int) -> tuple[int, int]:
    """(tiles_h, tiles_w): the output in tile x tile pieces, the last ones clipped."""
    return -(-oh // tile), -(-ow // tile)


def winograd_tile(builder, window: tuple[int, ...], group: int, weights, oh: int,
                  ow: int) -> int | None:
    """The m of the F(m x m, 3 x 3) that a convolution takes, or None where it keeps
    ops/conv.py's other kernels: only on a CPU (a GPU tiles, see ops/conv_tiled.py), for a
    3x3 stride-1 undilated one-group convolution with constant weights (transformed once,
    here); 4 where its tiles fill a conv2d_gemm work item's SPAN pixels, else 2 where those
    do (fewer tiles than that take the GEMM's lane-by-lane path: ResNet's 3x3 256 on 14x14,
    16 tiles of 4x4, 3.4 ms against 0.67 in 49 tiles of 2x2), else 2 where they fill one
    vector (:func:`gemm_vectors`: ResNet's 7x7 maps), else None."""
    if not builder.traits.cpu or tuple(window) != (3, 3, 1, 1, 1, 1) or group != 1:
        return None
    if weights.host is None:
        return None
    width = builder.traits.vector_width
    for tile in (4, 2):
        tiles_h, tiles_w = tile_grid(oh, ow, tile)
        if tiles_h * tiles_w >= width * conv.GEMM_VECTORS:
            return tile
    return 2 if tiles_h * tiles_w >= width else None


def gemm_vectors(builder, tiles: int) -> int:
    """conv2d_gemm's pixel vectors a work item (PX) over ``tiles``: one where the tiles fill
    one vector but not two (ResNet-50's 7x7 maps: 16 tiles of 2x2, whose GEMMs at two
    vectors would compute 32), else two.

    ResNet-50's two 3x3 512 on 7x7, ms a run each (one in-model profile): im2col + GEMM
    1.77-1.88, this 1.45-1.61 (transforms 0.22 of it). F(4x4) at one vector on 14x14 (16
    tiles) lost to F(2x2) at two (49 tiles): GEMMs 0.69-0.85 against 0.66-0.77 ms."""
    width = builder.traits.vector_width
    return 1 if tiles < width * conv.GEMM_VECTORS else conv.GEMM_VECTORS


def convolve_winograd(builder, x2, w2, bias, residual, out2, pads: tuple[int, int], tile: int,
                      options: list[str], act_a, act_b) -> None:
    """out2 = act(conv3x3(x2, w2) + bias + residual), stride 1, one group, constant weights;
    ``pads`` (top, left); ``options`` the epilogue's build options (-DVW, -DHAS_BIAS, ...)."""
    n, c_in, h, wd = x2.shape
    _, c_out, oh, ow = out2.shape
    t = tile + 2
    tiles_h, tiles_w = tile_grid(oh, ow, tile)
    tiles = tiles_h * tiles_w
    width = builder.traits.vector_width
    shape = [f"-DVW={width}", f"-DWINO_M={tile}"]
    i32 = np.int32
    v = builder.new((n * t * t, c_in, tiles))
    heavy = conv.heavy_items(builder)  # the transforms too: 1.2-1.5x faster on PoCL
    builder.launch("winograd", "winograd_input",
                   [x2, v, *(i32(s) for s in (c_in, h, wd, tiles_h, tiles_w, *pads, n * c_in))],
                   n * c_in, options=shape, local_size=heavy[:1] if heavy else None)
    shape = (n * t * t, c_out, tiles)  # and the VW spare floats winograd_output reads past it
    products = builder.view_range(builder.new((math.prod(shape) + width,)), 0, shape)
    packed = builder.constant(transformed_filter(np.asarray(w2.host), tile,
                                                 conv.gemm_channels(builder.traits)))
    sizes = (c_out, c_in, tiles, t * t, n * t * t)
    # the GEMMs take the CPU's prefetch (ops/conv.py gemm_block): their blocks' rows of
    # products, each in another page, asked for before the short K loop. Kernel ms a run,
    # in-model A/B of two engines (11 profiles), conv2d_gemm without / with: SqueezeNet
    # 3.05 / 2.87 and 3.24 / 2.98 (its 3x3 on 55x55, K = 16: 0.283 / 0.207 and 0.198 /
    # 0.157), PP-OCR det 15.85 / 14.88, ResNet-50 32.43 / 31.84 and 32.71 / 32.68
    vectors = gemm_vectors(builder, tiles)
    conv.gemm_launch(builder, [packed, v, None, None, products, *(i32(s) for s in sizes),
                               np.float32(0), np.float32(0)],
                     c_out, c_in, tiles, width * vectors, n * t * t,
                     [f"-DVW={width}", f"-DPREFETCH={conv.GEMM_PREFETCH}",
                      *([f"-DPX={vectors}"] if vectors == 1 else [])])
    builder.launch("winograd", "winograd_output",
                   [products, x2, w2, bias, residual, out2,
                    *(i32(s) for s in (c_in, h, wd, *pads, c_out, oh, ow, tiles_h, tiles_w,
                                       n * c_out)), act_a, act_b],
                   (-(-tiles_w // width), tiles_h, n * c_out),
                   options=[*options, f"-DWINO_M={tile}"], local_size=heavy)
