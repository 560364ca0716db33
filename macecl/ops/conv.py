"""Convolutions: Conv and ConvTranspose, 1-D and 2-D, on the ``conv2d`` and
``conv_transpose2d`` programs.

A 1-D operator runs as a 2-D one on a view with H = 1 (input (N, C, 1, L), filter
(M, C / group, 1, K)), so both kernels see NCHW only. The window geometry helpers here
(:func:`window_attrs`, :func:`window_output`) are shared with pooling: ONNX gives every
windowed operator the same attributes (kernel_shape, strides, dilations, pads, auto_pad).
Bottom/right pads only shape the output, so the kernels take the top/left pads and the
output size. An activation the converter fused (``node.attrs["activation"]``) is applied in
the same launch.
"""

from __future__ import annotations

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.activations import fused
from macecl.ops.conv_disjoint import convolve_disjoint, disjoint_taps
from macecl.ops.conv_tiled import convolve_tiled, tiled_fits
from macecl.ops.conv_winograd import convolve_winograd, winograd_tile
from macecl.ops.depthwise import dilation_options, rows_fit, rows_launch
from macecl.ops.elementwise import OPS, lower_binary
from macecl.ops.registry import checker, ints, lowering
from macecl.ops.traits import group_side

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")
GEMM_CHANNELS = 8  # output channels per conv2d_gemm work item (CO_BLOCK), gemm_channels
FEW_REGISTERS_CHANNELS = 5  # gemm_channels on a CPU of 16 vector registers
GEMM_VECTORS = 2  # pixel vectors per conv2d_gemm work item: PX in conv2d.cl (gemm_block)
GEMM_PREFETCH = 16  # rows of cols ahead that conv2d_gemm prefetches on a CPU (gemm_block)
PIXELS_FIRST_BLOCKS = 2  # at most this many pixel blocks: conv2d_gemm's pixels_first
CORE_CACHE_BYTES = 1 << 20  # what one CPU core's own cache (L2) keeps of a GEMM's operands
DW_ROWS = 4  # output rows per depthwise_conv2d work item: DW_ROWS in conv2d.cl
STEM_INPUTS = 4  # input channels a group up to which stem_block's wide direct kernel runs
STEM_TAPS = 36  # taps (input channels x window) up to which a stem's are straight-line code
COLS_LIMIT = 16 << 20  # bytes of im2col's matrix past which conv2d_direct wins (_convolve_forward)


def spatial_rank(node: Node) -> int | None:
    """The number of spatial dims the attributes imply, or None when none of them says."""
    for name in ("kernel_shape", "strides", "dilations"):
        value = node.attrs.get(name)
        if value is not None and len(value):
            return len(value)
    pads = node.attrs.get("pads")
    if pads is not None and len(pads):
        return len(pads) // 2
    return None


def auto_pad(node: Node) -> str:
    value = node.attrs.get("auto_pad", "NOTSET")
    if isinstance(value, bytes):
        value = value.decode()
    return str(value)


def check_window(node: Node, what: str) -> str | None:
    """The reasons shared by every windowed operator: more than 2 spatial dims, a bad auto_pad."""
    rank = spatial_rank(node)
    if rank is not None and rank > 2:
        return f"{what} with {rank} spatial dims"
    if auto_pad(node) not in AUTO_PADS:
        return f"{what} with auto_pad {auto_pad(node)}"
    return None


def window_attrs(node: Node, rank: int, builder) -> tuple[list[int], list[int], list[int],
                                                            list[int]]:
    """strides, dilations, pads_begin, pads_end of a node with ``rank`` spatial dims."""
    strides = ints(node, "strides") or [1] * rank
    dilations = ints(node, "dilations") or [1] * rank
    pads = ints(node, "pads") or [0] * (2 * rank)
    if len(strides) != rank or len(dilations) != rank or len(pads) != 2 * rank:
        raise builder.fail(f"strides {strides}, dilations {dilations} or pads {pads} do not "
                           f"match {rank} spatial dims")
    if any(s <= 0 for s in strides) or any(d <= 0 for d in dilations):
        raise builder.fail(f"strides {strides} and dilations {dilations} must be positive")
    return strides, dilations, pads[:rank], pads[rank:]


def window_output(size: int, kernel: int, stride: int, dilation: int, begin: int, end: int,
                  mode: str, ceil_mode: bool = False) -> tuple[int, int, int]:
    """(output size, pad begin, pad end) of one spatial axis of a Conv / pool window."""
    extent = dilation * (kernel - 1) + 1
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + extent - size)
        begin = total // 2 if mode == "SAME_UPPER" else total - total // 2
        return out, begin, total - begin
    if mode == "VALID":
        begin = end = 0
    span = size + begin + end - extent
    if span < 0:
        return 0, begin, end
    if ceil_mode:
        out = -(-span // stride) + 1
        # PyTorch and onnxruntime: the last window must start inside the input or left padding
        if (out - 1) * stride >= size + begin:
            out -= 1
    else:
        out = span // stride + 1
    return out, begin, end


def as_2d(builder, value, rank: int):
    """An NC + 1-D tensor as NC + (1, L); a 2-D one as is."""
    if rank == 1:
        return builder.view(value, (*value.shape[:2], 1, value.shape[2]))
    return value


def lift(values: list[int], rank: int, fill: int) -> list[int]:
    """Per-axis values of a 1-D window as those of the (1, L) 2-D one."""
    return [fill, *values] if rank == 1 else list(values)


@checker("Conv")
def _check_conv(node: Node) -> str | None:
    return check_window(node, "Conv")


@checker("ConvTranspose")
def _check_conv_transpose(node: Node) -> str | None:
    return check_window(node, "ConvTranspose")


def _operands(node: Node, inputs: list, builder, transposed: bool):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    if x is None or w is None:
        raise builder.fail("the input and the weights are required")
    if x.rank not in (3, 4):
        raise builder.fail(f"input of rank {x.rank} (shape {list(x.shape)}): macecl runs 1-D "
                           f"and 2-D {node.op} only")
    if w.rank != x.rank:
        raise builder.fail(f"weights {list(w.shape)} do not match the input {list(x.shape)}")
    rank = x.rank - 2
    kernel = list(w.shape[2:])
    declared = ints(node, "kernel_shape")
    if declared is not None and declared != kernel:
        raise builder.fail(f"kernel_shape {declared} does not match the weights {list(w.shape)}")
    group = int(node.attrs.get("group", 1))
    channels = x.shape[1]
    if group <= 0 or channels % group:
        raise builder.fail(f"{channels} input channels do not split into {group} groups")
    if transposed:
        if w.shape[0] != channels:
            raise builder.fail(f"weights {list(w.shape)} do not take {channels} input channels")
        out_channels = w.shape[1] * group
    else:
        out_channels = w.shape[0]
        if w.shape[1] * group != channels or out_channels % group:
            raise builder.fail(f"weights {list(w.shape)} with group {group} do not fit "
                               f"{channels} input channels")
    if bias is not None and bias.size != out_channels:
        raise builder.fail(f"bias of shape {list(bias.shape)} for {out_channels} output channels")
    return x, w, bias, rank, kernel, group, out_channels


def _convolve_transposed(node: Node, builder, x, w, bias, group: int, out_channels: int,
                         strides: list[int], dilations: list[int], begins: list[int],
                         outs: list[int]):
    """ConvTranspose on the ``conv_transpose2d`` program; a 1-D case runs as (1, L).
    Windows that tile the output (disjoint_taps) take conv_transpose2d_disjoint on a CPU
    (measured there only; the GPU keeps the gather), any other the gather."""
    out = builder.new((x.shape[0], out_channels, *outs))
    if out.size == 0:
        return out
    rank = len(outs)
    x2, w2, out2 = (as_2d(builder, v, rank) for v in (x, w, out))
    s, d, b = lift(strides, rank, 1), lift(dilations, rank, 1), lift(begins, rank, 0)
    options, act_a, act_b = fused(node)
    if bias is not None:
        options = ["-DHAS_BIAS", *options]
    if builder.traits.cpu and disjoint_taps(w2.shape[2:], s, d) and w2.host is not None:
        convolve_disjoint(builder, x2, w2, bias, out2, group, b, options, act_a, act_b,
                          heavy_items(builder))
        return out
    n, c_in, h, wd = x2.shape
    _, c_out, oh, ow = out2.shape
    geometry = (n, c_in, h, wd, c_out, oh, ow, *w2.shape[2:], s[0], s[1], d[0], d[1], b[0], b[1],
                group)
    args = [x2, w2, bias, out2, *(np.int32(v) for v in geometry), act_a, act_b]
    # One channel per group (PP-OCR det's last layer, 24 -> 1, 2x2/2 to 640x640) in blocks
    # of one: 13.0 ms against 37.4 ms in blocks of 8; 24 channels stay in blocks of 8
    # (32.5 ms, blocks of one 90.7 ms): bench/conv_kernels.py --shapes convT, on PoCL.
    channels = 1 if c_out // group == 1 else GEMM_CHANNELS
    blocks = n * group * -(-(c_out // group) // channels)
    builder.launch("conv_transpose2d", "conv_transpose2d", args, (ow, oh, blocks),
                   options=[f"-DCO_BLOCK={channels}", *options])
    return out


def _convolve_forward(node: Node, builder, x, w, bias, residual, group: int,
                      out_channels: int, strides: list[int], dilations: list[int],
                      begins: list[int], outs: list[int]):
    """Conv on the ``conv2d`` program: act(conv(x) + bias + residual).

    The kernel is chosen by what each convolution is; bench/conv_kernels.py measures the
    candidates on the bench models' layer shapes (figures in its docstring):
    - depthwise (one input channel per group): on a CPU ``depthwise_rows`` where
      ops/depthwise.py's rows_fit says so (figures there), else ``depthwise_conv2d``; either
      reads a channel shuffle the converter fused (``attrs["input_shuffle"]``) in place;
    - any other on a device with dedicated local memory (a GPU): ``conv2d_tiled``, see
      ops/conv_tiled.py;
    - on a CPU, 3x3, stride 1, one group, constant weights, enough output tiles:
      Winograd, see ops/conv_winograd.py;
    - on a CPU, a network's first layer (at most STEM_INPUTS input channels a group,
      constant weights, rows at least a vector wide): ``conv2d_direct`` in blocks of up to
      24 channels (stem_block), whatever its channel count or window;
    - 1x1, stride 1, no padding: ``conv2d_gemm`` straight on the input, which already is the
      (C_in, pixels) matrix (its register block and prefetch: gemm_block);
    - rows at least a vector wide, and fewer than 32 output channels per group or an im2col
      matrix over COLS_LIMIT: ``conv2d_direct``, which reads the input in place. im2col
      writes KH * KW copies of the input and the GEMM reads them back, which few channels
      do not repay, nor a matrix that leaves the cache (PP-OCR det 3x3 96->24 on 160x160:
      direct 21.2 ms, im2col + GEMM 70.5 ms; 96->32 on 80x80, a 22 MB matrix: 5.7 ms
      against 9.7 ms). At stride 1, ``conv2d_direct_wide``: the GEMM's 8 x 2 register
      block, whole-vector loads on the columns whose windows lie inside the row and the
      few at its ends one by one (det 96->24 on 160x160 15.4 -> 10.5 ms, 40x40 1.62 ->
      1.17 ms); at stride 2 it only tied (det 3x3/2 3->16 on 640x640 1.62 against 1.82 ms
      in one run, 1.85 against 1.86 in another; ResNet's 7x7/2 3.97 against 4.02 ms), so
      conv2d_direct keeps strides > 1; figures in bench/conv_kernels.py;
    - anything else: ``im2col`` into a scratch tensor in the GEMM's packed layout, then
      ``conv2d_gemm`` (96->64 on 40x40: 2.9 ms against direct's 6.9 ms; ResNet 7x7/2 3->64
      on 224x224, a 7.4 MB matrix: 3.6 ms against 4.3 ms).
    """
    out = builder.new((x.shape[0], out_channels, *outs))
    if out.size == 0:
        return out
    rank = len(outs)
    x2, w2, out2 = (as_2d(builder, v, rank) for v in (x, w, out))
    (sh, sw), (dh, dw), (pt, pl) = (lift(strides, rank, 1), lift(dilations, rank, 1),
                                    lift(begins, rank, 0))
    n, c_in, h, wd = x2.shape
    _, c_out, oh, ow = out2.shape
    kh, kw = w2.shape[2:]
    width = builder.traits.vector_width
    options, act_a, act_b = fused(node)
    options = [f"-DVW={width}", *(["-DHAS_BIAS"] if bias is not None else []),
               *(["-DHAS_RESIDUAL"] if residual is not None else []), *options]
    epilogue = [bias, residual, out2]
    window = [np.int32(v) for v in (kh, kw, sh, sw, dh, dw, pt, pl)]
    shape = [np.int32(v) for v in (c_in, h, wd, c_out, oh, ow)]
    per_group = c_out // group
    shuffle = int(node.attrs.get("input_shuffle", 0))
    if shuffle:  # converter/channel_shuffle.py: only on a depthwise Conv, one output a channel
        if not (group == c_in == c_out and w2.shape[1] == 1 and c_in % shuffle == 0):
            raise builder.fail(f"input_shuffle {shuffle} on a Conv that is not depthwise over "
                               f"channels it divides ({c_in} -> {c_out}, group {group})")
        options = [*options, f"-DSHUFFLE={shuffle}"]
    if group > 1 and w2.shape[1] == 1:
        if rows_fit(builder.traits, kh, kw, sh, sw, dh, dw, dilated=True):
            rows_launch(builder, x2, w2, bias, residual, out2, (kh, kw, sh, sw, pt, pl),
                        [*options, *dilation_options(dh, dw)], act_a, act_b)
            return out
        builder.launch("conv2d", "depthwise_conv2d",
                       [x2, w2, *epilogue, *shape, *window, np.int32(n * c_out), act_a, act_b],
                       (-(-ow // width), -(-oh // DW_ROWS), n * c_out), options=options,
                       local_size=heavy_items(builder))
        return out
    if tiled_fits(builder.traits):
        convolve_tiled(node, builder, x2, w2, bias, residual, out2,
                       [kh, kw, sh, sw, dh, dw, pt, pl], group)
        return out
    tile = winograd_tile(builder, (kh, kw, sh, sw, dh, dw), group, w2, oh, ow)
    if tile:
        convolve_winograd(builder, x2, w2, bias, residual, out2, (pt, pl), tile, options, act_a,
                          act_b)
        return out
    pointwise = (kh, kw, sh, sw, pt, pl, oh, ow) == (1, 1, 1, 1, 0, 0, h, wd)
    taps = c_in // group * kh * kw
    stem = (stem_block(builder.traits, c_in // group, per_group, pointwise, w2.host is not None)
            if ow >= width else 0)
    channels = stem or gemm_channels(builder.traits)
    if stem:
        packed = builder.constant(pack_filter_array(np.asarray(w2.host), group, stem))
    else:
        packed = packed_filter(builder, w2, group, per_group, taps)
    options = [*options, f"-DCO_BLOCK={channels}"]
    cols_bytes = 4 * n * c_in * kh * kw * oh * ow
    if stem or not pointwise and ow >= width and (per_group < 4 * GEMM_CHANNELS
                                                  or cols_bytes > COLS_LIMIT):
        blocks = n * group * -(-per_group // channels)
        args = [x2, packed, *epilogue, *shape, *window, np.int32(group), np.int32(blocks),
                act_a, act_b]
        if stem:
            # groups of up to 8 x 8 pixel vectors (neighbouring rows share input rows): kernel
            # ms (the tuner's timing) PoCL's own choice / one work item / this: SqueezeNet's
            # 3x3/2 3 -> 64 0.70 / 0.77 / 0.36, ShuffleNet's 3 -> 24 0.24 / 0.11 / 0.14,
            # ResNet-50's 7x7/2 2.75 / 2.38 / 1.15 (im2col + conv2d_gemm took 0.59 and 1.88
            # in the profile)
            grid = (blocks, -(-ow // width), oh)
            builder.launch("conv2d", "conv2d_direct", args, grid,
                           options=[*options, *stem_taps(builder.traits, c_in // group, kh, kw, sw)],
                           local_size=row_groups(grid))
        elif sw == 1:
            builder.launch("conv2d", "conv2d_direct_wide", args,
                           (blocks, -(-ow // (width * GEMM_VECTORS)), oh), options=options,
                           local_size=heavy_items(builder))
        else:
            grid = (blocks, -(-ow // width), oh)
            builder.launch("conv2d", "conv2d_direct", args, grid, options=options,
                           local_size=row_groups(grid) if builder.traits.cpu else None)
        return out
    pixels = oh * ow
    vectors, block_options = gemm_block(builder.traits, pixels, not pointwise)
    options = [*options, *block_options]
    span = width * vectors
    cols = x2
    if not pointwise:
        cols = builder.new((n * group, -(-pixels // span), taps, span))
        builder.launch("conv2d", "im2col", [x2, cols, *shape[:3], *shape[4:], *window,
                                            np.int32(taps), np.int32(n * c_in)],
                       grid := (n * c_in, cols.shape[1] * vectors), options=options,
                       local_size=im2col_groups(grid) if builder.traits.cpu else None)
        options = [*options, "-DPACKED_COLS"]
    sizes = (per_group, taps, pixels, group, n * group)
    gemm_launch(builder, [packed, cols, *epilogue, *(np.int32(v) for v in sizes), act_a, act_b],
                per_group, taps, pixels, span, n * group, options)
    return out


def gemm_launch(builder, args: list, channels: int, depth: int, pixels: int, span: int,
                batch_groups: int, options: list[str]) -> None:
    """conv2d_gemm over ``channels`` by ``pixels`` (sums over ``depth``) in blocks of
    gemm_channels by ``span`` (the filter packed in such blocks); on a CPU, in the order of
    ``pixels_first``."""
    block = gemm_channels(builder.traits)
    channel_blocks, pixel_blocks = -(-channels // block), -(-pixels // span)
    first = builder.traits.cpu and pixels_first(channel_blocks * block, pixel_blocks, depth,
                                                span)
    options = [*(o for o in options if not o.startswith("-DCO_BLOCK=")), f"-DCO_BLOCK={block}"]
    grid = (pixel_blocks, channel_blocks) if first else (channel_blocks, pixel_blocks)
    builder.launch("conv2d", "conv2d_gemm", [*args, np.int32(first)],
                   (*grid, batch_groups), options=options, local_size=heavy_items(builder))


def pixels_first(channels: int, pixel_blocks: int, depth: int, span: int) -> bool:
    """Whether conv2d_gemm's pixel blocks run fastest on a CPU (``channels`` padded to whole
    blocks), each channel block's weights
    read from memory once, rather than its channel blocks, each pixel block's cols read once.

    The order that keeps the larger operand out of the way: pixels first where the pixels
    make at most PIXELS_FIRST_BLOCKS blocks, or where the weights do not stay in one core's
    cache (CORE_CACHE_BYTES) from one pixel block to the next while the cols do from one
    channel block to the next. ResNet-50's 7x7 stage (P = 49: 2 blocks of 32), one-off
    timings with the caches flushed before each launch: 512<-4608 x 49 1.42 -> 1.34 ms,
    2048<-1024 x 49 1.18 -> 0.96, 512<-2048 x 49 0.58 -> 0.49; with 7 blocks (256<-2304 x
    196, 2.4 MB of weights but 2 MB of cols) 1.73 -> 1.90 and with 98 (64<-576 x 3136) 0.94
    -> 2.18, where the cols that the channel-first order shares are what matters.
    512<-1024 x 196 (2 MB of weights, 0.9 MB of cols), the kernel alone on two threads with
    the caches warm: 1.39 -> 0.68 ms; in ResNet-50's profile 0.90 -> 0.77 ms."""
    weights = channels * depth * 4
    cols = depth * pixel_blocks * span * 4
    return pixel_blocks <= PIXELS_FIRST_BLOCKS or (weights > CORE_CACHE_BYTES >= cols)


def gemm_block(traits, pixels: int, packed: bool) -> tuple[int, list[str]]:
    """conv2d_gemm's pixel vectors per work item (PX; the 8 channels are fixed) and the build
    options that set it and, on a CPU, the prefetch of cols rows ahead (-DPREFETCH).

    On a CPU of 16-float vectors (AVX-512: 32 registers) 3 vectors (24 accumulators) where
    they pad P no further than 2 do, and where P fills them unless cols are packed (fewer
    pixels than a block take the lane-by-lane path); else 2. The prefetch (16 rows ahead,
    each cache line of the block's row) is for a block that spans K rows of an unpacked
    (K, P) input, each in another page, which no hardware prefetcher follows. Measured by
    `python bench/gemm_kernels.py --rounds 5` (PoCL, machine shared, load 3.2-3.6; ms,
    the kernel before, with the prefetch, at 3 vectors, as chosen here; more in its
    docstring):

                                           8x2    8x2 pf  8x3 pf  chosen
        resnet 64<-147 x 12544, packed     2.691  2.429   2.268   2.110
        resnet 512<-2048 x 49              1.002  0.884   1.482   0.875
        rec 60<-2880 x 40, packed          0.146  0.135   0.102   0.102
        rec 480<-480 x 480                 1.473  1.483   1.413   1.399
        rec 480<-120 x 40                  0.045  0.047   0.097   0.048
        sums: squeezenet                   4.12   4.09    4.64    4.10
              resnet50                     55.53  52.46   64.89   52.57
              ppocr_rec                    8.53   8.60    8.40    8.34

    On other devices (GPUs) 2 vectors and no prefetch (a clang builtin)."""
    width = traits.vector_width
    if not traits.cpu:
        return GEMM_VECTORS, []
    options = [f"-DPREFETCH={GEMM_PREFETCH}"]

    def padded(vectors: int) -> int:
        span = vectors * width
        return -(-pixels // span) * span

    if width == 16 and (packed or pixels >= 3 * width) and padded(3) <= padded(2):
        return 3, [*options, "-DPX=3"]
    return GEMM_VECTORS, options


def row_groups(grid: tuple[int, int, int]) -> tuple[int, int, int]:
    """conv2d_direct's local size on a CPU: up to 8 x 8 pixel vectors of one channel block,
    whose neighbouring rows share input rows (the engine rounds the grid up to it). PoCL's
    own choice for a grid of at most 4096 work items is one group, one core; one work item
    a group loses the rows' sharing. Kernel ms, three profiles each (before: the driver's
    choice), torchvision's grouped 3x3/2 layers: RegNetY-400MF's 32 and 64 channels in
    groups of 16 0.81-1.03 -> 0.40-0.44 and 0.54-0.61 -> 0.22-0.23, RegNetX's 0.74-0.89 ->
    0.51-0.53 and 0.42-0.46 -> 0.26-0.27, ResNeXt-50's 32 groups of 8 on 56x56 0.74-0.79
    -> 0.54-0.60 (one item a group: 0.93). The stems' figures: _convolve_forward."""
    return (1, group_side(grid[1], 8), group_side(grid[2], 8))


def im2col_groups(grid: tuple[int, int]) -> tuple[int, int]:
    """im2col's local size on a CPU: up to 4 input channels by 16 pixel vectors, whose
    neighbouring work items read neighbouring input and write neighbouring rows and blocks
    of cols. PoCL's own choice puts a grid of at most 4096 work items in one group, on one
    core (ResNet-50's 7x7 and 14x14 stages). ResNet-50's eight im2col launches, ms a run
    (median of 9 in-model profiles, two engines in one process, two runs): PoCL's choice
    2.01 and 1.88, this 1.56 and 1.62; 8 x 8 and 1 x 16 gave 1.61 and 1.59 in other runs."""
    return (group_side(grid[0], 4), group_side(grid[1], 16))


def heavy_items(builder) -> tuple[int, int, int] | None:
    """The local size of conv2d_gemm and depthwise_conv2d: one work item per group on a CPU,
    whose driver would otherwise run up to 4096 of them as one group on one core (see
    DeviceTraits.cpu); the driver's or the tuner's choice elsewhere. Depthwise
    (bench/conv_kernels.py --rounds 9 --shapes dw, load 1.1): PP-OCR rec's 3x3 on 240x12x80
    0.19 against 0.33 ms, shufflenet's 3x3 on 112x28x28 0.17 against 0.21 ms, 5x5 on
    240x20x20 0.43 against 0.51 ms, 3x3 on 96x80x80 0.57 against 0.60 ms. (conv2d_direct
    takes row_groups instead.)"""
    return (1, 1, 1) if builder.traits.cpu else None


def packed_filter(builder, w2, group: int, per_group: int, taps: int):
    """The filter as conv2d_gemm and conv2d_direct read it: (group, channel blocks, taps,
    gemm_channels), zero past the last channel, so that one tap's weights for a block of
    channels lie together (one cache line, no gathers). Constant weights are packed here,
    once per plan; weights computed on the device by a ``pack_filter`` launch."""
    channels = gemm_channels(builder.traits)
    if w2.host is not None:
        return builder.constant(pack_filter_array(np.asarray(w2.host), group, channels))
    blocks = -(-per_group // channels)
    packed = builder.new((group, blocks, taps, channels))
    width = builder.traits.vector_width
    builder.launch("conv2d", "pack_filter",
                   [w2, packed, np.int32(per_group), np.int32(taps), np.int32(group * blocks)],
                   (-(-taps // width), group * blocks),
                   options=[f"-DVW={width}", f"-DCO_BLOCK={channels}"])
    return packed


def gemm_channels(traits) -> int:
    """Output channels a conv2d_gemm work item computes (CO_BLOCK), and conv2d_direct's and
    conv2d_direct_wide's outside a stem: with PX = 2 vectors of pixels, 2 * CO_BLOCK
    accumulators. GEMM_CHANNELS where there are registers for 16 (AVX-512's 32, a GPU's);
    FEW_REGISTERS_CHANNELS on a CPU of 8-float vectors, whose 16 registers (AVX2) hold 10
    accumulators, the 2 pixel vectors and a weight, where 16 accumulators were spilled
    every step. conv2d_gemm's kernel alone on ResNet-50's and SqueezeNet's products (PoCL,
    AMD EPYC Zen 4 compiled as znver3, VW 8, prefetch, fastest of 22 launches; ms, CO_BLOCK
    x PX): 128<-512 x 784 0.90 at 8x2, 0.69 at 8x1, 0.50 at 5x2, 0.51 at 4x2, 1.15 at 6x2;
    512<-2048 x 49 1.19, 0.94, 0.72, 0.79; 1000<-512 x 169 1.61, 1.34, 0.89, 0.98."""
    if traits.cpu and traits.vector_width == 8:
        return FEW_REGISTERS_CHANNELS
    return GEMM_CHANNELS


def pack_filter_array(filt: np.ndarray, group: int, channels: int = GEMM_CHANNELS
                      ) -> np.ndarray:
    """A host filter (C_out, C_in / group, KH, KW) in packed_filter's layout, in blocks of
    ``channels`` (CO_BLOCK)."""
    per_group, taps = filt.shape[0] // group, filt[0].size
    blocks = -(-per_group // channels)
    padded = np.zeros((group, blocks * channels, taps), np.float32)
    padded[:, :per_group] = filt.astype(np.float32).reshape(group, per_group, taps)
    blocked = padded.reshape(group, blocks, channels, taps).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(blocked)


def stem_taps(traits, inputs: int, kh: int, kw: int, sw: int) -> list[str]:
    """conv2d_direct's build options that make a stem's interior taps straight-line code,
    for at most STEM_TAPS taps, on a CPU of 16-float vectors (AVX-512). Kernel ms a run,
    with / without, engines alternated in one process (21 profiles): SqueezeNet's 3x3/2 3
    -> 64 0.35 / 0.53, ShuffleNet's 3 -> 24 0.18 / 0.22, PP-OCR det's 3 -> 16 on 640x640
    1.29 / 1.52; PoCL compiles the 3x3 one in 0.67 s against 0.41. At 8-float vectors (Zen 4
    compiled as znver3) the same code lost: 1.08 / 0.59 and 0.41 / 0.28 ms (the kernel alone,
    fastest of 25). None for more taps: ResNet-50's 7x7 on 3 channels (147 taps) took 2.5 s
    against 0.4 s to compile (with every tap loop unrolled, not only the interior's, it had
    run 1.45 against 1.59 ms)."""
    if traits.vector_width < 16 or inputs * kh * kw > STEM_TAPS:
        return []
    return ["-DSTEM_TAPS", f"-DSTEM_CIN={inputs}", f"-DSTEM_KH={kh}", f"-DSTEM_KW={kw}",
            f"-DSTEM_SW={sw}"]


def stem_block(traits, inputs: int, per_group: int, pointwise: bool, constant: bool) -> int:
    """The channel block of conv2d_direct for a network's first convolution on a CPU (at most
    STEM_INPUTS input channels a group, constant weights, a window), or 0 where this rule
    does not apply. Its few input channels give each work item little to reuse: wider
    channel blocks make each input vector it loads feed 16 or 24 multiply-adds, not 8."""
    if not traits.cpu or pointwise or not constant or inputs > STEM_INPUTS:
        return 0
    if per_group % 24 == 0:
        return 24
    return 16 if per_group >= 16 else GEMM_CHANNELS


@lowering("Conv")
def _lower_conv(node: Node, inputs: list, builder) -> list:
    x, w, bias, rank, kernel, group, out_channels = _operands(node, inputs, builder, False)
    strides, dilations, begins, ends = window_attrs(node, rank, builder)
    mode = auto_pad(node)
    outs = []
    for axis in range(rank):
        size, begins[axis], ends[axis] = window_output(
            x.shape[2 + axis], kernel[axis], strides[axis], dilations[axis], begins[axis],
            ends[axis], mode)
        outs.append(size)
    residual = inputs[3] if len(inputs) > 3 else None
    shape = (x.shape[0], out_channels, *outs)
    if residual is None or residual.shape == shape:
        return [_convolve_forward(node, builder, x, w, bias, residual, group, out_channels,
                                  strides, dilations, begins, outs)]
    # A residual that broadcasts: convolve, add, then the activation the Add came before.
    plain = Node(node.op, node.name, node.inputs[:3], node.outputs,
                 {k: v for k, v in node.attrs.items() if k != "activation"})
    out = _convolve_forward(plain, builder, x, w, bias, None, group, out_channels, strides,
                            dilations, begins, outs)
    out = lower_binary(builder, OPS["Add"], out, residual)
    code, act_a, act_b = node.attrs.get("activation", (0, 0.0, 0.0))
    if not code:
        return [out]
    activated = builder.new(out.shape)
    builder.launch("unary", "unary", [out, activated, np.int32(out.size), np.float32(act_a),
                                      np.float32(act_b)], out.size, options=[f"-DOP={int(code)}"])
    return [activated]


def transpose_geometry(node: Node, shape: tuple[int, ...], kernel: list[int], builder
                       ) -> tuple[list[int], list[int], list[int], list[int]]:
    """strides, dilations, pads_begin and output sizes of a ConvTranspose's spatial axes."""
    rank = len(kernel)
    strides, dilations, begins, ends = window_attrs(node, rank, builder)
    padding = ints(node, "output_padding") or [0] * rank
    if len(padding) != rank:
        raise builder.fail(f"output_padding {padding} does not match {rank} spatial dims")
    mode = auto_pad(node)
    requested = ints(node, "output_shape")
    if requested is not None:
        requested = requested[-rank:]  # it may list N and C too
        if len(requested) != rank:
            raise builder.fail(f"output_shape {ints(node, 'output_shape')} does not match "
                               f"{rank} spatial dims")
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        requested = [shape[2 + axis] * strides[axis] for axis in range(rank)]
    outs = []
    for axis in range(rank):
        full = (strides[axis] * (shape[2 + axis] - 1) + padding[axis]
                + dilations[axis] * (kernel[axis] - 1) + 1)
        if requested is not None:  # pads follow from the size (the pads attribute is ignored)
            total = max(0, full - requested[axis])
            begins[axis] = total // 2 if mode == "SAME_UPPER" else total - total // 2
            outs.append(requested[axis])
        else:
            if mode == "VALID":
                begins[axis] = ends[axis] = 0
            outs.append(full - begins[axis] - ends[axis])
    return strides, dilations, begins, outs


@lowering("ConvTranspose")
def _lower_conv_transpose(node: Node, inputs: list, builder) -> list:
    x, w, bias, _rank, kernel, group, out_channels = _operands(node, inputs, builder, True)
    strides, dilations, begins, outs = transpose_geometry(node, x.shape, kernel, builder)
    return [_convolve_transposed(node, builder, x, w, bias, group, out_channels, strides,
                                 dilations, begins, outs)]

