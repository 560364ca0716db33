"""The tuner (on PoCL, and on any device MACECL_DEVICE selects): it times real launches, saves the winners, a new engine launches with
them; a tuned size that does not fit the compiled kernel is refused before its first launch
(MACE's CL_INVALID_WORK_GROUP_SIZE crash), and `macecl tune` drives it with a progress bar."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

import macecl
from macecl import CacheWarning
from macecl.cache.tuning_format import FILE_NAME, TuningFile, encode
from macecl.cli import app
from macecl.runtime import faults, tuner
from macecl.runtime.context import GPUContextBuilder

RNG = np.random.default_rng(7)
SHAPE = (1, 3, 16, 16)
CL_INVALID_WORK_GROUP_SIZE = -54


@pytest.fixture
def model(tmp_path):
    """Two launches the tuner takes on every device: a bilinear resize over 3 dimensions, a
    global pool over 1. (A convolution or a windowed pool would not do: their work-group
    shapes are fixed on a CPU, and on a GPU a convolution runs as the tiled kernel.)"""
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["m"], mode="linear",
                              name="window"),
             helper.make_node("GlobalAveragePool", ["m"], ["y"], name="pool")]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    graph = helper.make_graph(
        nodes, "tunable", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [scales])
    path = tmp_path / "tunable.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def engine_for(model, **builder):
    context = GPUContextBuilder().set_profiling(True)
    for name, value in builder.items():
        getattr(context, f"set_{name}")(value)
    return macecl.Engine(model, context=context.finalize())


def sized(result, first: int) -> tuple[int, ...]:
    """A local size of ``first`` work items along dimension 0 for the tuned launch ``result``
    (the resize launches over 3 dimensions, the global pool over 1)."""
    return (first,) + (1,) * (len(result.global_size) - 1)


def launch_sizes(engine) -> list[tuple]:
    (prepared,) = engine._plans.values()
    return [(step.kernel, launch[3]) for step, launch in zip(prepared.plan.steps,
                                                             prepared.launches)]


def test_tuning_times_each_launch_saves_it_and_a_new_engine_uses_it(model):
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    with engine_for(model) as engine:
        expected = engine.run({"x": x})["y"]
        done = []
        results = engine.tune(repeats=2, progress=lambda n, total: done.append((n, total)))
        assert done[-1] == (2, 2) and len(results) == 2
        assert {r.kernel for r in results} == {"resize_bilinear", "global_avg_pool"}
        assert all(r.best_ns > 0 and r.best_ns <= r.default_ns for r in results)
        np.testing.assert_array_equal(engine.run({"x": x})["y"], expected)
        path = engine.context.parameter_path
    assert path.name == FILE_NAME and path.parent == engine.context.cache_path.parent
    stored = TuningFile(path.read_bytes()).entries
    assert sorted(stored, key=repr) == sorted(results, key=repr)
    # Force a size so the check does not depend on which size won on this machine.
    forced = [dataclasses.replace(r, local_size=sized(r, 4)) for r in stored]
    path.write_bytes(encode(forced))
    with engine_for(model) as fresh, warnings.catch_warnings():
        warnings.simplefilter("error")  # the sizes fit: no warning at all
        np.testing.assert_array_equal(fresh.run({"x": x})["y"], expected)
        assert launch_sizes(fresh) == [("resize_bilinear", (4, 1, 1)), ("global_avg_pool", (4,))]


def test_candidates_respect_the_kernel_limits():
    allowed = tuner.Limits(work_group_size=256, item_sizes=(1024, 64, 8), preferred_multiple=8)
    shapes = tuner.candidates((1000, 100, 3), allowed)
    assert shapes[0] is None and len(shapes) <= tuner.MAX_CANDIDATES + 1
    for shape in shapes[1:]:
        assert tuner.check_local_size(shape, (1000, 100, 3), allowed) is None
        assert shape[1] <= 64 and shape[2] <= 4 and np.prod(shape) <= 256
    assert tuner.candidates((5,), allowed) == [None, (1,), (2,), (4,), (8,)]
    assert "exceed the kernel's work-group size 256" in tuner.check_local_size(
        (512,), (1000,), allowed)
    assert "over the device's 8" in tuner.check_local_size((1, 1, 16), (4, 4, 40), allowed)
    assert "2 dimensions" in tuner.check_local_size((4, 4), (16,), allowed)


def test_warm_up_after_a_failed_cache_with_sizes_from_another_driver_does_not_crash(
        model, cache_dir):
    """MACE's crash: the program cache fails to validate, so programs are rebuilt from source,
    and the warm-up launches sizes tuned under another driver of this GPU, which the rebuilt
    kernels cannot take (CL_INVALID_WORK_GROUP_SIZE). Here they are refused before launch."""
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    with engine_for(model) as engine:
        expected = engine.run({"x": x})["y"]
        limit = tuner.limits(engine._kernel(engine._plans[(SHAPE,)].plan.steps[0]),
                             engine.context.device)
        results = engine.tune(repeats=1)
        fingerprint = engine.context.device.fingerprint
    other_driver = dataclasses.replace(fingerprint, driver_version="an older driver")
    other_device = dataclasses.replace(fingerprint, device_name="another GPU")
    pool, window = sorted(results, key=lambda r: r.kernel)  # global_avg_pool, resize_bilinear
    hostile = [
        dataclasses.replace(window, device=other_driver,
                            local_size=sized(window, limit.item_sizes[0] * 2)),
        dataclasses.replace(pool, device=other_driver, local_size=(limit.item_sizes[0] * 4,)),
        dataclasses.replace(window, device=other_device, local_size=sized(window, 3)),
    ]
    engine.context.parameter_path.write_bytes(encode(hostile))
    cache = engine.context.cache_path
    cache.write_bytes(b"MCLP" + b"\x00" * 200)  # the program cache fails to validate
    with pytest.warns(CacheWarning) as caught, engine_for(model) as warm:
        warm.warmup()
        np.testing.assert_array_equal(warm.run({"x": x})["y"], expected)
        assert launch_sizes(warm) == [("resize_bilinear", None), ("global_avg_pool", None)]
        assert warm.stats.programs_from_source == 2  # both pool kernels, rebuilt
    messages = [str(w.message) for w in caught]
    assert any("damaged" in m for m in messages)
    assert sum("over the device's" in m and "driver an older driver" in m for m in messages) == 2
    # Each refusal is said once, however many runs follow.
    assert sum("does not fit" in m for m in messages) == 2


def test_reuse_none_ignores_sizes_tuned_under_another_driver(model):
    with engine_for(model) as engine:
        results = engine.tune(repeats=1)
        fingerprint = engine.context.device.fingerprint
    older = dataclasses.replace(fingerprint, driver_version="an older driver")
    moved = [dataclasses.replace(r, device=older, local_size=sized(r, 2)) for r in results]
    engine.context.parameter_path.write_bytes(encode(moved))
    with engine_for(model) as same_gpu:
        same_gpu.warmup()
        assert launch_sizes(same_gpu) == [("resize_bilinear", (2, 1, 1)), ("global_avg_pool", (2,))]
    with engine_for(model, opencl_cache_reuse_policy=macecl.ReusePolicy.REUSE_NONE) as strict:
        strict.warmup()
        assert launch_sizes(strict) == [("resize_bilinear", None), ("global_avg_pool", None)]


def test_a_size_the_driver_refuses_at_launch_falls_back_to_the_drivers_choice(model):
    """Stands for a driver that refuses a size within the limits it reported (a kernel's local
    memory, a driver bug): clEnqueueNDRangeKernel fails with CL_INVALID_WORK_GROUP_SIZE."""
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    with engine_for(model) as engine:
        expected = engine.run({"x": x})["y"]
        results = engine.tune(repeats=1)
    engine.context.parameter_path.write_bytes(
        encode([dataclasses.replace(r, local_size=sized(r, 4)) for r in results]))
    with engine_for(model) as fresh:
        with faults.inject("launch", CL_INVALID_WORK_GROUP_SIZE), \
                pytest.warns(CacheWarning, match="CL_INVALID_WORK_GROUP_SIZE.*driver's choice"):
            np.testing.assert_array_equal(fresh.run({"x": x})["y"], expected)
        assert launch_sizes(fresh) == [("resize_bilinear", None), ("global_avg_pool", (4,))]


def test_tuning_needs_a_profiling_queue(model):
    with macecl.Engine(model) as engine, pytest.raises(macecl.InputError, match="profiling=True"):
        engine.tune()


def test_cli_tune_writes_the_file_and_reports_json(model, tmp_path):
    target = tmp_path / "out" / FILE_NAME
    result = CliRunner().invoke(app, ["tune", str(model), "-o", str(target), "--repeats", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["parameter_file"] == str(target)
    assert {r["kernel"] for r in report["launches"]} == {"resize_bilinear", "global_avg_pool"}
    assert report["tuned_ms"] <= report["default_ms"]
    assert len(TuningFile(target.read_bytes()).entries) == 2
    shown = CliRunner().invoke(app, ["tune", str(model), "-o", str(target), "--repeats", "1"])
    assert shown.exit_code == 0 and "saved to" in shown.stdout


def test_a_run_is_enqueues_and_one_wait_with_arguments_set_once_per_plan(model, monkeypatch):
    """Low overhead per run: after the first run of a shape, a run sets no kernel argument
    but the input's, copies without blocking, and waits on the queue once. On a CPU the
    input is read in place (tests/test_inputs_in_place.py): not copied, its one reader's
    argument lent and given back each run. The driver calls are spied on and passed through
    to PoCL, so the outputs are still checked."""
    from macecl.engine import engine as engine_module
    from macecl.ops.traits import DeviceTraits
    from macecl.runtime.programs import Kernel

    calls = {"set_args": 0, "set_arg": 0, "blocking_copies": 0, "copies": 0, "finish": 0}
    real_set_args, real_set_arg = Kernel.set_args, Kernel.set_arg
    real_copy = engine_module.cl.enqueue_copy

    def set_args(self, *args):
        calls["set_args"] += 1
        return real_set_args(self, *args)

    def set_arg(self, index, value):
        calls["set_arg"] += 1
        return real_set_arg(self, index, value)

    def enqueue_copy(queue, dest, src, **kwargs):
        calls["copies"] += 1
        calls["blocking_copies"] += kwargs.get("is_blocking", True)
        return real_copy(queue, dest, src, **kwargs)

    x = RNG.standard_normal(SHAPE).astype(np.float32)
    with engine_for(model) as engine:
        expected = engine.run({"x": x})["y"]
        real_finish = engine_module.cl.CommandQueue.finish

        def finish(queue):
            calls["finish"] += 1
            return real_finish(queue)

        monkeypatch.setattr(Kernel, "set_args", set_args)
        monkeypatch.setattr(Kernel, "set_arg", set_arg)
        monkeypatch.setattr(engine_module.cl, "enqueue_copy", enqueue_copy)
        monkeypatch.setattr(engine_module.cl.CommandQueue, "finish", finish)
        for _ in range(3):
            np.testing.assert_array_equal(engine.run({"x": x})["y"], expected)
        cpu = DeviceTraits.of(engine.context.device.cl_device).cpu
    assert calls == {"set_args": 0, "set_arg": 6 if cpu else 0, "blocking_copies": 0,
                     "copies": 3 if cpu else 6, "finish": 3}
