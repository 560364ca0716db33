"""The GEMM launches of the bench models, layer by layer: conv2d_gemm's ways against ONNX
Runtime (MLAS) on the same product. The measurements behind ops/conv.py's gemm_block.

Every distinct ``conv2d_gemm`` launch that the engine plans for the models (1x1
convolutions straight on their input, im2col'd ones with PACKED_COLS, Winograd's T * T
GEMMs as groups) is rebuilt on random data and timed in each way (a register block and
build options of conv2d.cl), interleaved: --rounds times, each way in turn does untimed
settling runs (0.1 s) and --block timed ones (kernel time from OpenCL profiling events).
ONNX Runtime runs the same product as a MatMul (MLAS's SGEMM) and an Add of the bias,
timed by host wall clock the same way (in blocks: its intra-op threads spin after a run,
macecl.benchmark.alternating_blocks; a one-Conv model of a (K, 1, P) image took up to 10x
as long on some shapes, not MLAS's GEMM). Prints per launch the median ms
and GF/s of each way and checks every way against NumPy; then, per model, the sum over
its launches (median times the launch count).

    python bench/gemm_kernels.py [--models squeezenet,resnet50,ppocr_rec] [--rounds 7]
                                 [--block 3] [--ways "8x2,chosen"] [--ort-threads 2]
                                 [--device SELECTOR]

What it showed (PoCL 3.0 wheel, this 2-core Sapphire Rapids shared with two other jobs'
benchmarks and tests; `--rounds 5`; ms summed over a model's launches; `pf`: -DPREFETCH=16;
`chosen`: gemm_block's PX and prefetch per launch), the final run at load 3.2-3.6:

                    8x2 (before)  8x2 pf  8x3 pf  chosen  ONNX Runtime
    squeezenet      4.12          4.09    4.64    4.10    5.79
    resnet50        55.53         52.46   64.89   52.57   103.37
    ppocr_rec       8.53          8.60    8.40    8.34    10.27

Per launch (same run), where the ways differ most:

                                           8x2    8x2 pf  8x3 pf  chosen
    resnet 64<-147 x 12544, packed (7x7/2) 2.691  2.429   2.268   2.110
    resnet 128<-1152 x 784, packed         1.860  1.514   1.538   1.573
    resnet 512<-2048 x 49                  1.002  0.884   1.482   0.875
    rec 60<-2880 x 40, packed              0.146  0.135   0.102   0.102
    rec 480<-480 x 480                     1.473  1.483   1.413   1.399
    squeezenet 256<-64 x 49, 16 GEMMs      0.227  0.231   0.334   0.230
    rec 480<-120 x 40                      0.045  0.047   0.097   0.048
    squeezenet 64<-27 x 12321, packed      0.452  0.528   0.674   0.542   (a loss)

8x3 loses where P pads further (49 pixels: 96 computed for 64 at 8x2) or where unpacked P
is below 48 (the lane-by-lane path); gemm_block leaves those at 8x2. Launch to launch the
runs moved by up to 10% (the same build, `8x2 pf` and `chosen` on 256<-64 x 3136, read
0.817 and 0.896 ms). An earlier run (load 4.5-6) had squeezenet 4.30 / 4.15 / 4.53 and
rec 9.49 / 8.82 / 8.46 for the first three ways, and two more: `walk`, one work item
computing every channel block of its pixels (a loop around the block), 3.99 and 9.32 at
8x2 pf, 4.56 and 8.86 at 8x3 pf: squeezenet gained 4%, rec lost 6% (240<-240 x 960 0.880
against 0.807 ms), so it was dropped. ResNet-50 in a run before that (load 4.6, the kernel
with -DCO_BLOCK as an option too): 8x2 60.7, 8x2 pf 55.4, 6x4 pf 71.1 (its 64-pixel block
pads P = 49 to 64 lane by lane: 2.26 against 0.96 ms on 2048<-512 x 49), 8x3 pf 60.8,
8x2 pf walk 54.6.

Other blocks, a first sweep on a few shapes (median of 7, load 4; ms: 64<-256 x 3136 /
512<-2048 x 49 / 240<-240 x 960): 8x2 1.55 / 1.46 / 1.05, 4x4 1.16 / 3.58 / 1.00, 6x4
1.23 / 2.40 / 0.92, 12x2 1.65 / 1.49 / 1.11, 16x1 2.31 / 1.75 / 1.36, 8x3 1.39 / 1.49 /
1.00: none wins throughout, 16-channel blocks lose. The GEMM loop PoCL generates (objdump of
the .so that POCL_LEAVE_KERNEL_COMPILER_TEMP_FILES=1 leaves, at 8x2) is what it should be:
per k two vector loads, eight vbroadcastss from the packed weights and 16 vfmadd231ps, all
accumulators in registers. On one thread (POCL_MAX_PTHREAD_COUNT=1) 480<-480 x 480 and
128<-512 x 784 ran at 156-170 GF/s, about one core's FMA peak at 2.6 GHz (2 x 16 x 2 x 2.6
= 166), and two threads did no better under that load: what is left of the gap to ONNX
Runtime on whole models is the second core (scheduling, the shared machine), not this loop.

ONNX Runtime's MatMul, one layer a session, was slower per launch than the kernel on most
of these shapes in these runs (its time is a whole session run's, host clock), while on
whole models it is faster; where that difference comes from was not measured here.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("PYOPENCL_NO_CACHE", "1")

import numpy as np
import pyopencl as cl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conv_kernels
from conv_kernels import onnxruntime_layer
from latency import chosen_models

from macecl.benchmark import alternating_blocks
from macecl.converter import convert
from macecl.engine.plan import make_plan
from macecl.ops.conv import GEMM_PREFETCH, gemm_block, pack_filter_array
from macecl.ops.traits import DeviceTraits
from macecl.runtime.device import select_device

# way: the conv2d.cl build options that make it: the register block is 8 channels by PX
# float vectors of pixels; PREFETCH rows ahead. `chosen`: ops/conv.py's gemm_block.
WAYS = {
    "8x1 pf": {"PX": 1, "PREFETCH": GEMM_PREFETCH},
    "8x2": {"PX": 2},
    "8x2 pf": {"PX": 2, "PREFETCH": GEMM_PREFETCH},
    "8x3 pf": {"PX": 3, "PREFETCH": GEMM_PREFETCH},
    "chosen": None,
}
CHANNELS = 8  # CO_BLOCK in conv2d.cl


def gemm_launches(models: str, traits: DeviceTraits) -> dict[str, collections.Counter]:
    """model -> Counter of its conv2d_gemm launches as (M, K, P, groups, batch_groups,
    packed cols)."""
    found = {}
    for name, (path, shapes) in chosen_models(models).items():
        graph = convert(path, input_shapes=shapes or None)
        inputs = [tuple(shapes.get(s.name) or [d if isinstance(d, int) else 1 for d in s.shape])
                  for s in graph.inputs]
        counts = collections.Counter()
        for step in make_plan(graph, inputs, traits).steps:
            if step.kernel != "conv2d_gemm":
                continue
            sizes = [int(a) for a in step.args
                     if isinstance(a, np.integer) or (hasattr(a, "dtype") and a.dtype.kind == "i")]
            counts[(*sizes[:5], "-DPACKED_COLS" in step.options)] += 1
        found[name] = counts
    return found


def packed_cols(x: np.ndarray, span: int) -> np.ndarray:
    """(batch_groups, K, P) as im2col writes it: (batch_groups, ceil(P / span), K, span)."""
    g, k, p = x.shape
    blocks = -(-p // span)
    padded = np.zeros((g, k, blocks * span), np.float32)
    padded[:, :, :p] = x
    return np.ascontiguousarray(padded.reshape(g, k, blocks, span).transpose(0, 2, 1, 3))


class Runner(conv_kernels.Runner):
    """conv_kernels.py's context, queue, program and buffer cache, on conv2d_gemm alone."""

    def program(self, options: str):
        return super().program("conv2d", options)

    def way(self, launch, data, build: dict):
        """(run -> ms, read -> output) of conv2d_gemm built with ``build`` on ``launch``."""
        m, k, p, groups, batch_groups, packed = launch
        weights, x, bias = data
        channels, vectors = CHANNELS, int(build["PX"])
        span = self.vw * vectors
        options = [f"-DVW={self.vw}", "-DHAS_BIAS", *(f"-D{n}={v}" for n, v in build.items()),
                   *(["-DPACKED_COLS"] if packed else [])]
        kernel = cl._cl.Kernel(self.program(" ".join(options)), "conv2d_gemm")
        out = self.buffer(size=batch_groups * m * p)
        args = [self.buffer(pack_filter_array(weights, groups, channels)),
                self.buffer(packed_cols(x, span) if packed else x), self.buffer(bias), None, out,
                *map(np.int32, (m, k, p, groups, batch_groups)), np.float32(0), np.float32(0),
                np.int32(0)]
        kernel.set_args(*args)
        grid = (-(-m // channels), -(-p // span), batch_groups)

        def run(args=args) -> float:  # the buffers live as long as the closure
            event = cl.enqueue_nd_range_kernel(self.queue, kernel, grid, (1, 1, 1))
            event.wait()
            return (event.profile.end - event.profile.start) * 1e-6

        def read() -> np.ndarray:
            host = np.empty(batch_groups * m * p, np.float32)
            cl.enqueue_copy(self.queue, host, out)
            return host

        return run, read


def layer_data(launch):
    """Weights (groups * M, K), cols (batch_groups, K, P) and bias of a launch; the NumPy
    product, (batch_groups, M, P) flattened."""
    m, k, p, groups, batch_groups, _ = launch
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((groups * m, k)) / np.sqrt(k)).astype(np.float32)
    x = rng.standard_normal((batch_groups, k, p)).astype(np.float32)
    bias = rng.standard_normal(groups * m).astype(np.float32)
    w = weights.reshape(groups, m, k)[np.arange(batch_groups) % groups]
    expected = np.einsum("gmk,gkp->gmp", w, x) + bias.reshape(groups, m, 1)[
        np.arange(batch_groups) % groups]
    return (weights, x, bias), expected.ravel()


def onnxruntime_way(launch, data, threads: int):
    """The product as MatMul + Add on ONNX Runtime (MLAS's SGEMM): (run -> ms, output)."""
    from onnx import helper

    m, k, _, groups, batch_groups, _ = launch
    weights, x, bias = data
    nodes = [helper.make_node("MatMul", ["w", "x"], ["t"]),
             helper.make_node("Add", ["t", "b"], ["y"])]
    pick = np.arange(batch_groups) % groups  # a batch of images of one group: weights repeat
    return onnxruntime_layer(nodes, x, weights.reshape(groups, m, k)[pick],
                             bias.reshape(groups, m, 1)[pick], threads, opset=13)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="squeezenet,resnet50,ppocr_rec")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block", type=int, default=3)
    parser.add_argument("--ways", default="", help="comma-separated names of WAYS (all: none)")
    parser.add_argument("--ort-threads", type=int, default=2,
                        help="ONNX Runtime's intra-op threads (0: not timed)")
    parser.add_argument("--device", default=None)
    options = parser.parse_args()
    device = select_device(options.device).cl_device
    traits = DeviceTraits.of(device)
    runner = Runner(device, traits)
    ways = {n: WAYS[n] for n in options.ways.split(",") if n} or WAYS
    print(f"{device.name}: {traits}", flush=True)
    for model, launches in gemm_launches(options.models, traits).items():
        totals = collections.Counter()
        for launch, count in sorted(launches.items()):
            data, expected = layer_data(launch)
            runs, reads = {}, {}
            for name, build in ways.items():
                if build is None:
                    vectors, chosen = gemm_block(traits, launch[2], launch[5])
                    build = {"PX": vectors, **dict(o[2:].split("=") for o in chosen)}
                runs[name], reads[name] = runner.way(launch, data, build)
            if options.ort_threads:
                ort_run, ort_out = onnxruntime_way(launch, data, options.ort_threads)
                runs["onnxruntime"] = ort_run
            started = time.perf_counter()
            times = alternating_blocks(runs, options.rounds * options.block, options.block)
            medians = {name: statistics.median(ms) for name, ms in times.items()}
            wrong = [n for n, read in reads.items()
                     if not np.allclose(read(), expected, rtol=1e-3, atol=1e-3)]
            if options.ort_threads and not np.allclose(ort_out, expected, rtol=1e-3, atol=1e-3):
                wrong.append("onnxruntime")
            m, k, p, _, batch_groups, packed = launch
            flops = 2 * m * k * p * batch_groups
            for name, ms in medians.items():
                totals[name] += ms * count
            cells = "  ".join(f"{n} {ms:.3f} ({flops / ms * 1e-6:.0f})" for n, ms in medians.items())
            print(f"{model} M{m} K{k} P{p} x{batch_groups}{' packed' if packed else ''} "
                  f"[{count}]: {cells}{'  WRONG: ' + ', '.join(wrong) if wrong else ''}"
                  f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        print(f"{model} total: " + "  ".join(f"{n} {ms:.2f}" for n, ms in totals.items()),
              flush=True)


if __name__ == "__main__":
    main()
