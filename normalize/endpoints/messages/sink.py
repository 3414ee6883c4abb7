"""Anthropic's Messages stream, written from repaired chat chunks: a `ChunkSink` (chat/sink.py).

Contract: `ChatStream(options, sink=MessagesSink(info, repairs, label))` (as
`bridged_stream` builds it) reads the upstream's chat stream, applies every
chat repair, and this sink writes
what the client of the Messages API reads, each event as `event: <type>\\n
data: <compact json>\\n\\n`, in the same call that handed it the chunks:

  message_start        on the first chunk: a `message` with id `msg_…`, the
                       model the client asked for, empty content, and usage
                       with input_tokens (the request's estimate) and
                       output_tokens 0, always present
  content_block_start  a fresh index per block, from 0 up by one: `thinking`
  content_block_delta  (reasoning text: thinking_delta; empty signature, none
  content_block_stop   made up), `text` (text_delta), `tool_use` per tool call
                       (id, name, input {}; arguments as input_json_delta)
  message_delta        at the end: stop_reason, stop_sequence, usage (the
                       upstream's when it sent any, else the estimate and
                       the number of deltas sent)
  message_stop         exactly once, after a clean end only
  error                `{"type": "error", "error": {...}}` for an upstream
                       error, a stream cut off inside an event, a reply the
                       proxy could not read or translate, or a stream that
                       ended before it finished; nothing follows it, and never
                       a message_stop

A text or thinking block closes when another block starts; tool_use blocks
stay open until the finish, so arguments of calls that interleave still
reach their own block. Upstream keep-alive comments become `ping` events once
the message has started. Events that are no chat chunks are left out
(counted). `learn` gives the fast path a writer for text and thinking deltas
while such a block is open: the bytes around the text are fixed then.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import dump
from ..chat.options import Options
from ..chat.stream import ChatStream
from ..responses.sink import readable
from .errors import anthropic_error, from_openai
from .message import ReplyInfo, anthropic_usage, message_id, stop_reason

log = logging.getLogger(__name__)

TEXT, THINKING = "text", "thinking"
_DELTA_SUFFIX = b"}}\n\n"
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_DELTA_KINDS = {TEXT: b'"type":"text_delta","text":', THINKING: b'"type":"thinking_delta","thinking":'}


def event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dump(obj) + b"\n\n"


class MessagesSink:
    def __init__(self, info: ReplyInfo, repairs: Counter[Repair], label: str = "stream") -> None:
        self.info = info
        self.repairs = repairs
        self.label = label
        self.started = False  # message_start sent
        self.over = False  # message_stop or an error sent: nothing more
        self.answered = False  # a chunk with a choice came: there is a reply to end
        self.next_index = 0
        self.open: str | None = None  # the open text or thinking block's kind
        self.open_index = -1
        self.delta_prefix = b""  # the open text or thinking block's delta event, up to its text
        self.tools: dict[int, int] = {}  # chat tool call index -> its open tool_use block
        self.closed_tools: set[int] = set()  # chat tool call indexes whose blocks are closed
        self.stop: tuple[str, str | None] | None = None
        self.usage: Any = None  # the latest usage the chat rules handed on
        self.deltas = 0  # deltas sent: the output token count when the upstream gives none
        self._warned: set[str] = set()

    # -- the ChunkSink contract ---------------------------------------------------

    def chunks(self, chunks: list[dict[str, Any]], fields: bytes = b"") -> bytes:
        if self.over:
            return b""
        return b"".join([self._chunk(chunk) for chunk in chunks])

    def error(self, error: dict[str, Any]) -> bytes:
        return self._error(from_openai(error))

    def failure(self, error: dict[str, Any]) -> bytes:
        return self._error(from_openai(error))

    def end(self) -> bytes:
        if self.over:
            return b""
        if not self.answered:
            return self.close()
        out = b"" if self.started else self._message_start(None)
        out += self._close_all()
        reason, sequence = self.stop or ("end_turn", None)
        usage = anthropic_usage(self.usage, self.info.input_tokens, self.deltas)
        self.over = True
        delta = {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": usage}
        return out + event("message_delta", delta) + _MESSAGE_STOP

    def cut(self, tail: bytes) -> bytes:
        if self.over:
            return b""
        self.repairs[Repair.stream_ended_early] += 1
        return self._error(anthropic_error("The upstream's reply broke off inside an event: it is incomplete."))

    def raw(self, data: bytes) -> bytes:
        if self.over:
            return b""  # the stream's own log line said why; the client's stream has ended
        if not data.strip():
            return self.close()  # nothing but white space came
        self.repairs[Repair.stream_not_translatable] += 1
        log.warning("%s: the rest of the upstream's stream cannot be translated; ending the client's stream with an error", self.label)
        return self._error(anthropic_error("The proxy could not translate the rest of the upstream's reply."))

    def close(self) -> bytes:
        if self.over:
            return b""
        if not self.answered:
            self.repairs[Repair.stream_without_chunks] += 1
            log.warning("%s: the upstream's stream ended without a reply; ending the client's stream with an error", self.label)
            return self._error(anthropic_error("The upstream's stream ended without a reply."))
        self.repairs[Repair.stream_ended_early] += 1
        log.warning("%s: the upstream's stream ended before it finished; ending the client's stream with an error", self.label)
        return self._error(anthropic_error("The upstream's reply ended before it was complete."))

    def comment(self, line: bytes) -> bytes:
        if self.over:
            return b""
        return _PING if self.started else line + b"\n\n"

    def foreign(self, block: bytes) -> bytes:
        """An event that is no chat chunk: one whose data cannot be read ends the stream with
        an error (what it said is lost); a JSON value or fields without data are left out."""
        if self.over:
            return b""
        if not readable(block):
            self.repairs[Repair.stream_not_translatable] += 1
            log.warning("%s: an upstream event could not be read; ending the client's stream with an error", self.label)
            return self._error(anthropic_error("The upstream sent an event that could not be read."))
        if not self.repairs[Repair.event_not_chunk]:
            log.warning("%s: an upstream event is no chat chunk; it has no place in a Messages stream and is left out", self.label)
        self.repairs[Repair.event_not_chunk] += 1
        return b""

    def learn(self, chunk: dict[str, Any], probe: str, text: bytes, written: bytes) -> Callable[[bytes], bytes | None] | None:
        choices = chunk.get("choices")
        if not (isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], dict)):
            return None
        choice = choices[0]
        delta = choice.get("delta")
        if not isinstance(delta, dict) or choice.get("finish_reason") or chunk.get("usage") is not None:
            return None
        if delta.get("content") == probe:
            kind = TEXT
        elif probe in (delta.get("reasoning_content"), delta.get("reasoning")):
            kind = THINKING
        else:
            return None
        if self.over or self.open != kind or not written.endswith(self.delta_prefix + text + _DELTA_SUFFIX):
            return None
        return self._text_writer(kind)

    # -- chunks ---------------------------------------------------------------------

    def _text_writer(self, kind: str) -> Callable[[bytes], bytes | None]:
        def write(text: bytes) -> bytes | None:
            if self.open != kind:
                return None  # another block is open: the slow path switches blocks
            self.deltas += 1
            return self.delta_prefix + text + _DELTA_SUFFIX

        return write

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        out = [] if self.started else [self._message_start(chunk.get("id"))]
        usage = chunk.get("usage")
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            if choice.get("index") != 0:
                self._warn_once("choices", "choices other than the first have no place in a Messages reply; leaving them out")
                continue
            self.answered = True
            delta = choice.get("delta")
            if isinstance(delta, dict):
                reasoning = delta.get("reasoning_content")
                if not isinstance(reasoning, str):
                    reasoning = delta.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    out.append(self._text(THINKING, reasoning))
                text = delta.get("content")
                if isinstance(text, str) and text:
                    out.append(self._text(TEXT, text))
                calls = delta.get("tool_calls")
                for call in calls if isinstance(calls, list) else ():
                    out.append(self._tool_call(call))
            finish = choice.get("finish_reason")
            if finish:
                out.append(self._close_all())
                self.stop = stop_reason(finish, choice, self.info.stop_sequences)
        return b"".join(out)

    def _message_start(self, chat_id: Any) -> bytes:
        self.started = True
        message: dict[str, Any] = {
            "id": message_id(chat_id, self.info),
            "type": "message",
            "role": "assistant",
            "model": self.info.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.info.input_tokens, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": message})

    def _text(self, kind: str, text: str) -> bytes:
        out = b""
        if self.open != kind:
            # Tool blocks close first: blocks never overlap.
            out = self._close_tools() + self._close_open() + self._open_block(kind)
        self.deltas += 1
        return out + self.delta_prefix + dump(text) + _DELTA_SUFFIX

    def _open_block(self, kind: str) -> bytes:
        index = self.next_index
        self.next_index += 1
        self.open, self.open_index = kind, index
        self.delta_prefix = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{%s' % (
            index,
            _DELTA_KINDS[kind],
        )
        block = {"type": "text", "text": ""} if kind == TEXT else {"type": "thinking", "thinking": "", "signature": ""}
        return event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def _tool_call(self, call: Any) -> bytes:
        if not isinstance(call, dict):
            return b""
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        key = call.get("index")
        if not isinstance(key, int):
            key = -1  # the chat rules number every call; anything else is one call
        out = b""
        index = self.tools.get(key)
        if index is None and key in self.closed_tools:
            return self._tool_call_after_its_end()
        if index is None:
            out = self._close_open()
            index = self.tools[key] = self.next_index
            self.next_index += 1
            call_id, name = call.get("id"), function.get("name")
            block = {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) else "",
                "name": name if isinstance(name, str) else "",
                "input": {},
            }
            out += event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self.deltas += 1
            delta = {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": arguments}}
            out += event("content_block_delta", delta)
        return out

    def _close_open(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return event("content_block_stop", {"type": "content_block_stop", "index": self.open_index})

    def _close_tools(self) -> bytes:
        out = b"".join(event("content_block_stop", {"type": "content_block_stop", "index": i}) for i in sorted(self.tools.values()))
        self.closed_tools.update(self.tools)
        self.tools.clear()
        return out

    def _tool_call_after_its_end(self) -> bytes:
        """More of a tool call after text that followed it: its block is closed, and what came
        cannot be put in order, so the stream ends with an error rather than run a call cut short."""
        log.warning("%s: the upstream sent more of a tool call after text that followed it; ending with an error", self.label)
        self.repairs[Repair.stream_not_translatable] += 1
        return self._error(anthropic_error("The upstream sent more of a tool call after it had moved on to text."))

    def _close_all(self) -> bytes:
        """Every open block closed, in index order (at the finish)."""
        indexes = sorted(self.tools.values())
        if self.open is not None:
            indexes.append(self.open_index)
            indexes.sort()
            self.open = None
        self.tools.clear()
        return b"".join(event("content_block_stop", {"type": "content_block_stop", "index": i}) for i in indexes)

    def _error(self, error: dict[str, Any]) -> bytes:
        if self.over:
            return b""
        self.over = True
        self.open = None
        return event("error", error)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("%s: %s", self.label, message)


def bridged_stream(options: Options, info: ReplyInfo, repairs: Counter[Repair], label: str = "stream") -> ChatStream:
    """The transducer for one bridged stream: every chat repair, then Anthropic's events
    (the sink counts its repairs in `repairs`)."""
    return ChatStream(options, MessagesSink(info, repairs, label))
