"""Cursor's agent mode: a Responses-shaped body (`input`, flat `tools`, no `messages`) sent to
`…/chat/completions`, which expects chat chunks back.

Contract: `responses_body_as_chat(body, request, env, exchange)` returns the
chat body to send in its place (the same translation as the bridge:
request.py), counting the repairs on the chat exchange; the reply is an
ordinary chat reply, repaired as any other. Unlike the bridge it asks for no
usage the client did not ask for (`stream_options` as the client sent it).
What OpenAI would refuse is answered on the exchange, and None returned.
"""

from __future__ import annotations

import logging
from typing import Any

from ...repairs import Repair
from ..base import Env, Exchange, Reply, Request
from .request import BridgeError, to_chat
from .store import key_scope

log = logging.getLogger(__name__)


def responses_body_as_chat(body: dict[str, Any], request: Request, env: Env, exchange: Exchange) -> dict[str, Any] | None:
    try:
        bridged = to_chat(body, env.shared.responses.lookup(key_scope(request.headers)), label=env.label)
    except BridgeError as e:
        log.info("%s: answered %d: %s", env.label, e.status, e.error["error"]["message"])
        exchange.answer = Reply.json(e.status, e.error)
        return None
    exchange.repairs.update(bridged.repairs)
    exchange.repairs[Repair.responses_body_on_chat_path] += 1
    chat = bridged.chat
    options = body.get("stream_options")
    if chat.get("stream") is True and isinstance(options, dict) and options.get("include_usage") is True:
        chat["stream_options"] = {"include_usage": True}
    else:
        chat.pop("stream_options", None)
    return chat
