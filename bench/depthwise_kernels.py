"""Depthwise convolution kernels on the bench models' depthwise layers, against ONNX Runtime.

For each depthwise layer shape of ShuffleNet, PP-OCR cls, rec and det (with the activation
the converter fuses into it), every way runs --rounds times, interleaved round by round;
prints the median kernel time (OpenCL profiling events) of each, ONNX Runtime's (CPU
provider, --ort-threads intra-op threads, a model of that one Conv and its activation, host
wall clock), and checks that all agree. Then, per model, the sums over its layers (each
shape times the number of layers that have it).

    python bench/depthwise_kernels.py [--rounds 7] [--models shufflenet,rec]
                                     [--per-item 1,4] [--bands 4]

Ways: `conv2d` = conv2d.cl's depthwise_conv2d as ops/conv.py launches it where
ops/depthwise.py's rows_fit is false (and before it existed); `rows` = depthwise.cl's
depthwise_rows as ops/depthwise.py launches it; `rows/N` = the same, N planes a work item
(--per-item); `rows, band B` = B output rows a work item (--bands).

The kernel times are OpenCL profiling events (no launch overhead); ONNX Runtime's are a
session.run each, its per-run overhead included (about 0.07 ms: the floor of cls's tiny
layers). What it showed (--rounds 9, load 4 from other jobs on the 2 cores; ms;
`conv2d` already with activate.h's vector HardSwish):

    shufflenet x1 3x3/2x2 112x56x56:     conv2d 0.448  rows 0.090  onnxruntime 0.289
    shufflenet x3 3x3 136x28x28:         conv2d 0.349  rows 0.075  onnxruntime 0.171
    shufflenet x1 3x3/2x2 136x28x28:     conv2d 0.192  rows 0.033  onnxruntime 0.120
    shufflenet x7 3x3 272x14x14:         conv2d 0.215  rows 0.042  onnxruntime 0.118
    shufflenet x1 3x3/2x2 272x14x14:     conv2d 0.184  rows 0.031  onnxruntime 0.094
    shufflenet x3 3x3 544x7x7:           conv2d 0.197  rows 0.036  onnxruntime 0.100
    cls x1 3x3/2x1 8x24x96 Relu:         conv2d 0.018  rows 0.012  onnxruntime 0.097
    cls x1 3x3 32x6x96 Relu:             conv2d 0.030  rows 0.013  onnxruntime 0.094
    cls x2 5x5 88x3x96 HardSwish:        conv2d 0.057  rows 0.018  onnxruntime 0.117
    cls x2 5x5 200x2x96 HardSwish:       conv2d 0.082  rows 0.027  onnxruntime 0.140
    rec x1 3x3 64x24x160 HardSwish:      conv2d 0.438  rows 0.150  onnxruntime 0.449
    rec x1 3x3 128x12x160 HardSwish:     conv2d 0.277  rows 0.133  onnxruntime 0.432
    rec x1 3x3/1x2 128x12x160 HardSwish: conv2d 0.269  rows 0.093  onnxruntime 0.345
    rec x4 5x5 240x12x80 HardSwish:      conv2d 0.688  rows 0.198  onnxruntime 0.520
    rec x1 5x5/2x1 480x6x80 HardSwish:   conv2d 0.309  rows 0.105  onnxruntime 0.205
    det x1 3x3 16x320x320 HardSwish:     conv2d 3.612  rows 1.528  onnxruntime 6.599
    det x1 3x3/2x2 32x320x320:           conv2d 3.318  rows 1.058  onnxruntime 6.531
    det x1 3x3 96x80x80 HardSwish:       conv2d 1.022  rows 0.325  onnxruntime 1.085
    det x4 5x5 192x40x40 HardSwish:      conv2d 1.463  rows 0.287  onnxruntime 0.625
    det x3 5x5 384x20x20 HardSwish:      conv2d 1.411  rows 0.220  onnxruntime 0.286
    all layers, ShuffleNet / cls / rec / det:
        conv2d 3.97 / 0.48 / 5.24 / 22.90   rows 0.78 / 0.17 / 1.70 / 6.24
        onnxruntime 2.14 / 1.14 / 5.15 / 21.82

The closest layers to ONNX Runtime are the 5x5 ones on small planes (det's 384x20x20:
0.77x; rec's 5x5/2x1 on 480x6x80: 0.51x). ONNX Runtime's own figures swing 2x with the
load (det's 16x320x320: 6.6 to 21.1 ms across four runs), the kernels' far less.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("PYOPENCL_NO_CACHE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conv_kernels import Runner, onnxruntime_layer

from macecl.ops.activations import apply
from macecl.ops.conv import DW_ROWS
from macecl.ops.depthwise import band_rows, planes_per_item, window_options
from macecl.ops.traits import DeviceTraits
from macecl.runtime.device import select_device

RELU, HARD_SWISH = 1, 7
SHAPES = [
    # model, layers, (C, H, W, K, (stride_h, stride_w), pad, activation)
    ("shufflenet", 1, (112, 56, 56, 3, (2, 2), 1, 0)),
    ("shufflenet", 3, (136, 28, 28, 3, (1, 1), 1, 0)),
    ("shufflenet", 1, (136, 28, 28, 3, (2, 2), 1, 0)),
    ("shufflenet", 7, (272, 14, 14, 3, (1, 1), 1, 0)),
    ("shufflenet", 1, (272, 14, 14, 3, (2, 2), 1, 0)),
    ("shufflenet", 3, (544, 7, 7, 3, (1, 1), 1, 0)),
    ("cls", 1, (8, 24, 96, 3, (2, 1), 1, RELU)),
    ("cls", 1, (24, 12, 96, 3, (2, 1), 1, RELU)),
    ("cls", 1, (32, 6, 96, 3, (1, 1), 1, RELU)),
    ("cls", 1, (32, 6, 96, 5, (2, 1), 2, HARD_SWISH)),
    ("cls", 2, (88, 3, 96, 5, (1, 1), 2, HARD_SWISH)),
    ("cls", 1, (40, 3, 96, 5, (1, 1), 2, HARD_SWISH)),
    ("cls", 1, (48, 3, 96, 5, (1, 1), 2, HARD_SWISH)),
    ("cls", 1, (104, 3, 96, 5, (2, 1), 2, HARD_SWISH)),
    ("cls", 2, (200, 2, 96, 5, (1, 1), 2, HARD_SWISH)),
    ("rec", 1, (16, 24, 160, 3, (1, 1), 1, HARD_SWISH)),
    ("rec", 1, (32, 24, 160, 3, (1, 1), 1, HARD_SWISH)),
    ("rec", 1, (64, 24, 160, 3, (1, 1), 1, HARD_SWISH)),
    ("rec", 1, (64, 24, 160, 3, (2, 1), 1, HARD_SWISH)),
    ("rec", 1, (128, 12, 160, 3, (1, 1), 1, HARD_SWISH)),
    ("rec", 1, (128, 12, 160, 3, (1, 2), 1, HARD_SWISH)),
    ("rec", 4, (240, 12, 80, 5, (1, 1), 2, HARD_SWISH)),
    ("rec", 1, (240, 12, 80, 5, (2, 1), 2, HARD_SWISH)),
    ("rec", 1, (480, 6, 80, 5, (1, 1), 2, HARD_SWISH)),
    ("rec", 1, (480, 6, 80, 5, (2, 1), 2, HARD_SWISH)),
    ("rec", 1, (480, 3, 80, 5, (1, 1), 2, HARD_SWISH)),
    ("det", 1, (16, 320, 320, 3, (1, 1), 1, HARD_SWISH)),
    ("det", 1, (32, 320, 320, 3, (2, 2), 1, 0)),
    ("det", 1, (48, 160, 160, 3, (1, 1), 1, HARD_SWISH)),
    ("det", 1, (48, 160, 160, 3, (2, 2), 1, 0)),
    ("det", 1, (96, 80, 80, 3, (1, 1), 1, HARD_SWISH)),
    ("det", 1, (96, 80, 80, 3, (2, 2), 1, 0)),
    ("det", 4, (192, 40, 40, 5, (1, 1), 2, HARD_SWISH)),
    ("det", 1, (192, 40, 40, 5, (2, 2), 2, 0)),
    ("det", 3, (384, 20, 20, 5, (1, 1), 2, HARD_SWISH)),
]
ACTIVATION_OPS = {RELU: "Relu", HARD_SWISH: "HardSwish"}


def label(shape) -> str:
    c, h, w, k, (sh, sw), _, act = shape
    stride = "" if (sh, sw) == (1, 1) else f"/{sh}x{sw}"
    return f"{k}x{k}{stride} {c}x{h}x{w}{' ' + ACTIVATION_OPS[act] if act else ''}"


def layer_data(shape):
    c, h, w, k = shape[:4]
    rng = np.random.default_rng(0)
    return (rng.standard_normal((c, h, w)).astype(np.float32),
            (rng.standard_normal((c, 1, k, k)) * 0.3).astype(np.float32),
            rng.standard_normal(c).astype(np.float32))


def out_size(shape) -> tuple[int, int]:
    _, h, w, k, (sh, sw), p, _ = shape
    return (h + 2 * p - k) // sh + 1, (w + 2 * p - k) // sw + 1


def onnxruntime_way(shape, threads: int):
    """ONNX Runtime on a model of this one Conv and its activation: (timed run, output)."""
    from onnx import helper

    c, h, w, k, strides, p, act = shape
    image, filt, shift = layer_data(shape)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv" if act else "y"],
                              kernel_shape=[k, k], strides=list(strides), pads=[p] * 4, group=c)]
    if act:
        nodes.append(helper.make_node(ACTIVATION_OPS[act], ["conv"], ["y"]))
    return onnxruntime_layer(nodes, image, filt, shift, threads, opset=14)


def ways(runner: Runner, shape, per_items: list[int], bands: list[int]) -> dict:
    """{name: ([launch], output buffer)}, launches as Runner.time takes them."""
    c, h, w, k, (sh, sw), p, act = shape
    oh, ow = out_size(shape)
    image, filt, shift = layer_data(shape)
    x, weights, bias = runner.buffer(image), runner.buffer(filt), runner.buffer(shift)
    vw, i, zero = runner.vw, np.int32, np.float32(0)
    options = f"-DVW={vw} -DHAS_BIAS -DACTIVATION={act}"
    found = {}
    out = runner.buffer(size=c * oh * ow)
    args = [x, weights, bias, None, out, *map(i, (c, h, w, c, oh, ow, k, k, sh, sw, 1, 1, p, p)),
            i(c), zero, zero]
    found["conv2d"] = ([("conv2d", options, "depthwise_conv2d",
                         (-(-ow // vw), -(-oh // DW_ROWS), c), args, runner.gemm_local)], out)
    band = band_rows(oh)
    for name, per_item, rows in [("rows", planes_per_item(oh, ow), band),
                                 *((f"rows/{n}", n, band) for n in per_items),
                                 *((f"rows, band {b}", planes_per_item(oh, ow), b)
                                   for b in bands if b != band)]:
        out = runner.buffer(size=c * oh * ow)
        args = [x, weights, bias, None, out, *map(i, (c, h, w, c, oh, ow, p, p, c, per_item)),
                zero, zero]
        built = " ".join([options, *window_options(k, k, sh, sw, rows)])
        found[name] = ([("depthwise", built, "depthwise_rows",
                         (-(-oh // rows), -(-c // per_item)), args, (1, 1))], out)
    return found


def reference(shape) -> np.ndarray:
    """NumPy: the layer's output (C * OH * OW), in float64."""
    c, _, _, k, (sh, sw), p, act = shape
    image, filt, shift = layer_data(shape)
    oh, ow = out_size(shape)
    padded = np.pad(image.astype(np.float64), ((0, 0), (p, p), (p, p)))
    out = np.zeros((c, oh, ow))
    for kh in range(k):
        for kw in range(k):
            out += (filt[:, 0, kh, kw, None, None]
                    * padded[:, kh: kh + sh * (oh - 1) + 1: sh, kw: kw + sw * (ow - 1) + 1: sw])
    out += shift[:, None, None]
    return apply(act, out, 0.0, 0.0).ravel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default=None)
    parser.add_argument("--models", default="", help="comma-separated: shufflenet,cls,rec,det")
    parser.add_argument("--per-item", default="", help="also time these planes per work item")
    parser.add_argument("--bands", default="", help="also time these output rows per work item")
    parser.add_argument("--ort-threads", type=int, default=2)
    options = parser.parse_args()
    device = select_device(options.device).cl_device
    runner = Runner(device, DeviceTraits.of(device))
    wanted = [m for m in options.models.split(",") if m]
    per_items = [int(v) for v in options.per_item.split(",") if v]
    bands = [int(v) for v in options.bands.split(",") if v]
    sums = collections.defaultdict(lambda: collections.defaultdict(float))
    for model, layers, shape in SHAPES:
        if wanted and model not in wanted:
            continue
        found = ways(runner, shape, per_items, bands)
        ort_run, ort_out = onnxruntime_way(shape, options.ort_threads)
        times = {way: [] for way in [*found, "onnxruntime"]}
        for _ in range(options.rounds):
            for way, (launches, _) in found.items():
                times[way].append(runner.time(launches))
            times["onnxruntime"].append(ort_run())
        want = reference(shape)
        bad = [way for way, (_, out) in found.items()
               if not np.allclose(runner.read(out, want.size), want, rtol=1e-4, atol=1e-4)]
        if not np.allclose(ort_out, want, rtol=1e-4, atol=1e-4):
            bad.append("onnxruntime")
        medians = {way: statistics.median(t) for way, t in times.items()}
        for way, ms in medians.items():
            sums[model][way] += layers * ms
        cells = "  ".join(f"{way} {ms:.3f}" for way, ms in medians.items())
        print(f"{model} x{layers} {label(shape)}: {cells}  (ms)"
              f"{'  WRONG: ' + ', '.join(bad) if bad else ''}", flush=True)
    for model, totals in sums.items():
        ort = totals["onnxruntime"]
        cells = "  ".join(f"{way} {ms:.2f} ({ms / ort:.2f}x)" for way, ms in totals.items())
        print(f"{model} all layers: {cells}  (ms, x ONNX Runtime)")


if __name__ == "__main__":
    main()
