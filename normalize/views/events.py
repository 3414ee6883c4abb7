"""A stream as the views see it: one unit per event or comment, and what each says.

Contract: `stream_units(data)` splits any bytes the way the stream rewriter
does and gives one `Unit` per comment or event (at most `MAX_EVENTS`, and how
many more there were); a unit's `key` is what the event says, leaving out
what the rewriter repairs, so the upstream's events and the rewritten ones
pair up. `data_events(data)` gives each event's data and name, unrendered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from ..wire.sse import Event, EventSplitter, LineEnds, parse_block
from .text import MAX_LINE_CHARS, compact, cut, escape, loads_ok, raw_text

# Events a view renders before it says "… N more events".
MAX_EVENTS = 2000


NOT_JSON = object()


class Unit(NamedTuple):
    """One line of a stream view: a comment, or an event's fields and data."""

    line: str
    key: tuple[Any, ...]  # what the event says, for pairing upstream and rewritten events
    data: bytes | None = None
    name: bytes | None = None
    obj: Any = NOT_JSON  # the data, parsed
    spaceless: bool = False
    unterminated: bool = False


class Stream(NamedTuple):
    units: list[Unit]
    more: int  # events past the limit (a whole block past it counts as one)


def split_blocks(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete event blocks (the same split the stream rewriter makes), and the unterminated tail."""
    data = LineEnds().feed(data)
    splitter = EventSplitter(max_bytes=len(data) + 1)
    blocks = splitter.feed(data)
    return blocks, splitter.flush()


def stream_units(data: bytes, limit: int = MAX_EVENTS) -> Stream:
    blocks, tail = split_blocks(data)
    if tail.strip(b"\n"):
        blocks.append(tail)
    else:
        tail = b""
    units: list[Unit] = []
    more = 0
    for at, block in enumerate(blocks):
        room = limit - len(units)
        if room <= 0:
            return Stream(units, more + sum(1 for b in blocks[at:] if b.strip(b"\n")))
        made, skipped = _block_units(block, bool(tail) and at == len(blocks) - 1, room)
        units.extend(made)
        more += skipped
    return Stream(units, more)


def _block_units(block: bytes, unterminated: bool, room: int) -> tuple[list[Unit], int]:
    """The units of one block (at most `room`), and how many more it had."""
    mark = "  (unterminated)" if unterminated else ""
    out: list[Unit] = []
    skipped = 0
    fields = []
    for line in block.split(b"\n"):
        if not line:
            continue
        if line[:1] == b":":
            # The rewriter sends each comment as an event of its own, ahead of its event.
            if len(out) < room:
                out.append(Unit(raw_text(line) + mark, ("comment", line), unterminated=unterminated))
            else:
                skipped += 1
        else:
            fields.append(line)
    if not fields:
        return out, skipped
    if len(out) >= room:
        return out, skipped + 1
    event = parse_block(b"\n".join(fields))
    obj: Any = NOT_JSON
    if event.data is None:
        text, key = None, ("fields", tuple(fields))
    else:
        text, key, obj = _data_text_and_key(event.data, event.spaceless)
    parts = []
    size = 0
    for line in fields:
        if size > MAX_LINE_CHARS:
            parts.append("… (event cut)")  # the line would be cut here anyway
            break
        if line.partition(b":")[0] == b"data":
            if text is None:
                continue
            part, text = text, None  # data lines are joined: shown once, where the first one was
        else:
            part = raw_text(line)
        parts.append(part)
        size += len(part) + 3
    shown = (parts[0] if len(parts) == 1 else cut(" | ".join(parts))) + mark  # each part is cut already
    out.append(Unit(shown, key, event.data, event.name, obj, event.spaceless, unterminated))
    return out, skipped


def _data_text_and_key(payload: bytes, spaceless: bool) -> tuple[str, tuple[Any, ...], Any]:
    head = "data:" if spaceless else "data: "
    if not payload:
        return "data:", ("raw", payload), NOT_JSON
    if payload == b"[DONE]":
        return head + "[DONE]", ("done",), NOT_JSON
    ok, obj = loads_ok(payload)
    if not ok:
        return raw_text(head.encode() + payload), ("raw", payload), NOT_JSON
    return cut(head + escape(compact(obj))), _json_key(obj, payload), obj


def _json_key(obj: Any, payload: bytes) -> tuple[Any, ...]:
    """What an event says, leaving out what the rewriter repairs, so both sides pair up."""
    if isinstance(obj, dict):
        if obj.get("error") or obj.get("object") == "error":
            return ("error",)
        choices = obj.get("choices")
        if isinstance(choices, (list, dict)) or obj.get("object") in ("chat.completion.chunk", "chat.completion"):
            if isinstance(choices, dict):
                choices = [choices]
            elif not isinstance(choices, list):
                choices = []
            sigs = tuple(sig for sig in map(_choice_key, choices) if sig != _EMPTY_CHOICE)
            return ("chunk", sigs, obj.get("usage") is not None)
    return ("json", payload)


def data_events(data: bytes) -> tuple[Iterable[tuple[bytes | None, bytes | None]], Event | None]:
    """(data, event name) of each complete event, without rendering anything; and the
    unterminated last event, if any."""
    blocks, tail = split_blocks(data)

    def events() -> Iterable[tuple[bytes | None, bytes | None]]:
        for block in blocks:
            if block[:5] == b"data:" and b"\n" not in block:  # the usual event: one data line
                payload = block[5:]
                yield (payload[1:] if payload[:1] == b" " else payload), None
            elif block.strip(b"\n"):
                event = parse_block(block)
                yield event.data, event.name

    return events(), parse_block(tail) if tail.strip(b"\n") else None


_EMPTY_CHOICE = ("", "", (), False)


def _choice_key(choice: Any) -> tuple[Any, ...]:
    if not isinstance(choice, dict):
        return ("?", repr(choice))
    delta = choice.get("delta")
    if isinstance(delta, str):
        delta = {"content": delta}
    elif not isinstance(delta, dict):
        # As ChunkRules.delta turns it into content.
        delta = {} if delta is None else {"content": compact(delta)}
    content = delta.get("content")
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    calls = delta.get("tool_calls")
    if isinstance(calls, dict):
        calls = [calls]
    arguments = []
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            args = function.get("arguments") if isinstance(function, dict) else None
            if args is not None and not isinstance(args, str):
                args = compact(args)
            if args:
                arguments.append(args)
    return (
        content if isinstance(content, str) else "",
        reasoning if isinstance(reasoning, str) else "",
        tuple(arguments),
        bool(choice.get("finish_reason")),
    )
