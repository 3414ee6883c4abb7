"""Where a chat stream's repaired chunks go: the bytes the client reads.

Contract: `ChatStream` (stream.py) reads the upstream's chat stream, repairs
it, and hands what it found to a `ChunkSink`, which writes the client's wire
format. `ChatSink` writes OpenAI's chat stream; the Responses and Messages
bridges bring sinks of their own (on bridge/sink.py's `BridgeSink`, which
decides when their events are written) and so reuse every chat repair. A sink is
called in stream order and returns the bytes to send at that point (b"" for
nothing); it never raises for input it was handed.

  chunks(chunks, fields)  repaired chat chunks; `fields` are the upstream's
                          `id:`/`retry:` lines of that event, as received
  error(error)            the upstream reported an error ({"error": {...}},
                          OpenAI's shape); nothing follows it
  failure(error)          the proxy could not read the rest of the upstream's
                          reply (an OpenAI error saying why): say so, in a way
                          that cannot read as a clean end; nothing follows
  end()                   the upstream finished (after the closing chunks)
  cut(tail)               the upstream stopped inside an event, whose bytes so
                          far are `tail`: the reply is incomplete, and must
                          not read as finished
  raw(data)               bytes of a stream the addon gave up on (an event
                          past the size cap, a failure inside), from then on
  close()                 the stream is over: whatever the sink must still
                          say (always called, last)
  comment(line)           an SSE comment line (a keep-alive), `:` included
  foreign(block)          an event that is no chat chunk, as received
  learn(chunk, probe, text, written)
                          the fast path (fastpath.py) found that every plain
                          text chunk is rewritten like `chunk`, whose text is
                          `probe`; the chunk it learnt from had the text `text`
                          and was written as `written`. Return how to write
                          one such chunk given its text (a JSON string
                          literal, as bytes): the bytes before and after it,
                          or a function of it that returns the bytes (or None
                          to take the slow path this time); None declines
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ...wire.jsonio import dump
from ...wire.sse import encode_data

DONE = b"data: [DONE]\n\n"


class ChunkSink(Protocol):
    def chunks(self, chunks: list[dict[str, Any]], fields: bytes = b"") -> bytes: ...
    def error(self, error: dict[str, Any]) -> bytes: ...
    def failure(self, error: dict[str, Any]) -> bytes: ...
    def end(self) -> bytes: ...
    def cut(self, tail: bytes) -> bytes: ...
    def raw(self, data: bytes) -> bytes: ...
    def close(self) -> bytes: ...
    def comment(self, line: bytes) -> bytes: ...
    def foreign(self, block: bytes) -> bytes: ...
    def learn(
        self, chunk: dict[str, Any], probe: str, text: bytes, written: bytes
    ) -> tuple[bytes, bytes] | Callable[[bytes], bytes | None] | None: ...


class ChatSink:
    """OpenAI's chat stream: `data: <compact json>\\n\\n` per chunk, `data: [DONE]` at the end."""

    def chunks(self, chunks: list[dict[str, Any]], fields: bytes = b"") -> bytes:
        return fields + b"".join(encode_data(dump(chunk)) for chunk in chunks)

    def error(self, error: dict[str, Any]) -> bytes:
        # OpenAI ends a failed stream with the error event, then [DONE]: no finish chunk.
        return encode_data(dump(error)) + DONE

    def failure(self, error: dict[str, Any]) -> bytes:
        return encode_data(dump(error))  # and no [DONE]: the reply did not end, it broke

    def end(self) -> bytes:
        return DONE

    def cut(self, tail: bytes) -> bytes:
        return tail  # as received, and no [DONE]: clients see no clean end

    def raw(self, data: bytes) -> bytes:
        return data

    def close(self) -> bytes:
        return b""

    def comment(self, line: bytes) -> bytes:
        return line + b"\n\n"

    def foreign(self, block: bytes) -> bytes:
        return block + b"\n\n"

    def learn(self, chunk: dict[str, Any], probe: str, text: bytes, written: bytes) -> tuple[bytes, bytes] | None:
        out = encode_data(dump(chunk))
        marker = dump(probe)
        at = out.find(marker)
        if at < 0 or out.count(marker) != 1:
            return None
        prefix, suffix = out[:at], out[at + len(marker) :]
        return (prefix, suffix) if prefix + text + suffix == written else None
