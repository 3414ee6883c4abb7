"""The "OpenAI assembled" view: the message a client builds from a reply, in its own API.

Contract: `assembled_view(data)` renders what the reply's client builds from
it: a Responses stream or object (responses.py, the Responses bridge's
replies), an Anthropic stream or message (anthropic.py, the Messages
bridge's), else a chat reply (chat.py).
"""

from __future__ import annotations

from .anthropic import anthropic_view, is_anthropic
from .chat import chat_view
from .responses import is_responses, responses_view
from .text import as_bytes, safe


@safe
def assembled_view(data: bytes) -> str:
    """The message a client builds from a stream (or reads from a non-stream body)."""
    data = as_bytes(data)
    if is_responses(data):
        return responses_view(data)
    if is_anthropic(data):
        return anthropic_view(data)  # the Messages bridge's replies
    return chat_view(data)
