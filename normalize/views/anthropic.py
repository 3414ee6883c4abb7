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

from ..wire.jsonio import dump_pretty
from .events import data_events
from .sse import sse_view
from .text import as_bytes, compact, cut, escape, loads_ok, safe

# Bytes looked at to tell an Anthropic stream from a chat stream.
SNIFF_BYTES = 64 * 1024
MAX_TEXT_CHARS = 1_000_000


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
    for index, block in enumerate(obj.get("content") or []):
        if isinstance(block, dict):
            out.blocks[index] = {**block, "parts": [block.get("text") or block.get("thinking") or ""]}


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
            if not _integer(index) or index != next_index:
                out.notes.append(f"block {escape(compact(index))} started where block {next_index} was due")
            if _integer(index):
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
    block = out.blocks.get(index) if _integer(index) else None
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


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _render(out: _Message) -> str:
    lines: list[str] = []
    for key in ("id", "model", "role"):
        if key in out.head:
            lines.append(f"{key}: {_scalar(out.head[key])}")
    if out.stop or (out.ended and not out.errors):
        lines.append(f"stop_reason: {_scalar(out.stop.get('stop_reason'))}")
        if out.stop.get("stop_sequence") is not None:
            lines.append(f"stop_sequence: {_scalar(out.stop['stop_sequence'])}")
    for index in sorted(out.blocks):
        lines.extend(_block(index, out.blocks[index]))
    if out.usage:
        lines.append("usage: " + cut(escape(", ".join(f"{k} {compact(v)}" for k, v in out.usage.items()))))
    lines.extend(f"error: {error}" for error in out.errors)
    if not out.head and not out.errors:
        lines.append("(no message)")
    lines.extend(f"({note})" for note in out.notes)
    return "".join(line + "\n" for line in lines)


def _block(index: Any, block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    head = f"block {escape(compact(index))}: {_scalar(kind)}"
    if kind == "tool_use":
        head += f" {_scalar(block.get('name'))} (id {_scalar(block.get('id'))})"
        raw = "".join(block.get("json") or [])
        if not raw:
            return [head, *_text(_pretty(block.get("input", {})))]
        ok, value = loads_ok(raw)
        return [head, *_text(_pretty(value) if ok else raw), *([] if ok else ["    (input is not valid JSON)"])]
    if kind == "thinking" and not block.get("signature"):
        head += " (no signature)"
    text = "".join(part for part in block.get("parts") or [] if isinstance(part, str))
    return [head, *_text(text)] if text else [head + " (empty)"]


def _text(text: str, indent: str = "    ") -> list[str]:
    more = len(text) - MAX_TEXT_CHARS
    lines = [indent + escape(line) for line in text[:MAX_TEXT_CHARS].split("\n")]
    return [*lines, f"{indent}… (+{more} chars)"] if more > 0 else lines


def _scalar(value: Any) -> str:
    if value is None:
        return "(none)"
    return cut(escape(value if isinstance(value, str) else compact(value))) or '""'


def _pretty(value: Any) -> str:
    try:
        return dump_pretty(value).decode("utf-8").rstrip("\n")
    except (ValueError, TypeError, RecursionError):
        return "(too deeply nested to show)"


@safe
def translated_view(original: bytes, rewritten: bytes) -> str:
    """A bridged flow: the upstream's chat reply and the Anthropic reply sent, each as a
    client builds it, then each one's events."""
    from .assembled import assembled_view  # assembled imports this module

    return (
        "The upstream's chat reply was translated into Anthropic's Messages API.\n\n"
        "What a chat client builds from the upstream's reply:\n"
        + _indented(assembled_view(original))
        + "\nWhat an Anthropic client builds from the reply sent:\n"
        + _indented(anthropic_view(rewritten))
        + "\nThe upstream's events:\n"
        + _indented(sse_view(original))
        + "\nThe events sent:\n"
        + _indented(sse_view(rewritten))
    )


def _indented(text: str) -> str:
    return "".join("  " + line + "\n" for line in text.splitlines())
