"""The one door to pyopencl: imports it with its binary cache off and names its errors.

PyOpenCL keeps its own cache of program binaries. It must never stand in for ours (it would
hide cold starts and bypass our validation), so it is disabled before pyopencl is imported
and programs are built through the raw ``_Program`` API, which never consults it even when
the application imported pyopencl first with the cache on. PoCL's own cache is handled the
same way, in :mod:`macecl.runtime.pocl_scratch`.
"""

from __future__ import annotations

import logging
import os

from macecl.runtime import pocl_scratch

os.environ.setdefault("PYOPENCL_NO_CACHE", "1")
pocl_scratch.prepare()

import pyopencl as cl  # noqa: E402

log = logging.getLogger(__name__)
RawProgram = cl._cl._Program  # the uncached program object under pyopencl.Program
Error = cl.Error


def status_name(error: BaseException) -> str:
    """``CL_INVALID_BINARY`` rather than -42, for messages people can search for."""
    code = getattr(error, "code", None)
    if isinstance(code, int):
        try:
            return f"CL_{cl.status_code.to_string(code)}"
        except ValueError:
            return f"OpenCL status {code}"
    return type(error).__name__


def build_log(program: RawProgram) -> str:
    """The build logs of every device of ``program``, joined."""
    try:
        return "\n".join(log for _, log in program._get_build_logs() if log)
    except Error:
        return ""


def build(program: RawProgram, options: bytes, devices: list | None = None) -> None:
    """Build ``program`` (from source or binary); a driver's error raises ``Error``.

    pyopencl's own ``build`` turns a non-empty log of a build that succeeded (NVIDIA's driver
    writes one for many) into a CompilerWarning at every build, which says nothing a user
    can act on; the log goes to this module's debug log instead."""
    program._build(options=options, devices=devices)
    text = build_log(program).strip()
    if text:
        log.debug("the driver's log of a build that succeeded:\n%s", text)
