"""Device traits: the vector width kernels are built for follows the device's preference."""

from __future__ import annotations

import types

import pytest

from macecl.ops.traits import DeviceTraits
from macecl.runtime.device import select_device


@pytest.mark.parametrize("preferred,width", [(0, 4), (1, 4), (4, 4), (8, 8), (12, 8), (16, 16),
                                             (32, 16)])
def test_vector_width_is_a_vector_size_between_4_and_16(preferred, width):
    device = types.SimpleNamespace(preferred_vector_width_float=preferred)
    assert DeviceTraits.of(device).vector_width == width


def test_the_pocl_device_gives_a_width_its_kernels_build_with():
    device = select_device("portable").cl_device
    width = DeviceTraits.of(device).vector_width
    assert width in (4, 8, 16)
    assert DeviceTraits.of(device).cpu
    assert width <= max(4, device.preferred_vector_width_float)


@pytest.mark.parametrize("device_type,cpu", [(2, True), (4, False), (6, True), (8, False)])
def test_cpu_follows_the_device_type_bit(device_type, cpu):
    device = types.SimpleNamespace(preferred_vector_width_float=8, type=device_type)
    assert DeviceTraits.of(device).cpu is cpu
