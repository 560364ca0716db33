"""The exceptions macecl raises. Every one is a MaceclError, so callers can catch one type.

Library code raises; only the command line turns an error into an exit status.
"""

from __future__ import annotations


class MaceclError(Exception):
    """Base class of every error macecl raises on purpose."""


class ConfigError(MaceclError):
    """A setting (an argument or a MACECL_* variable) has a value that cannot be used."""


class DeviceNotFoundError(MaceclError):
    """No OpenCL device matches the selector, or no OpenCL platform is installed."""


class CacheFormatError(MaceclError):
    """A compiled-program file is not a sound MCLP file; the message says which check failed."""


class ProgramBuildError(MaceclError):
    """The driver could not build a program from source; carries the full build log."""

    def __init__(self, program: str, options: str, status: str, log: str):
        self.program, self.options, self.status, self.log = program, options, status, log
        super().__init__(
            f"OpenCL program {program!r} (options {options!r}) failed to build: {status}\n"
            f"--- build log ---\n{log.strip() or '(empty)'}"
        )


class KernelExecutionError(MaceclError):
    """A kernel could not be created, given its arguments or launched.

    ``program`` names the program (name, build options, source hash) and ``origin`` says
    where its binary came from: precompiled, cache or source.
    """

    def __init__(self, kernel: str, program: str, origin: str, status: str):
        self.kernel, self.program, self.origin, self.status = kernel, program, origin, status
        super().__init__(
            f"OpenCL kernel {kernel!r} of program {program} (binary from {origin}) "
            f"failed with {status}"
        )


class ModelFormatError(MaceclError):
    """A model file (ONNX or .macecl) cannot be read: missing, truncated or malformed."""


class UnsupportedModelError(MaceclError):
    """The model uses operators or attributes macecl does not implement.

    ``unsupported`` maps each operator type (with the attribute case, if that is what is
    missing) to the names of the nodes that use it.
    """

    def __init__(self, unsupported: dict[str, list[str]]):
        self.unsupported = unsupported
        lines = [f"  {op}: {', '.join(repr(n) for n in names[:8])}"
                 + (f" and {len(names) - 8} more" if len(names) > 8 else "")
                 for op, names in sorted(unsupported.items(), key=lambda item: str(item[0]))]
        super().__init__("the model uses what macecl does not support:\n" + "\n".join(lines))


class GraphError(MaceclError):
    """A node cannot run as given (shapes that do not fit, a value that must be known early);
    the message names the node."""


class InputError(MaceclError):
    """An input fed to a model has the wrong name, dtype, rank or shape."""


class CacheWarning(UserWarning):
    """The compiled-program cache could not be used as asked; the run goes on without it."""


class CacheTrustError(CacheFormatError):
    """A compiled-program file is refused although it may be well formed: its signature does
    not match the cache key in force, or it is not a plain file at its own path (a symbolic
    link). Handled like damage: set aside and rebuilt."""
