"""Device traits: the vector width kernels are built for follows the device's preference, and
only dedicated (CL_LOCAL) local memory counts for the tiled convolution."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import pytest

from macecl.ops.conv_tiled import tiled_fits
from macecl.ops.traits import DeviceTraits, group_side
from macecl.runtime.device import select_device


def fake_device(preferred=4, local_type=1, local_size=48 * 1024, group=1024, units=132,
                device_type=4, align_bits=4096, version="OpenCL 3.0 CUDA"):
    return types.SimpleNamespace(preferred_vector_width_float=preferred, version=version,
                                 local_mem_type=local_type, local_mem_size=local_size,
                                 max_work_group_size=group, max_compute_units=units,
                                 type=device_type, mem_base_addr_align=align_bits)


@pytest.mark.parametrize("preferred,width", [(0, 4), (1, 4), (4, 4), (8, 8), (12, 8), (16, 16),
                                             (32, 16)])
def test_vector_width_is_a_vector_size_between_4_and_16(preferred, width):
    assert DeviceTraits.of(fake_device(preferred)).vector_width == width


POCL = "OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-"


@pytest.mark.parametrize("version,width", [
    (POCL + "znver3", 8),            # Zen 4 as LLVM 14 names it: the builtins are AVX-512's
    (POCL + "alderlake", 8),
    (POCL + "some-future-cpu", 8),   # unknown: the width both conventions share
    (POCL + "skylake-avx512", 16),
    (POCL + "rocketlake", 16),       # Sapphire Rapids as LLVM 14 names it
    (POCL + "znver4", 16),
    ("OpenCL 3.0 PoCL HSTR: pthread-aarch64-unknown-linux-gnu-neoverse-v1", 16),
    ("OpenCL 3.0 CUDA", 16),
])
def test_sixteen_floats_only_where_the_compiled_cpu_has_avx512(version, width):
    assert DeviceTraits.of(fake_device(16, version=version)).vector_width == width


def test_the_pocl_device_runs_builtins_on_vectors_of_its_width():
    """What the width guards against: on a CPU whose LLVM name lacks features the builtin
    library was built with, a vector builtin crossed calling conventions (a float16 fma
    aborted the build; an exp, fmax chain segfaulted). A child process builds and runs
    builtins on the traits' vectors, so a crash fails this test, not the test run."""
    script = textwrap.dedent("""
        import numpy as np, pyopencl as cl
        from macecl.ops.traits import DeviceTraits
        from macecl.runtime.device import select_device
        device = select_device("portable")
        vw = DeviceTraits.of(device.cl_device).vector_width
        context = cl.Context([device.cl_device])
        queue = cl.CommandQueue(context)
        source = f\"\"\"
        __kernel void k(__global const float{vw}* a, __global float{vw}* out) {{
            const int i = get_global_id(0);
            out[i] = fmax(fma(a[i], a[i], exp(-a[i])), (float{vw})(0.5f));
        }}\"\"\"
        program = cl.Program(context, source).build()
        a = np.linspace(-2, 2, vw * 64, dtype=np.float32)
        out = np.empty_like(a)
        a_buf = cl.Buffer(context, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=a)
        out_buf = cl.Buffer(context, cl.mem_flags.WRITE_ONLY, out.nbytes)
        program.k(queue, (64,), None, a_buf, out_buf)
        cl.enqueue_copy(queue, out, out_buf)
        np.testing.assert_allclose(out, np.maximum(a * a + np.exp(-a), 0.5), rtol=1e-5)
        print("width", vw)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, env={**os.environ, "PYOPENCL_NO_CACHE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2] == "width"


def test_a_gpu_with_dedicated_local_memory_tiles():
    traits = DeviceTraits.of(fake_device())  # NVIDIA's H100 driver reports these
    assert (traits.local_memory_bytes, traits.work_group_size, traits.compute_units) == (
        48 * 1024, 1024, 132)
    assert tiled_fits(traits)


@pytest.mark.parametrize("device", [
    fake_device(local_type=2, local_size=2 * 1024 * 1024, group=4096),  # CL_GLOBAL: emulated
    fake_device(local_size=4 * 1024),  # too little for the tiles
    fake_device(group=128),            # a 64 x 64 tile's group would not launch
])
def test_devices_that_cannot_hold_the_tiles_do_not(device):
    assert not tiled_fits(DeviceTraits.of(device))


def test_the_pocl_device_gives_a_width_its_kernels_build_with_and_no_tiles():
    device = select_device("portable").cl_device
    traits = DeviceTraits.of(device)
    assert traits.vector_width in (4, 8, 16)
    assert traits.vector_width <= max(4, device.preferred_vector_width_float)
    assert traits.local_memory_bytes == 0  # PoCL's CPU device: CL_GLOBAL local memory
    assert traits.compute_units == device.max_compute_units
    assert not tiled_fits(traits)
    assert traits.cpu
    assert traits.address_align == device.mem_base_addr_align // 8 >= 128


def test_address_align_is_the_base_address_alignment_in_bytes():
    assert DeviceTraits.of(fake_device(align_bits=4096)).address_align == 512
    assert DeviceTraits.of(fake_device(align_bits=1024)).address_align == 128  # PoCL's CPU device


@pytest.mark.parametrize("device_type,cpu", [(2, True), (4, False), (6, True), (8, False)])
def test_cpu_follows_the_device_type_bit(device_type, cpu):
    assert DeviceTraits.of(fake_device(8, device_type=device_type)).cpu is cpu


def test_a_cpu_builds_every_program_with_denormals_flushed():
    """Every launch of a plan for a CPU carries -cl-denorms-are-zero (traits.py says why); a
    GPU's carry no option it did not choose."""
    import numpy as np

    from macecl.engine.plan import make_plan
    from macecl.graph import Graph, Node, TensorSpec

    graph = Graph(nodes=[Node("Softmax", "s", ["x"], ["p"]),
                         Node("MatMul", "m", ["p", "v"], ["y"])],
                  inputs=[TensorSpec("x", "float32", [2, 5, 5])],
                  outputs=[TensorSpec("y", "float32", [])],
                  constants={"v": np.ones((5, 3), np.float32)}, opset=18)
    cpu = DeviceTraits.of(fake_device(local_type=2, device_type=2))
    gpu = DeviceTraits.of(fake_device())
    assert cpu.cpu and not gpu.cpu
    cpu_steps = make_plan(graph, [(2, 5, 5)], cpu).steps
    assert cpu_steps and all("-cl-denorms-are-zero" in s.options for s in cpu_steps)
    assert not any("-cl-denorms-are-zero" in s.options
                   for s in make_plan(graph, [(2, 5, 5)], gpu).steps)


@pytest.mark.parametrize("items, cap, side", [(1, 8, 1), (5, 8, 8), (8, 8, 8), (9, 16, 16),
                                              (100, 16, 16), (3, 4, 4), (2, 4, 2)])
def test_group_side_covers_the_items_in_a_power_of_two_up_to_its_cap(items, cap, side):
    assert group_side(items, cap) == side
