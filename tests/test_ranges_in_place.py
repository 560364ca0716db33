"""Concat, Slice and Split without copies: a Concat's inputs that are contiguous ranges of its
output are written there by their producers (engine/plan.py's ``place_within``), and a Slice
or Split output that is one range of its input is a view of it (``view_range``); the others
are copied. The plans show which copies remain, every plan keeps tensors that live at once
apart in memory, and ONNX Runtime checks the numbers."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import macecl
from macecl.converter import convert
from macecl.engine.plan import make_plan
from macecl.ops.traits import DeviceTraits

RNG = np.random.default_rng(11)
TRAITS = DeviceTraits(address_align=128)  # PoCL's CPU device: sub-buffers at 32 floats


def weights(*shape):
    return RNG.standard_normal(shape).astype(np.float32) * 0.3


def conv(x, w, y, relu=True):
    """A 1x1 convolution, followed by Relu: the producers of SqueezeNet's fire modules."""
    if not relu:
        return [helper.make_node("Conv", [x, w], [y])]
    return [helper.make_node("Conv", [x, w], [f"{y}_c"]), helper.make_node("Relu", [f"{y}_c"], [y])]


def save(tmp_path, nodes, initializers, inputs, outputs=("y",)):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


def planned(path, shapes, traits=TRAITS):
    plan = make_plan(convert(path), shapes, traits)
    assert_apart(plan)
    return plan


def copies(plan) -> int:
    return sum(step.program == "copy" for step in plan.steps)


def assert_apart(plan) -> None:
    """No two storages that are live at once share memory, unless one is placed within the
    other: whatever the buffer planning does, no tensor overwrites another still needed."""
    storages = {id(a.storage): a.storage for step in plan.steps for a in step.args
                if getattr(a, "storage", None) is not None and a.storage.constant is None}
    storages.update({id(v.storage): v.storage for v in (*plan.inputs, *plan.outputs)
                     if v.storage is not None})

    def ancestors(storage):
        while storage is not None:
            yield storage
            storage = storage.within

    for s, t in itertools.combinations(storages.values(), 2):
        if s.buffer_index != t.buffer_index or s.last < t.first or t.last < s.first:
            continue
        if s in ancestors(t) or t in ancestors(s):
            continue
        s_at, t_at = s.placement()[1], t.placement()[1]
        assert s_at + s.elements <= t_at or t_at + t.elements <= s_at, (
            f"storages of {s.elements} and {t.elements} elements live at once in buffer "
            f"{s.buffer_index} at {s_at} and {t_at}")


def same_as_onnxruntime(path, feeds, outputs=("y",)):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = dict(zip(outputs, session.run(list(outputs), feeds)))
    with macecl.Engine(path) as engine:
        got = engine.run(feeds)
    for name in outputs:
        want = wanted[name]
        np.testing.assert_allclose(got[name], want, rtol=0,
                                   atol=1e-4 * max(1.0, np.abs(want).max()), err_msg=name)


def feed(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


FIRE = {"ws": weights(4, 6, 1, 1), "w1": weights(8, 4, 1, 1), "w3": weights(5, 4, 1, 1)}


def test_a_fire_module_concatenates_without_a_copy(tmp_path):
    """SqueezeNet's fire module: squeeze, two expands, Concat, the next squeeze reads it."""
    path = save(tmp_path, [*conv("x", "ws", "s"), *conv("s", "w1", "e1"), *conv("s", "w3", "e3"),
                           helper.make_node("Concat", ["e1", "e3"], ["cat"], axis=1),
                           *conv("cat", "wn", "y", relu=False)],
                {**FIRE, "wn": weights(3, 13, 1, 1)}, [("x", [1, 6, 8, 4])])
    plan = planned(path, [(1, 6, 8, 4)])
    assert copies(plan) == 0
    assert len(plan.steps) == 4  # the four convolutions (Relu fused)
    same_as_onnxruntime(path, {"x": feed(1, 6, 8, 4)})


def test_inputs_read_again_after_the_concat_keep_their_values(tmp_path):
    """e1 is placed in the Concat's output and read again after it, by an Add; e3 is a graph
    output as well: both still hold their values, and the buffer planning keeps them apart
    from the tensors made after the Concat."""
    path = save(tmp_path, [*conv("x", "ws", "s"), *conv("s", "w1", "e1"), *conv("s", "w3", "e3"),
                           helper.make_node("Concat", ["e1", "e3"], ["cat"], axis=1),
                           *conv("cat", "wn", "n", relu=False), *conv("n", "wm", "m"),
                           helper.make_node("Add", ["m", "e1"], ["y"])],
                {**FIRE, "wn": weights(8, 13, 1, 1), "wm": weights(8, 8, 1, 1)},
                [("x", [1, 6, 8, 4])], outputs=("y", "e3"))
    plan = planned(path, [(1, 6, 8, 4)])
    assert copies(plan) == 0
    same_as_onnxruntime(path, {"x": feed(1, 6, 8, 4)}, outputs=("y", "e3"))


@pytest.mark.parametrize("order", [("x", "e1"), ("e1", "x")])
def test_a_graph_input_is_copied_and_the_other_input_placed(tmp_path, order):
    path = save(tmp_path, [*conv("x", "w1", "e1"),
                           helper.make_node("Concat", list(order), ["y"], axis=1)],
                {"w1": weights(8, 6, 1, 1)}, [("x", [1, 6, 8, 4])])
    plan = planned(path, [(1, 6, 8, 4)])
    assert [step.op for step in plan.steps if step.program == "copy"] == ["Concat"]
    same_as_onnxruntime(path, {"x": feed(1, 6, 8, 4)})


def test_a_constant_is_copied_and_the_other_input_placed(tmp_path):
    path = save(tmp_path, [*conv("x", "w1", "e1"),
                           helper.make_node("Concat", ["k", "e1"], ["y"], axis=1)],
                {"w1": weights(8, 6, 1, 1), "k": weights(1, 3, 8, 4)}, [("x", [1, 6, 8, 4])])
    plan = planned(path, [(1, 6, 8, 4)])
    assert copies(plan) == 1
    same_as_onnxruntime(path, {"x": feed(1, 6, 8, 4)})


def test_an_input_listed_twice_is_placed_once_and_copied_once(tmp_path):
    path = save(tmp_path, [*conv("x", "w1", "e1"), *conv("x", "w3", "e3"),
                           helper.make_node("Concat", ["e1", "e3", "e1"], ["y"], axis=1)],
                {"w1": weights(8, 6, 1, 1), "w3": weights(5, 6, 1, 1)}, [("x", [1, 6, 8, 4])])
    plan = planned(path, [(1, 6, 8, 4)])
    assert copies(plan) == 1
    same_as_onnxruntime(path, {"x": feed(1, 6, 8, 4)})


def test_an_input_of_two_concats_is_placed_in_the_first_only(tmp_path):
    """e1 and e3 live in the first Concat's output; the second copies both from there."""
    path = save(tmp_path, [*conv("x", "w1", "e1"), *conv("x", "w3", "e3"),
                           helper.make_node("Concat", ["e1", "e3"], ["a"], axis=1),
                           helper.make_node("Concat", ["e3", "e1"], ["b"], axis=1),
                           helper.make_node("Sub", ["a", "b"], ["y"])],
                {"w1": weights(6, 6, 1, 1), "w3": weights(6, 6, 1, 1)}, [("x", [1, 6, 8, 4])])
    plan = planned(path, [(1, 6, 8, 4)])
    assert copies(plan) == 2
    same_as_onnxruntime(path, {"x": feed(1, 6, 8, 4)})


def test_growing_concats_nest_without_copies(tmp_path):
    """DenseNet's dense block: each Concat's output is the first input of the next, and each
    new layer reads the Concat before it."""
    nodes = [*conv("x", "w0", "f0")]
    initializers = {"w0": weights(4, 6, 1, 1)}
    features, channels = "f0", 4
    for layer in range(1, 4):
        initializers[f"w{layer}"] = weights(3, channels, 1, 1)
        nodes += [*conv(features, f"w{layer}", f"g{layer}"),
                  helper.make_node("Concat", [features, f"g{layer}"], [f"f{layer}"], axis=1)]
        features, channels = f"f{layer}", channels + 3
    nodes += conv(features, "wy", "y", relu=False)
    initializers["wy"] = weights(2, channels, 1, 1)
    path = save(tmp_path, nodes, initializers, [("x", [1, 6, 8, 4])])
    plan = planned(path, [(1, 6, 8, 4)])
    assert copies(plan) == 0
    same_as_onnxruntime(path, {"x": feed(1, 6, 8, 4)})


def test_an_offset_a_sub_buffer_cannot_start_at_is_copied(tmp_path):
    """5 x 5 planes: e3 would start at 3 x 25 floats, 300 bytes, not a multiple of 128."""
    path = save(tmp_path, [*conv("x", "w1", "e1"), *conv("x", "w3", "e3"),
                           helper.make_node("Concat", ["e1", "e3"], ["y"], axis=1)],
                {"w1": weights(3, 6, 1, 1), "w3": weights(5, 6, 1, 1)}, [("x", [1, 6, 5, 5])])
    plan = planned(path, [(1, 6, 5, 5)])
    assert copies(plan) == 1
    assert copies(planned(path, [(1, 6, 5, 5)], DeviceTraits(address_align=4))) == 0
    same_as_onnxruntime(path, {"x": feed(1, 6, 5, 5)})


@pytest.mark.parametrize("axis, shape, placed", [
    (1, (2, 6, 8, 4), False),  # batch 2: each input is two ranges of the output
    (0, (2, 6, 8, 4), True),
    (2, (1, 1, 8, 4), True),   # every dim before the axis is 1
    (3, (1, 6, 8, 4), False),
])
def test_only_inputs_that_are_one_range_of_the_output_are_placed(tmp_path, axis, shape, placed):
    path = save(tmp_path, [*conv("x", "w1", "e1"), *conv("x", "w3", "e3"),
                           helper.make_node("Concat", ["e1", "e3"], ["y"], axis=axis)],
                {"w1": weights(shape[1], shape[1], 1, 1), "w3": weights(shape[1], shape[1], 1, 1)},
                [("x", list(shape))])
    plan = planned(path, [shape])
    assert copies(plan) == (0 if placed else 2)
    same_as_onnxruntime(path, {"x": feed(*shape)})


@pytest.mark.parametrize("model", ["squeezenet", "densenet121"])
def test_the_light_models_concatenate_without_copies(model):
    path = onnx.__file__.replace("__init__.py", f"backend/test/data/light/light_{model}.onnx")
    graph = convert(path)
    plan = make_plan(graph, [tuple(s.shape) for s in graph.inputs], TRAITS)
    assert_apart(plan)
    assert copies(plan) == 0


@pytest.mark.parametrize("starts, ends, axes, steps, viewed", [
    ([2], [5], [1], [1], True),              # channels 2..4: one range
    ([0, 2], [1, 5], [0, 1], [1, 1], True),
    ([1, 0], [5, 4], [1, 2], [1, 1], False),  # rows 0..3 of each plane: gaps between them
    ([1], [6], [1], [2], False),              # every other channel
    ([3], [4], [3], [1], False),              # one column
    ([4], [1], [1], [-1], False),             # channels 4, 3, 2: reversed
])
def test_a_slice_that_is_one_range_is_a_view(tmp_path, starts, ends, axes, steps, viewed):
    """The Slice feeds a convolution and a graph output; e is read again after it."""
    nodes = [*conv("x", "w1", "e"),
             helper.make_node("Slice", ["e", "starts", "ends", "axes", "steps"], ["s"]),
             helper.make_node("ReduceMax", ["s"], ["r"], axes=[1, 2, 3], keepdims=1),
             *conv("e", "w2", "t"), helper.make_node("Add", ["t", "r"], ["y"])]
    initializers = {"w1": weights(6, 6, 1, 1), "w2": weights(1, 6, 1, 1),
                    **{k: np.array(v, np.int64) for k, v in
                       [("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps)]}}
    path = save(tmp_path, nodes, initializers, [("x", [1, 6, 8, 4])], outputs=("y", "s"))
    plan = planned(path, [(1, 6, 8, 4)])
    assert copies(plan) == (0 if viewed else 1)
    same_as_onnxruntime(path, {"x": feed(1, 6, 8, 4)}, outputs=("y", "s"))


@pytest.mark.parametrize("source, planes, viewed", [
    ("e", (8, 4), 2),   # a computed tensor: both outputs are views
    ("x", (8, 4), 2),   # a graph input: views of its buffer
    ("e", (5, 5), 1),   # the second output would start at 2 x 25 floats: copied
])
def test_split_outputs_are_views_of_their_ranges(tmp_path, source, planes, viewed):
    """Split's outputs go to two convolutions and to a Concat that swaps them, which copies
    them (they lie within the Split's input already)."""
    shape = [1, 6, *planes]
    nodes = [*conv("x", "w1", "e"),
             helper.make_node("Split", [source, "split"], ["a", "b"], axis=1),
             *conv("a", "wa", "ca"), *conv("b", "wb", "cb"),
             helper.make_node("Concat", ["b", "a"], ["ba"], axis=1),
             helper.make_node("Concat", ["ca", "cb"], ["cc"], axis=1),
             helper.make_node("Add", ["ba", "cc"], ["y"])]
    path = save(tmp_path, nodes, {"w1": weights(6, 6, 1, 1), "split": np.array([2, 4], np.int64),
                                  "wa": weights(2, 2, 1, 1), "wb": weights(4, 4, 1, 1)},
                [("x", shape)])
    plan = planned(path, [tuple(shape)])
    split_copies = sum(step.op == "Split" for step in plan.steps)
    assert split_copies == 2 - viewed
    same_as_onnxruntime(path, {"x": feed(*shape)})


def test_ppocr_rec_slices_its_attention_without_copies():
    """SVTR's attention slices q, k and v off one (3, ...) tensor: six Slices in PP-OCR rec."""
    package = importlib.util.find_spec("rapidocr_onnxruntime").submodule_search_locations[0]
    path = Path(package) / "models" / "ch_PP-OCRv4_rec_infer.onnx"
    graph = convert(path, input_shapes={"x": [1, 3, 48, 320]})
    plan = make_plan(graph, [(1, 3, 48, 320)], TRAITS)
    assert_apart(plan)
    assert sum(step.op == "Slice" for step in plan.steps) == 0
