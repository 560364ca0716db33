"""Fault injection seams: where tests make a driver call fail as real drivers sometimes do.

Only our own call sites consult these; the OpenCL driver itself is never replaced. Each
point names the real failure it stands for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from macecl.runtime.opencl import cl

# point -> (OpenCL status code to fail with, failures left)
_planned: dict[str, list[int]] = {}

POINTS = {
    # clEnqueueNDRangeKernel failing, as a GPU driver does (CL_OUT_OF_RESOURCES,
    # CL_INVALID_KERNEL_ARGS) when it runs a binary that a different driver compiled.
    "launch": "clEnqueueNDRangeKernel",
}


@contextlib.contextmanager
def inject(point: str, status: int, times: int = 1) -> Iterator[None]:
    """Make the next ``times`` calls at ``point`` fail with OpenCL status ``status``."""
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}; points: {', '.join(POINTS)}")
    _planned[point] = [status, times]
    try:
        yield
    finally:
        _planned.pop(point, None)


def check(point: str) -> None:
    """Raise the planned OpenCL error at ``point``, if one is planned."""
    plan = _planned.get(point)
    if plan and plan[1] > 0:
        plan[1] -= 1
        record = cl._cl._ErrorRecord(
            msg=f"{POINTS[point]} failed (injected)", code=plan[0], routine=POINTS[point]
        )
        raise cl.RuntimeError(record)
