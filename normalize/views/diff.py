"""The "OpenAI before-after" view: the upstream's events beside the ones the client got.

Each event is marked `  ` same, `~` repaired (with what changed), `-` dropped
or `+` added. Events are paired in linear time (`align`), however many look
alike.
"""

from __future__ import annotations

from typing import Any

from .anthropic import is_anthropic, translated_view
from .events import NOT_JSON, Unit, stream_units
from .responses import bridged_view, is_responses
from .text import as_bytes, compact, escape, safe

# How far ahead the alignment looks for an event's counterpart.
ALIGN_WINDOW = 64


@safe
def before_after_view(original: bytes, rewritten: bytes) -> str:
    """The upstream's events beside the ones sent: `  ` same, `~` repaired, `-` dropped, `+` added."""
    if is_responses(rewritten) and not is_responses(original):
        return bridged_view(original, rewritten)
    if is_anthropic(rewritten) and not is_anthropic(original):
        return translated_view(original, rewritten)  # a bridged flow: two protocols, no pairs
    before = stream_units(as_bytes(original))
    after = stream_units(as_bytes(rewritten))
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
            assert i is not None
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
    head = f"upstream {total_a} event{'' if total_a == 1 else 's'}, sent {total_b}: " + ", ".join(
        f"{n} {what}" for what, n in counts.items()
    )
    if cut:
        shown_a = max((i for i, _ in pairs if i is not None), default=-1) + 1
        shown_b = max((j for _, j in pairs if j is not None), default=-1) + 1
        head += f" (first {shown_a} upstream and {shown_b} sent events compared)"
        lines.append(f"… {total_a - shown_a} more upstream events, {total_b - shown_b} more sent events")
    return head + "\n" + "".join(line + "\n" for line in lines)


def _what_changed(a: Unit, b: Unit) -> str:
    """One line saying how a repaired event differs from the upstream's."""
    notes = []
    if a.obj is not NOT_JSON and b.obj is not NOT_JSON:
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
        if not notes and compact(a.obj) != compact(b.obj):
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
    key = escape(str(key))
    return f"{path}.{key}" if path else key


def _short(value: Any, limit: int = 40) -> str:
    text = escape(compact(value))
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
