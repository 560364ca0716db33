"""The engine: a converted model, on one device, run with NumPy arrays in and out.

Start-up loads the model (mapped weights), opens the context (the compiled-program cache)
and, when every input dimension is fixed, plans and fetches every program at once: stored
binaries are loaded, and the programs to build from source are handed to the build workers
(MACECL_BUILD_WORKERS), which build them concurrently while start-up returns. The first run
then waits, step by step, only for the program of the step it is about to enqueue, so a cold
start runs its first ops while later programs still build. ``stats.init_seconds`` therefore
covers everything but builds still in flight (with MACECL_BUILD_WORKERS=1 it is the whole
cold cost, as builds then happen at start-up), and ``stats.first_run_seconds`` includes the
waiting for them. The first successful run of each input shape saves the programs built
from source to the cache (``GPUContext.flush``; counted in ``first_run_seconds`` too, as the
caller waits for it); a run that fails saves nothing.

The run path is: copy the inputs in, enqueue every step's kernel, copy the outputs out.
Kernel arguments are set once per plan, not per run; nothing on it grows with the weights.
On a CPU device the inputs are not copied: the launches that read an input read the
caller's array in place (a buffer over it, CL_MEM_USE_HOST_PTR, which PoCL does not copy),
their argument set for the run and set back after it (``_Prepared.readers``).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from macecl import config
from macecl.cache.tuning_format import TunedLaunch, launch_key
from macecl.engine import models
from macecl.engine.plan import FLOAT, Meta, Plan, Step, Value, make_plan
from macecl.errors import CacheWarning, ConfigError, InputError, KernelExecutionError
from macecl.graph.ir import Graph, TensorSpec
from macecl.ops.traits import DeviceTraits
from macecl.runtime import tuner
from macecl.runtime.context import GPUContext, GPUContextBuilder
from macecl.runtime.opencl import cl
from macecl.runtime.programs import Kernel

log = logging.getLogger(__name__)

# A precompiled program file: its path, or its bytes (a file embedded in an app).
CompiledProgram = str | Path | bytes

PLANS_KEPT = 16  # input shapes whose plans (and buffers) are kept; OCR crops vary per call
WORK_GROUP = 64  # global sizes are rounded up to this; kernels guard their tail


@dataclasses.dataclass
class EngineStats:
    init_seconds: float = 0.0
    convert_seconds: float = 0.0  # converting an .onnx model (0 when the stored one was used)
    programs_from_precompiled: int = 0
    programs_from_cache: int = 0
    programs_from_source: int = 0  # counts builds finished by then: final after the first run
    first_run_seconds: float | None = None
    plans: int = 0
    runs: int = 0


@dataclasses.dataclass(eq=False)
class _Prepared:
    """A plan with its buffers made and its launches resolved to OpenCL objects."""

    plan: Plan
    buffers: list[cl.Buffer]
    # (kernel key, args, global size, local size) as enqueued: rounded, tuned
    launches: list[tuple[tuple, list, tuple[int, ...], tuple[int, ...] | None]]
    inputs: list[cl.Buffer]
    outputs: list[cl.Buffer | np.ndarray]
    # per input: the (launch, argument) pairs that take its buffer, where a run reads the
    # caller's array in place; None where it is copied into ``inputs`` (see _in_place_readers)
    readers: list[list[tuple[int, int]] | None]


class Engine:
    """Run a model. ``model``: a ``.macecl`` file, an ``.onnx`` file or a converted Graph.

    ``input_shapes`` fixes dims of an ONNX model's inputs at conversion (``{"x": [1, 3, 640,
    640]}``). ``context`` lets engines share one device and cache; without it the engine
    makes its own on ``device`` (index or name substring; default: MACECL_DEVICE, else the
    first GPU, else the first device).

    ``compiled_program`` is the short form of ``GPUContextBuilder.set_opencl_binary_paths``
    / ``set_opencl_binary_bytes``: the shipped ``mace_cl_compiled_program.bin`` as a path,
    as bytes embedded in an app, or a list of either. Those files are only read; programs
    missing from them are built and saved to the writable cache.
    """

    def __init__(
        self,
        model: str | Path | Graph,
        context: GPUContext | None = None,
        device: str | int | None = None,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        profiling: bool = False,
        compiled_program: CompiledProgram | Sequence[CompiledProgram] | None = None,
    ):
        started = time.perf_counter()
        self.stats = EngineStats()
        if context is not None and compiled_program is not None:
            raise ConfigError("compiled_program= is for an engine that makes its own context; "
                              "give a shared context its binaries with GPUContextBuilder")
        if isinstance(model, Graph):
            self.graph, self.model_path = model, None
        else:
            read_only = (context.read_only if context is not None
                         else config.settings().cache_read_only)
            self.graph, self.model_path, self.stats.convert_seconds = models.load(
                model, input_shapes, keep=not read_only)
        self._owns_context = context is None
        if context is None:
            builder = GPUContextBuilder().set_device(device).set_profiling(profiling)
            paths, blobs = _split_compiled(compiled_program)
            context = builder.set_opencl_binary_paths(paths).set_opencl_binary_bytes(blobs).finalize()
        self.context = context
        self._baseline = dataclasses.replace(context.stats)
        self._constants: dict[str, cl.Buffer] = {}
        self._plans: collections.OrderedDict[tuple, _Prepared] = collections.OrderedDict()
        self._kernels: dict[tuple, Kernel] = {}
        self._bound: dict[tuple, _Prepared] = {}
        self._refused: set[tuple] = set()  # tuned launches warned about as not fitting
        self._saved: set[tuple[tuple[int, ...], ...]] = set()  # input shapes run and saved
        fixed = self._fixed_shapes()
        if fixed is not None:
            self._prepare(fixed)
        self.stats.init_seconds = time.perf_counter() - started
        self._count_programs()

    # -- the public surface ----------------------------------------------------------------

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.graph.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.graph.outputs

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
            ) -> dict[str, np.ndarray]:
        """Run the model on ``feeds`` ({input name: array}); returns {output name: array}."""
        arrays = self._checked_inputs(feeds)
        wanted = self._checked_output_names(output_names)
        started = time.perf_counter()
        shapes = tuple(a.shape for a in arrays)
        attempts = 0

        def attempt():
            nonlocal attempts
            if attempts:  # the context rebuilt its programs from source: take new kernels,
                self._forget_plans()  # and check tuned sizes against their limits anew
            attempts += 1
            return self._execute(shapes, arrays)

        outputs = self.context.run_with_fallback(attempt)
        self.stats.runs += 1
        if shapes not in self._saved:  # a new shape may have built kernels: keep them too
            self.context.flush()
            self._saved.add(shapes)
            self._count_programs()
        if self.stats.first_run_seconds is None:  # the whole call, saving included
            self.stats.first_run_seconds = time.perf_counter() - started
        named = {spec.name: _as_declared(array, spec) for spec, array in
                 zip(self.graph.outputs, outputs)}
        return {name: named[name] for name in wanted}

    def warmup(self, feeds: Mapping[str, np.ndarray] | None = None, rounds: int = 1) -> None:
        """Run ``rounds`` times on ``feeds`` (zeros of the declared shapes if omitted)."""
        feeds = self._default_feeds() if feeds is None else feeds
        for _ in range(rounds):
            self.run(feeds)

    def profile(self, feeds: Mapping[str, np.ndarray]) -> list[dict]:
        """One run timed per launch with OpenCL profiling events (needs ``profiling=True``)."""
        self._need_profiling("profiling")
        arrays = self._checked_inputs(feeds)
        prepared = self._prepare(tuple(a.shape for a in arrays))
        events = self._execute(prepared.plan.shapes, arrays, keep_events=True)
        rows = []
        for step, event in zip(prepared.plan.steps, events):
            if event is not None:
                rows.append({"node": step.node, "op": step.op, "kernel": step.kernel,
                             "program": step.program, "options": " ".join(step.options),
                             "global_size": step.global_size,
                             "ms": (event.profile.end - event.profile.start) * 1e-6})
        return rows

    def tune(self, feeds: Mapping[str, np.ndarray] | None = None, repeats: int = 5,
             progress: Callable[[int, int], None] | None = None) -> list[TunedLaunch]:
        """Time each launch of one run over the local sizes its kernel allows; keep the best.

        The results go to the tuned-parameters file (merged with what is there) and are used
        by this engine at once. Needs ``profiling=True``. ``feeds`` default to zeros of the
        declared shapes; ``progress(done, total)`` is called after each launch is tuned.
        """
        self._need_profiling("tuning")
        feeds = self._default_feeds() if feeds is None else feeds
        self.run(feeds)  # builds the programs and binds the arguments; buffers hold real values
        arrays = self._checked_inputs(feeds)
        prepared = self._prepare(tuple(a.shape for a in arrays))
        queue, device = self.context.queue, self.context.device
        for buffer, array in zip(prepared.inputs, arrays):  # the run may have read them in place
            if array.size:
                cl.enqueue_copy(queue, buffer, array, is_blocking=True)
        steps = [step for step in prepared.plan.steps if step.local_size is None]
        results: dict[tuple, TunedLaunch] = {}
        for done, step in enumerate(steps, 1):
            kernel = self._kernel(step)
            key = launch_key(kernel.program.key, step.kernel, step.global_size)
            if key not in results:
                trials = tuner.search(
                    lambda local, k=kernel, s=step: k.launch(queue, *_geometry(s.global_size, local)),
                    tuner.candidates(step.global_size, tuner.limits(kernel, device)), repeats)
                best, default = tuner.best(trials)
                results[key] = TunedLaunch(device.fingerprint, kernel.program.key, step.kernel,
                                           step.global_size, best.local_size, best.ns,
                                           default.ns)
            if progress is not None:
                progress(done, len(steps))
        queue.finish()
        self.context.save_tuning(list(results.values()))
        self._forget_plans()
        return list(results.values())

    def close(self) -> None:
        self._forget_plans()
        for buffer in self._constants.values():
            buffer.release()
        self._constants.clear()
        if self._owns_context:
            self.context.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _need_profiling(self, what: str) -> None:
        if not self.context.queue.properties & cl.command_queue_properties.PROFILING_ENABLE:
            raise InputError(f"{what} needs an engine made with profiling=True")

    # -- inputs ----------------------------------------------------------------------------

    def _default_feeds(self) -> dict[str, np.ndarray]:
        shapes = self._fixed_shapes()
        if shapes is None:
            raise InputError("the model has inputs of unfixed shape "
                             f"({self._describe_inputs()}); pass feeds")
        return {s.name: np.zeros(shape, FLOAT) for s, shape in zip(self.graph.inputs, shapes)}

    def _describe_inputs(self) -> str:
        return ", ".join(f"{s.name}: {s.dtype} {s.describe_shape()}" for s in self.graph.inputs)

    def _fixed_shapes(self) -> tuple[tuple[int, ...], ...] | None:
        shapes = []
        for spec in self.graph.inputs:
            if not all(isinstance(d, int) and d >= 0 for d in spec.shape):
                return None
            shapes.append(tuple(spec.shape))
        return tuple(shapes)

    def _checked_inputs(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if not isinstance(feeds, Mapping):
            raise InputError(f"inputs must be a mapping of input name to array, not {type(feeds).__name__}")
        names = [s.name for s in self.graph.inputs]
        unknown = [n for n in feeds if n not in names]
        if unknown:
            raise InputError(f"unknown input {unknown[0]!r}; the model's inputs are "
                             f"{self._describe_inputs()}")
        missing = [n for n in names if n not in feeds]
        if missing:
            raise InputError(f"input {missing[0]!r} is missing; the model's inputs are "
                             f"{self._describe_inputs()}")
        arrays = []
        for spec in self.graph.inputs:
            array = feeds[spec.name]
            if not isinstance(array, np.ndarray):
                raise InputError(f"input {spec.name!r} must be a NumPy array, not "
                                 f"{type(array).__name__}")
            if array.dtype != np.dtype(spec.dtype):
                raise InputError(f"input {spec.name!r} has dtype {array.dtype}; the model "
                                 f"expects {spec.dtype}")
            if array.ndim != len(spec.shape):
                raise InputError(f"input {spec.name!r} has rank {array.ndim} (shape "
                                 f"{list(array.shape)}); the model expects rank {len(spec.shape)}: "
                                 f"{spec.describe_shape()}")
            for axis, (got, declared) in enumerate(zip(array.shape, spec.shape)):
                if isinstance(declared, int) and declared >= 0 and got != declared:
                    raise InputError(f"input {spec.name!r} has shape {list(array.shape)}; the model "
                                     f"expects {spec.describe_shape()} (axis {axis} must be "
                                     f"{declared})")
            arrays.append(np.ascontiguousarray(array))
        return arrays

    def _checked_output_names(self, names: Sequence[str] | None) -> list[str]:
        declared = [s.name for s in self.graph.outputs]
        if names is None:
            return declared
        for name in names:
            if name not in declared:
                raise InputError(f"unknown output {name!r}; the model's outputs are {declared}")
        return list(names)

    # -- planning --------------------------------------------------------------------------

    def _prepare(self, shapes: tuple[tuple[int, ...], ...]) -> _Prepared:
        prepared = self._plans.get(shapes)
        if prepared is not None:
            self._plans.move_to_end(shapes)
            return prepared
        traits = DeviceTraits.of(self.context.device.cl_device)
        plan = make_plan(self.graph, shapes, traits)
        context = self.context
        flags = cl.mem_flags
        buffers = [cl.Buffer(context.cl_context, flags.READ_WRITE, size) for size in plan.buffer_sizes]
        ranges: dict[int, cl.Buffer] = {}  # sub-buffers of the storages placed within others

        def storage_buffer(value: Value) -> cl.Buffer:
            storage = value.storage
            if storage.constant is not None:
                return self._constant(storage.constant)
            buffer = buffers[storage.buffer_index]
            if storage.within is None:
                return buffer
            if id(storage) not in ranges:
                offset = storage.placement()[1] * FLOAT.itemsize
                ranges[id(storage)] = buffer.get_sub_region(
                    offset, max(4, storage.elements * FLOAT.itemsize))
            return ranges[id(storage)]

        uploads = {}  # host values computed while planning, each copied in once
        launches = []
        for step in plan.steps:
            args = []
            for arg in step.args:
                if isinstance(arg, Value):
                    args.append(storage_buffer(arg))
                    if arg.storage.initial is not None:
                        uploads[id(arg.storage)] = (args[-1], arg.storage.initial)
                elif isinstance(arg, Meta):
                    data = arg.values if arg.values.size else np.zeros(1, np.int32)
                    args.append(cl.Buffer(context.cl_context, flags.READ_ONLY | flags.COPY_HOST_PTR,
                                          hostbuf=data))
                else:
                    args.append(arg)
            launches.append((step.key, args, *_geometry(step.global_size, step.local_size)))
        self._prefetch(plan.steps)
        for buffer, data in uploads.values():
            cl.enqueue_copy(context.queue, buffer, data, is_blocking=True)
        outputs = [storage_buffer(v) if v.on_device else v.host for v in plan.outputs]
        inputs = [storage_buffer(v) for v in plan.inputs]
        readers = (_in_place_readers(plan, inputs, launches) if traits.cpu
                   else [None] * len(inputs))
        prepared = _Prepared(plan, [*ranges.values(), *buffers], launches, inputs, outputs,
                             readers)
        self._plans[shapes] = prepared
        self.stats.plans += 1
        while len(self._plans) > PLANS_KEPT:
            _, evicted = self._plans.popitem(last=False)
            self._release(evicted)
        log.debug("planned %s: %d launches, %d buffers, %.1f MiB", shapes, len(plan.steps),
                  len(buffers), plan.bytes / 2**20)
        return prepared

    def _constant(self, name: str) -> cl.Buffer:
        buffer = self._constants.get(name)
        if buffer is None:
            array = np.ascontiguousarray(self.graph.constants[name], dtype=FLOAT)
            flags = cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR
            buffer = cl.Buffer(self.context.cl_context, flags,
                               hostbuf=array if array.size else np.zeros(1, FLOAT))
            self._constants[name] = buffer
        return buffer

    def _prefetch(self, steps: Sequence[Step]) -> None:
        """Start fetching the programs of ``steps`` that have no kernel yet, in step order."""
        wanted = dict.fromkeys((s.program, tuple(s.options), s.kernel) for s in steps
                               if s.key not in self._kernels)
        self.context.programs.prefetch(wanted)

    def _kernel(self, step: Step) -> Kernel:
        kernel = self._kernels.get(step.key)
        if kernel is None:
            program = self.context.programs.get(step.program, options=step.options,
                                                kernel=step.kernel)
            kernel = program.kernel(step.kernel)
            self._kernels[step.key] = kernel
        return kernel

    def _tuned_local_size(self, step: Step, kernel: Kernel) -> tuple[int, ...] | None:
        """A tuned local size for ``step`` that fits ``kernel``'s limits, else None.

        Checked when the kernel is first bound for a plan, i.e. before its first launch, and
        not at planning, so that planning need not wait for the kernel's program to build.
        """
        tuned = self.context.tuned.get(launch_key(kernel.program.key, step.kernel,
                                                  step.global_size))
        if tuned is None or tuned.local_size is None:
            return None
        reason = tuner.check_local_size(tuned.local_size, step.global_size,
                                        tuner.limits(kernel, self.context.device))
        if reason is None:
            return tuned.local_size
        if tuned.key not in self._refused:
            self._refused.add(tuned.key)
            warnings.warn(
                f"tuned local size {tuned.local_size} of kernel {step.kernel} ({step.node}) "
                f"does not fit this device: {reason} (tuned on {tuned.device.describe()}); "
                "using the driver's choice; run `macecl tune` to tune for this device",
                CacheWarning, stacklevel=4)
        return None

    def _forget_plans(self) -> None:
        """Drop every plan and kernel (after programs were rebuilt, or the tuning changed)."""
        for prepared in self._plans.values():
            self._release(prepared)
        self._plans.clear()
        self._kernels.clear()
        self._bound.clear()

    def _release(self, prepared: _Prepared) -> None:
        """Let go of a plan's buffers by dropping every reference to them, so that each is
        freed when nothing holds it any more. Released one by one instead, NVIDIA's driver
        (H100, OpenCL 3.0) crashed in clReleaseMemObject on DenseNet-121's sub-buffers, in
        either order of parents and sub-buffers, after tuning."""
        for key, owner in list(self._bound.items()):
            if owner is prepared:
                del self._bound[key]
        for held in (prepared.buffers, prepared.launches, prepared.inputs, prepared.outputs):
            held.clear()

    # -- running ---------------------------------------------------------------------------

    def _execute(self, shapes, arrays: list[np.ndarray], keep_events: bool = False):
        prepared = self._prepare(shapes)
        if not self._kernels:  # a retry from source after stored binaries failed
            self._prefetch(prepared.plan.steps)
        queue = self.context.queue
        in_place = self._inputs_in(prepared, arrays)
        lent: list[tuple[Kernel, int, cl.Buffer]] = []  # (kernel, argument, its planned buffer)
        finished = False
        try:
            events = []
            for index, step in enumerate(prepared.plan.steps):
                key, args, global_size, local_size = prepared.launches[index]
                kernel = self._kernels.get(key) or self._kernel(step)
                if self._bound.get(key) is not prepared:
                    kernel.set_args(*args)
                    self._bound[key] = prepared
                    if step.local_size is None:  # a tuned size, checked against this kernel
                        prepared.launches[index] = (key, args, *_geometry(
                            step.global_size, self._tuned_local_size(step, kernel)))
                        global_size, local_size = prepared.launches[index][2:]
                for arg, buffer in in_place.get(index, ()):
                    kernel.set_arg(arg, buffer)
                    lent.append((kernel, arg, args[arg]))
                try:
                    events.append(kernel.launch(queue, global_size, local_size))
                except KernelExecutionError as error:
                    if local_size is None or step.local_size is not None:
                        raise
                    # A tuned size within the kernel's limits the driver still refused: keep
                    # the driver's choice for this launch from now on.
                    warnings.warn(f"{error} with tuned local size {local_size}; using the "
                                  "driver's choice", CacheWarning, stacklevel=3)
                    prepared.launches[index] = (key, args, *_geometry(step.global_size, None))
                    events.append(kernel.launch(queue, *prepared.launches[index][2:]))
            results = []
            for value, source in zip(prepared.plan.outputs, prepared.outputs):
                if isinstance(source, np.ndarray):
                    results.append(np.array(source, copy=True))
                    continue
                out = np.empty(value.shape, FLOAT)
                if out.size:
                    cl.enqueue_copy(queue, out, source, is_blocking=False)
                results.append(out)
            queue.finish()
            finished = True
        finally:
            if lent:  # the launches read the caller's arrays until they end; then no kernel
                if not finished:  # keeps a buffer over them
                    queue.finish()
                for kernel, arg, planned in lent:
                    kernel.set_arg(arg, planned)
        return events if keep_events else results

    def _inputs_in(self, prepared: _Prepared, arrays: list[np.ndarray]
                   ) -> dict[int, list[tuple[int, cl.Buffer]]]:
        """Copy in each input that a run copies; for those read in place, the buffers over
        the caller's arrays, as {launch index: [(argument, buffer)]}."""
        in_place: dict[int, list[tuple[int, cl.Buffer]]] = {}
        for buffer, array, readers in zip(prepared.inputs, arrays, prepared.readers):
            if not array.size:
                continue
            if readers is None or not array.flags.aligned:
                cl.enqueue_copy(self.context.queue, buffer, array, is_blocking=False)
                continue
            own = cl.Buffer(self.context.cl_context,
                            cl.mem_flags.READ_ONLY | cl.mem_flags.USE_HOST_PTR, hostbuf=array)
            for launch, arg in readers:
                in_place.setdefault(launch, []).append((arg, own))
        return in_place

    def _count_programs(self) -> None:
        now, before = self.context.stats, self._baseline
        self.stats.programs_from_precompiled = now.from_precompiled - before.from_precompiled
        self.stats.programs_from_cache = now.from_cache - before.from_cache
        self.stats.programs_from_source = now.from_source - before.from_source


def _as_declared(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A device output (float32) in the integer or bool type the model declares for it (an
    ArgMax's indices: exact integers in float); any other output as it is."""
    try:
        declared = np.dtype(spec.dtype)
    except TypeError:
        return array
    if array.dtype != FLOAT or declared.kind not in "iub":
        return array
    return np.rint(array).astype(declared) if declared.kind != "b" else array != 0


def _split_compiled(given: CompiledProgram | Sequence[CompiledProgram] | None
                   ) -> tuple[list[Path], list[bytes]]:
    """``compiled_program=`` as (paths, in-memory files), each list in the order given."""
    if given is None:
        return [], []
    items = [given] if isinstance(given, (str, Path, bytes, bytearray, memoryview)) else given
    paths, blobs = [], []
    for item in items:
        if isinstance(item, (str, Path)):
            paths.append(Path(item))
        elif isinstance(item, (bytes, bytearray, memoryview)):
            blobs.append(bytes(item))
        else:
            raise ConfigError(f"compiled_program= takes paths or bytes, not {type(item).__name__}")
    return paths, blobs


def _in_place_readers(plan: Plan, inputs: list[cl.Buffer], launches: list
                      ) -> list[list[tuple[int, int]] | None]:
    """For each input, the (launch, argument) pairs that pass its buffer, where a run on a CPU
    device can hand them the caller's array instead; None where the input must be copied in.

    In place only on a CPU device (the caller checks), which reads host memory where it lies:
    a buffer over the array costs about 2 us, the copy about 0.1 ms for a 3 x 224 x 224 input
    and 0.9 ms for 3 x 640 x 640 (PoCL, 2 cores). Elsewhere (a GPU) the driver would move the
    array anyway. Copied too: an input that a view or an output shares (its planned buffer is
    read through a sub-buffer, or read back), which a buffer over the array would not reach."""
    shared = {id(v.storage.placement()[0]) for v in plan.outputs if v.on_device}
    for step in plan.steps:
        shared.update(id(a.storage.placement()[0]) for a in step.args
                      if isinstance(a, Value) and a.storage.within is not None)
    return [None if id(value.storage) in shared else
            [(i, j) for i, launch in enumerate(launches)
             for j, arg in enumerate(launch[1]) if arg is buffer]
            for value, buffer in zip(plan.inputs, inputs)]


def _geometry(global_size: tuple[int, ...], local_size: tuple[int, ...] | None
              ) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """The enqueued global and local sizes: each global dimension rounded up to a multiple of
    its work-group dimension (OpenCL 1.2 needs whole work-groups; kernels guard the tail).

    Without a local size, a 1-D launch is rounded to WORK_GROUP and the driver picks the
    work-group; an N-D one is enqueued as it is.
    """
    if local_size is None:
        if len(global_size) == 1:
            return (-(-global_size[0] // WORK_GROUP) * WORK_GROUP,), None
        return global_size, None
    return tuple(-(-g // l) * l for g, l in zip(global_size, local_size)), local_size
