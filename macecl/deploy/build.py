"""Building what an app ships: converted models, one compiled-program file, a manifest.

For each target device present on this machine, every program of every model is built on
it into one ``mace_cl_compiled_program.bin`` (one section a device): the programs are
fetched first (so that "compiling N programs" can be counted), then each model runs once
on zeros, because on PoCL a binary holds machine code only after its kernels' first launch,
and the context is flushed. With ``runtime: {tune: true}`` each model's launches are then
tuned into ``tuned_opencl_parameter.bin`` (one section a device too). Selectors that match
no device present are listed as skipped.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from macecl import config
from macecl.cache.fingerprint import ReusePolicy
from macecl.cache.store import atomic_write, opened
from macecl.cache.tuning_format import FILE_NAME as PARAMETER_FILE_NAME
from macecl.converter import convert
from macecl.converter.onnx_import import read
from macecl.deploy.config import DeployConfig, ModelSpec
from macecl.engine import Engine
from macecl.engine.plan import make_plan
from macecl.errors import ConfigError
from macecl.graph import model_file
from macecl.graph.ir import Graph
from macecl.graph.model_file import SUFFIX
from macecl.ops.traits import DeviceTraits
from macecl.progress import Silent, Steps
from macecl.runtime.context import GPUContext, GPUContextBuilder
from macecl.runtime.device import Device, list_devices

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


def build(deploy: DeployConfig, output: str | Path, steps: Steps | None = None) -> dict:
    """Write the models, the compiled-program file and the manifest to ``output``; the manifest."""
    import macecl

    steps = steps or Silent()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    binary = output / config.CACHE_FILE_NAME
    parameters = output / PARAMETER_FILE_NAME
    # A new build: nothing of an older one may linger, and a build that fails part-way
    # leaves no manifest vouching for files that were not all written.
    for stale in (output / MANIFEST_NAME, binary, parameters):
        stale.unlink(missing_ok=True)
    converted = _convert_models(deploy, output, steps)
    models = [path for path, _ in converted.values()]
    devices, skipped = _target_devices(deploy)
    tuned = collections.Counter()
    for device in devices:
        tuned[device.fingerprint] = _precompile(device, models, binary, deploy.tune, steps)
    for lock in (binary, parameters):  # our own locks; an app ships no lock file
        Path(f"{lock}.lock").unlink(missing_ok=True)
    counts = _programs_per_device(binary) if devices else {}
    files = models + [path for path in (binary, parameters) if path.is_file()]
    manifest = {
        "library_name": deploy.library_name,
        "macecl_version": macecl.__version__,
        "deployment_file": str(deploy.source),
        "models": [_model_entry(spec, *converted[spec.name]) for spec in deploy.models],
        "devices": [{"index": d.index, "name": d.name, "programs": counts.get(d.fingerprint, 0),
                     "tuned_launches": tuned[d.fingerprint],
                     "fingerprint": dataclasses.asdict(d.fingerprint)} for d in devices],
        "skipped_targets": skipped,
        "tuned": deploy.tune,
        "files": [_file_entry(path, output) for path in files],
    }
    atomic_write(output / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def _convert_models(deploy: DeployConfig, output: Path, steps: Steps
                    ) -> dict[str, tuple[Path, dict[str, tuple[int, ...]]]]:
    """Each model converted and checked: name -> (.macecl file, output shapes)."""
    steps.start("converting models", len(deploy.models))
    converted = {}
    for spec in deploy.models:
        target = output / f"{spec.name}{SUFFIX}"
        _check_input_names(spec)
        graph = convert(spec.path, input_shapes=spec.inputs)
        output_shapes = _check_against(spec, graph)
        model_file.save(graph, target)
        converted[spec.name] = (target, output_shapes)
        steps.advance()
    return converted


def _check_input_names(spec: ModelSpec) -> None:
    """Before converting, so that a wrong name is reported as the deployment file's error."""
    proto = read(spec.path)
    weights = {i.name for i in proto.graph.initializer}
    declared = [i.name for i in proto.graph.input if i.name not in weights]
    if sorted(declared) != sorted(spec.inputs):
        raise ConfigError(f"{spec.where['input_names']}: {spec.path.name} has inputs "
                          f"{declared}; list each of them, with its shape")


def _check_against(spec: ModelSpec, graph: Graph) -> dict[str, tuple[int, ...]]:
    """The outputs the deployment file names are the model's own; the output shapes."""
    outputs = [s.name for s in graph.outputs]
    unknown = [n for n in spec.output_names if n not in outputs]
    if unknown:
        raise ConfigError(f"{spec.where['output_names']}: {spec.path.name} has no output "
                          f"{unknown[0]!r}; its outputs are {outputs}")
    plan = make_plan(graph, [spec.inputs[s.name] for s in graph.inputs])
    planned = {s.name: v.shape for s, v in zip(graph.outputs, plan.outputs)}
    for name, shape in zip(spec.output_names, spec.output_shapes or ()):
        if planned[name] != shape:
            raise ConfigError(f"{spec.where['output_shapes']}: output {name!r} has shape "
                              f"{list(planned[name])} for the input shapes given, "
                              f"not {list(shape)}")
    return {name: planned[name] for name in spec.output_names}


def _target_devices(deploy: DeployConfig) -> tuple[list[Device], list[dict]]:
    present = list_devices()
    chosen: dict[int, Device] = {}
    skipped = []
    for target in deploy.target_devices:
        found = [d for d in present if target.matches(d.fingerprint.platform_name, d.name)]
        if not found:
            log.warning("target device %s is not present on this machine; its programs are "
                        "not precompiled", target.describe())
            skipped.append({"selector": target.describe(),
                            "reason": "no such device on the machine that built this"})
        chosen.update((d.index, d) for d in found)
    return [chosen[i] for i in sorted(chosen)], skipped


def _precompile(device: Device, models: list[Path], binary: Path, tune: bool, steps: Steps
                ) -> int:
    """Every program of every model, built on ``device`` into ``binary`` after one warm-up,
    then, with ``tune``, every launch tuned into the parameter file beside it; how many."""
    # REUSE_NONE: each device gets its own section, never another device's binaries.
    context = (GPUContextBuilder().set_device(device.index).set_opencl_cache_full_path(binary)
               .set_opencl_parameter_path(binary.with_name(PARAMETER_FILE_NAME))
               .set_opencl_cache_reuse_policy(ReusePolicy.REUSE_NONE).set_cache_read_only(False)
               .set_profiling(tune).finalize())
    tuned = 0
    try:
        _fetch_programs(context, models, device, steps)
        steps.start(f"first run of each model on {device.name}", len(models))
        for path in models:
            with Engine(path, context=context) as engine:
                engine.warmup()
            steps.advance()
        context.flush()
        for path in models if tune else ():
            with Engine(path, context=context) as engine:
                described = f"tuning {path.stem} on {device.name}"
                tuned += len(engine.tune(progress=_tuning_progress(steps, described)))
    finally:
        context.close()
    return tuned


def _tuning_progress(steps: Steps, description: str) -> Callable[[int, int], None]:
    """The tuner's ``progress(done, total)`` as Steps: the total is known at its first call."""
    def progress(done: int, total: int) -> None:
        if done == 1:
            steps.start(description, total)
        steps.advance()

    return progress


def _fetch_programs(context: GPUContext, models: list[Path], device: Device, steps: Steps
                    ) -> None:
    """Get each distinct program of the models' plans, one by one, so they can be counted."""
    wanted = {}
    traits = DeviceTraits.of(device.cl_device)  # they pick the kernels its engines ask for
    for path in models:
        graph = model_file.load(path)
        for step in make_plan(graph, [tuple(s.shape) for s in graph.inputs], traits).steps:
            wanted[(step.program, step.options, step.kernel)] = None
    steps.start(f"compiling {len(wanted)} programs on {device.name}", len(wanted))
    for program, options, kernel in wanted:
        context.programs.get(program, options=options, kernel=kernel)
        steps.advance()


def _programs_per_device(binary: Path) -> collections.Counter:
    with opened(binary) as cache:
        return collections.Counter(cache.devices[e.device] for e in cache.entries)


def _model_entry(spec: ModelSpec, converted: Path, outputs: dict[str, tuple[int, ...]]) -> dict:
    return {"name": spec.name, "source": spec.path.name, "sha256": spec.sha256,
            "file": converted.name, "data_type": spec.data_type,
            "inputs": [{"name": n, "shape": list(s)} for n, s in spec.inputs.items()],
            "outputs": [{"name": n, "shape": list(s)} for n, s in outputs.items()]}


def _file_entry(path: Path, output: Path) -> dict:
    return {"path": str(path.relative_to(output)), "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
