"""Incremental server-sent events, sans I/O.

Contract: bytes go in as they arrive, split anywhere (inside a UTF-8 character,
between `\\r` and `\\n`); complete event blocks come out; nothing is decoded
until a block is complete, so a split can never change what comes out. Work
is linear in the bytes fed, however they are split.

Two stages, each with `feed` and `flush`:
  LineEnds      CRLF and lone CR become LF (a CR at the end of a chunk is
                turned into LF at once, and a LF that follows it is skipped).
  EventSplitter LF-only bytes in, complete blocks out (a block is the lines of
                one event, without the blank line that ended it; runs of blank
                lines, which dispatch nothing, give no blocks). The bytes of an
                unfinished event are held; `overflowing` says when they pass a cap.
`parse_block` turns a block into an `Event`; `encode_*` write our framing:
`data: <payload>\\n\\n`, as OpenAI's chat stream does, or with an
`event: <name>` line before it, as its Responses stream and Anthropic's do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Event",
    "EventSplitter",
    "LineEnds",
    "encode_comment",
    "encode_data",
    "encode_event",
    "parse_block",
]

_BLANK_LINES = re.compile(rb"\n\n+")


class LineEnds:
    """Turns CRLF and lone CR into LF, across chunk boundaries, without delay."""

    __slots__ = ("pending_cr", "seen_cr")

    def __init__(self) -> None:
        self.pending_cr = False  # the last chunk ended with a CR: a LF starting the next is its pair
        self.seen_cr = False

    def feed(self, data: bytes) -> bytes:
        if self.pending_cr and data[:1] == b"\n":
            data = data[1:]
        self.pending_cr = False
        if b"\r" not in data:
            return data
        self.seen_cr = True
        self.pending_cr = data[-1:] == b"\r"
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


class EventSplitter:
    """Splits LF-only bytes into event blocks; holds the unfinished tail."""

    __slots__ = ("held", "max_bytes")

    def __init__(self, max_bytes: int = 8 * 1024 * 1024) -> None:
        self.held = bytearray()  # the unfinished event (read it, never change it)
        self.max_bytes = max_bytes

    @property
    def empty(self) -> bool:
        """No unfinished event is held: the next byte starts a new event."""
        return not self.held

    def mark(self) -> tuple[bytearray, int]:
        """Where the held bytes end now; `since(mark)` gives them back after a `feed`
        (held bytes are only ever appended to, or replaced by a new buffer)."""
        return self.held, len(self.held)

    @staticmethod
    def since(mark: tuple[bytearray, int]) -> bytes:
        held, size = mark
        return bytes(held[:size])

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        held = self.held
        if not held:
            data = data.lstrip(b"\n")  # blank lines between events dispatch nothing
            end = data.rfind(b"\n\n")
            if end < 0:
                held += data
                return []
            rest = data[end + 2 :].lstrip(b"\n")
            complete = data[:end]
        else:
            # Only the new bytes (and the one before them) can complete the held event.
            start = max(len(held) - 1, 0)
            held += data
            last = held.rfind(b"\n\n", start)
            if last < 0:
                return []
            complete = bytes(held[:last])
            rest = bytes(held[last + 2 :]).lstrip(b"\n")
            held = self.held = bytearray()  # a new buffer: a mark() on the old one stays valid
        if rest:
            held += rest
        return _BLANK_LINES.split(complete) if b"\n\n" in complete else [complete]

    def flush(self) -> bytes:
        """Ends the input; returns the unfinished tail (may be b"")."""
        tail = bytes(self.held)
        self.held = bytearray()
        return tail

    @property
    def overflowing(self) -> bool:
        """The unfinished event is larger than the cap: the caller should give up on it."""
        return len(self.held) > self.max_bytes


@dataclass(frozen=True, slots=True)
class Event:
    """One parsed event. Values are raw bytes; `data` joins data lines with LF."""

    data: bytes | None = None
    name: bytes | None = None
    comments: tuple[bytes, ...] = ()
    unknown: tuple[bytes, ...] = ()  # field lines we do not know, verbatim
    spaceless: bool = False  # a data line was written `data:x` (no space)


_KNOWN = frozenset({b"data", b"event", b"id", b"retry"})


def parse_block(block: bytes) -> Event:
    """Parses one event block (LF line ends, no trailing blank line)."""
    data: list[bytes] = []
    name = None
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
        elif field not in _KNOWN:
            unknown.append(line)
    return Event(
        data=b"\n".join(data) if data else None,
        name=name,
        comments=tuple(comments),
        unknown=tuple(unknown),
        spaceless=spaceless,
    )


def encode_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def encode_event(name: str, data: bytes) -> bytes:
    """A named event (`event: <name>`), as the Responses and Messages APIs write each of theirs."""
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def encode_comment(line: bytes) -> bytes:
    """A comment line as received (`:` included), as an event of its own."""
    return line + b"\n\n"
