"""macecl: run neural networks on OpenCL devices, with MACE's compiled-program cache."""

from macecl.cache.fingerprint import DeviceFingerprint, ReusePolicy
from macecl.errors import (
    CacheFormatError,
    CacheWarning,
    ConfigError,
    DeviceNotFoundError,
    KernelExecutionError,
    MaceclError,
    ProgramBuildError,
)
from macecl.runtime.context import GPUContext, GPUContextBuilder
from macecl.runtime.device import Device, list_devices, select_device

__version__ = "0.1.0"

__all__ = [
    "CacheFormatError",
    "CacheWarning",
    "ConfigError",
    "Device",
    "DeviceFingerprint",
    "DeviceNotFoundError",
    "GPUContext",
    "GPUContextBuilder",
    "KernelExecutionError",
    "MaceclError",
    "ProgramBuildError",
    "ReusePolicy",
    "list_devices",
    "select_device",
]
