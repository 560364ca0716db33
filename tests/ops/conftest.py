"""One-node graphs run through the real engine on PoCL, against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.engine import Engine
from macecl.graph import Graph, Node, TensorSpec


@pytest.fixture
def run_node(shared_context):
    """run_node(op, feeds, attrs=None, constants=None, outputs=1, inputs=None, opset=18).

    ``feeds`` go to the device as graph inputs; ``constants`` are graph constants (weights,
    shapes, axes). ``inputs`` orders the node's inputs by name (default: feeds, then
    constants, in the order given; "" for an omitted optional input). Returns the outputs.
    """

    def run(op, feeds, attrs=None, constants=None, outputs=1, inputs=None, opset=18):
        constants = {k: np.asarray(v) for k, v in (constants or {}).items()}
        names = list(inputs) if inputs is not None else [*feeds, *constants]
        out_names = [f"out{i}" for i in range(outputs)]
        graph = Graph(
            nodes=[Node(op, f"{op.lower()}_node", names, out_names, dict(attrs or {}))],
            inputs=[TensorSpec(n, str(a.dtype), list(a.shape)) for n, a in feeds.items()],
            outputs=[TensorSpec(n, "float32", []) for n in out_names],
            constants=constants,
            opset=opset,
        )
        engine = Engine(graph, context=shared_context)
        try:
            result = engine.run(dict(feeds))
        finally:
            engine.close()
        return [result[n] for n in out_names]

    return run


def assert_close(got: np.ndarray, want: np.ndarray, tolerance: float = 1e-4) -> None:
    """The suite's rule: max abs error <= tolerance x max |reference| (absolute near zero)."""
    want = np.asarray(want, dtype=np.float32)
    assert got.shape == want.shape, f"shape {got.shape} != reference {want.shape}"
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * scale, equal_nan=True)
