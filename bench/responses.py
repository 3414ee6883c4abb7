"""The bench's Responses API side: the request a Responses client sends, the checks on the
events it gets back, and the core run through the bridge's sink.

`REQUEST` is the body a bridged stream is asked with (`POST /v1/responses`).
`ResponsesChecker` reads the Responses events like bench.EventChecker reads chat
chunks, filling the same `Received`: every event must be `event: <type>` and one
`data:` line whose JSON says that type, sequence numbers must be 0, 1, 2, ...,
the text is what the `response.output_text.delta` events (or, for reasoning, the
summary deltas) add up to, and the one terminal event, `response.completed`,
counts as the stream's end (as [DONE] does for chat). `core_run` feeds events
through ChatStream with the Responses sink, in this process.
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any

from bench import upstream as shapes

REQUEST = {"model": shapes.MODEL, "stream": True, "store": False, "input": "bench"}
_DELTAS = (b"response.output_text.delta", b"response.reasoning_summary_text.delta")


class ResponsesChecker:
    """Splits a (de-chunked) Responses event stream into events and checks each; fills `got`
    (a bench.Received), raising `error` (bench.BenchError) with what is wrong."""

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
        got, error = self.got, self.error
        got.events += 1
        name, _, data = block.partition(b"\ndata: ")
        if not name.startswith(b"event: ") or b"\n" in data:
            raise error(f"{self.label}: not one `event:` and one `data:` line: {block[:200]!r}")
        kind = name[7:]
        if got.done:
            raise error(f"{self.label}: an event after the terminal event: {block[:200]!r}")
        if kind in _DELTAS:
            # The hot path: the type and sequence number sit at fixed places in the bridge's events.
            if not data.startswith(b'{"type":"' + kind + b'","sequence_number":%d,' % (got.events - 1)):
                raise error(f"{self.label}: sequence number {got.events - 1} expected: {block[:200]!r}")
            text = json.loads(data)["delta"]
            got.content_events += 1
            if self.timestamps:
                got.latencies_ns.append(now_ns - int(text.split(" ", 1)[0]))
                return
            got.chars += len(text)
            got._hash.update(text.encode())
            if got.head_chars < 1_000_000:
                got.head.append(text)
                got.head_chars += len(text)
            return
        event = json.loads(data)
        if event.get("type") != kind.decode() or event.get("sequence_number") != got.events - 1:
            raise error(f"{self.label}: type or sequence number wrong: {block[:200]!r}")
        if kind in (b"response.failed", b"response.incomplete"):
            raise error(f"{self.label}: {kind.decode()}: {block[:300]!r}")
        if kind == b"response.completed":
            got.done += 1


def core_run(events: list[bytes], fast: bool) -> tuple[float, list[bytes]]:
    """CPU seconds (this process) to feed every event through the bridge's sink, and the output."""
    from normalize.endpoints.chat.options import Options
    from normalize.endpoints.chat.stream import ChatStream
    from normalize.endpoints.responses.shapes import Shell
    from normalize.endpoints.responses.sink import ResponsesSink

    # Fixed ids and time, so runs with the fast path on and off can be compared byte for byte.
    shell = Shell(REQUEST, shapes.MODEL, make_id=lambda prefix: f"{prefix}_bench", now=lambda: shapes.CREATED)
    chat = ChatStream(Options(model=shapes.MODEL, include_usage=True, fast_path=fast), ResponsesSink(shell))
    feed = chat.feed
    gc.collect()
    start = time.process_time()
    out = [feed(event) for event in events]
    out.append(chat.close())
    return time.process_time() - start, out
