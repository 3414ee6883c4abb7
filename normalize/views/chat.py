"""What a chat client builds from a chat reply, the way openai-python's accumulator builds it.

Contract: `chat_view(data)` renders what a client would build from a stream
(or read from a non-stream body): strings are concatenated, lists of dicts
merged by `index`. Role, the full text, reasoning text, each tool call with
its name and full arguments, finish_reason, usage and errors; notes for what
a client would trip on (no [DONE], events after it, a last event without its
blank line). `from_body`, `from_stream` and `render` are its steps, for the
views that show a chat reply beside another API's (a bridged flow).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..wire.sse import LineEnds
from .events import data_events
from .text import as_bytes, block, compact, cut, escape, integer, loads_ok, number, pretty, raw_text, safe, scalar


class _Parts(list):
    """A string being accumulated, kept as pieces (joining 100k pieces with += is quadratic)."""

    def text(self) -> str:
        return "".join(self)


def _fresh(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _Parts([value])
    if isinstance(value, dict):
        return _merge({}, value, depth + 1)
    if isinstance(value, list):
        return _merge_list([], value, depth + 1)
    return value


def _merge(acc: dict[Any, Any], delta: dict[Any, Any], depth: int = 0) -> dict[Any, Any]:
    """openai-python's accumulate_delta: strings and numbers add up, dicts merge,
    lists of dicts merge by `index`, `index` and `type` are replaced, and null
    never overwrites. (Where it would raise, this keeps what it can.)"""
    if depth > 64:
        return acc
    for key, value in delta.items():
        current = acc.get(key)
        if current is None or key in ("index", "type"):
            acc[key] = _fresh(value, depth)
        elif isinstance(current, _Parts) and isinstance(value, str):
            current.append(value)
        elif number(current) and number(value):
            acc[key] = current + value
        elif isinstance(current, dict) and isinstance(value, dict):
            _merge(current, value, depth + 1)
        elif isinstance(current, list) and isinstance(value, list):
            _merge_list(current, value, depth + 1)
    return acc


def _merge_list(acc: list[Any], delta: list[Any], depth: int = 0) -> list[Any]:
    for entry in delta:
        index = entry.get("index") if isinstance(entry, dict) else None
        if not integer(index):
            acc.append(_fresh(entry, depth))
            continue
        for existing in acc:
            if isinstance(existing, dict) and existing.get("index") == index and integer(existing.get("index")):
                _merge(existing, entry, depth + 1)
                break
        else:
            acc.append(_fresh(entry, depth))
    return acc


def plain(value: Any) -> Any:
    if isinstance(value, _Parts):
        return value.text()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class Assembly:
    def __init__(self) -> None:
        self.id: Any = None
        self.model: Any = None
        self.choices: dict[int, dict[str, Any]] = {}  # index -> {"message": ..., "finish_reason": ...}
        self.usage: Any = None
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.streamed = True  # tool calls carry an index only when streamed


@safe
def chat_view(data: bytes) -> str:
    """The message a chat client builds from a stream (or reads from a non-stream body)."""
    data = as_bytes(data)
    stripped = data.strip()
    if not stripped:
        return "(empty body)\n"
    if stripped[:1] in (b"{", b"["):
        ok, body = loads_ok(stripped)
        if not ok:
            return "(the body starts like JSON but is not valid JSON)\n"
        return render(from_body(body))
    if stripped.startswith(b"data:") and b"\n\n" not in LineEnds().feed(data.lstrip()):
        # NIM's error bodies: one `data:{...}` with no blank line after it, sent as a whole reply.
        ok, body = loads_ok(stripped[5:].lstrip())
        if ok and isinstance(body, (dict, list)):
            out = from_body(body)
            out.notes.append("the body is JSON after a data: prefix")
            return render(out)
    return render(from_stream(data))


def from_body(body: Any) -> Assembly:
    out = Assembly()
    out.streamed = False
    for item in body if isinstance(body, list) else [body]:
        if not isinstance(item, dict):
            out.notes.append(f"not a chat completion: {cut(escape(compact(item)))}")
            continue
        _error(out, item)
        choices = item.get("choices")
        if isinstance(choices, dict):
            choices = [choices]
        if not isinstance(choices, list):
            if not item.get("error") and item.get("object") != "error":
                out.notes.append(f"not a chat completion: {cut(escape(compact(item)))}")
            continue
        out.id, out.model = item.get("id"), item.get("model")
        if item.get("usage") is not None:
            out.usage = item["usage"]
        for position, choice in enumerate(choices):
            if not isinstance(choice, dict):
                continue
            index = choice.get("index")
            message = choice.get("message")
            if message is None:
                message = choice.get("delta")
            out.choices[index if isinstance(index, int) and integer(index) else position] = {
                "message": _merge({}, message) if isinstance(message, dict) else {},
                "finish_reason": choice.get("finish_reason"),
            }
    return out


def from_stream(data: bytes) -> Assembly:
    out = Assembly()
    done = False
    after_done = not_json = not_chunks = 0
    saw_data = False
    events, unterminated = data_events(data)
    for payload, name in events:
        if payload is None:
            continue
        saw_data = True
        if done:
            after_done += 1  # clients stop reading at [DONE]
            continue
        if payload == b"[DONE]":
            done = True
            continue
        ok, obj = loads_ok(payload)
        if not ok or not isinstance(obj, dict):
            if name == b"error":
                out.errors.append(raw_text(payload))
            elif not ok:
                not_json += 1
            else:
                not_chunks += 1
            continue
        if _error(out, obj):
            continue
        if name == b"error":
            out.errors.append(cut(escape(compact(obj))))
            continue
        try:
            if not _chunk(out, obj):
                not_chunks += 1
        except RecursionError:
            not_chunks += 1
    if not saw_data:
        if unterminated is None or unterminated.data is None:
            out.notes.append("no data events")
    else:
        if not_json:
            out.notes.append(_events_are(not_json, "not JSON"))
        if not_chunks:
            out.notes.append(_events_are(not_chunks, "JSON but not chat chunks"))
        if after_done:
            out.notes.append(_events_are(after_done, "after [DONE], where clients stop reading"))
        if not done:
            out.notes.append("the stream ended without [DONE]")
    if unterminated is not None and unterminated.data is not None and not done:
        out.notes.append("the last event has no blank line after it, so openai-python drops it")
    return out


def _events_are(n: int, what: str) -> str:
    return f"1 event is {what}" if n == 1 else f"{n} events are {what}"


def _error(out: Assembly, obj: dict[str, Any]) -> bool:
    error = obj.get("error")
    if not error:
        if obj.get("object") == "error":  # vLLM < 0.10.1: the error without its wrapper
            out.errors.append(cut(escape(compact(obj))))
            return True
        return False
    out.errors.append(cut(escape(compact(error if len(obj) == 1 else obj))))
    return True


def _chunk(out: Assembly, chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    if isinstance(choices, dict):
        choices = [choices]
    if not isinstance(choices, list) and chunk.get("object") not in ("chat.completion.chunk", "chat.completion"):
        return False
    if out.id is None:
        out.id = chunk.get("id")
    if out.model is None:
        out.model = chunk.get("model")
    if chunk.get("usage") is not None:
        out.usage = chunk["usage"]
    for position, choice in enumerate(choices if isinstance(choices, list) else []):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index")
        state = out.choices.setdefault(
            index if isinstance(index, int) and integer(index) else position, {"message": {}, "finish_reason": None}
        )
        delta = choice.get("delta")
        if isinstance(delta, dict):
            _merge(state["message"], delta)
        if choice.get("finish_reason"):
            state["finish_reason"] = choice["finish_reason"]
    return True


_MESSAGE_SHOWN = ("role", "content", "reasoning_content", "reasoning", "refusal", "tool_calls")


def render(out: Assembly) -> str:
    lines: list[str] = []
    if out.id is not None or out.model is not None or out.choices:
        lines.append(f"id: {scalar(out.id)}")
        lines.append(f"model: {scalar(out.model)}")
    for index in sorted(out.choices):
        choice = out.choices[index]
        message = plain(choice["message"])
        lines.append(f"choice {index}")
        lines.append(f"  role: {scalar(message.get('role'))}")
        lines.append(f"  finish_reason: {scalar(choice['finish_reason'])}")
        content = message.get("content")
        if isinstance(content, str) and content:
            lines.append("  content:")
            lines.extend(block(content))
        else:
            lines.append(f"  content: {cut(escape(compact(content)))}")
        for key in ("reasoning_content", "reasoning", "refusal"):
            value = message.get(key)
            if isinstance(value, str) and value:
                lines.append(f"  {key}:")
                lines.extend(block(value))
            elif value is not None:
                lines.append(f"  {key}: {cut(escape(compact(value)))}")
        for key, value in message.items():
            if key not in _MESSAGE_SHOWN and value is not None:
                lines.append(f"  {escape(str(key))}: {cut(escape(compact(value)))}")
        calls = message.get("tool_calls")
        if isinstance(calls, dict):
            calls = [calls]
        if isinstance(calls, list):
            lines.extend(_tool_calls(calls, out.streamed))
        elif calls is not None:
            lines.append(f"  tool_calls: {cut(escape(compact(calls)))}")
    if out.usage is not None:
        lines.append("usage: " + _usage(out.usage))
    lines.extend(f"error: {error}" for error in out.errors)
    if not out.choices and not out.errors and not out.notes:
        lines.append("(no choices)")
    lines.extend(f"({note})" for note in out.notes)
    return "".join(line + "\n" for line in lines)


def _tool_calls(calls: list[Any], streamed: bool) -> Iterable[str]:
    if streamed:
        # Deltas are merged by index; one without an index (which openai-python
        # rejects) is listed after the others, in the order it came.
        indexed = sorted((c for c in calls if isinstance(c, dict) and integer(c.get("index"))), key=lambda c: c["index"])
        rest = [c for c in calls if not (isinstance(c, dict) and integer(c.get("index")))]
        calls = indexed + rest
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            yield f"  tool call ?: {cut(escape(compact(call)))}"
            continue
        index = call.get("index") if streamed else position
        label = str(index) if integer(index) else "? (no index)"
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        name = function.get("name")
        call_id = call.get("id")
        head = f"  tool call {label}: {escape(name) if isinstance(name, str) and name else '(no name)'}"
        head += f" (id {escape(call_id)})" if isinstance(call_id, str) and call_id else " (no id)"
        call_type = call.get("type")
        if call_type != "function":
            head += f" type {scalar(call_type)}"
        yield cut(head)
        arguments = function.get("arguments")
        if arguments is None or arguments == "":
            yield "    (no arguments)"
        elif isinstance(arguments, str):
            ok, parsed = loads_ok(arguments)
            if ok:
                yield from block(pretty(parsed))
            else:
                yield from block(arguments)
                yield "    (arguments are not valid JSON)"
        else:
            yield from block(pretty(arguments))
            yield "    (arguments sent as JSON, not as a string)"


_USAGE_NAMES = {"prompt_tokens": "prompt", "completion_tokens": "completion", "total_tokens": "total"}


def _usage(usage: Any) -> str:
    if not isinstance(usage, dict) or not usage:
        return cut(escape(compact(usage)))
    parts = [f"{_USAGE_NAMES[key]} {compact(usage[key])}" for key in _USAGE_NAMES if key in usage]
    parts += [f"{escape(str(key))} {compact(value)}" for key, value in usage.items() if key not in _USAGE_NAMES]
    return cut(escape(", ".join(parts)))
