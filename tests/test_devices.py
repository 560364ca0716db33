"""Device enumeration, selection and fingerprints on the real PoCL platform."""

from __future__ import annotations

import pytest

from macecl import DeviceNotFoundError, config, list_devices, select_device
from macecl.cache.fingerprint import CODEGEN_EXTENSIONS


def test_pocl_cpu_device_is_listed_with_a_full_fingerprint():
    devices = list_devices()
    assert devices, "PoCL from pocl-binary-distribution should provide a CPU device"
    pocl = next(d for d in devices if "Portable Computing Language" in d.fingerprint.platform_name)
    fp = pocl.fingerprint
    assert pocl.type_name == "CPU"
    assert fp.platform_vendor and fp.platform_version.startswith("OpenCL")
    assert fp.device_vendor and fp.device_version.startswith("OpenCL")
    assert fp.driver_version and fp.opencl_c_version.startswith("OpenCL C")
    assert fp.address_bits in (32, 64)
    assert set(fp.extensions) <= CODEGEN_EXTENSIONS
    assert [d.index for d in devices] == list(range(len(devices)))


def test_default_prefers_a_gpu_else_the_first_device():
    devices = list_devices()
    expected = next((d for d in devices if d.is_gpu), devices[0])
    assert select_device().index == expected.index


def test_select_by_index_and_by_name_substring():
    device = list_devices()[0]
    assert select_device(0).index == 0 and select_device("0").index == 0
    assert select_device(device.name[:6].upper()).index == device.index
    assert select_device("portable computing").fingerprint.platform_name.startswith("Portable")


def test_macecl_device_setting_is_used_by_the_builder():
    from macecl import GPUContextBuilder

    with config.override(device="pthread"):
        assert "pthread" in GPUContextBuilder().finalize().device.name
    with config.override(device="no-such-gpu"), pytest.raises(DeviceNotFoundError):
        GPUContextBuilder().finalize()


@pytest.mark.parametrize("selector", ["99", "Adreno 740"])
def test_unknown_selector_lists_what_exists(selector):
    with pytest.raises(DeviceNotFoundError) as raised:
        select_device(selector)
    assert selector in str(raised.value) and list_devices()[0].name in str(raised.value)


def test_a_cache_dir_given_as_text_is_a_path(tmp_path):
    """config.override(cache_dir="...") as an application writes it: the context's cache
    file goes in that directory, as with a Path or MACECL_CACHE_DIR."""
    from macecl.runtime.context import GPUContextBuilder

    with config.override(cache_dir=str(tmp_path / "text")):
        assert config.settings().cache_dir == tmp_path / "text"
        context = GPUContextBuilder().finalize()
        try:
            assert context.cache_path.parent == tmp_path / "text"
        finally:
            context.close()
