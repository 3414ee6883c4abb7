"""`POST …/chat/completions`: the request fixed for the upstream, the reply repaired for the client.

Contract: `CHAT.open(request, env)` rewrites the request body (model aliases,
`stream_options` without `stream`, dropped and renamed parameters:
request.py); the exchange streams a success that is an event stream, or that
the client asked to stream (exo labels its streams application/json),
through `ChatStream`, and rewrites a whole reply: errors in OpenAI's shape,
an error sent with status 200 as the error it is, a chat.completion as
OpenAI's (completion.py).
"""

from __future__ import annotations

import logging
from typing import Any

from ...repairs import Repair
from ...wire.body import parse_json_body
from ...wire.jsonio import dump
from ..base import UNCHANGED, Env, Exchange, Forward, Head, Reply, Request, Transducer, Unchanged
from ..errors import error_object, error_status
from .completion import rewrite_completion
from .options import Options
from .request import rewrite_request
from .stream import ChatStream

log = logging.getLogger(__name__)


class ChatExchange(Exchange):
    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.stream_requested = False  # the request said "stream": true
        self.include_usage = False  # ... and stream_options.include_usage: true
        self.model: str | None = None  # the model sent upstream
        self.alias: str | None = None  # the alias the client asked for, reported back

    def read_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body to send upstream; remembers what the reply needs to know."""
        settings = self.env.settings
        new, repairs, alias = rewrite_request(
            body,
            model_map=settings.model_map,
            drop_params=settings.drop_params,
            rename_legacy=settings.legacy_params,
        )
        self.repairs.update(repairs)
        options = body.get("stream_options")
        self.stream_requested = body.get("stream") is True
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.model = new.get("model") if isinstance(new.get("model"), str) else None
        self.alias = alias
        return new

    def options(self) -> Options:
        settings = self.env.settings
        return Options(
            model=self.model,
            model_alias=self.alias,
            include_usage=self.include_usage,
            max_event_bytes=settings.max_event_bytes,
            hold_limit=self.env.profile.hold_limit,
            label=self.env.label,
        )

    def stream(self, head: Head) -> Transducer | None:
        if not head.ok:
            return None  # errors are whole bodies (NIM sends problem+json as `data:{...}`)
        if not head.event_stream:
            if not self.stream_requested:
                return None
            log.info("%s: stream sent as %r; answering as text/event-stream", self.env.label, head.content_type or "no content-type")
            self.repairs[Repair.stream_sent_as_json] += 1
        return ChatStream(self.options())

    def whole(self, head: Head, body: bytes) -> Reply | Unchanged | None:
        if head.status >= 400:
            return self.error(head, body)
        if not head.ok:
            return None
        obj = parse_json_body(body)
        if obj is None:
            return None
        found = error_object(obj)
        if found is not None:
            # An error sent as a success (OpenRouter-style): clients would take it for
            # a reply with no choices. Send it as the error it is.
            error, repair = found
            self.repairs[Repair.error_at_status_200] += 1
            if repair:
                self.repairs[repair] += 1
            return Reply.json(error_status(error), error)
        if not isinstance(obj, dict):
            return None
        out, repairs = rewrite_completion(obj, self.options())
        if body[:1].isspace() or body.startswith(b"data:"):
            repairs[Repair.body_not_bare_json] += 1  # DeepSeek's blank lines under load, NIM's data:
        self.repairs.update(repairs)
        return Reply.json(head.status, out) if out != obj or repairs else UNCHANGED


class Chat:
    name = "chat"

    def open(self, request: Request, env: Env) -> Exchange:
        exchange = ChatExchange(env)
        body, problem = request.read_json()
        if isinstance(body, dict):
            new = exchange.read_request(body)
            if exchange.repairs:
                exchange.forward = Forward(body=dump(new))
        elif problem or body is not None:
            problem = problem or "not a JSON object"
            log.warning("%s: the request body was not read (%s); passing it through unchanged", env.label, problem)
        return exchange


CHAT = Chat()
