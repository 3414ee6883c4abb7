"""`POST …/v1/messages` and `…/v1/messages/count_tokens`: Anthropic's Messages API on a chat upstream.

Contract: with `normalize_messages=bridge` (the default), `MESSAGES.open`
translates a Messages request into a chat completions request (request.py),
applies the chat request rules to it (`ChatExchange.read_request`: aliases,
dropped parameters), and forwards it to `…/v1/chat/completions` (other query
parameters kept, `beta` dropped), with `Authorization: Bearer <x-api-key>`
when the client sent no Authorization, and without the `x-api-key` and
`anthropic-*` headers. The reply comes back in Anthropic's shapes: a stream
through `ChatStream` (every chat repair) into `MessagesSink` (sink.py), a
whole chat.completion as a `message` (message.py), errors in Anthropic's
envelope (errors.py) with the status the chat exchange gives (NIM's
misleading ones fixed; what a rejection teaches is learned, and a request
that was not streamed retried once). A body that is not a
Messages request is answered with an Anthropic error, without asking the
upstream. `COUNT_TOKENS.open` answers `count_tokens` itself, with an
estimate (bridge/tokens.py); models.py gives `/v1/models` in Anthropic's shape.
With `normalize_messages=pass` both pass untouched.
"""

from __future__ import annotations

import logging
from typing import Any

from ...ids import new_completion_id
from ...repairs import Repair
from ...wire.jsonio import dump
from ..base import Env, Exchange, Forward, Head, Reply, Request, Unchanged
from ..bridge.exchange import BridgeExchange, chat_path
from ..bridge.request import shown
from ..bridge.tokens import estimate_input_tokens
from .errors import anthropic_error, from_openai
from .message import ReplyInfo, message_from_completion
from .request import chat_request
from .sink import MessagesSink

log = logging.getLogger(__name__)

VERB = "bridged messages -> chat"
COUNT_TOKENS_VERB = "answered messages count_tokens"


class MessagesExchange(BridgeExchange):
    verb = VERB

    def __init__(self, env: Env, request: Request, body: dict[str, Any]) -> None:
        super().__init__(env)
        bridged = chat_request(body)
        self.repairs.update(bridged.repairs)
        if bridged.left_out:
            log.info("%s: not sent upstream, as chat has no place for them: %s", env.label, shown(bridged.left_out))
        chat = self.read_request(bridged.body)
        stops = body.get("stop_sequences")
        self.info = ReplyInfo(
            model=body["model"] if isinstance(body.get("model"), str) else self.model or "",
            input_tokens=estimate_input_tokens(body),
            stop_sequences=tuple(s for s in stops if isinstance(s, str)) if isinstance(stops, list) else (),
            make_id=new_completion_id,
        )
        headers, drop = upstream_headers(request, self)
        self.forward = Forward(body=dump(chat), path=chat_path(request, drop=("beta",)), set_headers=headers, drop_headers=drop)

    def sink(self) -> MessagesSink:
        return MessagesSink(self.info, self.repairs, self.env.label)

    def reply_of(self, completion: dict[str, Any]) -> dict[str, Any]:
        message, repairs = message_from_completion(completion, self.info)
        self.repairs.update(repairs)
        return message

    def error_envelope(self, status: int, error: dict[str, Any], changed: bool) -> Reply:
        self.repairs[Repair.error_not_anthropic] += 1
        return Reply.json(status, from_openai(error, status))


class PassedExchange(Exchange):
    """normalize_messages=pass: the upstream serves Messages itself; nothing is touched."""

    verb = "passed messages"

    def whole(self, head: Head, body: bytes) -> Reply | Unchanged | None:
        return None


def messages_body(request: Request, env: Env, verb: str) -> dict[str, Any] | Exchange:
    """The body of a Messages request; for anything else, an exchange that answers with
    Anthropic's error (without asking the upstream)."""
    body = request.json()
    if request.body is None:
        status, error = 413, anthropic_error(f"The request body was not read: {request.problem}.", "request_too_large")
    elif not isinstance(body, dict) or not isinstance(body.get("messages", []), list):
        status, error = (
            400,
            anthropic_error("The request body is not a Messages request (a JSON object with a messages list).", "invalid_request_error"),
        )
    else:
        return body
    exchange = Exchange(env)
    exchange.verb = verb
    exchange.repairs[Repair.request_not_bridgeable] += 1
    exchange.answer = Reply.json(status, error)
    return exchange


class Messages:
    name = "messages"

    def open(self, request: Request, env: Env) -> Exchange:
        if env.settings.messages != "bridge":
            return PassedExchange(env)
        body = messages_body(request, env, VERB)
        return body if isinstance(body, Exchange) else MessagesExchange(env, request, body)


def upstream_headers(request: Request, exchange: Exchange) -> tuple[dict[str, str], tuple[str, ...]]:
    """Anthropic's key header as a bearer token when there is no Authorization; the
    Anthropic-only headers left out (a chat upstream has no use for them)."""
    headers = request.headers
    drop = tuple(name for name in headers if name == "x-api-key" or name.startswith("anthropic-"))
    key = headers.get("x-api-key")
    if key and "authorization" not in headers:
        exchange.repairs[Repair.api_key_header] += 1
        return {"authorization": "Bearer " + key}, drop
    return {}, drop


class CountTokens:
    name = "messages_count_tokens"

    def open(self, request: Request, env: Env) -> Exchange:
        if env.settings.messages != "bridge":
            return PassedExchange(env)
        body = messages_body(request, env, COUNT_TOKENS_VERB)
        if isinstance(body, Exchange):
            return body
        exchange = Exchange(env)
        exchange.verb = COUNT_TOKENS_VERB
        exchange.repairs[Repair.count_tokens_unsupported] += 1
        exchange.answer = Reply.json(200, {"input_tokens": estimate_input_tokens(body)})
        return exchange


MESSAGES = Messages()
COUNT_TOKENS = CountTokens()
