"""What the kernels' variants depend on in a device, read once from its OpenCL properties.

Lowerings turn these into ``-D`` build options and kernel choices, so each device builds
(and the cache keeps) the variants that suit it; the options are part of every program's key.

- ``vector_width``: the float vector of the register-blocked kernels (conv2d.cl, gemm.cl):
  the device's preferred width, except that 16 floats need AVX-512 in the CPU that PoCL's
  LLVM compiles for. PoCL reports the width from the host's features but compiles for the
  CPU its LLVM names, which an older LLVM may name without them: the pip wheel's LLVM 14
  calls AMD's Zen 4 (AVX-512) "znver3" (AVX2) while it links the AVX-512 builtin library, so
  a float16 argument crosses from one calling convention to the other, and SqueezeNet,
  ResNet-50 and the demo crashed (segfault) at their first run, a float16 fma aborted the
  build in LLVM's instruction selection. There, and on any x86 PoCL device whose CPU is not
  one LLVM gives AVX-512, vectors are 8 floats, whose convention AVX2 and AVX-512 share.
- ``local_memory_bytes``, ``work_group_size``, ``compute_units``: whether and how the
  convolution stages its tiles in local memory (conv2d_tiled.cl; the choice is
  ops/conv_tiled.py's ``tiled_fits``). Only dedicated local memory counts: on PoCL's CPU
  device CL_DEVICE_LOCAL_MEM_TYPE is CL_GLOBAL (local memory is ordinary memory, and staging
  through it is a copy for nothing), so ``local_memory_bytes`` is 0 there and the CPU keeps
  the register-blocked kernels that bench/conv_kernels.py measured; a GPU (CL_LOCAL, e.g.
  48 KiB on NVIDIA's H100 driver) gets the tiled convolution, and its compute-unit count
  says when a convolution has too few output tiles to fill the device (split-K).
- ``cpu``: a CPU device. PoCL runs each work-group whole on one thread, and its own choice
  of work-group packs a launch of up to 4096 work items into one group (one core): launches
  of few, heavy work items (conv2d_gemm, depthwise_conv2d) pass local size (1, 1, 1) there,
  which bench/conv_kernels.py measured at up to 2x faster.
- ``build_options``: what every program adds on this device. A CPU builds with
  -cl-denorms-are-zero: x86 handles each denormal operand or result in microcode, and a
  softmax's exp(x - max) underflows into denormals wherever attention scores spread wide.
  Swin-T's attention MatMul (192 batches of 49x49 @ 49x32) fed denormal probabilities took
  20.7 ms against 0.33 ms built with the option, on PoCL; ONNX Runtime takes 17.6 ms on such
  input (it does not flush either, but its softmax does not produce them there).
- ``address_align``: CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes, where a sub-buffer may start:
  a Concat's input is written in place in its output only at such offsets (engine/plan.py's
  ``place_within``). 128 on PoCL's CPU device; 128 bytes (the size of a long16)
  is the least OpenCL allows a device to report, the default here.
"""

from __future__ import annotations

import dataclasses

CL_LOCAL = 1  # CL_DEVICE_LOCAL_MEM_TYPE of dedicated local memory (CL_GLOBAL is 2)
CL_DEVICE_TYPE_CPU = 1 << 1
# LLVM's names of x86 CPUs with AVX-512 (LLVM 14 to 19), the last part of a PoCL device's
# "HSTR: pthread-x86_64-unknown-linux-gnu-<cpu>" version
AVX512_CPUS = frozenset({
    "knl", "knm", "skylake-avx512", "skx", "cascadelake", "cooperlake", "cannonlake",
    "icelake-client", "icelake-server", "rocketlake", "tigerlake", "sapphirerapids",
    "emeraldrapids", "graniterapids", "graniterapids-d", "diamondrapids", "znver4", "znver5",
    "x86-64-v4"})


@dataclasses.dataclass(frozen=True)
class DeviceTraits:
    """vector_width: floats per vector register, the output pixels (or columns) a
    convolution or GEMM work item computes as one float vector (4, 8 or 16).
    local_memory_bytes: dedicated local memory per work group, 0 where it is emulated in
    global memory. work_group_size: the most work items of a work group. compute_units:
    the device's compute units (an NVIDIA GPU's SMs). cpu: a CPU device
    (CL_DEVICE_TYPE_CPU). address_align: the byte alignment of a sub-buffer's start."""

    vector_width: int = 4
    local_memory_bytes: int = 0
    work_group_size: int = 1
    compute_units: int = 1
    cpu: bool = False
    address_align: int = 128

    @property
    def build_options(self) -> tuple[str, ...]:
        """Options every program is built with on this device (module docstring)."""
        return ("-cl-denorms-are-zero",) if self.cpu else ()

    @classmethod
    def of(cls, cl_device) -> DeviceTraits:
        """The traits of a ``pyopencl.Device`` (any object with its property names)."""
        preferred = int(cl_device.preferred_vector_width_float)
        if preferred >= 16 and not _compiles_avx512(str(getattr(cl_device, "version", ""))):
            preferred = 8
        dedicated = int(cl_device.local_mem_type) == CL_LOCAL
        return cls(vector_width=min(16, max(4, _power_of_two(preferred))),
                   local_memory_bytes=int(cl_device.local_mem_size) if dedicated else 0,
                   work_group_size=int(cl_device.max_work_group_size),
                   compute_units=int(cl_device.max_compute_units),
                   cpu=bool(int(getattr(cl_device, "type", 0)) & CL_DEVICE_TYPE_CPU),
                   address_align=max(1, int(cl_device.mem_base_addr_align) // 8))


def row_width(items: int) -> int:
    """The first global size of a launch whose rows are ``items`` work items wide (its
    kernel guards the extra ones): from 64 on, rounded up to a multiple of 64. PoCL (CPU)
    takes work-groups of width 1 when that size has no small divisor: PP-OCR rec's
    classifier bias over (40, 6625), a grid (6625, 40), ran in groups of (1, 40) and took
    0.50 ms, against 0.09 with the width rounded up (bench/op_kernels.py)."""
    return -(-items // 64) * 64 if items >= 64 else items


def group_side(items: int, cap: int) -> int:
    """A work-group's side over ``items`` work items of a grid's dimension: the power of two
    that covers them, at most ``cap`` (the engine rounds the grid up to whole groups)."""
    return min(cap, 1 << (items - 1).bit_length())


def _compiles_avx512(version: str) -> bool:
    """Whether a device's kernels are compiled with AVX-512: false only for an x86 PoCL
    device whose version names a CPU outside AVX512_CPUS (module docstring)."""
    _, pocl, target = version.partition("HSTR: ")
    if not pocl or not any(arch in target for arch in ("x86_64", "i686", "i386")):
        return True
    return any(target.endswith("-" + cpu) for cpu in AVX512_CPUS)


def _power_of_two(value: int) -> int:
    """The largest power of two <= value (1 for 0): OpenCL vectors have 2, 4, 8 or 16 lanes."""
    return 1 << max(0, value.bit_length() - 1)
