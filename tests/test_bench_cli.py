"""`macecl bench` on PoCL: cold and warm starts in fresh processes, latency against ONNX
Runtime, a chart; what happens without matplotlib or onnxruntime. Times are reported, never
asserted: what is asserted is where the programs came from and what was written."""

from __future__ import annotations

import json
import sys

import pytest
from tiny_models import chain_model
from typer.testing import CliRunner

from macecl import benchmark
from macecl.cli import app
from macecl.errors import ConfigError

runner = CliRunner()


@pytest.fixture
def model(tmp_path):
    return chain_model(tmp_path / "relu_tanh.onnx", ["Relu", "Tanh"], ["N", 3, 4, 4])


def test_bench_json_and_plot(model, tmp_path):
    chart = tmp_path / "chart.png"
    result = runner.invoke(app, ["bench", str(model), "--runs", "2", "--rounds", "3",
                                 "--input-shape", "x:1,3,4,4", "--plot", str(chart), "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["results"]
    assert row["model"] == "relu_tanh.onnx" and row["runs"] == 2 and row["rounds"] == 3
    assert len(row["cold_start_all_s"]) == len(row["warm_start_all_s"]) == 2
    # cold: every program built from source; warm: every one from the file the cold start wrote
    assert row["cold_programs_from_source"] == row["warm_programs_from_cache"] == 2
    assert row["warm_programs_from_source"] == 0
    assert row["onnxruntime_ms"] > 0 and row["macecl_ms"] > 0 and row["note"] is None
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_table_shows_progress_unless_quiet(model):
    shown = runner.invoke(app, ["bench", str(model), "--runs", "1", "--rounds", "1",
                                "--input-shape", "x:1,3,4,4"])
    assert shown.exit_code == 0, shown.output
    assert "1 cold and 1 warm starts in fresh processes" in shown.output  # the progress bar
    assert "relu_tanh.onnx" in shown.output and "ORT ms" in shown.output
    quiet = runner.invoke(app, ["bench", str(model), "--runs", "1", "--rounds", "1",
                                "--input-shape", "x:1,3,4,4", "--quiet"])
    assert quiet.exit_code == 0 and "fresh processes" not in quiet.output
    assert "relu_tanh.onnx" in quiet.output


def test_plot_without_matplotlib_is_a_clear_error_before_measuring(model, tmp_path, monkeypatch):
    """Stands for an install without the `plot` extra (None in sys.modules fails the import)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = runner.invoke(app, ["bench", str(model), "--plot", str(tmp_path / "c.png")])
    assert isinstance(result.exception, ConfigError)
    assert "pip install 'macecl[plot]'" in str(result.exception)
    assert not (tmp_path / "c.png").exists()


def test_without_onnxruntime_macecl_is_measured_alone(model, tmp_path, monkeypatch):
    """Stands for an install without the `test` extra, which brings onnxruntime."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = benchmark.measure(model, tmp_path, {"x": [2, 3, 4, 4]}, runs=1, rounds=2)
    assert result.onnxruntime_ms is None and result.ratio_to_onnxruntime is None
    assert result.note == benchmark.NO_ONNXRUNTIME and result.macecl_ms > 0


def test_unfixed_input_shapes_and_missing_models_are_named(model, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        benchmark.measure(tmp_path / "nope.onnx", tmp_path)
    with pytest.raises(ConfigError, match=r"input 'x' of relu_tanh.onnx has shape \[N, 3, 4, 4\]"):
        benchmark.measure(model, tmp_path, runs=1, rounds=1)


def test_alternating_blocks_times_each_runner_back_to_back_after_settling_runs():
    """The latency comparison's schedule: runners take turns, each turn untimed runs until
    ``settle`` seconds have passed (at least one), then up to ``block`` timed ones; exactly
    ``runs`` timings per runner; progress per turn."""
    calls, turns = [], []

    def runner_of(name):
        def run():
            calls.append(name)
            return float(len(calls))  # the call's position: shows which calls were kept
        return run

    times = benchmark.alternating_blocks({"a": runner_of("a"), "b": runner_of("b")}, runs=5,
                                         block=2, progress=lambda: turns.append(len(calls)),
                                         settle=0)
    assert calls == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3 + ["a"] * 2 + ["b"] * 2
    assert times == {"a": [2.0, 3.0, 8.0, 9.0, 14.0], "b": [5.0, 6.0, 11.0, 12.0, 16.0]}
    assert turns == [6, 12, 16]
    calls.clear()
    # A clock each run moves on by one second: settling for 2.5 s takes three runs; then
    # the timed ones.
    times = benchmark.alternating_blocks({"a": runner_of("a")}, runs=2, block=2, settle=2.5,
                                         clock=lambda: float(len(calls)))
    assert times == {"a": [4.0, 5.0]}
    with pytest.raises(ValueError, match="at least 1"):
        benchmark.alternating_blocks({"a": runner_of("a")}, runs=0)
