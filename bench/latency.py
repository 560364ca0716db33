"""Inference latency of macecl against ONNX Runtime (CPU, the same thread count), same run.

Models: the ONNX package's `light` models (real architectures; their weights are constants,
which does not change the work) and the three PP-OCR models of rapidocr-onnxruntime 1.4.4.
For each: one engine and one ONNX Runtime session, a warm-up run each, then --rounds timed
runs of each, in turns of settling runs (0.1 s) and --block timed runs back to back
(macecl.benchmark.alternating_blocks says why blocks, not single runs), so that machine
noise hits both alike. Prints median latency and the ratio macecl / ONNX Runtime (below 1:
macecl is faster), and the largest relative difference of the outputs. For the `light`
models that column says little: their constant weights (0.02 everywhere) make every class
score equal, so both give a uniform softmax (0.001 each) whatever the convolutions compute;
tests/suites/test_onnx_backend.py checks those networks with random weights instead.

    python bench/latency.py [--rounds 10] [--block 3] [--threads 2]
                            [--models squeezenet,ppocr_rec] [--device SELECTOR] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from macecl.benchmark import alternating_blocks, median_ms, stopwatch


def model_list() -> dict[str, tuple[Path, dict[str, list[int]]]]:
    """name -> (ONNX file, input shapes to feed)."""
    import onnx

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    models = {path.stem.removeprefix("light_"): (path, {}) for path in sorted(light.glob("light_*.onnx"))}
    found = importlib.util.find_spec("rapidocr_onnxruntime")  # located, not imported: its
    if found is None:                                          # import needs OpenCV and more
        print("rapidocr-onnxruntime is not installed: PP-OCR models left out")
        return models
    ocr = Path(found.submodule_search_locations[0]) / "models"
    models["ppocr_det_640"] = (ocr / "ch_PP-OCRv4_det_infer.onnx", {"x": [1, 3, 640, 640]})
    models["ppocr_cls"] = (ocr / "ch_ppocr_mobile_v2.0_cls_infer.onnx", {"x": [1, 3, 48, 192]})
    models["ppocr_rec"] = (ocr / "ch_PP-OCRv4_rec_infer.onnx", {"x": [1, 3, 48, 320]})
    return models


def chosen_models(names: str | None) -> dict[str, tuple[Path, dict[str, list[int]]]]:
    """The models named (comma-separated; all when none), or exit naming the unknown ones."""
    models = model_list()
    chosen = [m for m in (names or "").split(",") if m] or list(models)
    unknown = [m for m in chosen if m not in models]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {', '.join(models)}")
    return {name: models[name] for name in chosen}


def random_feeds(inputs, shapes: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Seeded uniform data for each input (anything with ``name`` and ``shape``: an engine's
    TensorSpec, an ONNX Runtime NodeArg), of the bench's shape, else its declared one with
    symbolic dims as 1: the same arrays in every script and process."""
    rng = np.random.default_rng(0)
    feeds = {}
    for arg in inputs:
        shape = shapes.get(arg.name) or [d if isinstance(d, int) else 1 for d in arg.shape]
        feeds[arg.name] = rng.random(shape, dtype=np.float32)
    return feeds


def measure(name: str, path: Path, shapes: dict, rounds: int, block: int, threads: int,
            device: str | None) -> dict:
    import onnxruntime

    import macecl

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    reference = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = random_feeds(reference.get_inputs(), shapes)
    engine = macecl.Engine(path, device=device)
    expected = reference.run(None, feeds)
    got = list(engine.run(feeds).values())
    error = max(float(np.max(np.abs(g - e))) / max(float(np.max(np.abs(e))), 1e-12)
                for g, e in zip(got, expected))
    runners = {"macecl": stopwatch(lambda: engine.run(feeds)),
               "onnxruntime": stopwatch(lambda: reference.run(None, feeds))}
    medians = median_ms(alternating_blocks(runners, rounds, block))
    engine.close()
    return {"model": name, "input": {k: list(v.shape) for k, v in feeds.items()},
            "macecl_ms": medians["macecl"], "onnxruntime_ms": medians["onnxruntime"],
            "ratio": medians["macecl"] / medians["onnxruntime"], "relative_error": error,
            "device": engine.context.device.name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block", type=int, default=3, help="timed runs back to back per turn")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="ONNX Runtime's intra-op threads (PoCL uses every core)")
    parser.add_argument("--models", default="", help="comma-separated subset of the names")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    models = chosen_models(options.models)
    console = Console()
    results = []
    with tempfile.TemporaryDirectory() as cache_dir:
        os.environ["MACECL_CACHE_DIR"] = cache_dir  # converted models and programs of this run
        for name, (path, shapes) in models.items():
            with console.status(f"{name}..."):
                results.append(measure(name, path, shapes, options.rounds, options.block,
                                       options.threads, options.device))
            r = results[-1]
            console.print(f"{name}: macecl {r['macecl_ms']:.1f} ms, onnxruntime "
                          f"{r['onnxruntime_ms']:.1f} ms", highlight=False)
    table = Table(title=f"median latency of {options.rounds} runs (blocks of {options.block}); ONNX Runtime "
                        f"CPU with {options.threads} threads; macecl on {results[0]['device']}")
    for column in ("model", "input", "macecl ms", "onnxruntime ms", "macecl / ORT", "max rel err"):
        table.add_column(column, justify="left" if column in ("model", "input") else "right")
    for r in results:
        table.add_row(r["model"], " ".join(str(v) for v in r["input"].values()),
                      f"{r['macecl_ms']:.1f}", f"{r['onnxruntime_ms']:.1f}", f"{r['ratio']:.2f}",
                      f"{r['relative_error']:.1e}")
    console.print(table)
    if options.json:
        options.json.write_text(json.dumps({"results": results, "rounds": options.rounds,
                                            "block": options.block,
                                            "threads": options.threads,
                                            "date": time.strftime("%Y-%m-%d")}, indent=2))


if __name__ == "__main__":
    main()
