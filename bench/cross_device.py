"""A cache carried between two real devices (NVIDIA's OpenCL and PoCL on the GPU machine).

Each step runs in a fresh process (so a driver that crashed on a foreign binary would show
as a failed step, not take the harness down) on one cache file:
  write     device A builds the model's programs and saves them;
  other     device B starts with A's file: A's entries are not B's (reuse policy), so B
            builds from source and the file gains a second section;
  forged-B  A's binaries relabelled with B's fingerprint (a mislabelled or copied file):
            B's driver must reject each (CL_INVALID_BINARY) and macecl rebuild it;
  forged-A  the same the other way round.
Every step's outputs are compared with the first one's.

    python bench/cross_device.py [--a NVIDIA] [--b Portable] [--model squeezenet] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from latency import model_list, random_feeds  # noqa: E402  (a sibling script, not a package)


def step(device: str, cache: Path, model: str, outputs: Path) -> dict:
    """One start on ``device`` with ``cache``: counters, warnings, outputs saved to a file."""
    import macecl

    path, shapes = model_list()[model]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        context = macecl.GPUContextBuilder().set_device(device).set_opencl_cache_full_path(
            cache).finalize()
        with macecl.Engine(path, context=context, input_shapes=shapes or None) as engine:
            feeds = random_feeds(engine.inputs, shapes)
            result = engine.run(feeds)
            stats = context.stats
        context.close()
    np.savez(outputs, **result)
    return {"device": context.device.name, "from_cache": stats.from_cache,
            "from_source": stats.from_source, "rejected_binaries": stats.rejected_binaries,
            "warnings": sorted({str(w.message).split(" binary of ")[0] for w in caught})}


def relabel(cache: Path, source: str, target: str) -> int:
    """Give the entries of the device named like ``source`` the fingerprint of ``target``."""
    from macecl.cache.format import CacheFile, encode, entries_of

    entries = entries_of(CacheFile(cache.read_bytes()))
    devices = {e.device for e in entries}
    old = next(d for d in devices if source.lower() in d.device_name.lower()
               or source.lower() in d.platform_name.lower())
    new = next(d for d in devices if d != old)
    moved = [dataclasses.replace(e, device=new) for e in entries if e.device == old]
    cache.write_bytes(encode(moved))
    return len(moved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", default="NVIDIA")
    parser.add_argument("--b", default="Portable")
    parser.add_argument("--model", default="squeezenet")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--step", help=argparse.SUPPRESS)  # DEVICE CACHE OUTPUTS, internal
    args = parser.parse_args()
    if args.step:
        device, cache, outputs = args.step.split("|")
        print(json.dumps(step(device, Path(cache), args.model, Path(outputs))))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="macecl-cross-") as scratch:
        cache = Path(scratch) / "mace_cl_compiled_program.bin"

        def start(name: str, device: str) -> None:
            outputs = Path(scratch) / f"{name}.npz"
            done = subprocess.run([sys.executable, __file__, "--model", args.model, "--step",
                                   f"{device}|{cache}|{outputs}"], capture_output=True, text=True)
            if done.returncode != 0:
                results[name] = {"failed": done.returncode, "stderr": done.stderr[-600:]}
                return
            results[name] = json.loads(done.stdout.splitlines()[-1])
            first = np.load(Path(scratch) / "write.npz")
            got = np.load(outputs)
            results[name]["max_abs_difference_to_write"] = max(
                float(np.max(np.abs(got[k] - first[k]))) for k in first.files)

        start("write", args.a)
        start("other", args.b)
        snapshot = cache.read_bytes()
        results["relabelled_to_b"] = relabel(cache, args.a, args.b)
        start("forged-B", args.b)
        cache.write_bytes(snapshot)
        results["relabelled_to_a"] = relabel(cache, args.b, args.a)
        start("forged-A", args.a)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
