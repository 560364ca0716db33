"""Einsum against ONNX Runtime: explicit and implicit equations, "...", one to three operands,
and the attention products transformer exports spell with it."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from macecl.errors import GraphError
from tests.test_residual_fusion import same_as_onnxruntime, save

RNG = np.random.default_rng(5)

CASES = {
    "matmul": ("ij,jk->ik", [(3, 4), (4, 5)]),
    "batched": ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    "attention_scores": ("bhid,bhjd->bhij", [(1, 2, 5, 8), (1, 2, 6, 8)]),
    "attention_values": ("bhij,bhjd->bhid", [(1, 2, 5, 6), (1, 2, 6, 8)]),
    "transpose": ("ij->ji", [(3, 7)]),
    "row_sums": ("ij->i", [(4, 6)]),
    "total": ("ijk->", [(2, 3, 4)]),
    "dot": ("i,i->", [(9,), (9,)]),
    "outer": ("i,j->ij", [(3,), (5,)]),
    "implicit": ("bij,jk", [(2, 3, 4), (4, 5)]),
    "ellipsis": ("...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 6)]),
    "ellipsis_broadcast": ("...ij,...jk->...ik", [(2, 1, 4, 5), (1, 3, 5, 6)]),
    "three_operands": ("abc,cd,de->abe", [(2, 3, 4), (4, 5), (5, 6)]),
    "pointwise_conv": ("nchw,oc->nohw", [(1, 3, 4, 5), (6, 3)]),
    "summed_alone": ("ij,jk->k", [(3, 4), (4, 5)]),  # i summed before the product
    "batch_first_out": ("bqd,bkd->bkq", [(2, 4, 8), (2, 3, 8)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_einsum_as_onnxruntime(tmp_path, case):
    equation, shapes = CASES[case]
    names = [f"x{i}" for i in range(len(shapes))]
    node = helper.make_node("Einsum", names, ["y"], equation=equation)
    path = save(tmp_path, [node], {}, list(zip(names, [list(s) for s in shapes])), opset=12)
    same_as_onnxruntime(path, {n: RNG.standard_normal(s).astype(np.float32)
                               for n, s in zip(names, shapes)})


def test_einsum_folds_constants_as_the_device_computes(run_node):
    """The NumPy evaluation (constant folding) gives what the device does, "..." included."""
    from macecl.graph.ir import Node
    from macecl.ops import REGISTRY

    a = RNG.standard_normal((2, 1, 4, 5)).astype(np.float32)
    b = RNG.standard_normal((3, 5, 6)).astype(np.float32)
    attrs = {"equation": "...ij,...jk->...ik"}
    (got,) = run_node("Einsum", {"a": a, "b": b}, attrs)
    node = Node("Einsum", "e", ["a", "b"], ["y"], attrs)
    (folded,) = REGISTRY["Einsum"].evaluate(node, [a, b])
    np.testing.assert_allclose(got, folded, rtol=1e-5, atol=1e-5)
    assert folded.shape == (2, 3, 4, 6)


@pytest.mark.parametrize("equation, shapes, message", [
    ("ii->i", [(3, 3)], "index 'i' repeats within an operand"),
    ("ij,jk->ik", [(3, 4), (5, 6)], "index 'j' is 4 in one operand and 5 in another"),
    ("ij->ik", [(3, 4)], "output index 'k' is in no operand"),
    ("ijk->i", [(3, 4)], "does not fit an operand of rank 2"),
])
def test_einsum_refuses_what_it_cannot_compute(run_node, equation, shapes, message):
    feeds = {f"x{i}": np.zeros(s, np.float32) for i, s in enumerate(shapes)}
    with pytest.raises(GraphError, match=message):
        run_node("Einsum", feeds, {"equation": equation})
