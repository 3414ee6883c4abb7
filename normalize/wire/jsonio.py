"""JSON in and out: the one reader and the one writer of the package.

Contract:
  loads(data, max_containers=)  the JSON value of `data` (bytes or str). Raises
                      `NotJSON` for anything that is not one strict JSON text:
                      invalid UTF-8, `NaN`/`Infinity` (JSON has no such values,
                      and they could not be written back), nesting deeper than
                      the interpreter allows, or more objects and arrays than
                      `max_containers` (counted cheaply before parsing, so a
                      body made of millions of `{}` is refused before it can
                      take memory).
  dump(obj)           compact JSON as OpenAI writes it: `,` and `:` without
                      spaces, non-ASCII as UTF-8.
  dump_pretty(obj)    OpenAI's whole bodies: 2-space indent and a newline;
                      compact instead when the value is nested so deep that
                      indenting it would multiply its size.
Both writers give valid UTF-8 whatever the strings hold: a document with a lone
surrogate (which UTF-8 cannot carry) is written with ASCII escapes throughout.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_CONTAINERS", "NotJSON", "TooManyContainers", "container_bound", "dump", "dump_pretty", "loads"]

# Objects and arrays in one document, at most (an upper bound, counted as `{`
# and `[` bytes, strings included): about 200 MB of empty dicts at worst.
MAX_CONTAINERS = 1_000_000
# Deeper than this, whole bodies are written compact (indent costs depth x 2 per line).
MAX_INDENT_DEPTH = 32


class NotJSON(ValueError):
    """The input is not one strict JSON text within the limits."""


class TooManyContainers(NotJSON):
    """The input may be JSON, but holds more objects and arrays than allowed."""


def _no_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_constant=_no_constant)
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
    if container_bound(data) > max_containers:
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


def dump(obj: Any) -> bytes:
    text = _encode(obj)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape everything rather than write invalid UTF-8
        return _encode_ascii(obj).encode("ascii")


def dump_pretty(obj: Any) -> bytes:
    if _deeper_than(obj, MAX_INDENT_DEPTH):
        return dump(obj) + b"\n"
    text = json.dumps(obj, ensure_ascii=False, indent=2, allow_nan=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, indent=2, allow_nan=False).encode("ascii") + b"\n"


def _deeper_than(obj: Any, limit: int) -> bool:
    """Nested containers deeper than `limit`; iterative, stops at the first too deep."""
    stack = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False
