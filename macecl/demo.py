"""The main demo: a real CNN converted, then started in two fresh processes, cold then warm.

The model is SqueezeNet 1.0 as the ONNX package ships it for its own backend tests
(``onnx/backend/test/data/light``): nothing to download. Each start is a new interpreter
that opens the cache, loads the converted model, gets its programs and runs once; the
second finds every program in the cache file the first wrote.

    python -m macecl.demo MODEL.macecl CACHE_FILE [DEVICE]   # one start; prints JSON
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODEL_NAME = "light_squeezenet"


def demo_model() -> Path:
    """The ONNX file of the demo, inside the installed onnx package."""
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"{MODEL_NAME}.onnx"


def sample_input(shape: list[int]) -> np.ndarray:
    """A deterministic image-like input, the same in every process."""
    return np.random.default_rng(2026).random(shape, dtype=np.float32)


def start_up(model: Path, cache_path: Path, device: str | None = None) -> dict:
    """One application start: context and cache, model, programs, first run; timed."""
    started = time.perf_counter()
    from macecl.engine import Engine
    from macecl.runtime.context import GPUContextBuilder

    context = GPUContextBuilder().set_opencl_cache_full_path(cache_path).set_device(device).finalize()
    engine = Engine(model, context=context)
    ready = time.perf_counter()
    outputs = engine.run({spec.name: sample_input(spec.shape) for spec in engine.inputs})
    finished = time.perf_counter()
    result = next(iter(outputs.values()))
    digest = hashlib.sha256()
    for array in outputs.values():
        digest.update(array.tobytes())
    stats = engine.stats
    return {
        "device": context.device.name,
        "init_seconds": ready - started,
        "first_run_seconds": stats.first_run_seconds,
        "start_to_result_seconds": finished - started,
        "programs_from_cache": stats.programs_from_cache,
        "programs_from_source": stats.programs_from_source,
        "programs_from_precompiled": stats.programs_from_precompiled,
        "output_shape": list(result.shape),  # of the first output
        "output_sha256": digest.hexdigest(),  # of every output, in order
    }


def spawn(model: Path, cache_path: Path, device: str | None = None, env: dict | None = None) -> dict:
    """``start_up`` in a fresh interpreter; its last line of output is the JSON result."""
    command = [sys.executable, "-m", "macecl.demo", str(model), str(cache_path)]
    done = subprocess.run(command + ([device] if device else []), env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"start-up process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    _, model_path, cache, *rest = sys.argv
    print(json.dumps(start_up(Path(model_path), Path(cache), rest[0] if rest else None)))
