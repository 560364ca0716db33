"""Coverage-guided fuzzing (atheris, libFuzzer) of the readers of untrusted bytes.

    python bench/fuzz.py --runs 5000 [--json] [--target cache_format ...]

Each target (tests/fuzz/fuzz_targets.py: the MCLP cache reader, the .macecl model loader, the
ONNX path of the model loader) runs in its own process, because libFuzzer owns the process
it runs in and exits it when done. It starts from the seeds and the stored corpus
(tests/fuzz/corpus/<target>/), and afterwards the smallest new inputs that reached new code
are added to that corpus, and every crashing input as ``crash-*``; tests/fuzz replays them.

An input is *rejected* when the reader raised a MaceclError, *accepted* when it returned,
and a *crash* otherwise (another exception, or the process killed: libFuzzer's per-input
time limit, its RSS limit, a signal). Counters live in a small shared file, so they survive
libFuzzer's exit. With --json, one object: {"targets": [{"name", "executions", "rejected",
"accepted", "crashes", "seconds", "max_rss_mb"}]}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS_DIR = ROOT / "tests" / "fuzz"
COUNTERS = struct.Struct("<4Q")  # executions, rejected, accepted, crashes


def worker(target: str, runs: int, counters: Path, work: Path, crashes: Path, args) -> None:
    """Runs inside the child: fuzz ``target`` for ``runs`` executions, then libFuzzer exits."""
    import atheris

    sys.path.insert(0, str(TARGETS_DIR))
    with atheris.instrument_imports(include=["macecl", "fuzz_targets"]):
        import fuzz_targets

        from macecl.errors import MaceclError
    # Imported only after instrumentation, so macecl's own code is what guides the fuzzer.
    for number, seed in enumerate(fuzz_targets.SEEDS[target]()):
        (work / f"seed-{number}").write_bytes(seed)
    with open(counters, "r+b") as stream:
        shared = mmap.mmap(stream.fileno(), COUNTERS.size)
    counts = [0, 0, 0, 0]

    def one_input(data: bytes) -> None:
        counts[0] += 1
        try:
            fuzz_targets.TARGETS[target](data)
            counts[2] += 1
        except MaceclError:
            counts[1] += 1
        except Exception:  # noqa: BLE001 (the point: anything else is a finding)
            counts[3] += 1
            (crashes / f"crash-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
        COUNTERS.pack_into(shared, 0, *counts)

    atheris.Setup(
        [sys.argv[0], f"-runs={runs}", f"-max_len={args.max_len}", f"-timeout={args.timeout}",
         f"-rss_limit_mb={args.rss_limit_mb}", f"-artifact_prefix={crashes}/",
         "-print_final_stats=0", str(work)],
        one_input,
    )
    atheris.Fuzz()


def fuzz_one(target: str, args) -> dict:
    """Fuzz ``target`` in a child process; store its findings; its counters as a dict."""
    stored = TARGETS_DIR / "corpus" / target
    stored.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as scratch:
        work, counters = Path(scratch) / "work", Path(scratch) / "counters"
        work.mkdir()
        counters.write_bytes(bytes(COUNTERS.size))
        known = {p.name for p in stored.iterdir()}
        for path in stored.iterdir():
            (work / path.name).write_bytes(path.read_bytes())
        command = [sys.executable, __file__, "--worker", target, "--runs", str(args.runs),
                   "--counters", str(counters), "--work", str(work), "--crashes", str(stored),
                   "--max-len", str(args.max_len), "--timeout", str(args.timeout),
                   "--rss-limit-mb", str(args.rss_limit_mb)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        seconds = time.perf_counter() - started
        executions, rejected, accepted, crashes = COUNTERS.unpack(counters.read_bytes())
        if done.returncode != 0:  # libFuzzer stopped on a timeout, OOM or signal
            crashes += 1
            sys.stderr.write(done.stderr[-4000:])
        new = sorted((p for p in work.iterdir() if p.name not in known
                      and not p.name.startswith("seed-")), key=lambda p: p.stat().st_size)
        for path in new[: args.keep]:
            (stored / path.name).write_bytes(path.read_bytes())
    return {"name": target, "executions": executions, "rejected": rejected,
            "accepted": accepted, "crashes": crashes, "seconds": round(seconds, 3),
            "max_rss_mb": _max_rss_line(done.stderr)}


def _max_rss_line(log: str) -> int | None:
    """libFuzzer's last ``rss: NMb`` status figure: the child's peak resident memory."""
    figures = [word for word in log.split() if word.endswith("Mb") and word[:-2].isdigit()]
    return int(figures[-1][:-2]) if figures else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="executions per target")
    parser.add_argument("--target", action="append", help="fuzz only these (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", type=int, default=10,
                        help="new interesting inputs added to the corpus per target and run")
    parser.add_argument("--max-len", type=int, default=8192, help="largest input, bytes")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory bound")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    for hidden in ("--counters", "--work", "--crashes"):
        parser.add_argument(hidden, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.runs, args.counters, args.work, args.crashes, args)
        return
    sys.path.insert(0, str(TARGETS_DIR))
    import fuzz_targets

    names = args.target or sorted(fuzz_targets.TARGETS)
    unknown = set(names) - set(fuzz_targets.TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; targets: {sorted(fuzz_targets.TARGETS)}")
    results = [fuzz_one(name, args) for name in names]
    if args.json:
        print(json.dumps({"targets": results}))
        return
    for r in results:
        print(f"{r['name']:>14}: {r['executions']:>7} executions, {r['rejected']} rejected, "
              f"{r['accepted']} accepted, {r['crashes']} crashes, {r['seconds']:.1f} s, "
              f"peak RSS {r['max_rss_mb']} MB")


if __name__ == "__main__":
    main()
