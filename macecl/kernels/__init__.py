"""The OpenCL kernel library: one ``.cl`` program per op family, shipped in the package.

A program's text is what the driver compiles, so the runtime identifies a program by the
hash of its *full* source. ``#include "x.h"`` lines naming a header of this library are
therefore inlined here, never left to the compiler's include path: a changed header then
changes the key of every program that uses it, and a stale binary can never be reused.

The runtime builds each kernel of a file as a program of its own (``kernel_source`` says why).
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from macecl.errors import MaceclError

# A kernel's definition: from "__kernel" at the start of a line to the first "}" that is a
# line of its own (the library's layout, checked for every kernel by the library tests).
_KERNEL = re.compile(r"^__kernel\b.*?^\}[ \t]*$\n?", re.MULTILINE | re.DOTALL)
_KERNEL_NAME = re.compile(r"\bvoid\s+(\w+)\s*\(")
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"[ \t]*$', re.MULTILINE)


def _read(file_name: str) -> str:
    path = resources.files(__package__).joinpath("cl", file_name)
    if not path.is_file():
        raise MaceclError(
            f"kernel library file {file_name!r} does not exist; "
            f"programs available: {', '.join(program_names())}"
        )
    return path.read_text(encoding="utf-8")


def _inline_headers(text: str, seen: set[str]) -> str:
    def expand(match: re.Match[str]) -> str:
        header = match.group(1)
        if header in seen:  # every header is inlined once, as if it had #pragma once
            return ""
        seen.add(header)
        return _inline_headers(_read(header), seen)

    return _INCLUDE.sub(expand, text)


def program_names() -> list[str]:
    """Names of the programs in the library (``conv2d`` for ``cl/conv2d.cl``)."""
    folder = resources.files(__package__).joinpath("cl")
    return sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".cl"))


@functools.cache
def program_source(name: str) -> str:
    """The complete source of program ``name`` with every library header inlined."""
    if name not in program_names():
        raise MaceclError(
            f"no kernel program named {name!r}; programs available: {', '.join(program_names())}"
        )
    return with_headers(_read(f"{name}.cl"))


def with_headers(text: str) -> str:
    """OpenCL C text with the library headers it includes inlined (as program_source does;
    the benchmarks use it on kernels as they were at an earlier commit)."""
    return _inline_headers(text, set())


def kernel_names(name: str) -> list[str]:
    """The kernels of program ``name``, in the order they are defined."""
    return [_name_of(match.group(0)) for match in _KERNEL.finditer(program_source(name))]


@functools.cache
def kernel_source(name: str, kernel: str) -> str:
    """Program ``name``'s source with every kernel but ``kernel`` left out.

    Why: PoCL turns every kernel of a program into machine code for any work-group size when
    the program's binary is taken, which the runtime does after each cold start to keep the
    binary in the cache. That cost 2.6-2.8 s for conv2d.cl's six kernels where a model used
    one or two; built alone, a kernel costs only its own. Helpers, macros and types stay:
    the compiler drops what the kernel does not use.
    """
    source = program_source(name)
    if kernel not in kernel_names(name):
        raise MaceclError(f"program {name!r} has no kernel {kernel!r}; its kernels: "
                          f"{', '.join(kernel_names(name))}")
    return _KERNEL.sub(lambda m: m.group(0) if _name_of(m.group(0)) == kernel else "", source)


def _name_of(definition: str) -> str:
    return _KERNEL_NAME.search(definition).group(1)
