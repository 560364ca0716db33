"""Many application starts at once on one storage path, and what they leave behind.

Each start is a fresh process (starter.py) that waits at a barrier, so that all of them open
the cache, build and flush at the same moment. Used by the tests and by bench/reliability.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import distinct_models

from macecl.cache.format import CacheFile

STARTER = Path(__file__).with_name("starter.py")
PROCESSES = 8
DEADLINE = 300  # seconds a start may take before the test calls it stuck (the lock waits 30 s)


def models_for_round(number: int, directory: Path) -> list[Path]:
    """PROCESSES models for round ``number``: two pairs share a model, the others differ,
    and each round brings models the earlier rounds did not build."""
    names = list(distinct_models.MODELS)
    picks = [names[(number * 3 + i) % len(names)] for i in (0, 0, 1, 1, 2, 3, 4, 5)]
    return [directory / f"{n}.onnx" if (directory / f"{n}.onnx").exists()
            else distinct_models.write(n, directory) for n in picks]


def start_together(models: list[Path], storage: Path, lock_timeout: float | None = None
                   ) -> list[dict]:
    """Start one process per model at once on ``storage``; each one's JSON report.

    Raises AssertionError if any fails or takes over DEADLINE seconds.
    """
    env = {**os.environ, "MACECL_CACHE_DIR": str(storage), "POCL_KERNEL_CACHE": "0"}
    if lock_timeout is not None:
        env["MACECL_LOCK_TIMEOUT"] = str(lock_timeout)
    processes = [subprocess.Popen([sys.executable, str(STARTER), str(m)], env=env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for m in models]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready", process.communicate()[1]
        for process in processes:  # the barrier: all are loaded, none has started
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=DEADLINE)
            assert process.returncode == 0, f"a start failed:\n{stderr}"
            reports.append({**json.loads(stdout.strip().splitlines()[-1]), "stderr": stderr})
        return reports
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def stored_programs(path: Path) -> set[tuple[str, str, str]]:
    """(name, options, source hash) of every entry; AssertionError unless the file verifies."""
    cache = CacheFile(path.read_bytes(), origin=str(path))
    assert cache.verify() == [], cache.verify()
    return {(e.key.name, e.key.options, e.key.source_sha256.hex()) for e in cache.entries}


def built(reports: list[dict]) -> set[tuple[str, str, str]]:
    return {tuple(p) for r in reports for p in r["programs"]}
