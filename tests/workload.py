"""A fresh process for the cache tests: runs the add program once per constant given on the
command line against one cache file, flushes, and prints its counters as JSON."""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import assert_added, build_context, run_add  # noqa: E402


def main() -> None:
    cache_path, *constants = sys.argv[1:]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        context = build_context(Path(cache_path))
        for constant in map(int, constants):
            assert_added(run_add(context, constant), constant)
        saved = context.flush()
    stats = dataclasses.asdict(context.stats)
    warned = [str(w.message) for w in caught]
    print(json.dumps({**stats, "saved": saved, "warnings": warned}))


if __name__ == "__main__":
    main()
