"""One streamed chat completion: the upstream's bytes in, the sink's bytes out.

Contract: `feed(bytes) -> bytes` for each piece the upstream sends, split
anywhere; `close() -> bytes` once at the end. Every event completed by a
`feed` is answered in that same call; only an unfinished trailing event is
held. What comes out is the sink's (sink.py): OpenAI's chat stream by default,
ending with exactly one `data: [DONE]`, after a finishing chunk when the
upstream never sent a finish_reason.

Phases, in order: SNIFFING (only white space so far, dropped as it comes:
a stream, or one JSON body?), then EVENTS, or JSON_BODY for a stream request answered with one JSON
reply (held, then sent as the stream OpenAI would have sent); OVER once the
stream has ended ([DONE] or an error: later events are dropped); RAW once the
addon gave up (the rest goes to the sink as it came); FAILED once the rest of
the body could not be read at all (`fail`: the client is told, and later
input is dropped).

Nothing is lost: an event that is not a chat chunk (not JSON, not an object,
not ours) passes through as it came, with one log line. If anything inside
raises, the stream logs once and passes the rest through untouched. Plain
text chunks take the fast path (fastpath.py).
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from typing import Any

from ...repairs import Repair
from ...wire.body import parse_json_body
from ...wire.jsonio import NotJSON, TooManyContainers, loads
from ...wire.sse import EventSplitter, LineEnds, parse_block
from ..errors import error_object, openai_error, stream_error_line
from .chunks import ChunkRules, looks_like_chunk
from .completion import completion_as_chunks
from .fastpath import LEARNING_BUDGET, FastPath
from .options import MAX_EVENT_CONTAINERS, Options
from .sink import ChatSink, ChunkSink

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    SNIFFING = "sniffing"
    JSON_BODY = "json body"
    EVENTS = "events"
    OVER = "over"
    RAW = "raw"
    FAILED = "failed"


# Module names for the hot path (a global is found faster than an enum member).
_EVENTS, _RAW, _FAILED = Phase.EVENTS, Phase.RAW, Phase.FAILED


class ChatStream:
    def __init__(self, options: Options | None = None, sink: ChunkSink | None = None) -> None:
        self.options = options or Options()
        self.sink: ChunkSink = sink or ChatSink()
        self.events = 0  # upstream events seen (comments included)
        self._repairs: Counter[Repair] = Counter()
        self._rules = ChunkRules(self.options, self._repairs)
        self._phase = Phase.SNIFFING
        # Templates may answer: EVENTS, and no chunk held back (kept with the phase, for the hot path).
        self._spliceable = False
        self._lines = LineEnds()
        self._split = EventSplitter(self.options.max_event_bytes)
        self._fast = FastPath(budget=LEARNING_BUDGET if self.options.fast_path else 0)
        self._saw_chunk = False  # a chat chunk came: the stream must end as OpenAI's does
        self._truncated = False  # the upstream stopped inside an event
        self._warned: set[str] = set()
        self._head = bytearray()  # JSON_BODY: what came so far; SNIFFING: spaces that may start the first line
        self._epoch = 0  # the rules' epoch the fast path's templates were learnt in

    @property
    def phase(self) -> Phase:
        return self._phase

    @phase.setter
    def phase(self, phase: Phase) -> None:
        self._phase = phase
        self._spliceable = phase is _EVENTS and not self._rules.holding

    @property
    def raw(self) -> bool:
        """Gave up rewriting: everything passes as it comes."""
        return self.phase is Phase.RAW

    @property
    def fast_path_uses(self) -> int:
        return self._fast.uses

    @property
    def repairs(self) -> Counter[Repair]:
        """Repairs so far, by name (fast-path uses folded in)."""
        total = self._repairs + self._fast.repairs()
        if self._lines.seen_cr:
            total[Repair.cr_line_ends] += 1
        return +total

    # -- input ---------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        if self._spliceable and not self._split.held and not self._lines.pending_cr:
            # The common case: one whole `data: {...}\n\n` event per call.
            fast = self._fast.match(data)
            if fast is not None:
                self.events += 1
                return fast
        phase = self._phase
        if phase is not _EVENTS:
            if phase is _RAW:
                return self.sink.raw(data)
            if phase is _FAILED:
                return b""
            if phase is Phase.SNIFFING or phase is Phase.JSON_BODY:
                return self._sniff(data)
        mark = self._split.mark()
        try:
            blocks = self._split.feed(self._lines.feed(data))
            out = [self._event(block) for block in blocks]
            if self._split.overflowing:
                self._give_up(f"an event grew past normalize_max_event_bytes ({self.options.max_event_bytes})")
                out.append(self.sink.raw(self._split.flush()))
            return b"".join(out)
        except Exception:
            log.exception("%s: rewrite failed; passing the rest of the stream through unchanged", self.options.label)
            self.phase = Phase.RAW
            return self.sink.raw(self._split.since(mark) + data)

    def close(self) -> bytes:
        phase = self.phase
        if phase is Phase.RAW or phase is Phase.FAILED:
            return self.sink.close()
        if phase is Phase.SNIFFING or phase is Phase.JSON_BODY:
            return self._whole_json_body() + self.sink.close()
        tail = self._split.flush()
        try:
            out = []
            if tail.strip(b"\n"):
                out.append(self._event(tail, at_end=True))
            if self._saw_chunk and self.phase is Phase.EVENTS and not self._truncated:
                self._repairs[Repair.done_missing] += 1
                out.append(self._finish())
            out.append(self.sink.close())
            return b"".join(out)
        except Exception:
            log.exception("%s: rewrite failed at the end of the stream; passing its tail unchanged", self.options.label)
            self.phase = Phase.RAW
            return self.sink.raw(tail) + self.sink.close()

    def fail(self, why: str) -> bytes:
        """The rest of the upstream's body cannot be read (it does not decode): the
        client is told so, nothing is added that could read as a clean end, and
        whatever comes later is dropped."""
        log.warning("%s: could not read the rest of the upstream's body (%s); ending the stream with an error", self.options.label, why)
        phase, self.phase = self.phase, Phase.FAILED
        if phase is Phase.OVER:
            return b""  # it had ended already
        held = self.sink.chunks(self._rules.release()) if phase is Phase.EVENTS else b""
        error = openai_error(f"The proxy could not read the rest of the upstream's reply: {why}.", 502)
        return held + self.sink.failure(error)

    # -- a stream request answered with one JSON body ---------------------------

    def _sniff(self, data: bytes) -> bytes:
        """Until the first byte that is not white space: SSE, or one JSON body?

        Some upstreams answer a stream request with a whole JSON reply (an error,
        or a chat.completion when they ignore "stream": true). That body is
        held, then sent as OpenAI would have streamed it."""
        head = self._head
        if self.phase is Phase.SNIFFING:
            # Leading white space goes as it comes: lines of it dispatch nothing in SSE,
            # and it means nothing before a JSON value. Only the spaces that may start
            # the first line are held (in SSE they belong to its field name).
            text = data.lstrip()
            lead = data[: len(data) - len(text)]
            line_end = max(lead.rfind(b"\n"), lead.rfind(b"\r"))
            if line_end >= 0:
                head.clear()
            head += lead[line_end + 1 :]
            if not text:
                return self._sniff_overflow()
            if text[:1] not in (b"{", b"["):
                self.phase = Phase.EVENTS
                indent, self._head = bytes(head), bytearray()
                return self.feed(indent + text)
            head.clear()
            data = text
            self.phase = Phase.JSON_BODY
        head += data
        return self._sniff_overflow()

    def _sniff_overflow(self) -> bytes:
        head = self._head
        if len(head) <= self.options.max_event_bytes:
            return b""
        self._give_up(f"a JSON reply (or its first line) grew past normalize_max_event_bytes ({self.options.max_event_bytes})")
        self._head = bytearray()
        return self.sink.raw(bytes(head))

    def _whole_json_body(self) -> bytes:
        body = bytes(self._head)
        self._head = bytearray()
        json_body = self.phase is Phase.JSON_BODY
        self.phase = Phase.EVENTS
        if json_body:
            try:
                obj = parse_json_body(body)
                found = None if obj is None else error_object(obj)
                if found is not None:
                    self._repairs[Repair.stream_answered_with_json] += 1
                    return self._error(*found)
                if isinstance(obj, dict) and isinstance(obj.get("choices"), list):
                    self._repairs[Repair.stream_answered_with_json] += 1
                    out = [self._chunk(chunk) for chunk in completion_as_chunks(obj)]
                    return b"".join(out) + self._finish()
            except Exception:
                log.exception("%s: could not rewrite a JSON reply to a stream request; passing it unchanged", self.options.label)
                self.phase = Phase.RAW
                return self.sink.raw(body)
            self._warn_once("json_body", "a stream request was answered with a JSON body that is no chat completion; passing it unchanged")
        self.phase = Phase.OVER
        return self.sink.raw(body)  # JSON that is no reply, or nothing but white space

    def _give_up(self, why: str) -> None:
        log.warning("%s: %s; passing the rest of the stream through unchanged", self.options.label, why)
        self.phase = Phase.RAW

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("%s: %s", self.options.label, message)

    # -- one event -----------------------------------------------------------

    def _event(self, block: bytes, at_end: bool = False) -> bytes:
        self.events += 1
        if block[:5] == b"data:" and b"\n" not in block:
            payload = block[5:]
            if payload[:1] == b" ":
                payload = payload[1:]
            elif payload:
                self._repairs[Repair.data_without_space] += 1
            if self._spliceable:
                fast = self._fast.match(b"data: " + payload + b"\n\n")
                if fast is not None:
                    return fast
            return self._data(payload, block, at_end)

        event = parse_block(block)
        if event.spaceless:
            self._repairs[Repair.data_without_space] += 1
        comments = b"".join(self.sink.comment(comment) for comment in event.comments)
        fields = [line for line in block.split(b"\n") if line and line[:1] != b":"]
        if event.data is None:
            error_line = next((line for line in event.unknown if line.startswith(b"error:")), None)
            if error_line is not None:
                # llama.cpp (2025): `error: {...}` at HTTP 200, which clients never see.
                return comments + self._error(stream_error_line(error_line[6:].strip()), Repair.error_line_not_data)
            # Comments, or fields without data: nothing to repair, keep them.
            if event.unknown:
                self._warn_once("not_sse", "a line is not a server-sent event field; passing it through unchanged")
            return comments + (self.sink.foreign(b"\n".join(fields)) if fields else b"")
        if event.name == b"error":
            return comments + self._error(stream_error_line(event.data), Repair.named_error_event)
        kept = b"".join(line + b"\n" for line in fields if not line.startswith((b"data", b"event")))
        if event.data == b"[DONE]":
            return comments + self._done_event()
        obj = self._json_object(event.data, at_end)
        if obj is None:
            return self._passthrough(block, at_end)
        error = self._error_in(obj)
        if error is not None:
            return comments + error
        if not looks_like_chunk(obj):
            self._warn_once("not_chunk", "an event is not a chat completion chunk; passing it through unchanged")
            return self._passthrough(block, at_end)
        if event.name not in (None, b"message"):
            self._repairs[Repair.named_event] += 1
        return comments + self._chunk(obj, kept)

    def _data(self, payload: bytes, block: bytes, at_end: bool) -> bytes:
        if payload == b"[DONE]":
            return self._done_event()
        obj = self._json_object(payload, at_end)
        if obj is None:
            return self._passthrough(block, at_end)
        error = self._error_in(obj)
        if error is not None:
            return error
        if not looks_like_chunk(obj):
            self._warn_once("not_chunk", "an event is not a chat completion chunk; passing it through unchanged")
            return self._passthrough(block, at_end)
        learn = self._fast.learning and self.phase is Phase.EVENTS and self._rules.started(0)
        out = self._chunk(obj)
        if learn and out:
            self._repairs.update(self._fast.learn(payload, obj, out, self._rules, self.sink))
        return out

    def _json_object(self, payload: bytes, at_end: bool) -> dict[str, Any] | None:
        try:
            obj = loads(payload, max_containers=MAX_EVENT_CONTAINERS)
        except TooManyContainers:
            self._warn_once("too_many", f"an event holds more than {MAX_EVENT_CONTAINERS} objects and arrays; passing it through unchanged")
            return None
        except NotJSON:
            if at_end:
                self._truncated = True
                self._warn_once("truncated", "the stream ended inside an event; passing its bytes as received")
            else:
                self._warn_once("not_json", "an event's data is not JSON; passing it through unchanged")
            return None
        if not isinstance(obj, dict):
            self._warn_once("not_object", "an event's data is JSON but not an object; passing it through unchanged")
            return None
        return obj

    def _error_in(self, obj: dict[str, Any]) -> bytes | None:
        """An error in any upstream's shape, sent as OpenAI's; None when `obj` is no error."""
        if looks_like_chunk(obj) and not obj.get("error"):
            return None
        found = error_object(obj)
        return None if found is None else self._error(*found)

    def _error(self, error: dict[str, Any], repair: Repair | None) -> bytes:
        if self.phase is Phase.OVER:
            return self._after_end()
        if repair:
            self._repairs[repair] += 1
        log.warning("%s: the upstream reported an error inside the stream: %s", self.options.label, _message(error))
        self.phase = Phase.OVER
        return self.sink.chunks(self._rules.release()) + self.sink.error(error)

    def _passthrough(self, block: bytes, at_end: bool) -> bytes:
        if at_end and self._truncated:
            return self.sink.cut(block)
        return self.sink.foreign(block)

    def _chunk(self, chunk: dict[str, Any], fields: bytes = b"") -> bytes:
        self._saw_chunk = True
        if self.phase is Phase.OVER:
            return self._after_end()
        if self._fast.usage is not None:
            self._usage_from_fast_path()
        out = self.sink.chunks(self._rules.chunks(chunk), fields)
        self._spliceable = self._phase is _EVENTS and not self._rules.holding
        if self._rules.epoch != self._epoch:
            self._epoch = self._rules.epoch  # reasoning state moved: the templates no longer hold
            self._repairs.update(self._fast.reset())
        return out

    def _after_end(self) -> bytes:
        self._warn_once("after_done", "an event came after [DONE]; dropping it, as clients stop reading there")
        self._repairs[Repair.chunk_after_done] += 1
        return b""

    def _done_event(self) -> bytes:
        if self.phase is Phase.OVER:
            self._repairs[Repair.done_repeated] += 1
            return b""
        return self._finish()

    def _usage_from_fast_path(self) -> None:
        """The latest usage a spliced chunk carried becomes the rules' (sent once, at the end)."""
        usage = self._fast.take_usage()
        if usage is not None:
            self._rules.state.usage = loads(usage)

    def _finish(self) -> bytes:
        self._usage_from_fast_path()
        out = self.sink.chunks(self._rules.closing_chunks())
        self.phase = Phase.OVER
        return out + self.sink.end()


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("error", {}).get("message", ""))
    return message if len(message) <= 200 else message[:200] + "…"
