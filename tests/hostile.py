"""Hostile inputs for the hardening cases (project issue #10), as bytes, at two sizes.

`QUICK` is what `make test` sends (tests/e2e/test_hardening_e2e.py): every input
is still far past the cap it tests. `FULL` is the size the issue measured the
harm at, for `make load` (bench/load.py runs the same tests with
NORMALIZE_ATTACKS=full; `sizes()` reads it). Each builder is cached: a 1 GiB
gzip bomb takes seconds to make.
"""

from __future__ import annotations

import functools
import json
import os
import zlib
from dataclasses import dataclass

from tests.recorded import NIM_STREAM_EVENTS

MiB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    bomb_inflated: int  # bytes a gzip body inflates to (about 1/1000 of that on the wire)
    empty_objects: int  # bytes of a request body made of `{},`
    depth: int  # nesting of a request body
    html: int  # bytes of an HTML error page made of unclosed `<!--`
    stream_error: int  # bytes of an in-stream `event: error` made of the same
    blank: int  # bytes of blank lines before the first event
    choices: int  # `{}` choices in one stream event
    reply_depth: int  # nesting of a whole reply that needs a repair
    lines: int  # lines of one multi-line event, sent one per upstream write


QUICK = Sizes(
    bomb_inflated=256 * MiB,
    empty_objects=12 * MiB,
    depth=100_000,
    html=128 * 1024,
    stream_error=1 * MiB,
    blank=4 * MiB,
    choices=300_000,
    reply_depth=5_000,
    lines=20_000,
)
FULL = Sizes(
    bomb_inflated=1024 * MiB,
    empty_objects=50 * MiB,
    depth=100_000,
    html=128 * 1024,
    stream_error=8 * MiB - 1024,  # an event just under normalize_max_event_bytes
    blank=4 * MiB,
    choices=1_000_000,
    reply_depth=5_000,
    lines=80_000,
)


@functools.cache
def gzip_bomb(inflated: int, *, deflate: bool = False) -> bytes:
    """A gzip (or zlib-wrapped deflate) body of `inflated` bytes of spaces."""
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS if deflate else zlib.MAX_WBITS | 16)
    block = b" " * MiB
    out = [z.compress(block) for _ in range(inflated // MiB)]
    out.append(z.compress(b" " * (inflated % MiB)))
    out.append(z.flush())
    return b"".join(out)


def chat_request(**extra: object) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


@functools.cache
def empty_objects_request(size: int) -> bytes:
    """A chat request whose messages are `size` bytes of `{},`."""
    head, tail = b'{"model":"m","messages":[', b"{}]}"
    return head + b"{}," * ((size - len(head) - len(tail)) // 3) + tail


@functools.cache
def deep_request(depth: int) -> bytes:
    """A chat request with one key nested `depth` deep."""
    return b'{"model":"m","messages":[{"role":"user","content":"hi"}],"x":' + b"[" * depth + b"]" * depth + b"}"


@functools.cache
def unclosed_comments(size: int) -> bytes:
    """An HTML page of `size` bytes, nearly all of it `<!--` never closed."""
    head = b"<html><body>"
    return head + b"<!--" * ((size - len(head)) // 4)


def blank_lines(size: int) -> bytes:
    return b"\n" * size


@functools.cache
def many_choices_event(choices: int) -> bytes:
    """One stream event whose chunk has `choices` empty objects as choices."""
    head = b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m","choices":['
    return head + b"{}," * (choices - 1) + b"{}]}\n\n"


@functools.cache
def deep_completion(depth: int) -> bytes:
    """A whole chat.completion that needs a repair (content null) and carries a value nested `depth` deep."""
    body = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}],
    }
    text = json.dumps(body, separators=(",", ":")).encode()
    return text[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"


@functools.cache
def multiline_event(lines: int) -> tuple[bytes, ...]:
    """One chat chunk written over `lines` data lines (its JSON split between array items),
    each line a piece of its own, then [DONE]."""
    first = (
        b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":null}],"pad":[\n'
    )
    middle = b"data: 1234567890123456789012345678901234567890123456789,\n"
    last = b"data: 0]}\n\n"
    return (first, *([middle] * (lines - 2)), last, b"data: [DONE]\n\n")


def multiline_event_repaired(lines: int) -> bytes:
    """What a client gets for `multiline_event(lines)`: one compact chunk, the finish chunk, [DONE]."""
    pad = ",".join(["1234567890123456789012345678901234567890123456789"] * (lines - 2) + ["0"])
    chunk = (
        '{"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m",'
        '"choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":null}],"pad":[' + pad + "]}"
    )
    finish = (
        '{"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m",'
        '"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}'
    )
    return b"data: " + chunk.encode() + b"\n\ndata: " + finish.encode() + b"\n\ndata: [DONE]\n\n"


def gzip_members(events: list[bytes] = NIM_STREAM_EVENTS) -> list[bytes]:
    """A stream as several gzip members, one per event (legal; what concatenating servers send)."""
    out = []
    for e in events:
        z = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
        out.append(z.compress(e) + z.flush())
    return out


def raw_deflate(events: list[bytes] = NIM_STREAM_EVENTS) -> list[bytes]:
    """A stream as deflate without the zlib wrapper, sync-flushed per event."""
    z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    out = [z.compress(e) + z.flush(zlib.Z_SYNC_FLUSH) for e in events]
    out.append(z.flush())
    return out


def sizes() -> Sizes:
    """FULL when NORMALIZE_ATTACKS=full (make load), else QUICK."""
    return FULL if os.environ.get("NORMALIZE_ATTACKS") == "full" else QUICK
