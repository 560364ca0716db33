"""The engine end to end on PoCL: ONNX in, conversion kept, inputs checked, plans per shape,
buffers shared by liveness, programs from the cache on the next start."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import macecl
from macecl.engine import models
from macecl.engine.plan import make_plan
from macecl.errors import InputError, ModelFormatError, UnsupportedModelError
from macecl.graph import model_file
from macecl.runtime import faults

RNG = np.random.default_rng(3)


def small_model(path, batch: int | str = "N", width: int | str = "W", opset: int = 13):
    """x (batch, 3, 4, width) -> Sigmoid(x * 2 + b) -> Relu(... - 0.5) -> y; b is a weight."""
    bias = numpy_helper.from_array(RNG.standard_normal((3, 1, 1)).astype(np.float32), "b")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["scaled"], name="scale"),
        helper.make_node("Add", ["scaled", "b"], ["biased"], name="bias"),
        helper.make_node("Sigmoid", ["biased"], ["gate"], name="gate"),
        helper.make_node("Sub", ["gate", "half"], ["centred"], name="centre"),
        helper.make_node("Relu", ["centred"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 4, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [bias, two, half])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    helper.set_model_props(model, {"character": "a\nb\nc"})
    onnx.save(model, path)
    return path, bias


def reference(x: np.ndarray, bias) -> np.ndarray:
    b = numpy_helper.to_array(bias)
    return np.maximum(1 / (1 + np.exp(-(x * 2 + b))) - 0.5, 0)


def test_onnx_model_runs_and_matches_numpy(tmp_path):
    path, bias = small_model(tmp_path / "m.onnx")
    with macecl.Engine(path) as engine:
        x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
        np.testing.assert_allclose(engine.run({"x": x})["y"], reference(x, bias), atol=1e-6)


def test_conversion_is_kept_and_reused_by_the_next_engine(tmp_path, cache_dir):
    path, _ = small_model(tmp_path / "m.onnx")
    with macecl.Engine(path) as first:
        assert first.stats.convert_seconds > 0
        stored = first.model_path
    assert stored.parent == models.converted_dir() and stored.suffix == ".macecl"
    with macecl.Engine(path) as second:
        assert second.stats.convert_seconds == 0 and second.model_path == stored


def test_new_input_shape_replans_and_builds_only_kernels_no_earlier_shape_used(tmp_path):
    path, bias = small_model(tmp_path / "m.onnx")

    def kernel_variants(engine):  # each is one program: (file, build options, kernel)
        return {(s.program, s.options, s.kernel)
                for prepared in engine._plans.values() for s in prepared.plan.steps}

    with macecl.Engine(path) as engine:
        for width in (5, 9, 2, 5):
            x = RNG.standard_normal((1, 3, 4, width)).astype(np.float32)
            np.testing.assert_allclose(engine.run({"x": x})["y"], reference(x, bias), atol=1e-6)
        assert engine.context.stats.from_source == len(kernel_variants(engine))
        x = RNG.standard_normal((3, 3, 4, 7)).astype(np.float32)
        np.testing.assert_allclose(engine.run({"x": x})["y"], reference(x, bias), atol=1e-6)
        assert engine.context.stats.from_source == len(kernel_variants(engine))
        assert engine.stats.plans == 4


def test_second_start_takes_every_program_from_the_cache(tmp_path):
    path, _ = small_model(tmp_path / "m.onnx", batch=1, width=6)
    x = RNG.standard_normal((1, 3, 4, 6)).astype(np.float32)
    with macecl.Engine(path) as cold:
        first = cold.run({"x": x})["y"]
        assert cold.stats.programs_from_source > 0 and cold.stats.programs_from_cache == 0
    with macecl.Engine(path) as warm:  # fixed shapes: every program is fetched at init
        assert warm.stats.programs_from_cache == cold.stats.programs_from_source
        assert warm.stats.programs_from_source == 0
        np.testing.assert_array_equal(warm.run({"x": x})["y"], first)


def test_programs_a_new_shape_built_are_saved_for_the_next_start(tmp_path):
    """A model with a free batch dimension, x + c with c one sample (1, 3, 4, 7): batch 1
    adds equal shapes (binary_flat), batch 3 broadcasts c over the batch (binary_3d), a
    kernel batch 1 did not use; the next process running batch 3 must find it in the
    cache."""
    c = RNG.standard_normal((1, 3, 4, 7)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], "per_sample",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(c, "c")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    one, three = (RNG.standard_normal((n, 3, 4, 7)).astype(np.float32) for n in (1, 3))
    with macecl.Engine(path) as first:
        first.run({"x": one})
        before = first.context.stats.from_source
        first.run({"x": three})
        assert first.context.stats.from_source > before
    with macecl.Engine(path) as second:
        np.testing.assert_allclose(second.run({"x": three})["y"], three + c, atol=1e-6)
        assert (second.stats.programs_from_source, second.context.stats.from_source) == (0, 0)


def test_buffers_are_shared_between_tensors_whose_lives_do_not_overlap(tmp_path):
    path, _ = small_model(tmp_path / "m.onnx")
    graph = models.load(path)[0]
    plan = make_plan(graph, [(1, 3, 4, 8)])
    # input, output, and the 4 intermediates share 2 buffers between them
    assert len(plan.steps) == 5 and len(plan.buffer_sizes) == 4


@pytest.mark.parametrize("feeds, message", [
    ({"z": np.zeros((1, 3, 4, 5), np.float32)}, "unknown input 'z'"),
    ({}, "input 'x' is missing"),
    ({"x": np.zeros((1, 3, 4, 5), np.float64)}, "dtype float64; the model expects float32"),
    ({"x": np.zeros((3, 4, 5), np.float32)}, "rank 3"),
    ({"x": np.zeros((1, 2, 4, 5), np.float32)}, "axis 1 must be 3"),
    ({"x": [[1.0]]}, "must be a NumPy array"),
])
def test_bad_inputs_get_errors_that_name_them(tmp_path, feeds, message):
    path, _ = small_model(tmp_path / "m.onnx")
    with macecl.Engine(path) as engine:
        with pytest.raises(InputError, match=message):
            engine.run(feeds)


def test_nan_and_inf_pass_through_and_empty_batches_run(tmp_path):
    path, bias = small_model(tmp_path / "m.onnx")
    with macecl.Engine(path) as engine:
        x = RNG.standard_normal((1, 3, 4, 5)).astype(np.float32)
        x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
        got = engine.run({"x": x})["y"]
        assert np.isnan(got[0, 0, 0, 0])
        np.testing.assert_allclose(got, reference(x, bias), atol=1e-6)
        assert engine.run({"x": np.zeros((0, 3, 4, 5), np.float32)})["y"].shape == (0, 3, 4, 5)


def test_a_failed_run_writes_nothing_to_the_cache(tmp_path):
    """Stands for a driver that fails a launch (out of resources, a lost device)."""
    path, _ = small_model(tmp_path / "m.onnx")
    with macecl.Engine(path) as engine:
        # CL_OUT_OF_RESOURCES on the first try and on the retry from source
        with faults.inject("launch", status=-5, times=2):
            with pytest.raises(macecl.KernelExecutionError):
                engine.run({"x": np.ones((1, 3, 4, 5), np.float32)})
        assert not engine.context.cache_path.exists()
        engine.run({"x": np.ones((1, 3, 4, 5), np.float32)})
        assert engine.context.cache_path.exists()


def test_unsupported_operators_are_listed_with_their_nodes(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="ok"),
         helper.make_node("NonMaxSuppression", ["r", "r"], ["s"], name="nms"),
         helper.make_node("Unique", ["s"], ["y"], name="uniques")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              tmp_path / "bad.onnx")
    with pytest.raises(UnsupportedModelError) as caught:
        macecl.Engine(tmp_path / "bad.onnx")
    assert set(caught.value.unsupported) == {"NonMaxSuppression", "Unique"}
    assert "'nms'" in str(caught.value) and "'uniques'" in str(caught.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_unreadable_models_get_clear_errors(tmp_path, damage):
    path, _ = small_model(tmp_path / "m.onnx")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff" * 100)
    else:
        path.unlink()
    with pytest.raises(ModelFormatError, match="m.onnx"):
        macecl.Engine(path)


def test_model_file_round_trip_maps_weights_read_only(tmp_path):
    path, bias = small_model(tmp_path / "m.onnx")
    from macecl.converter import convert

    graph = convert(path, tmp_path / "m.macecl")
    loaded = model_file.load(tmp_path / "m.macecl")
    assert [n.op for n in loaded.nodes] == [n.op for n in graph.nodes]
    assert loaded.metadata == {"character": "a\nb\nc"}
    np.testing.assert_array_equal(loaded.constants["b"], numpy_helper.to_array(bias))
    assert not loaded.constants["b"].flags.writeable
    damaged = bytearray((tmp_path / "m.macecl").read_bytes())
    damaged[:8] = (10**9).to_bytes(8, "little")
    with pytest.raises(ModelFormatError, match="header length"):
        model_file.parse(bytes(damaged))


def test_inference_session_speaks_onnxruntime(tmp_path):
    path, bias = small_model(tmp_path / "m.onnx", batch=1)
    session = macecl.InferenceSession(str(path), providers=["CUDAExecutionProvider",
                                                            "CPUExecutionProvider"],
                                      sess_options=macecl.SessionOptions())
    (arg,) = session.get_inputs()
    assert (arg.name, arg.shape, arg.type) == ("x", [1, 3, 4, "W"], "tensor(float)")
    assert session.get_outputs()[0].name == "y"
    assert session.get_modelmeta().custom_metadata_map["character"] == "a\nb\nc"
    assert session.get_providers() == ["OpenCLExecutionProvider"]
    x = RNG.standard_normal((1, 3, 4, 7)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_allclose(y, reference(x, bias), atol=1e-6)
    assert len(session.run(["y"], {"x": x})) == 1


def test_opset6_broadcast_along_an_axis_is_read_as_onnx_meant_it(tmp_path):
    bias = RNG.standard_normal(3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"], name="add", broadcast=1, axis=1)],
        "legacy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(bias, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)]),
              tmp_path / "legacy.onnx")
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    with macecl.Engine(tmp_path / "legacy.onnx") as engine:
        np.testing.assert_allclose(engine.run({"x": x})["y"], x + bias[:, None, None], atol=1e-6)


def test_buffers_shared_by_a_concat_are_released_and_planned_again(tmp_path):
    """A Concat's inputs are written in place into its output (sub-buffers of one buffer).
    Closing, and dropping a plan for a new shape, release them all; NVIDIA's driver crashed
    when the sub-buffers went first (run this with MACECL_DEVICE=NVIDIA to check there)."""
    wa, wb = RNG.standard_normal((4, 3, 3, 3)), RNG.standard_normal((5, 3, 1, 1))
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "wb"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(
        nodes, "concat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w.astype(np.float32), n) for n, w in (("wa", wa), ("wb", wb))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every ONNX Runtime of the test extra reads
    onnx.save(model, tmp_path / "concat.onnx")
    import onnxruntime

    reference = onnxruntime.InferenceSession(str(tmp_path / "concat.onnx"))
    engine = macecl.Engine(tmp_path / "concat.onnx")
    for height in (6, 9, 6):  # the third replans the first shape after a plan was dropped
        x = RNG.standard_normal((1, 3, height, 8)).astype(np.float32)
        got = engine.run({"x": x})["y"]
        np.testing.assert_allclose(got, reference.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)
        prepared = engine._prepare(((1, 3, height, 8),))
        assert len(prepared.buffers) > len(prepared.plan.buffer_sizes)  # sub-buffers made
        engine._forget_plans()
    engine.close()
