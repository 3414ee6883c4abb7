"""The views for OpenAI's Responses API: what a client builds from a Responses event stream or a
Response object (the bridge's replies, endpoints/responses/).

Contract: `is_responses(data)` says whether a body is a Responses stream (its first event's
type starts with `response.`) or a Response object (`"object": "response"`), looking at
the first event or the top of the body only. `responses_view(data)` renders what a client
builds: the response's id, model and status, each output item (message text, refusal,
reasoning summary, function call with name and arguments, custom tool call with its
input), usage, the error of a failed response, why an incomplete one stopped; and notes
for what a client would trip on: no terminal event, more than one, events after it,
sequence numbers that do not increase. Total (any bytes) and linear in the body, like
every view.
"""

from __future__ import annotations

from typing import Any

from . import chat
from .events import data_events
from .text import as_bytes, as_list, block, compact, cut, escape, indented, loads_ok, pretty, scalar

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
_TEXT_DELTAS = {
    "response.output_text.delta",
    "response.refusal.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta",
    "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta",
}


def is_responses(data: bytes) -> bool:
    head = as_bytes(data)[:4096].lstrip()
    if head.startswith(b"{"):
        return b'"object":"response"' in head.replace(b" ", b"")[:200]
    events, _ = data_events(head)
    for payload, name in events:
        if name is not None:
            return name.startswith(b"response.")
        return payload is not None and payload.startswith(b'{"type":"response.')
    return False


class _Build:
    def __init__(self) -> None:
        self.response: dict[str, Any] = {}
        self.items: dict[int, dict[str, Any]] = {}
        self.texts: dict[int, list[str]] = {}  # deltas per output index, joined once at the end
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.terminals = 0


def responses_view(data: bytes) -> str:
    data = as_bytes(data)
    stripped = data.strip()
    if stripped[:1] == b"{":
        ok, body = loads_ok(stripped)
        if not ok or not isinstance(body, dict):
            return "(the body starts like JSON but is not a Response object)\n"
        build = _Build()
        _response(build, body)
        return _render(build)
    return _render(_from_stream(data))


def _from_stream(data: bytes) -> _Build:
    build = _Build()
    last_seq = -1
    disorder = after = not_json = 0
    events, unterminated = data_events(data)
    for payload, _name in events:
        if payload is None:
            continue
        ok, event = loads_ok(payload)
        if not ok or not isinstance(event, dict):
            not_json += 1
            continue
        if build.terminals:
            after += 1
        seq = event.get("sequence_number")
        if not isinstance(seq, int) or seq <= last_seq:
            disorder += 1
        else:
            last_seq = seq
        _event(build, event)
    if not build.terminals:
        build.notes.append("no terminal event (response.completed, .incomplete or .failed): clients take the reply as cut off")
    elif build.terminals > 1:
        build.notes.append(f"{build.terminals} terminal events")
    if after:
        build.notes.append(f"{after} event{'' if after == 1 else 's'} after the terminal event")
    if disorder:
        build.notes.append(f"{disorder} event{'' if disorder == 1 else 's'} without a sequence_number larger than the last")
    if not_json:
        build.notes.append(f"{not_json} event{'' if not_json == 1 else 's'} not JSON objects")
    if unterminated is not None and unterminated.data is not None:
        build.notes.append("the last event has no blank line after it")
    return build


def _event(build: _Build, event: dict[str, Any]) -> None:
    kind = event.get("type")
    index = event.get("output_index")
    if kind in _TEXT_DELTAS and isinstance(index, int) and isinstance(event.get("delta"), str):
        build.texts.setdefault(index, []).append(event["delta"])
    elif kind in ("response.output_item.added", "response.output_item.done") and isinstance(index, int):
        if isinstance(event.get("item"), dict):
            build.items[index] = event["item"]
            if kind.endswith(".done"):
                build.texts.pop(index, None)  # the whole item says it all
    elif kind == "error":
        build.errors.append(cut(escape(compact({k: v for k, v in event.items() if k not in ("type", "sequence_number")}))))
    elif isinstance(kind, str) and isinstance(event.get("response"), dict):
        if kind in TERMINAL:
            build.terminals += 1
        _response(build, event["response"], streamed=True)


def _response(build: _Build, response: dict[str, Any], streamed: bool = False) -> None:
    build.response = response
    output = response.get("output")
    if isinstance(output, list) and (output or not streamed):
        for position, item in enumerate(output):
            if isinstance(item, dict):
                build.items[position] = item
                build.texts.pop(position, None)
    error = response.get("error")
    if error:
        build.errors.append(cut(escape(compact(error))))


def _render(build: _Build) -> str:
    response = build.response
    lines = [
        f"id: {scalar(response.get('id'))}",
        f"model: {scalar(response.get('model'))}",
        f"status: {scalar(response.get('status'))}",
    ]
    incomplete = response.get("incomplete_details")
    if incomplete:
        lines.append(f"incomplete: {cut(escape(compact(incomplete)))}")
    for index in sorted(build.items):
        lines += _item(index, build.items[index], "".join(build.texts.get(index, ())))
    for index in sorted(set(build.texts) - set(build.items)):
        lines.append(f"item {index}: (deltas for an item never added)")
        lines += block("".join(build.texts[index]))
    if response.get("usage") is not None:
        lines.append(f"usage: {cut(escape(compact(response['usage'])))}")
    lines += [f"error: {error}" for error in build.errors]
    if build.notes:
        lines.append("notes:")
        lines += [f"  {note}" for note in build.notes]
    return "\n".join(lines) + "\n"


def _item(index: int, item: dict[str, Any], deltas: str) -> list[str]:
    kind = item.get("type")
    head = f"item {index}: {scalar(kind)} {scalar(item.get('id'))}"
    if isinstance(item.get("status"), str):
        head += f" ({escape(item['status'])})"
    if kind == "message":
        parts = as_list(item.get("content"))
        text = "".join(p.get("text") or p.get("refusal") or "" for p in parts if isinstance(p, dict)) or deltas
        refused = any(isinstance(p, dict) and p.get("type") == "refusal" for p in parts)
        return [cut(head), "  refusal:" if refused else "  text:", *block(text)]
    if kind == "reasoning":
        summary = as_list(item.get("summary"))
        content = as_list(item.get("content"))
        text = "".join(p.get("text") or "" for p in summary + content if isinstance(p, dict)) or deltas
        return [cut(head), "  reasoning:", *block(text)]
    if kind in ("function_call", "custom_tool_call"):
        name = item.get("name")
        if isinstance(item.get("namespace"), str):
            name = f"{item['namespace']}.{name}"
        head += f" {scalar(name)} (call_id {scalar(item.get('call_id'))})"
        value = item.get("arguments" if kind == "function_call" else "input")
        value = value if isinstance(value, str) and value else deltas
        if kind == "function_call":
            ok, parsed = loads_ok(value)
            shown = pretty(parsed) if ok and value else value
            return [cut(head), "  arguments:", *block(shown or "(none)")]
        return [cut(head), "  input:", *block(value or "(none)")]
    return [cut(head), f"  {cut(escape(compact(item)))}"]


def bridged_view(original: bytes, rewritten: bytes) -> str:
    """The upstream's chat reply beside the Responses reply the bridge made of it: both as their
    clients build them, and whether the text, reasoning and tool calls came through alike."""
    original, rewritten = as_bytes(original), as_bytes(rewritten)
    stripped = original.strip()
    ok, body = loads_ok(stripped) if stripped[:1] in (b"{", b"[") else (False, None)
    upstream = chat.from_body(body) if ok else chat.from_stream(original)
    if rewritten.strip()[:1] == b"{":
        ok, obj = loads_ok(rewritten.strip())
        sent = _Build()
        if ok and isinstance(obj, dict):
            _response(sent, obj)
    else:
        sent = _from_stream(rewritten)
    want, got = _chat_parts(upstream), _responses_parts(sent)
    same = [name for name in want if want[name] == got[name]]
    differ = [name for name in want if want[name] != got[name]]
    verdict = "the same" if not differ else f"different ({', '.join(differ)}; the same: {', '.join(same) or 'nothing'})"
    return (
        f"bridged: the upstream's chat reply was sent as a Responses reply; text, reasoning and tool calls are {verdict}\n\n"
        "the upstream's reply, as a chat client builds it:\n"
        + indented(chat.render(upstream))
        + "\nthe reply sent, as a Responses client builds it:\n"
        + indented(_render(sent))
    )


def _chat_parts(upstream: chat.Assembly) -> dict[str, Any]:
    message = chat.plain(upstream.choices.get(0, {}).get("message", {}))
    calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    names = [((c.get("function") or {}).get("name") or "") for c in calls if isinstance(c, dict)]
    return {
        "text": (message.get("content") or "") if isinstance(message.get("content"), str) else "",
        "reasoning": message.get("reasoning_content") or message.get("reasoning") or "",
        "tool calls": [name.rpartition("__")[2] for name in names],
    }


def _responses_parts(build: _Build) -> dict[str, Any]:
    text, reasoning, calls = [], [], []
    for index in sorted(build.items):
        item, deltas = build.items[index], "".join(build.texts.get(index, ()))
        kind = item.get("type")
        if kind == "message":
            parts = as_list(item.get("content"))
            text.append("".join(p.get("text") or "" for p in parts if isinstance(p, dict)) or deltas)
        elif kind == "reasoning":
            summary = as_list(item.get("summary"))
            reasoning.append("".join(p.get("text") or "" for p in summary if isinstance(p, dict)) or deltas)
        elif kind in ("function_call", "custom_tool_call"):
            calls.append(item.get("name") or "")
    return {"text": "".join(text), "reasoning": "".join(reasoning), "tool calls": calls}
