"""ConvTranspose whose windows tile the output (kernel = stride, no dilation) on
``conv_transpose2d_disjoint``: ops/conv.py's ConvTranspose lowering takes it on a CPU for
constant weights.

Each output pixel then takes one tap of one input pixel (none under output_padding), so the
operator is a GEMM (C_out * KH * KW x C_in) @ (C_in x H * W) whose rows are interleaved
into the output. The kernel computes a block of output channels x all taps x a vector of
input pixels a work item and writes the output rows they make, bias and activation fused.
PP-OCR det's two 2x2/2 layers: 22.6 -> 1.7 ms and 11.0 -> 0.6 ms against the gather on
PoCL (bench/conv_kernels.py --shapes convT, figures in its docstring).
"""

from __future__ import annotations

import numpy as np

ACCUMULATORS = 16  # float vectors a conv_transpose2d_disjoint work item sums into


def disjoint_taps(kernel, strides, dilations) -> bool:
    """Whether a ConvTranspose's windows tile its output without overlap (kernel = stride,
    no dilation): each output pixel then takes one tap of one input pixel (or none, under
    output_padding), which makes it a GEMM and a pixel shuffle."""
    return list(kernel) == list(strides) and all(v == 1 for v in dilations)


def disjoint_block(per_group: int, taps: int) -> tuple[int, int]:
    """(output channels, pixel vectors) of a conv_transpose2d_disjoint work item: about 16
    accumulator vectors (channels x taps x vectors), channels first, vectors where the group
    has too few channels (PP-OCR det's 2x2 layers: 4 x 1 for 24 channels, 1 x 4 for one)."""
    channels = min(per_group, max(1, ACCUMULATORS // taps))
    return channels, max(1, min(4, ACCUMULATORS // (taps * channels)))


def convolve_disjoint(builder, x2, w2, bias, out2, group: int, begins: list[int],
                      options: list[str], act_a, act_b, local_size) -> None:
    """A ConvTranspose whose taps do not overlap on ``conv_transpose2d_disjoint``: each work
    item multiplies a block of output channels by a vector of input pixels for all KH x KW
    taps and writes the interleaved output rows. On PoCL, bench/conv_kernels.py --shapes
    convT: see its docstring (PP-OCR det's 2x2/2 layers about 10x to 20x faster than the
    gather). Constant weights only (packed here); others take the gather. ``local_size``:
    ops/conv.py's heavy_items."""
    n, c_in, h, wd = x2.shape
    _, c_out, oh, ow = out2.shape
    kh, kw = w2.shape[2:]
    per_group = c_out // group
    channels, vectors = disjoint_block(per_group, kh * kw)
    packed = builder.constant(pack_disjoint_filter(np.asarray(w2.host), group, channels))
    blocks = n * group * -(-per_group // channels)
    span = vectors * builder.traits.vector_width
    rows, cols = -(-(oh + begins[0]) // kh), -(-(ow + begins[1]) // kw)
    args = [x2, packed, bias, out2, *(np.int32(v) for v in (c_in, h, wd, c_out, oh, ow,
                                                             *begins, group, blocks)),
            act_a, act_b]
    builder.launch("conv_transpose2d", "conv_transpose2d_disjoint", args,
                   (blocks, -(-cols // span), rows),
                   options=[f"-DVW={builder.traits.vector_width}", f"-DCO_BLOCK={channels}",
                            f"-DPX={vectors}", f"-DSTEP_H={kh}", f"-DSTEP_W={kw}", *options],
                   local_size=local_size)


def pack_disjoint_filter(filt: np.ndarray, group: int, channels: int) -> np.ndarray:
    """A host ConvTranspose filter (C_in, C_out / group, KH, KW) as conv_transpose2d_disjoint
    reads it: (group, channel blocks, C_in / group, channels, KH * KW), zero past the last
    channel, so that one input channel's weights for a block lie together."""
    c_in, per_group, kh, kw = filt.shape
    blocks = -(-per_group // channels)
    padded = np.zeros((group, c_in // group, blocks * channels, kh * kw), np.float32)
    padded[:, :, :per_group] = filt.astype(np.float32).reshape(group, c_in // group,
                                                               per_group, kh * kw)
    blocked = padded.reshape(group, c_in // group, blocks, channels, kh * kw)
    return np.ascontiguousarray(blocked.transpose(0, 2, 1, 3, 4))
