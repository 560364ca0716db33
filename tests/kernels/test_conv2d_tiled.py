"""conv2d_tiled.cl (the local-memory implicit GEMM and its split-K reduction) against NumPy.

PoCL runs local memory and barriers correctly (as ordinary memory), so the tiled kernel is
checked here even though the CPU device never chooses it. The shapes leave tails in every
tile dimension (channels past TM, pixels past TN, K past its 16-step and past a split), the
global size is padded past the last work group (see ClEnv.launch), and each tile shape the
lowering may build runs, with and without split-K.
"""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close
from .test_conv2d import CASES, conv2d_ref, out_size

# (N, C_in, H, W), (C_out, KH, KW), stride, dilation, pads (t, l, b, r), groups
TILED_CASES = {
    **CASES,
    "channels_past_tiles_batch2": ((2, 37, 9, 11), (70, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
    "7x7_stride2": ((1, 3, 23, 21), (10, 7, 7), (2, 2), (1, 1), (3, 3, 3, 3), 1),
    "pointwise_aligned": ((1, 64, 8, 8), (72, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1),
    "pointwise_stride2": ((2, 20, 9, 9), (33, 1, 1), (2, 2), (1, 1), (0, 0, 0, 0), 1),
    "groups_channel_tails": ((2, 12, 7, 7), (9, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 3),
    "late_layer_7x7": ((1, 96, 7, 7), (40, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
}
TILES = [(64, 64), (32, 64), (64, 32), (32, 32)]


def tiled(cl_env, x, w, bias, residual, stride, dilation, pads, groups, tile=(64, 64),
          splits=1, activation=0, params=(0.0, 0.0)):
    """The lowering's launches: conv2d_tiled alone, or its partial sums then the reduction."""
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    oh, ow = out_size(h, wd, (kh, kw), stride, dilation, pads)
    tm, tn = tile
    m, p = co // groups, oh * ow
    grid = (-(-p // tn) * tn // 4, -(-m // tm) * tm // 4, n * groups * splits)
    local = (tn // 4, tm // 4, 1)
    epilogue = (" -DHAS_BIAS" if bias is not None else "") + \
               (" -DHAS_RESIDUAL" if residual is not None else "") + f" -DACTIVATION={activation}"
    args = [c, h, wd, co, oh, ow, kh, kw, *stride, *dilation, pads[0], pads[1], groups,
            n * groups, splits, *params]
    shape = (n, co, oh, ow)
    if splits == 1:
        return cl_env.run("conv2d_tiled", f"-DTM={tm} -DTN={tn}{epilogue}", "conv2d_tiled",
                          shape, [x, w, bias, residual], args, work_items=grid,
                          local_size=local)
    partial = cl_env.run("conv2d_tiled", f"-DTM={tm} -DTN={tn} -DPARTIAL", "conv2d_tiled",
                         (splits, *shape), [x, w, None, None], args, work_items=grid,
                         local_size=local)
    total = n * co * p
    return cl_env.run("conv2d_tiled", epilogue, "conv2d_tiled_reduce", shape,
                      [partial, bias, residual], [co, p, total, splits, *params],
                      work_items=total)


def operands(rng, case):
    x_shape, (co, kh, kw), stride, dilation, pads, groups = TILED_CASES[case]
    n, c, h, wd = x_shape
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((co, c // groups, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(co).astype(np.float32)
    oh, ow = out_size(h, wd, (kh, kw), stride, dilation, pads)
    residual = rng.standard_normal((n, co, oh, ow)).astype(np.float32)
    return x, w, bias, residual, stride, dilation, pads, groups


@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", list(TILED_CASES))
def test_conv2d_tiled(cl_env, rng, case, tile, splits):
    x, w, bias, residual, stride, dilation, pads, groups = operands(rng, case)
    got = tiled(cl_env, x, w, bias, residual, stride, dilation, pads, groups, tile, splits)
    want = conv2d_ref(x, w, bias, stride, dilation, pads, groups, residual)
    assert_close(got, want, atol=1e-4)


@pytest.mark.parametrize("splits", [1, 2])
def test_conv2d_tiled_without_bias_or_residual(cl_env, rng, splits):
    x, w, _, _, stride, dilation, pads, groups = operands(rng, "channels_past_tiles_batch2")
    got = tiled(cl_env, x, w, None, None, stride, dilation, pads, groups, splits=splits)
    assert_close(got, conv2d_ref(x, w, None, stride, dilation, pads, groups), atol=1e-4)


def test_more_splits_than_k_tiles_leave_the_rest_zero(cl_env, rng):
    """K = 27 is two K steps: splits past them sum nothing, and must still write their zeros."""
    x, w, bias, residual, stride, dilation, pads, groups = operands(rng, "3x3_pad1")
    got = tiled(cl_env, x, w, bias, residual, stride, dilation, pads, groups, splits=4)
    assert_close(got, conv2d_ref(x, w, bias, stride, dilation, pads, groups, residual),
                 atol=1e-4)


@pytest.mark.parametrize("splits", [1, 2])
@pytest.mark.parametrize(
    "activation,params,ref",
    [
        (1, (0.0, 0.0), lambda y, a, b: np.maximum(y, 0)),
        (3, (-0.5, 1.5), lambda y, a, b: np.clip(y, a, b)),
        (7, (0.0, 0.0), lambda y, a, b: y * np.clip(y / 6 + 0.5, 0, 1)),
    ],
)
def test_conv2d_tiled_activation_after_residual(cl_env, rng, activation, params, ref, splits):
    """act(conv + bias + residual), in the tiled kernel's epilogue and in the reduction's."""
    x, w, bias, residual, stride, dilation, pads, groups = operands(rng, "late_layer_7x7")
    w *= 0.1
    plain = conv2d_ref(x, w, bias, stride, dilation, pads, groups, residual)
    want = ref(plain, *params)
    assert not np.allclose(want, plain)  # the activation changed something
    got = tiled(cl_env, x, w, bias, residual, stride, dilation, pads, groups, splits=splits,
                activation=activation, params=params)
    assert_close(got, want, atol=1e-4)
