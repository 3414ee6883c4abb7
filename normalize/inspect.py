"""What mitmweb shows about a flow the addon touched: pure text, never mitmproxy.

Contract:
  describe(repairs, events)   the one-line summary of what was repaired.
  CappedBuffer                keeps the first `cap` bytes of a body, counts the rest.
  sse_view(data)              a stream, one line per event, JSON made compact.
  assembled_view(data)        the message a client builds from a stream (or a
                              non-stream body), the way openai-python's
                              accumulator builds it: strings are concatenated.
  before_after_view(a, b)     the upstream's events beside the ones we sent.

Views take any bytes (garbage, cut short, invalid UTF-8, empty) and never
raise: whatever cannot be parsed is shown as it came, with escapes. They run
when someone clicks in mitmweb, so each renders at most MAX_EVENTS events and
cuts very long lines. Output is deterministic and never contains a line
break other than LF.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from .sse import Event, EventSplitter, LineEnds, parse_block

__all__ = [
    "MAX_EVENTS",
    "REPAIR_PHRASES",
    "CappedBuffer",
    "assembled_view",
    "before_after_view",
    "describe",
    "sse_view",
]

log = logging.getLogger(__name__)

# Events a view renders before it says "… N more events".
MAX_EVENTS = 2000
# A rendered event line longer than this is cut (a whole 8 MiB event on one line helps nobody).
MAX_LINE_CHARS = 20_000
# A text block (content, reasoning, arguments) in the assembled view longer than this is cut.
MAX_TEXT_CHARS = 1_000_000
# How far ahead before_after_view looks for an event's counterpart.
ALIGN_WINDOW = 64

# ---------------------------------------------------------------------------
# describe

# How each repair reads in the flow summary. `{n}` is the count and `{s}` an
# "s" when it is not 1; a phrase without `{n}` gets " x{n}" when n > 1.
REPAIR_PHRASES: dict[str, str] = {
    # stream chunks (normalize/chat.py)
    "null_fields": "{n} null field{s} dropped",
    "role_missing_on_first_chunk": "role added to first chunk",
    "role_repeated": "role deduplicated",
    "content_missing_on_first_chunk": 'content "" added to first chunk',
    "chunk_id_missing": "{n} missing chunk id{s} filled in",
    "chunk_id_changing": "{n} changing chunk id{s} pinned",
    "chunk_object_wrong": "object set to chat.completion.chunk on {n} chunk{s}",
    "created_missing_or_not_integer": "created fixed on {n} chunk{s}",
    "created_changing": "created pinned on {n} chunk{s}",
    "model_missing": "model filled in on {n} chunk{s}",
    "choices_missing_or_object": "choices made a list on {n} chunk{s}",
    "choice_index_missing": "{n} missing choice index{es} added",
    "finish_reason_key_missing": "finish_reason key added to {n} choice{s}",
    "finish_reason_empty": '{n} empty finish_reason{s} ("") made null',
    "finish_reason_eos_token": "finish_reason eos_token renamed stop",
    "tool_calls_finish_stop": "finish_reason stop renamed tool_calls",
    "delta_missing": "delta added to {n} choice{s}",
    "message_in_chunk": "message dropped beside the delta in {n} chunk{s}",
    "delta_not_object": "{n} non-object delta{s} turned into content",
    "empty_chunk": "{n} empty chunk{s} dropped",
    "empty_choices_chunk": "{n} chunk{s} without choices handled",
    "tool_calls_as_object": "tool_calls made a list in {n} chunk{s}",
    "tool_call_index_missing": "{n} missing tool call index{es} added",
    "tool_call_index_reused": "{n} tool call{s} on a reused index renumbered",
    "tool_name_repeated": "{n} repeated tool name{s} dropped",
    "tool_name_empty": '{n} empty tool name{s} ("") dropped',
    "tool_name_missing": "{n} tool call{s} started without a name",
    "tool_name_late": "{n} late tool name{s} moved to the call's first delta",
    "tool_call_id_missing": "{n} missing tool call id{s} generated",
    "tool_call_id_repeated": "{n} repeated tool call id{s} dropped",
    "tool_call_type_missing": "{n} missing tool call type{s} set to function",
    "tool_arguments_not_string": "{n} tool argument object{s} turned into string{s}",
    "finish_reason_never_sent": "finish chunk added",
    "usage_not_last": "usage moved to one final chunk",
    "usage_under_x_groq": "usage taken from x_groq",
    # stream framing (normalize/stream.py) and headers (addon.py)
    "done_missing": "[DONE] added",
    "done_repeated": "{n} repeated [DONE] dropped",
    "chunk_after_done": "{n} chunk{s} after [DONE] dropped",
    "data_without_space": "space added after data: on {n} event{s}",
    "cr_line_ends": "CR line ends made LF",
    "named_event": "event name dropped from {n} event{s}",
    "stream_sent_as_json": "content-type fixed",
    "stream_answered_with_json": "JSON reply to a stream request sent as a stream",
    "error_at_status_200": "error sent with HTTP 200 given an error status",
    "body_not_bare_json": "JSON body stripped of a data: prefix or blank lines",
    "error_line_not_data": "llama.cpp error: line sent as a data: error event",
    "named_error_event": "event: error sent as a data: error event",
    # non-stream replies (normalize/completion.py)
    "completion_object_wrong": "object set to chat.completion",
    "id_missing": "id filled in",
    "message_missing": "{n} missing message{s} added",
    "role_missing": "role added",
    "content_missing": "content key added",
    "content_null": 'null content made ""',
    "tool_arguments_missing": '{n} missing tool argument{s} set to "{}"',
    # errors (normalize/errors.py)
    "error_body_empty": "empty error body made an OpenAI error",
    "error_not_json": "non-JSON error made an OpenAI error",
    "error_unknown_shape": "unknown error shape made an OpenAI error",
    "error_data_prefix": "data: prefix taken off the error",
    "error_in_array": "error taken out of its array",
    "error_is_string": "string error made an error object",
    "error_not_wrapped": 'error wrapped in {"error": ...}',
    "nim_problem_json": "NIM problem+json error made an OpenAI error",
    "error_is_detail": "detail error made an OpenAI error",
    "error_fields_missing": "error fields filled in",
    # model lists (normalize/models.py)
    "models_bare_list": 'model list wrapped in {"object": "list"}',
    "models_list_object_missing": 'object "list" added to the model list',
    "model_is_string": "{n} model name{s} made model objects",
    "model_id_missing": "{n} model id{s} taken from name",
    "model_object_missing": 'object "model" added to {n} model{s}',
    "model_created_missing_or_not_integer": "created fixed on {n} model{s}",
    "model_owned_by_missing": "owned_by filled in on {n} model{s}",
    "models_answered_locally": "model list answered by the proxy (normalize_models)",
    "models_endpoint_missing": "model list answered by the proxy (upstream has none)",
    # requests (normalize/request.py)
    "stream_options_without_stream": "stream_options dropped (stream is not true)",
    "param_dropped": "{n} unsupported param{s} dropped",
    "model_alias": "model name aliased",
    "max_completion_tokens_unsupported": "max_completion_tokens sent as max_tokens",
    "developer_role_unsupported": "{n} developer message{s} sent as system",
}


def describe(repairs: Mapping[str, int], events: int | None = None) -> str:
    """`normalized 12 events: 2 null fields dropped, [DONE] added`; most frequent first."""
    head = "normalized" if events is None else f"normalized {events} event{'' if events == 1 else 's'}"
    counted = sorted(((n, name) for name, n in repairs.items() if n > 0), key=lambda item: (-item[0], item[1]))
    if not counted:
        return f"{head}: nothing to repair"
    return f"{head}: " + ", ".join(_phrase(name, n) for n, name in counted)


def _phrase(name: str, n: int) -> str:
    template = REPAIR_PHRASES.get(name)
    if template is None:
        template = name.replace("_", " ")
    if "{n}" not in template:
        return template if n == 1 else f"{template} x{n}"
    return (
        template.replace("{n}", str(n))
        .replace("{s}", "" if n == 1 else "s")
        .replace("{es}", "" if n == 1 else "es")
    )


# ---------------------------------------------------------------------------
# CappedBuffer


class CappedBuffer:
    """The first `cap` bytes appended; the rest is only counted."""

    __slots__ = ("_dropped", "_kept", "cap")

    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError(f"cap must be >= 0, not {cap}")
        self.cap = cap
        self._kept = bytearray()
        self._dropped = 0

    def append(self, data: bytes) -> bool:
        """Keeps what fits; True while there is room for more."""
        room = self.cap - len(self._kept)
        size = len(data)
        if size < room:
            self._kept += data
            return True
        if room > 0:
            self._kept += memoryview(data)[:room]
            size -= room
        self._dropped += size
        return False

    def take(self) -> bytes:
        """The kept bytes; the buffer lets go of its own copy."""
        value = bytes(self._kept)
        self._kept = bytearray()
        return value

    @property
    def value(self) -> bytes:
        return bytes(self._kept)

    @property
    def dropped(self) -> int:
        """Bytes appended but not kept."""
        return self._dropped

    @property
    def truncated(self) -> bool:
        return self._dropped > 0

    def __len__(self) -> int:
        return len(self._kept)


# ---------------------------------------------------------------------------
# Shared helpers


def _safe(view: Callable[..., str]) -> Callable[..., str]:
    """A view never raises: a bug shows as a note above the raw bytes, and in the log."""

    @functools.wraps(view)
    def wrapper(*args: Any) -> str:
        try:
            text = view(*args)
        except Exception as e:  # a view is the last place a bug should break anything
            log.exception("%s failed", view.__name__)
            raw = _as_bytes(args[0] if args else b"")
            text = f"(could not render this view: {type(e).__name__})\n{_raw_text(raw)}\n"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from JSON escapes: show them escaped
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return text

    return wrapper


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    try:
        return bytes(data)
    except (TypeError, ValueError):
        return b""


def _compact(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        return "(too deeply nested to show)"


def _loads(payload: bytes | str) -> tuple[bool, Any]:
    try:
        return True, json.loads(payload)
    except (ValueError, RecursionError):
        return False, None


# Everything str.splitlines would break a line on, plus the other C0 controls
# (a raw CR or ESC in a text pane does damage); tab stays.
_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(text: str) -> str:
    """One line of text: line breaks and control characters written as escapes."""
    if not _BREAKS.search(text):
        return text
    return _BREAKS.sub(lambda m: _NAMED.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def _cut(text: str, limit: int = MAX_LINE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … (+{len(text) - limit} chars)"


# ---------------------------------------------------------------------------
# Events


_NOT_JSON = object()


class _Unit(NamedTuple):
    """One line of a stream view: a comment, or an event's fields and data."""

    line: str
    key: tuple[Any, ...]  # what the event says, for pairing upstream and rewritten events
    data: bytes | None = None
    name: bytes | None = None
    obj: Any = _NOT_JSON  # the data, parsed
    spaceless: bool = False
    unterminated: bool = False


class _Stream(NamedTuple):
    units: list[_Unit]
    more: int  # events past the limit (a whole block past it counts as one)


def _blocks(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete event blocks (the same split the stream rewriter makes), and the unterminated tail."""
    data = LineEnds().feed(data)
    splitter = EventSplitter(max_bytes=len(data) + 1)
    blocks = splitter.feed(data)
    return blocks, splitter.flush()


def _stream(data: bytes, limit: int = MAX_EVENTS) -> _Stream:
    blocks, tail = _blocks(data)
    if tail.strip(b"\n"):
        blocks.append(tail)
    else:
        tail = b""
    units: list[_Unit] = []
    more = 0
    for at, block in enumerate(blocks):
        room = limit - len(units)
        if room <= 0:
            return _Stream(units, more + sum(1 for b in blocks[at:] if b.strip(b"\n")))
        made, skipped = _block_units(block, bool(tail) and at == len(blocks) - 1, room)
        units.extend(made)
        more += skipped
    return _Stream(units, more)


def _block_units(block: bytes, unterminated: bool, room: int) -> tuple[list[_Unit], int]:
    """The units of one block (at most `room`), and how many more it had."""
    mark = "  (unterminated)" if unterminated else ""
    out: list[_Unit] = []
    skipped = 0
    fields = []
    for line in block.split(b"\n"):
        if not line:
            continue
        if line[:1] == b":":
            # The rewriter sends each comment as an event of its own, ahead of its event.
            if len(out) < room:
                out.append(_Unit(_raw_text(line) + mark, ("comment", line), unterminated=unterminated))
            else:
                skipped += 1
        else:
            fields.append(line)
    if not fields:
        return out, skipped
    if len(out) >= room:
        return out, skipped + 1
    event = parse_block(b"\n".join(fields))
    obj: Any = _NOT_JSON
    if event.data is None:
        text, key = None, ("fields", tuple(fields))
    else:
        text, key, obj = _data_text_and_key(event.data, event.spaceless)
    parts = []
    size = 0
    for line in fields:
        if size > MAX_LINE_CHARS:
            parts.append("… (event cut)")  # the line would be cut here anyway
            break
        if line.partition(b":")[0] == b"data":
            if text is None:
                continue
            part, text = text, None  # data lines are joined: shown once, where the first one was
        else:
            part = _raw_text(line)
        parts.append(part)
        size += len(part) + 3
    line = (parts[0] if len(parts) == 1 else _cut(" | ".join(parts))) + mark  # each part is cut already
    out.append(_Unit(line, key, event.data, event.name, obj, event.spaceless, unterminated))
    return out, skipped


def _raw_text(raw: bytes) -> str:
    """Bytes as one line of text: invalid UTF-8 as \\x escapes, cut when long."""
    limit = MAX_LINE_CHARS * 4  # a character is at most 4 bytes
    text = _escape(raw[:limit].decode("utf-8", "backslashreplace"))
    if len(raw) > limit:
        return _cut(text) if len(text) > MAX_LINE_CHARS else f"{text} … (+{len(raw) - limit} bytes)"
    return _cut(text)


def _data_text_and_key(payload: bytes, spaceless: bool) -> tuple[str, tuple[Any, ...], Any]:
    head = "data:" if spaceless else "data: "
    if not payload:
        return "data:", ("raw", payload), _NOT_JSON
    if payload == b"[DONE]":
        return head + "[DONE]", ("done",), _NOT_JSON
    ok, obj = _loads(payload)
    if not ok:
        return _raw_text(head.encode() + payload), ("raw", payload), _NOT_JSON
    return _cut(head + _escape(_compact(obj))), _json_key(obj, payload), obj


def _json_key(obj: Any, payload: bytes) -> tuple[Any, ...]:
    """What an event says, leaving out what the rewriter repairs, so both sides pair up."""
    if isinstance(obj, dict):
        if obj.get("error") or obj.get("object") == "error":
            return ("error",)
        choices = obj.get("choices")
        if isinstance(choices, (list, dict)) or obj.get("object") in ("chat.completion.chunk", "chat.completion"):
            if isinstance(choices, dict):
                choices = [choices]
            elif not isinstance(choices, list):
                choices = []
            sigs = tuple(sig for sig in map(_choice_key, choices) if sig != _EMPTY_CHOICE)
            return ("chunk", sigs, obj.get("usage") is not None)
    return ("json", payload)


def _data_events(data: bytes) -> tuple[Iterable[tuple[bytes | None, bytes | None]], Event | None]:
    """(data, event name) of each complete event, without rendering anything; and the
    unterminated last event, if any."""
    blocks, tail = _blocks(data)

    def events() -> Iterable[tuple[bytes | None, bytes | None]]:
        for block in blocks:
            if block[:5] == b"data:" and b"\n" not in block:  # the usual event: one data line
                payload = block[5:]
                yield (payload[1:] if payload[:1] == b" " else payload), None
            elif block.strip(b"\n"):
                event = parse_block(block)
                yield event.data, event.name

    return events(), parse_block(tail) if tail.strip(b"\n") else None


_EMPTY_CHOICE = ("", "", (), False)


def _choice_key(choice: Any) -> tuple[Any, ...]:
    if not isinstance(choice, dict):
        return ("?", repr(choice))
    delta = choice.get("delta")
    if isinstance(delta, str):
        delta = {"content": delta}
    elif not isinstance(delta, dict):
        # As ChunkRules.delta turns it into content.
        delta = {} if delta is None else {"content": json.dumps(delta, ensure_ascii=False)}
    content = delta.get("content")
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    calls = delta.get("tool_calls")
    if isinstance(calls, dict):
        calls = [calls]
    arguments = []
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            args = function.get("arguments") if isinstance(function, dict) else None
            if args is not None and not isinstance(args, str):
                args = _compact(args)
            if args:
                arguments.append(args)
    return (
        content if isinstance(content, str) else "",
        reasoning if isinstance(reasoning, str) else "",
        tuple(arguments),
        bool(choice.get("finish_reason")),
    )


# ---------------------------------------------------------------------------
# sse_view


@_safe
def sse_view(data: bytes) -> str:
    """A stream, one line per event: `data: <compact JSON>`, `data: [DONE]`, comments as they came."""
    stream = _stream(_as_bytes(data))
    lines = [unit.line for unit in stream.units]
    if stream.more:
        lines.append(f"… {stream.more} more events")
    if not lines:
        return "(no events)\n"
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# before_after_view


@_safe
def before_after_view(original: bytes, rewritten: bytes) -> str:
    """The upstream's events beside the ones sent: `  ` same, `~` repaired, `-` dropped, `+` added."""
    before = _stream(_as_bytes(original))
    after = _stream(_as_bytes(rewritten))
    a, b = before.units, after.units
    pairs, leftovers = _align([u.key for u in a], [u.key for u in b])
    cut = bool(before.more or after.more)
    if not cut:
        pairs += leftovers
    # else: past the limit of either side, the other side's leftovers may have their
    # counterparts out of view: count them below rather than call them dropped or added.
    counts = {"unchanged": 0, "repaired": 0, "dropped": 0, "added": 0}
    lines = []
    for i, j in pairs:
        if j is None:
            counts["dropped"] += 1
            lines.append("-   " + a[i].line)
        elif i is None:
            counts["added"] += 1
            lines.append("+   " + b[j].line)
        elif a[i].line == b[j].line:
            counts["unchanged"] += 1
            lines.append("    " + a[i].line)
        else:
            counts["repaired"] += 1
            lines.append("~ - " + a[i].line)
            lines.append("~ + " + b[j].line)
            lines.append("~   " + _what_changed(a[i], b[j]))
    total_a = len(a) + before.more
    total_b = len(b) + after.more
    head = (
        f"upstream {total_a} event{'' if total_a == 1 else 's'}, sent {total_b}: "
        + ", ".join(f"{n} {what}" for what, n in counts.items())
    )
    if cut:
        shown_a = max((i for i, _ in pairs if i is not None), default=-1) + 1
        shown_b = max((j for _, j in pairs if j is not None), default=-1) + 1
        head += f" (first {shown_a} upstream and {shown_b} sent events compared)"
        lines.append(f"… {total_a - shown_a} more upstream events, {total_b - shown_b} more sent events")
    return head + "\n" + "".join(line + "\n" for line in lines)


def _what_changed(a: _Unit, b: _Unit) -> str:
    """One line saying how a repaired event differs from the upstream's."""
    notes = []
    if a.obj is not _NOT_JSON and b.obj is not _NOT_JSON:
        changes: dict[str, list[str]] = {"dropped": [], "added": [], "changed": []}
        try:
            _diff(a.obj, b.obj, "", changes)
        except RecursionError:
            changes = {"changed": ["(too deeply nested to compare)"]}
        shown = 0
        for what, items in changes.items():
            if items:
                more = len(items) - (MAX_DIFF_ITEMS - shown)
                items = items[: max(0, MAX_DIFF_ITEMS - shown)]
                shown += len(items)
                if more > 0:
                    items.append(f"… {more} more")
                notes.append(f"{what} " + ", ".join(items))
        if not notes and _compact(a.obj) != _compact(b.obj):
            notes.append("keys reordered")
    if a.spaceless and not b.spaceless:
        notes.append("space added after data:")
    if a.name != b.name:
        notes.append("event name dropped" if b.name is None else "event name changed")
    if a.unterminated and not b.unterminated:
        notes.append("blank line added after it")
    return "; ".join(notes) or "framing rewritten"


MAX_DIFF_ITEMS = 12


def _diff(a: Any, b: Any, path: str, out: dict[str, list[str]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key, value in a.items():
            if key not in b:
                out["dropped"].append(f"{_path(path, key)}={_short(value)}")
            else:
                _diff(value, b[key], _path(path, key), out)
        for key, value in b.items():
            if key not in a:
                out["added"].append(f"{_path(path, key)}={_short(value)}")
    elif isinstance(a, list) and isinstance(b, list):
        for k in range(max(len(a), len(b))):
            here = f"{path}[{k}]"
            if k >= len(b):
                out["dropped"].append(f"{here}={_short(a[k])}")
            elif k >= len(a):
                out["added"].append(f"{here}={_short(b[k])}")
            else:
                _diff(a[k], b[k], here, out)
    elif a != b or type(a) is not type(b):
        out["changed"].append(f"{path or '(the value)'} {_short(a)} -> {_short(b)}")


def _path(path: str, key: Any) -> str:
    key = _escape(str(key))
    return f"{path}.{key}" if path else key


def _short(value: Any, limit: int = 40) -> str:
    text = _escape(_compact(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


_Pairs = list[tuple[int | None, int | None]]


def _align(a: list[Any], b: list[Any]) -> tuple[_Pairs, _Pairs]:
    """Pairs equal keys in order, looking a little ahead on both sides; linear time.
    Returns the pairs up to the end of the shorter side, and the other side's leftovers.

    The rewriter only drops a few events (empty chunks, repeats, chunks after
    [DONE]) and adds a few (a finish chunk, [DONE]), so a short lookahead finds
    every counterpart, where a full diff could cost quadratic time on a stream
    of identical-looking chunks.
    """
    out: _Pairs = []
    i = j = 0
    n, m = len(a), len(b)
    while i < n and j < m:
        if a[i] == b[j]:
            out.append((i, j))
            i += 1
            j += 1
            continue
        ahead_in_b = _find(b, a[i], j + 1, min(m, j + ALIGN_WINDOW))
        ahead_in_a = _find(a, b[j], i + 1, min(n, i + ALIGN_WINDOW))
        if ahead_in_a is None and ahead_in_b is None:
            out.append((i, None))
            out.append((None, j))
            i += 1
            j += 1
        elif ahead_in_a is not None and (ahead_in_b is None or ahead_in_a - i <= ahead_in_b - j):
            out.extend((k, None) for k in range(i, ahead_in_a))
            i = ahead_in_a
        else:
            assert ahead_in_b is not None
            out.extend((None, k) for k in range(j, ahead_in_b))
            j = ahead_in_b
    leftovers: _Pairs = [(k, None) for k in range(i, n)]
    leftovers += [(None, k) for k in range(j, m)]
    return out, leftovers


def _find(seq: list[Any], key: Any, start: int, stop: int) -> int | None:
    for k in range(start, stop):
        if seq[k] == key:
            return k
    return None


# ---------------------------------------------------------------------------
# assembled_view


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
        elif _number(current) and _number(value):
            acc[key] = current + value
        elif isinstance(current, dict) and isinstance(value, dict):
            _merge(current, value, depth + 1)
        elif isinstance(current, list) and isinstance(value, list):
            _merge_list(current, value, depth + 1)
    return acc


def _merge_list(acc: list[Any], delta: list[Any], depth: int = 0) -> list[Any]:
    for entry in delta:
        index = entry.get("index") if isinstance(entry, dict) else None
        if not _integer(index):
            acc.append(_fresh(entry, depth))
            continue
        for existing in acc:
            if isinstance(existing, dict) and existing.get("index") == index and _integer(existing.get("index")):
                _merge(existing, entry, depth + 1)
                break
        else:
            acc.append(_fresh(entry, depth))
    return acc


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    if isinstance(value, _Parts):
        return value.text()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _Assembly:
    def __init__(self) -> None:
        self.id: Any = None
        self.model: Any = None
        self.choices: dict[int, dict[str, Any]] = {}  # index -> {"message": ..., "finish_reason": ...}
        self.usage: Any = None
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.streamed = True  # tool calls carry an index only when streamed


@_safe
def assembled_view(data: bytes) -> str:
    """The message a client builds from a stream (or reads from a non-stream body)."""
    data = _as_bytes(data)
    stripped = data.strip()
    if not stripped:
        return "(empty body)\n"
    if stripped[:1] in (b"{", b"["):
        ok, body = _loads(stripped)
        if not ok:
            return "(the body starts like JSON but is not valid JSON)\n"
        return _render(_from_body(body))
    if stripped.startswith(b"data:") and b"\n\n" not in LineEnds().feed(data.lstrip()):
        # NIM's error bodies: one `data:{...}` with no blank line after it, sent as a whole reply.
        ok, body = _loads(stripped[5:].lstrip())
        if ok and isinstance(body, (dict, list)):
            out = _from_body(body)
            out.notes.append("the body is JSON after a data: prefix")
            return _render(out)
    return _render(_from_stream(data))


def _from_body(body: Any) -> _Assembly:
    out = _Assembly()
    out.streamed = False
    for item in body if isinstance(body, list) else [body]:
        if not isinstance(item, dict):
            out.notes.append(f"not a chat completion: {_cut(_escape(_compact(item)))}")
            continue
        _error(out, item)
        choices = item.get("choices")
        if isinstance(choices, dict):
            choices = [choices]
        if not isinstance(choices, list):
            if not item.get("error") and item.get("object") != "error":
                out.notes.append(f"not a chat completion: {_cut(_escape(_compact(item)))}")
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
            out.choices[index if _integer(index) else position] = {
                "message": _merge({}, message) if isinstance(message, dict) else {},
                "finish_reason": choice.get("finish_reason"),
            }
    return out


def _from_stream(data: bytes) -> _Assembly:
    out = _Assembly()
    done = False
    after_done = not_json = not_chunks = 0
    saw_data = False
    events, unterminated = _data_events(data)
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
        ok, obj = _loads(payload)
        if not ok or not isinstance(obj, dict):
            if name == b"error":
                out.errors.append(_raw_text(payload))
            elif not ok:
                not_json += 1
            else:
                not_chunks += 1
            continue
        if _error(out, obj):
            continue
        if name == b"error":
            out.errors.append(_cut(_escape(_compact(obj))))
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


def _error(out: _Assembly, obj: dict[str, Any]) -> bool:
    error = obj.get("error")
    if not error:
        if obj.get("object") == "error":  # vLLM < 0.10.1: the error without its wrapper
            out.errors.append(_cut(_escape(_compact(obj))))
            return True
        return False
    out.errors.append(_cut(_escape(_compact(error if len(obj) == 1 else obj))))
    return True


def _chunk(out: _Assembly, chunk: dict[str, Any]) -> bool:
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
        state = out.choices.setdefault(index if _integer(index) else position, {"message": {}, "finish_reason": None})
        delta = choice.get("delta")
        if isinstance(delta, dict):
            _merge(state["message"], delta)
        if choice.get("finish_reason"):
            state["finish_reason"] = choice["finish_reason"]
    return True


_MESSAGE_SHOWN = ("role", "content", "reasoning_content", "reasoning", "refusal", "tool_calls")


def _render(out: _Assembly) -> str:
    lines: list[str] = []
    if out.id is not None or out.model is not None or out.choices:
        lines.append(f"id: {_scalar(out.id)}")
        lines.append(f"model: {_scalar(out.model)}")
    for index in sorted(out.choices):
        choice = out.choices[index]
        message = _plain(choice["message"])
        lines.append(f"choice {index}")
        lines.append(f"  role: {_scalar(message.get('role'))}")
        lines.append(f"  finish_reason: {_scalar(choice['finish_reason'])}")
        content = message.get("content")
        if isinstance(content, str) and content:
            lines.append("  content:")
            lines.extend(_block(content))
        else:
            lines.append(f"  content: {_cut(_escape(_compact(content)))}")
        for key in ("reasoning_content", "reasoning", "refusal"):
            value = message.get(key)
            if isinstance(value, str) and value:
                lines.append(f"  {key}:")
                lines.extend(_block(value))
            elif value is not None:
                lines.append(f"  {key}: {_cut(_escape(_compact(value)))}")
        for key, value in message.items():
            if key not in _MESSAGE_SHOWN and value is not None:
                lines.append(f"  {_escape(str(key))}: {_cut(_escape(_compact(value)))}")
        calls = message.get("tool_calls")
        if isinstance(calls, dict):
            calls = [calls]
        if isinstance(calls, list):
            lines.extend(_tool_calls(calls, out.streamed))
        elif calls is not None:
            lines.append(f"  tool_calls: {_cut(_escape(_compact(calls)))}")
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
        indexed = sorted((c for c in calls if isinstance(c, dict) and _integer(c.get("index"))), key=lambda c: c["index"])
        rest = [c for c in calls if not (isinstance(c, dict) and _integer(c.get("index")))]
        calls = indexed + rest
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            yield f"  tool call ?: {_cut(_escape(_compact(call)))}"
            continue
        index = call.get("index") if streamed else position
        label = str(index) if _integer(index) else "? (no index)"
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        name = function.get("name")
        call_id = call.get("id")
        head = f"  tool call {label}: {_escape(name) if isinstance(name, str) and name else '(no name)'}"
        head += f" (id {_escape(call_id)})" if isinstance(call_id, str) and call_id else " (no id)"
        call_type = call.get("type")
        if call_type != "function":
            head += f" type {_scalar(call_type)}"
        yield _cut(head)
        arguments = function.get("arguments")
        if arguments is None or arguments == "":
            yield "    (no arguments)"
        elif isinstance(arguments, str):
            ok, parsed = _loads(arguments)
            if ok:
                yield from _block(json.dumps(parsed, ensure_ascii=False, indent=2))
            else:
                yield from _block(arguments)
                yield "    (arguments are not valid JSON)"
        else:
            yield from _block(json.dumps(arguments, ensure_ascii=False, indent=2))
            yield "    (arguments sent as JSON, not as a string)"


def _block(text: str, indent: str = "    ") -> list[str]:
    cut = ""
    if len(text) > MAX_TEXT_CHARS:
        cut = f"{indent}… (+{len(text) - MAX_TEXT_CHARS} chars)"
        text = text[:MAX_TEXT_CHARS]
    lines = [indent + _escape(line) for line in text.split("\n")]
    if cut:
        lines.append(cut)
    return lines


def _scalar(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return _cut(_escape(value)) if value else '""'
    return _cut(_escape(_compact(value)))


_USAGE_NAMES = {"prompt_tokens": "prompt", "completion_tokens": "completion", "total_tokens": "total"}


def _usage(usage: Any) -> str:
    if not isinstance(usage, dict) or not usage:
        return _cut(_escape(_compact(usage)))
    parts = [f"{_USAGE_NAMES[key]} {_compact(usage[key])}" for key in _USAGE_NAMES if key in usage]
    parts += [f"{_escape(str(key))} {_compact(value)}" for key, value in usage.items() if key not in _USAGE_NAMES]
    return _cut(_escape(", ".join(parts)))
