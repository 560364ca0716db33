"""What the kernels' variants depend on in a device, read once from its OpenCL properties.

Lowerings turn these into ``-D`` build options, so each device builds (and the cache keeps)
the variant that suits it, and a plan made for one device is never reused on another.
"""

from __future__ import annotations

import dataclasses

CL_LOCAL = 1  # CL_DEVICE_LOCAL_MEM_TYPE of dedicated local memory (CL_GLOBAL = 2)


@dataclasses.dataclass(frozen=True)
class DeviceTraits:
    """vector_width: floats per vector register (pixels a convolution work item computes);
    local_memory: whether local memory is a separate, fast memory (on PoCL's CPU device it
    is plain global memory, so tiles staged through it only cost copies);
    max_work_group: the largest work-group the device runs."""

    vector_width: int = 4
    local_memory: bool = False
    max_work_group: int = 256

    @classmethod
    def of(cls, cl_device) -> DeviceTraits:
        """The traits of a ``pyopencl.Device`` (any object with its property names)."""
        preferred = int(cl_device.preferred_vector_width_float)
        return cls(vector_width=min(16, max(4, _power_of_two(preferred))),
                   local_memory=int(cl_device.local_mem_type) == CL_LOCAL,
                   max_work_group=int(cl_device.max_work_group_size))


def _power_of_two(value: int) -> int:
    """The largest power of two <= value (1 for 0): OpenCL vectors have 2, 4, 8 or 16 lanes."""
    return 1 << max(0, value.bit_length() - 1)
