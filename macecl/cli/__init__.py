"""The `macecl` command. The only place in macecl that prints for people or exits.

One module per group of subcommands; this one makes the app and registers them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from macecl import config
from macecl.cli.cache import cache_app, inspect
from macecl.cli.common import JsonFlag, err, fail, out
from macecl.cli.models import convert, run
from macecl.cli.tune import tune
from macecl.errors import MaceclError

app = typer.Typer(help="Run neural networks on OpenCL devices, with MACE's compiled-program cache.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(cache_app, name="cache")
app.command()(convert)
app.command()(run)
app.command()(tune)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False):
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command()
def devices(as_json: JsonFlag = False) -> None:
    """List OpenCL platforms and devices with their fingerprints."""
    from macecl.runtime.device import list_devices, select_device

    found = list_devices()
    default = select_device().index if found else None
    if as_json:
        rows = [{"index": d.index, "type": d.type_name, "default": d.index == default,
                 "fingerprint": dataclasses.asdict(d.fingerprint)} for d in found]
        print(json.dumps({"devices": rows}, indent=2))
        return
    if not found:
        raise fail("no OpenCL platform found; `pip install pocl-binary-distribution` "
                    "gives the CPU device")
    table = Table(title="OpenCL devices (* = default)")
    for column in ("#", "device", "type", "platform", "driver", "OpenCL C"):
        table.add_column(column)
    for d in found:
        fp = d.fingerprint
        table.add_row(f"{d.index}{'*' if d.index == default else ''}", fp.device_name,
                      d.type_name, fp.platform_name, fp.driver_version, fp.opencl_c_version)
    out.print(table)
    out.print("full fingerprints: macecl devices --json", highlight=False, soft_wrap=True)


@app.command()
def demo(cache_dir: Annotated[Optional[Path], typer.Option(  # noqa: UP007
        help="Where to keep the demo's files; default: a new temporary directory.")] = None,
         device: Annotated[Optional[str], typer.Option(help="Device index or name.")] = None,  # noqa: UP007
         ) -> None:
    """Convert a real CNN, start it cold then warm in fresh processes, show the cache file."""
    import os
    import tempfile

    from macecl.demo import MODEL_NAME, demo_model, spawn
    from macecl.graph.model_file import SUFFIX

    directory = cache_dir or Path(tempfile.mkdtemp(prefix="macecl-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    cache = directory / config.CACHE_FILE_NAME
    cache.unlink(missing_ok=True)
    model = directory / f"{MODEL_NAME}{SUFFIX}"
    out.print(f"$ macecl convert {demo_model()} -o {model}", highlight=False, soft_wrap=True)
    convert(demo_model(), output=model, input_shape=None, as_json=False)
    # Keep the drivers' own caches out, so that "cold" means what a new device goes through.
    env = {**os.environ, "POCL_KERNEL_CACHE": "0", "CUDA_CACHE_DISABLE": "1"}
    table = Table(title=f"{MODEL_NAME}: start-up in fresh processes")
    for column in ("process", "init s", "first run s", "start to result s", "from source",
                   "from cache"):
        table.add_column(column, justify="right")
    runs = {}
    for name in ("cold", "warm"):
        with out.status(f"{name} start in a fresh process..."):
            runs[name] = run = spawn(model, cache, device, env=env)
        table.add_row(name, f"{run['init_seconds']:.3f}", f"{run['first_run_seconds']:.3f}",
                      f"{run['start_to_result_seconds']:.3f}", str(run["programs_from_source"]),
                      str(run["programs_from_cache"]))
    out.print(f"\ndevice: {runs['cold']['device']}", highlight=False, soft_wrap=True)
    out.print(table)
    cold, warm = runs["cold"], runs["warm"]
    same = "the same" if cold["output_sha256"] == warm["output_sha256"] else "DIFFERENT"
    out.print(f"warm init {cold['init_seconds'] / warm['init_seconds']:.0f}x faster than cold; "
              f"both runs gave {same} output {cold['output_shape']}; cache file: {cache}",
              highlight=False, soft_wrap=True)
    out.print(f"\n$ macecl cache inspect {cache}", highlight=False, soft_wrap=True)
    inspect(cache, as_json=False)


def main() -> None:
    """Entry point: run the app, turning macecl's errors into a message and exit status 1."""
    try:
        app()
    except MaceclError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
