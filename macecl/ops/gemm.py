"""Matrix products: Gemm and MatMul, on the ``gemm`` program.

Gemm is one ``gemm`` launch: the transposes are build options, C's broadcast to (M, N) is
expressed by two strides, and an activation the converter fused rides along. Work items
compute register blocks (8 rows by one float vector of columns, the device's width), see
gemm.cl. MatMul follows
NumPy's rules (1-D operands gain and then lose a unit dim, batch dims broadcast); when B has
no batch (2-D, or batch dims of size 1) the batch folds into A's rows and one ``gemm`` launch
does it, with the bias the converter may have folded in as a third input (one value per
column, converter/matmul_bias.py) as C; otherwise the ``matmul`` kernel walks the broadcast
batch through a meta table.
On a device with dedicated local memory, a fully connected Gemm (transB, alpha 1; C absent,
or with beta 1 a bias row or a whole (M, N) matrix) runs as a 1x1 convolution on
``conv2d_tiled`` instead: see ops/conv_tiled.py.

``gemm`` runs over a 1-D NDRange and takes min(8, M) rows per work item.
`python bench/op_kernels.py --rounds 5 --cases gemm` (PoCL 3.0, 2-core Xeon shared with
other jobs), median ms, the kernel before (2-D NDRange, 8 rows always) against the
library's, with both cores free:

    PP-OCR rec 40 x 6625 x 120:                       7.04 -> 3.69
    PP-OCR rec 40 x 360 x 120:                        0.37 -> 0.17
    ResNet-50's classifier 1 x 1000 x 2048, transB:   3.70 -> 0.26 (8 rows computed for 1)

PoCL's CPU device makes a 2-D NDRange that fits in one work-group (up to 4096 items) a
single work-group, run by one core; the kernel before, given work-groups of (4, 1), took
3.47, 0.19 and 1.77. With one core busy elsewhere the first case showed no difference
(7.05 against 7.03). Other register blocks lost: VW 8 x 8 rows 7.95, VW 16 x 4 rows 4.81 on
the first case (an ad-hoc sweep of VW 4/8/16 by 2/4/8 rows agreed); at about 17 GFLOP/s
it was far below the cores' peak. The reason is vector.h's NOTE (PoCL's builtins are never
inlined): with operators and vector.h's loads in place of mad() and vloadn, the same command
gave 1.79, 0.074 and 0.189 ms (the kernel before: 7.01, 0.349 and 3.89 in that run).
Work items then took row blocks fastest instead of column blocks, so that neighbouring
items (one work-group loop of PoCL) share their panel of B while it is in cache rather than
each streaming all of B: the first case 2.75 -> 2.11 ms with the machine shared, 6.89 ->
2.70 under heavier load (same command); the others did not change. Two float vectors of
columns per work item (16 accumulators) gave no gain (2.31 against 2.29 ms).

Then the panel blocking's sums were still a private array indexed in a loop over the rows,
which LLVM kept in memory (PoCL's .so: a load and a store around each FMA, and each 16-float
operation split in two of 8); as named registers, with whole-vector stores and, on a CPU,
B's row 16 ahead prefetched (-DPREFETCH: each k reads a short run of another page of B),
timed on one work item a group, interleaved, 15 rounds, load about 5 (ms; the kernel before,
then named sums and vector stores, then with the prefetch; 32 rows ahead in the last
column):

    PP-OCR rec 40 x 6625 x 120:   3.10   2.19   1.30   (1.34)
    PP-OCR rec 40 x 360 x 120:    0.090  0.042  0.042  (0.041)
    PP-OCR rec 40 x 120 x 240:    0.118  0.066  0.049  (0.047)
    PP-OCR rec 40 x 240 x 120:    0.075  0.054  0.045  (0.037)

4 rows by a vector with the prefetch: 1.32, 0.040, 0.048, 0.044. The prefetch alone, on
the kernel with the array: 2.57 against 2.32 ms on the first (`bench/op_kernels.py --cases
gemm`): what bounded it then was the array.
"""

from __future__ import annotations

import math

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.activations import apply, fused
from macecl.ops.conv_tiled import gemm_fits, multiply_tiled
from macecl.ops.elementwise import broadcast_strides
from macecl.ops.registry import evaluation, lowering

GEMM_ROWS = 8  # rows of Y per work item: ROWS in gemm.cl (fewer for a matrix of fewer rows)
GEMM_PREFETCH = 16  # rows of B ahead that the panel blocking prefetches on a CPU (-DPREFETCH)


def _gemm_attrs(node: Node) -> tuple[bool, bool, float, float]:
    attrs = node.attrs
    return (bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0)),
            float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0)))


def _activate(node: Node, y: np.ndarray) -> np.ndarray:
    code, a, b = node.attrs.get("activation", (0, 0.0, 0.0))
    return apply(int(code), y, float(a), float(b)) if code else y


@evaluation("Gemm")
def _evaluate_gemm(node: Node, arrays: list) -> list[np.ndarray]:
    a, b = arrays[0], arrays[1]
    c = arrays[2] if len(arrays) > 2 else None
    trans_a, trans_b, alpha, beta = _gemm_attrs(node)
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    y = alpha * (a @ b)
    if c is not None:
        y = y + beta * c
    return [np.asarray(_activate(node, y), dtype=np.result_type(arrays[0], arrays[1]))]


@evaluation("MatMul")
def _evaluate_matmul(node: Node, arrays: list) -> list[np.ndarray]:
    product = np.matmul(arrays[0], arrays[1])
    if len(arrays) > 2:  # the bias the converter folded in (converter/matmul_bias.py)
        product = (product + arrays[2]).astype(product.dtype)
    return [np.asarray(_activate(node, product))]


def c_strides(shape: tuple[int, ...], m: int, n: int) -> tuple[int, int] | None:
    """The (m, n) element strides of C read as (M, N), or None if it does not broadcast so."""
    if len(shape) > 2:
        if any(d != 1 for d in shape[:-2]):
            return None
        shape = shape[-2:]
    rows, cols = (1,) * (2 - len(shape)) + tuple(shape)
    if rows not in (1, m) or cols not in (1, n):
        return None
    return (cols if rows != 1 else 0), (1 if cols != 1 else 0)


def launch_gemm(builder, a, b, out, m: int, n: int, k: int, trans_a: bool = False,
                trans_b: bool = False, c=None, strides: tuple[int, int] = (0, 0),
                alpha: float = 1.0, beta: float = 1.0, node: Node | None = None) -> None:
    """One ``gemm`` launch: out (M, N) = act(alpha * op(A) @ op(B) + beta * C)."""
    options, act_a, act_b = fused(node) if node is not None else ([], np.float32(0), np.float32(0))
    width = builder.traits.vector_width
    rows = min(GEMM_ROWS, m)
    prefetch = [f"-DPREFETCH={GEMM_PREFETCH}"] if builder.traits.cpu and not trans_b else []
    # two column vectors a work item on a CPU where N has them (gemm.cl's NV)
    vectors = 2 if builder.traits.cpu and not trans_b and n >= 2 * width else 1
    options = ([f"-DVW={width}", *([f"-DROWS={rows}"] if rows != GEMM_ROWS else []), *prefetch,
                *([f"-DNV={vectors}"] if vectors != 1 else []),
                *(["-DTRANS_A"] if trans_a else []),
                *(["-DTRANS_B"] if trans_b else []), *(["-DHAS_C"] if c is not None else []),
                *options])
    args = [a, b, c, out, np.int32(m), np.int32(n), np.int32(k), np.int32(strides[0]),
            np.int32(strides[1]), np.float32(alpha), np.float32(beta), act_a, act_b]
    blocks = n if trans_b else -(-n // (vectors * width))
    # one work item a group on a CPU, as conv2d_gemm (ops/conv.py heavy_items): 40 x 6625 x 120
    # 2.09 against 2.42 ms with the driver's groups, the others within 5% either way
    # (`python bench/op_kernels.py --cases gemm --rounds 15`, load 5.9)
    local = (1,) if builder.traits.cpu else None
    builder.launch("gemm", "gemm", args, blocks * -(-m // rows), options=options,
                   local_size=local)


@lowering("Gemm")
def _lower_gemm(node: Node, inputs: list, builder) -> list:
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    trans_a, trans_b, alpha, beta = _gemm_attrs(node)
    if a.rank != 2 or b.rank != 2:
        raise builder.fail(f"A {list(a.shape)} and B {list(b.shape)} must be matrices")
    m, k = a.shape[::-1] if trans_a else a.shape
    k_b, n = b.shape[::-1] if trans_b else b.shape
    if k != k_b:
        raise builder.fail(f"A {list(a.shape)} (transA={int(trans_a)}) and B {list(b.shape)} "
                           f"(transB={int(trans_b)}) do not multiply")
    strides = (0, 0)
    if c is not None:
        found = c_strides(c.shape, m, n)
        if found is None:
            raise builder.fail(f"C {list(c.shape)} does not broadcast to ({m}, {n})")
        strides = found
        if beta == 0.0 or c.size == 0:
            c = None
    out = builder.new((m, n))
    if gemm_fits(builder.traits, trans_a, trans_b, alpha, beta, strides if c is not None else None):
        multiply_tiled(node, builder, a, b, c, out, m, n, k)
        return [out]
    launch_gemm(builder, a, b, out, m, n, k, trans_a, trans_b, c, strides, alpha, beta, node)
    return [out]


def _matmul_on_conv_gemm(builder, a, b, out, rows: int, n: int, k: int, bias, node: Node
                         ) -> bool:
    """out (rows, N) = act(A (rows, K) @ B (K, N) + bias[N]) as a 1x1 convolution runs, on a
    CPU where B is a constant matrix: A's rows are the output channels (packed on the device
    by one pack_filter launch), B is the input whose N columns are the pixels, packed here
    once as im2col lays out its matrix (PACKED_COLS: each work item's K x SPAN block
    contiguous), the bias one value a pixel (-DCOLUMN_BIAS, padded to whole blocks). False
    where this does not apply (then gemm.cl runs it). Swin-T's MLP MatMuls with their bias
    and Gelu, kernel ms (pack + GEMM against gemm.cl; one MatMul alone, median of 40
    profiles): 3136 x 96 @ 96 x 384 0.13 + 1.17 against 1.77, 196 x 384 @ 384 x 1536 0.05 +
    0.93 against 1.28, 49 x 768 @ 768 x 3072 0.03 + 0.91 against 1.71 (ONNX Runtime 0.84);
    a classifier's 1 x 768 @ 768 x 1000 0.005 + 0.07 against 0.10."""
    from macecl.ops import conv

    if not builder.traits.cpu or b.host is None or b.rank != 2:
        return False
    if bias is not None and (bias.host is None or bias.size not in (1, n)):
        return False
    vectors, block_options = conv.gemm_block(builder.traits, n, packed=True)
    span = builder.traits.vector_width * vectors
    blocks = -(-n // span)
    columns = np.zeros((k, blocks * span), np.float32)
    columns[:, :n] = np.asarray(b.host, np.float32)
    cols = builder.constant(np.ascontiguousarray(
        columns.reshape(k, blocks, span).transpose(1, 0, 2)))
    if bias is not None:
        padded = np.zeros(blocks * span, np.float32)
        padded[:n] = np.asarray(bias.host, np.float32).reshape(-1)  # one value, or n
        bias = builder.constant(padded)
    packed = conv.packed_filter(builder, a, 1, rows, k)
    options, act_a, act_b = fused(node)
    options = [f"-DVW={builder.traits.vector_width}", *options, *block_options, "-DPACKED_COLS",
               *(["-DCOLUMN_BIAS"] if bias is not None else [])]
    sizes = (rows, k, n, 1, 1)
    conv.gemm_launch(builder, [packed, cols, bias, None, out, *(np.int32(v) for v in sizes),
                               act_a, act_b], rows, k, n, span, 1, options)
    return True


@lowering("MatMul")
def _lower_matmul(node: Node, inputs: list, builder) -> list:
    from macecl.engine.plan import meta

    a, b = inputs[:2]
    bias = inputs[2] if len(inputs) > 2 else None
    if a.rank == 0 or b.rank == 0:
        raise builder.fail("MatMul of a scalar")
    a_shape = (1, *a.shape) if a.rank == 1 else a.shape
    b_shape = (*b.shape, 1) if b.rank == 1 else b.shape
    (m, k), (k_b, n) = a_shape[-2:], b_shape[-2:]
    if k != k_b:
        raise builder.fail(f"A {list(a.shape)} and B {list(b.shape)} do not multiply")
    try:
        batch = tuple(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    except ValueError:
        raise builder.fail(f"the batch dims of A {list(a.shape)} and B {list(b.shape)} do not "
                           "broadcast") from None
    shape = (*batch, *((m,) if a.rank > 1 else ()), *((n,) if b.rank > 1 else ()))
    out = builder.new(shape)
    if out.size == 0:
        return [out]
    a_batch = (1,) * (len(batch) - len(a_shape) + 2) + tuple(a_shape[:-2])
    if math.prod(b_shape[:-2]) == 1 and a_batch == batch:
        # B is one matrix: A's batch is just more rows (the fused activation comes along)
        rows = math.prod(batch) * m
        strides = (0, 0)
        if bias is not None:
            strides = c_strides(bias.shape[-1:] if bias.rank else (), rows, n)
            if strides is None or bias.size not in (1, n):
                raise builder.fail(f"bias {list(bias.shape)} is not one value per column")
        if not _matmul_on_conv_gemm(builder, a, b, out, rows, n, k, bias, node):
            launch_gemm(builder, a, b, out, rows, n, k, c=bias, strides=strides, node=node)
        return [out]
    if bias is not None:
        raise builder.fail("a MatMul with a bias needs B of one matrix")
    table = meta(batch,
                 [s * m * k for s in broadcast_strides(a_shape[:-2], batch)],
                 [s * k * n for s in broadcast_strides(b_shape[:-2], batch)])
    code = int(node.attrs.get("activation", (0, 0.0, 0.0))[0])
    target = builder.new(shape) if code else out
    width = builder.traits.vector_width
    batches = math.prod(batch)
    builder.launch("gemm", "matmul", [a, b, target, table, np.int32(len(batch)), np.int32(m),
                                      np.int32(n), np.int32(k), np.int32(batches)],
                   (-(-n // width), -(-m // GEMM_ROWS), batches), options=[f"-DVW={width}"],
                   local_size=(1, 1, 1) if builder.traits.cpu else None)
    if target is not out:  # the matmul kernel fuses nothing: a fused activation runs after it
        _, act_a, act_b = fused(node)
        builder.launch("unary", "unary", [target, out, np.int32(out.size), act_a, act_b],
                       out.size, options=[f"-DOP={code}"])
    return [out]
