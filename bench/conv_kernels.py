"""Which convolution kernel wins, per layer shape: the measurements behind ops/conv.py's choice.

For each shape (layers of the bench models), every applicable way of computing it on the
library's kernels runs --rounds times, the ways interleaved round by round so that machine
noise hits them alike; prints the median kernel time (OpenCL profiling events) of each and
checks they agree. Ways: `gemm` = conv2d_gemm straight on the input (1x1, stride 1, no
pad only), `im2col+gemm`, `direct` = conv2d_direct, `direct wide` = conv2d_direct_wide
(`, 1 item`: local size (1, 1, 1)), `winograd MxM` = F(MxM, 3x3) of ops/conv_winograd.py
(3x3, stride 1, one group), `depthwise` = depthwise_conv2d (one
input channel per group), `tiled` = conv2d_tiled (+ conv2d_tiled_reduce when it splits K)
as ops/conv_tiled.py launches it for this device's traits, beside the tile shapes and
split counts it did not choose; for ConvTranspose, conv_transpose2d in channel blocks of 1
or 8, and conv_transpose2d_disjoint in channel x pixel-vector blocks.

    python bench/conv_kernels.py [--rounds 9] [--device SELECTOR] [--shapes 3x3,dw]
                                 [--ways im2col,winograd]

Also times ONNX Runtime (CPU provider, --ort-threads intra-op threads, host wall clock)
on a one-Conv ONNX model of each shape, for how far each layer is from it.

Why the kernels were slow (PoCL 3.0-rc2 pip wheel, LLVM 14, on this Sapphire Rapids
Xeon, read from the .so files PoCL leaves with POCL_LEAVE_KERNEL_COMPILER_TEMP_FILES=1):
no builtin (mad, vload16, min, ...) was inlined into a kernel, because the builtin
library is built for skylake-avx512 and kernels for "rocketlake", which lacks CLWB; each
mad() in the GEMM loop was a call doing vmulps + vaddps with every accumulator spilled. A
private accumulator array was also kept in memory. And for a launch of at most 4096 work
items the driver picks the whole grid as one work-group, which PoCL runs on one thread.
Hence conv2d.cl: operators instead of builtins in the loops, named accumulators (8
channels x 2 vectors in the GEMM), weights packed per 8-channel block, im2col writing the
GEMM's packed layout, and local size (1, 1, 1) for conv2d_gemm on a CPU.

What it showed, --rounds 7, ms, interleaved in one run (the machine shared with other
jobs, load 2.3-2.4; the vector width the device prefers is 16). Before, on the kernels of
commit 73cf944 (--rounds 5, load about 1):

    resnet 1x1 256->64 56x56     gemm 7.86    im2col+gemm 13.18   direct 9.32
    resnet 1x1 1024->256 14x14   gemm 4.88    im2col+gemm 6.42    direct 10.00
    resnet 3x3 64 56x56                       im2col+gemm 31.76   direct 16.90
    resnet 3x3 256 14x14                      im2col+gemm 17.03   direct 19.16
    resnet 3x3 512 7x7                        im2col+gemm 15.12   direct 37.69
    det 3x3 64->16 160x160                    im2col+gemm 163.91  direct 28.54
    dw 3x3 96 80x80              depthwise 2.93;  dw 5x5 240 20x20  depthwise 2.51

After (the way ops/conv.py takes marked *; GF/s of it; ONNX Runtime, 2 threads):

    resnet 1x1 256->64 56x56     gemm* 1.03 (100)   im2col+gemm 2.33   direct 2.98   ORT 1.46
    resnet 1x1 64->256 56x56     gemm* 0.94 (109)   im2col+gemm 1.50   direct 3.87   ORT 1.28
    resnet 1x1 1024->256 14x14   gemm* 0.89 (115)   im2col+gemm 1.94   direct 9.54   ORT 1.08
    resnet 3x3 64 56x56          im2col+gemm* 3.87 (60)       direct 8.80     ORT 1.67
    resnet 3x3 256 14x14         im2col+gemm* 2.34 (99)       direct 6.94     ORT 1.61
    resnet 3x3 512 7x7           im2col+gemm* 2.55 (91)       direct 13.20    ORT 2.24
    resnet 7x7/2 3->64 224       im2col+gemm* 3.72 (64)       direct 4.39     ORT 1.99
    det 3x3/2 3->16 640          im2col+gemm 4.12             direct* 2.18 (41)  ORT 6.89
    det 3x3 16 160x160           im2col+gemm 4.98             direct* 1.78 (66)  ORT 1.73
    det 3x3 64->16 160x160       im2col+gemm 32.57            direct* 9.12 (52)  ORT 9.51
    det 3x3 96->24 160x160       im2col+gemm 51.10            direct* 17.85 (60) ORT 14.74
    det 3x3 96->32 80x80         im2col+gemm 13.95            direct* 8.19 (43)  ORT 4.61
    det 3x3 96->64 40x40         im2col+gemm* 2.91 (61)       direct 6.82     ORT 1.38
    squeezenet 3x3 16->64 55x55  im2col+gemm* 0.78 (71)       direct 1.22     ORT 0.54
    dw 3x3 96 80x80              depthwise* 1.46 (7.6)        ORT 0.95
    dw 3x3/2 96 80x80            depthwise* 0.76 (3.6)        ORT 0.53
    dw 5x5 240 20x20             depthwise* 0.87 (5.5)        ORT 0.25

Winograd (winograd.cl's transforms around conv2d_gemm; the choice is ops/conv_winograd.py's
winograd_tile), `--rounds 7 --shapes "resnet 3x3,squeezenet 3x3,det 3x3 96->24" --ways
im2col,direct,winograd`, ms, load 5.7-6.0 (three other jobs), * = taken now:

                                 im2col+gemm  direct   winograd 2x2  winograd 4x4  ORT
    resnet 3x3 64 56x56          3.99         4.74     2.47          1.48*         1.68
    resnet 3x3 128 28x28         3.21         10.00    1.60          1.32*         1.72
    resnet 3x3 256 14x14         3.07         10.21    1.92*         4.70          1.78
    resnet 3x3 512 7x7           3.95*        20.40    15.73         25.50         2.34
    squeezenet 3x3 16->64 55x55  1.19         1.26     1.39          0.71*         0.57
    squeezenet 3x3 32->128 27x27 0.75         1.57     0.70          0.51*         0.70
    squeezenet 3x3 48->192 13x13 0.42         1.00     0.36*         0.81          0.50
    squeezenet 3x3 64->256 13x13 0.62         1.76     0.57*         1.35          0.60
    det 3x3 96->24 160x160       82.84        26.59    25.05         13.23*        23.11
    det 3x3 96->24 80x80         20.14        12.64    4.45          3.33*         10.06
    det 3x3 96->24 40x40         2.53         1.66     1.01          0.64*         0.98
    det 3x3 96->24 20x20         0.82         0.63     0.31*         0.34          0.43

F(4x4) wins wherever its tiles fill a GEMM block (32 pixels at VW 16); with fewer (16 on
14x14, 4 on 7x7) conv2d_gemm takes its lane-by-lane path and F(2x2) or im2col wins. Tried
and lost: the Winograd GEMM built for 8- or 4-float vectors, whose block fits 16 tiles
(3x3 256 14x14: F(4x4) 2.34 / 3.20 ms against F(2x2) 1.92; 512 7x7: F(2x2) 10.45 / 10.48
against im2col 3.95; elsewhere 1.1x to 3.3x the time at VW 16, but det's 20x20, F(4x4) at
VW 8 0.29 against F(2x2) 0.31, within the noise), and the transformed input in
im2col's packed layout (the GEMM alone, --rounds 9: within 10-20% either way, det 160x160
F(4x4) 5.38 against 6.35 ms). On 7x7 the transformed weights (16 or 36 x 512 x 512 floats,
17 or 38 MB, against 9.4 MB of the plain ones) are what the GEMM streams.

conv2d_direct_wide (8 channels x 2 vectors a work item, whole-vector loads on the row's
interior, its ends column by column) against conv2d_direct as launched before (the driver's
work-groups), `POCL_KERNEL_CACHE=0 python bench/conv_kernels.py --shapes "det 3x3,resnet
7x7,squeezenet 7x7" --ways direct --rounds 9 --ort-threads 0`, ms, two runs (load 3.6 and
4.9: the machine was shared; `1 item`: local size (1, 1, 1), as the lowering launches the
wide kernel on a CPU):

                                 direct          direct wide, 1 item   (direct, 1 item)
    det 3x3 96->24 160x160       15.37 / 32.04   10.45 / 19.42         15.06 / 31.12
    det 3x3 64->16 160x160        6.61 / 10.44    4.58 /  8.64          6.44 / 10.45
    det 3x3 16 160x160            1.76 /  1.77    1.19 /  1.25          1.64 /  1.70
    det 3x3 96->32 80x80         10.93 / 10.97    8.74 /  8.46         11.19 / 10.31
    det 3x3 96->24 80x80          8.31 /  8.56    6.69 /  7.16          8.27 /  8.36
    det 3x3 96->24 40x40          1.62 /  1.58    1.17 /  1.10          1.60 /  1.48
    det 3x3 96->24 20x20          0.70 /  0.36    0.42 /  0.30          0.59 /  0.32
    det 3x3/2 3->16 640           1.82 /  1.86    1.62 /  1.85          1.62 /  1.73
    resnet 7x7/2 3->64 224        (earlier run, load 3.6: direct 4.02, wide 3.97, direct
                                  1 item 3.77; this run 9.39 / 11.52 / 11.82)

Stride 1 wins throughout, so the lowering takes the wide kernel there; at stride 2 it ties
(the row's tail block recomputes more of a two-vector block) and conv2d_direct stays. Where
the time went in conv2d_direct: the blocks at the row's ends staged their segments (stage_row)
for every input channel and tap row: the same 96->24 layer without padding (a 162-wide input)
took 12.90 ms against 15.96 ms padded, 10.17 against 13.32 ms for the wide kernel before its
ends went column by column. The 2-vector block alone (ends still staged) gained 0-20%.

On a CPU, depthwise layers now take depthwise.cl's depthwise_rows where ops/depthwise.py's
rows_fit says so (figures in bench/depthwise_kernels.py); the `depthwise` way here is the
kernel GPUs and the other windows keep.

ConvTranspose (conv_transpose2d, PP-OCR det's two layers), --shapes convT, load 3.3:

    det convT 2x2/2 24->24 160x160   blocks of 1 90.69   blocks of 8* 32.46
    det convT 2x2/2 24->1 320x320    blocks of 1* 13.01  blocks of 8 37.35

Those two have kernel = stride, so each output pixel takes one tap: conv_transpose2d_disjoint
(ops/conv.py disjoint_block: channels x pixel vectors a work item, about 16 accumulators)
against the gather, `POCL_KERNEL_CACHE=0 python bench/conv_kernels.py --shapes convT
--rounds 9`, load 4.3, ms (the gather as ops/conv.py launched it before: blocks of 8, of 1):

    det convT 2x2/2 24->24 160x160   gather 22.56   disjoint 4x1* 1.67  6x1 1.77  8x1 2.08
                                     2x2 1.96  1x4 1.88  1x1 2.33  4x2 2.65
    det convT 2x2/2 24->1 320x320    gather 11.00   disjoint 1x4* 0.62  1x2 0.70  1x1 0.70
                                     2x2 0.72  (more channels compute zeros: 4x1 0.86)

13x and 18x; both now near memory speed (the first writes 9.8 MB). Before its loops had
build-time bounds and `#pragma unroll`, the accumulators stayed in memory (an FMA, a load
and a store each): 4x1 4.21 ms, 1x4 0.87 ms.

The GEMM's local size (1, 1, 1) against the driver's choice depends on the load: at load
about 1, interleaved, 0.46 against 0.89 ms (resnet 1x1 256->64), 0.79 against 1.74 ms
(the GEMM of resnet 3x3 64), 0.21 against 0.41 ms (squeezenet 3x3); at load 2.3 (the
table above, "gemm, driver's groups") within 10% either way: when the other core is busy
a second thread has nothing to win. conv2d_direct gained 0-10% from it and keeps the
driver's (or the tuner's) choice. depthwise_conv2d takes (1, 1, 1) too (--rounds 9
--shapes dw, load 1.1, ms):

    dw 3x3 96 80x80              depthwise* 0.57   driver's groups 0.60   ORT 0.44
    dw 3x3/2 96 80x80            depthwise* 0.36   driver's groups 0.42   ORT 0.24
    dw 5x5 240 20x20             depthwise* 0.43   driver's groups 0.51   ORT 0.21
    rec dw 3x3 240 12x80         depthwise* 0.19   driver's groups 0.33   ORT 0.25
    shufflenet dw 3x3 112 28x28  depthwise* 0.17   driver's groups 0.21   ORT 0.12

The tiled kernel on PoCL, measured against the register-blocked kernels as they were
before the rewrite above (--rounds 5, load about 2, ms): 2 to 3 times slower
than the best register-blocked way on every shape, whatever its tile (local memory is
ordinary memory there, so staging through it only copies):

    resnet 1x1 256->64 56x56     gemm 7.92    direct 8.27    tiled 64x64 19.10  32x64 15.39
    resnet 3x3 256 14x14         im2col+gemm 17.65           tiled 64x64 55.54  64x32 42.40
    resnet 3x3 512 7x7           im2col+gemm 20.49           tiled 64x64 78.33  32x64 71.86
    squeezenet 3x3 16->64 55x55  direct 8.51                 tiled 64x64 21.01  32x64 17.37

Hence the CPU keeps the kernels above (DeviceTraits.local_memory_bytes is 0 there).

On an NVIDIA H100 (OpenCL 3.0, CUDA driver; 132 compute units, 48 KiB local memory),
`python bench/conv_kernels.py --device NVIDIA --rounds 9`, ms; `tiled` as chosen (TMxTN
tile, `/N`: K in N parts), then alternatives (`N:` K in N parts instead):

    resnet 1x1 256->64 56x56     gemm 0.066   direct 0.136  tiled 32x64 0.021  64x64 0.025
                                                            2: 0.029
    resnet 1x1 64->256 56x56     gemm 0.025                 tiled 64x64 0.016  32x64 0.015
    resnet 3x3 64 56x56          im2col+gemm 0.180          tiled 32x64/3 0.036  64x64 0.036
                                                            1: 0.046  6: 0.032  12: 0.031
    resnet 3x3 128 28x28         im2col+gemm 0.323          tiled/9 0.033  1: 0.075  18: 0.032
    resnet 3x3 256 14x14         im2col+gemm 0.631          tiled/17 0.033  1: 0.140  8: 0.034
    resnet 1x1 1024->256 14x14   gemm 0.245                 tiled/8 0.025  1: 0.064  16: 0.026
    resnet 3x3 512 7x7           im2col+gemm 1.190          tiled/33 0.044  1: 0.273  16: 0.043
    resnet 1x1 2048->512 7x7     gemm 0.467                 tiled/16 0.028  1: 0.115  32: 0.028
    resnet 1x1 512->2048 7x7     gemm 0.126                 tiled/4 0.030  1: 0.039  2: 0.036
    resnet 7x7/2 3->64 224       direct 0.074               tiled 0.027
    det 3x3/2 3->16 640          direct 0.025               tiled 32x64 0.023  64x64 0.031
    det 3x3 64->16 160x160       direct 0.239               tiled 32x64 0.072  64x64 0.102
    squeezenet 3x3 16->64 55x55  direct 0.065               tiled 0.020  2: 0.027
    squeezenet 1x1 128->16 55x55 gemm 0.056                 tiled 0.016  2: 0.023
    squeezenet 3x3 32->128 27x27 im2col+gemm 0.095          tiled 0.027  2: 0.029  4: 0.025
    squeezenet 1x1 256->32 27x27 gemm 0.069                 tiled 0.021  2: 0.025
    squeezenet 7x7/2 3->96 224   direct 0.063               tiled 0.033
    resnet fc 2048->1000         gemm 0.287                 tiled 64x32/16 0.029  64x64 0.032
    vgg fc 25088->4096           gemm 4.561                 tiled 64x32/5 0.422  64x64 0.616
                                                            10: 0.340  20: 0.342
    vgg fc 4096->4096            gemm 0.702                 tiled 64x32/5 0.088  64x64 0.117
                                                            10: 0.073

The tiled kernel is about as fast as the best register-blocked way (det 3x3/2 3->16 640) to
27 times faster (3x3 512 7x7). Split-K is what the late layers need (0.273 -> 0.044 ms on
3x3 512 7x7); cutting K in two did not pay for the reduction's launch where the rule would
have done it (the 2: figures). 32-channel tiles are chosen up to 64 channels a group (det
64->16: 0.072 against 0.102; 1x1 256->64 56x56: 0.021 against 0.025; ties elsewhere),
32-pixel tiles up to 32 pixels (the fully connected layers: 0.422 against 0.616 ms). Not
exploited yet: the fully connected layers gained another 20% from twice the split count
(VGG-19's 25088->4096: 0.340 ms in 10 parts); an earlier run that gave one-pixel outputs 8
work groups per compute unit instead of 2 (17 parts at 64x64 tiles: 0.588 ms against 0.547
in 4) did not show it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import types

os.environ.setdefault("PYOPENCL_NO_CACHE", "1")

import numpy as np
import pyopencl as cl

from macecl.kernels import program_source
from macecl.ops.conv import DW_ROWS, GEMM_CHANNELS, GEMM_VECTORS, heavy_items, pack_filter_array
from macecl.ops.conv_disjoint import disjoint_block, pack_disjoint_filter
from macecl.ops.conv_tiled import K_STEP, split_count, tile_shape, tiled_fits
from macecl.ops.conv_winograd import tile_grid, transformed_filter
from macecl.ops.traits import DeviceTraits
from macecl.runtime.device import select_device

# name: (C_in, H, W, C_out, K, stride, pad, groups)
SHAPES = {
    "resnet 1x1 256->64 56x56": (256, 56, 56, 64, 1, 1, 0, 1),
    "resnet 1x1 64->256 56x56": (64, 56, 56, 256, 1, 1, 0, 1),
    "resnet 1x1 1024->256 14x14": (1024, 14, 14, 256, 1, 1, 0, 1),
    "resnet 3x3 64 56x56": (64, 56, 56, 64, 3, 1, 1, 1),
    "resnet 3x3 256 14x14": (256, 14, 14, 256, 3, 1, 1, 1),
    "resnet 3x3 128 28x28": (128, 28, 28, 128, 3, 1, 1, 1),
    "resnet 3x3 512 7x7": (512, 7, 7, 512, 3, 1, 1, 1),
    "resnet 1x1 2048->512 7x7": (2048, 7, 7, 512, 1, 1, 0, 1),
    "resnet 1x1 512->2048 7x7": (512, 7, 7, 2048, 1, 1, 0, 1),
    "resnet 7x7/2 3->64 224": (3, 224, 224, 64, 7, 2, 3, 1),
    "det 3x3/2 3->16 640": (3, 640, 640, 16, 3, 2, 1, 1),
    "det 3x3 16 160x160": (16, 160, 160, 16, 3, 1, 1, 1),
    "det 3x3 64->16 160x160": (64, 160, 160, 16, 3, 1, 1, 1),
    "det 3x3 96->24 160x160": (96, 160, 160, 24, 3, 1, 1, 1),
    "det 3x3 96->32 80x80": (96, 80, 80, 32, 3, 1, 1, 1),
    "det 3x3 96->24 80x80": (96, 80, 80, 24, 3, 1, 1, 1),
    "det 3x3 96->24 40x40": (96, 40, 40, 24, 3, 1, 1, 1),
    "det 3x3 96->24 20x20": (96, 20, 20, 24, 3, 1, 1, 1),
    "det 3x3 96->64 40x40": (96, 40, 40, 64, 3, 1, 1, 1),
    "squeezenet 3x3 16->64 55x55": (16, 55, 55, 64, 3, 1, 1, 1),
    "squeezenet 1x1 128->16 55x55": (128, 55, 55, 16, 1, 1, 0, 1),
    "squeezenet 3x3 32->128 27x27": (32, 27, 27, 128, 3, 1, 1, 1),
    "squeezenet 3x3 48->192 13x13": (48, 13, 13, 192, 3, 1, 1, 1),
    "squeezenet 3x3 64->256 13x13": (64, 13, 13, 256, 3, 1, 1, 1),
    "squeezenet 1x1 256->32 27x27": (256, 27, 27, 32, 1, 1, 0, 1),
    "squeezenet 7x7/2 3->96 224": (3, 224, 224, 96, 7, 2, 0, 1),
    "resnet fc 2048->1000": (2048, 1, 1, 1000, 1, 1, 0, 1),
    "vgg fc 25088->4096": (25088, 1, 1, 4096, 1, 1, 0, 1),
    "vgg fc 4096->4096": (4096, 1, 1, 4096, 1, 1, 0, 1),
    "dw 3x3 96 80x80": (96, 80, 80, 96, 3, 1, 1, 96),
    "dw 3x3/2 96 80x80": (96, 80, 80, 96, 3, 2, 1, 96),
    "dw 5x5 240 20x20": (240, 20, 20, 240, 5, 1, 2, 240),
    "rec dw 3x3 240 12x80": (240, 12, 80, 240, 3, 1, 1, 240),
    "shufflenet dw 3x3 112 28x28": (112, 28, 28, 112, 3, 1, 1, 112),
}


def layer_data(shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The input (C, H, W), filter and bias of a layer, the same for every way."""
    c, h, w, co, k, _, _, g = shape
    rng = np.random.default_rng(0)
    return (rng.standard_normal((c, h, w)).astype(np.float32),
            (rng.standard_normal((co, c // g, k, k)) * 0.1).astype(np.float32),
            rng.standard_normal(co).astype(np.float32))


def onnxruntime_way(shape, threads: int):
    """A run of the layer as a one-Conv ONNX model on ONNX Runtime's CPU provider (host
    wall-clock time, ms) and its output."""
    from onnx import helper

    c, h, w, _, k, s, p, g = shape
    image, filt, shift = layer_data(shape)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k],
                            strides=[s, s], pads=[p] * 4, group=g)
    return onnxruntime_layer([node], image, filt, shift, threads, opset=13)


def onnxruntime_layer(nodes, image, filt, shift, threads: int, opset: int):
    """ONNX Runtime's CPU provider on a model of ``nodes`` from input "x" (image, one batch)
    with constants "w" (filt) and "b" (shift) to output "y": (timed run in ms, output)."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *image.shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(filt, "w"), numpy_helper.from_array(shift, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # onnxruntime refuses the newer IR that onnx's helper writes
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    feed = {"x": image[None]}
    output = session.run(None, feed)[0].ravel()

    def run() -> float:
        started = time.perf_counter()
        session.run(None, feed)
        return (time.perf_counter() - started) * 1e3

    return run, output


def gemm_grid(m: int, pixels: int, vw: int, groups: int) -> tuple[int, int, int]:
    return -(-m // GEMM_CHANNELS), -(-pixels // (vw * GEMM_VECTORS)), groups


WINOGRAD_TILES = (2, 4)  # the F(m x m, 3x3) tried on 3x3 stride-1 one-group layers

# ConvTranspose, name: (C_in, H, W, C_out, K, stride), no pads: ops/conv.py's channel block
TRANSPOSED = {
    "det convT 2x2/2 24->24 160x160": (24, 160, 160, 24, 2, 2),
    "det convT 2x2/2 24->1 320x320": (24, 320, 320, 1, 2, 2),
}
# conv_transpose2d_disjoint's (channels, pixel vectors) per work item tried
DISJOINT_BLOCKS = ((1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (4, 1), (4, 2), (6, 1), (8, 1))


class Runner:
    def __init__(self, device, traits: DeviceTraits):
        self.ctx = cl.Context([device])
        self.queue = cl.CommandQueue(
            self.ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
        self.programs = {}
        self.vw = traits.vector_width
        self.traits = traits
        self.gemm_local = heavy_items(types.SimpleNamespace(traits=traits))  # and depthwise

    def program(self, name: str, options: str):
        if (name, options) not in self.programs:
            program = cl._cl._Program(self.ctx, program_source(name))
            program.build(options.encode())
            self.programs[name, options] = program
        return self.programs[name, options]

    def buffer(self, array=None, size=0):
        flags = cl.mem_flags
        if array is None:
            return cl.Buffer(self.ctx, flags.READ_WRITE, max(4, size * 4))
        return cl.Buffer(self.ctx, flags.READ_WRITE | flags.COPY_HOST_PTR,
                         hostbuf=np.ascontiguousarray(array, np.float32))

    def ways(self, shape):
        """{name: (launches, output buffer)}; a launch is (program, options, kernel, global
        size, args, local size) as ops/conv.py launches it."""
        c, h, w, co, k, s, p, g = shape
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        image, filt, shift = layer_data(shape)
        x = self.buffer(image)
        weights = self.buffer(filt)
        packed = self.buffer(pack_filter_array(filt, g))
        bias = self.buffer(shift)
        i = np.int32
        window = [i(v) for v in (k, k, s, s, 1, 1, p, p)]
        vw, m = self.vw, co // g
        conv = ("conv2d", f"-DVW={vw} -DHAS_BIAS")
        packed_cols = ("conv2d", f"-DVW={vw} -DHAS_BIAS -DPACKED_COLS")
        found = {}
        if g > 1 and c // g == 1:
            out = self.buffer(size=co * oh * ow)
            args = [x, weights, bias, None, out, *map(i, (c, h, w, co, oh, ow)), *window, i(co),
                    np.float32(0), np.float32(0)]
            grid = (-(-ow // vw), -(-oh // DW_ROWS), co)
            found["depthwise"] = ([(*conv, "depthwise_conv2d", grid, args, self.gemm_local)], out)
            found["depthwise, driver's groups"] = (
                [(*conv, "depthwise_conv2d", grid, args, None)], out)
            return found
        if (k, s, p) == (1, 1, 0):
            out = self.buffer(size=co * oh * ow)
            args = [packed, x, bias, None, out, *map(i, (m, c // g, oh * ow, g, g)),
                    np.float32(0), np.float32(0), i(0)]
            grid = gemm_grid(m, oh * ow, vw, g)
            found["gemm"] = ([(*conv, "conv2d_gemm", grid, args, self.gemm_local)], out)
            # the driver's work-groups, for the figures behind heavy_items
            found["gemm, driver's groups"] = ([(*conv, "conv2d_gemm", grid, args, None)], out)
        span = vw * GEMM_VECTORS
        p_blocks = -(-oh * ow // span)
        cols = self.buffer(size=c * k * k * p_blocks * span)
        out = self.buffer(size=co * oh * ow)
        gemm = [packed, cols, bias, None, out, *map(i, (m, c // g * k * k, oh * ow, g, g)),
                np.float32(0), np.float32(0), i(0)]
        found["im2col+gemm"] = ([
            (*conv, "im2col", (c, p_blocks * GEMM_VECTORS),
             [x, cols, *map(i, (c, h, w, oh, ow)), *window, i(c // g * k * k), i(c)], None),
            (*packed_cols, "conv2d_gemm", gemm_grid(m, oh * ow, vw, g), gemm,
             self.gemm_local)], out)
        out = self.buffer(size=co * oh * ow)
        blocks = g * -(-m // 8)
        args = [x, packed, bias, None, out, *map(i, (c, h, w, co, oh, ow)), *window, i(g),
                i(blocks), np.float32(0), np.float32(0)]
        found["direct"] = ([(*conv, "conv2d_direct", (blocks, -(-ow // vw), oh), args, None)],
                           out)
        found["direct, 1 item"] = (
            [(*conv, "conv2d_direct", (blocks, -(-ow // vw), oh), args, (1, 1, 1))], out)
        grid = (blocks, -(-ow // (vw * GEMM_VECTORS)), oh)
        for name, local in (("direct wide", None), ("direct wide, 1 item", (1, 1, 1))):
            out = self.buffer(size=co * oh * ow)
            args = [x, packed, bias, None, out, *map(i, (c, h, w, co, oh, ow)), *window, i(g),
                    i(blocks), np.float32(0), np.float32(0)]
            found[name] = ([(*conv, "conv2d_direct_wide", grid, args, local)], out)
        if (k, s, g) == (3, 1, 1):
            for tile in WINOGRAD_TILES:
                found[f"winograd {tile}x{tile}"] = self.winograd_way(x, filt, bias, shape, tile)
        found.update(self.tiled_ways(x, weights, bias, shape, oh, ow))
        return found

    def winograd_way(self, x, filt, bias, shape, tile):
        """F(tile x tile, 3x3) as ops/conv_winograd.py launches it: (launches, output)."""
        c, h, w, co, _, _, p, _ = shape
        oh, ow = h + 2 * p - 2, w + 2 * p - 2
        tiles_h, tiles_w = tile_grid(oh, ow, tile)
        tiles, t, vw = tiles_h * tiles_w, tile + 2, self.vw
        i = np.int32
        v = self.buffer(size=t * t * c * tiles)
        products = self.buffer(size=t * t * co * tiles)
        out = self.buffer(size=co * oh * ow)
        shape_options = f"-DVW={vw} -DWINO_M={tile}"
        zero = np.float32(0)
        return [
            ("winograd", shape_options, "winograd_input", (c,),
             [x, v, *map(i, (c, h, w, tiles_h, tiles_w, p, p, c))], self.gemm_local[:1]),
            ("conv2d", f"-DVW={vw}", "conv2d_gemm", gemm_grid(co, tiles, vw, t * t),
             [self.buffer(transformed_filter(filt, tile, 8)), v, None, None, products,
              *map(i, (co, c, tiles, t * t, t * t)), zero, zero, i(0)], self.gemm_local),
            ("winograd", f"{shape_options} -DHAS_BIAS", "winograd_output",
             (-(-tiles_w // vw), tiles_h, co),
             [products, bias, None, out, *map(i, (co, oh, ow, tiles_h, tiles_w, co)), zero,
              zero], self.gemm_local)], out

    def tiled_ways(self, x, weights, bias, shape, oh, ow):
        """`tiled`: conv2d_tiled as ops/conv_tiled.py launches it (its tile, its split-K);
        beside it the alternatives it rejected for this shape: the other tile height (32 or 64
        channels), the other width (32 or 64 pixels), and,
        where the output tiles are fewer than the compute units, K cut in 1, a quarter, half,
        twice and four times as many parts (`tiled N splits`)."""
        c, h, w, co, k, s, p, g = shape
        m, pixels = co // g, oh * ow
        k_steps = -(-(c // g * k * k) // K_STEP)
        chosen = tile_shape(m, pixels)
        tm, tn = chosen
        tiles = -(-pixels // tn) * -(-m // tm) * g
        splits = split_count(tiles, k_steps, self.traits.compute_units)
        candidates = {"tiled": (chosen, splits)}
        for other in ((96 - tm, tn), (tm, 96 - tn)):  # the other height, the other width
            candidates[f"tiled {other[0]}x{other[1]}"] = (other, splits)
        if tiles < self.traits.compute_units:  # where split_count decides: its neighbours
            for parts in sorted({1, max(1, splits // 4), max(1, splits // 2), splits * 2,
                                 splits * 4} - {splits}):
                candidates[f"tiled {parts} split{'s' if parts > 1 else ''}"] = (chosen, parts)
        i = np.int32
        found = {}
        for name, ((tm, tn), parts) in candidates.items():
            out = self.buffer(size=co * pixels)
            grid = (-(-pixels // tn) * tn // 4, -(-m // tm) * tm // 4, g * parts)
            local = (tn // 4, tm // 4, 1)
            sizes = [i(v) for v in (c, h, w, co, oh, ow, k, k, s, s, 1, 1, p, p, g, g, parts)]
            tile = f"-DTM={tm} -DTN={tn}"
            zero = np.float32(0)
            if parts == 1:
                launches = [("conv2d_tiled", f"{tile} -DHAS_BIAS", "conv2d_tiled", grid,
                             [x, weights, bias, None, out, *sizes, zero, zero], local)]
            else:
                partial = self.buffer(size=parts * co * pixels)
                total = co * pixels
                launches = [
                    ("conv2d_tiled", f"{tile} -DPARTIAL", "conv2d_tiled", grid,
                     [x, weights, None, None, partial, *sizes, zero, zero], local),
                    ("conv2d_tiled", "-DHAS_BIAS", "conv2d_tiled_reduce", (total,),
                     [partial, bias, None, out, i(co), i(pixels), i(total), i(parts), zero,
                      zero], None)]
            plain = parts == 1 or "split" in name
            found[name if plain else f"{name} ({parts} splits)"] = (launches, out)
        return found

    def transposed_ways(self, shape):
        """{"blocks of N": (launches, output buffer)}: conv_transpose2d with CO_BLOCK N."""
        c, h, w, co, k, s = shape
        rng = np.random.default_rng(0)
        x = self.buffer(rng.standard_normal((c, h, w)))
        filt = (rng.standard_normal((c, co, k, k)) * 0.1).astype(np.float32)
        weights = self.buffer(filt)
        bias = self.buffer(rng.standard_normal(co))
        oh, ow = s * (h - 1) + k, s * (w - 1) + k
        geometry = (1, c, h, w, co, oh, ow, k, k, s, s, 1, 1, 0, 0, 1)
        found = {}
        for block in (1, 8):
            out = self.buffer(size=co * oh * ow)
            args = [x, weights, bias, out, *map(np.int32, geometry), np.float32(0),
                    np.float32(0)]
            found[f"blocks of {block}"] = (
                [("conv_transpose2d", f"-DHAS_BIAS -DCO_BLOCK={block}", "conv_transpose2d",
                  (ow, oh, -(-co // block)), args, None)], out)
        for channels, vectors in DISJOINT_BLOCKS:
            out = self.buffer(size=co * oh * ow)
            packed = self.buffer(pack_disjoint_filter(filt, 1, channels))
            blocks = -(-co // channels)
            args = [x, packed, bias, out, *map(np.int32, (c, h, w, co, oh, ow, 0, 0, 1, blocks)),
                    np.float32(0), np.float32(0)]
            options = (f"-DVW={self.vw} -DHAS_BIAS -DCO_BLOCK={channels} -DPX={vectors} "
                       f"-DSTEP_H={s} -DSTEP_W={s}")
            grid = (blocks, -(-w // (vectors * self.vw)), h)
            chosen = "*" if (channels, vectors) == disjoint_block(co, k * k) else ""
            found[f"disjoint {channels}x{vectors}{chosen}"] = (
                [("conv_transpose2d", options, "conv_transpose2d_disjoint", grid, args,
                  self.gemm_local)], out)
        return found, co * oh * ow, 2 * c * co * h * w * k * k

    def time(self, launches) -> float:
        total = 0.0
        for program, options, kernel, size, args, local in launches:
            knl = cl._cl.Kernel(self.program(program, options), kernel)
            knl.set_args(*args)
            if local:
                size = tuple(-(-n // d) * d for n, d in zip(size, local))
            event = cl.enqueue_nd_range_kernel(self.queue, knl, size, local)
            event.wait()
            total += (event.profile.end - event.profile.start) * 1e-6
        return total

    def read(self, out, size):
        host = np.empty(size, np.float32)
        cl.enqueue_copy(self.queue, host, out)
        return host


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--device", default=None)
    parser.add_argument("--shapes", default="", help="comma-separated substrings of names")
    parser.add_argument("--ways", default="",
                        help="comma-separated substrings of the ways to time (all when none)")
    parser.add_argument("--ort-threads", type=int, default=2,
                        help="also time ONNX Runtime with this many threads (0: not)")
    options = parser.parse_args()
    device = select_device(options.device).cl_device
    traits = DeviceTraits.of(device)
    runner = Runner(device, traits)
    print(f"{device.name}: {traits}; the lowering tiles: {tiled_fits(traits)}")
    wanted = [s for s in options.shapes.split(",") if s]
    for name, shape in TRANSPOSED.items():
        if wanted and not any(w in name for w in wanted):
            continue
        ways, size, flops = runner.transposed_ways(shape)
        times = {way: [] for way in ways}
        for _ in range(options.rounds):
            for way, (launches, _) in ways.items():
                times[way].append(runner.time(launches))
        results = [runner.read(out, size) for _, out in ways.values()]
        agree = all(np.allclose(r, results[0], rtol=1e-3, atol=1e-3) for r in results)
        cells = ", ".join(f"{way} {statistics.median(t):.3f} ms "
                          f"({flops / statistics.median(t) * 1e-6:.1f} GF/s)"
                          for way, t in times.items())
        print(f"{name}: {cells}{'' if agree else '  DISAGREE'}", flush=True)
    for name, shape in SHAPES.items():
        if wanted and not any(w in name for w in wanted):
            continue
        ways = runner.ways(shape)
        picked = [w for w in options.ways.split(",") if w]
        if picked:
            ways = {way: v for way, v in ways.items() if any(p in way for p in picked)}
        times = {way: [] for way in ways}
        ort_run, ort_out = (onnxruntime_way(shape, options.ort_threads)
                            if options.ort_threads else (None, None))
        if ort_run:
            times["onnxruntime"] = []
        for _ in range(options.rounds):
            for way, (launches, _) in ways.items():
                times[way].append(runner.time(launches))
            if ort_run:
                times["onnxruntime"].append(ort_run())
        c, h, w, co, k, s, p, g = shape
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        results = [runner.read(out, co * oh * ow) for _, out in ways.values()]
        if ort_run:
            results.append(ort_out)
        agree = all(np.allclose(r, results[0], rtol=1e-3, atol=1e-3) for r in results)
        flops = 2 * co * oh * ow * (c // g) * k * k
        cells = ", ".join(f"{way} {statistics.median(t):.3f} ms "
                          f"({flops / statistics.median(t) * 1e-6:.1f} GF/s)"
                          for way, t in times.items())
        print(f"{name}: {cells}{'' if agree else '  DISAGREE'}", flush=True)


if __name__ == "__main__":
    main()
