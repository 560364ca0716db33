"""gemm.cl: ONNX Gemm (transposes, C broadcasts, fused activation) and batched MatMul."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import assert_close, at_most_widest, contiguous_strides


def _gemm(cl_env, options, a, b, c, m, n, k, c_strides, alpha, beta, act=(0.0, 0.0), vw=4,
          local_size=None, rows=8, vectors=1):
    args = [m, n, k, *c_strides, alpha, beta, *act]
    blocks = n if "TRANS_B" in options else -(-n // (vectors * vw))
    return cl_env.run("gemm", f"{options} -DVW={vw} -DROWS={rows} -DNV={vectors}", "gemm",
                      (m, n), [a, b, c], args, work_items=blocks * -(-m // rows),
                      local_size=local_size)


@pytest.mark.parametrize("rows", [8, 1, 3])
@pytest.mark.parametrize("local_size", [None, (16,)])
@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(5, 7, 13), (1, 9, 4), (6, 1, 3), (3, 4, 1), (17, 19, 33),
                                   (9, 40, 70), (1, 37, 130)])
def test_gemm_transposes(cl_env, rng, trans_a, trans_b, m, n, k, vw, local_size, rows):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    options = "-DHAS_C" + " -DTRANS_A" * trans_a + " -DTRANS_B" * trans_b
    got = _gemm(cl_env, options, a, b, c, m, n, k, (n, 1), 0.75, -1.5, vw=vw,
                local_size=local_size, rows=rows)
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    want = 0.75 * (op_a.astype(np.float64) @ op_b) - 1.5 * c
    assert_close(got, want, atol=1e-4)


@pytest.mark.parametrize(
    "c_shape,c_strides",
    [((7,), (0, 1)), ((1, 7), (0, 1)), ((5, 1), (1, 0)), ((1,), (0, 0)), ((), (0, 0))],
)
def test_gemm_c_broadcast(cl_env, rng, c_shape, c_strides):
    m, n, k = 5, 7, 6
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = rng.standard_normal(c_shape).astype(np.float32)
    got = _gemm(cl_env, "-DHAS_C", a, b, c, m, n, k, c_strides, 1.0, 2.0)
    assert_close(got, a.astype(np.float64) @ b + 2.0 * c, atol=1e-4)


# C of the panel blocking's whole-vector store: a full (M, N), a row, a column, one value
C_MODES = {"full": (lambda m, n: (m, n), lambda m, n: (n, 1)),
           "row": (lambda m, n: (n,), lambda m, n: (0, 1)),
           "column": (lambda m, n: (m, 1), lambda m, n: (1, 0)),
           "scalar": (lambda m, n: (), lambda m, n: (0, 0))}


@pytest.mark.parametrize("vectors", [1, 2])
@pytest.mark.parametrize("prefetch", [False, True])
@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
@pytest.mark.parametrize("c_mode", [*C_MODES, None])
@pytest.mark.parametrize("m,n,k,rows", [(9, 48, 70, 8), (17, 35, 20, 8), (5, 64, 3, 3)])
def test_gemm_panel_stores(cl_env, rng, m, n, k, rows, c_mode, vw, prefetch, vectors):
    """The panel blocking's stores, whole vectors (C broadcast every way, a fused Relu) and
    the tail block's lanes, with and without the CPU's prefetch of B's rows; with two
    column vectors a work item (-DNV=2, N >= 2 VW: the last block steps back over its
    neighbour's columns)."""
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    options = "-DACTIVATION=1" + " -DPREFETCH=16" * prefetch
    want = 0.5 * (a.astype(np.float64) @ b)
    c, strides = None, (0, 0)
    if c_mode:
        shape, stride_of = C_MODES[c_mode]
        # small, so that the fused Relu always has negatives to clip: a scalar C of -2 or so
        # made every output positive, depending on the shared generator's order
        c = (0.1 * rng.standard_normal(shape(m, n))).astype(np.float32)
        strides, options = stride_of(m, n), f"{options} -DHAS_C"
        want = want - 2.0 * c
    got = _gemm(cl_env, options, a, b, c, m, n, k, strides, 0.5, -2.0, vw=vw, rows=rows,
                local_size=(1,), vectors=vectors)
    assert (want < 0).any()
    assert_close(got, np.maximum(want, 0), atol=1e-4)


@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
def test_gemm_two_vectors_with_a_transposed(cl_env, rng, vw):
    """-DNV=2 with TRANS_A (A read down its columns) and rows past M."""
    m, n, k = 11, 2 * vw + 5, 9
    a = rng.standard_normal((k, m)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    got = _gemm(cl_env, "-DTRANS_A", a, b, None, m, n, k, (0, 0), 1.0, 0.0, vw=vw, vectors=2)
    assert_close(got, a.T.astype(np.float64) @ b, atol=1e-4)


def test_gemm_without_c(cl_env, rng):
    a = rng.standard_normal((4, 9)).astype(np.float32)
    b = rng.standard_normal((9, 3)).astype(np.float32)
    got = _gemm(cl_env, "", a, b, None, 4, 3, 9, (0, 0), -2.0, 5.0)  # beta has no C to scale
    assert_close(got, -2.0 * (a.astype(np.float64) @ b), atol=1e-4)


def test_gemm_fused_relu(cl_env, rng):
    """A fully connected layer: Y = relu(X @ W^T + bias)."""
    x = rng.standard_normal((3, 10)).astype(np.float32)
    w = rng.standard_normal((8, 10)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    got = _gemm(cl_env, "-DTRANS_B -DHAS_C -DACTIVATION=1", x, w, bias, 3, 8, 10, (0, 1), 1.0, 1.0)
    want = x.astype(np.float64) @ w.T + bias
    assert (want < 0).any()
    assert_close(got, np.maximum(want, 0), atol=1e-4)


def _matmul(cl_env, a, b, vw=4):
    """The caller's side of the contract: NumPy's 1-D promotion, then batch broadcasting."""
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    m, k = a2.shape[-2:]
    n = b2.shape[-1]
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    rank = len(batch)

    def batch_strides(shape):
        # strides of the batch dims in elements, from the strides of the whole tensor
        full = contiguous_strides(shape)[: len(shape) - 2]
        padded = [0] * (rank - len(full)) + full
        dims = [1] * (rank - len(full)) + list(shape[:-2])
        return [0 if d == 1 else s for d, s in zip(dims, padded)]

    meta = np.array(list(batch) + batch_strides(a2.shape) + batch_strides(b2.shape), np.int32)
    out_shape = (*batch, m, n)
    batches = int(np.prod(batch))
    got = cl_env.run("gemm", f"-DVW={vw}", "matmul", out_shape, [a2, b2],
                     [meta, rank, m, n, k, batches],
                     work_items=(-(-n // vw), -(-m // 8), batches))
    if a.ndim == 1:
        got = got.reshape(got.shape[:-2] + got.shape[-1:])
    if b.ndim == 1:
        got = got.reshape(got.shape[:-1])
    return got


@pytest.mark.parametrize(
    "a_shape,b_shape",
    [
        ((5, 4), (4, 3)),
        ((3, 5, 4), (4, 6)),  # B shared by the batch
        ((5, 4), (2, 4, 6)),  # A shared by the batch
        ((2, 1, 5, 4), (3, 4, 6)),  # both broadcast
        ((1, 3, 1, 2, 7), (2, 1, 4, 7, 3)),  # 3 batch dims
        ((4,), (3, 4, 6)),  # 1-D A
        ((2, 5, 4), (4,)),  # 1-D B
        ((1, 1), (1, 1)),
        ((2, 3, 11, 37), (2, 3, 37, 21)),  # tails of the 8-row and 16-column blocks
    ],
)
@pytest.mark.parametrize("vw", at_most_widest([4, 16]))
def test_matmul(cl_env, rng, a_shape, b_shape, vw):
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    assert_close(_matmul(cl_env, a, b, vw), np.matmul(a.astype(np.float64), b), atol=1e-4)
