"""The addon's estimate of a request's input tokens: Anthropic's `/v1/messages/count_tokens`,
and the usage a bridged reply reports when the upstream reported none.

Contract: `estimate_input_tokens(body)` takes a parsed Messages request or
chat request (any JSON value: whatever is not as expected counts for
nothing) and returns a non-negative integer, in time linear in the body,
without recursion.

How it counts, since the upstream's tokenizer is not at hand: the UTF-8
bytes of every string the model reads, divided by four and rounded up (about
four bytes per token for English text and code; fewer tokens than characters
for CJK text, where a character is three bytes), plus 3 tokens per message
for its role and framing, plus 1,600 tokens per image (what Anthropic's
vision docs give for the largest image it does not scale down). The strings
counted: `system`, every message's text, tool calls' names and inputs (as
JSON; a chat message's `tool_calls`, names and arguments), tool results, and
each tool definition as JSON (name, description, schema). A chat
`image_url` part is an image. Ids, `type` tags, cache settings, signatures and thinking blocks (the
bridge does not send those upstream) count for nothing.
"""

from __future__ import annotations

from typing import Any

from ...wire.jsonio import dump

BYTES_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
TOKENS_PER_IMAGE = 1600
# Keys whose values the model never reads as text.
_SKIPPED_KEYS = frozenset({"type", "id", "tool_use_id", "cache_control", "signature", "media_type", "citations"})
_SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def estimate_input_tokens(body: Any) -> int:
    if not isinstance(body, dict):
        return 0
    size = _text_bytes(body.get("system"))
    tokens = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        tokens += TOKENS_PER_MESSAGE * len(messages)
        for message in messages:
            if isinstance(message, dict):
                content_bytes, images = _content([message.get("content"), message.get("tool_calls")])
                size += content_bytes
                tokens += TOKENS_PER_IMAGE * images
    tools = body.get("tools")
    if isinstance(tools, list):
        size += sum(len(dump(tool)) for tool in tools if isinstance(tool, dict))
    return tokens + -(-size // BYTES_PER_TOKEN)


def _content(content: Any) -> tuple[int, int]:
    """UTF-8 bytes of the text in a message's content, and its number of images."""
    size = images = 0
    stack = [content]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            size += len(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            kind = value.get("type")
            if not isinstance(kind, str):
                kind = None
            if kind in _SKIPPED_BLOCKS:
                continue
            if kind in ("image", "image_url"):
                images += 1
                continue
            if kind == "tool_use":
                size += len(dump(value.get("input", {})))
                stack.append(value.get("name"))
                continue
            stack.extend(v for k, v in value.items() if k not in _SKIPPED_KEYS)
    return size, images


def _text_bytes(value: Any) -> int:
    return _content(value)[0]
