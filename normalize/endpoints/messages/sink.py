"""Anthropic's Messages stream, written from repaired chat chunks: a `ChunkSink` (chat/sink.py).

Contract: `ChatStream(options, MessagesSink(info, repairs, label))` reads
the upstream's chat stream, applies every chat repair, and this sink writes
what the client of the Messages API reads, each event as `event: <type>\\n
data: <compact json>\\n\\n`, in the same call that handed it the chunks. When
each is written is the bridges' shared policy (bridge/sink.py: one terminal
event, nothing after it, failure for what could not be read, tool blocks
closed before text); this module writes them:

  message_start        on the first chunk: a `message` with id `msg_…`, the
                       model the client asked for, empty content, and usage
                       with input_tokens (the request's estimate) and
                       output_tokens 0, always present
  content_block_start  a fresh index per block, from 0 up by one: `thinking`
  content_block_delta  (reasoning text: thinking_delta; empty signature, none
  content_block_stop   made up), `text` (text_delta; a refusal is text too),
                       `tool_use` per tool call (id, name, input {};
                       arguments as input_json_delta)
  message_delta        at the end: stop_reason, stop_sequence, usage (the
                       upstream's when it sent any, else the estimate and
                       the number of deltas sent)
  message_stop         exactly once, after a clean end only
  error                `{"type": "error", "error": {...}}` for an upstream
                       error or any reply that did not finish; nothing
                       follows it, and never a message_stop

Upstream keep-alive comments become `ping` events once the message has
started. A text or thinking delta is one bytes formatting of the open
block's delta event with the text's JSON literal (what the fast path splices).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from ...repairs import Repair
from ...wire.jsonio import dump
from ...wire.sse import encode_event
from ..bridge.sink import BridgeSink
from .errors import from_openai
from .message import ReplyInfo, anthropic_usage, message_id, stop_reason

TEXT, THINKING = "text", "thinking"
_DELTA_PREFIX = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{%s'
_DELTA_KINDS = {TEXT: b'"type":"text_delta","text":', THINKING: b'"type":"thinking_delta","thinking":'}
_INPUT_PREFIX = _DELTA_PREFIX.replace(b"%s", b'"type":"input_json_delta","partial_json":')
_DELTA_SUFFIX = b"}}\n\n"
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def event(name: str, obj: Any) -> bytes:
    return encode_event(name, dump(obj))


class MessagesSink(BridgeSink):
    text_keys: ClassVar[dict[str, str]] = {"content": TEXT, "refusal": TEXT, "reasoning_content": THINKING, "reasoning": THINKING}

    def __init__(self, info: ReplyInfo, repairs: Counter[Repair], label: str = "stream") -> None:
        super().__init__(repairs, label)
        self.info = info
        self.next_index = 0
        self.open_index = -1  # the open text or thinking block's index
        self.delta_format = b""  # the open text or thinking block's delta event, as a format of its text

    # -- the hooks ---------------------------------------------------------------------

    def write_start(self, chunk: dict[str, Any]) -> bytes:
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id"), self.info),
            "type": "message",
            "role": "assistant",
            "model": self.info.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.info.input_tokens, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": message})

    def write_open_text(self, kind: str) -> bytes:
        index = self.open_index = self._block()
        self.delta_format = (_DELTA_PREFIX % (index, _DELTA_KINDS[kind])).replace(b"%", b"%%") + b"%s" + _DELTA_SUFFIX
        block = {"type": "text", "text": ""} if kind == TEXT else {"type": "thinking", "thinking": "", "signature": ""}
        return event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def write_delta(self, literal: bytes) -> bytes:
        return self.delta_format % literal

    def write_close_text(self) -> bytes:
        return _stop(self.open_index)

    def write_open_call(self, call: dict[str, Any], function: dict[str, Any]) -> tuple[int, bytes]:
        index = self._block()
        name = function.get("name")
        # The chat rules give every call an id, in its first delta.
        block = {"type": "tool_use", "id": call["id"], "name": name if isinstance(name, str) else "", "input": {}}
        return index, event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def write_arguments(self, index: int, arguments: str) -> bytes:
        return _INPUT_PREFIX % index + dump(arguments) + _DELTA_SUFFIX

    def write_close_call(self, index: int) -> bytes:
        return _stop(index)

    def write_end(self) -> bytes:
        reason, sequence = stop_reason(self.finish, self.finish_choice, self.info.stop_sequences)
        usage = anthropic_usage(self.usage, self.info.input_tokens, self.deltas)
        delta = {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": usage}
        return event("message_delta", delta) + _MESSAGE_STOP

    def write_failure(self, error: dict[str, Any]) -> bytes:
        return event("error", from_openai(error))

    def write_keep_alive(self, line: bytes) -> bytes:
        return _PING if self.started else line + b"\n\n"

    def _block(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index


def _stop(index: int) -> bytes:
    return event("content_block_stop", {"type": "content_block_stop", "index": index})
