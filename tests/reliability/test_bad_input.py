"""Bad input to the engine: each case gets an error naming what was wrong, and a failed start
or run writes nothing to the cache. NaN, Inf and zero-size dims are data, not errors."""

from __future__ import annotations

import random

import numpy as np
import onnx
import onnxruntime
import pytest
import distinct_models

import macecl
from macecl.errors import (
    GraphError,
    InputError,
    MaceclError,
    ModelFormatError,
    UnsupportedModelError,
)

DYNAMIC = ["N", "C", "H", "W"]


def cache_file(cache_dir):
    return cache_dir / "mace_cl_compiled_program.bin"


def nothing_written(cache_dir) -> bool:
    return not cache_file(cache_dir).exists() and not list(cache_dir.glob("models/*"))


def reference(path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


GOOD = np.ones(distinct_models.SHAPE, np.float32)
BAD_FEEDS = {
    "wrong name": ({"z": GOOD}, "unknown input 'z'; the model's inputs are x: float32"),
    "missing": ({}, "input 'x' is missing"),
    "dtype": ({"x": GOOD.astype(np.float64)}, "dtype float64; the model expects float32"),
    "byte order": ({"x": GOOD.astype(">f4")}, "dtype >f4; the model expects float32"),
    "integers": ({"x": GOOD.astype(np.int32)}, "dtype int32"),
    "rank": ({"x": GOOD[0]}, r"rank 3 \(shape \[4, 8, 8\]\); the model expects rank 4"),
    "scalar": ({"x": np.array(1, np.float32)}, "rank 0"),
    "shape": ({"x": np.ones((1, 5, 8, 8), np.float32)}, "axis 1 must be 4"),
    "not an array": ({"x": GOOD.tolist()}, "must be a NumPy array, not list"),
    "not a mapping": ([("x", GOOD)], "must be a mapping of input name to array"),
}


@pytest.mark.parametrize("case", BAD_FEEDS)
def test_bad_feeds_are_refused_by_name_and_save_nothing(cache_dir, tmp_path, case):
    feeds, message = BAD_FEEDS[case]
    with macecl.Engine(distinct_models.write("conv", tmp_path)) as engine:
        with pytest.raises(InputError, match=message):
            engine.run(feeds)
        assert not cache_file(cache_dir).exists()  # programs were built, none saved
        with pytest.raises(InputError, match="unknown output 'z'"):
            engine.run({"x": GOOD}, ["z"])
        engine.run({"x": GOOD})
        assert cache_file(cache_dir).exists()  # the first good run saves


@pytest.mark.parametrize("name", distinct_models.MODELS)
def test_nan_and_inf_pass_through_as_onnx_runtime_passes_them(tmp_path, name):
    path = distinct_models.write(name, tmp_path)
    x = np.random.default_rng(1).standard_normal(distinct_models.SHAPE).astype(np.float32)
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    x[0, 1, 4, 4], x[0, 2, 7, 7], x[0, 3, 5, 1] = np.inf, np.nan, -np.inf
    with macecl.Engine(path) as engine:
        got = engine.run({"x": x})["y"]
    if name == "maxpool":
        # NOTE: ONNX Runtime's MaxPool keeps or drops a NaN depending on where it lies in
        # the window; macecl's, like NumPy's max and its own ReduceMax, lets NaN win.
        want = x.reshape(1, 4, 4, 2, 4, 2).max(axis=(3, 5))
    else:
        want = reference(path, x)
    assert np.isnan(want).any()  # the NaN reached the output in the reference
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("name", distinct_models.MODELS)
def test_zero_size_dims_run_and_give_empty_outputs(tmp_path, name):
    path = distinct_models.write(name, tmp_path, dims=DYNAMIC)
    with macecl.Engine(path) as engine:
        empty_batch = np.ones((0, 4, 8, 8), np.float32)
        got = engine.run({"x": empty_batch})["y"]
        assert got.shape == reference(path, empty_batch).shape and got.size == 0
        if name in ("conv", "matmul"):
            return  # a zero channel or row count does not fit their weights: next test
        got = engine.run({"x": np.ones((1, 4, 0, 8), np.float32)})["y"]
        assert got.size == 0 or name == "reduce"  # a reduction over nothing still has outputs


@pytest.mark.parametrize("name, shape, message", [
    ("conv", (1, 0, 8, 8), "Conv 'conv': weights \\[4, 4, 3, 3\\] with group 1 do not fit 0"),
    ("matmul", (1, 4, 8, 0), "MatMul 'matmul': A \\[1, 4, 8, 0\\] and B \\[8, 5\\] do not multiply"),
])
def test_zero_size_dims_that_do_not_fit_the_weights_are_named(cache_dir, tmp_path, name, shape,
                                                               message):
    with macecl.Engine(distinct_models.write(name, tmp_path, dims=DYNAMIC)) as engine:
        with pytest.raises(GraphError, match=message):
            engine.run({"x": np.ones(shape, np.float32)})
        assert not cache_file(cache_dir).exists()


def damaged(tmp_path, how: str):
    path = distinct_models.write("softmax" if how == "no value" else "conv", tmp_path)
    model = onnx.load(path)
    if how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif how == "short weights":
        weights = model.graph.initializer[0]
        weights.raw_data = weights.raw_data[:-8]
        onnx.save(model, path)
    elif how == "no value":
        model.graph.node[0].attribute[0].type = onnx.AttributeProto.UNDEFINED
        onnx.save(model, path)
    elif how == "name not UTF-8":
        model.graph.node[0].name = "node\u00e9"
        data = model.SerializeToString().replace("node\u00e9".encode(), b"node\xff\xfe")
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("how, message", [
    ("empty", "it holds no graph"),
    ("garbage", "is not a readable ONNX model"),
    ("short weights", "initializer 'w' is malformed"),
    ("no value", "node 'softmax' \\(Softmax\\): attribute 'axis' has no value"),
    ("name not UTF-8", "a name of a node is not valid UTF-8"),
])
def test_malformed_onnx_files_are_refused_naming_the_file_and_the_fault(cache_dir, tmp_path, how,
                                                                        message):
    path = damaged(tmp_path, how)
    with pytest.raises(ModelFormatError, match=message) as caught:
        macecl.Engine(path)
    assert str(path) in str(caught.value)
    assert nothing_written(cache_dir)


def test_every_truncation_of_a_model_is_refused_or_complete(cache_dir, tmp_path):
    """A truncated download: refused by name, unless the cut falls where the model is whole
    (ONNX carries no length or checksum: only trailing metadata can be lost)."""
    path = distinct_models.write("conv", tmp_path)
    data = path.read_bytes()
    with macecl.Engine(path) as intact:
        expected = intact.run({"x": GOOD})["y"]
    context = macecl.GPUContextBuilder().finalize()
    truncated, refused, complete = tmp_path / "truncated.onnx", 0, 0
    for cut in range(len(data)):
        truncated.write_bytes(data[:cut])
        try:
            engine = macecl.Engine(truncated, context=context)
        except ModelFormatError as error:
            assert str(truncated) in str(error)
            refused += 1
            continue
        with engine:
            np.testing.assert_array_equal(engine.run({"x": GOOD})["y"], expected)
        complete += 1
    assert refused + complete == len(data) and refused > complete


def test_flipped_bits_in_models_give_macecl_errors_or_run(tmp_path):
    """Damaged model files: any outcome but a raw Python exception (the converter's own
    checks must catch what the ONNX parser lets through)."""
    rng = random.Random(6)
    context = macecl.GPUContextBuilder().finalize()
    outcomes = {"ran": 0, "refused": 0}
    for name in distinct_models.MODELS:
        data = bytearray(distinct_models.write(name, tmp_path).read_bytes())
        for attempt in range(8):
            flipped = bytearray(data)
            for _ in range(rng.choice([1, 2, 4])):
                flipped[rng.randrange(min(len(data), 300))] ^= 1 << rng.randrange(8)
            path = tmp_path / f"{name}-{attempt}.onnx"
            path.write_bytes(bytes(flipped))
            try:
                with macecl.Engine(path, context=context) as engine:
                    shape = [d if isinstance(d, int) else 1 for d in engine.inputs[0].shape]
                    engine.run({engine.inputs[0].name: np.ones(shape, np.float32)})
                outcomes["ran"] += 1
            except MaceclError:
                outcomes["refused"] += 1
    assert outcomes["ran"] + outcomes["refused"] == 8 * len(distinct_models.MODELS)


def test_unsupported_operator_is_named_with_its_node_and_nothing_is_saved(cache_dir, tmp_path):
    path = distinct_models.write("relu", tmp_path)
    model = onnx.load(path)
    model.graph.node[0].op_type = "NonMaxSuppression"
    onnx.save(model, path)
    with pytest.raises(UnsupportedModelError, match="NonMaxSuppression: 'relu'"):
        macecl.Engine(path)
    assert nothing_written(cache_dir)
