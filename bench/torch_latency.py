"""Latency of macecl on a GPU against PyTorch on the same GPU (CUDA, FP32, batch 1), same run.

The ONNX model becomes a torch module through onnx2torch; TF32 is off, so both compute in
FP32. Both sides take NumPy in and give NumPy out (the host-device copies are in both
figures, as `Engine.run` includes them).
Each model: one macecl engine (default local sizes, then tuned ones if --tune), PyTorch
eager under `torch.inference_mode`, and, unless --no-compile, `torch.compile` of the same
module with its reshapes made static (`with_static_shapes`); a warm-up each, then --rounds
timed runs of each, in turns of settling runs and --block timed runs
(macecl.benchmark.alternating_blocks). Medians and ratios against PyTorch eager (below 1:
macecl is faster).

    python bench/torch_latency.py [--rounds 20] [--block 3] [--models squeezenet,ppocr_rec]
                                  [--device NVIDIA] [--no-compile] [--tune] [--json OUT]
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from latency import chosen_models, random_feeds  # a sibling script, not a package

from macecl.benchmark import alternating_blocks, median_ms, stopwatch


def with_initializers(model, shapes: dict | None = None):
    """onnx2torch reads weights from initializers only; exporters (Paddle2ONNX) also put them
    in Constant nodes, and the ONNX light models make them with ConstantOfShape of a stored
    shape: turn both into initializers."""
    from onnx import numpy_helper

    graph = model.graph
    stored = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in list(graph.node):
        value = next((numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"),
                     None)
        if node.op_type == "Constant" and value is not None and len(node.attribute) == 1:
            array = value
        elif node.op_type == "ConstantOfShape" and node.input[0] in stored:
            fill = value if value is not None else np.zeros(1, np.float32)
            array = np.full(stored[node.input[0]].astype(np.int64), fill.ravel()[0], fill.dtype)
        else:
            continue
        graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
        graph.node.remove(node)
    # Dropout is the identity at inference, and onnx2torch lacks its opset-7 form.
    for node in [n for n in graph.node if n.op_type == "Dropout"]:
        for other in graph.node:
            other.input[:] = [node.input[0] if name == node.output[0] else name
                              for name in other.input]
        graph.node.remove(node)
    # onnx2torch reads the ranks of pooling and normalization inputs from value_info; the
    # light models carry value_info without dims, which inference would keep: infer anew.
    import onnx

    # Weights listed as graph inputs too (IR 3) would hide their shapes from inference.
    del graph.value_info[:]
    weights = {t.name for t in graph.initializer}
    for value in [v for v in graph.input if v.name in weights]:
        graph.input.remove(value)
    model.ir_version = max(model.ir_version, 4)
    for value in graph.input:  # the bench's fixed input shapes, as macecl gets them
        if value.name in (shapes or {}):
            dims = value.type.tensor_type.shape.dim
            del dims[:]
            for size in shapes[value.name]:
                dims.add().dim_value = size
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    return with_measured_shapes(model, shapes or {})


def with_measured_shapes(model, shapes: dict):
    """Shapes inference could not give (PP-OCR rec's reshapes), measured with ONNX Runtime."""
    import onnx
    import onnxruntime

    graph = model.graph
    known = {v.name for v in [*graph.value_info, *graph.input, *graph.output]
             if v.type.tensor_type.shape.dim}
    weights = {t.name for t in graph.initializer}
    missing = sorted({name for node in graph.node for name in node.input
                      if name and name not in known and name not in weights})
    if not missing:
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in missing)
    session = onnxruntime.InferenceSession(probe.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros(shapes.get(i.name) or [d.dim_value for d in
                                                      i.type.tensor_type.shape.dim], np.float32)
             for i in graph.input}
    for name, value in zip(missing, session.run(missing, feeds)):
        graph.value_info.append(onnx.helper.make_tensor_value_info(name, 1, value.shape))
    return model


def with_static_shapes(module, feeds: dict[str, np.ndarray], device):
    """onnx2torch's Reshape and Expand build ``torch.Size`` from a shape tensor, which dynamo
    cannot trace ("torch.Size() takes an iterable of 'int' (item 0 is 'FakeTensor')"). The
    bench's shapes are fixed, as macecl's plan is: record each one's output shape in one eager
    run and put a module with that shape as Python ints in its place, as a hand-written torch
    model would have it."""
    import torch
    from onnx2torch.node_converters.expand import OnnxExpand
    from onnx2torch.node_converters.reshape import OnnxReshape

    class StaticReshape(torch.nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = tuple(shape)

        def forward(self, tensor, _shape=None):
            return tensor.reshape(self.shape)

    class StaticExpand(StaticReshape):
        def forward(self, tensor, _shape=None):
            return tensor.expand(self.shape).contiguous()

    replacements = {OnnxReshape: StaticReshape, OnnxExpand: StaticExpand}
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [sub.register_forward_hook(
                 lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape)))
             for name, sub in module.named_modules() if type(sub) in replacements]
    torch_runner(module, device)(feeds)
    for hook in hooks:
        hook.remove()
    for name, shape in seen.items():
        parent, _, child = name.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        setattr(owner, child, replacements[type(owner.get_submodule(child))](shape))
    return module


def torch_runner(module, device):
    import torch

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            args = [torch.from_numpy(a).to(device) for a in feeds.values()]
            result = module(*args)
            results = result if isinstance(result, (tuple, list)) else [result]
            return [r.cpu().numpy() for r in results]

    return run


def measure(name: str, path: Path, shapes: dict, args, directory: Path) -> dict:
    import onnx
    import onnx2torch
    import torch

    import macecl

    context = (macecl.GPUContextBuilder().set_device(args.device).set_profiling(args.tune)
               .set_storage_path(directory).finalize())
    engine = macecl.Engine(path, context=context, input_shapes=shapes or None)
    feeds = random_feeds(engine.inputs, shapes)
    runners = {"macecl": lambda f: list(engine.run(f).values())}
    if args.tune:
        tuned = macecl.Engine(path, context=context, input_shapes=shapes or None)
        tuned.tune(feeds, repeats=3)
        runners["macecl tuned"] = lambda f: list(tuned.run(f).values())
    device = torch.device("cuda")
    # FP32 as macecl computes it: cuDNN and cuBLAS would otherwise use TF32 on Ampere and later.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    module = onnx2torch.convert(with_initializers(onnx.load(str(path)), shapes)).to(device).eval()
    runners["torch eager"] = torch_runner(module, device)
    compile_seconds = None
    compile_error = None
    if not args.no_compile:
        compiled = torch.compile(with_static_shapes(copy.deepcopy(module), feeds, device))
        started = time.perf_counter()
        try:
            torch_runner(compiled, device)(feeds)
            compile_seconds = time.perf_counter() - started
            runners["torch.compile"] = torch_runner(compiled, device)
        except Exception as error:  # dynamo cannot trace some onnx2torch modules
            compile_error = f"{type(error).__name__}: {error}".splitlines()[0][:200]
    reference = runners["torch eager"](feeds)
    errors = {}
    for runner_name, run in runners.items():
        got = run(feeds)  # also the warm-up
        errors[runner_name] = max(float(np.max(np.abs(g - r)) / max(np.max(np.abs(r)), 1e-12))
                                  for g, r in zip(got, reference))
    timed = {runner_name: stopwatch(functools.partial(run, feeds))
             for runner_name, run in runners.items()}
    medians = median_ms(alternating_blocks(timed, args.rounds, args.block))
    engine.close()
    context.close()
    return {"device": context.device.name, "ms": medians,
            "ratio_to_eager": {k: v / medians["torch eager"] for k, v in medians.items()},
            "relative_error_to_eager": errors, "compile_seconds": compile_seconds,
            "compile_error": compile_error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=3, help="timed runs back to back per turn")
    parser.add_argument("--models", help="comma-separated names (default: all)")
    parser.add_argument("--device", default="NVIDIA")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    parser.add_argument("--tune", action="store_true", help="also macecl with tuned local sizes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    models = chosen_models(args.models)
    console = Console(width=180)
    results = {}
    with tempfile.TemporaryDirectory(prefix="macecl-torch-") as scratch:
        for name, (path, shapes) in models.items():
            try:
                results[name] = measure(name, path, shapes, args, Path(scratch) / name)
            except Exception as error:  # one model's failure must not hide the others
                results[name] = {"error": f"{type(error).__name__}: {error}"[:300]}
            console.print(name, json.dumps(results[name]), highlight=False, soft_wrap=True)
    runners = sorted({k for r in results.values() for k in r.get("ms", {})},
                     key=["macecl", "macecl tuned", "torch eager", "torch.compile"].index)
    table = Table(title=f"median latency ms, {args.rounds} runs (blocks of {args.block}); "
                        "(ratio to torch eager)")
    table.add_column("model")
    for runner in runners:
        table.add_column(runner, justify="right")
    for name, r in results.items():
        if "error" in r:
            table.add_row(name, r["error"][:80])
            continue
        table.add_row(name, *(f"{r['ms'][k]:.2f} ({r['ratio_to_eager'][k]:.2f}x)"
                              if k in r["ms"] else "-" for k in runners))
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
