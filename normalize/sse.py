"""Incremental server-sent events, sans I/O.

Contract: bytes go in as they arrive, split anywhere (inside a UTF-8 character,
between `\\r` and `\\n`); complete event blocks come out; nothing is decoded
until a block is complete, so a split can never change what comes out.

Two stages, each with `feed` and `flush`:
  LineEnds      CRLF and lone CR become LF (a CR at the end of a chunk is
                turned into LF at once, and a LF that follows it is skipped).
  EventSplitter LF-only bytes in, complete blocks out (a block is the lines of
                one event, without the blank line that ended it). The bytes of
                an unfinished event are held; `overflowing` says when they pass a cap.
`parse_block` turns a block into an `Event`; `encode_*` write our framing:
always `data: <payload>\\n\\n`, as OpenAI does.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Event",
    "EventSplitter",
    "LineEnds",
    "encode_comment",
    "encode_data",
    "parse_block",
]


class LineEnds:
    """Turns CRLF and lone CR into LF, across chunk boundaries, without delay."""

    __slots__ = ("_after_cr", "seen_cr")

    def __init__(self) -> None:
        self._after_cr = False
        self.seen_cr = False

    def feed(self, data: bytes) -> bytes:
        if self._after_cr and data[:1] == b"\n":
            data = data[1:]
        self._after_cr = False
        if b"\r" not in data:
            return data
        self.seen_cr = True
        self._after_cr = data[-1:] == b"\r"
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


class EventSplitter:
    """Splits LF-only bytes into event blocks; holds the unfinished tail."""

    __slots__ = ("_parts", "_held", "max_bytes")

    def __init__(self, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._parts: list[bytes] = []
        self._held = 0
        self.max_bytes = max_bytes

    @property
    def pending(self) -> bytes:
        """The bytes of the unfinished event, as received (LF-normalised)."""
        return b"".join(self._parts)

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        parts = self._parts
        if parts:
            # A boundary needs a LF in the new data; without one, just hold it.
            if b"\n" not in data:
                self._hold(data)
                return []
            parts.append(data)
            data = b"".join(parts)
            parts.clear()
            self._held = 0
        end = data.rfind(b"\n\n")
        if end < 0:
            self._hold(data)
            return []
        if end + 2 < len(data):
            self._hold(data[end + 2 :])
        blocks = data[: end + 2].split(b"\n\n")
        blocks.pop()  # what follows the last separator: "" or "\n"
        return blocks

    def flush(self) -> bytes:
        """Ends the input; returns the unfinished tail (may be b"")."""
        tail = self.pending
        self._parts.clear()
        self._held = 0
        return tail

    @property
    def overflowing(self) -> bool:
        """The unfinished event is larger than the cap: the caller should give up on it."""
        return self._held > self.max_bytes

    def _hold(self, data: bytes) -> None:
        self._parts.append(data)
        self._held += len(data)


@dataclass(frozen=True, slots=True)
class Event:
    """One parsed event. Values are raw bytes; `data` joins data lines with LF."""

    data: bytes | None = None
    name: bytes | None = None
    id: bytes | None = None
    retry: bytes | None = None
    comments: tuple[bytes, ...] = ()
    unknown: tuple[bytes, ...] = ()  # field lines we do not know, verbatim
    spaceless: bool = False  # a data line was written `data:x` (no space)


def parse_block(block: bytes) -> Event:
    """Parses one event block (LF line ends, no trailing blank line)."""
    data: list[bytes] = []
    name = id_ = retry = None
    comments: list[bytes] = []
    unknown: list[bytes] = []
    spaceless = False
    for line in block.split(b"\n"):
        if not line:
            continue  # only leading blank lines can reach here: nothing to dispatch
        if line[:1] == b":":
            comments.append(line)
            continue
        field, colon, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        elif colon and field == b"data" and value:
            spaceless = True
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value
        elif field == b"id":
            id_ = value
        elif field == b"retry":
            retry = value
        else:
            unknown.append(line)
    return Event(
        data=b"\n".join(data) if data else None,
        name=name,
        id=id_,
        retry=retry,
        comments=tuple(comments),
        unknown=tuple(unknown),
        spaceless=spaceless,
    )


def encode_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def encode_comment(line: bytes) -> bytes:
    """A comment line as received (`:` included), as an event of its own."""
    return line + b"\n\n"
