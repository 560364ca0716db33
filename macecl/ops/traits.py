"""What the kernels' variants depend on in a device, read once from its OpenCL properties.

Lowerings turn these into ``-D`` build options, so each device builds (and the cache keeps)
the variant that suits it; the options are part of every program's key; and into the
work-group shapes of a few launches.

No kernel stages tiles through local memory: on PoCL's CPU device CL_DEVICE_LOCAL_MEM_TYPE
is CL_GLOBAL (local memory is ordinary memory), and register blocking alone is what
bench/conv_kernels.py measured there; a tiled variant for devices with dedicated local
memory would be chosen here.
"""

from __future__ import annotations

import dataclasses

CL_DEVICE_TYPE_CPU = 1 << 1


@dataclasses.dataclass(frozen=True)
class DeviceTraits:
    """vector_width: floats per vector register, the output pixels (or columns) a
    convolution or GEMM work item computes as one float vector (4, 8 or 16).

    cpu: a CPU device. PoCL runs each work-group whole on one thread, and its own choice of
    work-group packs a launch of up to 4096 work items into one group (one core): launches
    of few, heavy work items (conv2d_gemm, depthwise_conv2d) pass local size (1, 1, 1)
    there, which bench/conv_kernels.py measured at up to 2x faster."""

    vector_width: int = 4
    cpu: bool = False

    @classmethod
    def of(cls, cl_device) -> DeviceTraits:
        """The traits of a ``pyopencl.Device`` (any object with its property names)."""
        preferred = int(cl_device.preferred_vector_width_float)
        return cls(vector_width=min(16, max(4, _power_of_two(preferred))),
                   cpu=bool(int(getattr(cl_device, "type", 0)) & CL_DEVICE_TYPE_CPU))


def _power_of_two(value: int) -> int:
    """The largest power of two <= value (1 for 0): OpenCL vectors have 2, 4, 8 or 16 lanes."""
    return 1 << max(0, value.bit_length() - 1)
