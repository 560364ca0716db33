"""Resize (opsets 10 to 18) and Upsample (7 and 9), modes nearest and linear, on the
``resize`` program.

The kernels resize the last two axes of an NCHW tensor, so any input whose other axes keep
their size is viewed as (prod(leading), 1, H, W) (a 1-D input as (1, 1, 1, W)). Output sizes
are floor(size * scale) computed in float32, as onnxruntime does, or the given sizes; the
kernel gets the scale (out / in when sizes were given).

Opset variants are told apart by what the node carries, since the opset is not passed on:
Upsample with a ``scales`` attribute is Upsample-7, with a second input Upsample-9; Resize
with two inputs (X, scales) is Resize-10. All three use asymmetric coordinates, and their
nearest pixel is onnxruntime's "simple" rule: floor when upsampling an axis, ceil when
downsampling it. Resize-11 on takes (X, roi, scales, sizes) and the coordinate attributes;
Resize-18 adds axes, keep_aspect_ratio_policy and antialias.

The kernels run over a 3-D NDRange, the driver choosing the work-group. Where every output
pixel takes input pixel (oh // FH, ow // FW) for whole factors FH, FW (checked on the host
against the kernel's own formulas: nearest_indices), ``resize_nearest_blocks`` runs one
work item per input pixel that writes its block of copies; otherwise ``resize_nearest`` /
``resize_bilinear`` compute each output pixel's source coordinates.
`python bench/op_kernels.py --rounds 7 --cases resize` (PoCL 3.0, 2-core Xeon shared with
other jobs, load 3), median ms, PP-OCR det's upsampling (nearest, asymmetric, floor):

    x2 96x80x80:  1-D (before) 44.5   3-D 17.2   blocks 2.82   3-D local (16,1,1) 19.0,
                  (64,1,1) 17.6, (160,1,1) 16.8, (16,4,1) 18.2   16 pixels per item 23.3
    x8 24x20x20:  1-D (before) 16.2   3-D 8.50   blocks 0.39   3-D local (160,1,1) 4.20
                  16 per item 5.66

The 1-D kernel divided its id into plane, row and column per pixel; the 3-D one computes
the coordinates (a division, a floor per axis) but not that, 2.6x faster on a quieter run;
the blocks compute nothing and are 6-20x faster again. Fixing the work-group or giving
each item 16 pixels gained nothing over the 3-D kernel's default.
"""

from __future__ import annotations

import math

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.registry import checker, lowering

COORD_MODES = {"half_pixel": 0, "align_corners": 1, "asymmetric": 2, "pytorch_half_pixel": 3}
NEAREST_MODES = {"round_prefer_floor": 0, "round_prefer_ceil": 1, "floor": 2, "ceil": 3}
FLOOR, CEIL = NEAREST_MODES["floor"], NEAREST_MODES["ceil"]
POLICIES = ("stretch", "not_larger", "not_smaller")


def _text(node: Node, name: str, default: str) -> str:
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _legacy(node: Node) -> bool:
    """Upsample, or Resize-10: asymmetric coordinates and the "simple" nearest pixel."""
    return node.op == "Upsample" or len(node.inputs) == 2


def _mode(node: Node) -> str:
    mode = _text(node, "mode", "nearest")
    return "linear" if mode == "bilinear" else mode


@checker("Resize", "Upsample")
def _check(node: Node) -> str | None:
    mode = _mode(node)
    if mode not in ("nearest", "linear"):
        return f"{node.op} with mode {mode}"
    if node.op == "Upsample":
        scales = node.attrs.get("scales")
        if scales is not None and len(scales) > 2 and any(float(s) != 1 for s in scales[:-2]):
            return f"Upsample with scales {list(scales)} (only the last two axes may scale)"
        return None
    if _legacy(node):
        return None
    coord = _text(node, "coordinate_transformation_mode", "half_pixel")
    if coord not in COORD_MODES:
        return f"Resize with coordinate_transformation_mode {coord}"
    nearest = _text(node, "nearest_mode", "round_prefer_floor")
    if mode == "nearest" and nearest not in NEAREST_MODES:
        return f"Resize with nearest_mode {nearest}"
    policy = _text(node, "keep_aspect_ratio_policy", "stretch")
    if policy not in POLICIES:
        return f"Resize with keep_aspect_ratio_policy {policy}"
    return None


def _optional(inputs: list, index: int, builder, what: str) -> np.ndarray | None:
    """A host input that may be omitted ("" or an empty tensor)."""
    if len(inputs) <= index or inputs[index] is None:
        return None
    array = builder.host(inputs[index], what)
    return array if array.size else None


def _geometry(node: Node, shape: tuple[int, ...], inputs: list, builder
              ) -> tuple[list[int], list[float]]:
    """Output sizes and per-axis scales (as the kernel takes them) for an input of ``shape``."""
    rank = len(shape)
    if node.op == "Upsample":
        given = node.attrs.get("scales")
        scales = (np.asarray(given, np.float32) if given is not None
                  else _optional(inputs, 1, builder, "scales"))
        sizes, axes, policy = None, None, "stretch"
    elif _legacy(node):
        scales, sizes, axes, policy = _optional(inputs, 1, builder, "scales"), None, None, "stretch"
    else:
        scales = _optional(inputs, 2, builder, "scales")
        sizes = _optional(inputs, 3, builder, "sizes")
        axes = node.attrs.get("axes")
        policy = _text(node, "keep_aspect_ratio_policy", "stretch")
    if (scales is None) == (sizes is None):
        raise builder.fail("exactly one of scales and sizes must be given")
    axes = list(range(rank)) if axes is None else [int(a) + rank if int(a) < 0 else int(a)
                                                    for a in axes]
    if any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
        raise builder.fail(f"axes {node.attrs.get('axes')} do not fit rank {rank}")
    given = np.asarray(scales if sizes is None else sizes).ravel()
    if given.size != len(axes):
        raise builder.fail(f"{'scales' if sizes is None else 'sizes'} {given.tolist()} do not "
                           f"match the {len(axes)} axes resized of the input {list(shape)}")
    outs, factors = list(shape), [1.0] * rank
    if sizes is None:
        for axis, scale in zip(axes, given.astype(np.float32)):
            if not scale > 0:
                raise builder.fail(f"scale {float(scale)} must be positive")
            outs[axis] = int(np.floor(np.float32(shape[axis]) * scale))
            factors[axis] = float(scale)
    elif policy == "stretch":
        for axis, size in zip(axes, given.astype(np.int64)):
            outs[axis] = int(size)
            ratio = np.float32(size) / np.float32(shape[axis]) if shape[axis] else 1.0
            factors[axis] = float(ratio)
    else:
        ratios = [np.float32(size) / np.float32(shape[axis]) for axis, size in zip(axes, given)]
        common = min(ratios) if policy == "not_larger" else max(ratios)
        for axis in axes:
            outs[axis] = int(np.floor(np.float32(shape[axis]) * common + np.float32(0.5)))
            factors[axis] = float(common)
    return outs, factors


def nearest_indices(coord: int, nearest: int, in_size: int, out_size: int, scale: float
                    ) -> np.ndarray:
    """The input index of each output index along one axis, as resize_nearest computes it
    (float32, ONNX's formulas), for the host to see when whole-factor blocks give the same."""
    x = np.arange(out_size, dtype=np.float32)
    scale = np.float32(scale)
    with np.errstate(all="ignore"):
        if coord == COORD_MODES["align_corners"]:
            source = (x * np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1
                      else np.zeros_like(x))
        elif coord == COORD_MODES["asymmetric"]:
            source = x / scale
        elif coord == COORD_MODES["pytorch_half_pixel"] and out_size <= 1:
            source = np.zeros_like(x)
        else:
            source = (x + np.float32(0.5)) / scale - np.float32(0.5)
    floor = np.floor(source)
    rounded = {NEAREST_MODES["round_prefer_floor"]: floor + (source - floor > 0.5),
               NEAREST_MODES["round_prefer_ceil"]: floor + (source - floor >= 0.5),
               FLOOR: floor, CEIL: np.ceil(source)}[nearest]
    return np.clip(rounded, 0, in_size - 1).astype(np.int64)


def _whole_factors(coord: int, nearest: int, sizes: tuple[int, int, int, int],
                   scales: tuple[float, float]) -> bool:
    """Whether each output pixel takes input pixel (oh // FH, ow // FW), FH and FW whole."""
    h, w, oh, ow = sizes
    for size, out_size, scale in ((h, oh, scales[0]), (w, ow, scales[1])):
        if out_size % size:
            return False
        wanted = np.arange(out_size) // (out_size // size)
        if not np.array_equal(nearest_indices(coord, nearest, size, out_size, scale), wanted):
            return False
    return True


@lowering("Resize", "Upsample")
def _lower(node: Node, inputs: list, builder) -> list:
    reason = _check(node)
    if reason:
        raise builder.fail(f"{reason} is not supported")
    x = inputs[0]
    if x.rank == 0:
        raise builder.fail(f"{node.op} of a scalar")
    outs, factors = _geometry(node, x.shape, inputs, builder)
    lead = x.rank - 2 if x.rank >= 2 else 0
    for axis in range(lead):
        if outs[axis] != x.shape[axis] or factors[axis] != 1.0:
            raise builder.fail(f"resizing axis {axis} of {list(x.shape)} (to {outs[axis]}): "
                               "macecl resizes the last two axes only")
    out = builder.new(outs)
    if out.size == 0:
        return [out]
    (h, w), (oh, ow) = (x.shape[-2:], outs[-2:]) if x.rank >= 2 else ((1, *x.shape), (1, *outs))
    scale_h, scale_w = (factors[-2:] if x.rank >= 2 else (1.0, factors[0]))
    planes = math.prod(x.shape[:lead])
    mode = _mode(node)
    if mode == "linear" and int(node.attrs.get("antialias", 0)) and (oh < h or ow < w):
        raise builder.fail("linear downscaling with antialias is not supported")
    kernel = "resize_bilinear" if mode == "linear" else "resize_nearest"

    def launch(source, target, sizes, scales, nearest):
        coord = (COORD_MODES["asymmetric"] if _legacy(node) else
                 COORD_MODES[_text(node, "coordinate_transformation_mode", "half_pixel")])
        viewed = [builder.view(source, (planes, 1, *sizes[:2])),
                  builder.view(target, (planes, 1, *sizes[2:]))]
        h, w, oh, ow = sizes
        if kernel == "resize_nearest" and _whole_factors(coord, nearest, sizes, scales):
            builder.launch("resize", "resize_nearest_blocks",
                           [*viewed, *map(np.int32, (planes, h, w, oh // h, ow // w))],
                           (w, h, planes))
            return
        options = [f"-DCOORD_MODE={coord}"]
        if kernel == "resize_nearest":
            options.append(f"-DNEAREST_MODE={nearest}")
        args = [*viewed, *(np.int32(v) for v in (planes, 1, *sizes)),
                *(np.float32(s) for s in scales)]
        builder.launch("resize", kernel, args, (ow, oh, planes), options=options)

    if not _legacy(node):
        launch(x, out, (h, w, oh, ow), (scale_h, scale_w),
               NEAREST_MODES[_text(node, "nearest_mode", "round_prefer_floor")])
        return [out]
    # The "simple" nearest pixel: floor along an upsampled axis, ceil along a downsampled one.
    # An axis of scale 1 maps to whole coordinates, where both agree.
    wanted = {FLOOR if s > 1.0 else CEIL for s in (scale_h, scale_w) if s != 1.0}
    if mode == "linear" or len(wanted) < 2:
        launch(x, out, (h, w, oh, ow), (scale_h, scale_w), min(wanted, default=FLOOR))
        return [out]
    middle = builder.new((*x.shape[:-1], ow))  # one axis up, the other down: one at a time
    launch(x, middle, (h, w, h, ow), (1.0, scale_w), FLOOR if scale_w > 1.0 else CEIL)
    launch(middle, out, (h, ow, oh, ow), (scale_h, 1.0), FLOOR if scale_h > 1.0 else CEIL)
    return [out]
