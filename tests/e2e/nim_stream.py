"""A recorded-shape NVIDIA NIM (SGLang backend) chat stream, and framing variants.

`nim_chunks(framing)` gives the upstream HTTP chunks (bytes) for one stream.
One SSE event per chunk, except for deliberate splits:
  * inside the JSON of the 3rd event (`"choices":[{"in` | `dex":0,...`),
  * inside a multi-byte character: the first byte of 東 ends a chunk,
  * inside 🚀 (two of its four bytes in each chunk),
  * for "crlf", between the `\\r` and the `\\n` of an event's blank line.

Framings (what the addon must accept):
  "standard"   `data: {json}\\n\\n` ... `data: [DONE]\\n\\n`
  "nospace"    `data:{json}\\n\\n`
  "crlf"       `data: {json}\\r\\n\\r\\n`
  "keepalive"  standard, with `: keep-alive\\n\\n` comment events interleaved
  "no_done"    no finish_reason chunk and no `data: [DONE]` at all
  "ascii"      standard, but the JSON has `\\uXXXX` escapes (json.dumps default)
"""

from __future__ import annotations

import json

__all__ = [
    "CHAT_PATH",
    "CREATED",
    "FRAMINGS",
    "ID",
    "KEEPALIVE",
    "MODEL",
    "PIECES",
    "TEXT",
    "nim_body",
    "nim_chunks",
    "nim_events",
]

ID = "8f20d6699e194a0abed38c671384d32d"
CREATED = 1754000000
MODEL = "qwen/qwen3-next-80b-a3b-instruct"
CHAT_PATH = "/v1/chat/completions"
PIECES = ["Ta", "bs, ", "naïve ", "café — ", "東京", " 🚀"]
TEXT = "".join(PIECES)
KEEPALIVE = b": keep-alive"
FRAMINGS = ("standard", "nospace", "crlf", "keepalive", "no_done", "ascii")


def _chunk(delta: dict, finish_reason: str | None = None) -> dict:
    # Key order as NIM sends it.
    return {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
                "matched_stop": None,
            }
        ],
        "usage": None,
    }


def nim_events(*, finish: bool = True) -> list[dict]:
    """The chunk objects, in order: role chunk, one per piece, finish chunk."""
    events = [
        _chunk({"role": "assistant", "content": None, "reasoning_content": None, "tool_calls": None})
    ]
    for p in PIECES:
        events.append(
            _chunk({"role": None, "content": p, "reasoning_content": None, "tool_calls": None})
        )
    if finish:
        events.append(
            _chunk(
                {"role": None, "content": None, "reasoning_content": None, "tool_calls": None},
                "stop",
            )
        )
    return events


def _split(data: bytes, at: int) -> list[bytes]:
    assert 0 < at < len(data)
    return [data[:at], data[at:]]


def nim_chunks(framing: str = "standard") -> list[bytes]:
    """The upstream body as HTTP chunks, for one of FRAMINGS."""
    if framing not in FRAMINGS:
        raise ValueError(framing)
    events = nim_events(finish=framing != "no_done")
    ascii_only = framing == "ascii"
    prefix = b"data:" if framing == "nospace" else b"data: "
    eol = b"\r\n" if framing == "crlf" else b"\n"

    payloads = [
        json.dumps(e, ensure_ascii=ascii_only, separators=(",", ":")).encode() for e in events
    ]
    if framing != "no_done":
        payloads.append(b"[DONE]")

    chunks: list[bytes] = []
    for i, payload in enumerate(payloads):
        raw = prefix + payload + eol + eol
        if i == 2:
            chunks += _split(raw, raw.index(b'"choices":[{"in') + len(b'"choices":[{"in'))
        elif "東".encode() in raw:
            chunks += _split(raw, raw.index("東".encode()) + 1)
        elif "🚀".encode() in raw:
            chunks += _split(raw, raw.index("🚀".encode()) + 2)
        elif framing == "crlf" and i == 4:
            chunks += _split(raw, len(raw) - 3)  # ...\r\n\r | \n
        else:
            chunks.append(raw)
        if framing == "keepalive" and i in (0, 3):
            chunks.append(KEEPALIVE + eol + eol)
    if framing == "keepalive":
        chunks.insert(0, KEEPALIVE + eol + eol)
    return chunks


def nim_body(framing: str = "standard") -> bytes:
    return b"".join(nim_chunks(framing))
