"""JSON in and out: the one reader and the one writer of the package.

Contract:
  loads(data, max_containers=)  the JSON value of `data` (bytes or str). Raises
                      `NotJSON` for anything that is not one strict JSON text:
                      invalid UTF-8, `NaN`/`Infinity` or a number too large
                      for a float (`1e400`: JSON has no infinities, and they
                      could not be written back), nesting deeper than the
                      interpreter allows (about 10,000 in CPython 3.13), or
                      more objects and arrays than `max_containers`, counted
                      on the text before it is parsed (so a body made of
                      millions of `{}` is refused before it can take memory):
                      cheaply as `{` and `[` bytes, and, only when that is
                      over the cap, again outside strings.
  dump(obj)           compact JSON as OpenAI writes it: `,` and `:` without
                      spaces, non-ASCII as UTF-8.
  dump_pretty(obj)    OpenAI's whole bodies: 2-space indent and a newline;
                      compact instead when the value is nested so deep that
                      indenting it would multiply its size, or larger than
                      `MAX_INDENTED` compact.
  structure(text)     (objects and arrays, deepest nesting) of a JSON text,
                      brackets inside strings not counted; `brackets(text)`
                      those brackets, found with a few passes of bytes
                      methods (no Python loop per byte).
Both writers give valid UTF-8 whatever the strings hold: a document with a lone
surrogate (which UTF-8 cannot carry) is written with ASCII escapes throughout.
Time is linear in the size of the text.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

__all__ = [
    "MAX_CONTAINERS",
    "NotJSON",
    "TooManyContainers",
    "brackets",
    "container_bound",
    "dump",
    "dump_pretty",
    "loads",
    "structure",
]

# Objects and arrays in one document, at most: about 100 MB of empty objects once
# parsed, in a few tenths of a second; far more than any chat request or reply holds.
MAX_CONTAINERS = 1_000_000
# Deeper than this, whole bodies are written compact (indent costs depth x 2 per line);
# larger than this, too (no client reads the indent, and it would cost time to find the depth).
MAX_INDENT_DEPTH = 32
MAX_INDENTED = 1024 * 1024


class NotJSON(ValueError):
    """The input is not one strict JSON text within the limits."""


class TooManyContainers(NotJSON):
    """The input may be JSON, but holds more objects and arrays than allowed."""


def _no_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in _INFINITIES:
        raise NotJSON(f"{text[:40]} is too large for a number")
    return value


_INFINITIES = (float("inf"), float("-inf"))
_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_raw_decode = _decoder.raw_decode
_WHITE = " \t\n\r"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode


def container_bound(data: bytes | str) -> int:
    """At least the number of objects and arrays in `data` (brackets inside strings count too)."""
    if isinstance(data, str):
        return data.count("{") + data.count("[")
    return data.count(b"{") + data.count(b"[")


def loads(data: bytes | str, *, max_containers: int = MAX_CONTAINERS) -> Any:
    # Over the cap counting every bracket? Count again outside strings (code in text has many).
    if container_bound(data) > max_containers and _outside_strings(data) > max_containers:
        raise TooManyContainers(f"more than {max_containers} objects and arrays")
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        try:
            obj, end = _raw_decode(text)  # the common case: no white space around it
        except json.JSONDecodeError:
            return _decoder.decode(text)
        if end != len(text) and text[end:].strip(_WHITE):
            raise NotJSON(f"extra data after the JSON value at {end}")
        return obj
    except NotJSON:
        raise
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise NotJSON(str(e)) from None


# bytes.translate's deletion table that keeps brackets only; +1 for an opening one, -1 for a closing one.
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def brackets(text: bytes | str) -> bytes:
    """The brackets of a JSON text that are not inside strings, in order."""
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    # Escaped backslashes, then escaped quotes, go first: the quotes left delimit strings.
    unescaped = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(unescaped.split(b'"')[0::2]).translate(None, _NOT_BRACKETS)


def structure(text: bytes | str) -> tuple[int, int]:
    """(objects and arrays, deepest nesting) of a JSON text, brackets inside strings not
    counted. Exact for valid JSON; for anything else, some numbers (the parser then refuses it).
    The depth costs a Python-level step per bracket: callers that need only the count
    use `brackets`."""
    found = brackets(text)
    containers = found.count(b"{") + found.count(b"[")
    return containers, max(itertools.accumulate(map(_STEP.__getitem__, found)), default=0)


def _outside_strings(data: bytes | str) -> int:
    found = brackets(data)
    return found.count(b"{") + found.count(b"[")


def dump(obj: Any) -> bytes:
    text = _encode(obj)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape everything rather than write invalid UTF-8
        return _encode_ascii(obj).encode("ascii")


def dump_pretty(obj: Any) -> bytes:
    compact = dump(obj)
    if len(compact) > MAX_INDENTED or (container_bound(compact) > MAX_INDENT_DEPTH and structure(compact)[1] > MAX_INDENT_DEPTH):
        return compact + b"\n"
    text = json.dumps(obj, ensure_ascii=False, indent=2, allow_nan=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, indent=2, allow_nan=False).encode("ascii") + b"\n"
