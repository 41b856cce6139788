"""Two small tools of the routing core: a ranked set whose keys change, and the exact
time at which a wait reaches a threshold."""

from __future__ import annotations

import heapq
import struct

Key = tuple[float, ...]  # an ordering key, smallest first; ties go to the lowest member id
Ranked = tuple[Key, int]  # (key, member id)


def relaxes_at(since: float, relax_after_s: float) -> float:
    """The first ``now`` at which ``now - since >= relax_after_s``, to the last bit
    (``since + relax_after_s`` may round either side of it). Floats are searched through
    their ordered bit patterns, so this takes a few dozen steps even near zero."""

    def counts(bits: int) -> bool:
        return _float(bits) - since >= relax_after_s

    guess = _bits(since + relax_after_s)
    low, high, step = guess, guess, 1
    while not counts(high):
        high, step = guess + step, step * 2
    step = 1
    while counts(low):
        low, step = guess - step, step * 2
    while high - low > 1:  # counts(high) and not counts(low)
        middle = (low + high) // 2
        if counts(middle):
            high = middle
        else:
            low = middle
    return _float(high)


def _bits(x: float) -> int:
    """An integer for each float, in the floats' order."""
    raw: int = struct.unpack("<q", struct.pack("<d", x))[0]
    return raw if raw >= 0 else -(raw & 0x7FFF_FFFF_FFFF_FFFF)


def _float(bits: int) -> float:
    raw = bits if bits >= 0 else (-bits) | (1 << 63)
    value: float = struct.unpack("<d", struct.pack("<Q", raw))[0]
    return value


class Ranking:
    """Members ordered by a key that changes. Keys are updated by pushing a new heap entry;
    superseded entries are skipped when they reach the top, so every change is O(log n)."""

    __slots__ = ("_current", "_heap")

    def __init__(self) -> None:
        self._heap: list[Ranked] = []
        self._current: dict[int, Ranked] = {}

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, member: int) -> bool:
        return member in self._current

    def put(self, member: int, key: Key) -> bool:
        """Rank ``member`` by ``key``; True if it was not ranked before."""
        old = self._current.get(member)
        if old is not None and old[0] == key:
            return False
        entry = (key, member)
        self._current[member] = entry
        heapq.heappush(self._heap, entry)
        if len(self._heap) > 2 * len(self._current) + 32:
            self._heap = list(self._current.values())
            heapq.heapify(self._heap)
        return old is None

    def discard(self, member: int) -> None:
        self._current.pop(member, None)

    def first_but(self, excluded: frozenset[int]) -> Ranked | None:
        """The first member not in ``excluded`` (a scan: for the rare declined offer)."""
        if not excluded:
            return self.first()
        allowed = [entry for member, entry in self._current.items() if member not in excluded]
        return min(allowed) if allowed else None

    def first(self) -> Ranked | None:
        heap, current = self._heap, self._current
        while heap:
            entry = heap[0]
            if current.get(entry[1]) is entry:
                return entry
            heapq.heappop(heap)
        return None
