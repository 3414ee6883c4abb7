"""A body kept for inspection, up to a cap: the first `cap` bytes are kept, the rest only counted."""

from __future__ import annotations


class CappedBuffer:
    """The first `cap` bytes appended; the rest is only counted."""

    __slots__ = ("_dropped", "_kept", "cap")

    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError(f"cap must be >= 0, not {cap}")
        self.cap = cap
        self._kept = bytearray()
        self._dropped = 0

    def append(self, data: bytes) -> bool:
        """Keeps what fits; True while there is room for more."""
        room = self.cap - len(self._kept)
        size = len(data)
        if size < room:
            self._kept += data
            return True
        if room > 0:
            self._kept += memoryview(data)[:room]
            size -= room
        self._dropped += size
        return False

    def take(self) -> bytes:
        """The kept bytes; the buffer lets go of its own copy."""
        value = bytes(self._kept)
        self._kept = bytearray()
        return value

    @property
    def value(self) -> bytes:
        return bytes(self._kept)

    @property
    def dropped(self) -> int:
        """Bytes appended but not kept."""
        return self._dropped

    def __len__(self) -> int:
        return len(self._kept)
