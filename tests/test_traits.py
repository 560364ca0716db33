"""Device traits: the vector width kernels are built for follows the device's preference, and
only dedicated (CL_LOCAL) local memory counts for the tiled convolution."""

from __future__ import annotations

import types

import pytest

from macecl.ops.conv_tiled import tiled_fits
from macecl.ops.traits import DeviceTraits, group_side
from macecl.runtime.device import select_device


def fake_device(preferred=4, local_type=1, local_size=48 * 1024, group=1024, units=132,
                device_type=4, align_bits=4096):
    return types.SimpleNamespace(preferred_vector_width_float=preferred,
                                 local_mem_type=local_type, local_mem_size=local_size,
                                 max_work_group_size=group, max_compute_units=units,
                                 type=device_type, mem_base_addr_align=align_bits)


@pytest.mark.parametrize("preferred,width", [(0, 4), (1, 4), (4, 4), (8, 8), (12, 8), (16, 16),
                                             (32, 16)])
def test_vector_width_is_a_vector_size_between_4_and_16(preferred, width):
    assert DeviceTraits.of(fake_device(preferred)).vector_width == width


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
