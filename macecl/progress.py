"""How library code reports its long steps (converting, compiling N programs, timing runs).

The library only says what it is doing and how far it got; the command line turns that into
progress bars, and everyone else gets the silent default.
"""

from __future__ import annotations

from typing import Protocol


class Steps(Protocol):
    def start(self, description: str, total: int) -> None:
        """A new step of ``total`` units begins (the previous one is over)."""

    def advance(self) -> None:
        """One unit of the current step is done."""


class Silent:
    """Steps reported to nobody."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self) -> None:
        pass
