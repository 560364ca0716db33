"""Concurrent program builds on the real PoCL driver: a model's programs built on threads or in
worker processes give the programs, results, errors, warnings and counters of one-by-one
builds, and the cache they leave serves a warm start."""

from __future__ import annotations

import dataclasses
import logging
import threading

import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import build_context, foreign_binary
from onnx import TensorProto, helper, numpy_helper

import macecl
from macecl import CacheWarning, ProgramBuildError, config
from macecl.cache.format import CacheFile, encode, entries_of
from macecl.errors import ConfigError
from macecl.runtime import faults
from macecl.runtime.programs import Origin

RNG = np.random.default_rng(5)
CONCURRENT = [{"build_workers": 3, "build_mode": "threads"},
              {"build_workers": 2, "build_mode": "processes"}]
MODE_IDS = ["threads", "processes"]
# Library programs cheap to build, each with the options it needs.
# (program, options, kernel), as the engine asks for them.
LIBRARY = [("unary", ("-DOP=1",), "unary"), ("unary", ("-DOP=4",), "unary"),
           ("elementwise", ("-DOP=0",), "binary"), ("softmax", (), "softmax"),
           ("transpose", (), "transpose")]


def small_cnn(path):
    """Conv+Relu -> MaxPool -> Add -> Sigmoid -> Softmax: a handful of programs (how many
    depends on the convolution kernels the device's traits choose: see ``programs_of``)."""
    weight = numpy_helper.from_array(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(RNG.standard_normal(4).astype(np.float32), "b")
    shift = numpy_helper.from_array(RNG.standard_normal((4, 1, 1)).astype(np.float32), "s")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Add", ["p", "s"], ["a"], name="shift"),
        helper.make_node("Sigmoid", ["a"], ["g"], name="gate"),
        helper.make_node("Softmax", ["g"], ["y"], axis=1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight, bias, shift])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every ONNX Runtime of the test extra reads
    onnx.save(model, path)
    return path


def programs_of(engine) -> int:
    """How many distinct programs the engine's one plan launches."""
    (prepared,) = engine._plans.values()
    return len({(step.program, step.options) for step in prepared.plan.steps})


def cached_keys(path) -> set[tuple[str, str]]:
    return {(e.key.name, e.key.options) for e in CacheFile(path.read_bytes()).entries}


@pytest.mark.parametrize("concurrent", CONCURRENT, ids=MODE_IDS)
def test_concurrent_start_gives_what_a_sequential_one_gives(tmp_path, concurrent):
    model = small_cnn(tmp_path / "small_cnn.onnx")
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    starts = {}
    for name, settings in (("sequential", {"build_workers": 1}), ("concurrent", concurrent)):
        with config.override(cache_dir=tmp_path / name, **settings), macecl.Engine(model) as engine:
            outputs = engine.run({"x": x})["y"]
            starts[name] = (outputs, engine.stats, engine.context.cache_path)
            needed = programs_of(engine)
    (sequential, seq_stats, seq_cache), (concurrent_out, stats, cache) = starts.values()
    expected = onnxruntime.InferenceSession(str(model)).run(None, {"x": x})[0]
    np.testing.assert_allclose(sequential, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(concurrent_out, sequential)
    assert needed >= 5
    assert seq_stats.programs_from_source == stats.programs_from_source == needed
    assert cached_keys(cache) == cached_keys(seq_cache) and len(cached_keys(cache)) == needed
    # The binaries the concurrent start saved serve a warm start with the same results.
    with config.override(cache_dir=tmp_path / "concurrent", **concurrent), \
            macecl.Engine(model) as warm:
        assert (warm.stats.programs_from_cache, warm.stats.programs_from_source) == (needed, 0)
        np.testing.assert_array_equal(warm.run({"x": x})["y"], sequential)


@pytest.mark.parametrize("concurrent", CONCURRENT, ids=MODE_IDS)
def test_a_failed_build_raises_from_get_with_its_log(concurrent):
    # elementwise.cl stops with #error without -DOP: a real CL_BUILD_PROGRAM_FAILURE.
    with config.override(**concurrent):
        context = build_context()
        context.programs.prefetch([("elementwise", (), "binary"),
                                   ("unary", ("-DOP=1",), "unary")])
        with pytest.raises(ProgramBuildError) as raised:
            context.programs.get("elementwise", kernel="binary")
        unary = context.programs.get("unary", options=["-DOP=1"], kernel="unary")
        assert unary.origin is Origin.SOURCE
    error = raised.value
    assert (error.program, error.options, error.status) == (
        "elementwise.binary", "", "CL_BUILD_PROGRAM_FAILURE")
    assert "needs -DOP" in error.log
    assert (context.stats.from_source, len(context.programs.programs)) == (1, 1)


def test_one_worker_fetches_in_turn_and_raises_at_once():
    with config.override(build_workers=1):
        context = build_context()
        with pytest.raises(ProgramBuildError, match="needs -DOP"):
            context.programs.prefetch([("unary", ("-DOP=1",), "unary"),
                                       ("elementwise", (), "binary"), ("softmax", (), "softmax")])
    # Fetched in order up to the failure, in this thread: nothing was left building.
    assert [p.key.name for p in context.programs.programs] == ["unary.unary"]


@pytest.mark.parametrize("concurrent", CONCURRENT, ids=MODE_IDS)
def test_rejected_binaries_are_rebuilt_concurrently(cache_dir, concurrent):
    first = build_context()
    for name, options, kernel in LIBRARY[:2]:
        first.programs.get(name, options=options, kernel=kernel)
    assert first.flush() == 2
    path = first.cache_path
    # Well-formed entries whose bytes the driver cannot load: a real CL_INVALID_BINARY.
    foreign = foreign_binary(first.device)
    path.write_bytes(encode([dataclasses.replace(e, payload=foreign)
                             for e in entries_of(CacheFile(path.read_bytes()))]))
    with config.override(**concurrent):
        second = build_context()
        with pytest.warns(CacheWarning, match="CL_INVALID_BINARY") as caught:
            second.programs.prefetch(LIBRARY[:2])
        programs = [second.programs.get(n, options=o, kernel=k) for n, o, k in LIBRARY[:2]]
    assert len(caught) == 2
    assert {p.origin for p in programs} == {Origin.SOURCE}
    assert (second.stats.rejected_binaries, second.stats.from_source) == (2, 2)
    assert second.flush() == 2
    third = build_context()
    assert {third.programs.get(n, options=o, kernel=k).origin
            for n, o, k in LIBRARY[:2]} == {Origin.CACHE}


def test_broken_worker_processes_leave_the_builds_to_this_process(caplog):
    """Stands for worker processes that die or see another device list than the parent (a
    driver installed in between): here the workers' own device check fails for real, the
    pool breaks, and every program is built in this process instead, with one warning."""
    with config.override(build_workers=2, build_mode="processes"):
        manager = build_context().programs
        real = manager.device.fingerprint
        manager.device = dataclasses.replace(
            manager.device, fingerprint=dataclasses.replace(real, driver_version="0.0-other"))
        with caplog.at_level(logging.WARNING, logger="macecl.runtime.programs"):
            manager.prefetch(LIBRARY[:3])
            programs = [manager.get(n, options=o, kernel=k) for n, o, k in LIBRARY[:3]]
    assert {p.origin for p in programs} == {Origin.SOURCE}
    assert manager.stats.from_source == 3
    assert [p.kernel("unary").name for p in programs[:2]] == ["unary", "unary"]
    broken = [m for m in caplog.messages if "build worker processes failed" in m]
    assert len(broken) == 1


def test_threads_asking_at_once_share_one_build_each_and_the_counters_add_up():
    """Eight threads ask for overlapping programs while the pool builds them: a program is
    built once, every thread gets that one object, and nothing waits forever."""
    with config.override(build_workers=3, build_mode="threads"):
        context = build_context()
        context.programs.prefetch(LIBRARY[:3])
        got: dict[int, list] = {}

        def ask(index: int) -> None:
            wanted = LIBRARY[index % 3:] + LIBRARY[:index % 3]
            got[index] = [context.programs.get(n, options=o, kernel=k) for n, o, k in wanted]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)  # a hang detector, not a speed bound
        assert not any(t.is_alive() for t in threads), "program fetching deadlocked"
        context.programs.wait()
    assert len(got) == 8
    by_key = {}
    for programs in got.values():
        for program in programs:
            assert by_key.setdefault(program.key, program) is program
    stats = context.stats
    assert len(by_key) == len(context.programs.programs) == len(LIBRARY)
    assert (stats.from_source, stats.from_cache, stats.rejected_binaries) == (len(LIBRARY), 0, 0)
    assert stats.build_seconds > 0


def test_a_warm_start_that_fails_rebuilds_every_program_concurrently(tmp_path):
    """Stands for a GPU driver failing a launch of a stale stored binary
    (CL_OUT_OF_RESOURCES): the engine's retry from source fetches the plan's programs again."""
    model = small_cnn(tmp_path / "small_cnn.onnx")
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    with config.override(build_workers=3, build_mode="threads"):
        with macecl.Engine(model) as cold:
            expected = cold.run({"x": x})["y"]
        with macecl.Engine(model) as warm:
            with faults.inject("launch", status=-5, times=1), \
                    pytest.warns(CacheWarning, match="CL_OUT_OF_RESOURCES"):
                got = warm.run({"x": x})["y"]
            assert warm.context.stats.from_source == programs_of(warm)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("variable, value, message", [
    ("MACECL_BUILD_WORKERS", "0", "must be 1 or more"),
    ("MACECL_BUILD_WORKERS", "many", "not a whole number"),
    ("MACECL_BUILD_MODE", "fibers", "not one of threads, processes"),
])
def test_bad_build_settings_are_named(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"{variable}.*{message}"):
        config.settings()
