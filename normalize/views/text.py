"""Shared by the views: text that is safe to show in one line, the pieces every view renders
alike (a scalar, a block of text, pretty JSON, an indented view), and the guard that makes a
view total.

Views take any bytes (garbage, cut short, invalid UTF-8, empty) and never
raise: whatever cannot be parsed is shown as it came, with escapes. Output is
deterministic and never contains a line break other than LF.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from ..wire.jsonio import NotJSON, dump, dump_pretty, loads

log = logging.getLogger(__name__)

# A rendered event line longer than this is cut (a whole 8 MiB event on one line helps nobody).
MAX_LINE_CHARS = 20_000
# A text block (content, reasoning, arguments) longer than this is cut.
MAX_TEXT_CHARS = 1_000_000


def safe(view: Callable[..., str]) -> Callable[..., str]:
    """A view never raises: a bug shows as a note above the raw bytes, and in the log."""

    @functools.wraps(view)
    def wrapper(*args: Any) -> str:
        try:
            text = view(*args)
        except Exception as e:  # a view is the last place a bug should break anything
            log.exception("%s failed", view.__name__)
            raw = as_bytes(args[0] if args else b"")
            text = f"(could not render this view: {type(e).__name__})\n{raw_text(raw)}\n"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from JSON escapes: show them escaped
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return text

    return wrapper


def as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    try:
        return bytes(data)
    except (TypeError, ValueError):
        return b""


def compact(obj: Any) -> str:
    try:
        return dump(obj).decode("utf-8")
    except (ValueError, TypeError, RecursionError):
        return "(too deeply nested to show)"


def loads_ok(payload: bytes | str) -> tuple[bool, Any]:
    try:
        return True, loads(payload)
    except NotJSON:
        return False, None


# Everything str.splitlines would break a line on, plus the other C0 controls
# (a raw CR or ESC in a text pane does damage); tab stays.
_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def escape(text: str) -> str:
    """One line of text: line breaks and control characters written as escapes."""
    if not _BREAKS.search(text):
        return text
    return _BREAKS.sub(lambda m: _NAMED.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def cut(text: str, limit: int = MAX_LINE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … (+{len(text) - limit} chars)"


def raw_text(raw: bytes) -> str:
    """Bytes as one line of text: invalid UTF-8 as \\x escapes, cut when long."""
    limit = MAX_LINE_CHARS * 4  # a character is at most 4 bytes
    text = escape(raw[:limit].decode("utf-8", "backslashreplace"))
    if len(raw) > limit:
        return cut(text) if len(text) > MAX_LINE_CHARS else f"{text} … (+{len(raw) - limit} bytes)"
    return cut(text)


@safe
def json_text(data: bytes) -> str:
    """A JSON body indented for reading, or the bytes as text when it is not JSON."""
    data = as_bytes(data)
    ok, obj = loads_ok(data)
    if not ok:
        return raw_text(data) + "\n"
    return dump_pretty(obj).decode("utf-8")


def scalar(value: Any) -> str:
    """A value on one line: a string as it reads, anything else as compact JSON."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return cut(escape(value)) if value else '""'
    return cut(escape(compact(value)))


def block(text: str, indent: str = "    ") -> list[str]:
    """A text of many lines, each indented and escaped, cut after MAX_TEXT_CHARS."""
    more = len(text) - MAX_TEXT_CHARS
    lines = [indent + escape(line) for line in text[:MAX_TEXT_CHARS].split("\n")]
    return [*lines, f"{indent}… (+{more} chars)"] if more > 0 else lines


def pretty(value: Any) -> str:
    try:
        return dump_pretty(value).decode("utf-8").rstrip("\n")
    except (ValueError, TypeError, RecursionError):
        return "(too deeply nested to show)"


def indented(text: str) -> str:
    """A whole view, indented under a heading of another."""
    return "".join("  " + line + "\n" for line in text.splitlines())


def integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
