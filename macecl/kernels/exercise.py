"""Every kernel-library program launched once: the start-up workload of the cache benchmark.

``start_up`` is one application start as a user lives it: pick the device, open the cache,
get each program (precompiled, cache or source), and launch each of its kernels once on a
small, real tensor. ``bench/init_latency.py`` runs it in fresh processes
(``python -m macecl.kernels.exercise CACHE [DEVICE]``).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from macecl.runtime.context import GPUContext, GPUContextBuilder
from macecl.runtime.opencl import cl


@dataclasses.dataclass(frozen=True)
class Launch:
    """One kernel launch: the program and its options, the kernel, its arguments, its size.

    Arguments are NumPy arrays (copied to device buffers), NumPy scalars, or None (a NULL
    buffer for an argument the options leave unused).
    """

    program: str
    options: tuple[str, ...]
    kernel: str
    args: tuple
    global_size: int | tuple[int, ...]  # work items per dimension
    local_size: tuple[int, ...] | None = None  # for a kernel that requires its work-group shape


def _i(*values: int) -> tuple:
    return tuple(np.int32(v) for v in values)


def _f(*values: float) -> tuple:
    return tuple(np.float32(v) for v in values)


def sample_launches() -> list[Launch]:
    """A small CNN's worth of launches covering every program of the kernel library."""
    rng = np.random.default_rng(0)

    def t(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    def meta(*rows: tuple[int, ...]) -> np.ndarray:
        return np.concatenate([np.asarray(r, np.int32) for r in rows])

    n, c, h, w = 1, 8, 16, 16
    x, out = t(n, c, h, w), np.zeros(n * c * h * w * 4, np.float32)
    total = n * c * h * w
    window = _i(3, 3, 1, 1, 1, 1, 1, 1)
    cols = np.zeros(c * 9 * h * w, np.float32)
    return [
        Launch("conv2d", ("-DVW=8",), "im2col", (x, cols, *_i(c, h, w, h, w), *window,
                                                 *_i(c * 9, n * c)), (n * c, h * w // 8)),
        Launch("conv2d", ("-DVW=8", "-DHAS_BIAS", "-DHAS_RESIDUAL", "-DACTIVATION=1",
                          "-DPACKED_COLS"),
               "conv2d_gemm", (t(c, c, 3, 3), cols, t(c), x, out, *_i(c, c * 9, h * w, 1, 1),
                               *_f(0, 0), np.int32(0)), (1, h * w // 16, 1)),
        Launch("conv2d", ("-DVW=8", "-DHAS_BIAS", "-DACTIVATION=7"), "depthwise_conv2d",
               (x, t(c, 1, 3, 3), t(c), None, out, *_i(c, h, w, c, h, w), *window,
                np.int32(n * c), *_f(0, 0)), (w // 8, h, n * c)),
        Launch("depthwise", ("-DVW=8", "-DHAS_BIAS", "-DACTIVATION=7"), "depthwise_rows",
               (x, t(c, 1, 3, 3), t(c), None, out, *_i(c, h, w, c, h, w, 1, 1, n * c, 2),
                *_f(0, 0)), (h // 4, n * c // 2)),
        Launch("depthwise", ("-DVW=8", "-DPOOL=2", "-DDW_SH=2", "-DDW_SW=2"), "pool_rows",
               (x, out, *_i(h, w, h // 2, w // 2, 1, 1, 0, h, 0, w, n * c, 2)),
               (h // 2 // 4, n * c // 2)),
        Launch("conv2d_tiled", ("-DTM=32", "-DTN=64", "-DHAS_BIAS"), "conv2d_tiled",
               (x, t(c, c, 3, 3), t(c), None, out, *_i(c, h, w, c, h, w), *window,
                *_i(1, n, 1), *_f(0, 0)), (h * w // 4, 8, n), local_size=(16, 8, 1)),
        Launch("conv_transpose2d", ("-DHAS_BIAS",), "conv_transpose2d",
               (x, t(c, c, 2, 2), t(c), out, *_i(n, c, h, w, c, 2 * h, 2 * w, 2, 2, 2, 2, 1, 1,
                                                   0, 0, 1), *_f(0, 0)), (2 * w, 2 * h, 1)),
        Launch("pooling", (), "max_pool2d",
               (x, out, *_i(n, c, h, w, h // 2, w // 2, 2, 2, 2, 2, 1, 1, 0, 0)),
               (w // 8, h // 2, n * c)),
        Launch("pooling", (), "avg_pool2d",
               (x, out, *_i(n, c, h, w, h, w, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0)),
               (w // 4, h, n * c)),
        Launch("pooling", (), "global_avg_pool", (x, out, *_i(n * c, h * w)), n * c),
        Launch("elementwise", ("-DOP=0",), "binary",
               (x, t(c, 1, 1), out, meta((n, c, h, w), (c * h * w, h * w, w, 1), (0, 1, 0, 0)),
                *_i(4, total)), total),
        Launch("elementwise", ("-DOP=2",), "binary_flat", (x, x, out, np.int32(total)), total),
        Launch("elementwise", ("-DOP=0",), "binary_3d", (x, t(c), out, *_i(h * w, c, n)),
               (h * w, c, n)),
        Launch("unary", ("-DOP=4",), "unary", (x, out, np.int32(total), *_f(0, 0)), total),
        Launch("unary", (), "prelu", (x, t(c), out, *_i(total, c, h * w)), total),
        Launch("gemm", ("-DVW=8", "-DTRANS_B", "-DHAS_C"), "gemm",
               (t(4, 64), t(10, 64), t(10), out, *_i(4, 10, 64, 0, 1), *_f(1, 1, 0, 0)),
               (10, 1)),
        Launch("gemm", ("-DVW=8",), "matmul",
               (t(2, 8, 16), t(2, 16, 8), out, meta((2,), (128,), (128,)),
                *_i(1, 8, 8, 16, 2)), (1, 1, 2)),
        Launch("softmax", (), "softmax", (x, out, *_i(n, c, h * w)), n * h * w),
        Launch("transpose", (), "transpose",
               (x, out, meta((n, h, w), (c * h * w, w, 1)), *_i(3, c, h * w, n * h * w)),
               (-(-c // 4), n * h * w)),
        Launch("transpose", (), "transpose_tiles", (x, out, *_i(c, h * w, n)),
               (-(-h * w // 4), -(-c // 4), n)),
        Launch("copy", (), "copy_box",
               (x, out, meta((n, c, h, w), (c * h * w, h * w, w, 1), (2 * c * h * w, h * w, w, 1)),
                *_i(4, 0, 0, total)), total),
        Launch("copy", ("-DMODE=1",), "pad",
               (x, out, meta((n, c, h + 2, w + 2), (n, c, h, w), (0, 0, 1, 1)),
                np.int32(4), np.int32(n * c * (h + 2) * (w + 2)), np.float32(0)),
               n * c * (h + 2) * (w + 2)),
        Launch("reduce", ("-DOP=1",), "reduce", (x, out, *_i(n * c, h * w, 1)), n * c),
        Launch("reduce", ("-DOP=5",), "arg_reduce", (x, out, *_i(n * c, h * w, 1)), n * c),
        Launch("resize", ("-DCOORD_MODE=0",), "resize_bilinear",
               (x, out, *_i(n, c, h, w, 2 * h, 2 * w), *_f(2, 2)), total * 4),
        Launch("resize", ("-DCOORD_MODE=2", "-DNEAREST_MODE=2"), "resize_nearest",
               (x, out, *_i(n, c, h, w, 2 * h, 2 * w), *_f(2, 2)), total * 4),
        Launch("lrn", (), "lrn", (x, out, *_i(n, c, h, w, 5), *_f(1e-4, 0.75, 1)), total),
        Launch("lrn", (), "lrn_pixels", (x, out, *_i(n, c, h, w, 5), *_f(1e-4, 0.75, 1)),
               (-(-h * w // 4), n)),
        Launch("layer_norm", ("-DHAS_BIAS",), "layer_norm",
               (x, t(w), t(w), out, *_i(n * c * h, w), *_f(1e-5)), n * c * h),
        # a squeeze-and-excitation block's second launch: 8 -> 2 -> 8 channels, 2 groups
        Launch("squeeze_excite", ("-DVW=8", "-DHIDDEN_ACTIVATION=1", "-DGATE_ACTIVATION=6"),
               "excite_scale", (x, t(n, c), t(2, c), t(2), t(c, 2), t(c),
                                np.zeros(2 * (2 + c // 2), np.float32), out,
                                *_i(n, c, 2, h * w, c // 2), *_f(0, 0, 0.2, 0.5)),
               2, local_size=(1,)),
        # F(2x2, 3x3) of the 3x3 pad-1 convolution: 8 x 8 tiles, 16 transformed positions
        # (and the output transform's VW spare floats past them)
        Launch("winograd", ("-DVW=8", "-DWINO_M=2"), "winograd_input",
               (x, out, *_i(c, h, w, 8, 8, 1, 1, n * c)), n * c),
        Launch("winograd", ("-DVW=8", "-DWINO_M=2", "-DHAS_BIAS"), "winograd_output",
               (t(16 * c * 64 + 8), x, t(c, c, 3, 3), t(c), None, out,
                *_i(c, h, w, 1, 1, c, h, w, 8, 8, n * c), *_f(0, 0)),
               (1, 8, n * c)),
    ]


def run_launches(context: GPUContext, launches: list[Launch]) -> None:
    """Get every program and launch every kernel once; returns when all have finished."""
    flags = cl.mem_flags
    buffers: dict[int, cl.Buffer] = {}

    def device_arg(value):
        if value is None:
            return None
        if isinstance(value, np.ndarray):
            if id(value) not in buffers:
                buffers[id(value)] = cl.Buffer(context.cl_context,
                                               flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=value)
            return buffers[id(value)]
        return value

    for launch in launches:
        program = context.programs.get(launch.program, options=launch.options,
                                       kernel=launch.kernel)
        kernel = program.kernel(launch.kernel)
        kernel.set_args(*(device_arg(a) for a in launch.args))
        size = launch.global_size
        kernel.launch(context.queue, size if isinstance(size, tuple) else (size,),
                      launch.local_size)
    context.queue.finish()


def start_up(cache_path: Path, device: str | None = None) -> dict:
    """One timed application start; returns seconds per phase and where programs came from."""
    launches = sample_launches()
    started = time.perf_counter()
    context = GPUContextBuilder().set_opencl_cache_full_path(cache_path).set_device(device).finalize()
    context_ready = time.perf_counter()
    context.run_with_fallback(lambda: run_launches(context, launches))
    launched = time.perf_counter()
    saved = context.flush()
    flushed = time.perf_counter()
    return {
        "device": context.device.name,
        "programs": len(context.programs.programs),
        "kernels": len(launches),
        "context_seconds": context_ready - started,
        "init_seconds": launched - started,
        "flush_seconds": flushed - launched,
        "saved": saved,
        **dataclasses.asdict(context.stats),
    }


def spawn(*args: str, env: dict | None = None) -> dict:
    """Run ``python -m macecl.kernels.exercise ARGS`` in a fresh process; its last line is JSON."""
    done = subprocess.run([sys.executable, "-m", "macecl.kernels.exercise", *args], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"start-up process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":  # the fresh process of `spawn`
    _, cache, *rest = sys.argv
    print(json.dumps(start_up(Path(cache), rest[0] if rest else None)))
