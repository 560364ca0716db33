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


class CacheWarning(UserWarning):
    """The compiled-program cache could not be used as asked; the run goes on without it."""
