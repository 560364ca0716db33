"""OpenCL devices: enumeration, selection and fingerprints."""

from __future__ import annotations

import dataclasses

from macecl.cache.fingerprint import CODEGEN_EXTENSIONS, DeviceFingerprint
from macecl.errors import DeviceNotFoundError
from macecl.runtime.opencl import cl, status_name


@dataclasses.dataclass(frozen=True)
class Device:
    """One OpenCL device, numbered in the order `macecl devices` lists them."""

    index: int
    cl_device: cl.Device
    fingerprint: DeviceFingerprint

    @property
    def name(self) -> str:
        return self.fingerprint.device_name

    @property
    def type_name(self) -> str:
        for kind in ("GPU", "ACCELERATOR", "CPU"):
            if self.cl_device.type & getattr(cl.device_type, kind):
                return kind
        return "OTHER"

    @property
    def is_gpu(self) -> bool:
        return bool(self.cl_device.type & cl.device_type.GPU)

    def describe(self) -> str:
        return f"[{self.index}] {self.name} ({self.fingerprint.platform_name}, {self.type_name})"


def fingerprint(device: cl.Device) -> DeviceFingerprint:
    """What decides whether a binary built on one device can be loaded on another."""
    platform = device.platform
    return DeviceFingerprint(
        platform_name=platform.name.strip(),
        platform_vendor=platform.vendor.strip(),
        platform_version=platform.version.strip(),
        device_name=device.name.strip(),
        device_vendor=device.vendor.strip(),
        device_version=device.version.strip(),
        driver_version=device.driver_version.strip(),
        opencl_c_version=device.opencl_c_version.strip(),
        address_bits=int(device.address_bits),
        extensions=tuple(sorted(set(device.extensions.split()) & CODEGEN_EXTENSIONS)),
    )


def list_devices() -> list[Device]:
    """Every device of every platform; an empty list when no OpenCL platform is installed."""
    try:
        platforms = cl.get_platforms()
    except cl.Error as error:  # the ICD loader says so when it finds no platform at all
        if "PLATFORM_NOT_FOUND" in status_name(error):
            return []
        raise
    devices = []
    for platform in platforms:
        try:
            found = platform.get_devices()
        except cl.Error:  # a platform with no device of any type
            continue
        for cl_device in found:
            devices.append(Device(len(devices), cl_device, fingerprint(cl_device)))
    return devices


def select_device(selector: str | int | None = None) -> Device:
    """The device named by ``selector``: an index, or a substring of the platform or device name.

    Without a selector: the first GPU, else the first device (PoCL's CPU device when only the
    packaged PoCL is installed).
    """
    devices = list_devices()
    if not devices:
        raise DeviceNotFoundError(
            "no OpenCL platform found: install a GPU driver with OpenCL support, or "
            "`pip install pocl-binary-distribution` for the CPU device"
        )
    listing = "; ".join(d.describe() for d in devices)
    if selector is None or selector == "":
        return next((d for d in devices if d.is_gpu), devices[0])
    text = str(selector).strip()
    if text.isdigit():
        index = int(text)
        if index < len(devices):
            return devices[index]
        raise DeviceNotFoundError(f"no OpenCL device number {index}; devices: {listing}")
    needle = text.lower()
    for device in devices:
        haystack = f"{device.fingerprint.platform_name} {device.name}".lower()
        if needle in haystack:
            return device
    raise DeviceNotFoundError(f"no OpenCL device matches {text!r}; devices: {listing}")
