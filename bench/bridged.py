"""The bench's bridged clients: what a Responses or a Messages client sends, the checks on
the events it gets back, and the core run through each bridge's sink.

`BRIDGES["responses"]` and `BRIDGES["messages"]` are `Bridge`s: the path and body
a bridged stream is asked with (the upstream still gets, and streams, chat), a
checker that reads the client's events like bench.EventChecker reads chat chunks,
filling the same `Received` (every event `event: <type>` and one `data:` line whose
JSON says that type; the text is what the text deltas add up to; the one terminal
event counts as the stream's end, as [DONE] does for chat), and `core_run`, which
feeds events through ChatStream with the bridge's sink, in this process.

Responses: sequence numbers must be 0, 1, 2, ...; `response.completed` ends it.
Messages: `message_start` first, `message_stop` ends it, no `error` event.
"""

from __future__ import annotations

import gc
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import upstream as shapes

RESPONSES_REQUEST = {"model": shapes.MODEL, "stream": True, "store": False, "input": "bench"}
MESSAGES_REQUEST = {"model": shapes.MODEL, "max_tokens": 1024, "stream": True, "messages": [{"role": "user", "content": "bench"}]}
_DELTAS = (b"response.output_text.delta", b"response.reasoning_summary_text.delta")


class Checker:
    """Splits a (de-chunked) event stream into events and checks each (`_event`); fills `got`
    (a bench.Received), raising `error` (bench.BenchError) with what is wrong. The base of
    bench.EventChecker (chat chunks) and of the bridges' checkers below."""

    def __init__(self, label: str, got: Any, error: type[Exception], *, timestamps: bool = False) -> None:
        self.label = label
        self.got = got
        self.error = error
        self.timestamps = timestamps
        self._pending = bytearray()

    def feed(self, data: bytes, now_ns: int) -> None:
        pending = self._pending
        pending += data
        end = pending.rfind(b"\n\n")
        if end < 0:
            return
        blocks = bytes(pending[:end]).split(b"\n\n")
        del pending[: end + 2]
        for block in blocks:
            self._event(block, now_ns)

    def close(self) -> Any:
        if self._pending.strip():
            raise self.error(f"{self.label}: the stream ended inside an event: {bytes(self._pending[:200])!r}")
        return self.got

    def _event(self, block: bytes, now_ns: int) -> None:
        raise NotImplementedError

    def _named(self, block: bytes) -> tuple[bytes, bytes]:
        """An `event: <name>` line and one `data:` line, before the terminal event: name, data."""
        got, error = self.got, self.error
        got.events += 1
        name, _, data = block.partition(b"\ndata: ")
        if not name.startswith(b"event: ") or b"\n" in data:
            raise error(f"{self.label}: not one `event:` and one `data:` line: {block[:200]!r}")
        if got.done:
            raise error(f"{self.label}: an event after the terminal event: {block[:200]!r}")
        return name[7:], data

    def _text(self, text: str, now_ns: int) -> None:
        got = self.got
        got.content_events += 1
        if self.timestamps:
            got.latencies_ns.append(now_ns - int(text.split(" ", 1)[0]))
            return
        got.chars += len(text)
        got._hash.update(text.encode())
        if got.head_chars < 1_000_000:
            got.head.append(text)
            got.head_chars += len(text)


class ResponsesChecker(Checker):
    def _event(self, block: bytes, now_ns: int) -> None:
        got, error = self.got, self.error
        kind, data = self._named(block)
        if kind in _DELTAS:
            # The hot path: the type and sequence number sit at fixed places in the bridge's events.
            if not data.startswith(b'{"type":"' + kind + b'","sequence_number":%d,' % (got.events - 1)):
                raise error(f"{self.label}: sequence number {got.events - 1} expected: {block[:200]!r}")
            self._text(json.loads(data)["delta"], now_ns)
            return
        event = json.loads(data)
        if event.get("type") != kind.decode() or event.get("sequence_number") != got.events - 1:
            raise error(f"{self.label}: type or sequence number wrong: {block[:200]!r}")
        if kind in (b"response.failed", b"response.incomplete"):
            raise error(f"{self.label}: {kind.decode()}: {block[:300]!r}")
        if kind == b"response.completed":
            got.done += 1


class MessagesChecker(Checker):
    def _event(self, block: bytes, now_ns: int) -> None:
        got, error = self.got, self.error
        name, data = self._named(block)
        try:
            event = json.loads(data)
        except ValueError:
            raise error(f"{self.label}: an event is not JSON: {block[:200]!r}") from None
        kind = event.get("type")
        if kind != name.decode() or (got.events == 1) != (kind == "message_start"):
            raise error(f"{self.label}: event {got.events} is {name!r} with data of type {kind!r}")
        if kind == "message_stop":
            got.done += 1
        elif kind == "error":
            raise error(f"{self.label}: an error event: {block[:300]!r}")
        elif kind == "content_block_delta" and event["delta"]["type"] == "text_delta":
            self._text(event["delta"]["text"], now_ns)


def _timed(chat: Any, events: list[bytes]) -> tuple[float, list[bytes]]:
    feed = chat.feed
    gc.collect()
    start = time.process_time()
    out = [feed(event) for event in events]
    out.append(chat.close())
    return time.process_time() - start, out


def responses_core(events: list[bytes], fast: bool) -> tuple[float, list[bytes]]:
    """CPU seconds (this process) to feed every event through the Responses sink, and the output."""
    from normalize.endpoints.chat.options import Options
    from normalize.endpoints.chat.stream import ChatStream
    from normalize.endpoints.responses.shapes import Shell
    from normalize.endpoints.responses.sink import ResponsesSink

    # Fixed ids and time, so runs with the fast path on and off can be compared byte for byte.
    shell = Shell(RESPONSES_REQUEST, shapes.MODEL, make_id=lambda prefix: f"{prefix}_bench", now=lambda: shapes.CREATED)
    return _timed(ChatStream(Options(model=shapes.MODEL, include_usage=True, fast_path=fast), ResponsesSink(shell)), events)


def messages_core(events: list[bytes], fast: bool) -> tuple[float, list[bytes]]:
    """CPU seconds (this process) to feed every event through the Messages sink, and the output."""
    from normalize.endpoints.chat.options import Options
    from normalize.endpoints.chat.stream import ChatStream
    from normalize.endpoints.messages.message import ReplyInfo
    from normalize.endpoints.messages.sink import MessagesSink

    info = ReplyInfo(shapes.MODEL, 0, (), lambda: "msg_bench")
    return _timed(ChatStream(Options(model=shapes.MODEL, include_usage=True, fast_path=fast), MessagesSink(info, Counter())), events)


@dataclass(frozen=True)
class Bridge:
    path: str
    request: dict[str, Any]
    headers: str  # more request header lines, each ending in CRLF
    checker: type[Checker]
    core_run: Callable[[list[bytes], bool], tuple[float, list[bytes]]]


BRIDGES = {
    "responses": Bridge("/v1/responses", RESPONSES_REQUEST, "", ResponsesChecker, responses_core),
    "messages": Bridge("/v1/messages", MESSAGES_REQUEST, "x-api-key: bench\r\nanthropic-version: 2023-06-01\r\n", MessagesChecker, messages_core),
}
