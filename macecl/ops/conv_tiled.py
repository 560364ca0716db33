"""Conv on the ``conv2d_tiled`` program: an implicit GEMM with local-memory tiles, for GPUs.

ops/conv.py sends every non-depthwise convolution here on a device whose traits pass
:func:`tiled_fits` (dedicated local memory, work groups of 256), and ops/gemm.py a fully
connected Gemm (:func:`multiply_tiled`); other devices keep the register-blocked kernels of
conv2d.cl and gemm.cl, which on PoCL's CPU device were 2 to 3 times faster than this one.
Per-layer figures behind the choices below are in bench/conv_kernels.py's docstring.

Tiles: 64 output channels x 64 pixels a work group; 32 channels when a group has at most 64
(squeezenet's squeeze layers, PP-OCR's narrow ones, ResNet's first stage), which gives the
device twice the work groups, or would leave half of every tile idle (H100, 3x3 64->16
160x160: 0.072 ms against 0.102 ms; 1x1 256->64 56x56: 0.021 against 0.025; ties
elsewhere); 32 pixels when there are at most 32 (a fully connected layer's one: VGG-19's
25088->4096 took 0.422 ms against 0.616 ms in 64-pixel tiles).

Split-K: a late layer of a classification net has few pixels and many channels (ResNet-50's
7x7 maps: 49 pixels, K up to 4608), so its output tiles are fewer than the device's compute
units. Then the K range is cut into ``splits`` parts, each work group sums one into a
scratch tensor, and ``conv2d_tiled_reduce`` adds them up and applies the epilogue (H100,
3x3 512 7x7: 0.273 ms in one part, 0.044 ms in 33).

Whole models on the H100 (`python bench/torch_latency.py --device NVIDIA --models
resnet50,squeezenet --rounds 20 --no-compile`, median ms, against PyTorch eager with TF32
off in the same run): ResNet-50 1.84 against 7.72 (0.24x), SqueezeNet 1.02 against 1.79
(0.57x). PyTorch's figure moves from run to run: the same command earlier in that run, with
five more models, gave ResNet-50 2.39 against 12.57 and SqueezeNet 1.27 against 2.52. The
kernels before this module, on the same kind of machine: 19.55 and 2.65 ms. ResNet-50's
kernel time is 1.29 ms in 91 launches: conv2d_tiled 0.99 ms, conv2d_tiled_reduce 0.19 ms,
a one-work-item softmax 0.08 ms.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.activations import fused
from macecl.ops.traits import DeviceTraits

K_STEP = 16  # TK in conv2d_tiled.cl
LARGEST_GROUP = 256  # work items of a 64 x 64 tile: (64 / 4) * (64 / 4)
LOCAL_BYTES = 4 * K_STEP * ((64 + 4) + 64)  # its two tiles: conv2d_tiled.cl's a_tile, b_tile
MIN_SPLIT_STEPS = 8  # K steps a split sums at least, so the reduction stays the small part


def tiled_fits(traits: DeviceTraits) -> bool:
    """Whether the device has dedicated local memory for the tiles and runs their groups."""
    return traits.local_memory_bytes >= LOCAL_BYTES and traits.work_group_size >= LARGEST_GROUP


def tile_shape(per_group: int, pixels: int) -> tuple[int, int]:
    """(output channels, pixels) of a work group's tile."""
    return (32 if per_group <= 64 else 64), (32 if pixels <= 32 else 64)


def split_count(tiles: int, k_steps: int, compute_units: int) -> int:
    """How many parts to cut K into: enough for about two work groups per compute unit when
    the output tiles alone are fewer than the units, each part MIN_SPLIT_STEPS K steps or more;
    never just two, which did not pay for the reduction's launch where measured."""
    if tiles >= compute_units:
        return 1
    splits = min(-(-2 * compute_units // tiles), k_steps // MIN_SPLIT_STEPS)
    return splits if splits > 2 else 1


def convolve_tiled(node: Node, builder, x2, w2, bias, residual, out2, window: list[int],
                   group: int) -> None:
    """act(conv(x2) + bias + residual) into out2 (all NCHW); window = (KH, KW, stride_h,
    stride_w, dil_h, dil_w, pad_top, pad_left)."""
    n, c_in, h, wd = x2.shape
    _, c_out, oh, ow = out2.shape
    kh, kw = window[:2]
    per_group, pixels = c_out // group, oh * ow
    tm, tn = tile_shape(per_group, pixels)
    k_steps = -(-(c_in // group * kh * kw) // K_STEP)
    tiles = -(-pixels // tn) * -(-per_group // tm) * n * group
    splits = split_count(tiles, k_steps, builder.traits.compute_units)
    activation, act_a, act_b = fused(node)
    epilogue = [*(["-DHAS_BIAS"] if bias is not None else []),
                *(["-DHAS_RESIDUAL"] if residual is not None else []), *activation]
    sizes = [np.int32(v) for v in (c_in, h, wd, c_out, oh, ow, *window, group, n * group,
                                   splits)]
    grid = (-(-pixels // tn) * tn // 4, -(-per_group // tm) * tm // 4, n * group * splits)
    local = (tn // 4, tm // 4, 1)
    tile = [f"-DTM={tm}", f"-DTN={tn}"]
    if splits == 1:
        builder.launch("conv2d_tiled", "conv2d_tiled",
                       [x2, w2, bias, residual, out2, *sizes, act_a, act_b], grid,
                       options=[*tile, *epilogue], local_size=local)
        return
    partial = builder.new((splits, *out2.shape))
    builder.launch("conv2d_tiled", "conv2d_tiled",
                   [x2, w2, None, None, partial, *sizes, act_a, act_b], grid,
                   options=[*tile, "-DPARTIAL"], local_size=local)
    total = out2.size
    builder.launch("conv2d_tiled", "conv2d_tiled_reduce",
                   [partial, bias, residual, out2, np.int32(c_out), np.int32(pixels),
                    np.int32(total), np.int32(splits), act_a, act_b], total, options=epilogue)


def gemm_fits(traits: DeviceTraits, trans_a: bool, trans_b: bool, alpha: float, beta: float,
              c_strides: tuple[int, int] | None) -> bool:
    """Whether Gemm runs as :func:`multiply_tiled`: Y = A B^T (a fully connected layer, B
    as (N, K)) plus, if any, C as a bias row (strides (0, 1)) or a whole (M, N) residual."""
    return (tiled_fits(traits) and trans_b and not trans_a and alpha == 1.0
            and (c_strides is None or (beta == 1.0 and c_strides[1] == 1)))


def multiply_tiled(node: Node, builder, a, b, c, out, m: int, n: int, k: int) -> None:
    """Gemm as a 1x1 convolution of M one-pixel images with K channels: B (N, K) already is
    its filter, a C row its bias, a full C its residual. ResNet-50's classifier (M = 1,
    K = 2048, N = 1000) took 0.43 ms on the H100 in the ``gemm`` kernel, a quarter of the
    model's kernel time (its 250 work items each walk all of K); as a split-K convolution
    the model's kernel time went from 1.77 to 1.34 ms."""
    full_c = c is not None and c.size == m * n and m > 1
    x2, w2 = builder.view(a, (m, k, 1, 1)), builder.view(b, (n, k, 1, 1))
    out2 = builder.view(out, (m, n, 1, 1))
    bias = None if c is None or full_c else builder.view(c, (n,))
    residual = builder.view(c, (m, n, 1, 1)) if full_c else None
    convolve_tiled(node, builder, x2, w2, bias, residual, out2, [1, 1, 1, 1, 1, 1, 0, 0], 1)
