"""What the time between kernels is made of: our Python, pyopencl's enqueue, or the driver.

Four measurements, each a median over --rounds:

1. A chain of --chain launches of a trivial kernel in pyopencl directly (no macecl): the
   host cost of one clEnqueueNDRangeKernel through pyopencl, and the driver's cost per
   command once they are queued (enqueue all, then finish).
2. For each model, the engine's launches enqueued in a bare loop (kernels and arguments
   already bound, as ``Engine._execute`` has them after the first run): the host cost per
   launch of the run path, to compare with (1).
3. For each model, one run on a profiling queue: device time (sum of the kernels' start to
   end), the gaps between one kernel's end and the next one's start, by the kernel that
   follows, and what remains of the wall time (input and output copies, the first launch).
4. With --pocl-threads 1,2: (3) again in a fresh process per count of PoCL worker threads
   (POCL_MAX_PTHREAD_COUNT, read when PoCL starts), and one lone kernel, a grouped 1x1
   convolution (ShuffleNet's 240 -> 240 in 4 groups on 28x28, conv2d_gemm), at batch 1 and
   at batch 20, whose twenty times the work shows what the second thread gives once it is
   awake: how much of the device's two cores a model's short kernels get.

    python bench/launch_gaps.py ppocr_rec,ppocr_cls [--rounds 7] [--chain 200]
                                [--pocl-threads 1,2]

Figures (PoCL 3.0 on the 2-core Xeon; session 5). On a quiet machine, before the
converter's LayerNorm / Swish / MatMul-bias / HardSwish-affine fusions (an ad-hoc first
version of this script):

    chain of 200 trivial launches: enqueue 3.3-3.9 us each, enqueue + run 4.7-5.5 us each
    ppocr_rec 191 launches: bare enqueue loop 3.8 us per launch (0.72 ms in all);
              wall 22.6 ms, device 20.4 ms, gaps 1.5 ms (median 3.8 us; 77 gaps before
              binary_rows: 0.67 ms), 0.7 ms before the first and after the last kernel
    ppocr_cls 76 launches: bare enqueue loop 5.2 us per launch; wall 2.7 ms, device 1.5 ms,
              gaps 1.0 ms (median 14.8 us)

`PYTHONPATH=TREE python bench/launch_gaps.py ppocr_rec,ppocr_cls --rounds 7`, the tree
before the fusions (main at b56b643) and after, alternated twice under load (load average
4.2-4.6, the other helpers' jobs and a test run), in that order:

    trivial chain, enqueue / + run (us):  1.5 / 2.4,  0.8 / 1.4,  1.3 / 2.0,  1.2 / 6.9
    ppocr_rec before: 191 launches, gaps 1.31 and 4.85 ms (wall 34.0 and 55.2 ms)
              after:   89 launches, gaps 0.39 and 0.88 ms (wall 43.3 and 48.7 ms; device
              time, 32-49 ms in all four runs, is the convolutions' and swings with the load)
    ppocr_cls before and after: 76 / 75 launches, gaps 0.08-0.26 ms, wall 1.9-2.0 ms

The host's share is pyopencl's own enqueue (0.5-1.8 us on the trivial kernel, whether
through pyopencl.Kernel or the raw class, with or without a profiling queue), to which
macecl's run loop adds nothing worth cutting; the driver's own cost per command is a few
microseconds when the cores are free. What remains is the number of launches, and under
load how long each waits: with every core busy a command ends only when PoCL's worker
threads have all been scheduled again, which is where the brief's 48 us per launch and
cls at 10-12 ms instead of 2 ms (bench/latency.py, load average 4.7-5.9) come from.

PoCL's second worker thread (session 14, quiet machine, `POCL_KERNEL_CACHE=0 python
bench/launch_gaps.py shufflenet,squeezenet,resnet50 --rounds 9 --pocl-threads 1,2`, then
shufflenet,squeezenet again at --rounds 15), ms, 1 thread / 2 threads:

    shufflenet  device 3.85 / 3.36 (x1.14) and 3.76 / 3.13 (x1.20); gaps 0.14 / 0.75, 0.47
    squeezenet  device 7.04 / 5.07 (x1.39) and 6.87 / 4.60 (x1.49); gaps 0.15 / 0.55, 0.50
    resnet50    device 74.7 / 42.5 (x1.76); gaps 0.73 / 1.52
    lone grouped 1x1 conv  batch 1: 0.225 / 0.127 and 0.199 / 0.131;
                           batch 20: 5.85 / 2.81 and 5.75 / 2.94 (x2.0)

Two cores give a kernel twice the speed only when it is long: ResNet-50's layers get 1.76x,
ShuffleNet's (35-85 us each with two threads) 1.14-1.20x, and the second thread more than
triples the gaps. Per kernel in ShuffleNet (a one-off script: Engine.profile, median of 21
profiles, one process per thread count): its 30-work-group depthwise_rows x0.97-1.07, pool_rows (7, 5) x0.63, the 252-group
stage-3 conv2d_gemm (55 us) x1.18-1.24, the 136-group stage-4 conv2d_gemm (52 us) x1.53-2.04,
the 1000-group classifier gemm x2.21. The likely reading (PoCL's pthread scheduler; the wake
itself was not timed): a worker that found no work sleeps on a condition variable, the one
that finishes a kernel starts the next, and the sleeper joins only once woken, which this
pattern puts at a few tens of microseconds on this virtual machine, so a kernel that short
is mostly over before its second thread joins. The driver sets this, not our enqueue (a bare
enqueue loop costs 4 us a launch). Tried without gain (bench/latency.py,
alternated): releasing the whole run at once behind a user event, polling the last command
with sched_yield instead of clFinish, two SCHED_IDLE busy processes keeping both cores awake
(gaps 0.49 -> 1.00 ms), PoCL's POCL_AFFINITY, 1 and 3 worker threads, and every launch of
at most 64 (or 300) work items as one work-group, so that one thread runs it and the other
is not woken (ShuffleNet 4.0-4.2 -> 4.6-4.7 (5.2-6.2) ms, SqueezeNet 5.6-5.7 -> 6.1 (6.6-6.9)).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import chosen_models, random_feeds

TRIVIAL = """
__kernel void touch(__global float* a, const int n)
{
    const int i = get_global_id(0);
    if (i < n) a[i] += 1.0f;
}
"""


def trivial_chain(count: int, rounds: int) -> dict:
    """us per launch of a trivial kernel through pyopencl: enqueue only, and until done."""
    from macecl.runtime.context import GPUContextBuilder
    from macecl.runtime.opencl import cl

    with GPUContextBuilder().finalize() as owner:
        return _chain(cl, owner.cl_context, owner.device.cl_device, count, rounds)


def _chain(cl, context, device, count: int, rounds: int) -> dict:
    queue = cl.CommandQueue(context, device)
    program = cl._cl._Program(context, TRIVIAL)  # uncached, as macecl builds its programs
    program.build(b"")
    kernel = cl._cl.Kernel(program, "touch")
    buffer = cl.Buffer(context, cl.mem_flags.READ_WRITE, 4 * 64)  # kept alive: the kernel
    kernel.set_args(buffer, np.int32(64))                            # holds no reference
    enqueue, total = [], []
    for _ in range(rounds):
        queue.finish()
        started = time.perf_counter()
        for _ in range(count):
            cl.enqueue_nd_range_kernel(queue, kernel, (64,), None)
        queued = time.perf_counter()
        queue.finish()
        done = time.perf_counter()
        enqueue.append((queued - started) / count * 1e6)
        total.append((done - started) / count * 1e6)
    return {"enqueue_us": statistics.median(enqueue), "total_us": statistics.median(total)}


def model_gaps(path: Path, shapes: dict, rounds: int) -> dict:
    import macecl

    with macecl.Engine(path, profiling=True) as engine:
        feeds = random_feeds(engine.inputs, shapes)
        engine.run(feeds)
        arrays = [feeds[s.name] for s in engine.inputs]
        prepared = engine._prepare(tuple(a.shape for a in arrays))
        queue = engine.context.queue
        loops = []
        for _ in range(rounds):
            queue.finish()
            started = time.perf_counter()
            for key, _, global_size, local_size in prepared.launches:
                engine._kernels[key].launch(queue, global_size, local_size)
            loops.append(time.perf_counter() - started)
            queue.finish()
        runs = []
        for _ in range(rounds):
            started = time.perf_counter()
            events = engine._execute(prepared.plan.shapes, arrays, keep_events=True)
            runs.append((time.perf_counter() - started, events))
        runs.sort(key=lambda run: run[0])
        wall, events = runs[len(runs) // 2]
        steps = prepared.plan.steps
    starts = [e.profile.start for e in events]
    ends = [e.profile.end for e in events]
    gaps = [(starts[i + 1] - ends[i]) * 1e-3 for i in range(len(events) - 1)]
    by_next = collections.defaultdict(list)
    for i, gap in enumerate(gaps):
        by_next[steps[i + 1].kernel].append(gap)
    device = sum(e - s for s, e in zip(starts, ends)) * 1e-6
    return {"launches": len(events), "enqueue_us": statistics.median(loops) / len(events) * 1e6,
            "wall_ms": wall * 1e3, "device_ms": device, "gaps_ms": sum(gaps) * 1e-3,
            "median_gap_us": statistics.median(gaps) if gaps else 0.0,
            "by_next": {k: (len(v), sum(v) * 1e-3) for k, v in by_next.items()}}


def lone_kernel_ms(batch: int, rounds: int) -> float:
    """Median device ms of one grouped 1x1 convolution, 240 -> 240 channels in 4 groups on
    28x28 (ShuffleNet's stage 2), with bias and Relu, at ``batch`` images."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import macecl

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((240, 60, 1, 1), np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal(240).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=4),
             helper.make_node("Relu", ["c"], ["y"])]
    shape = [batch, 240, 28, 28]
    graph = helper.make_graph(nodes, "lone", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], weights)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lone.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        with macecl.Engine(path, profiling=True) as engine:
            feeds = {"x": rng.random(shape, dtype=np.float32)}
            engine.run(feeds)
            return statistics.median(sum(row["ms"] for row in engine.profile(feeds))
                                     for _ in range(rounds))


def measure_with_threads(models: str, rounds: int, threads: int) -> dict:
    """(3) and the lone kernel, in a fresh process whose PoCL has ``threads`` workers."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figures.json"
        env = {**os.environ, "POCL_MAX_PTHREAD_COUNT": str(threads)}
        subprocess.run([sys.executable, __file__, models, "--rounds", str(rounds),
                        "--figures-to", str(out)], env=env, check=True)
        return json.loads(out.read_text())


def print_thread_table(models: str, rounds: int, counts: list[int]) -> None:
    figures = {n: measure_with_threads(models, rounds, n) for n in counts}
    first = counts[0]
    print(f"PoCL worker threads {counts} (device speed-up against {first} thread"
          f"{'s' if first > 1 else ''}):")
    for name in figures[first]["models"]:
        for n in counts:
            r = figures[n]["models"][name]
            speedup = figures[first]["models"][name]["device_ms"] / r["device_ms"]
            print(f"  {name}, {n}: wall {r['wall_ms']:.2f} ms, device {r['device_ms']:.2f} ms "
                  f"(x{speedup:.2f}), gaps {r['gaps_ms']:.2f} ms over {r['launches']} launches")
    for batch in (1, 20):
        line = ", ".join(f"{n}: {figures[n]['lone'][str(batch)]:.3f} ms" for n in counts)
        print(f"  lone grouped 1x1 conv, batch {batch}: {line}")


def thread_counts(text: str) -> list[int]:
    """--pocl-threads: positive integers, comma-separated."""
    counts = [int(n) for n in text.split(",") if n.strip().isdigit() and int(n) > 0]
    if not counts or len(counts) != len(text.split(",")):
        raise argparse.ArgumentTypeError(f"expected thread counts such as 1,2, not {text!r}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", help="comma-separated names of bench/latency.py's models")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--chain", type=int, default=200, help="trivial launches per round")
    parser.add_argument("--pocl-threads", type=thread_counts, help="comma-separated PoCL worker "
                        "thread counts to compare, each in a fresh process (4. above)")
    parser.add_argument("--figures-to", help=argparse.SUPPRESS)  # that fresh process's output
    options = parser.parse_args()
    if options.figures_to:
        chosen = chosen_models(options.models).items()
        figures = {"models": {name: model_gaps(path, shapes, options.rounds)
                              for name, (path, shapes) in chosen},
                   "lone": {batch: lone_kernel_ms(batch, options.rounds) for batch in (1, 20)}}
        Path(options.figures_to).write_text(json.dumps(figures))
        return
    if options.pocl_threads:
        print_thread_table(options.models, options.rounds, options.pocl_threads)
        return
    chain = trivial_chain(options.chain, options.rounds)
    print(f"chain of {options.chain} trivial launches: enqueue {chain['enqueue_us']:.1f} us "
          f"each, enqueue + run {chain['total_us']:.1f} us each")
    for name, (path, shapes) in chosen_models(options.models).items():
        r = model_gaps(path, shapes, options.rounds)
        rest = r["wall_ms"] - r["device_ms"] - r["gaps_ms"]
        print(f"{name}: {r['launches']} launches; bare enqueue loop {r['enqueue_us']:.1f} us "
              f"per launch; wall {r['wall_ms']:.2f} ms, device {r['device_ms']:.2f} ms, gaps "
              f"{r['gaps_ms']:.2f} ms (median {r['median_gap_us']:.1f} us), rest {rest:.2f} ms")
        for kernel, (count, ms) in sorted(r["by_next"].items(), key=lambda kv: -kv[1][1])[:6]:
            print(f"    gaps before {kernel}: {count}, {ms:.2f} ms")


if __name__ == "__main__":
    main()
