"""`macecl bench`'s measurements: cold versus warm start in fresh processes, and latency
against ONNX Runtime in one process, with a chart.

Start-up is timed as an app sees it, from a new interpreter's imports to the first result
(``macecl.demo.start_up``: device, cache file, model, programs, first run), because programs
still building when the engine returns are waited for during that run: "cold" with no cache
file, so every program is built from source; "warm" with the file the cold start wrote. Each of ``runs`` pairs gets a new
cache file. The drivers' own caches are kept out (POCL_KERNEL_CACHE=0,
CUDA_CACHE_DISABLE=1) so that cold means what a new device goes through.

Latency: one engine and one ONNX Runtime session (CPU) on the same random input, a warm-up
run each, then ``rounds`` timed runs of each, taken in alternating blocks
(:func:`alternating_blocks`) so that machine noise hits both alike. Without onnxruntime (a
test extra) macecl is measured alone and the result says so.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from macecl.demo import sample_input, spawn
from macecl.errors import ConfigError, MaceclError
from macecl.progress import Silent, Steps

BLOCK = 3  # timed runs back to back per turn of alternating_blocks
SETTLE_SECONDS = 0.1  # of untimed runs that start each turn of alternating_blocks
START = "start_to_result_seconds"  # what ``demo.start_up`` reports as the start's cost
NO_ONNXRUNTIME = "onnxruntime is not installed: macecl alone (pip install 'macecl[test]')"


@dataclasses.dataclass
class ModelBench:
    """What was measured for one model; times are medians (seconds, or ms for latency)."""

    model: str
    device: str
    cold_start_s: float
    warm_start_s: float
    cold_programs_from_source: int
    warm_programs_from_cache: int
    warm_programs_from_source: int
    macecl_ms: float
    onnxruntime_ms: float | None
    runs: int
    rounds: int
    note: str | None = None
    cold_start_all_s: list[float] = dataclasses.field(default_factory=list)
    warm_start_all_s: list[float] = dataclasses.field(default_factory=list)

    @property
    def warm_speed_up(self) -> float:
        return self.cold_start_s / self.warm_start_s

    @property
    def ratio_to_onnxruntime(self) -> float | None:
        """macecl / ONNX Runtime latency: below 1, macecl is faster."""
        return None if self.onnxruntime_ms is None else self.macecl_ms / self.onnxruntime_ms


def require_matplotlib() -> None:
    """Fail before measuring anything when a chart is asked for and cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib, which is not installed: "
                          "pip install 'macecl[plot]'") from None


def measure(model: Path, work_dir: Path, input_shapes: dict[str, list[int]] | None = None,
            runs: int = 3, rounds: int = 20, device: str | None = None,
            steps: Steps | None = None) -> ModelBench:
    """Cold and warm start of ``model`` (.onnx or .macecl) and its latency; see the module."""
    from macecl.converter import convert
    from macecl.graph.model_file import SUFFIX

    steps = steps or Silent()
    model = Path(model)
    if not model.is_file():
        raise ConfigError(f"model file {model} does not exist")
    onnx_path = model if model.suffix == ".onnx" else None
    converted = model
    if onnx_path is not None:
        steps.start(f"converting {model.name}", 1)
        converted = work_dir / f"{model.stem}{SUFFIX}"
        convert(model, converted, input_shapes=input_shapes)
        steps.advance()
    elif input_shapes:
        raise ConfigError(f"{model} is already converted; its input shapes were fixed then")
    _check_fixed_shapes(converted, model)
    cold, warm = _start_ups(converted, work_dir, runs, device, steps)
    macecl_ms, onnxruntime_ms, note = _latency(converted, onnx_path, rounds, device, steps)
    return ModelBench(
        model=model.name, device=cold[0]["device"],
        cold_start_s=statistics.median(r[START] for r in cold),
        warm_start_s=statistics.median(r[START] for r in warm),
        cold_programs_from_source=cold[0]["programs_from_source"],
        warm_programs_from_cache=warm[0]["programs_from_cache"],
        warm_programs_from_source=max(r["programs_from_source"] for r in warm),
        macecl_ms=macecl_ms, onnxruntime_ms=onnxruntime_ms, runs=runs, rounds=rounds, note=note,
        cold_start_all_s=[r[START] for r in cold],
        warm_start_all_s=[r[START] for r in warm])


def _check_fixed_shapes(converted: Path, model: Path) -> None:
    from macecl.graph import model_file

    for spec in model_file.load(converted).inputs:
        if not all(isinstance(d, int) and d >= 0 for d in spec.shape):
            raise ConfigError(f"input {spec.name!r} of {model.name} has shape "
                              f"{spec.describe_shape()}: fix it with --input-shape "
                              f"{spec.name}:D1,D2,...")


def _start_ups(model: Path, work_dir: Path, runs: int, device: str | None, steps: Steps
               ) -> tuple[list[dict], list[dict]]:
    env = {**os.environ, "POCL_KERNEL_CACHE": "0", "CUDA_CACHE_DISABLE": "1"}
    steps.start(f"{model.stem}: {runs} cold and {runs} warm starts in fresh processes", 2 * runs)
    cold, warm = [], []
    for run in range(runs):
        cache = work_dir / f"{model.stem}-start-{run}.bin"
        cache.unlink(missing_ok=True)
        for results in (cold, warm):
            try:
                results.append(spawn(model, cache, device, env=env))
            except RuntimeError as error:
                raise MaceclError(f"a start-up of {model} failed: {error}") from None
            steps.advance()
    return cold, warm


def _latency(model: Path, onnx_path: Path | None, rounds: int, device: str | None, steps: Steps
             ) -> tuple[float, float | None, str | None]:
    """Median ms of macecl and of ONNX Runtime (None when it cannot run), and why not."""
    from macecl.engine import Engine

    session, note = None, None
    if onnx_path is None:
        note = "a .macecl model: no ONNX file for ONNX Runtime, macecl alone"
    else:
        try:
            import onnxruntime
        except ImportError:
            note = NO_ONNXRUNTIME
        else:
            session = onnxruntime.InferenceSession(str(onnx_path),
                                                   providers=["CPUExecutionProvider"])
    steps.start(f"{model.stem}: latency, {rounds} rounds", -(-rounds // BLOCK))
    with Engine(model, device=device) as engine:
        feeds = {s.name: sample_input(list(s.shape)) for s in engine.inputs}
        engine.run(feeds)
        if session is not None:
            session.run(None, feeds)
        runners = {"macecl": stopwatch(lambda: engine.run(feeds))}
        if session is not None:
            runners["onnxruntime"] = stopwatch(lambda: session.run(None, feeds))
        times = alternating_blocks(runners, rounds, progress=steps.advance)
    medians = median_ms(times)
    return medians["macecl"], medians.get("onnxruntime"), note


def stopwatch(action: Callable[[], object]) -> Callable[[], float]:
    """A runner for :func:`alternating_blocks`: calls ``action``, returns its wall seconds."""
    def run() -> float:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started
    return run


def alternating_blocks(runners: dict[str, Callable[[], float]], runs: int, block: int = BLOCK,
                       progress: Callable[[], object] | None = None,
                       settle: float = SETTLE_SECONDS,
                       clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """The times of ``runs`` timed runs of each runner (a runner does one run and returns its
    time: :func:`stopwatch`'s seconds, or a time taken where the run happens, such as a
    kernel's from its profiling event).

    The runners take turns so that machine noise falls on all of them alike, but a turn is
    untimed settling runs, at least one and until ``settle`` seconds have passed on
    ``clock`` (wall time, whatever unit the runners report in), then up to ``block`` timed
    runs back to back. ONNX Runtime's intra-op threads spin after a run
    returns (its default ``session.intra_op.allow_spinning``), and whatever runs next on
    those cores pays for it: on 2 cores, macecl's SqueezeNet runs right after five ONNX
    Runtime runs took 8.0, 7.1, 6.7, 6.7, 7.1, 6.6 and 7.1 ms, then 5.4, 5.5, 5.3 (medians
    of 6 repeats): about 50 ms of spinning. With the spinning off they were back to 5.3 ms
    by the third run; ONNX Runtime after macecl settled within 2-3 runs. The timed runs are
    each runner's steady state, as an app that runs one model in a loop sees it.
    ``progress`` is called once per turn of all the runners.
    """
    if runs < 1 or block < 1:
        raise ValueError(f"runs and block must be at least 1, got {runs} and {block}")
    times: dict[str, list[float]] = {name: [] for name in runners}
    for first in range(0, runs, block):
        for name, run in runners.items():
            settled = clock() + settle
            run()
            while clock() < settled:
                run()
            times[name].extend(run() for _ in range(min(block, runs - first)))
        if progress is not None:
            progress()
    return times


def median_ms(times: dict[str, list[float]]) -> dict[str, float]:
    """Median of each runner's seconds, in ms."""
    return {name: statistics.median(seconds) * 1e3 for name, seconds in times.items()}


def plot(results: list[ModelBench], path: Path) -> None:
    """Two bar charts side by side: cold versus warm start, macecl versus ONNX Runtime."""
    require_matplotlib()
    from matplotlib.figure import Figure

    names = [r.model for r in results]
    where = np.arange(len(results))
    width = 0.38
    figure = Figure(figsize=(max(8.0, 2.2 * len(results) + 4), 4.2), layout="constrained")
    start, latency = figure.subplots(1, 2)
    start.bar(where - width / 2, [r.cold_start_s for r in results], width, label="cold (no cache)")
    start.bar(where + width / 2, [r.warm_start_s for r in results], width, label="warm (cache)")
    start.set(title="start to first result in a fresh process", ylabel="seconds (median)")
    latency.bar(where - width / 2, [r.macecl_ms for r in results], width, label="macecl")
    if any(r.onnxruntime_ms is not None for r in results):
        latency.bar(where + width / 2, [r.onnxruntime_ms or 0.0 for r in results], width,
                    label="ONNX Runtime (CPU)")
    latency.set(title="latency of one run", ylabel="milliseconds (median)")
    for axes in (start, latency):
        for bars in axes.containers:
            axes.bar_label(bars, fmt="%.3g", fontsize=8)
        axes.set_xticks(where, names, rotation=15)
        axes.legend()
    figure.suptitle(f"macecl on {results[0].device}" if results else "macecl")
    figure.savefig(path, dpi=120)
