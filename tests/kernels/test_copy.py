"""copy.cl: copy_box and copy_rows as Slice, Concat and Split use them, and Pad in its four
modes."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close, contiguous_strides


def _copy_box(cl_env, src_buf, dst_buf, box, src_offset, src_strides, dst_offset, dst_strides):
    meta = cl_env.buffer(np.array(list(box) + list(src_strides) + list(dst_strides), np.int32))
    total = int(np.prod(box))
    cl_env.launch("copy", "", "copy_box", total,
                  src_buf, dst_buf, meta, len(box), src_offset, dst_offset, total)


def _copy_rows(cl_env, src_buf, dst_buf, box, src_offset, src_strides, dst_offset, dst_strides):
    """copy_rows: the innermost dim contiguous on both sides, the others walked per row."""
    assert src_strides[-1] == 1 and dst_strides[-1] == 1
    outer = len(box) - 1
    meta = cl_env.buffer(np.array([*box[:-1], *src_strides[:-1], *dst_strides[:-1], 0],
                                  np.int32))
    inner, rows = box[-1], int(np.prod(box[:-1]))
    cl_env.launch("copy", "-DVW=4", "copy_rows", (-(-inner // 4), rows), src_buf, dst_buf,
                  meta, outer, src_offset, dst_offset, inner, rows)


COPIES = {"copy_box": _copy_box, "copy_rows": _copy_rows}


@pytest.mark.parametrize(
    "shape,starts,steps,box",
    [
        ((4, 7, 5), (1, 0, 2), (1, 2, 1), (2, 4, 3)),  # x[1:3, 0::2, 2:5]
        ((4, 7, 5), (3, 6, 0), (-1, -3, 2), (4, 3, 3)),  # negative steps: x[::-1, 6::-3, ::2]
        ((2, 3, 2, 3, 2, 5), (1, 0, 1, 2, 0, 4), (1, 1, 1, 1, 1, -2), (1, 3, 1, 1, 2, 3)),
        ((10,), (9,), (-1,), (10,)),
    ],
)
def test_slice(cl_env, rng, shape, starts, steps, box):
    x = rng.standard_normal(shape).astype(np.float32)
    strides = contiguous_strides(shape)
    src_offset = sum(s * st for s, st in zip(starts, strides))
    src_strides = [step * st for step, st in zip(steps, strides)]
    out = cl_env.output(box)
    _copy_box(cl_env, cl_env.buffer(x), out, box, src_offset, src_strides, 0,
              contiguous_strides(box))
    want = x[np.ix_(*[start + step * np.arange(n) for start, step, n in zip(starts, steps, box)])]
    assert_close(cl_env.read(out, box), want)


def test_slice_as_rows(cl_env, rng):
    """x[1:3, 0::2, 1:4]: rows of 3 from a strided walk of the outer dims."""
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    out = cl_env.output((2, 4, 3))
    _copy_rows(cl_env, cl_env.buffer(x), out, (2, 4, 3), 35 + 1, (35, 10, 1), 0, (12, 3, 1))
    assert_close(cl_env.read(out, (2, 4, 3)), x[1:3, 0::2, 1:4])


@pytest.mark.parametrize("copy", list(COPIES))
@pytest.mark.parametrize("axis", [0, 1, 3])
def test_concat_then_split(cl_env, rng, axis, copy):
    sizes = [2, 1, 3]
    shapes = [tuple(s if d == axis else n for d, n in enumerate((3, 4, 2, 5))) for s in sizes]
    parts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    want = np.concatenate(parts, axis=axis)
    out_strides = contiguous_strides(want.shape)

    out = cl_env.output(want.shape)
    position = 0
    for part in parts:  # Concat: every input lands at its offset along the axis
        COPIES[copy](cl_env, cl_env.buffer(part), out, part.shape, 0,
                     contiguous_strides(part.shape), position * out_strides[axis], out_strides)
        position += part.shape[axis]
    assert_close(cl_env.read(out, want.shape), want)

    position = 0
    for part in parts:  # Split: the mirror image, reading the concatenated tensor back
        piece = cl_env.output(part.shape)
        COPIES[copy](cl_env, out, piece, part.shape, position * out_strides[axis],
                     out_strides, 0, contiguous_strides(part.shape))
        assert_close(cl_env.read(piece, part.shape), part)
        position += part.shape[axis]


MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


def _pad(cl_env, x, mode, pads_begin, pads_end, value=0.0):
    out_shape = tuple(b + n + e for b, n, e in zip(pads_begin, x.shape, pads_end))
    meta = np.array(list(out_shape) + list(x.shape) + list(pads_begin), np.int32)
    total = int(np.prod(out_shape))
    return cl_env.run("copy", f"-DMODE={MODES[mode]}", "pad", out_shape, [x],
                      [meta, x.ndim, total, value])


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(
    "shape,pads_begin,pads_end",
    [
        ((2, 3, 4, 5), (0, 0, 1, 2), (0, 0, 2, 1)),  # spatial pads of NCHW
        ((3, 4), (2, 3), (3, 0)),
        ((1, 2, 3, 1, 2, 3), (1, 0, 2, 0, 1, 1), (0, 1, 1, 2, 0, 2)),  # 6-D, size-1 dims
        ((3,), (5,), (6,)),  # pads wider than the dim: reflect / wrap repeat
        ((1, 4), (2, 1), (3, 0)),  # reflect of a size-1 dim repeats its one value
    ],
)
def test_pad(cl_env, rng, mode, shape, pads_begin, pads_end):
    x = rng.standard_normal(shape).astype(np.float32)
    got = _pad(cl_env, x, mode, pads_begin, pads_end, value=2.5)
    kwargs = {"constant_values": 2.5} if mode == "constant" else {}
    assert_close(got, np.pad(x, list(zip(pads_begin, pads_end)), mode=mode, **kwargs))


def test_pad_negative_crops(cl_env, rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    got = _pad(cl_env, x, "constant", (-1, 2), (1, -3), value=-7.0)
    want = np.pad(x[1:, :3], ((0, 1), (2, 0)), constant_values=-7.0)
    assert_close(got, want)


def test_rows_copy_whole_vectors_and_a_tail(cl_env, rng):
    """x[1:4, 2:39]: rows of 37 = 9 vectors of 4 and one float, from rows 41 apart."""
    x = rng.standard_normal((5, 41)).astype(np.float32)
    out = cl_env.output((3, 37))
    _copy_rows(cl_env, cl_env.buffer(x), out, (3, 37), 41 + 2, (41, 1), 0, (37, 1))
    np.testing.assert_array_equal(cl_env.read(out, (3, 37)), x[1:4, 2:39])
