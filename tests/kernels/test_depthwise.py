"""depthwise.cl (depthwise_rows) against a NumPy convolution.

Cases put rows narrower than a vector, one wider, and past a whole number of vectors (the
last block that steps back), heights past a band of 4 or 8 rows, both strides, multipliers > 1,
batch 2 (planes of the second image), pads on either side and none, and plane counts that
per_item does not divide; every vector width, both bands, several work-group shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

from macecl.ops.activations import apply
from macecl.ops.depthwise import dilation_options, window_options

from .helpers import WIDEST, assert_close, at_most_widest
from .test_conv2d import conv2d_ref, out_size

# (N, C_in, H, W), (C_out, KH, KW), stride, pads (t, l, b, r), planes per work item
CASES = {
    "3x3_pad1": ((1, 3, 9, 21), (3, 3, 3), (1, 1), (1, 1, 1, 1), 1),
    "3x3_narrow_batch2": ((2, 3, 7, 5), (3, 3, 3), (1, 1), (1, 1, 1, 1), 2),
    "3x3_stride2": ((1, 4, 11, 37), (4, 3, 3), (2, 2), (1, 1, 1, 1), 3),
    "3x3_stride_2x1_multiplier2": ((1, 3, 10, 18), (6, 3, 3), (2, 1), (1, 1, 1, 1), 4),
    "3x3_stride_1x2_odd": ((2, 2, 6, 33), (2, 3, 3), (1, 2), (1, 1, 1, 1), 1),
    "5x5_pad2": ((1, 5, 6, 40), (5, 5, 5), (1, 1), (2, 2, 2, 2), 2),
    "5x5_stride2_batch2": ((2, 3, 9, 20), (3, 5, 5), (2, 2), (2, 2, 2, 2), 5),
    "5x5_stride_2x1_short": ((1, 4, 3, 17), (4, 5, 5), (2, 1), (2, 2, 2, 2), 1),
    "3x5_asym_pads": ((1, 3, 8, 19), (3, 3, 5), (1, 1), (0, 3, 2, 0), 2),
    "7x7_no_pad": ((1, 2, 12, 30), (2, 7, 7), (1, 1), (0, 0, 0, 0), 1),
    "stride3_rows": ((1, 2, 14, 16), (2, 3, 3), (3, 1), (1, 1, 1, 1), 1),
    "one_column": ((1, 3, 5, 1), (3, 3, 3), (1, 1), (1, 1, 1, 1), 2),
    "kernel_wider_than_input": ((1, 2, 2, 3), (2, 5, 5), (1, 1), (2, 2, 2, 2), 1),
}
# (vector width, work-group shape, output rows per work item)
VARIANTS = at_most_widest([(4, None, 4), (8, (2, 3), 8), (16, None, 8), (16, (1, 1), 4)], at=0)


def run_rows(cl_env, x, w, bias, residual, stride, pads, per_item, vw, local_size=None,
             activation=(0, 0.0, 0.0), band=4, dilation=(1, 1)):
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    oh, ow = out_size(h, wd, (kh, kw), stride, dilation, pads)
    code, act_a, act_b = activation
    options = " ".join([f"-DVW={vw}", *window_options(kh, kw, *stride, band),
                        *dilation_options(*dilation),
                        f"-DACTIVATION={code}", *(["-DHAS_BIAS"] if bias is not None else []),
                        *(["-DHAS_RESIDUAL"] if residual is not None else [])])
    args = [c, h, wd, co, oh, ow, pads[0], pads[1], n * co, per_item, act_a, act_b]
    return cl_env.run("depthwise", options, "depthwise_rows", (n, co, oh, ow),
                      [x, w, bias, residual], args,
                      work_items=(-(-oh // band), -(-n * co // per_item)),
                      local_size=local_size)


@pytest.mark.parametrize("vw,local_size,band", VARIANTS)
@pytest.mark.parametrize("case", list(CASES))
def test_depthwise_rows(cl_env, rng, case, vw, local_size, band):
    x_shape, (co, kh, kw), stride, pads, per_item = CASES[case]
    n, c, h, wd = x_shape
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((co, 1, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32)
    oh, ow = out_size(h, wd, (kh, kw), stride, (1, 1), pads)
    residual = rng.standard_normal((n, co, oh, ow)).astype(np.float32)
    got = run_rows(cl_env, x, w, bias, residual, stride, pads, per_item, vw, local_size,
                   band=band)
    assert_close(got, conv2d_ref(x, w, bias, stride, (1, 1), pads, c, residual), atol=1e-4)


# (N, C, H, W), (KH, KW), stride, dilation, pads (t, l, b, r)
DILATED = {
    "deeplab_5x5_d2": ((1, 4, 14, 14), (5, 5), (1, 1), (2, 2), (4, 4, 4, 4)),
    "3x3_d2_wide": ((1, 3, 9, 41), (3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),
    "3x3_d2x3_stride2": ((2, 2, 13, 37), (3, 3), (2, 2), (2, 3), (2, 3, 1, 2)),
    "3x3_d3_short_rows": ((1, 2, 3, 20), (3, 3), (1, 1), (3, 1), (3, 1, 3, 1)),
}


@pytest.mark.parametrize("vw,band", at_most_widest([(4, 4), (16, 8)], at=0))
@pytest.mark.parametrize("case", list(DILATED))
def test_depthwise_rows_dilated(cl_env, rng, case, vw, band):
    """-DDW_DH / -DDW_DW: every band row's taps come from every DH-th input row under the
    band, and the columns DW apart (edge blocks by row_vector, inner ones whole)."""
    x_shape, (kh, kw), stride, dilation, pads = DILATED[case]
    c = x_shape[1]
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((c, 1, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    got = run_rows(cl_env, x, w, bias, None, stride, pads, 2, vw, band=band, dilation=dilation)
    assert_close(got, conv2d_ref(x, w, bias, stride, dilation, pads, c), atol=1e-4)


def test_depthwise_rows_without_bias_or_residual(cl_env, rng):
    x = rng.standard_normal((1, 4, 6, 23)).astype(np.float32)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    got = run_rows(cl_env, x, w, None, None, (1, 1), (1, 1, 1, 1), 3, WIDEST)
    assert_close(got, conv2d_ref(x, w, None, (1, 1), (1, 1), (1, 1, 1, 1), 4), atol=1e-4)


@pytest.mark.parametrize("activation", [(1, 0.0, 0.0), (2, 0.1, 0.0), (3, -0.5, 0.7),
                                        (4, 0.0, 0.0), (6, 0.3, 0.4), (7, 0.0, 0.0)],
                         ids=["relu", "leaky", "clip", "sigmoid", "hard_sigmoid", "hard_swish"])
@pytest.mark.parametrize("vw,wd", at_most_widest([(16, 37), (8, 5)], at=0))
def test_depthwise_rows_activation(cl_env, rng, activation, vw, wd):
    """Each fused activation, on whole vectors (the select forms) and on a row narrower than
    one (lane by lane), after bias and residual; NaN inputs stay NaN where ONNX's would."""
    x = (rng.standard_normal((1, 3, 6, wd)) * 4).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    w = rng.standard_normal((3, 1, 5, 5)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    pads = (2, 2, 2, 2)
    residual = rng.standard_normal((1, 3, 6, wd)).astype(np.float32)
    got = run_rows(cl_env, x, w, bias, residual, (1, 1), pads, 2, vw, activation=activation,
                   band=8)
    plain = conv2d_ref(x, w, bias, (1, 1), (1, 1), pads, 3, residual)
    want = apply(activation[0], plain, *activation[1:])
    assert np.isnan(plain).any() and not np.allclose(want, plain, equal_nan=True)
    assert_close(got, want, atol=1e-4)


@pytest.mark.parametrize("k", [3, 5])
def test_depthwise_rows_keeps_each_value_in_its_row(cl_env, k):
    """Infinities in every row's first and last columns: a tap that read a neighbouring
    row's column through the padding (instead of zero) would spread them (or NaN) there.
    3x3 takes the masked whole-vector loads over the row's ends, 5x5 the tested ones."""
    n, c, h, wd = 2, 3, 5, 20
    x = np.ones((n, c, h, wd), np.float32)
    x[..., 0], x[..., -1] = np.inf, -np.inf
    w = np.ones((c, 1, k, k), np.float32)
    pads = (k // 2,) * 4
    for stride in [(1, 1), (1, 2)]:
        got = run_rows(cl_env, x, w, None, None, stride, pads, 1, WIDEST)
        want = conv2d_ref(x, w, None, stride, (1, 1), pads, c)
        assert np.isfinite(want).any() and assert_close(got, want) is None
