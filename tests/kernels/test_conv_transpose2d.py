"""conv_transpose2d.cl against a NumPy scatter implementation of ONNX ConvTranspose."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.ops.conv_disjoint import pack_disjoint_filter

from .helpers import WIDEST, assert_close, at_most_widest


def conv_transpose2d_ref(x, w, bias, stride, dilation, pads, output_padding, groups):
    """Scatter every input pixel through the kernel into a full-size output, then crop."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x.shape
    _, copg, kh_n, kw_n = w.shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr), (oph, opw) = stride, dilation, pads, output_padding
    full_h = sh * (h - 1) + dh * (kh_n - 1) + 1 + oph
    full_w = sw * (wd - 1) + dw * (kw_n - 1) + 1 + opw
    cipg = c // groups
    xg = x.reshape(n, groups, cipg, h, wd)
    wg = w.reshape(groups, cipg, copg, kh_n, kw_n)
    full = np.zeros((n, groups, copg, full_h, full_w))
    for kh in range(kh_n):
        for kw in range(kw_n):
            contrib = np.einsum("ngchw,gco->ngohw", xg, wg[:, :, :, kh, kw])
            full[:, :, :, kh * dh: kh * dh + sh * (h - 1) + 1: sh,
                 kw * dw: kw * dw + sw * (wd - 1) + 1: sw] += contrib
    full = full.reshape(n, groups * copg, full_h, full_w)
    out = full[:, :, pt: full_h - pb, pl: full_w - pr]
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


# (N, C_in, H, W), (C_out, KH, KW), stride, dilation, pads (t, l, b, r), output_padding, groups
CASES = {
    "k3_s1_p1": ((2, 3, 5, 6), (4, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), (0, 0), 1),
    "k3_s2_p1_outpad1": ((1, 4, 4, 5), (3, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "k4_s2_p1_upsample": ((1, 2, 3, 3), (2, 4, 4), (2, 2), (1, 1), (1, 1, 1, 1), (0, 0), 1),
    "dilated_asym": ((2, 2, 4, 3), (3, 3, 2), (3, 2), (2, 3), (0, 2, 1, 0), (2, 1), 1),
    "groups": ((1, 4, 3, 4), (6, 3, 3), (2, 1), (1, 1), (0, 1, 1, 0), (1, 0), 2),
    "depthwise": ((2, 3, 4, 4), (3, 2, 2), (2, 2), (1, 1), (0, 0, 0, 0), (0, 0), 3),
    "k1_s3": ((1, 2, 3, 2), (2, 1, 1), (3, 3), (1, 1), (0, 0, 0, 0), (2, 1), 1),
    # more output channels than a block of 8, in groups: the channel-block tail
    "k2_s2_many_channels": ((2, 6, 3, 5), (22, 2, 2), (2, 2), (1, 1), (0, 0, 0, 0), (0, 0), 2),
    # one output channel, as PP-OCR det's last layer (ops/conv.py takes blocks of one)
    "k2_s2_one_channel": ((1, 5, 3, 4), (1, 2, 2), (2, 2), (1, 1), (0, 0, 0, 0), (0, 0), 1),
}


def _run(cl_env, options, x, w, bias, stride, dilation, pads, output_padding, groups,
         act=(0.0, 0.0), co_block=8):
    n, c, h, wd = x.shape
    _, copg, kh, kw = w.shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr), (oph, opw) = stride, dilation, pads, output_padding
    oh = sh * (h - 1) + oph + dh * (kh - 1) + 1 - pt - pb
    ow = sw * (wd - 1) + opw + dw * (kw - 1) + 1 - pl - pr
    co = copg * groups
    args = [n, c, h, wd, co, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, groups, *act]
    blocks = n * groups * -(-copg // co_block)
    options = f"{options} -DCO_BLOCK={co_block}"
    return cl_env.run("conv_transpose2d", options, "conv_transpose2d", (n, co, oh, ow),
                      [x, w, bias], args, work_items=(ow, oh, blocks), local_size=(2, 3, 1))


@pytest.mark.parametrize("co_block", [1, 8])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_conv_transpose2d(cl_env, rng, case, with_bias, co_block):
    x_shape, (co, kh, kw), stride, dilation, pads, output_padding, groups = CASES[case]
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((x_shape[1], co // groups, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32) if with_bias else None
    conv = (x, w, bias, stride, dilation, pads, output_padding, groups)
    got = _run(cl_env, "-DHAS_BIAS" if with_bias else "", *conv, co_block=co_block)
    assert_close(got, conv_transpose2d_ref(*conv), atol=1e-4)


def test_conv_transpose2d_fused_relu(cl_env, rng):
    x = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(2).astype(np.float32)
    conv = (x, w, bias, (2, 2), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    got = _run(cl_env, "-DHAS_BIAS -DACTIVATION=1", *conv)
    want = conv_transpose2d_ref(*conv)
    assert (want < 0).any()
    assert_close(got, np.maximum(want, 0), atol=1e-4)


# conv_transpose2d_disjoint: kernel = stride, no dilation. (N, C_in, H, W), (C_out, KH, KW),
# pads (t, l, b, r), output_padding, groups
DISJOINT_CASES = {
    # widths past one vector and not a multiple of it: the stepped-back tail block
    "k2_wide_tail": ((1, 5, 3, 37), (6, 2, 2), (0, 0, 0, 0), (0, 0), 1),
    # narrower than a vector: lanes gathered one by one
    "k2_narrow": ((2, 3, 4, 5), (3, 2, 2), (0, 0, 0, 0), (0, 0), 1),
    # pads crop both ends, output_padding adds a bias-only row and column
    "k2_pads_outpad": ((1, 4, 5, 21), (5, 2, 2), (1, 3, 0, 2), (1, 1), 1),
    # pads of a whole stride and more: input rows and columns that reach no output
    "k2_large_pads": ((1, 2, 6, 40), (3, 2, 2), (3, 2, 2, 5), (0, 0), 1),
    "k3x2_groups_tail": ((1, 6, 4, 19), (10, 3, 2), (1, 0, 2, 1), (2, 1), 2),
    "k3_lanes": ((2, 3, 3, 7), (4, 3, 3), (1, 1, 0, 2), (0, 2), 1),
    "k1x4": ((1, 3, 5, 9), (2, 1, 4), (0, 1, 0, 2), (0, 3), 1),
    "depthwise": ((1, 4, 6, 18), (4, 2, 2), (0, 0, 0, 0), (1, 0), 4),
    "one_channel": ((1, 7, 5, 70), (1, 2, 2), (0, 0, 0, 0), (0, 0), 1),
}


def _run_disjoint(cl_env, vw, channels, vectors, options, x, w, bias, pads, output_padding,
                  groups, act=(0.0, 0.0), local_size=(2, 3, 1)):
    n, c, h, wd = x.shape
    _, copg, kh, kw = w.shape
    (pt, pl, pb, pr), (oph, opw) = pads, output_padding
    oh, ow = kh * h + oph - pt - pb, kw * wd + opw - pl - pr
    co = copg * groups
    blocks = n * groups * -(-copg // channels)
    rows, cols = -(-(oh + pt) // kh), -(-(ow + pl) // kw)
    options = (f"{options} -DVW={vw} -DCO_BLOCK={channels} -DPX={vectors} -DSTEP_H={kh} "
               f"-DSTEP_W={kw}")
    packed = pack_disjoint_filter(w, groups, channels)
    args = [c, h, wd, co, oh, ow, pt, pl, groups, blocks, *act]
    return cl_env.run("conv_transpose2d", options, "conv_transpose2d_disjoint", (n, co, oh, ow),
                      [x, packed, bias], args,
                      work_items=(blocks, -(-cols // (vw * vectors)), rows),
                      local_size=local_size)


@pytest.mark.parametrize("vw, channels, vectors", at_most_widest(
    [(16, 4, 1), (16, 1, 4), (8, 3, 2), (4, 8, 1)], at=0))
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("case", list(DISJOINT_CASES))
def test_conv_transpose2d_disjoint(cl_env, rng, case, with_bias, vw, channels, vectors):
    x_shape, (co, kh, kw), pads, output_padding, groups = DISJOINT_CASES[case]
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((x_shape[1], co // groups, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32) if with_bias else None
    got = _run_disjoint(cl_env, vw, channels, vectors, "-DHAS_BIAS" if with_bias else "",
                        x, w, bias, pads, output_padding, groups)
    want = conv_transpose2d_ref(x, w, bias, (kh, kw), (1, 1), pads, output_padding, groups)
    assert_close(got, want, atol=1e-4)


@pytest.mark.parametrize("activation, function", [
    (1, lambda y: np.maximum(y, 0)), (4, lambda y: 1 / (1 + np.exp(-y)))],
    ids=["relu", "sigmoid"])
@pytest.mark.parametrize("local_size", [(1, 1, 1), None])
def test_conv_transpose2d_disjoint_fused_activation(cl_env, rng, activation, function,
                                                    local_size):
    """Both store paths (whole interleaved vectors, lanes at the padded ends) activate."""
    x = rng.standard_normal((1, 6, 7, 45)).astype(np.float32)
    w = rng.standard_normal((6, 5, 2, 2)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    pads, output_padding = (1, 1, 0, 0), (1, 1)
    got = _run_disjoint(cl_env, WIDEST, 4, 1, f"-DHAS_BIAS -DACTIVATION={activation}", x, w, bias,
                        pads, output_padding, 1, local_size=local_size)
    want = conv_transpose2d_ref(x, w, bias, (2, 2), (1, 1), pads, output_padding, 1)
    assert (want < 0).any()
    assert_close(got, function(want), atol=1e-4)
