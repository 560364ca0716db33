"""What every `macecl` subcommand shares: the consoles, the error exit, common options."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from macecl import config
from macecl.progress import Silent, Steps

out = Console()
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


class _Bars:
    """macecl.progress.Steps as rich progress bars on stderr, one bar a step."""

    def __init__(self, progress: Progress):
        self.progress, self.task = progress, None

    def start(self, description: str, total: int) -> None:
        self.task = self.progress.add_task(description, total=total)

    def advance(self) -> None:
        self.progress.advance(self.task)


@contextlib.contextmanager
def progress_bars(quiet: bool) -> Iterator[Steps]:
    """Progress bars for a library call's long steps, or silence with ``quiet``."""
    if quiet:
        yield Silent()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        yield _Bars(progress)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error; the caller raises the returned Exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def cache_file(path: Path | None) -> Path:
    if path is None:
        from macecl.runtime.context import default_cache_path

        return default_cache_path()
    return path / config.CACHE_FILE_NAME if path.is_dir() else path


def shape_option(text: str) -> tuple[str, list[int]]:
    name, _, dims = text.rpartition(":")
    try:
        shape = [int(d) for d in dims.split(",")]
    except ValueError:
        shape = []
    if not name or not shape or min(shape) < 0:
        raise fail(f"--input-shape {text!r}: expected NAME:D1,D2,... (for example x:1,3,224,224)")
    return name, shape
