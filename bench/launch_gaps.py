"""What the time between kernels is made of: our Python, pyopencl's enqueue, or the driver.

Three measurements, each a median over --rounds:

1. A chain of --chain launches of a trivial kernel in pyopencl directly (no macecl): the
   host cost of one clEnqueueNDRangeKernel through pyopencl, and the driver's cost per
   command once they are queued (enqueue all, then finish).
2. For each model, the engine's launches enqueued in a bare loop (kernels and arguments
   already bound, as ``Engine._execute`` has them after the first run): the host cost per
   launch of the run path, to compare with (1).
3. For each model, one run on a profiling queue: device time (sum of the kernels' start to
   end), the gaps between one kernel's end and the next one's start, by the kernel that
   follows, and what remains of the wall time (input and output copies, the first launch).

    python bench/launch_gaps.py ppocr_rec,ppocr_cls [--rounds 7] [--chain 200]

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
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", help="comma-separated names of bench/latency.py's models")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--chain", type=int, default=200, help="trivial launches per round")
    options = parser.parse_args()
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
