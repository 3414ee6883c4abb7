"""A chat exchange whose client speaks another API: the part both bridges share.

Contract: a bridge's exchange is a `ChatExchange` (every chat request rule,
what a rejection teaches, the one retry, the whole reply read and repaired as
a chat.completion) that fills its hooks: `sink()` writes a stream in the
client's API, `reply_of(completion)` turns a repaired chat.completion into the
client's reply object, and `error_envelope` (for the Messages API) writes an
error in the client's shape. What is left here: a success that holds no chat
completion, or one without a choice to translate, is a 502 in the client's
shape, never a reply that reads as an empty answer.

`chat_path(request, drop)` is where a bridged request goes: the same prefix,
`chat/completions` in place of the last component, the query kept but for
the parameters in `drop`.
"""

from __future__ import annotations

import logging
from typing import Any

from ..base import Head, Reply, Request, Unchanged
from ..chat import ChatExchange
from ..errors import openai_error

log = logging.getLogger(__name__)


class BridgeExchange(ChatExchange):
    def reply_of(self, completion: dict[str, Any]) -> dict[str, Any]:
        """The client's reply object for a repaired chat.completion that has a first choice."""
        raise NotImplementedError

    def translate(self, head: Head, original: dict[str, Any], completion: dict[str, Any], repaired: bool) -> Reply | Unchanged:
        if first_choice(completion) is None:
            return self.no_completion()
        return Reply.json(head.status, self.reply_of(completion))

    def no_completion(self) -> Reply | Unchanged:
        log.warning("%s: the upstream's reply is no chat completion with a choice; answering 502", self.env.label)
        return self.error_envelope(502, openai_error("The upstream's reply is not a chat completion the proxy could translate.", 502), True)


def first_choice(completion: dict[str, Any]) -> dict[str, Any] | None:
    """Choice 0 of a repaired chat.completion (or chunk), None when it has none."""
    choices = completion.get("choices")
    if not isinstance(choices, list):
        return None
    return next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)


def chat_path(request: Request, drop: tuple[str, ...] = ()) -> str:
    """`/v1/responses` -> `/v1/chat/completions`, `/anthropic/v1/messages?beta=true&x=1` ->
    `/anthropic/v1/chat/completions?x=1` (with `drop=("beta",)`)."""
    path = request.path.rstrip("/")
    path = path[: path.rfind("/") + 1] + "chat/completions"
    query = "&".join(part for part in request.query.split("&") if part and part.partition("=")[0] not in drop)
    return f"{path}?{query}" if query else path
