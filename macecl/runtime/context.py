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
from macecl.cache import mace_format
from macecl.cache.fingerprint import DeviceFingerprint, ReusePolicy
from macecl.cache.format import CacheFile
from macecl.cache.store import CacheStore
from macecl.cache.tuning_format import FILE_NAME as PARAMETER_FILE_NAME
from macecl.cache.tuning_format import TunedLaunch
from macecl.cache.tuning_store import TuningStore
from macecl.errors import CacheFormatError, CacheWarning, ConfigError, KernelExecutionError
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
        read_only: bool = False,
        cache_key: bytes | None = None,
        allow_world_writable_cache: bool = False,
    ):
        self.device = device
        self.cache_path = cache_path
        self.parameter_path = parameter_path or cache_path.with_name(PARAMETER_FILE_NAME)
        self.policy = policy
        self.read_only = read_only
        self.cl_context = cl.Context([device.cl_device])
        properties = cl.command_queue_properties.PROFILING_ENABLE if profiling else 0
        self.queue = cl.CommandQueue(self.cl_context, device.cl_device, properties=properties)
        self.store = CacheStore(
            cache_path,
            lock_timeout=config.settings().lock_timeout,
            key=cache_key,
            allow_world_writable=allow_world_writable_cache,
            writable=not read_only,
        )
        self.programs = ProgramManager(device, self.cl_context, self.store, precompiled, policy)
        self.tuning = TuningStore(self.parameter_path, config.settings().lock_timeout,
                                  writable=not read_only)
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
        return self.tuning.save(launches)  # read-only: kept in memory only

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
        self._read_only: bool | None = None
        self._cache_key: bytes | None = None
        self._allow_world_writable: bool | None = None

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

    def set_cache_read_only(self, enabled: bool = True) -> GPUContextBuilder:
        """Load the cache file but never write it (default: MACECL_CACHE_READ_ONLY).

        For apps whose storage may not be written: programs missing from the precompiled
        binaries and the cache are built from source on every start and kept in memory only.
        """
        self._read_only = enabled
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

    def set_cache_key(self, key: str | bytes | None) -> GPUContextBuilder:
        """Secret that signs the cache and precompiled files (HMAC-SHA256); default
        MACECL_CACHE_KEY. With a key, unsigned files and files signed with another key are
        refused and rebuilt; without one, signed files are refused (docs/security.md)."""
        if key is not None and not key:
            raise ConfigError("the cache key is empty; pass None for no key")
        self._cache_key = key.encode("utf-8") if isinstance(key, str) else key
        return self

    def set_allow_world_writable_cache(self, allowed: bool = True) -> GPUContextBuilder:
        """Use a cache even in a directory any user may write (refused by default); default
        MACECL_ALLOW_WORLD_WRITABLE_CACHE."""
        self._allow_world_writable = allowed
        return self

    def _key(self) -> bytes | None:
        if self._cache_key is not None:
            return self._cache_key
        key = config.settings().cache_key
        return key.encode("utf-8") if key else None

    def _cache_path(self) -> Path:
        if self._cache_full_path is not None:
            return self._cache_full_path
        if self._storage_path is not None:
            return self._storage_path / config.CACHE_FILE_NAME
        return default_cache_path()

    def _precompiled(self, device: DeviceFingerprint) -> list[CacheFile]:
        """The precompiled files, each MCLP or MACE's own format (told apart by content: a
        MACE file is converted for ``device``, and skipped when it is for another one)."""
        files = []
        named = [(str(p), p) for p in self._binary_paths]
        named += [(f"<binary bytes {i}>", b) for i, b in enumerate(self._binary_bytes)]
        for name, item in named:
            try:
                data = item.read_bytes() if isinstance(item, Path) else item
                if mace_format.looks_like_mace(data):
                    data = mace_format.as_precompiled(data, device)
                    if data is None:
                        log.debug("MACE file %s holds no program for this device", name)
                        continue
                files.append(CacheFile(data, origin=name, key=self._key()))
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
            self._precompiled(device.fingerprint),
            self._policy,
            self._parameter_path,
            self._profiling,
            read_only=config.settings().cache_read_only if self._read_only is None
            else self._read_only,
            cache_key=self._key(),
            allow_world_writable_cache=(
                self._allow_world_writable
                if self._allow_world_writable is not None
                else config.settings().allow_world_writable_cache
            ),
        )
