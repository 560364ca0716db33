"""PoCL's kernel cache is turned off and its scratch kept in RAM, unless the user says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from macecl.runtime import pocl_scratch


def test_unset_environment_gets_cache_off_and_private_scratch(tmp_path: Path):
    environ: dict[str, str] = {}
    scratch = pocl_scratch.prepare(environ, ram=tmp_path)
    assert environ["POCL_KERNEL_CACHE"] == "0"
    assert scratch is not None and scratch.parent == tmp_path and scratch.is_dir()
    assert environ["POCL_CACHE_DIR"] == str(scratch)
    assert scratch.name.startswith(f"{pocl_scratch.PREFIX}{os.getpid()}-")


def test_user_cache_directory_is_left_alone(tmp_path: Path):
    environ = {"POCL_CACHE_DIR": "/somewhere"}
    assert pocl_scratch.prepare(environ, ram=tmp_path) is None
    assert environ == {"POCL_CACHE_DIR": "/somewhere"}
    assert list(tmp_path.iterdir()) == []


def test_user_who_keeps_pocl_cache_on_keeps_it_on_disk(tmp_path: Path):
    environ = {"POCL_KERNEL_CACHE": "1"}
    assert pocl_scratch.prepare(environ, ram=tmp_path) is None
    assert environ == {"POCL_KERNEL_CACHE": "1"}


def test_no_ram_directory_means_no_redirection(tmp_path: Path):
    environ: dict[str, str] = {}
    assert pocl_scratch.prepare(environ, ram=tmp_path / "missing") is None
    assert environ == {"POCL_KERNEL_CACHE": "0"}


def test_directories_of_dead_processes_are_swept(tmp_path: Path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    left_by_dead = tmp_path / f"{pocl_scratch.PREFIX}{dead.stdout.strip()}-abc"
    left_by_live = tmp_path / f"{pocl_scratch.PREFIX}{os.getppid()}-abc"
    unrelated = tmp_path / "someone-else"
    for directory in (left_by_dead, left_by_live, unrelated):
        directory.mkdir()
        (directory / "tempfile_x").write_bytes(b"")
    pocl_scratch.prepare({}, ram=tmp_path)
    assert not left_by_dead.exists()
    assert left_by_live.exists() and unrelated.exists()


def test_real_process_runs_pocl_in_scratch_and_removes_it_at_exit():
    """A fresh interpreter builds a program on PoCL with the scratch in place, then exits."""
    script = (
        "import os, macecl.runtime.opencl as o\n"
        "ctx = o.cl.Context([o.cl.get_platforms()[0].get_devices()[0]])\n"
        "o.RawProgram(ctx, '__kernel void k(__global float* a) { a[0] = 1.0f; }').build(b'')\n"
        "print(os.environ['POCL_CACHE_DIR'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCL_")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True)
    scratch = Path(done.stdout.strip())
    assert scratch.parent == pocl_scratch.RAM_DIRECTORY
    assert not scratch.exists()
