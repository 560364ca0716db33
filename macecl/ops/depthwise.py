"""Depthwise convolution on a CPU: ``depthwise_rows`` of the ``depthwise`` program, and the
pools as ``pool_rows`` of the same program.

ops/conv.py launches it for a depthwise Conv (one input channel per group) where
:func:`rows_fit` says so, and conv2d.cl's ``depthwise_conv2d`` elsewhere; ops/pooling.py
launches ``pool_rows`` likewise, and pooling.cl's kernels elsewhere. Each work item
computes a band of whole output rows of a few channel planes, so that a launch is a few
hundred work items of real work rather than thousands of tiny ones (PoCL runs each work
group as one call, local size (1, 1, 1) on a CPU: ops/conv.py heavy_items).

Measured by bench/depthwise_kernels.py --rounds 9 (PoCL on the 2-core Sapphire Rapids, VW
16, the machine shared with other jobs: load 4), kernel ms summed over each model's
depthwise layers; depthwise_conv2d already with activate.h's vector HardSwish (before
it, lane by lane: rec 9.25, det 33.11 ms); ONNX Runtime, 2 threads, on one Conv and its
activation per shape, host wall clock of a run:

    model       depthwise_conv2d   depthwise_rows   ONNX Runtime
    shufflenet  3.97               0.78             2.14
    ppocr cls   0.48               0.17             1.14
    ppocr rec   5.24               1.70             5.15
    ppocr det   22.90              6.24             21.82

Every layer is faster than ONNX Runtime there (per-layer lines: the script's docstring).
The edge blocks with their tap loop left rolled (half the compile time: 0.70 against 1.52 s
for a 5x5 band-8 kernel) lost 15% to 55% (det 4.74 -> 6.08, ShuffleNet 0.76 -> 1.18 ms).

Rows per work item (band_rows), --bands 4 --rounds 15 --models det,rec, load 5: 8 rows
against 4, ms summed: rec 1.63 against 1.75, det 5.85 against 6.06; 5x5 windows gain most
(rec's 240x12x80 0.183 against 0.245 ms: 12 input rows read for 8 outputs instead of 8
for 4), 3x3 on det's large planes is within 7% either way; earlier runs gave ShuffleNet
0.80 against 0.91 ms. A plane of at most 4 rows keeps 4 (cls's 5x5 on 200x2x96: 0.028
against 0.033 ms).

Planes per work item (ITEM_OUTPUTS): one plane a work item, or four, came within 10% either
way of the rule's count on most layers, and lost up to 25% on ShuffleNet's small planes
(3x3 on 136x28x28: 0.075 ms by the rule, 0.097 with one plane, 0.098 with four).
"""

from __future__ import annotations

import numpy as np

TALL_BAND, SHORT_BAND = 8, 4  # output rows per work item (DW_BAND in depthwise.cl)
MAX_TAPS = 7  # the widest window the kernel is built for (unrolled: compile time grows with it)
ITEM_OUTPUTS = 2048  # outputs a work item computes at least, by taking several planes


def rows_fit(traits, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
             dilated: bool = False) -> bool:
    """Whether depthwise_rows (``dilated``) or pool_rows serves this window on this device: a
    CPU, a horizontal stride of 1 or 2 (vector loads), a window of at most MAX_TAPS a side;
    dilations 1 for pool_rows, and for depthwise_rows a dilated window spanning at most
    MAX_TAPS + 2 (its unrolled rows: DeepLab's 5x5 at dilation 2 spans 9). Those 5x5s of
    torchvision's DeepLabV3-MobileNetV3 on 960x14x14 and 672x14x14, kernel ms, one profile
    each: depthwise_conv2d 0.77, 0.75, 0.56 against depthwise_rows 0.16, 0.15, 0.11."""
    if not (traits.cpu and sw in (1, 2) and kh <= MAX_TAPS and kw <= MAX_TAPS):
        return False
    if not dilated:
        return dh == dw == 1
    return (kh - 1) * dh + 1 <= MAX_TAPS + 2 and (kw - 1) * dw + 1 <= MAX_TAPS + 2


def band_rows(oh: int) -> int:
    """Output rows a work item computes: 8, or 4 for planes of at most 4 rows (whose band
    of 8 would compute rows that are not there)."""
    return TALL_BAND if oh > SHORT_BAND else SHORT_BAND


def planes_per_item(oh: int, ow: int) -> int:
    """Channel planes a work item takes: enough that it computes ITEM_OUTPUTS outputs."""
    return max(1, -(-ITEM_OUTPUTS // (min(oh, band_rows(oh)) * ow)))


def rows_launch(builder, x2, w2, bias, residual, out2, window, options, act_a, act_b) -> None:
    """depthwise_rows over (N, C_in, H, W) -> (N, C_out, OH, OW); window = (kh, kw, sh, sw,
    pt, pl); options: conv.py's (vector width, bias, residual, activation)."""
    _, c_in, h, wd = x2.shape
    _, c_out, oh, ow = out2.shape
    _launch_bands(builder, "depthwise_rows", [x2, w2, bias, residual, out2],
                  (c_in, h, wd, c_out, oh, ow, *window[4:]), out2, window, options, (act_a, act_b))


def pool_rows_launch(builder, x2, out2, window, pool: int, counted: tuple[int, int, int, int],
                     options: list[str]) -> None:
    """pool_rows over (N, C, H, W) -> (N, C, OH, OW): pool 1 max, 2 average; window = (kh,
    kw, sh, sw, pt, pl); counted = the box (h_lo, h_hi, w_lo, w_hi) whose taps an average
    counts; options: the pooling program's (the vector width)."""
    _launch_bands(builder, "pool_rows", [x2, out2],
                  (*x2.shape[2:], *out2.shape[2:], *window[4:], *counted), out2, window,
                  [*options, f"-DPOOL={pool}"])


def _launch_bands(builder, kernel: str, buffers: list, sizes: tuple, out2, window,
                  options: list[str], tail: tuple = ()) -> None:
    """``kernel`` of the depthwise program over its work items: a band of band_rows output
    rows of planes_per_item planes of ``out2`` each. Its arguments: ``buffers``, the int
    ``sizes``, then the planes and the planes a work item takes, then ``tail``."""
    kh, kw, sh, sw = window[:4]
    oh, ow = out2.shape[2:]
    planes = out2.shape[0] * out2.shape[1]
    per_item, band = planes_per_item(oh, ow), band_rows(oh)
    builder.launch("depthwise", kernel,
                   [*buffers, *(np.int32(v) for v in (*sizes, planes, per_item)), *tail],
                   (-(-oh // band), -(-planes // per_item)),
                   options=[*options, *window_options(kh, kw, sh, sw, band)], local_size=(1, 1))


def dilation_options(dh: int, dw: int) -> list[str]:
    """depthwise_rows' build options for its dilations (none for 1)."""
    return [*([f"-DDW_DH={dh}"] if dh != 1 else []), *([f"-DDW_DW={dw}"] if dw != 1 else [])]


def window_options(kh: int, kw: int, sh: int, sw: int, band: int) -> list[str]:
    """The build options of depthwise_rows beyond conv.py's: its window, strides and band."""
    return [f"-DDW_KH={kh}", f"-DDW_KW={kw}", f"-DDW_SH={sh}", f"-DDW_SW={sw}",
            f"-DDW_BAND={band}"]
