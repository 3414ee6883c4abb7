"""One streamed chat completion: bytes from the upstream in, OpenAI's stream out.

Contract: `feed(bytes) -> bytes` for each piece the upstream sends, split
anywhere; `close() -> bytes` once at the end. Every event completed by a
`feed` is answered in that same call; only an unfinished trailing event is
held. Output framing is always `data: <compact json>\\n\\n`, comments pass
through, and the stream ends with exactly one `data: [DONE]`, after a
finishing chunk when the upstream never sent a finish_reason.

Nothing is lost: an event that is not a chat chunk (not JSON, not an object,
not ours) passes through as it came, with one log line. If anything inside
raises, the stream logs once and passes the rest through untouched.

Fast path: a plain text chunk (content, or reasoning text) is rewritten the
same way whatever its text, so once one has gone through the rules, its
rewritten prefix and suffix are kept as a template; later chunks whose bytes
differ from it only in that string (checked to be one canonical JSON string,
valid UTF-8) are answered by splicing, without a JSON round trip. The templates are learned
from the rules' own output, so both paths give the same bytes.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .chat import ChunkRules, completion_as_chunks, looks_like_chunk
from .completion import parse_json_body
from .config import Options
from .errors import error_object, stream_error_line
from .sse import EventSplitter, LineEnds, encode_data, parse_block

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def dump(obj: Any) -> bytes:
    """Compact JSON, as OpenAI writes it; escapes what UTF-8 cannot carry (lone surrogates)."""
    text = _encode(obj)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _encode_ascii(obj).encode("ascii")


# A JSON string literal exactly as `dump` writes it: no escapes but the ones
# json.dumps(ensure_ascii=False) uses, so splicing it changes nothing.
_CANONICAL_STRING = re.compile(rb'"(?:[^"\\\x00-\x1f]|\\["\\bfnrt]|\\u00[01][0-9a-f])*"')
# The delta's text: content, or the reasoning text thinking models send instead.
TEXT_KEYS = ("content", "reasoning_content", "reasoning")
_TEXT_VALUE = re.compile(rb'"(content|reasoning_content|reasoning)"[ \t]*:[ \t]*("(?:[^"\\]|\\.)*")')
_PROBE = "\ue000normalize-probe\ue001"
_PROBE_JSON = dump(_PROBE)
_MAX_TEMPLATES = 4
# Short texts already found safe to splice, shared by all streams: tokens repeat
# a lot, and a set lookup costs a fraction of the check. Bounded: about 1 MiB.
_SAFE_TEXTS: set[bytes] = set()
_MAX_SAFE_TEXTS = 16384
_MAX_SAFE_TEXT_BYTES = 64
# Templates that are retired unused before learning stops: a stream whose
# chunks all differ (a new id or usage on each) gains nothing from learning.
_LEARNING_BUDGET = 8


@dataclass(slots=True)
class _Template:
    prefix: bytes  # upstream payload bytes before the content string
    suffix: bytes  # ... and after it
    out_prefix: bytes  # what we send before the content string (framing included)
    out_suffix: bytes
    repairs: Counter[str]  # what the rules repair in one such chunk
    uses: int = 0
    # The same prefix and suffix with OpenAI's own framing, to match a whole event.
    head: bytes = b""
    tail: bytes = b""

    def __post_init__(self) -> None:
        self.head = b"data: " + self.prefix
        self.tail = self.suffix + b"\n\n"


class ChatStream:
    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self.events = 0  # upstream events seen (comments included)
        self.raw = False  # gave up rewriting: everything now passes as it comes
        self._repairs: Counter[str] = Counter()
        self._rules = ChunkRules(self.options, self._repairs)
        self._lines = LineEnds()
        self._split = EventSplitter(self.options.max_event_bytes)
        self._templates: list[_Template] = []
        self._learning_budget = _LEARNING_BUDGET if self.options.fast_path else 0
        self._saw_chunk = False  # a chat chunk came: the stream must end as OpenAI's does
        self._done = False
        self._spliceable = True  # templates may answer: not done, nothing held back
        self._truncated = False
        self._warned: set[str] = set()
        # Bytes before the first one that is not white space, then a whole JSON body.
        self._head: bytearray | None = bytearray()
        self._json_body = False

    @property
    def repairs(self) -> Counter[str]:
        """Repairs so far, by name (fast-path uses folded in)."""
        total = Counter(self._repairs)
        for template in self._templates:
            for name, n in template.repairs.items():
                total[name] += n * template.uses
        if self._lines.seen_cr:
            total["cr_line_ends"] += 1
        return +total

    def note(self, repair: str) -> None:
        """Counts a repair made outside the stream (a header, by the addon)."""
        self._repairs[repair] += 1

    # -- input ---------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        if self.raw:
            return data
        if self._head is not None:
            return self._sniff(data)
        parts = self._split._parts
        if self._spliceable and not parts and not self._lines._after_cr:
            # The common case: one whole `data: {...}\n\n` event per call.
            fast = self._spliced(data)
            if fast is not None:
                self.events += 1
                return fast
        held = parts.copy() if parts else None
        try:
            blocks = self._split.feed(self._lines.feed(data))
            out = [self._event(block) for block in blocks]
            if self._split.overflowing:
                self._give_up(f"an event grew past normalize_max_event_bytes ({self.options.max_event_bytes})")
                out.append(self._split.flush())
            return b"".join(out)
        except Exception:
            log.exception("%s: rewrite failed; passing the rest of the stream through unchanged", self.options.label)
            self.raw = True
            return b"".join(held) + data if held else data

    def close(self) -> bytes:
        if self.raw:
            return b""
        if self._head is not None:
            return self._whole_json_body()
        tail = self._split.flush()
        try:
            out = []
            if tail.strip(b"\n"):
                out.append(self._event(tail, at_end=True))
            if self._saw_chunk and not self._done and not self._truncated:
                self._repairs["done_missing"] += 1
                out.append(self._finish())
            return b"".join(out)
        except Exception:
            log.exception("%s: rewrite failed at the end of the stream; passing its tail unchanged", self.options.label)
            self.raw = True
            return tail

    # -- a stream request answered with one JSON body ---------------------------

    def _sniff(self, data: bytes) -> bytes:
        """Until the first byte that is not white space: SSE, or one JSON body?

        Some upstreams answer a stream request with a whole JSON reply (an error,
        or a chat.completion when they ignore "stream": true). That body is
        held, then sent as OpenAI would have streamed it."""
        head = self._head
        head += data
        if self._json_body:
            if len(head) > self.options.max_event_bytes:
                self._head = None
                self._give_up(f"a JSON reply grew past normalize_max_event_bytes ({self.options.max_event_bytes})")
                return bytes(head)
            return b""
        start = head.lstrip()[:1]
        if not start:
            return b""  # only white space so far
        if start in (b"{", b"["):
            self._json_body = True
            return self._sniff(b"")
        self._head = None
        return self.feed(bytes(head))

    def _whole_json_body(self) -> bytes:
        body = bytes(self._head)
        self._head = None
        if not self._json_body:
            return body  # nothing but white space
        try:
            obj = parse_json_body(body)
            found = None if obj is None else error_object(obj)
            if found is not None:
                self._repairs["stream_answered_with_json"] += 1
                return self._error(*found)
            if isinstance(obj, dict) and isinstance(obj.get("choices"), list):
                self._repairs["stream_answered_with_json"] += 1
                out = [self._chunk(chunk) for chunk in completion_as_chunks(obj)]
                return b"".join(out) + self._finish()
        except Exception:
            log.exception("%s: could not rewrite a JSON reply to a stream request; passing it unchanged", self.options.label)
            self.raw = True
            return body
        self._warn_once("json_body", "a stream request was answered with a JSON body that is no chat completion; passing it unchanged")
        return body

    def _give_up(self, why: str) -> None:
        log.warning("%s: %s; passing the rest of the stream through unchanged", self.options.label, why)
        self.raw = True

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
                self._repairs["data_without_space"] += 1
            if self._spliceable:
                fast = self._spliced(b"data: " + payload + b"\n\n")
                if fast is not None:
                    return fast
            return self._data(payload, block, at_end)

        event = parse_block(block)
        if event.spaceless:
            self._repairs["data_without_space"] += 1
        comments = b"".join(comment + b"\n\n" for comment in event.comments)
        fields = [line for line in block.split(b"\n") if line and line[:1] != b":"]
        if event.data is None:
            error_line = next((line for line in event.unknown if line.startswith(b"error:")), None)
            if error_line is not None:
                # llama.cpp (2025): `error: {...}` at HTTP 200, which clients never see.
                return comments + self._error(stream_error_line(error_line[6:].strip()), "error_line_not_data")
            # Comments, or fields without data: nothing to repair, keep them.
            if event.unknown:
                self._warn_once("not_sse", "a line is not a server-sent event field; passing it through unchanged")
            return comments + (b"\n".join(fields) + b"\n\n" if fields else b"")
        if event.name == b"error":
            return comments + self._error(stream_error_line(event.data), "named_error_event")
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
            self._repairs["named_event"] += 1
        return comments + kept + self._chunk(obj)

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
        if self._done or self._learning_budget <= 0:
            return self._chunk(obj)
        return self._chunk_and_learn(obj, payload)

    def _json_object(self, payload: bytes, at_end: bool) -> dict[str, Any] | None:
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):
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

    def _error(self, error: dict[str, Any], repair: str) -> bytes:
        """OpenAI ends a failed stream with the error event, then [DONE]: no finish chunk."""
        if self._done:
            self._warn_once("after_done", "an event came after [DONE]; dropping it, as clients stop reading there")
            self._repairs["chunk_after_done"] += 1
            return b""
        if repair:
            self._repairs[repair] += 1
        log.warning("%s: the upstream reported an error inside the stream: %s", self.options.label, _message(error))
        self._done = True
        self._spliceable = False
        held = b"".join(encode_data(dump(c)) for c in self._rules.release())
        return held + encode_data(dump(error)) + DONE

    def _passthrough(self, block: bytes, at_end: bool) -> bytes:
        return block if at_end and self._truncated else block + b"\n\n"

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        self._saw_chunk = True
        if self._done:
            self._warn_once("after_done", "an event came after [DONE]; dropping it, as clients stop reading there")
            self._repairs["chunk_after_done"] += 1
            return b""
        out = b"".join(encode_data(dump(c)) for c in self._rules.chunks(chunk))
        self._spliceable = not self._rules.held
        return out

    def _done_event(self) -> bytes:
        if self._done:
            self._repairs["done_repeated"] += 1
            return b""
        return self._finish()

    def _finish(self) -> bytes:
        out = [encode_data(dump(chunk)) for chunk in self._rules.closing_chunks()]
        self._done = True
        self._spliceable = False
        out.append(DONE)
        return b"".join(out)

    # -- fast path -----------------------------------------------------------

    def _spliced(self, event: bytes) -> bytes | None:
        """A whole `data: {...}\n\n` event that matches a template, spliced; else None.

        No newline can hide inside a match: a template's head and tail come from
        one single-line event, and a canonical string has no control characters."""
        for template in self._templates:
            if event.startswith(template.head) and event.endswith(template.tail):
                start, end = len(template.head), len(event) - len(template.tail)
                text = event[start:end]
                if text in _SAFE_TEXTS or _safe_to_splice(text):
                    template.uses += 1
                    return template.out_prefix + text + template.out_suffix
        return None


    def _chunk_and_learn(self, chunk: dict[str, Any], payload: bytes) -> bytes:
        key = _plain_text_key(chunk) if self._rules.state.choices.get(0, _UNSTARTED).started else None
        out = self._chunk(chunk)
        if key is not None and out:
            self._learn(payload, out, key)
        return out

    def _learn(self, payload: bytes, out: bytes, key: str) -> None:
        """Keeps a template if this chunk's rewrite does not depend on its text."""
        for match in _TEXT_VALUE.finditer(payload):
            text = match.group(2)
            if match.group(1) != key.encode() or not _safe_to_splice(text):
                continue
            prefix, suffix = payload[: match.start(2)], payload[match.end(2) :]
            try:
                probe = json.loads(prefix + _PROBE_JSON + suffix)
                expected = json.loads(payload)
            except ValueError:
                continue
            expected["choices"][0]["delta"][key] = _PROBE
            if probe != expected:
                continue  # that key was not the delta's
            rules = self._rules
            before = copy.deepcopy(rules.state)
            saved, rules.repairs = rules.repairs, Counter()
            try:
                probe_out = rules.rewrite(probe)
                repairs = rules.repairs
            finally:
                rules.repairs = saved
            if probe_out is None or rules.state != before:
                rules.state = before
                return
            probe_bytes = encode_data(dump(probe_out))
            at = probe_bytes.find(_PROBE_JSON)
            if at < 0 or probe_bytes.count(_PROBE_JSON) != 1:
                return
            out_prefix, out_suffix = probe_bytes[:at], probe_bytes[at + len(_PROBE_JSON) :]
            if out_prefix + text + out_suffix != out:
                return
            self._templates.insert(0, _Template(prefix, suffix, out_prefix, out_suffix, repairs))
            if len(self._templates) > _MAX_TEMPLATES:
                self._retire(self._templates.pop())
            return

    def _retire(self, template: _Template) -> None:
        if not template.uses:
            self._learning_budget -= 1
        for name, n in template.repairs.items():
            self._repairs[name] += n * template.uses


class _Unstarted:
    started = False


_UNSTARTED = _Unstarted()


def _safe_to_splice(text: bytes) -> bool:
    """`text` is one canonical JSON string literal in valid UTF-8 (remembered when short)."""
    if len(text) <= 2 or not _CANONICAL_STRING.fullmatch(text) or not _utf8(text):
        return False
    if len(text) <= _MAX_SAFE_TEXT_BYTES:
        if len(_SAFE_TEXTS) >= _MAX_SAFE_TEXTS:
            _SAFE_TEXTS.clear()
        _SAFE_TEXTS.add(text)
    return True


def _plain_text_key(chunk: dict[str, Any]) -> str | None:
    """For one choice at index 0 whose delta carries one string of text (content or
    reasoning), no tool calls and no finish: that text's key. Else None."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return None
    choice = choices[0]
    if not isinstance(choice, dict) or choice.get("index") != 0 or choice.get("finish_reason"):
        return None
    delta = choice.get("delta")
    if not isinstance(delta, dict) or delta.get("tool_calls"):
        return None
    texts = [key for key in TEXT_KEYS if delta.get(key) is not None]
    if len(texts) != 1 or not isinstance(delta[texts[0]], str):
        return None
    return texts[0]


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("error", {}).get("message", ""))
    return message if len(message) <= 200 else message[:200] + "…"


def _utf8(text: bytes) -> bool:
    if text.isascii():
        return True
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
