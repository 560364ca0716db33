"""Models macecl was not tuned on: torchvision's architectures, against ONNX Runtime (CPU).

Each model is built with random weights (torch.manual_seed(0); no download), exported by
torch.onnx's TorchScript exporter at opset 17 to --dir (kept there for the next run), then
run by macecl and by ONNX Runtime (--threads intra-op threads) on one N(0, 1) input:
the largest difference of the outputs relative to ONNX Runtime's largest, and the median
latency of each over --rounds timed runs in alternating blocks (macecl.benchmark), with the
ratio macecl / ONNX Runtime. A model macecl refuses prints the reason instead.

    python bench/torchvision_zoo.py [--models mobilenet_v2,convnext_tiny] [--rounds 9]
                                    [--threads 2] [--dir /tmp/macecl-zoo]

Needs torch and the torchvision built for it (neither is a dependency of macecl's). The
segmentation models (fcn_*, deeplabv3_*, lraspp_*) are exported with their "out" output
only; inception_v3 takes 299x299.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from macecl.benchmark import alternating_blocks, median_ms, stopwatch

MODELS = ("squeezenet1_1,mobilenet_v2,mobilenet_v3_small,mobilenet_v3_large,efficientnet_b0,"
          "efficientnet_v2_s,mnasnet1_0,shufflenet_v2_x1_0,regnet_x_400mf,regnet_y_400mf,"
          "resnet18,resnext50_32x4d,densenet121,googlenet,inception_v3,alexnet,vgg11_bn,"
          "convnext_tiny,swin_t,maxvit_t,lraspp_mobilenet_v3_large,deeplabv3_mobilenet_v3_large,"
          "fcn_resnet50")
SEGMENTATION = ("fcn_", "deeplabv3_", "lraspp_")


def export(name: str, directory: Path) -> Path:
    """``name``'s ONNX file in ``directory``, exported on first use."""
    path = directory / f"{name}.onnx"
    if path.exists():
        return path
    import torch
    from torchvision import models

    torch.manual_seed(0)
    if name.startswith(SEGMENTATION):
        net = getattr(models.segmentation, name)(weights=None, weights_backbone=None)

        class Out(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x)["out"]

        net = Out(net)
    elif name in ("googlenet", "inception_v3"):
        net = getattr(models, name)(weights=None, aux_logits=False, init_weights=True)
    else:
        net = getattr(models, name)(weights=None)
    directory.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(net.eval(), torch.randn(1, 3, *input_size(name)), str(path),
                          dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"])
    return path


def input_size(name: str) -> tuple[int, int]:
    return (299, 299) if name == "inception_v3" else (224, 224)


def compare(path: Path, size: tuple[int, int], rounds: int, threads: int) -> dict:
    import onnxruntime

    import macecl

    x = np.random.default_rng(1).standard_normal((1, 3, *size)).astype(np.float32)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    reference = onnxruntime.InferenceSession(str(path), options,
                                             providers=["CPUExecutionProvider"])
    want = reference.run(None, {"x": x})[0]
    started = time.perf_counter()
    with macecl.Engine(path) as engine:
        got = engine.run({"x": x})["y"]
        first = time.perf_counter() - started
        medians = median_ms(alternating_blocks({
            "macecl": stopwatch(lambda: engine.run({"x": x})),
            "onnxruntime": stopwatch(lambda: reference.run(None, {"x": x}))}, rounds))
    error = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-30))
    return {"error": error, "first_run_s": first, **medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/macecl-zoo"))
    options = parser.parse_args()
    import macecl

    for name in options.models.split(","):
        try:
            r = compare(export(name, options.dir), input_size(name), options.rounds,
                        options.threads)
        except macecl.UnsupportedModelError as error:
            print(f"{name:30s} refused: {error}".splitlines()[0])
            continue
        print(f"{name:30s} error {r['error']:.1e}  macecl {r['macecl']:8.2f} ms  "
              f"ONNX Runtime {r['onnxruntime']:8.2f} ms  ratio "
              f"{r['macecl'] / r['onnxruntime']:5.2f}  first run {r['first_run_s']:5.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
