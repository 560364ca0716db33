"""conv2d.cl (im2col, conv2d_gemm, conv2d_direct(_wide), depthwise_conv2d) against a NumPy
convolution.

Each kernel runs over shapes whose pixel and channel counts are not multiples of its blocks
(so the tails run), with every vector width a device may pick, and under several work-group
shapes (the tuner may choose any, so none may change a result).
"""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import WIDEST, WIDTHS, assert_close, at_most_widest, erf


def conv2d_ref(x, w, bias, stride, dilation, pads, groups, residual=None):
    """ONNX Conv (+ a residual added after the bias); pads = (top, left, bottom, right)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x.shape
    co, cpg, kh_n, kw_n = w.shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = stride, dilation, pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh_n - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw_n - 1) - 1) // sw + 1
    xg = xp.reshape(n, groups, cpg, *xp.shape[2:])
    wg = w.reshape(groups, co // groups, cpg, kh_n, kw_n)
    out = np.zeros((n, groups, co // groups, oh, ow))
    for kh in range(kh_n):
        for kw in range(kw_n):
            patch = xg[
                :, :, :,
                kh * dh: kh * dh + sh * (oh - 1) + 1: sh,
                kw * dw: kw * dw + sw * (ow - 1) + 1: sw,
            ]
            out += np.einsum("ngchw,goc->ngohw", patch, wg[:, :, :, kh, kw])
    out = out.reshape(n, co, oh, ow)
    if bias is not None:
        out += bias.reshape(1, co, 1, 1)
    if residual is not None:
        out += residual
    return out


def im2col_ref(x, kernel, stride, dilation, pads):
    """(N, C * KH * KW, OH * OW): row (c, kh, kw) holds that tap's input under every pixel."""
    n, c = x.shape[:2]
    kh_n, kw_n = kernel
    eye = np.eye(c * kh_n * kw_n, dtype=np.float64).reshape(c * kh_n * kw_n, c, kh_n, kw_n)
    cols = conv2d_ref(x, eye, None, stride, dilation, pads, 1)  # one-hot filters pick taps
    return cols.reshape(n, c * kh_n * kw_n, -1)


def out_size(h, wd, kernel, stride, dilation, pads):
    (kh, kw), (sh, sw), (dh, dw), (pt, pl, pb, pr) = kernel, stride, dilation, pads
    return (h + pt + pb - dh * (kh - 1) - 1) // sh + 1, (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1


# (N, C_in, H, W), (C_out, KH, KW), stride, dilation, pads (t, l, b, r), groups
CASES = {
    "3x3_pad1": ((2, 3, 7, 9), (4, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "strided_dilated_asym": ((1, 2, 11, 10), (3, 5, 3), (2, 3), (2, 1), (0, 1, 2, 0), 1),
    "groups": ((2, 4, 6, 5), (6, 3, 3), (1, 1), (1, 1), (1, 0, 1, 2), 2),
    "pointwise": ((1, 8, 3, 5), (5, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1),
    "pointwise_many_channels": ((1, 19, 9, 13), (21, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1),
    "kernel_wider_than_input": ((1, 2, 2, 3), (2, 5, 5), (1, 1), (1, 1), (2, 2, 2, 2), 1),
    "stride_larger_than_kernel": ((1, 3, 13, 13), (2, 2, 2), (4, 3), (1, 1), (0, 0, 1, 1), 1),
    "one_pixel": ((2, 6, 1, 1), (10, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1),
    "wide_rows": ((1, 5, 4, 37), (17, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "wide_rows_stride2": ((2, 3, 5, 70), (9, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 1),
    "wide_rows_stride2_dilated": ((1, 4, 6, 80), (6, 3, 3), (1, 2), (1, 2), (0, 2, 0, 3), 2),
    # ResNet's downsample: output rows (7) narrower than a vector, so every one crosses rows
    "pointwise_stride2": ((1, 6, 14, 14), (5, 1, 1), (2, 2), (1, 1), (0, 0, 0, 0), 1),
}
# (vector width, work-group shape): every width, and every group shape at some width (the
# full cross product, 9 combinations a case, took over a minute of the suite)
VARIANTS = at_most_widest([(4, None), (8, (3, 2, 1)), (16, None), (16, (1, 1, 1))], at=0)
VARIANTS_2D = [(vw, local[:2] if local else None) for vw, local in VARIANTS]


def pack_ref(w, groups, channels=8):
    """(groups, ceil(M / C), taps, C) for C = channels (CO_BLOCK): packed[g, b, t, j] =
    w[g * M + C * b + j] at tap t, or 0 past M, written element by element as the layout's
    definition."""
    m, taps = w.shape[0] // groups, w[0].size
    flat = w.reshape(w.shape[0], taps)
    packed = np.zeros((groups, -(-m // channels), taps, channels), np.float32)
    for g, b, t, j in np.ndindex(*packed.shape):
        if channels * b + j < m:
            packed[g, b, t, j] = flat[g * m + channels * b + j, t]
    return packed


def channel_block(options: str) -> int:
    """The CO_BLOCK a build's options give (8 without one)."""
    return int(options.split("-DCO_BLOCK=")[1].split()[0]) if "-DCO_BLOCK=" in options else 8


def _gemm(cl_env, options, w, cols, bias, residual, groups, out_shape, local_size=None,
          act=(0.0, 0.0), vectors=2):
    n, c_out = out_shape[:2]
    m, k, p = c_out // groups, w[0].size, int(np.prod(out_shape[2:]))
    vw, channels = int(options.split("-DVW=")[1].split()[0]), channel_block(options)
    grid = (-(-m // channels), -(-p // (vectors * vw)), n * groups)
    return cl_env.run("conv2d", options, "conv2d_gemm", out_shape,
                      [pack_ref(w, groups, channels), cols, bias, residual],
                      [m, k, p, groups, n * groups, *act, 0], work_items=grid,
                      local_size=local_size)


@pytest.mark.parametrize("channels", [8, 5])
@pytest.mark.parametrize("shape,groups", [((21, 4, 3, 3), 1), ((16, 5, 1, 1), 1),
                                          ((12, 2, 3, 3), 3), ((3, 7, 1, 2), 1)])
def test_pack_filter(cl_env, rng, shape, groups, channels):
    """The device packing (for weights computed at run time) against the layout's definition."""
    w = rng.standard_normal(shape).astype(np.float32)
    want = pack_ref(w, groups, channels)
    m, taps = shape[0] // groups, w[0].size
    blocks = groups * -(-m // channels)
    got = cl_env.run("conv2d", f"-DVW=4 -DCO_BLOCK={channels}", "pack_filter", want.shape, [w],
                     [m, taps, blocks],
                     work_items=(-(-taps // 4), blocks))
    np.testing.assert_array_equal(got, want)


def packed_cols_ref(cols, groups, span):
    """(N, C * KH * KW, P) -> (N * groups, ceil(P / span), K, span), zero past P: the layout
    im2col writes and conv2d_gemm reads with -DPACKED_COLS."""
    n, rows, p = cols.shape
    k, blocks = rows // groups, -(-p // span)
    padded = np.zeros((n * groups, k, blocks * span), np.float32)
    padded[:, :, :p] = cols.reshape(n * groups, k, p)
    return np.ascontiguousarray(padded.reshape(n * groups, k, blocks, span).transpose(0, 2, 1, 3))


@pytest.mark.parametrize("vw,local_size", VARIANTS_2D)
@pytest.mark.parametrize("case", list(CASES))
def test_im2col(cl_env, rng, case, vw, local_size):
    x_shape, (_, kh, kw), stride, dilation, pads, groups = CASES[case]
    x = rng.standard_normal(x_shape).astype(np.float32)
    n, c, h, wd = x_shape
    oh, ow = out_size(h, wd, (kh, kw), stride, dilation, pads)
    want = packed_cols_ref(im2col_ref(x, (kh, kw), stride, dilation, pads), groups, 2 * vw)
    args = [c, h, wd, oh, ow, kh, kw, *stride, *dilation, pads[0], pads[1], c // groups * kh * kw,
            n * c]
    got = cl_env.run("conv2d", f"-DVW={vw}", "im2col", want.shape, [x], args,
                     work_items=(n * c, want.shape[1] * 2), local_size=local_size)
    assert_close(got, want)


def test_im2col_padding_stays_zero_beside_an_infinity(cl_env, rng):
    """im2col's lanes across rows (a 7-wide map, 16-float vectors) load the plane's first
    float for a tap in the padding and discard it: an infinity there must show only where a
    window covers it, never as NaN in the padding (inf * 0)."""
    x = rng.standard_normal((1, 3, 7, 7)).astype(np.float32)
    x[:, :, 0, 0] = np.inf
    padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    taps = np.stack([padded[:, kh:kh + 7, kw:kw + 7] for kh in range(3) for kw in range(3)], 1)
    want = packed_cols_ref(taps.reshape(1, 27, 49), 1, 2 * WIDEST)  # PX 2 vectors a block
    args = [3, 7, 7, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 27, 3]
    got = cl_env.run("conv2d", f"-DVW={WIDEST}", "im2col", want.shape, [x], args,
                     work_items=(3, want.shape[1] * 2))
    assert np.isinf(want).any() and not np.isnan(got).any()
    assert_close(got, want)


def _gemm_operands(rng, case):
    """(x, w, bias, residual, cols) of a CASES row: random operands and NumPy's im2col."""
    x_shape, (co, kh, kw), stride, dilation, pads, groups = case
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((co, x_shape[1] // groups, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32)
    oh, ow = out_size(*x_shape[2:], (kh, kw), stride, dilation, pads)
    residual = rng.standard_normal((x_shape[0], co, oh, ow)).astype(np.float32)
    cols = im2col_ref(x, (kh, kw), stride, dilation, pads).astype(np.float32)
    return x, w, bias, residual, cols


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("vw,local_size", VARIANTS)
@pytest.mark.parametrize("case", list(CASES))
def test_conv2d_gemm(cl_env, rng, case, vw, local_size, packed):
    """The GEMM on NumPy's im2col, as it lies or packed (-DPACKED_COLS): bias and a residual,
    groups, every tail."""
    x, w, bias, residual, cols = _gemm_operands(rng, CASES[case])
    _, _, stride, dilation, pads, groups = CASES[case]
    options = f"-DVW={vw} -DHAS_BIAS -DHAS_RESIDUAL"
    if packed:
        cols, options = packed_cols_ref(cols, groups, 2 * vw), f"{options} -DPACKED_COLS"
    got = _gemm(cl_env, options, w, cols, bias, residual, groups, residual.shape, local_size)
    want = conv2d_ref(x, w, bias, stride, dilation, pads, groups, residual)
    assert_close(got, want, atol=1e-4)


# conv2d_gemm's other blocks (ops/conv.py gemm_block): 3 pixel vectors, the CPU's prefetch;
# 1 vector (Winograd's GEMMs over one vector of tiles, ops/conv_winograd.py gemm_vectors);
# 5 channels (gemm_channels on a CPU of 16 vector registers)
GEMM_BLOCKS = {"px1": (1, "-DPX=1"), "px3": (3, "-DPX=3"), "px3_prefetch": (3, "-DPX=3 -DPREFETCH=16"),
               "px2_prefetch": (2, "-DPREFETCH=16"),
               "co5_px2_prefetch": (2, "-DCO_BLOCK=5 -DPREFETCH=16"),
               "co5_px1": (1, "-DCO_BLOCK=5 -DPX=1")}
# the GEMM shapes past CASES: pixels that fill 3 vectors at VW 16 with a tail (1x1 on 7x9 is
# 63 pixels; 11x13 is 143), and more channels than a block and a few
GEMM_CASES = {**CASES,
              "pointwise_63_pixels": ((2, 7, 7, 9), (13, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1),
              "pointwise_143_pixels": ((1, 12, 11, 13), (17, 1, 1), (1, 1), (1, 1),
                                       (0, 0, 0, 0), 1),
              "3x3_143_pixels_groups": ((1, 6, 11, 13), (10, 3, 3), (1, 1), (1, 1),
                                        (1, 1, 1, 1), 2)}


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("vw,local_size", at_most_widest([(4, (3, 2, 1)), (16, (1, 1, 1))], at=0))
@pytest.mark.parametrize("block", list(GEMM_BLOCKS))
@pytest.mark.parametrize("case", list(GEMM_CASES))
def test_conv2d_gemm_blocks(cl_env, rng, case, block, vw, local_size, packed):
    """conv2d_gemm built with PX 1 or 3 or the prefetch against NumPy: every tail of the
    block (lanes in its second and third vector, or all in one), packed cols written by im2col with the
    same PX, bias and a residual."""
    x_shape, (_, kh, kw), stride, dilation, pads, groups = GEMM_CASES[case]
    vectors, block_options = GEMM_BLOCKS[block]
    x, w, bias, residual, cols = _gemm_operands(rng, GEMM_CASES[case])
    oh, ow = residual.shape[2:]
    options = f"-DVW={vw} -DHAS_BIAS -DHAS_RESIDUAL {block_options}"
    if packed:
        n, c, h, wd = x_shape
        span = vectors * vw
        want_cols = packed_cols_ref(cols, groups, span)
        args = [c, h, wd, oh, ow, kh, kw, *stride, *dilation, pads[0], pads[1],
                c // groups * kh * kw, n * c]
        cols = cl_env.run("conv2d", f"-DVW={vw} {block_options}", "im2col", want_cols.shape,
                          [x], args, work_items=(n * c, want_cols.shape[1] * vectors))
        assert_close(cols, want_cols)
        options = f"{options} -DPACKED_COLS"
    got = _gemm(cl_env, options, w, cols, bias, residual, groups, residual.shape, local_size,
                vectors=vectors)
    want = conv2d_ref(x, w, bias, stride, dilation, pads, groups, residual)
    assert_close(got, want, atol=1e-4)



def test_conv2d_gemm_without_bias_or_residual(cl_env, rng):
    x = rng.standard_normal((1, 7, 5, 6)).astype(np.float32)
    w = rng.standard_normal((9, 7, 1, 1)).astype(np.float32)
    got = _gemm(cl_env, "-DVW=8", w, x.reshape(1, 7, 30), None, None, 1, (1, 9, 5, 6))
    assert_close(got, conv2d_ref(x, w, None, (1, 1), (1, 1), (0, 0, 0, 0), 1), atol=1e-4)


@pytest.mark.parametrize(
    "activation,params,ref",
    [
        (1, (0.0, 0.0), lambda y, a, b: np.maximum(y, 0)),
        (2, (0.1, 0.0), lambda y, a, b: np.where(y >= 0, y, a * y)),
        (3, (-0.5, 1.5), lambda y, a, b: np.clip(y, a, b)),
        (7, (0.0, 0.0), lambda y, a, b: y * np.clip(y / 6 + 0.5, 0, 1)),
        (6, (0.2, 0.5), lambda y, a, b: np.clip(a * y + b, 0, 1)),
        (4, (0.0, 0.0), lambda y, a, b: 1 / (1 + np.exp(-y))),
        (16, (1.5, 0.0), lambda y, a, b: y / (1 + np.exp(-a * y))),
        (17, (0.7, -0.2), lambda y, a, b: a * y * np.clip(y / 6 + 0.5, 0, 1) + b),
        (19, (0.0, 0.0), lambda y, a, b: 0.5 * y * (1 + erf(y / np.sqrt(2)))),
    ],
)
@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
@pytest.mark.parametrize("hw", [(6, 7), (1, 5)])
def test_conv2d_gemm_activation_after_residual(cl_env, rng, activation, params, ref, vw, hw):
    """act(conv + bias + residual): the residual is added before the activation (ResNet),
    on whole vectors (42 pixels) and on a tail narrower than one (5 pixels)."""
    x = rng.standard_normal((1, 4, *hw)).astype(np.float32)
    w = rng.standard_normal((3, 4, 1, 1)).astype(np.float32) * 0.5
    bias = rng.standard_normal(3).astype(np.float32)
    residual = rng.standard_normal((1, 3, *hw)).astype(np.float32)
    conv = (x, w, bias, (1, 1), (1, 1), (0, 0, 0, 0), 1)
    options = f"-DVW={vw} -DHAS_BIAS -DHAS_RESIDUAL -DACTIVATION={activation}"
    got = _gemm(cl_env, options, w, x.reshape(1, 4, -1), bias, residual, 1, residual.shape,
                act=params)
    want = ref(conv2d_ref(*conv, residual=residual), *params)
    # the activation must actually have changed something, or the test proves nothing
    assert not np.allclose(want, conv2d_ref(*conv, residual=residual))
    assert_close(got, want, atol=1e-4)


# (N, C_in, H, W), (C_out, KH, KW), stride, dilation, pads (t, l, b, r); groups = C_in
DEPTHWISE = {
    "3x3_pad1": ((2, 3, 5, 5), (3, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    "3x3_wide": ((1, 2, 6, 41), (2, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    "multiplier_2_stride_2": ((1, 5, 9, 8), (10, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    "5x5_dilated": ((1, 4, 12, 19), (4, 5, 5), (1, 1), (2, 2), (4, 4, 4, 4)),
    "asym_pads_stride": ((2, 3, 10, 23), (3, 3, 5), (1, 2), (1, 1), (0, 2, 1, 0)),
    "no_pad_35_wide": ((1, 2, 4, 35), (2, 3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
    # edge blocks of depthwise_conv2d that load_row serves lane by lane: stride 3, and a
    # window too wide (7 taps 9 apart) to stage
    "stride_3": ((1, 3, 11, 50), (3, 3, 3), (3, 3), (1, 1), (1, 1, 1, 1)),
    "7x7_dilated_wide_span": ((1, 2, 10, 90), (2, 7, 7), (1, 1), (1, 9), (3, 27, 3, 27)),
}


@pytest.mark.parametrize("vw,local_size", VARIANTS)
@pytest.mark.parametrize("case", list(DEPTHWISE))
def test_depthwise_conv2d(cl_env, rng, case, vw, local_size):
    x_shape, (co, kh, kw), stride, dilation, pads = DEPTHWISE[case]
    n, c, h, wd = x_shape
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((co, 1, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32)
    oh, ow = out_size(h, wd, (kh, kw), stride, dilation, pads)
    residual = rng.standard_normal((n, co, oh, ow)).astype(np.float32)
    args = [c, h, wd, co, oh, ow, kh, kw, *stride, *dilation, pads[0], pads[1], n * co, 0.0, 0.0]
    got = cl_env.run("conv2d", f"-DVW={vw} -DHAS_BIAS -DHAS_RESIDUAL", "depthwise_conv2d",
                     (n, co, oh, ow), [x, w, bias, residual], args,
                     work_items=(-(-ow // vw), -(-oh // 4), n * co), local_size=local_size)
    assert_close(got, conv2d_ref(x, w, bias, stride, dilation, pads, c, residual), atol=1e-4)


@pytest.mark.parametrize("channels", [8, 5])
@pytest.mark.parametrize("vw,local_size", VARIANTS)
@pytest.mark.parametrize("case", list(CASES))
def test_conv2d_direct(cl_env, rng, case, vw, local_size, channels):
    """The direct kernel: strides 1, 2 (whole-vector loads when inside) and more, groups, in
    channel blocks of 8 and of 5 (ops/conv.py gemm_channels)."""
    x_shape, (co, kh, kw), stride, dilation, pads, groups = CASES[case]
    n, c, h, wd = x_shape
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((co, c // groups, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32)
    oh, ow = out_size(h, wd, (kh, kw), stride, dilation, pads)
    residual = rng.standard_normal((n, co, oh, ow)).astype(np.float32)
    blocks = n * groups * -(-(co // groups) // channels)
    args = [c, h, wd, co, oh, ow, kh, kw, *stride, *dilation, pads[0], pads[1], groups, blocks,
            0.0, 0.0]
    got = cl_env.run("conv2d", f"-DVW={vw} -DCO_BLOCK={channels} -DHAS_BIAS -DHAS_RESIDUAL",
                     "conv2d_direct", (n, co, oh, ow), [x, pack_ref(w, groups, channels), bias,
                                                        residual], args,
                     work_items=(blocks, -(-ow // vw), oh), local_size=local_size)
    assert_close(got, conv2d_ref(x, w, bias, stride, dilation, pads, groups, residual), atol=1e-4)


@pytest.mark.parametrize("vw", WIDTHS)
@pytest.mark.parametrize("case", ["stride2_pad1", "dilated_4_inputs"])
def test_conv2d_direct_stem_taps(cl_env, rng, case, vw):
    """A stem's taps as straight-line code (-DSTEM_TAPS, ops/conv.py stem_taps) in the work
    items whose windows lie inside the input, the loops at the edges, 24 channels a block."""
    x_shape, (co, kh, kw), stride, dilation, pads = {
        "stride2_pad1": ((1, 3, 23, 70), (24, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
        "dilated_4_inputs": ((1, 4, 12, 40), (30, 3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),
    }[case]
    n, c, h, wd = x_shape
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((co, c, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32)
    oh, ow = out_size(h, wd, (kh, kw), stride, dilation, pads)
    blocks = n * -(-co // 24)
    args = [c, h, wd, co, oh, ow, kh, kw, *stride, *dilation, pads[0], pads[1], 1, blocks,
            0.0, 0.0]
    options = (f"-DVW={vw} -DCO_BLOCK=24 -DHAS_BIAS -DSTEM_TAPS -DSTEM_CIN={c} -DSTEM_KH={kh}"
               f" -DSTEM_KW={kw} -DSTEM_SW={stride[1]}")
    got = cl_env.run("conv2d", options, "conv2d_direct", (n, co, oh, ow),
                     [x, pack_ref(w, 1, 24), bias, None], args,
                     work_items=(blocks, -(-ow // vw), oh), local_size=(1, 2, 2))
    assert_close(got, conv2d_ref(x, w, bias, stride, dilation, pads, 1), atol=1e-4)


# conv2d_direct_wide: rows whose interior (windows inside the row) fills blocks of 2 vectors
# or not, ends computed column by column, tails of blocks and of channel blocks.
# (N, C_in, H, W), (C_out, KH, KW), stride, dilation, pads (t, l, b, r), groups
WIDE_CASES = {
    "3x3_interior_tail": ((1, 5, 6, 70), (11, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
    # an interior of exactly one block at vector width 16, 8 and 4: it takes both ends
    "one_block_both_ends_34": ((1, 3, 4, 34), (8, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "one_block_both_ends_18": ((1, 3, 4, 18), (8, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "one_block_both_ends_10": ((1, 3, 4, 10), (8, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "asym_pads_3x5": ((2, 4, 5, 50), (9, 3, 5), (1, 1), (1, 1), (2, 3, 1, 0), 1),
    "dilated": ((1, 3, 9, 60), (6, 3, 3), (1, 1), (2, 3), (2, 3, 2, 3), 1),
    "groups_channel_tail": ((1, 6, 5, 41), (20, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 2),
    "narrower_than_a_block": ((1, 3, 5, 20), (5, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "stride_2_interior": ((1, 3, 7, 75), (4, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 1),
    "stride_3_tiny": ((1, 2, 5, 13), (3, 3, 3), (3, 3), (1, 1), (1, 1, 1, 1), 1),
}


def _direct_wide(cl_env, options, vw, x, w, bias, residual, stride, dilation, pads, groups,
                 local_size, act=(0.0, 0.0)):
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    oh, ow = out_size(h, wd, (kh, kw), stride, dilation, pads)
    channels = channel_block(options)
    blocks = n * groups * -(-(co // groups) // channels)
    args = [c, h, wd, co, oh, ow, kh, kw, *stride, *dilation, pads[0], pads[1], groups, blocks,
            *act]
    return cl_env.run("conv2d", f"-DVW={vw} {options}", "conv2d_direct_wide", (n, co, oh, ow),
                      [x, pack_ref(w, groups, channels), bias, residual], args,
                      work_items=(blocks, -(-ow // (2 * vw)), oh), local_size=local_size)


@pytest.mark.parametrize("channels", [8, 5])
@pytest.mark.parametrize("vw,local_size", VARIANTS)
@pytest.mark.parametrize("case", [*WIDE_CASES, *CASES])
def test_conv2d_direct_wide(cl_env, rng, case, vw, local_size, channels):
    x_shape, (co, kh, kw), stride, dilation, pads, groups = {**CASES, **WIDE_CASES}[case]
    n, c, h, wd = x_shape
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((co, c // groups, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32)
    oh, ow = out_size(h, wd, (kh, kw), stride, dilation, pads)
    residual = rng.standard_normal((n, co, oh, ow)).astype(np.float32)
    got = _direct_wide(cl_env, f"-DCO_BLOCK={channels} -DHAS_BIAS -DHAS_RESIDUAL", vw, x, w, bias,
                       residual, stride, dilation, pads, groups, local_size)
    assert_close(got, conv2d_ref(x, w, bias, stride, dilation, pads, groups, residual), atol=1e-4)


@pytest.mark.parametrize("activation, ref", [
    (1, lambda y: np.maximum(y, 0)), (7, lambda y: y * np.clip(y / 6 + 0.5, 0, 1))],
    ids=["relu", "hard_swish"])
def test_conv2d_direct_wide_fused_activation(cl_env, rng, activation, ref):
    """The activation on the vectors and on the columns at the row's ends, no bias."""
    x = rng.standard_normal((1, 4, 5, 40)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    conv = ((1, 1), (1, 1), (1, 2, 1, 0), 1)
    got = _direct_wide(cl_env, f"-DACTIVATION={activation}", WIDEST, x, w, None, None, *conv,
                       (1, 1, 1))
    want = conv2d_ref(x, w, None, *conv)
    assert (want < -3).any() and (want > 3).any()
    assert_close(got, ref(want), atol=1e-4)
