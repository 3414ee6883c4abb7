"""The fast path: plain text chunks answered by splicing, without a JSON round trip.

Contract: a plain text chunk (one choice, one string of content or reasoning
text, nothing else that changes) is rewritten the same way whatever its text.
So once one has gone through the rules, `FastPath.learn` keeps its bytes
before and after the text as a template, after checking with the rules' dry
run (`ChunkRules.preview`) that a chunk with any other text is rewritten alike
and changes nothing the rules remember, and asking the sink how to write one
(`ChunkSink.learn`). `FastPath.match(event)` then finds the template a whole
`data: {...}\\n\\n` event fits, differing only in its text, where that text is
one canonical JSON string in valid UTF-8 (so splicing it changes nothing),
and returns the sink's bytes for it. Both paths give the same bytes; the
property tests hold them to it. Repairs a template stands for are counted per
use (`repairs`).

Reasoning (think.py) makes a text chunk's rewrite depend on where the choice
is: inside a `<think>` block content becomes reasoning_content, after it stays
content. So the templates hold only while that state stays as it was when
they were learnt: the stream drops them (`reset`) whenever the rules' `epoch`
moves, and no text is spliced while the rules hold a cut tag (the stream's
`holding` check). Where a tag could still open or close, a template splices
no text holding `<` (`guard`), since only such a text could hold a tag; a `>`
alone cannot, since a cut tag's start is held and held text stops splicing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import NotJSON, dump, loads
from .chunks import ChunkRules
from .sink import ChunkSink

# A JSON string literal exactly as `dump` writes it: no escapes but the ones
# json.dumps(ensure_ascii=False) uses, so splicing it changes nothing.
_CANONICAL_STRING = re.compile(rb'"(?:[^"\\\x00-\x1f]|\\["\\bfnrt]|\\u00[01][0-9a-f])*"')
# The delta's text: content, or the reasoning text thinking models send instead.
TEXT_KEYS = ("content", "reasoning_content", "reasoning")
_TEXT_VALUE = re.compile(rb'"(content|reasoning_content|reasoning)"[ \t]*:[ \t]*("(?:[^"\\]|\\.)*")')
_PROBE = "\ue000normalize-probe\ue001"
_PROBE_JSON = dump(_PROBE)
MAX_TEMPLATES = 4
# Short texts already found safe to splice, shared by all streams: tokens repeat
# a lot, and a set lookup costs a fraction of the check. Bounded: about 1 MiB.
SAFE_TEXTS: set[bytes] = set()
_MAX_SAFE_TEXTS = 16384
_MAX_SAFE_TEXT_BYTES = 64
# Templates retired unused before learning stops: a stream whose chunks all
# differ (a new id or usage on each) gains nothing from learning.
LEARNING_BUDGET = 8


# A usage object as servers write it: counts, nulls, one level of nested counts.
_USAGE = re.compile(rb'\{(?:"[a-z_]+":(?:\d+|null|\{(?:"[a-z_]+":(?:\d+|null),?)*\}),?)*\}')
_USAGE_KEY = b'"usage":'


@dataclass(slots=True)
class Template:
    head: bytes  # `data: ` and the upstream's payload bytes before the text
    tail: bytes  # ... and after it (after the usage, with a `mid`), with the blank line
    key: str  # the delta key the text is under
    repairs: Counter[Repair]  # what the rules repair in one such chunk
    guard: bool = False  # a text with `<` could hold a reasoning tag: not spliced
    # How the sink writes one: the bytes before and after the text, or a function of it.
    prefix: bytes = b""
    suffix: bytes = b""
    write: Callable[[bytes], bytes | None] | None = None
    # NIM sends usage on every chunk when usage was asked for: the bytes between the text
    # and that usage object (`,"logprobs":null,…,"usage":`); empty when there is none.
    mid: bytes = b""
    uses: int = 0
    start: int = 0  # len(head)
    end: int = 0  # len(tail)

    def __post_init__(self) -> None:
        self.start, self.end = len(self.head), len(self.tail)


@dataclass
class FastPath:
    templates: list[Template] = field(default_factory=list)
    budget: int = LEARNING_BUDGET
    dropped_uses: int = 0  # uses of templates dropped by `reset`
    # The latest usage object a spliced chunk carried (bytes, not yet parsed): the rules
    # send the last one once, at the end, so only the latest is kept (`take_usage`).
    usage: bytes | None = None

    def take_usage(self) -> bytes | None:
        usage, self.usage = self.usage, None
        return usage

    @property
    def learning(self) -> bool:
        return self.budget > 0

    @property
    def uses(self) -> int:
        return self.dropped_uses + sum(t.uses for t in self.templates)

    def repairs(self) -> Counter[Repair]:
        """The repairs the templates in use stand for, times their uses."""
        total: Counter[Repair] = Counter()
        for template in self.templates:
            for name, n in template.repairs.items():
                total[name] += n * template.uses
        return total

    def match(self, event: bytes) -> bytes | None:
        """A whole `data: {...}\n\n` event that fits a template, as the sink writes it; else None.

        No newline can hide inside a match: a template's head and tail come from
        one single-line event, and a canonical string has no control characters."""
        for template in self.templates:
            if event.startswith(template.head) and event.endswith(template.tail):
                usage = None
                if template.mid:
                    # The text cannot hold `mid`: an unescaped `"` would end the string.
                    at = event.find(template.mid, template.start)
                    if at < 0:
                        continue
                    text = event[template.start : at]
                    usage = event[at + len(template.mid) : len(event) - template.end]
                    if not _USAGE.fullmatch(usage):
                        continue
                else:
                    text = event[template.start : len(event) - template.end]
                if text in SAFE_TEXTS or safe_to_splice(text):
                    if template.guard and b"<" in text:
                        return None
                    write = template.write
                    out = template.prefix + text + template.suffix if write is None else write(text)
                    if out is not None:
                        template.uses += 1
                        if usage is not None:
                            self.usage = usage
                    return out
        return None

    def learn(self, payload: bytes, chunk: dict[str, Any], written: bytes, rules: ChunkRules, sink: ChunkSink) -> Counter[Repair]:
        """Keeps a template if this plain text chunk's rewrite does not depend on its
        text; returns the repairs of a template retired to make room (to be counted)."""
        key = plain_text_key(chunk)
        if key is None or not rules.started(0):
            return Counter()
        for match in _TEXT_VALUE.finditer(payload):
            text = match.group(2)
            if match.group(1) != key.encode() or not safe_to_splice(text):
                continue
            prefix, suffix = payload[: match.start(2)], payload[match.end(2) :]
            try:
                probe = loads(prefix + _PROBE_JSON + suffix)
                expected = loads(payload)
            except NotJSON:
                continue
            expected["choices"][0]["delta"][key] = _PROBE
            if probe != expected:
                continue  # that key was not the delta's
            mid, tail = usage_hole(suffix, chunk, rules.options.include_usage)
            preview = rules.preview(probe, usage_varies=bool(mid))
            if preview is None:
                return Counter()
            probe_out, repairs = preview
            learned = sink.learn(probe_out, _PROBE, text, written)
            if learned is None:
                return Counter()
            guard = key == "content" and rules.tags_matter()
            template = Template(b"data: " + prefix, tail + b"\n\n", key, repairs, guard, mid=mid)
            if callable(learned):
                template.write = learned
            else:
                template.prefix, template.suffix = learned
            self.templates.insert(0, template)
            if len(self.templates) > MAX_TEMPLATES:
                return self._retire(self.templates.pop())
            return Counter()
        return Counter()

    def reset(self) -> Counter[Repair]:
        """Drops every template (the rules' state moved); returns the repairs they stood for."""
        total: Counter[Repair] = self.repairs()
        self.dropped_uses += sum(t.uses for t in self.templates)
        self.templates = []
        return total

    def _retire(self, template: Template) -> Counter[Repair]:
        if not template.uses:
            self.budget -= 1
        return Counter({name: n * template.uses for name, n in template.repairs.items()})


def usage_hole(suffix: bytes, chunk: dict[str, Any], include_usage: bool) -> tuple[bytes, bytes]:
    """(mid, tail) around a chunk's trailing usage object when it may differ chunk to chunk:
    the client asked for usage, so the rules keep it for the end and the chunk's output
    does not depend on it. (b"", suffix) when there is none to take out."""
    usage = chunk.get("usage")
    at = suffix.rfind(_USAGE_KEY)
    if not include_usage or not isinstance(usage, dict) or at < 0 or not suffix.endswith(b"}"):
        return b"", suffix
    value = suffix[at + len(_USAGE_KEY) : -1]
    try:
        same = _USAGE.fullmatch(value) is not None and loads(value) == usage
    except NotJSON:
        same = False
    if not same:
        return b"", suffix
    return suffix[: at + len(_USAGE_KEY)], b"}"


def safe_to_splice(text: bytes) -> bool:
    """`text` is one canonical JSON string literal in valid UTF-8 (remembered when short)."""
    if len(text) <= 2 or not _CANONICAL_STRING.fullmatch(text) or not _utf8(text):
        return False
    if len(text) <= _MAX_SAFE_TEXT_BYTES:
        if len(SAFE_TEXTS) >= _MAX_SAFE_TEXTS:
            SAFE_TEXTS.clear()
        SAFE_TEXTS.add(text)
    return True


def plain_text_key(chunk: dict[str, Any]) -> str | None:
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


def _utf8(text: bytes) -> bool:
    if text.isascii():
        return True
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
