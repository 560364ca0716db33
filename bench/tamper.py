"""Tamper evidence on the real device: every tamper case, refused or not, rebuilt or not.

    python bench/tamper.py [--json]

Each case (tests/security/tamper_cases.py) writes a real cache with the device, tampers with
it as an attacker who knows the format but not the key would (or plants a link, a FIFO, a
world-writable directory), then starts a fresh context on it. *refused*: no stored binary
was used and a warning said why; *rebuilt*: the program was built from source, computed the
right result, and what was saved afterwards is trusted under the reader's key. With --json,
one object: {"cases": [{"name", "refused", "rebuilt"}]}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "security")]

import tamper_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    outcomes = []
    for name in tamper_cases.CASES:
        with tempfile.TemporaryDirectory(prefix=f"tamper-{name}-") as directory:
            outcomes.append(tamper_cases.run_case(name, Path(directory)))
    if args.json:
        print(json.dumps({"cases": [o.row() for o in outcomes]}))
        return
    for o in outcomes:
        why = o.warnings[0] if o.warnings else "(no warning)"
        print(f"{o.name:>28}: refused={o.refused!s:5} rebuilt={o.rebuilt!s:5} {why[:110]}")


if __name__ == "__main__":
    main()
