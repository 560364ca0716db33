"""Worker processes that build programs from source and hand their binaries to the parent.

Threads are the first choice for concurrent builds (pyopencl calls clBuildProgram with the
GIL released), but a driver may compile one program at a time per process whatever the
threads do, and then only processes build in parallel. Each worker opens the parent's device
(found by its index and checked against its fingerprint, so a changed device list cannot
hand over binaries for another device), builds, and returns ``clGetProgramInfo`` binaries;
the parent creates its program from them, which costs milliseconds.

NOTE: PoCL generates a kernel's machine code at its first launch, and a binary taken right
after clBuildProgram makes PoCL generate it for every kernel of the program there and then.
The parent still pays its own at the first launch (conv2d, PoCL 3.0: 0.08 and 0.19 s from a
worker's binary, 0.08 s after building it itself), so on PoCL the worker's is extra work.

Workers are started with the ``spawn`` method: forking a process whose OpenCL driver already
runs threads can deadlock the child.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from macecl.cache.fingerprint import DeviceFingerprint
from macecl.runtime.device import Device

# The worker's device and context, opened once per worker process by ``_open``.
_worker: tuple | None = None


class WorkerBuildFailed(Exception):
    """The worker's driver refused to build the program; carries its status and build log."""

    def __init__(self, status: str, log: str):
        super().__init__(status)
        self.status, self.log = status, log


def _open(index: int, expected: DeviceFingerprint) -> None:
    global _worker
    from macecl.runtime.device import list_devices
    from macecl.runtime.opencl import cl

    devices = list_devices()
    if index >= len(devices) or devices[index].fingerprint != expected:
        raise RuntimeError(f"build worker found no device {index} like the parent's "
                           f"({expected.device_name}, {expected.driver_version})")
    device = devices[index]
    _worker = (device, cl.Context([device.cl_device]))


def _build(source: str, options: str) -> tuple[bytes | None, str, str]:
    """(binary, "", "") when the build succeeds, else (None, status, build log)."""
    from macecl.runtime.opencl import Error, RawProgram, build, build_log, cl, status_name

    device, context = _worker
    raw = RawProgram(context, source)
    try:
        build(raw, options.encode("utf-8"), [device.cl_device])
    except Error as error:
        return None, status_name(error), build_log(raw)
    return bytes(raw.get_info(cl.program_info.BINARIES)[0]), "", ""


class WorkerPool:
    """``workers`` processes building programs for ``device``; ``build`` blocks until done."""

    def __init__(self, device: Device, workers: int):
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_open,
            initargs=(device.index, device.fingerprint),
        )

    def build(self, source: str, options: str) -> bytes:
        """The program's binary; raises WorkerBuildFailed when the driver refused the source."""
        binary, status, log = self._executor.submit(_build, source, options).result()
        if binary is None:
            raise WorkerBuildFailed(status, log)
        return binary

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)
