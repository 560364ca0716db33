"""One application start for the concurrency tests: waits for "go" on stdin, then opens an
Engine on a model against the storage in MACECL_CACHE_DIR, runs it once and prints JSON.

    python starter.py MODEL.onnx
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np

import macecl


def main() -> None:
    model = sys.argv[1]
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with macecl.Engine(model) as engine:
            feeds = {s.name: np.ones(s.shape, np.float32) for s in engine.inputs}
            engine.run(feeds)
            programs = [[p.key.name, p.key.options, p.key.source_sha256.hex()]
                        for p in engine.context.programs.programs]
            stats = engine.stats
    for warning in caught:  # as an application would see them
        print(f"warning: {warning.message}", file=sys.stderr)
    print(json.dumps({"model": model, "seconds": time.perf_counter() - started,
                      "from_source": stats.programs_from_source,
                      "from_cache": stats.programs_from_cache, "programs": programs,
                      "warnings": [str(w.message) for w in caught]}))


if __name__ == "__main__":
    main()
