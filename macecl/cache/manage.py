"""Cache management on lists of entries: merge files, prune to a size (oldest use first).

Pure functions: the store (locked, atomic writes) and the command line do the file work.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable

from macecl.cache.fingerprint import DeviceFingerprint, ProgramKey
from macecl.cache.format import NewEntry, encoded_size

log = logging.getLogger(__name__)


def merge(*sources: Iterable[NewEntry]) -> list[NewEntry]:
    """The union of the sources; per (device fingerprint, key) the most recently used entry
    wins, and between equally recent ones the later source."""
    chosen: dict[tuple[DeviceFingerprint, ProgramKey], NewEntry] = {}
    for source in sources:
        for entry in source:
            slot = (entry.device, entry.key)
            held = chosen.get(slot)
            if held is None or entry.last_used >= held.last_used:
                chosen[slot] = entry
    return list(chosen.values())


@dataclasses.dataclass(frozen=True)
class Pruned:
    """What a prune kept and what it dropped, and why."""

    kept: list[NewEntry]
    least_recently_used: list[NewEntry]  # dropped to fit the size
    unmatched: list[NewEntry]  # dropped because no device named in ``keep_devices`` has them

    @property
    def size(self) -> int:
        return encoded_size(self.kept)


def _oldest_first(entry: NewEntry) -> tuple:
    # Ties are broken by identity, so that one input always gives one output.
    return (entry.last_used, entry.device.to_bytes(), entry.key.name, entry.key.options,
            entry.key.source_sha256)


def prune(
    entries: Iterable[NewEntry],
    max_bytes: int,
    keep_devices: Collection[DeviceFingerprint] | None = None,
) -> Pruned:
    """Drop the least recently used entries until the encoded file is at most ``max_bytes``.

    With ``keep_devices``, entries whose fingerprint is none of them (other devices, older
    drivers) are dropped first, whatever their age. An empty file is always small enough
    to keep (header and trailer only), so a bound below that leaves no entry.
    """
    entries = list(entries)
    unmatched: list[NewEntry] = []
    if keep_devices is not None:
        wanted = set(keep_devices)
        unmatched = [e for e in entries if e.device not in wanted]
        entries = [e for e in entries if e.device in wanted]
    ordered = sorted(entries, key=_oldest_first)
    # Dropping entries only shrinks the file: bisect for the fewest oldest ones to drop.
    low, high = 0, len(ordered)
    while low < high:
        middle = (low + high) // 2
        if encoded_size(ordered[middle:]) <= max_bytes:
            high = middle
        else:
            low = middle + 1
    dropped, kept = ordered[:low], ordered[low:]
    if dropped:
        log.info("dropped %d least recently used program(s) to fit %d bytes", len(dropped),
                 max_bytes)
    return Pruned(kept, dropped, unmatched)


def bound(entries: list[NewEntry], max_bytes: int) -> list[NewEntry]:
    """``entries`` within ``max_bytes`` (0: unbounded), in their order, oldest dropped first."""
    if max_bytes <= 0 or encoded_size(entries) <= max_bytes:
        return entries
    kept = {id(e) for e in prune(entries, max_bytes).kept}
    return [e for e in entries if id(e) in kept]
