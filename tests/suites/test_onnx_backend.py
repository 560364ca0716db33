"""The ONNX backend test data that ships inside the ``onnx`` package, through macecl.

- ``light``: nine classic image networks (AlexNet to DenseNet) whose weights are
  ConstantOfShape(0.02) nodes. Each runs on the input ONNX's own backend runner feeds them
  (``generate_dummy_data(random=False)``: ``arange(n).reshape(shape) / n`` in float32) and is
  compared with the stored ``light_*_output_0.pb``; then again with every weight replaced by
  seeded random values, on a random input, against ONNX Runtime (CPU).
- ``pytorch-converted`` and ``pytorch-operator``: every case's ``model.onnx`` on each of its
  ``test_data_set_*``, against the stored outputs. A case macecl does not cover is listed in
  OUT_OF_SCOPE with the reason, and its test checks that conversion refuses it cleanly
  (UnsupportedModelError naming that reason) instead of running it.

Tolerance everywhere: max abs error <= 1e-3 x max |reference|, per output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from macecl import UnsupportedModelError
from macecl.converter import convert

from .conftest import assert_close, assert_outputs_close, run_macecl, run_ort, with_logits

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
LIGHT = sorted(p.name[len("light_"):-len(".onnx")] for p in (DATA / "light").glob("light_*.onnx"))
PYTORCH_GROUPS = ("pytorch-converted", "pytorch-operator")
PYTORCH_CASES = sorted(f"{group}/{d.name}" for group in PYTORCH_GROUPS
                       for d in (DATA / group).iterdir() if (d / "model.onnx").is_file())

SEED = 20240611
GAIN = 1.0  # variance gain of conv / gemm weights (normal / sqrt(fan_in)): logits stay O(1..100)


# -- light models ---------------------------------------------------------------------------

def _light_path(name: str) -> Path:
    return DATA / "light" / f"light_{name}.onnx"


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _static_shape(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    # As ONNX's runner does: an unknown dim is 1.
    return tuple(d.dim_value if d.HasField("dim_value") else 1
                 for d in value.type.tensor_type.shape.dim)


def dummy_input(value: onnx.ValueInfoProto) -> np.ndarray:
    """The input ONNX's backend runner fed the light models when their outputs were stored
    (onnx/backend/test/runner: ``generate_dummy_data(x, seed=0, random=False)``)."""
    shape = _static_shape(value)
    n = np.prod(shape)
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_stored_output(name, shared_context):
    path = _light_path(name)
    model = onnx.load(str(path))
    feeds = {v.name: dummy_input(v) for v in _graph_inputs(model)}
    stored = [path.with_name(f"light_{name}_output_{i}.pb") for i in range(len(model.graph.output))]
    expected = [numpy_helper.to_array(onnx.load_tensor(str(p))) for p in stored]
    got = run_macecl(shared_context, path, feeds)
    assert len(got) == len(expected)
    for (out_name, array), want in zip(got.items(), expected):
        assert_close(array, want, out_name)


def _readers(model: onnx.ModelProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, index))
    return readers


def _role(name: str, readers) -> tuple[onnx.NodeProto | None, int]:
    """The node (and input slot) that gives a weight its meaning, looking through the
    Unsqueeze / Reshape exporters put between a parameter and its Mul / Add."""
    for _ in range(4):
        users = readers.get(name, [])
        if not users:
            return None, -1
        node, index = users[0]
        if node.op_type in ("Unsqueeze", "Reshape", "Identity") and index == 0:
            name = node.output[0]
            continue
        return node, index
    return None, -1


def random_weight(shape: tuple[int, ...], node: onnx.NodeProto | None, index: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Seeded values of a sensible scale for the weight at ``node``'s input ``index``
    (drawn in float32: VGG-19 has 140 M weights)."""
    op = node.op_type if node is not None else ""

    def normal(std: float) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    def near_one() -> np.ndarray:  # uniform in [0.5, 1.5)
        return rng.random(shape, dtype=np.float32) + np.float32(0.5)

    if op in ("Conv", "ConvTranspose") and index == 1:
        fan_in = int(np.prod(shape[1:])) if op == "Conv" else int(shape[0] * np.prod(shape[2:]))
        return normal(np.sqrt(GAIN / max(fan_in, 1)))
    if op in ("Gemm", "MatMul") and index == 1 and len(shape) == 2:
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        return normal(np.sqrt(GAIN / (shape[1] if trans_b else shape[0])))
    if op == "BatchNormalization" and index in (1, 4):  # scale, variance: positive, near 1
        return near_one()
    if op == "Mul":
        return near_one()
    return normal(0.1)  # biases, BN shift and mean, addends


def randomized(model: onnx.ModelProto, rng: np.random.Generator) -> onnx.ModelProto:
    """A copy of ``model`` whose float weights (initializers, and ConstantOfShape nodes of a
    constant shape, which is how the light models carry theirs) are random initializers."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    readers = _readers(model)
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    weights: dict[str, tuple[int, ...]] = {}
    kept_nodes = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in initializers:
            value = next((numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"),
                         np.zeros(1, np.float32))
            if value.dtype == np.float32:
                weights[node.output[0]] = tuple(int(d) for d in initializers[node.input[0]])
                continue
        kept_nodes.append(node)
    for name, array in initializers.items():
        if array.dtype == np.float32:
            weights[name] = array.shape
    new_initializers = [i for i in graph.initializer if i.name not in weights]
    for name in sorted(weights):
        node, index = _role(name, readers)
        new_initializers.append(numpy_helper.from_array(
            random_weight(weights[name], node, index, rng), name))
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(new_initializers)
    # IR 4 on: initializers need not be listed as graph inputs (and are not overridable).
    model.ir_version = max(model.ir_version, 4)
    inputs = [i for i in graph.input if i.name not in {t.name for t in new_initializers}]
    del graph.input[:]
    graph.input.extend(inputs)
    return model


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_random_weights(name, shared_context, tmp_path):
    rng = np.random.default_rng([SEED, LIGHT.index(name)])
    model = randomized(onnx.load(str(_light_path(name))), rng)
    with_logits(model)
    path = tmp_path / f"light_{name}_random.onnx"
    onnx.save(model, str(path))
    feeds = {v.name: rng.standard_normal(_static_shape(v)).astype(np.float32)
             for v in _graph_inputs(model)}
    want = run_ort(path, feeds)
    got = run_macecl(shared_context, path, feeds)
    assert_outputs_close(got, want)


# -- pytorch-converted and pytorch-operator -------------------------------------------------

# case -> (why it is out of scope, what UnsupportedModelError must name). The converter must
# refuse each of these at conversion with an error whose ``unsupported`` keys contain it.
OUT_OF_SCOPE: dict[str, tuple[str, str]] = {
    # 3-D convolution and pooling (5-D tensors): macecl runs 1-D and 2-D spatial ops.
    **{f"pytorch-converted/test_{case}": ("3-D convolution", "Conv") for case in (
        "Conv3d", "Conv3d_dilated", "Conv3d_dilated_strided", "Conv3d_groups",
        "Conv3d_no_bias", "Conv3d_stride", "Conv3d_stride_padding")},
    **{f"pytorch-converted/test_{case}": ("3-D average pooling", "AveragePool") for case in (
        "AvgPool3d", "AvgPool3d_stride", "AvgPool3d_stride1_pad0_gpu_input")},
    **{f"pytorch-converted/test_{case}": ("3-D max pooling", "MaxPool") for case in (
        "MaxPool3d", "MaxPool3d_stride", "MaxPool3d_stride_padding")},
    # Integer inputs: the Embedding cases Gather rows with int64 indices fed at run time.
    "pytorch-converted/test_Embedding": ("int64 input (Gather of embedding rows)",
                                         "input of type int64"),
    "pytorch-converted/test_Embedding_sparse": ("int64 input (Gather of embedding rows)",
                                                "input of type int64"),
    "pytorch-operator/test_operator_non_float_params": ("int64 input and arithmetic",
                                                        "input of type int64"),
    # float64 inputs: macecl computes in float32.
    **{f"pytorch-operator/test_operator_{case}": ("float64 inputs", "input of type float64")
       for case in ("add_broadcast", "add_size1_broadcast", "add_size1_right_broadcast",
                    "add_size1_singleton_broadcast", "addconstant")},
}


def _case_dir(case: str) -> Path:
    return DATA / case


def _load_data_sets(case: str, model: onnx.ModelProto):
    names = [v.name for v in _graph_inputs(model)]
    sets = []
    for directory in sorted(_case_dir(case).glob("test_data_set_*")):
        inputs = [numpy_helper.to_array(onnx.load_tensor(str(p)))
                  for p in sorted(directory.glob("input_*.pb"), key=lambda p: int(p.stem[6:]))]
        outputs = [numpy_helper.to_array(onnx.load_tensor(str(p)))
                   for p in sorted(directory.glob("output_*.pb"), key=lambda p: int(p.stem[7:]))]
        assert len(inputs) == len(names), f"{directory}: {len(inputs)} inputs for {names}"
        sets.append((dict(zip(names, inputs)), outputs))
    assert sets, f"{case} has no test data set"
    return sets


def test_out_of_scope_cases_exist():
    """Every OUT_OF_SCOPE entry names a real case (a typo would silently test nothing)."""
    assert not set(OUT_OF_SCOPE) - set(PYTORCH_CASES)


@pytest.mark.parametrize("case", PYTORCH_CASES)
def test_pytorch_case(case, shared_context):
    path = _case_dir(case) / "model.onnx"
    model = onnx.load(str(path))
    if case in OUT_OF_SCOPE:
        reason, names = OUT_OF_SCOPE[case]
        with pytest.raises(UnsupportedModelError) as refused:
            convert(path)
        keys = list(refused.value.unsupported)
        assert any(names in key for key in keys), \
            f"refused for {keys}, expected a reason naming {names!r} ({reason})"
        return
    for feeds, expected in _load_data_sets(case, model):
        got = run_macecl(shared_context, path, feeds)
        assert len(got) == len(expected), f"{len(got)} outputs, {len(expected)} expected"
        for (name, array), want in zip(got.items(), expected):
            assert_close(array, want, name)
