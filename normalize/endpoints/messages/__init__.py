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
envelope with the upstream's status kept (errors.py). A body that is not a
Messages request is answered with an Anthropic error, without asking the
upstream. `COUNT_TOKENS.open` answers `count_tokens` itself (tokens.py).
With `normalize_messages=pass` both pass untouched.
"""

from __future__ import annotations

import logging
from typing import Any

from ...ids import new_completion_id
from ...repairs import Repair
from ...wire.jsonio import dump
from ..base import Env, Exchange, Forward, Head, Reply, Request, Transducer, Unchanged
from ..chat import ChatExchange
from ..chat.completion import rewrite_completion
from ..errors import error_status
from .errors import anthropic_error, error_reply, from_openai
from .message import ReplyInfo, message_from_completion
from .request import chat_request
from .sink import bridged_stream
from .tokens import estimate_input_tokens

log = logging.getLogger(__name__)

VERB = "bridged messages -> chat"


class MessagesExchange(ChatExchange):
    verb = VERB

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.info = ReplyInfo(model="", input_tokens=0, stop_sequences=(), make_id=new_completion_id)

    def stream(self, head: Head) -> Transducer | None:
        if not head.ok:
            return None  # errors are whole bodies
        if not head.event_stream:
            if not self.stream_requested:
                return None
            self.repairs[Repair.stream_sent_as_json] += 1
        return bridged_stream(self.options(), self.info, self.repairs, self.env.label)

    def whole(self, head: Head, body: bytes) -> Reply | Unchanged | None:
        obj = self.completion(head, body)
        if not isinstance(obj, dict) and (obj is not None or not head.ok):
            return obj
        if obj is None or not isinstance(obj.get("choices"), list):
            log.warning("%s: the upstream's reply is no chat completion; answering the client with an error", self.env.label)
            self.repairs[Repair.stream_not_translatable] += 1
            return Reply.json(502, anthropic_error("The upstream's reply is not a chat completion the proxy could translate."))
        completion, repairs = rewrite_completion(obj, self.options())
        self.repairs.update(repairs)
        message, repairs = message_from_completion(completion, self.info)
        self.repairs.update(repairs)
        return Reply.json(head.status, message)

    def error(self, head: Head, body: bytes) -> Reply | Unchanged:
        return error_reply(head, body, self.repairs)

    def error_sent_as_success(self, error: dict[str, Any]) -> Reply:
        status = error_status(error)
        return Reply.json(status, from_openai(error, status))


class PassedExchange(Exchange):
    """normalize_messages=pass: the upstream serves Messages itself; nothing is touched."""

    verb = "passed messages"

    def whole(self, head: Head, body: bytes) -> Reply | Unchanged | None:
        return None


def messages_body(exchange: Exchange, request: Request) -> dict[str, Any] | None:
    """The request's body when it is a Messages request; else None, and the exchange
    answers with Anthropic's error."""
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
    exchange.repairs[Repair.request_not_bridgeable] += 1
    exchange.answer = Reply.json(status, error)
    return None


class Messages:
    name = "messages"

    def open(self, request: Request, env: Env) -> Exchange:
        if env.settings.messages != "bridge":
            return PassedExchange(env)
        exchange = MessagesExchange(env)
        body = messages_body(exchange, request)
        if body is None:
            return exchange
        bridged = chat_request(body)
        exchange.repairs.update(bridged.repairs)
        if bridged.left_out:
            log.info("%s: not sent upstream, as chat has no place for them: %s", env.label, ", ".join(bridged.left_out))
        chat = exchange.read_request(bridged.body)
        stops = body.get("stop_sequences")
        exchange.info = ReplyInfo(
            model=body["model"] if isinstance(body.get("model"), str) else exchange.model or "",
            input_tokens=estimate_input_tokens(body),
            stop_sequences=tuple(s for s in stops if isinstance(s, str)) if isinstance(stops, list) else (),
            make_id=new_completion_id,
        )
        headers, drop = upstream_headers(request, exchange)
        exchange.forward = Forward(body=dump(chat), path=chat_path(request), set_headers=headers, drop_headers=drop)
        return exchange


def chat_path(request: Request) -> str:
    """`…/v1/messages?beta=true&x=1` -> `…/v1/chat/completions?x=1`."""
    path = request.path.removesuffix("/").removesuffix("messages") + "chat/completions"
    query = "&".join(part for part in request.query.split("&") if part and part.partition("=")[0] != "beta")
    return path + ("?" + query if query else "")


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


class CountTokensExchange(Exchange):
    verb = "answered messages count_tokens"

    def error(self, head: Head, body: bytes) -> Reply | Unchanged:
        return error_reply(head, body, self.repairs)


class CountTokens:
    name = "messages_count_tokens"

    def open(self, request: Request, env: Env) -> Exchange:
        if env.settings.messages != "bridge":
            return PassedExchange(env)
        exchange = CountTokensExchange(env)
        body = messages_body(exchange, request)
        if body is not None:
            exchange.repairs[Repair.count_tokens_unsupported] += 1
            exchange.answer = Reply.json(200, {"input_tokens": estimate_input_tokens(body)})
        return exchange


MESSAGES = Messages()
COUNT_TOKENS = CountTokens()
