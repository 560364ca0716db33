"""Gemm and MatMul against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.graph.ir import Node
from macecl.ops import REGISTRY
from tests.ops.conftest import assert_close

RNG = np.random.default_rng(3)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def gemm_reference(a, b, c, trans_a, trans_b, alpha, beta):
    a, b = a.astype(np.float64), b.astype(np.float64)
    y = alpha * ((a.T if trans_a else a) @ (b.T if trans_b else b))
    return y if c is None else y + beta * c


M, N, K = 5, 6, 7


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_transposes(run_node, trans_a, trans_b):
    a = rand(K, M) if trans_a else rand(M, K)
    b = rand(N, K) if trans_b else rand(K, N)
    c = rand(M, N)
    attrs = {"transA": trans_a, "transB": trans_b}
    (got,) = run_node("Gemm", {"a": a}, attrs, {"b": b, "c": c})
    assert_close(got, gemm_reference(a, b, c, trans_a, trans_b, 1.0, 1.0))


@pytest.mark.parametrize("c_shape", [(), (1,), (N,), (1, N), (M, 1), (M, N), (1, 1)])
def test_gemm_c_broadcasts(run_node, c_shape):
    a, b, c = rand(M, K), rand(K, N), rand(*c_shape)
    attrs = {"alpha": 0.5, "beta": -2.0}
    (got,) = run_node("Gemm", {"a": a}, attrs, {"b": b, "c": c})
    assert_close(got, gemm_reference(a, b, c, 0, 0, 0.5, -2.0))


def test_gemm_without_c_and_beta_zero(run_node):
    a, b, c = rand(M, K), rand(N, K), rand(M, N)
    (got,) = run_node("Gemm", {"a": a}, {"transB": 1, "alpha": 3.0}, {"b": b})
    assert_close(got, gemm_reference(a, b, None, 0, 1, 3.0, 1.0))
    (got,) = run_node("Gemm", {"a": a}, {"transB": 1, "beta": 0.0}, {"b": b, "c": c})
    assert_close(got, gemm_reference(a, b, None, 0, 1, 1.0, 0.0))


def test_gemm_both_inputs_on_the_device_with_fused_activation(run_node):
    a, b, c = rand(M, K), rand(K, N), rand(N)
    attrs = {"activation": [6, 0.3, 0.4]}  # HardSigmoid(alpha 0.3, beta 0.4)
    (got,) = run_node("Gemm", {"a": a, "b": b}, attrs, {"c": c})
    assert_close(got, np.clip(0.3 * gemm_reference(a, b, c, 0, 0, 1, 1) + 0.4, 0, 1))


def test_gemm_rejects_a_c_that_does_not_broadcast(run_node):
    from macecl.errors import GraphError

    with pytest.raises(GraphError, match="does not broadcast"):
        run_node("Gemm", {"a": rand(M, K)}, {}, {"b": rand(K, N), "c": rand(M, 2)})


@pytest.mark.parametrize("a_shape, b_shape", [
    ((M, K), (K, N)),
    ((K,), (K, N)),  # 1-D A: a row, dropped from the result
    ((M, K), (K,)),  # 1-D B: a column, dropped too
    ((K,), (K,)),  # a dot product: a scalar
    ((2, 3, M, K), (K, N)),  # batched A, one B: folds into rows
    ((2, 3, M, K), (1, K, N)),
    ((3, M, K), (3, K, N)),
    ((2, 1, M, K), (3, K, N)),  # batch broadcast both ways
    ((M, K), (2, 3, K, N)),  # batched B, one A
    ((4, 1, K), (K, N)),
    ((K,), (2, K, N)),
    ((2, M, K), (K,)),
])
@pytest.mark.parametrize("b_constant", [False, True], ids=["b_device", "b_constant"])
def test_matmul(run_node, a_shape, b_shape, b_constant):
    a, b = rand(*a_shape), rand(*b_shape)
    if b_constant:
        (got,) = run_node("MatMul", {"a": a}, constants={"b": b})
    else:
        (got,) = run_node("MatMul", {"a": a, "b": b})
    assert_close(got, np.matmul(a.astype(np.float64), b.astype(np.float64)))


def test_matmul_fused_activation_on_both_paths(run_node):
    for a_shape, b_shape in (((3, M, K), (K, N)), ((3, M, K), (3, K, N))):
        a, b = rand(*a_shape), rand(*b_shape)
        (got,) = run_node("MatMul", {"a": a, "b": b}, {"activation": [1, 0.0, 0.0]})
        assert_close(got, np.maximum(np.matmul(a.astype(np.float64), b), 0))


def test_numpy_evaluations():
    a, b, c = rand(K, M), rand(K, N), rand(N)
    node = Node("Gemm", "g", ["a", "b", "c"], ["y"], {"transA": 1, "alpha": 2.0, "beta": 0.5})
    (y,) = REGISTRY["Gemm"].evaluate(node, [a, b, c])
    assert_close(y, 2.0 * a.T.astype(np.float64) @ b + 0.5 * c)
    node = Node("MatMul", "m", ["a", "b"], ["y"])
    a, b = rand(2, 1, M, K), rand(3, K, N)
    (y,) = REGISTRY["MatMul"].evaluate(node, [a, b])
    assert y.shape == (2, 3, M, N)
    assert_close(y, np.einsum("xymk,zkn->xzmn", a.astype(np.float64), b.astype(np.float64)))


@pytest.mark.parametrize("a_shape, bias_shape", [((3, M, K), (N,)), ((M, K), (1,)),
                                                 ((2, 1, M, K), (1, N))])
def test_matmul_with_the_converters_bias(run_node, a_shape, bias_shape):
    """MatMul(A, B, C): A @ B + C, C per column (converter/matmul_bias.py), Swish fused."""
    a, b, c = rand(*a_shape), rand(K, N), rand(*bias_shape)
    (got,) = run_node("MatMul", {"a": a}, {"activation": [16, 0.8, 0.0]},
                      constants={"b": b, "c": c})
    y = np.matmul(a.astype(np.float64), b) + c
    assert_close(got, y / (1 + np.exp(-0.8 * y)))
    node = Node("MatMul", "m", ["a", "b", "c"], ["y"])
    assert_close(REGISTRY["MatMul"].evaluate(node, [a, b, c])[0], np.matmul(a, b) + c)


@pytest.mark.parametrize("rows, k, n", [(50, 37, 100), (1, 64, 6), (9, 5, 48)])
def test_matmul_by_a_constant_runs_as_a_convolution_on_a_cpu(run_node, rows, k, n):
    """On a CPU, A @ B + bias with B constant is conv2d_gemm's (A's rows packed on the device,
    B packed once with zeros past N, a bias per column padded likewise, Gelu fused): whole
    and partial channel and pixel blocks, against NumPy, and the plan says which kernels."""
    from macecl.engine.plan import make_plan
    from macecl.graph import Graph, TensorSpec
    from macecl.ops.traits import DeviceTraits
    from tests.kernels.helpers import erf

    a, b, c = rand(2, rows, k), rand(k, n), rand(n)
    graph = Graph(nodes=[Node("MatMul", "m", ["a", "b", "c"], ["y"],
                              {"activation": [19, 0.0, 0.0]})],
                  inputs=[TensorSpec("a", "float32", list(a.shape))],
                  outputs=[TensorSpec("y", "float32", [])], constants={"b": b, "c": c},
                  opset=18)
    cpu = DeviceTraits(vector_width=16, cpu=True)
    kernels = [s.kernel for s in make_plan(graph, [a.shape], cpu).steps]
    assert kernels == ["pack_filter", "conv2d_gemm"]
    (got,) = run_node("MatMul", {"a": a}, {"activation": [19, 0.0, 0.0]},
                      constants={"b": b, "c": c})
    y = np.matmul(a.astype(np.float64), b) + c
    assert_close(got, 0.5 * y * (1 + erf(y / np.sqrt(2))))
