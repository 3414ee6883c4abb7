"""The policy of a bridge's stream: when its client's events are written, whatever API they are in.

Contract: a bridge's sink is a `ChunkSink` (chat/sink.py) built on `BridgeSink`,
which decides everything about the stream's course; the subclass only writes
its API's events, through the `write_*` hooks below. The policy:

- Exactly one terminal event, and nothing after it (no chunk, keep-alive or
  error): `write_end` for a reply that finished, `write_failure` for
  anything else. After it, `over` is true.
- A reply ends cleanly only if the upstream said something: a stream that
  carried no chunk with a choice (nothing, keep-alives, only `[DONE]`, only
  usage) fails (`stream_without_chunks`), as does one that ended before its
  end (`stream_ended_early`: the chat core finishes a stream that stops at an
  event boundary, so this is a stream cut inside an event or never ended),
  one the chat core gave up on (`raw`), and one with an event whose data is
  not JSON (what it said is lost: `stream_not_translatable`). An upstream
  error, or a failure to read the body, fails it with that error.
- JSON that is no chat chunk, or fields without data, say nothing a client
  reads: left out, counted (`event_not_chunk`), logged once. Choices other
  than the first are left out (`choice_beyond_first`).
- One text block (or item) at a time, of a kind the subclass names for each
  delta key (`text_keys`: content, reasoning, refusal); reasoning is read
  before content in a delta. Tool calls are kept by the chat rules' index
  (they number every call), opened on their first delta, and stay open while
  only calls come (their arguments may interleave); text or reasoning after
  them closes them first, so blocks never overlap and items finish in order.
  More arguments for a call already closed cannot be put in order: the reply
  fails. At the finish, everything open closes.
- `usage` is the latest the chat rules handed on; `deltas` counts the text
  and argument deltas written (the output tokens when the upstream reports
  none); `finish` and `finish_choice` are the finishing choice's.
- `learn` gives the fast path a writer for plain text chunks of a kind, valid
  only while a block of that kind is open (else it declines, and the chunk
  takes the slow path, which opens one).

The hooks, each returning the bytes to send: `write_start(chunk)` (once,
before the first event of a reply), `write_open_text(kind)`,
`write_delta(literal)` (one delta of the open text block; `literal` is a
JSON string literal: the fast path's hot path), `write_close_text()`,
`write_open_call(call, function)` (returns the call's handle and the bytes),
`write_arguments(handle, arguments)`, `write_close_call(handle)`,
`write_end()`, `write_failure(error)` (an OpenAI error envelope),
`write_keep_alive(line)`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from ...repairs import Repair
from ...wire.jsonio import NotJSON, dump, loads
from ...wire.sse import parse_block
from ..chat.options import MAX_EVENT_CONTAINERS
from ..errors import openai_error

log = logging.getLogger(__name__)

# Delta keys of text, in the order a delta's are written: reasoning before the answer.
REASONING_KEYS = ("reasoning_content", "reasoning")
TEXT_KEYS = ("content", "refusal")


class BridgeSink:
    text_keys: ClassVar[dict[str, str]]  # delta key -> the kind of block its text goes to

    def __init__(self, repairs: Counter[Repair], label: str = "stream") -> None:
        self.repairs = repairs
        self.label = label
        self.started = False  # write_start was called
        self.over = False  # the terminal event was written: nothing more
        self.answered = False  # a chunk with a choice came: there is a reply to end
        self.open_kind: str | None = None  # the kind of the open text block
        self.calls: dict[int, Any] = {}  # open calls by chat index: their handles
        self.closed_calls: set[int] = set()
        self.usage: Any = None
        self.finish: str | None = None
        self.finish_choice: dict[str, Any] = {}
        self.deltas = 0
        self._dropped = 0  # bytes of a stream given up on, not sent
        self._warned: set[str] = set()

    # -- the ChunkSink contract ---------------------------------------------------

    def chunks(self, chunks: list[dict[str, Any]], fields: bytes = b"") -> bytes:
        out = []
        for chunk in chunks:
            if self.over:
                break
            usage = chunk.get("usage")
            if usage is not None:
                self.usage = usage
            if not self.started:
                self.started = True
                out.append(self.write_start(chunk))
            for choice in chunk.get("choices") or ():
                if isinstance(choice, dict):
                    out.append(self._choice(choice))
        return b"".join(out)

    def error(self, error: dict[str, Any]) -> bytes:
        return self.fail(error)  # the stream logged it

    def failure(self, error: dict[str, Any]) -> bytes:
        return self.fail(error)  # the stream logged it

    def end(self) -> bytes:
        if self.over:
            return b""
        if not self.answered:
            return self.ended_early()
        out = self.close_all()
        self.over = True
        return out + self.write_end()

    def cut(self, tail: bytes) -> bytes:
        return self.fail_with("The upstream's reply broke off inside an event: it is incomplete.", Repair.stream_ended_early)

    def raw(self, data: bytes) -> bytes:
        if not data.strip():
            return b""  # nothing is lost; close() says whether a reply came
        self._dropped += len(data)
        return self.fail_with("The proxy could not read the rest of the upstream's reply.", Repair.stream_not_translatable)

    def close(self) -> bytes:
        if self._dropped:
            log.warning("%s: %d bytes of an unreadable upstream stream were not sent", self.label, self._dropped)
            self._dropped = 0
        return b"" if self.over else self.ended_early()

    def comment(self, line: bytes) -> bytes:
        return b"" if self.over else self.write_keep_alive(line)

    def foreign(self, block: bytes) -> bytes:
        if self.over:
            return b""
        if not readable(block):
            return self.fail_with("The upstream sent an event that could not be read.", Repair.stream_not_translatable)
        if not self.repairs[Repair.event_not_chunk]:
            log.warning("%s: an upstream event is no chat chunk; it has no place in the client's stream and is left out", self.label)
        self.repairs[Repair.event_not_chunk] += 1
        return b""

    def learn(self, chunk: dict[str, Any], probe: str, text: bytes, written: bytes) -> Callable[[bytes], bytes | None] | None:
        """A plain text chunk like `chunk` is one delta of the open text block of its kind."""
        choices = chunk.get("choices")
        if chunk.get("usage") is not None or not isinstance(choices, list) or len(choices) != 1:
            return None
        choice = choices[0]
        if not isinstance(choice, dict) or choice.get("index") != 0 or choice.get("finish_reason") is not None:
            return None
        delta = choice.get("delta")
        if not isinstance(delta, dict) or len(delta) != 1:
            return None
        ((key, value),) = delta.items()
        kind = self.text_keys.get(key)
        if value != probe or kind is None or self.open_kind != kind:
            return None
        write_delta = self.write_delta

        def write(literal: bytes) -> bytes | None:
            if self.open_kind != kind:
                return None  # another block is open (or the stream is over): the slow path decides
            self.deltas += 1
            return write_delta(literal)

        return write

    # -- one choice ---------------------------------------------------------------

    def _choice(self, choice: dict[str, Any]) -> bytes:
        if choice.get("index") != 0:
            self.warn_once("choices", "choices other than the first have no place in the client's reply; leaving them out")
            self.repairs[Repair.choice_beyond_first] += 1
            return b""
        self.answered = True
        out = []
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = next((v for k in REASONING_KEYS if isinstance(v := delta.get(k), str) and v), None)
            if reasoning:
                out.append(self._text(self.text_keys[REASONING_KEYS[0]], reasoning))
            for key in TEXT_KEYS:
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out.append(self._text(self.text_keys[key], text))
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, dict):
                    out.append(self._call(call))
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason and not self.over:
            self.finish, self.finish_choice = reason, choice
            out.append(self.close_all())
        return b"".join(out)

    def _text(self, kind: str, text: str) -> bytes:
        if self.over:
            return b""
        out = b""
        if self.open_kind != kind:
            out = self.close_calls() + self.close_text() + self.write_open_text(kind)
            self.open_kind = kind
        self.deltas += 1
        return out + self.write_delta(dump(text))

    def _call(self, call: dict[str, Any]) -> bytes:
        if self.over:
            return b""
        index: int = call["index"]  # the chat rules number every call
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        out = b""
        handle = self.calls.get(index)
        if handle is None:
            if index in self.closed_calls:
                return self.fail_with(
                    "The upstream sent more of a tool call after it had moved on to text.", Repair.stream_not_translatable
                )
            out = self.close_text()
            handle, opened = self.write_open_call(call, function)
            self.calls[index] = handle
            out += opened
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self.deltas += 1
            out += self.write_arguments(handle, arguments)
        return out

    # -- closing ------------------------------------------------------------------

    def close_text(self) -> bytes:
        if self.open_kind is None:
            return b""
        out = self.write_close_text()
        self.open_kind = None
        return out

    def close_calls(self) -> bytes:
        if not self.calls:
            return b""
        out = b"".join([self.write_close_call(handle) for handle in self.calls.values()])
        self.closed_calls.update(self.calls)
        self.calls.clear()
        return out

    def close_all(self) -> bytes:
        return self.close_text() + self.close_calls()

    def ended_early(self) -> bytes:
        if not self.answered:
            return self.fail_with("The upstream's stream ended without a reply.", Repair.stream_without_chunks)
        return self.fail_with("The upstream's stream ended before the reply was complete.", Repair.stream_ended_early)

    def fail_with(self, message: str, repair: Repair) -> bytes:
        """The proxy ends the reply with an error of its own (502: the upstream failed)."""
        if self.over:
            return b""
        self.repairs[repair] += 1
        log.warning("%s: %s Ending the client's stream with an error.", self.label, message)
        return self.fail(openai_error(message, 502))

    def fail(self, error: dict[str, Any]) -> bytes:
        if self.over:
            return b""
        self.over = True
        self.open_kind = None
        self.calls.clear()  # what is open stays unfinished: the failure says why
        return self.write_failure(error)

    def warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("%s: %s", self.label, message)

    # -- what the subclass writes ----------------------------------------------------

    def write_start(self, chunk: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def write_open_text(self, kind: str) -> bytes:
        raise NotImplementedError

    def write_delta(self, literal: bytes) -> bytes:
        raise NotImplementedError

    def write_close_text(self) -> bytes:
        raise NotImplementedError

    def write_open_call(self, call: dict[str, Any], function: dict[str, Any]) -> tuple[Any, bytes]:
        raise NotImplementedError

    def write_arguments(self, handle: Any, arguments: str) -> bytes:
        raise NotImplementedError

    def write_close_call(self, handle: Any) -> bytes:
        raise NotImplementedError

    def write_end(self) -> bytes:
        raise NotImplementedError

    def write_failure(self, error: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def write_keep_alive(self, line: bytes) -> bytes:
        raise NotImplementedError


def readable(block: bytes) -> bool:
    """An event whose data, if it has any, is JSON: leaving it out loses nothing a client reads."""
    data = parse_block(block).data
    if not data or not data.strip():
        return True
    try:
        loads(data, max_containers=MAX_EVENT_CONTAINERS)
    except NotJSON:
        return False
    return True
