"""The views for Anthropic's Messages replies (what the Messages bridge sends its clients).

Contract: `is_anthropic(data)` says whether a body is an Anthropic event stream
(its first data event is a `message_start` or an `error` in Anthropic's
envelope), a `message` object or an Anthropic error body. `anthropic_view(data)`
renders the message a client builds from it, the way anthropic-python's
stream helper does: blocks by their index, text and thinking joined, tool
inputs from their partial JSON; then stop_reason, usage, errors, and notes for
what a client would trip on (no message_stop, events after the end, deltas for
blocks never started, indexes out of order). `translated_view(original,
rewritten)` is the before-after view of a bridged flow: what a client builds
from the upstream's reply beside what it builds from the one sent, then both
event lists. Total and linear in the input, like every view.
"""

from __future__ import annotations

from typing import Any

from .chat import chat_view
from .events import data_events
from .sse import sse_view
from .text import as_bytes, block, compact, cut, escape, indented, integer, loads_ok, pretty, safe, scalar

# Bytes looked at to tell an Anthropic stream from a chat stream.
SNIFF_BYTES = 64 * 1024


def is_anthropic(data: bytes) -> bool:
    data = as_bytes(data)
    stripped = data.strip()
    if stripped[:1] == b"{":
        ok, obj = loads_ok(stripped)
        return ok and _message_or_error(obj)
    events, _ = data_events(data[:SNIFF_BYTES])
    for payload, name in events:
        if payload is None:
            continue
        ok, obj = loads_ok(payload)
        return ok and isinstance(obj, dict) and (obj.get("type") == "message_start" or (name == b"error" and _message_or_error(obj)))
    return False


def _message_or_error(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    if obj.get("type") == "message":
        return isinstance(obj.get("content"), list)
    return obj.get("type") == "error" and isinstance(obj.get("error"), dict)


class _Message:
    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.usage: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.stop: dict[str, Any] = {}
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.ended = False


@safe
def anthropic_view(data: bytes) -> str:
    data = as_bytes(data)
    stripped = data.strip()
    out = _Message()
    if stripped[:1] == b"{":
        ok, obj = loads_ok(stripped)
        if ok and isinstance(obj, dict):
            _whole(out, obj)
    else:
        _stream(out, data)
    return _render(out)


def _whole(out: _Message, obj: dict[str, Any]) -> None:
    if obj.get("type") == "error":
        out.errors.append(cut(escape(compact(obj.get("error")))))
        return
    out.head = obj
    usage = obj.get("usage")
    out.usage = dict(usage) if isinstance(usage, dict) else {}
    out.stop = obj
    out.ended = True
    for index, content in enumerate(obj.get("content") or []):
        if isinstance(content, dict):
            out.blocks[index] = {**content, "parts": [content.get("text") or content.get("thinking") or ""]}


def _stream(out: _Message, data: bytes) -> None:
    events, unterminated = data_events(data)
    after_end = strays = 0
    next_index = 0
    for payload, _name in events:
        if payload is None:
            continue
        ok, obj = loads_ok(payload)
        kind = obj.get("type") if ok and isinstance(obj, dict) else None
        if kind is None:
            strays += 1
            continue
        if out.ended:
            after_end += 1
            continue
        index = obj.get("index")
        if kind == "message_start" and isinstance(obj.get("message"), dict):
            out.head = obj["message"]
            usage = out.head.get("usage")
            out.usage = dict(usage) if isinstance(usage, dict) else {}
        elif kind == "content_block_start" and isinstance(obj.get("content_block"), dict):
            if not integer(index) or index != next_index:
                out.notes.append(f"block {escape(compact(index))} started where block {next_index} was due")
            if integer(index):
                next_index = index + 1
                out.blocks[index] = {**obj["content_block"], "parts": [], "json": []}
        elif kind == "content_block_delta":
            _delta(out, index, obj.get("delta"))
        elif kind == "message_delta":
            if isinstance(obj.get("delta"), dict):
                out.stop = obj["delta"]
            if isinstance(obj.get("usage"), dict):
                out.usage.update(obj["usage"])
        elif kind == "message_stop":
            out.ended = True
        elif kind == "error":
            out.errors.append(cut(escape(compact(obj.get("error")))))
            out.ended = True
    if strays:
        out.notes.append(f"{strays} event{'' if strays == 1 else 's'} without an Anthropic type")
    if after_end:
        out.notes.append(f"{after_end} event{'' if after_end == 1 else 's'} after the end, where clients stop reading")
    if not out.ended:
        out.notes.append("the stream ended without message_stop or an error")
    if unterminated is not None and unterminated.data is not None:
        out.notes.append("the last event has no blank line after it, so clients drop it")


def _delta(out: _Message, index: Any, delta: Any) -> None:
    block = out.blocks.get(index) if integer(index) else None
    if block is None or not isinstance(delta, dict):
        out.notes.append(f"a delta for block {escape(compact(index))}, which was never started")
        return
    kind = delta.get("type")
    key = (
        {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}.get(kind)
        if isinstance(kind, str)
        else None
    )
    value = delta.get(key) if key else None
    if not isinstance(value, str):
        if kind == "signature_delta":
            block["signature"] = delta.get("signature")
        return
    (block["json"] if kind == "input_json_delta" else block["parts"]).append(value)


def _render(out: _Message) -> str:
    lines: list[str] = []
    for key in ("id", "model", "role"):
        if key in out.head:
            lines.append(f"{key}: {scalar(out.head[key])}")
    if out.stop or (out.ended and not out.errors):
        lines.append(f"stop_reason: {scalar(out.stop.get('stop_reason'))}")
        if out.stop.get("stop_sequence") is not None:
            lines.append(f"stop_sequence: {scalar(out.stop['stop_sequence'])}")
    for index in sorted(out.blocks):
        lines.extend(_block(index, out.blocks[index]))
    if out.usage:
        lines.append("usage: " + cut(escape(", ".join(f"{k} {compact(v)}" for k, v in out.usage.items()))))
    lines.extend(f"error: {error}" for error in out.errors)
    if not out.head and not out.errors:
        lines.append("(no message)")
    lines.extend(f"({note})" for note in out.notes)
    return "".join(line + "\n" for line in lines)


def _block(index: Any, content: dict[str, Any]) -> list[str]:
    kind = content.get("type")
    head = f"block {escape(compact(index))}: {scalar(kind)}"
    if kind == "tool_use":
        head += f" {scalar(content.get('name'))} (id {scalar(content.get('id'))})"
        raw = "".join(content.get("json") or [])
        if not raw:
            return [head, *block(pretty(content.get("input", {})))]
        ok, value = loads_ok(raw)
        return [head, *block(pretty(value) if ok else raw), *([] if ok else ["    (input is not valid JSON)"])]
    if kind == "thinking" and not content.get("signature"):
        head += " (no signature)"
    text = "".join(part for part in content.get("parts") or [] if isinstance(part, str))
    return [head, *block(text)] if text else [head + " (empty)"]


@safe
def translated_view(original: bytes, rewritten: bytes) -> str:
    """A bridged flow: the upstream's chat reply and the Anthropic reply sent, each as a
    client builds it, then each one's events."""
    return (
        "The upstream's chat reply was translated into Anthropic's Messages API.\n\n"
        "What a chat client builds from the upstream's reply:\n"
        + indented(chat_view(original))
        + "\nWhat an Anthropic client builds from the reply sent:\n"
        + indented(anthropic_view(rewritten))
        + "\nThe upstream's events:\n"
        + indented(sse_view(original))
        + "\nThe events sent:\n"
        + indented(sse_view(rewritten))
    )
