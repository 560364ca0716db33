"""Programs for one device: precompiled binaries, then the on-disk cache, then source (MACE's order).

Programs built from source are not written when they are built but when the context is
flushed after the warm-up run: on PoCL a kernel's machine code is generated at its first
launch and only a binary taken after that launch holds it, so a warm start then compiles
nothing at all. (PoCL also freezes a program's binary the first time it is asked for, which
is one more reason to ask only at the flush.) Taking the binary is also when PoCL compiles
every kernel of the program for any work-group size, used or not, so the engine asks for
each library kernel as a program of its own (``get(..., kernel=)``).

A cold start builds many programs. ``prefetch`` starts building a whole set at once, on
``MACECL_BUILD_WORKERS`` threads or worker processes (``MACECL_BUILD_MODE``), and ``get``
then waits only for the program it asks for. Stored binaries are still looked up in the
calling thread (milliseconds each), so their warnings come from there as before; only builds
from source run elsewhere, and a failed one raises its ProgramBuildError from ``get``.

NOTE: pyopencl calls clBuildProgram with the GIL released (a Python thread kept 50-70% of its
idle speed beside a build on PoCL), so threads build in parallel where the driver does. PoCL
does not: its LLVM layer runs one compilation at a time behind a lock of its own
(PoclCompilerMutexGuard). With the packaged PoCL 3.0, 12 builds took 1.11 and 1.12 s on one
thread, 1.08 and 1.12 s on two, 1.10 and 1.41 s on two with a context each. Worker processes
do build in parallel there, at the price of starting them (bench/cold_build.py measures).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from macecl import config, kernels
from macecl.cache.fingerprint import ProgramKey, ReusePolicy, binary_options
from macecl.cache.format import CacheFile, Entry
from macecl.cache.store import REFRESH_AFTER_SECONDS, CacheStore
from macecl.errors import CacheFormatError, CacheWarning, KernelExecutionError, ProgramBuildError
from macecl.runtime import faults
from macecl.runtime.build_workers import WorkerBuildFailed, WorkerPool
from macecl.runtime.device import Device
from macecl.runtime.opencl import Error, RawProgram, build, build_log, cl, status_name

log = logging.getLogger(__name__)

NO_PRECOMPILED_MESSAGE = "There is no precompiled OpenCL binary in all OpenCL binary paths"


class Origin(enum.Enum):
    PRECOMPILED = "precompiled"
    CACHE = "cache"
    SOURCE = "source"


@dataclasses.dataclass
class ProgramStats:
    """Where this context's programs came from, and what they cost."""

    from_precompiled: int = 0
    from_cache: int = 0
    from_source: int = 0
    rejected_binaries: int = 0
    # Building from source, summed over programs: with concurrent builds it can exceed the
    # wall-clock time they took.
    build_seconds: float = 0.0
    load_seconds: float = 0.0  # creating programs from stored binaries

    def count(self, origin: Origin) -> None:
        field = f"from_{origin.value}"
        setattr(self, field, getattr(self, field) + 1)


def kernel_failure(program: Program, kernel: str, error: BaseException) -> KernelExecutionError:
    return KernelExecutionError(kernel, str(program.key), program.origin.value, status_name(error))


class Kernel:
    """An OpenCL kernel that knows its program, so a failure can name both."""

    def __init__(self, program: Program, name: str, cl_kernel: cl.Kernel):
        self.program, self.name, self.cl_kernel = program, name, cl_kernel

    def set_args(self, *args: object) -> None:
        try:
            self.cl_kernel.set_args(*args)
        except Error as error:
            raise kernel_failure(self.program, self.name, error) from error

    def set_arg(self, index: int, value: object) -> None:
        try:
            self.cl_kernel.set_arg(index, value)
        except Error as error:
            raise kernel_failure(self.program, self.name, error) from error

    def launch(
        self,
        queue: cl.CommandQueue,
        global_size: Sequence[int],
        local_size: Sequence[int] | None = None,
    ) -> cl.Event:
        try:
            faults.check("launch")
            return cl.enqueue_nd_range_kernel(queue, self.cl_kernel, global_size, local_size)
        except Error as error:
            raise kernel_failure(self.program, self.name, error) from error


@dataclasses.dataclass
class Program:
    key: ProgramKey
    raw: RawProgram
    origin: Origin
    # Set when a stored binary came from a fingerprint other than this device's own, so
    # the flush stores it again under the current one.
    restore: bool = False
    saved: bool = False
    # last_used of the cache entry it was loaded from (this device's own), to refresh.
    stored_last_used: int | None = None

    def kernel(self, name: str) -> Kernel:
        """A new kernel object (each op keeps its own, with its arguments set once)."""
        try:
            return Kernel(self, name, cl.Kernel(self.raw, name))
        except Error as error:
            raise kernel_failure(self, name, error) from error

    def binary(self) -> bytes:
        return bytes(self.raw.get_info(cl.program_info.BINARIES)[0])


class ProgramManager:
    """Finds or builds every program a context uses, and saves new ones at ``flush``.

    Safe to use from several threads: one lock guards the programs, the stored binaries and
    the stats; builds from source run outside it.
    """

    def __init__(
        self,
        device: Device,
        cl_context: cl.Context,
        store: CacheStore | None,
        precompiled: Sequence[CacheFile] = (),
        policy: ReusePolicy = ReusePolicy.REUSE_SAME_GPU,
    ):
        self.device, self.cl_context, self.store, self.policy = device, cl_context, store, policy
        self.precompiled = list(precompiled)
        self.stats = ProgramStats()
        self._programs: dict[ProgramKey, Program] = {}
        self._building: dict[ProgramKey, Future[Program]] = {}
        self._lock = threading.RLock()
        self._threads: ThreadPoolExecutor | None = None
        self._workers: WorkerPool | None = None
        self._cached = store.load() if store is not None else None
        self._said_no_precompiled = False

    def get(self, name: str, source: str | None = None, options: Sequence[str] | str = (),
            kernel: str | None = None) -> Program:
        """Program ``name`` built with ``options``: from ``source`` when given, else from the
        kernel library, restricted to ``kernel`` when that is given (what the engine uses: each
        library kernel is a program of its own, see ``kernels.kernel_source``).

        Waits when the program is being built (after ``prefetch``, or by another thread).
        """
        key, source = self._key(name, source, options, kernel)
        return self._fetch(key, source, here=True).result()

    def prefetch(self, wanted: Iterable[tuple[str, Sequence[str] | str, str | None]]) -> None:
        """Start fetching library programs ``(name, options, kernel)``, as ``get`` takes them,
        in order, without waiting.

        Stored binaries are loaded at once; builds from source go to the build workers. With
        one worker (MACECL_BUILD_WORKERS=1) this builds them one by one before returning.
        """
        here = config.settings().build_workers == 1
        for name, options, kernel in wanted:
            fetched = self._fetch(*self._key(name, None, options, kernel), here=here)
            if here:
                fetched.result()  # raises a build error now, as one-by-one fetching always did

    def wait(self) -> None:
        """Wait for every build in flight; raises the first build error among them."""
        with self._lock:
            pending = list(self._building.values())
        wait(pending)
        for future in pending:
            future.result()

    @property
    def programs(self) -> list[Program]:
        with self._lock:
            return list(self._programs.values())

    def used_stored_binaries(self) -> bool:
        with self._lock:
            return any(p.origin is not Origin.SOURCE for p in self._programs.values())

    # -- fetching --------------------------------------------------------------------------

    @staticmethod
    def _key(name: str, source: str | None, options: Sequence[str] | str, kernel: str | None
             ) -> tuple[ProgramKey, str]:
        if source is not None:
            if kernel is not None:
                raise ValueError("kernel= picks a kernel of a library program, not of a source")
        elif kernel is not None:
            source, name = kernels.kernel_source(name, kernel), f"{name}.{kernel}"
        else:
            source = kernels.program_source(name)
        return ProgramKey.for_source(name, source, options), source

    def _fetch(self, key: ProgramKey, source: str, here: bool) -> Future[Program]:
        """The program of ``key`` as a future: done when it was ready or stored; otherwise
        its build from source, run in this thread when ``here``, else by the build workers."""
        future: Future[Program] = Future()
        with self._lock:
            program = self._programs.get(key)
            if program is None and key in self._building:
                return self._building[key]
            if program is None:
                program = self._from_binaries(key)
                if program is not None:
                    self._keep(program)
            if program is not None:
                future.set_result(program)
                return future
            self._building[key] = future
            if not here:
                self._build_pool().submit(self._build, key, source, future)
        if here:
            self._build(key, source, future)
        return future

    def _build_pool(self) -> ThreadPoolExecutor:
        """The threads that build (and, in process mode, wait for a worker process each);
        made on demand, and let go once nothing is being built."""
        if self._threads is None:
            settings = config.settings()
            self._threads = ThreadPoolExecutor(settings.build_workers,
                                               thread_name_prefix="macecl-build")
            if settings.build_mode == "processes":
                self._workers = WorkerPool(self.device, settings.build_workers)
        return self._threads

    def _build(self, key: ProgramKey, source: str, future: Future[Program]) -> None:
        """Build ``key`` from source and settle ``future``; the program is kept on success."""
        try:
            program = self._from_source(key, source)
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits on it
            with self._lock:
                del self._building[key]  # a later get tries again, as a sequential one would
                self._release_pool_when_idle()
            future.set_exception(error)
            return
        with self._lock:
            self._keep(program)
            del self._building[key]
            self._release_pool_when_idle()
        future.set_result(program)

    def _keep(self, program: Program) -> None:
        self.stats.count(program.origin)
        self._programs[program.key] = program

    def _release_pool_when_idle(self) -> None:
        if self._building or self._threads is None:
            return
        self._threads.shutdown(wait=False)
        if self._workers is not None:  # idle worker processes would hold memory for nothing
            self._workers.shutdown()
        self._threads = self._workers = None

    # -- look-up ---------------------------------------------------------------------------

    def _candidates(self, key: ProgramKey) -> list[tuple[Origin, CacheFile, Entry]]:
        """Stored binaries for ``key`` this device may use, in look-up order (exact device first)."""
        own = self.device.fingerprint
        sources = [(Origin.PRECOMPILED, f) for f in self.precompiled]
        if self._cached is not None:
            sources.append((Origin.CACHE, self._cached))
        found = []
        for origin, file in sources:
            matches = [i for i, fp in enumerate(file.devices) if self.policy.accepts(fp, own)]
            matches.sort(key=lambda i: file.devices[i] != own)
            found += [(origin, file, e) for i in matches if (e := file.find(i, key)) is not None]
        return found

    def _from_binaries(self, key: ProgramKey) -> Program | None:
        candidates = self._candidates(key)
        if self.precompiled and not any(o is Origin.PRECOMPILED for o, _, _ in candidates):
            if not self._said_no_precompiled:
                log.debug(NO_PRECOMPILED_MESSAGE)
                self._said_no_precompiled = True
        for origin, file, entry in candidates:
            try:
                payload = file.payload(entry)
            except CacheFormatError as error:
                self._drop_damaged(origin, file, str(error))
                continue
            started = time.perf_counter()
            try:
                raw = RawProgram(self.cl_context, [self.device.cl_device], [payload])
                build(raw, binary_options(key.options))
            except Error as error:
                self.stats.rejected_binaries += 1
                warnings.warn(
                    f"the OpenCL driver rejected the {origin.value} binary of {key} "
                    f"({status_name(error)}); rebuilding it from source",
                    CacheWarning,
                    stacklevel=5,
                )
                continue
            self.stats.load_seconds += time.perf_counter() - started
            restore = file.devices[entry.device] != self.device.fingerprint
            last_used = entry.last_used if origin is Origin.CACHE and not restore else None
            return Program(key, raw, origin, restore=restore, stored_last_used=last_used)
        return None

    def _drop_damaged(self, origin: Origin, file: CacheFile, reason: str) -> None:
        if origin is Origin.CACHE and self.store is not None:
            self._cached = None
            self.store.quarantine(reason)
        else:
            self.precompiled.remove(file)
            warnings.warn(
                f"precompiled binary file {file.origin} is damaged ({reason}); not using it",
                CacheWarning,
                stacklevel=6,
            )

    def _from_source(self, key: ProgramKey, source: str) -> Program:
        started = time.perf_counter()
        raw = self._from_worker(key, source) if self._workers is not None else None
        if raw is None:
            raw = RawProgram(self.cl_context, source)
            try:
                build(raw, key.options.encode("utf-8"), [self.device.cl_device])
            except Error as error:
                raise ProgramBuildError(key.name, key.options, status_name(error),
                                        build_log(raw)) from None
        elapsed = time.perf_counter() - started
        with self._lock:
            self.stats.build_seconds += elapsed
        log.debug("built %s from source in %.3f s", key, elapsed)
        return Program(key, raw, Origin.SOURCE)

    def _from_worker(self, key: ProgramKey, source: str) -> RawProgram | None:
        """Built by a worker process and loaded from its binary; None when the workers broke
        down (one died, or could not open the device), and then this and later builds are
        done in this process."""
        workers = self._workers
        try:
            binary = workers.build(source, key.options)
        except WorkerBuildFailed as failed:
            raise ProgramBuildError(key.name, key.options, failed.status, failed.log) from None
        except BrokenProcessPool as error:
            with self._lock:
                if self._workers is workers:
                    log.warning("build worker processes failed (%s); building here instead",
                                error)
                    workers.shutdown()
                    self._workers = None
            return None
        raw = RawProgram(self.cl_context, [self.device.cl_device], [binary])
        try:
            build(raw, binary_options(key.options))
        except Error as error:  # the worker's driver made a binary the parent's refuses
            raise ProgramBuildError(key.name, key.options, status_name(error),
                                    build_log(raw)) from None
        return raw

    # -- saving ----------------------------------------------------------------------------

    def flush(self) -> int:
        """Save the programs built from source (or restored from another driver's binary).

        Cache entries used here whose last_used is over a day old are refreshed in the same
        write (or alone), so the size bound drops programs nobody uses any more.
        """
        stale_after = time.time() - REFRESH_AFTER_SECONDS
        with self._lock:
            pending = [
                p for p in self._programs.values()
                if not p.saved and (p.origin is Origin.SOURCE or p.restore)
            ]
            stale = [
                p for p in self._programs.values()
                if p.stored_last_used is not None and p.stored_last_used < stale_after
            ]
        if self.store is None or not (pending or stale):
            return 0
        binaries = {p.key: p.binary() for p in pending}
        touched = {p.key for p in stale}
        written = self.store.save(self.device.fingerprint, binaries, touched=touched)
        for program in stale:  # refreshing is best effort: tried once per context
            program.stored_last_used = None
        if written:
            for program in pending:
                program.saved = True
            return len(pending)
        return 0

    def forget_stored(self) -> None:
        """Stored binaries proved bad: erase this device's from the cache, rebuild from source."""
        with self._lock:
            if self.store is not None:
                self.store.close()
                self._cached = None
                self.store.save(self.device.fingerprint, {}, forget_device=True)
            self.precompiled = []
            self._programs = {k: p for k, p in self._programs.items()
                              if p.origin is Origin.SOURCE}
