"""On a CPU device a run reads the caller's input arrays in place (a CL_MEM_USE_HOST_PTR
buffer lent to the launches that read the input) instead of copying them in; every kernel
gets its planned buffer back when the run ends, failed or not. Inputs a buffer over the array
would not serve (read through a view, returned as an output, an unaligned array) are
copied. Runs on PoCL: the driver is real, only our own calls are counted."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import macecl
from macecl.engine import engine as engine_module
from macecl.ops.traits import DeviceTraits
from macecl.runtime import faults
from macecl.runtime.programs import Kernel

RNG = np.random.default_rng(11)
SHAPE = (2, 3, 4, 8)  # half of it, 96 floats, is a sub-buffer PoCL can start (128 bytes)


def save(path, nodes, outputs):
    graph = helper.make_graph(
        nodes, "inputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.fixture
def two_readers(tmp_path):
    """y = relu(x) + sigmoid(x): two launches read x."""
    return save(tmp_path / "two.onnx",
                [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["x"], ["s"]),
                 helper.make_node("Add", ["r", "s"], ["y"])], ["y"])


def expected_two_readers(x):
    return np.maximum(x, 0) + 1 / (1 + np.exp(-x))


class Spy:
    """Counts the engine's copies and records every argument set on a kernel by index."""

    def __init__(self, monkeypatch):
        self.copies_to_device, self.set = 0, []
        real_copy, real_set_arg = engine_module.cl.enqueue_copy, Kernel.set_arg

        def enqueue_copy(queue, dest, src, **kwargs):
            self.copies_to_device += isinstance(src, np.ndarray)
            return real_copy(queue, dest, src, **kwargs)

        def set_arg(kernel, index, value):
            self.set.append((kernel, index, value))
            return real_set_arg(kernel, index, value)

        monkeypatch.setattr(engine_module.cl, "enqueue_copy", enqueue_copy)
        monkeypatch.setattr(Kernel, "set_arg", set_arg)

    def last_values(self):
        return {(id(kernel), index): value for kernel, index, value in self.set}


def on_cpu(engine) -> bool:
    return DeviceTraits.of(engine.context.device.cl_device).cpu


def test_a_cpu_run_lends_the_callers_array_to_its_readers_and_takes_it_back(
        two_readers, monkeypatch):
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    kept = x.copy()
    with macecl.Engine(two_readers) as engine:
        engine.run({"x": x})  # the plan and its kernels
        spy = Spy(monkeypatch)
        for _ in range(3):
            np.testing.assert_allclose(engine.run({"x": x})["y"], expected_two_readers(x),
                                       rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(x, kept)
        planned = engine._prepare((SHAPE,)).inputs[0]
        if on_cpu(engine):
            assert spy.copies_to_device == 0
            # each run: lent to the two readers, then given back
            assert len(spy.set) == 3 * 2 * 2
            assert all(value is planned for value in spy.last_values().values())
            assert len(spy.last_values()) == 2
        else:  # a GPU: copied, nothing lent
            assert spy.copies_to_device == 3 and spy.set == []


def test_each_run_reads_the_array_it_is_given(two_readers):
    """A new array each run (a camera frame each time), and one reused after the caller
    wrote into it: the run sees what the array holds when it is called."""
    with macecl.Engine(two_readers) as engine:
        frame = np.zeros(SHAPE, np.float32)
        for _ in range(3):
            fresh = RNG.standard_normal(SHAPE).astype(np.float32)
            np.testing.assert_allclose(engine.run({"x": fresh})["y"],
                                       expected_two_readers(fresh), rtol=1e-6, atol=1e-6)
            frame[...] = RNG.standard_normal(SHAPE)
            np.testing.assert_allclose(engine.run({"x": frame})["y"],
                                       expected_two_readers(frame), rtol=1e-6, atol=1e-6)


def test_read_only_and_unaligned_arrays(two_readers, monkeypatch):
    """A read-only array is read in place as any other; one whose floats are not 4-byte
    aligned (a view of raw bytes at an odd offset) is copied."""
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    frozen = x.copy()
    frozen.flags.writeable = False
    raw = np.frombuffer(b"\0" + x.tobytes(), np.uint8, offset=1).view(np.float32).reshape(SHAPE)
    assert not raw.flags.aligned
    with macecl.Engine(two_readers) as engine:
        engine.run({"x": x})
        spy = Spy(monkeypatch)
        for array in (frozen, raw):
            np.testing.assert_allclose(engine.run({"x": array})["y"], expected_two_readers(x),
                                       rtol=1e-6, atol=1e-6)
        assert spy.copies_to_device == (1 if on_cpu(engine) else 2)


@pytest.mark.parametrize("case", ["returned", "viewed"])
def test_an_input_that_a_view_or_an_output_shares_is_copied(tmp_path, case, monkeypatch):
    """x returned as an output is read back from its planned buffer; Split's halves of x are
    sub-buffers of it. A buffer over the caller's array would reach neither."""
    if case == "returned":
        nodes, outputs = [helper.make_node("Identity", ["x"], ["same"]),
                          helper.make_node("Relu", ["x"], ["r"])], ["same", "r"]
    else:
        nodes, outputs = [helper.make_node("Split", ["x"], ["a", "b"], axis=0),
                          helper.make_node("Relu", ["a"], ["ra"]),
                          helper.make_node("Neg", ["b"], ["nb"])], ["ra", "nb"]
    path = save(tmp_path / f"{case}.onnx", nodes, outputs)
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    with macecl.Engine(path) as engine:
        engine.run({"x": x})
        assert engine._prepare((SHAPE,)).readers == [None]
        spy = Spy(monkeypatch)
        got = engine.run({"x": x})
        assert spy.copies_to_device == 1 and spy.set == []
    if case == "returned":
        np.testing.assert_array_equal(got["same"], x)
        np.testing.assert_array_equal(got["r"], np.maximum(x, 0))
    else:
        np.testing.assert_array_equal(got["ra"], np.maximum(x[:1], 0))
        np.testing.assert_array_equal(got["nb"], -x[1:])


def test_a_failed_launch_gives_every_lent_argument_back(two_readers, monkeypatch):
    """Stands for a driver failing a launch mid-run (CL_OUT_OF_RESOURCES, a lost device):
    no kernel may keep a buffer over an array the caller may free, and the next run works."""
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    with macecl.Engine(two_readers) as engine:
        engine.run({"x": x})
        planned = engine._prepare((SHAPE,)).inputs[0]
        spy = Spy(monkeypatch)
        # the first reader launches, the second fails; programs came from source: no retry
        real_launch = Kernel.launch
        launched = []

        def launch(kernel, *args, **kwargs):
            launched.append(kernel)
            if len(launched) == 2:
                with faults.inject("launch", status=-5):
                    return real_launch(kernel, *args, **kwargs)
            return real_launch(kernel, *args, **kwargs)

        monkeypatch.setattr(Kernel, "launch", launch)
        with pytest.raises(macecl.KernelExecutionError, match="CL_OUT_OF_RESOURCES"):
            engine.run({"x": x})
        if on_cpu(engine):
            assert spy.set and all(v is planned for v in spy.last_values().values())
        else:  # a GPU: copied, nothing lent
            assert spy.set == []
        np.testing.assert_allclose(engine.run({"x": x})["y"], expected_two_readers(x),
                                   rtol=1e-6, atol=1e-6)
