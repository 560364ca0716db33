"""macecl: run neural networks on OpenCL devices, with MACE's compiled-program cache."""

from macecl.cache.fingerprint import DeviceFingerprint, ReusePolicy
from macecl.engine import Engine, EngineStats
from macecl.errors import (
    CacheFormatError,
    CacheWarning,
    ConfigError,
    DeviceNotFoundError,
    GraphError,
    InputError,
    KernelExecutionError,
    MaceclError,
    ModelFormatError,
    ProgramBuildError,
    UnsupportedModelError,
)
from macecl.runtime.context import GPUContext, GPUContextBuilder
from macecl.runtime.device import Device, list_devices, select_device
from macecl.session import (
    InferenceSession,
    ModelMetadata,
    NodeArg,
    RunOptions,
    SessionOptions,
    get_available_providers,
    get_device,
)

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "EngineStats",
    "GraphError",
    "InferenceSession",
    "InputError",
    "ModelFormatError",
    "ModelMetadata",
    "NodeArg",
    "RunOptions",
    "SessionOptions",
    "UnsupportedModelError",
    "get_available_providers",
    "get_device",
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
