"""Work-group tuning: which local sizes a kernel may take, and which one runs fastest.

MACE crashes with CL_INVALID_WORK_GROUP_SIZE when it launches a size tuned for another
device or driver (or for a binary rebuilt with other limits). Here a tuned size is checked
against the compiled kernel's own limits before its first launch (``check_local_size``), and
one that does not fit is dropped for the driver's choice, with a warning.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Callable, Sequence

from macecl.errors import KernelExecutionError
from macecl.runtime.device import Device
from macecl.runtime.opencl import cl
from macecl.runtime.programs import Kernel

MAX_CANDIDATES = 48  # per launch; a 3-D launch has hundreds of power-of-two shapes
# A tuned size must beat the driver's choice by this fraction to be kept: timings of short
# kernels jitter by a few percent, and a size that only matches the driver gains nothing.
MIN_GAIN = 0.03


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a compiled kernel on a device allows for its work-group shape."""

    work_group_size: int  # CL_KERNEL_WORK_GROUP_SIZE: this kernel, after compilation
    item_sizes: tuple[int, ...]  # CL_DEVICE_MAX_WORK_ITEM_SIZES, per dimension
    preferred_multiple: int  # CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE


def limits(kernel: Kernel, device: Device) -> Limits:
    info = cl.kernel_work_group_info
    cl_device = device.cl_device
    return Limits(
        int(kernel.cl_kernel.get_work_group_info(info.WORK_GROUP_SIZE, cl_device)),
        tuple(int(s) for s in cl_device.max_work_item_sizes),
        int(kernel.cl_kernel.get_work_group_info(info.PREFERRED_WORK_GROUP_SIZE_MULTIPLE,
                                                 cl_device)),
    )


def check_local_size(local_size: Sequence[int], global_size: Sequence[int], allowed: Limits
                     ) -> str | None:
    """Why ``local_size`` cannot launch ``global_size`` under ``allowed``; None when it can."""
    if len(local_size) != len(global_size):
        return f"it has {len(local_size)} dimensions and the launch {len(global_size)}"
    if min(local_size) < 1:
        return "a dimension is not positive"
    for axis, (size, most) in enumerate(zip(local_size, allowed.item_sizes)):
        if size > most:
            return f"dimension {axis} is {size}, over the device's {most} work items"
    if math.prod(local_size) > allowed.work_group_size:
        return (f"{math.prod(local_size)} work items exceed the kernel's work-group size "
                f"{allowed.work_group_size}")
    return None


def candidates(global_size: Sequence[int], allowed: Limits) -> list[tuple[int, ...] | None]:
    """Local sizes worth timing: None (the driver's choice), then power-of-two shapes that fit.

    A dimension never exceeds the global one rounded up to a power of two (more would only
    launch idle work items). When there are too many shapes, those closest to a few
    preferred multiples are kept.
    """
    per_axis = []
    for size, most in zip(global_size, allowed.item_sizes):
        top = min(most, 1 << max(0, (size - 1).bit_length()))
        per_axis.append([1 << k for k in range(top.bit_length()) if 1 << k <= top])
    shapes = [s for s in itertools.product(*per_axis)
              if check_local_size(s, global_size, allowed) is None]
    if len(shapes) > MAX_CANDIDATES:
        target = math.log2(max(allowed.preferred_multiple, 1) * 4)
        shapes.sort(key=lambda s: (abs(math.log2(math.prod(s)) - target), s))
        shapes = sorted(shapes[:MAX_CANDIDATES])
    return [None, *shapes]


def time_launch(launch: Callable[[], cl.Event], repeats: int) -> int:
    """Median device time in ns of ``repeats`` launches (profiling events), one warm-up first."""
    launch().wait()
    times = []
    for _ in range(repeats):
        event = launch()
        event.wait()
        times.append(event.profile.end - event.profile.start)
    return int(statistics.median(times))


@dataclasses.dataclass(frozen=True)
class Trial:
    local_size: tuple[int, ...] | None
    ns: int


def search(launch: Callable[[tuple[int, ...] | None], cl.Event],
           shapes: Sequence[tuple[int, ...] | None], repeats: int) -> list[Trial]:
    """Time every shape; one the driver refuses at launch (CL_INVALID_WORK_GROUP_SIZE,
    CL_OUT_OF_RESOURCES) is skipped. The driver's choice (None) must run."""
    trials = []
    for shape in shapes:
        try:
            trials.append(Trial(shape, time_launch(lambda: launch(shape), repeats)))
        except KernelExecutionError:
            if shape is None:
                raise
    return trials


def best(trials: Sequence[Trial]) -> tuple[Trial, Trial]:
    """(the trial to keep, the driver's choice): the fastest, if it clearly beats the driver."""
    default = next(t for t in trials if t.local_size is None)
    fastest = min(trials, key=lambda t: t.ns)
    return (fastest if fastest.ns < default.ns * (1 - MIN_GAIN) else default), default
