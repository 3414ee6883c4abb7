"""Repaired chat chunks in, the Responses API's stream out: the bridge's `ChunkSink`.

Contract: `ChatStream(options, sink=ResponsesSink(shell, tools, repairs))`
applies every chat repair, then this sink writes each upstream event's
Responses events in the same call. When each is written is the bridges'
shared policy (bridge/sink.py: one terminal event, nothing after it, failure
for what could not be read, calls closed before text); this module writes
them. Every event is `event: <type>\\ndata: <compact json>\\n\\n` with a
`sequence_number` one more than the last, starting at 0; the stream opens
with `response.created` and `response.in_progress` and ends with exactly one
terminal event:

  response.completed   the upstream finished (finish_reason stop, tool_calls)
  response.incomplete  finish_reason length (max_output_tokens) or content_filter
  response.failed      anything else (an upstream error, a stream cut off,
                       unreadable or without a reply): never a `completed`
                       for what could not be read (Codex retries until it
                       sees `completed`, and must not take a cut stream as
                       finished). No `[DONE]`.

Between them, one output item per run of the same kind, in order: content
text -> `message` (`output_text` part), `refusal` -> `message` (refusal part),
`reasoning_content`/`reasoning` -> `reasoning` (one summary part: the text
clients show), each tool call -> `function_call` (arguments "{}" when none
came), or `custom_tool_call` for a custom tool (its input read out of the
arguments: custom_input.py), with `call_id` the chat call id. Each item:
`output_item.added`, its part and deltas, then the `.done` events and
`output_item.done` with the whole item, which the terminal event's
`response.output` repeats.

Text is kept as JSON string literals as it was written (the fast path hands
them over without decoding), and the `.done` events and the terminal event
carry the joined literals, spliced into place (shapes.splice). A delta is one
bytes formatting of the item's template with its sequence number and literal.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import dump
from ...wire.sse import encode_event
from ..bridge.sink import BridgeSink
from ..chat.rejected import context_exceeded
from ..errors import error_status
from .custom_input import InputReader
from .items import CUSTOM_CALL, FUNCTION_CALL, ID_PREFIX, MESSAGE, REASONING, TEXT_EVENTS, TEXT_KEYS, Item, call_item, text_part
from .shapes import INCOMPLETE, Shell, responses_usage, splice
from .tools import CUSTOM, ToolMap

log = logging.getLogger(__name__)


class ResponsesSink(BridgeSink):
    text_keys = TEXT_KEYS

    def __init__(
        self,
        shell: Shell,
        tools: ToolMap | None = None,
        repairs: Counter[Repair] | None = None,
        *,
        on_end: Callable[[bytes], None] | None = None,
        label: str = "stream",
    ) -> None:
        super().__init__(Counter() if repairs is None else repairs, label)
        self.shell = shell
        self.tools = tools or ToolMap()
        self.on_end = on_end  # given the final response object, as JSON (to store it)
        self._seq = 0
        self._items: list[Item] = []
        self._open_item: Item | None = None  # the open text item

    # -- the hooks ---------------------------------------------------------------------

    def write_start(self, chunk: dict[str, Any] | None = None) -> bytes:
        response = self.shell.response("in_progress", [])
        return self._event("response.created", {"response": response}) + self._event("response.in_progress", {"response": response})

    def write_open_text(self, kind: str) -> bytes:
        item = self._open_item = self._new(kind)
        delta_type, _, _, where = TEXT_EVENTS[kind]
        tail = ',"logprobs":[]}' if kind == MESSAGE else "}"
        item.delta = _delta_format(delta_type, f'"item_id":"{item.id}","output_index":{item.index},"{where}":0', tail)
        if kind == REASONING:
            added = {"id": item.id, "type": "reasoning", "summary": []}
            part = {"type": "summary_text", "text": ""}
            part_event = "response.reasoning_summary_part.added"
        else:
            added = {"id": item.id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
            part = text_part(kind, "")
            part_event = "response.content_part.added"
        return self._event("response.output_item.added", {"output_index": item.index, "item": added}) + self._event(
            part_event, {"item_id": item.id, "output_index": item.index, where: 0, "part": part}
        )

    def write_delta(self, literal: bytes) -> bytes:
        item = self._open_item
        assert item is not None
        seq = self._seq
        self._seq = seq + 1
        item.pieces.append(literal[1:-1])
        return item.delta % (seq, literal)

    def write_close_text(self) -> bytes:
        item, self._open_item = self._open_item, None
        assert item is not None
        _, done_type, key, where = TEXT_EVENTS[item.kind]
        texts = {item.mark: item.literal()}
        at = {"item_id": item.id, "output_index": item.index, where: 0}
        done: dict[str, Any] = {**at, key: item.mark}
        if item.kind == MESSAGE:
            done["logprobs"] = []
        if item.kind == REASONING:
            part = {"type": "summary_text", "text": item.mark}
            item.done = {"id": item.id, "type": "reasoning", "summary": [part]}
            part_event = "response.reasoning_summary_part.done"
        else:
            part = text_part(item.kind, item.mark)
            item.done = {"id": item.id, "type": "message", "status": self._status(), "content": [part], "role": "assistant"}
            part_event = "response.content_part.done"
        return (
            self._event(done_type, done, texts)
            + self._event(part_event, {**at, "part": part}, texts)
            + self._event("response.output_item.done", {"output_index": item.index, "item": item.done}, texts)
        )

    def write_open_call(self, call: dict[str, Any], function: dict[str, Any]) -> tuple[Item, bytes]:
        name = function.get("name")
        tool = self.tools.tool(name if isinstance(name, str) else "")
        item = self._new(CUSTOM_CALL if tool.kind == CUSTOM else FUNCTION_CALL)
        # The chat rules give every call an id, in its first delta.
        item.call_id, item.name, item.namespace = call["id"], tool.name, tool.namespace
        delta_type = "response.custom_tool_call_input.delta" if tool.kind == CUSTOM else "response.function_call_arguments.delta"
        item.delta = _delta_format(delta_type, f'"item_id":"{item.id}","output_index":{item.index}', "}")
        if tool.kind == CUSTOM:
            item.reader = InputReader()
        return item, self._event("response.output_item.added", {"output_index": item.index, "item": call_item(item, "in_progress")})

    def write_arguments(self, item: Item, arguments: str) -> bytes:
        item.arguments.append(arguments)
        if item.reader is not None:
            text = item.reader.feed(arguments)
            if not text:
                return b""
            arguments = text
        seq = self._seq
        self._seq = seq + 1
        return item.delta % (seq, dump(arguments))

    def write_close_call(self, item: Item) -> bytes:
        arguments = "".join(item.arguments)
        at = {"item_id": item.id, "output_index": item.index}
        out = b""
        if item.reader is not None:
            rest = item.reader.finish(arguments)
            if rest:
                out = self._event("response.custom_tool_call_input.delta", {**at, "delta": rest})
            value = "".join(item.reader.sent)
            out += self._event("response.custom_tool_call_input.done", {**at, "input": value})
        else:
            value = arguments
            if not value:
                # No arguments came: "{}", as a whole reply says it (chat's tool_arguments_missing).
                self.repairs[Repair.tool_arguments_missing] += 1
                value = "{}"
                out = self._event("response.function_call_arguments.delta", {**at, "delta": value})
            out += self._event("response.function_call_arguments.done", {**at, "name": item.name, "arguments": value})
        item.done = call_item(item, self._status(), value)
        return out + self._event("response.output_item.done", {"output_index": item.index, "item": item.done})

    def write_end(self) -> bytes:
        incomplete = INCOMPLETE.get(self.finish or "")
        status = "incomplete" if incomplete else "completed"
        return self._terminal(f"response.{status}", status, incomplete=incomplete)

    def write_failure(self, error: dict[str, Any]) -> bytes:
        out = b""
        if not self.started:
            self.started = True
            out = self.write_start()
        return out + self._terminal("response.failed", "failed", error=response_error(error))

    def write_keep_alive(self, line: bytes) -> bytes:
        return line + b"\n\n"  # keep-alives keep the client's connection alive

    # -- the whole response ------------------------------------------------------------

    def _status(self) -> str:
        return "incomplete" if self.finish in INCOMPLETE else "completed"

    def _terminal(self, kind: str, status: str, *, error: dict[str, Any] | None = None, incomplete: str | None = None) -> bytes:
        done = [item for item in self._items if item.done is not None]
        texts = {item.mark: item.literal() for item in done if item.kind in TEXT_EVENTS}
        usage = responses_usage(self.usage, self.shell.input_tokens, self.deltas)
        response = self.shell.response(status, [item.done for item in done], usage, error=error, incomplete=incomplete)
        body = splice(response, texts)
        if self.on_end is not None:
            try:
                self.on_end(body)
            except Exception:
                log.exception("%s: could not keep the response", self.label)
        seq = self._seq
        self._seq = seq + 1
        return encode_event(
            kind, b'{"type":"' + kind.encode() + b'","sequence_number":' + str(seq).encode() + b',"response":' + body + b"}"
        )

    def _new(self, kind: str) -> Item:
        item = Item(kind, self.shell.make_id(ID_PREFIX[kind]), len(self._items))
        self._items.append(item)
        return item

    def _event(self, kind: str, fields: dict[str, Any], texts: dict[str, bytes] | None = None) -> bytes:
        seq = self._seq
        self._seq = seq + 1
        obj = {"type": kind, "sequence_number": seq, **fields}
        return encode_event(kind, splice(obj, texts) if texts else dump(obj))


def _delta_format(kind: str, where: str, tail: str) -> bytes:
    """A delta event as a bytes format of its sequence number (%d) and JSON literal (%s)."""
    head = encode_event(kind, b"").removesuffix(b"\n\n") + b'{"type":"' + kind.encode() + b'","sequence_number":'
    mid = b"," + where.encode() + b',"delta":'
    return _literal(head) + b"%d" + _literal(mid) + b"%s" + _literal(tail.encode() + b"\n\n")


def _literal(text: bytes) -> bytes:
    return text.replace(b"%", b"%%")


def response_error(error: dict[str, Any]) -> dict[str, Any]:
    """A failed response's `error` ({code, message}) from OpenAI's `{"error": {...}}`.

    Codex acts on the code: `context_length_exceeded` makes it compact the
    conversation, `rate_limit_exceeded` wait, anything else retry. So a message
    that says the context was exceeded gives that code, an upstream's own code
    (a word, not a status) is kept, and otherwise the status the error says
    (`errors.error_status`) picks it: 429 a rate limit, anything else a
    `server_error`, as OpenAI's failed responses say."""
    inner = error.get("error")
    inner = inner if isinstance(inner, dict) else {}
    message = inner.get("message")
    message = message if isinstance(message, str) and message else "The upstream failed."
    code = inner.get("code")
    if context_exceeded(message):
        code = "context_length_exceeded"
    elif not isinstance(code, str) or not code or code.isdigit():
        code = "rate_limit_exceeded" if error_status(error) == 429 else "server_error"
    return {"code": code, "message": message}
