"""Repaired chat chunks in, the Responses API's stream out: the bridge's `ChunkSink`.

Contract: `ChatStream(options, sink=ResponsesSink(shell, tools))` applies every
chat repair, then this sink writes each upstream event's Responses events in
the same call (chat/sink.py has the sink contract). Every event is
`event: <type>\\ndata: <compact json>\\n\\n` with a `sequence_number` one more
than the last, starting at 0; the stream opens with `response.created` and
`response.in_progress` and ends with exactly one terminal event:

  response.completed   the upstream finished (finish_reason stop, tool_calls)
  response.incomplete  finish_reason length (max_output_tokens) or content_filter
  response.failed      an upstream error, a stream cut off or unreadable (an
                       event whose data is no JSON, one too large to read), a
                       stream that ended before saying anything: never a
                       `completed` for what could not be read (Codex retries
                       until it sees `completed`, and must not take a cut
                       stream as finished). No `[DONE]`.

Between them, one output item per run of the same kind, in order: content
text -> `message` (`output_text` part), `refusal` -> `message` (refusal part),
`reasoning_content`/`reasoning` -> `reasoning` (one summary part: the text
clients show), each tool call -> `function_call`, or `custom_tool_call` for a
custom tool (its input read out of the arguments: custom_input.py), with
`call_id` the chat call id. Text and reasoning items close when another kind
begins; tool calls close at the finish. Each item: `output_item.added`, its
part and deltas, then the `.done` events and `output_item.done` with the whole
item, which the terminal event's `response.output` repeats.

Text is kept as JSON string literals as it was written (the fast path hands
them over without decoding: `learn`), and the `.done` events and the terminal
event carry the joined literals, spliced into place (shapes.splice).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import NotJSON, dump, loads
from ...wire.sse import parse_block
from ..chat.options import MAX_EVENT_CONTAINERS
from .custom_input import InputReader
from .items import CUSTOM_CALL, FUNCTION_CALL, ID_PREFIX, MESSAGE, REASONING, TEXT_EVENTS, TEXT_KEYS, Item, call_item, text_part
from .shapes import INCOMPLETE, Shell, failure, responses_usage, splice, text_or
from .tools import CUSTOM, ToolMap

log = logging.getLogger(__name__)

_CHOICE_KEYS = frozenset({"index", "delta", "logprobs", "finish_reason"})


class ResponsesSink:
    def __init__(
        self, shell: Shell, tools: ToolMap | None = None, *, on_end: Callable[[bytes], None] | None = None, label: str = "stream"
    ) -> None:
        self.shell = shell
        self.tools = tools or ToolMap()
        self.on_end = on_end  # given the final response object, as JSON (to store it)
        self.label = label
        self.repairs: Counter[Repair] = Counter()
        self._seq = 0
        self._started = False
        self._over = False
        self._answered = False  # a chunk with a choice came: there is a reply to end
        self._items: list[Item] = []
        self._open: Item | None = None  # the text item deltas go to
        self._calls: dict[int, Item] = {}  # open tool calls by chat index
        self._closed_calls: set[int] = set()  # chat indexes of calls already done
        self._finish: str | None = None
        self._usage: Any = None
        self._deltas = 0  # deltas sent: the output tokens when the upstream reports none
        self._dropped = 0  # bytes of a stream given up on, not sent

    @property
    def over(self) -> bool:
        return self._over

    # -- the ChunkSink contract --------------------------------------------------

    def chunks(self, chunks: list[dict[str, Any]], fields: bytes = b"") -> bytes:
        if self._over:
            return b""
        out = [self._start()]
        for chunk in chunks:
            if chunk.get("usage") is not None:
                self._usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if isinstance(choice, dict):
                    out.append(self._choice(choice))
        return b"".join(out)

    def error(self, error: dict[str, Any]) -> bytes:
        return self._fail(failure(error))

    def failure(self, error: dict[str, Any]) -> bytes:
        return self._fail(failure(error))

    def end(self) -> bytes:
        if self._over:
            return b""
        if not self._answered:
            return self._ended_early()
        out = self._start() + self._close_all()
        incomplete = INCOMPLETE.get(self._finish or "")
        status = "incomplete" if incomplete else "completed"
        return out + self._terminal(f"response.{status}", status, incomplete=incomplete)

    def cut(self, tail: bytes) -> bytes:
        log.warning("%s: the upstream's stream broke off inside an event; the response failed", self.label)
        return self._fail({"code": "server_error", "message": "The upstream's stream broke off before the reply was complete."})

    def raw(self, data: bytes) -> bytes:
        self._dropped += len(data)
        if self._over:
            return b""
        if not data.strip():
            return self._ended_early()
        return self._unreadable("The proxy could not read the upstream's stream.")

    def _unreadable(self, message: str) -> bytes:
        self.repairs[Repair.stream_not_translatable] += 1
        return self._fail({"code": "server_error", "message": message})

    def close(self) -> bytes:
        if self._dropped:
            log.warning("%s: %d bytes of an unreadable upstream stream were not sent (the response failed)", self.label, self._dropped)
            self._dropped = 0
        if self._over:
            return b""
        return self._ended_early()

    def _ended_early(self) -> bytes:
        """The upstream's stream ended without a reply, or before it was complete: never
        a completed response (Codex would exit 0 with no answer)."""
        if not self._answered:
            self.repairs[Repair.stream_without_chunks] += 1
            return self._fail({"code": "server_error", "message": "The upstream's stream ended without a reply."})
        self.repairs[Repair.stream_ended_early] += 1
        return self._fail({"code": "server_error", "message": "The upstream's stream ended before the reply was complete."})

    def comment(self, line: bytes) -> bytes:
        # Keep-alives keep the client's connection alive; after the terminal event, nothing.
        return b"" if self._over else line + b"\n\n"

    def foreign(self, block: bytes) -> bytes:
        """An event that is no chat chunk: one whose data cannot be read fails the response
        (what it said is lost); a JSON value or fields without data are left out, counted."""
        if self._over:
            return b""
        if not readable(block):
            return self._unreadable("The upstream sent an event that could not be read.")
        if not self.repairs[Repair.event_not_chunk]:
            log.warning("%s: an upstream event is no chat chunk; it has no place in a Responses stream and is left out", self.label)
        self.repairs[Repair.event_not_chunk] += 1
        return b""

    def learn(self, chunk: dict[str, Any], probe: str, text: bytes, written: bytes) -> Callable[[bytes], bytes | None] | None:
        """A plain text chunk like `chunk` is one delta of the open text item of its kind:
        spliced from the item's delta template with the next sequence number."""
        choices = chunk.get("choices")
        if chunk.get("usage") is not None or not isinstance(choices, list) or len(choices) != 1:
            return None
        choice = choices[0]
        if not isinstance(choice, dict) or choice.keys() - _CHOICE_KEYS or choice.get("finish_reason") is not None:
            return None
        delta = choice.get("delta")
        if not isinstance(delta, dict) or len(delta) != 1 or choice.get("index") != 0:
            return None
        ((key, value),) = delta.items()
        kind = TEXT_KEYS.get(key)
        if value != probe or kind is None:
            return None

        def write(literal: bytes) -> bytes | None:
            item = self._open
            if item is None or item.kind != kind or self._over:
                return None
            seq = self._seq
            self._seq = seq + 1
            self._deltas += 1
            item.pieces.append(literal[1:-1])
            return item.head + str(seq).encode() + item.mid + literal + item.tail

        return write

    # -- one choice --------------------------------------------------------------

    def _choice(self, choice: dict[str, Any]) -> bytes:
        if choice.get("index", 0) != 0:
            if not self.repairs[Repair.choice_beyond_first]:
                log.warning("%s: the upstream sent more than one choice; a Responses stream has one, the rest is left out", self.label)
            self.repairs[Repair.choice_beyond_first] += 1
            return b""
        self._answered = True
        out = []
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for key, value in delta.items():
                kind = TEXT_KEYS.get(key)
                if kind is not None and isinstance(value, str) and value:
                    out.append(self._text(kind, value))
                elif key == "tool_calls" and isinstance(value, list):
                    out += [self._call(call) for call in value if isinstance(call, dict)]
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self._finish = reason
            out.append(self._close_all())
        return b"".join(out)

    def _text(self, kind: str, text: str) -> bytes:
        out = b""
        item = self._open
        if item is None or item.kind != kind:
            # Calls close first: items finish in output_index order.
            out = self._close_calls("completed") + self._close_text() + self._open_text(kind)
            item = self._open
            assert item is not None
        literal = dump(text)
        seq = self._seq
        self._seq = seq + 1
        self._deltas += 1
        item.pieces.append(literal[1:-1])
        return out + item.head + str(seq).encode() + item.mid + literal + item.tail

    def _open_text(self, kind: str) -> bytes:
        item = self._new(kind)
        self._open = item
        delta_type, _, _, where = TEXT_EVENTS[kind]
        head = f"event: {delta_type}\ndata: " + '{"type":"' + delta_type + '","sequence_number":'
        item.head = head.encode()
        item.mid = (
            b',"item_id":"' + item.id.encode() + b'","output_index":' + str(item.index).encode() + b',"' + where.encode() + b'":0,"delta":'
        )
        item.tail = b',"logprobs":[]}\n\n' if kind == MESSAGE else b"}\n\n"
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

    def _close_text(self, status: str = "completed") -> bytes:
        item = self._open
        if item is None:
            return b""
        self._open = None
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
            item.done = {"id": item.id, "type": "message", "status": status, "content": [part], "role": "assistant"}
            part_event = "response.content_part.done"
        return (
            self._event(done_type, done, texts)
            + self._event(part_event, {**at, "part": part}, texts)
            + self._event("response.output_item.done", {"output_index": item.index, "item": item.done}, texts)
        )

    # -- tool calls ----------------------------------------------------------------

    def _call(self, call: dict[str, Any]) -> bytes:
        index = call.get("index")
        index = index if isinstance(index, int) else len(self._calls)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        out = b""
        item = self._calls.get(index)
        if item is None and index in self._closed_calls:
            return self._call_after_its_end()
        if item is None:
            out = self._close_text()
            item = self._calls[index] = self._open_call(call, function)
            out += self._event("response.output_item.added", {"output_index": item.index, "item": call_item(item, "in_progress")})
        arguments = function.get("arguments")
        if not isinstance(arguments, str) or not arguments:
            return out
        item.arguments.append(arguments)
        self._deltas += 1
        if item.reader is None:
            return out + self._event(
                "response.function_call_arguments.delta", {"item_id": item.id, "output_index": item.index, "delta": arguments}
            )
        text = item.reader.feed(arguments)
        if not text:
            return out
        return out + self._event("response.custom_tool_call_input.delta", {"item_id": item.id, "output_index": item.index, "delta": text})

    def _open_call(self, call: dict[str, Any], function: dict[str, Any]) -> Item:
        tool = self.tools.tool(text_or(function.get("name")))
        item = self._new(CUSTOM_CALL if tool.kind == CUSTOM else FUNCTION_CALL)
        call_id = text_or(call.get("id")) or "call_" + item.id[3:27]
        item.call_id, item.name, item.namespace = call_id, tool.name, tool.namespace
        if tool.kind == CUSTOM:
            item.reader = InputReader()
        return item

    def _close_call(self, item: Item, status: str) -> bytes:
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
        item.done = call_item(item, status, value)
        return out + self._event("response.output_item.done", {"output_index": item.index, "item": item.done})

    # -- the whole response --------------------------------------------------------

    def _close_all(self) -> bytes:
        status = "incomplete" if self._finish in INCOMPLETE else "completed"
        return self._close_text(status) + self._close_calls(status)

    def _close_calls(self, status: str) -> bytes:
        out = [self._close_call(item, status) for item in sorted(self._calls.values(), key=lambda item: item.index)]
        self._closed_calls.update(self._calls)
        self._calls.clear()
        return b"".join(out)

    def _call_after_its_end(self) -> bytes:
        """More of a tool call after text that followed it: its item is done, and what came
        cannot be put in order, so the reply fails rather than run a call cut short."""
        log.warning("%s: the upstream sent more of a tool call after text that followed it; the response failed", self.label)
        self.repairs[Repair.stream_not_translatable] += 1
        return self._fail({"code": "server_error", "message": "The upstream sent more of a tool call after it had moved on to text."})

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        response = self.shell.response("in_progress", [])
        return self._event("response.created", {"response": response}) + self._event("response.in_progress", {"response": response})

    def _fail(self, error: dict[str, Any]) -> bytes:
        if self._over:
            return b""
        log.info("%s: the response failed: %s", self.label, error.get("message"))
        return self._start() + self._terminal("response.failed", "failed", error=error)

    def _terminal(self, kind: str, status: str, *, error: dict[str, Any] | None = None, incomplete: str | None = None) -> bytes:
        self._over = True
        done = [item for item in self._items if item.done is not None]
        texts = {item.mark: item.literal() for item in done if item.kind in TEXT_EVENTS}
        usage = responses_usage(self._usage, self.shell.input_tokens, self._deltas)
        response = self.shell.response(status, [item.done for item in done], usage, error=error, incomplete=incomplete)
        body = splice(response, texts)
        seq = self._seq
        self._seq = seq + 1
        if self.on_end is not None:
            try:
                self.on_end(body)
            except Exception:
                log.exception("%s: could not keep the response", self.label)
        head = b'{"type":"' + kind.encode() + b'","sequence_number":' + str(seq).encode() + b',"response":'
        return b"event: " + kind.encode() + b"\ndata: " + head + body + b"}\n\n"

    def _new(self, kind: str) -> Item:
        item = Item(kind, self.shell.make_id(ID_PREFIX[kind]), len(self._items))
        self._items.append(item)
        return item

    def _event(self, kind: str, fields: dict[str, Any], texts: dict[str, bytes] | None = None) -> bytes:
        seq = self._seq
        self._seq = seq + 1
        obj = {"type": kind, "sequence_number": seq, **fields}
        body = splice(obj, texts) if texts else dump(obj)
        return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"


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
