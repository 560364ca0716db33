"""conv2d.cl against a NumPy convolution (per-tap einsum over zero-padded input)."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close


def conv2d_ref(x, w, bias, stride, dilation, pads, groups):
    """ONNX Conv; pads = (top, left, bottom, right)."""
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
    return out


# (N, C_in, H, W), (C_out, KH, KW), stride, dilation, pads (t, l, b, r), groups
CASES = {
    "3x3_pad1": ((2, 3, 7, 9), (4, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "strided_dilated_asym": ((1, 2, 11, 10), (3, 5, 3), (2, 3), (2, 1), (0, 1, 2, 0), 1),
    "groups": ((2, 4, 6, 5), (6, 3, 3), (1, 1), (1, 1), (1, 0, 1, 2), 2),
    "depthwise_x2": ((1, 5, 9, 8), (10, 3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 5),
    "depthwise_3x3_pad": ((2, 3, 5, 5), (3, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 3),
    "pointwise": ((1, 8, 3, 5), (5, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1),
    "kernel_wider_than_input": ((1, 2, 2, 3), (2, 5, 5), (1, 1), (1, 1), (2, 2, 2, 2), 1),
    "stride_larger_than_kernel": ((1, 3, 13, 13), (2, 2, 2), (4, 3), (1, 1), (0, 0, 1, 1), 1),
}


def _run(cl_env, options, x, w, bias, stride, dilation, pads, groups, act=(0.0, 0.0)):
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = stride, dilation, pads
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    args = [n, c, h, wd, co, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, groups, *act]
    return cl_env.run("conv2d", options, "conv2d", (n, co, oh, ow), [x, w, bias], args)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_conv2d(cl_env, rng, case, with_bias):
    x_shape, (co, kh, kw), stride, dilation, pads, groups = CASES[case]
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((co, x_shape[1] // groups, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32) if with_bias else None
    options = "-DHAS_BIAS" if with_bias else ""
    got = _run(cl_env, options, x, w, bias, stride, dilation, pads, groups)
    assert_close(got, conv2d_ref(x, w, bias, stride, dilation, pads, groups), atol=1e-4)


@pytest.mark.parametrize(
    "activation,params,ref",
    [
        (1, (0.0, 0.0), lambda y, a, b: np.maximum(y, 0)),
        (2, (0.1, 0.0), lambda y, a, b: np.where(y >= 0, y, a * y)),
        (3, (-0.5, 1.5), lambda y, a, b: np.clip(y, a, b)),
        (7, (0.0, 0.0), lambda y, a, b: y * np.clip(y / 6 + 0.5, 0, 1)),
    ],
)
def test_conv2d_fused_activation(cl_env, rng, activation, params, ref):
    x = rng.standard_normal((1, 4, 6, 7)).astype(np.float32)
    w = rng.standard_normal((3, 4, 3, 3)).astype(np.float32) * 0.5
    bias = rng.standard_normal(3).astype(np.float32)
    conv = (x, w, bias, (1, 1), (1, 1), (1, 1, 1, 1), 1)
    got = _run(cl_env, f"-DHAS_BIAS -DACTIVATION={activation}", *conv, act=params)
    want = ref(conv2d_ref(*conv), *params)
    # the activation must actually have changed something, or the test proves nothing
    assert not np.allclose(want, conv2d_ref(*conv))
    assert_close(got, want, atol=1e-4)
