"""The OpenCL kernel library: one ``.cl`` program per op family, shipped in the package.

A program's text is what the driver compiles, so the runtime identifies a program by the
hash of its *full* source. ``#include "x.h"`` lines naming a header of this library are
therefore inlined here, never left to the compiler's include path: a changed header then
changes the key of every program that uses it, and a stale binary can never be reused.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from macecl.errors import MaceclError

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
