"""GPUContext and its builder, in the shape of MACE's GPUContextBuilder.

A context owns the device, the OpenCL context and queue, and the program manager with its
cache; engines share one context so that they share compiled programs and one cache file.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import platformdirs

from macecl import config
from macecl.cache.fingerprint import ReusePolicy
from macecl.cache.format import CacheFile
from macecl.cache.store import CacheStore
from macecl.cache.tuning_format import FILE_NAME as PARAMETER_FILE_NAME
from macecl.cache.tuning_format import TunedLaunch
from macecl.cache.tuning_store import TuningStore
from macecl.errors import CacheFormatError, CacheWarning, KernelExecutionError
from macecl.runtime.device import Device, select_device
from macecl.runtime.opencl import cl
from macecl.runtime.programs import ProgramManager, ProgramStats

log = logging.getLogger(__name__)
T = TypeVar("T")


def default_cache_path() -> Path:
    """MACECL_CACHE_DIR, else the user cache directory, plus MACE's file name."""
    directory = config.settings().cache_dir or Path(platformdirs.user_cache_dir("macecl"))
    return directory / config.CACHE_FILE_NAME


class GPUContext:
    """A device, its OpenCL context and queue, and the programs built for it."""

    def __init__(
        self,
        device: Device,
        cache_path: Path,
        precompiled: Sequence[CacheFile],
        policy: ReusePolicy,
        parameter_path: Path | None,
        profiling: bool,
    ):
        self.device = device
        self.cache_path = cache_path
        self.parameter_path = parameter_path or cache_path.with_name(PARAMETER_FILE_NAME)
        self.policy = policy
        self.cl_context = cl.Context([device.cl_device])
        properties = cl.command_queue_properties.PROFILING_ENABLE if profiling else 0
        self.queue = cl.CommandQueue(self.cl_context, device.cl_device, properties=properties)
        self.store = CacheStore(cache_path, lock_timeout=config.settings().lock_timeout)
        self.programs = ProgramManager(device, self.cl_context, self.store, precompiled, policy)
        self.tuning = TuningStore(self.parameter_path, lock_timeout=config.settings().lock_timeout)
        tuned = self.tuning.load()
        # Tuned launches this device may use (per the reuse policy), keyed by
        # (program key, kernel name, global size); each is checked against the compiled
        # kernel's limits before its first launch (engine), since another driver's limits differ.
        self.tuned: dict[tuple, TunedLaunch] = (
            tuned.for_device(device.fingerprint, policy) if tuned else {})

    @property
    def stats(self) -> ProgramStats:
        """Counters of programs from precompiled binaries, the cache and source; build time."""
        return self.programs.stats

    def flush(self) -> int:
        """Write the programs built since the last flush to the cache; call after a warm-up run.

        Returns the number of programs saved (0 when there was nothing new or the cache
        cannot be written; the latter warns once).
        """
        self.queue.finish()
        return self.programs.flush()

    def save_tuning(self, launches: list[TunedLaunch]) -> bool:
        """Merge tuned launches into the tuned-parameters file and use them from now on."""
        self.tuned.update((launch.key, launch) for launch in launches)
        return self.tuning.save(launches)

    def run_with_fallback(self, step: Callable[[], T]) -> T:
        """Run ``step``; if an OpenCL error hits it while stored binaries are in use, erase this
        device's stored programs, rebuild from source and run it once more.

        ``step`` must fetch its programs from ``self.programs`` each time it is called, so
        that the second try gets the rebuilt ones. Only a second failure reaches the caller.
        """
        try:
            return step()
        except KernelExecutionError as error:
            if not self.programs.used_stored_binaries():
                raise
            warnings.warn(
                f"{error}; the program binaries came from storage, so this device's stored "
                "programs are cleared and rebuilt from source",
                CacheWarning,
                stacklevel=2,
            )
            self.programs.forget_stored()
        return step()

    def close(self) -> None:
        """Release the cache file's memory map (programs already built stay usable)."""
        self.store.close()

    def __enter__(self) -> GPUContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class GPUContextBuilder:
    """Collects the settings of a GPUContext; ``finalize()`` makes it. Setters chain."""

    def __init__(self) -> None:
        self._device: str | int | None = None
        self._storage_path: Path | None = None
        self._cache_full_path: Path | None = None
        self._binary_paths: list[Path] = []
        self._binary_bytes: list[bytes] = []
        self._parameter_path: Path | None = None
        self._policy = ReusePolicy.REUSE_SAME_GPU
        self._profiling = False

    def set_device(self, selector: str | int | None) -> GPUContextBuilder:
        """Device index or name substring; default MACECL_DEVICE, else the first GPU, else CPU."""
        self._device = selector
        return self

    def set_storage_path(self, path: str | Path) -> GPUContextBuilder:
        """Directory of the cache file (file name ``mace_cl_compiled_program.bin``)."""
        self._storage_path = Path(path)
        return self

    def set_opencl_cache_full_path(self, path: str | Path) -> GPUContextBuilder:
        """Full path of the cache file; wins over the storage path."""
        self._cache_full_path = Path(path)
        return self

    def set_opencl_binary_paths(self, paths: Sequence[str | Path]) -> GPUContextBuilder:
        """Precompiled binary files shipped with the app, tried before the cache, never written."""
        self._binary_paths = [Path(p) for p in paths]
        return self

    def set_opencl_binary_bytes(self, blobs: Sequence[bytes]) -> GPUContextBuilder:
        """Precompiled binary files already in memory (embedded in an app)."""
        self._binary_bytes = [bytes(b) for b in blobs]
        return self

    def set_opencl_parameter_path(self, path: str | Path) -> GPUContextBuilder:
        """Tuned work-group sizes file; default: ``tuned_opencl_parameter.bin`` beside the cache."""
        self._parameter_path = Path(path)
        return self

    def set_opencl_cache_reuse_policy(self, policy: ReusePolicy) -> GPUContextBuilder:
        """REUSE_SAME_GPU (default) or REUSE_NONE; see ReusePolicy."""
        self._policy = ReusePolicy(policy)
        return self

    def set_profiling(self, enabled: bool = True) -> GPUContextBuilder:
        """Enable OpenCL profiling events on the queue (for tuning and per-op profiles)."""
        self._profiling = enabled
        return self

    def _cache_path(self) -> Path:
        if self._cache_full_path is not None:
            return self._cache_full_path
        if self._storage_path is not None:
            return self._storage_path / config.CACHE_FILE_NAME
        return default_cache_path()

    def _precompiled(self) -> list[CacheFile]:
        files = []
        named = [(str(p), p) for p in self._binary_paths]
        named += [(f"<binary bytes {i}>", b) for i, b in enumerate(self._binary_bytes)]
        for name, item in named:
            try:
                data = item.read_bytes() if isinstance(item, Path) else item
                files.append(CacheFile(data, origin=name))
            except (OSError, CacheFormatError) as error:
                warnings.warn(
                    f"precompiled binary file {name} is not usable: {error}",
                    CacheWarning,
                    stacklevel=3,
                )
        return files

    def finalize(self) -> GPUContext:
        selector = self._device if self._device is not None else config.settings().device
        device = select_device(selector)
        log.debug("using %s", device.describe())
        return GPUContext(
            device,
            self._cache_path(),
            self._precompiled(),
            self._policy,
            self._parameter_path,
            self._profiling,
        )
