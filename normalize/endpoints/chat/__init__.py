"""`POST …/chat/completions`: the request fixed for the upstream, the reply repaired for the client.

Contract: `CHAT.open(request, env)` rewrites the request body (model aliases,
`stream_options` without `stream`, dropped and renamed parameters:
request.py; what the upstream's validation rejects: validation.py); the
exchange learns from an upstream's rejection what to drop or lower from then
on (rejected.py) and, for a request that is not streamed, offers the repaired
request as `retry`; it streams a success that is an event stream, or that
the client asked to stream (exo labels its streams application/json),
through `ChatStream`, and rewrites a whole reply: errors in OpenAI's shape,
an error sent with status 200 as the error it is, a chat.completion as
OpenAI's (completion.py). Reasoning is split out of content or folded into
it (`normalize_reasoning`, think.py); in `fold` mode the client's history gets
its reasoning back as reasoning_content.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from ...profiles.thinking import OPENS_INSIDE, THINK_TAGS
from ...repairs import Repair
from ...wire.body import parse_json_body
from ...wire.jsonio import dump
from ..base import UNCHANGED, Env, Exchange, Forward, Head, Reply, Request, Transducer, Unchanged
from ..errors import error_object, error_reply, error_status
from ..learned import Context
from ..responses.cursor import responses_body_as_chat
from .completion import rewrite_completion
from .options import Options
from .rejected import TOOL_FUNCTION, rejected_params, token_limit
from .request import rewrite_request
from .sink import ChunkSink
from .stream import ChatStream
from .think import FOLD, SPLIT, unfold_history
from .validation import TOKEN_KEYS, Fit, fit_request, is_int, with_max_tokens, without

log = logging.getLogger(__name__)


class ChatExchange(Exchange):
    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.stream_requested = False  # the request said "stream": true
        self.include_usage = False  # ... and stream_options.include_usage: true
        self.model: str | None = None  # the model sent upstream
        self.alias: str | None = None  # the alias the client asked for, reported back
        self.opens_inside = False  # the reply starts inside reasoning, with no <think> (think.py)
        self.sent: dict[str, Any] | None = None  # the body sent upstream (not copied: never changed)
        self.was_retried = False  # `retry` was sent: a second rejection is the client's
        self.error_repairs: list[Repair] = []  # those of the rejection a retry replaced
        self.sent_next: dict[str, Any] | None = None  # the body of `retry`

    def read_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body to send upstream; remembers what the reply needs to know."""
        settings, profile = self.env.settings, self.env.profile
        legacy = settings.legacy_params and profile.renames_legacy_params
        new, repairs, alias = rewrite_request(
            body,
            model_map=settings.model_map,
            drop_params=settings.drop_params,
            rename_legacy=legacy,
        )
        model = new.get("model") if isinstance(new.get("model"), str) else None
        learned = self.env.shared.learned.get(self.env.host, model)
        fit_request(new, Fit(profile, learned, settings.default_max_tokens, legacy), repairs)
        self.repairs.update(repairs)
        options = body.get("stream_options")
        self.stream_requested = body.get("stream") is True
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.model = model
        self.alias = alias
        self.sent = self.reasoning(new)
        return self.sent

    def reasoning(self, body: dict[str, Any]) -> dict[str, Any]:
        """Whether the reply will start inside reasoning; in `fold` mode, history unfolded
        (but not for a model that writes its reasoning in content itself: it gets it back so)."""
        mode = self.env.settings.reasoning
        family = self.env.profile.thinking_for(self.model)
        in_content = family is not None and family.reply in (THINK_TAGS, OPENS_INSIDE)
        self.opens_inside = mode == SPLIT and family is not None and family.reply == OPENS_INSIDE and not family.switched_off(body)
        if mode == FOLD and not in_content:
            return unfold_history(body, self.note)
        return body

    def note(self, repair: Repair) -> None:
        self.repairs[repair] += 1

    def options(self) -> Options:
        settings = self.env.settings
        return Options(
            model=self.model,
            model_alias=self.alias,
            include_usage=self.include_usage,
            max_event_bytes=settings.max_event_bytes,
            hold_limit=self.env.profile.hold_limit,
            reasoning=settings.reasoning,
            opens_inside=self.opens_inside,
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
        return ChatStream(self.options(), self.sink())

    def whole(self, head: Head, body: bytes) -> Reply | Unchanged | None:
        obj = self.completion(head, body)
        if obj is None and head.ok:
            return self.no_completion()
        if not isinstance(obj, dict):
            return obj
        out, repairs = rewrite_completion(obj, self.options())
        if body[:1].isspace() or body.startswith(b"data:"):
            repairs[Repair.body_not_bare_json] += 1  # DeepSeek's blank lines under load, NIM's data:
        self.repairs.update(repairs)
        return self.translate(head, obj, out, bool(repairs))

    # -- what a bridge's exchange changes (responses/, messages/) ------------------------

    def sink(self) -> ChunkSink | None:
        """Where a streamed reply's repaired chunks go: None for OpenAI's chat stream."""
        return None

    def translate(self, head: Head, original: dict[str, Any], completion: dict[str, Any], repaired: bool) -> Reply | Unchanged:
        """The reply for a whole chat.completion (`original`, as the upstream sent it, and as
        repaired): OpenAI's, sent only when something changed."""
        return Reply.json(head.status, completion) if repaired or completion != original else UNCHANGED

    def no_completion(self) -> Reply | Unchanged | None:
        """The reply for a success whose body is no JSON object: passed as it came."""
        return None

    def error_envelope(self, status: int, error: dict[str, Any], changed: bool) -> Reply | Unchanged:
        """The reply for an OpenAI error (`changed`: it is not the body the upstream sent)."""
        return Reply.json(status, error) if changed else UNCHANGED

    def completion(self, head: Head, body: bytes) -> dict[str, Any] | Reply | Unchanged | None:
        """A whole reply, read: the JSON object a successful reply holds (a chat.completion, as
        the upstream sent it), or what settles the reply without one: an error reply in the
        client's shape (`error`), an error sent with status 200 given its own status (clients
        would take it for a reply with no choices: OpenRouter), None for no JSON object."""
        if head.status >= 400:
            return self.error(head, body)
        if not head.ok:
            return None
        obj = parse_json_body(body)
        found = None if obj is None else error_object(obj)
        if found is not None:
            error, repair = found
            self.repairs[Repair.error_at_status_200] += 1
            if repair:
                self.repairs[repair] += 1
            return self.error_sent_as_success(error)
        return obj if isinstance(obj, dict) else None

    def error_sent_as_success(self, error: dict[str, Any]) -> Reply | Unchanged:
        """An OpenAI error the upstream sent with status 200, as the client's error reply."""
        return self.error_envelope(error_status(error), error, True)

    # -- what a rejection teaches ------------------------------------------------

    def error(self, head: Head, body: bytes) -> Reply | Unchanged:
        """An error reply in OpenAI's shape; what it says the upstream rejects is learned, the
        client's message says so, and a request that was not streamed gets a repaired `retry`.
        (A bridge's exchange that builds on this one gets the same by calling `error`.)"""
        status, error, repairs = error_reply(head.status, body, head.content_type)
        message = error["error"].get("message")
        note, retry = self.learn(status, message if isinstance(message, str) else "")
        if note:
            error = {**error, "error": {**error["error"], "message": f"{message} ({note})"}}
        if retry is not None and not self.stream_requested and not self.was_retried:
            self.retry = Forward(body=dump(retry))
            self.sent_next = retry
            self.error_repairs = repairs
        self.repairs.update(repairs)
        return self.error_envelope(status, error, bool(repairs or note))

    def learn(self, status: int, message: str) -> tuple[str, dict[str, Any] | None]:
        """What the profile lets this rejection teach: a note for the client, and the repaired body."""
        profile, sent, model, host = self.env.profile, self.sent, self.model, self.env.host
        if sent is None or model is None or not 400 <= status < 500 or status == 429:
            return "", None
        learned = self.env.shared.learned
        notes: list[str] = []
        retry: dict[str, Any] | None = None
        if profile.learns_rejected_params:
            params = [p for p in rejected_params(message) if sends(sent, p)]
            if params:
                learned.reject(host, model, params)
                retry = without(sent, frozenset(params))
                names = ", ".join(f"`{p}`" for p in params)
                notes.append(f"the proxy will drop {names} from this model's requests from now on")
                self.repairs[Repair.param_rejected] += len(params)
        asked = max([v for k in TOKEN_KEYS if is_int(v := sent.get(k))], default=None)
        limit = token_limit(message) if profile.learns_max_tokens and asked is not None else None
        fits = limit.fits if limit is not None else None
        if limit is not None and asked is not None and fits is not None and 1 <= fits < asked:
            if limit.cap is not None:
                learned.limit(host, model, cap=limit.cap)
            elif limit.context is not None and limit.prompt is not None:
                learned.limit(host, model, context=Context(limit.context, limit.prompt / max(len(dump(sent)), 1)))
            retry = with_max_tokens(retry or sent, fits)
            notes.append(f"the proxy will lower max_tokens to what this model allows from now on (here {fits})")
            self.repairs[Repair.max_tokens_rejected] += 1
        return "; ".join(notes), retry

    def retried(self) -> None:
        """The glue sent `retry` in place of the rejection: that error never reached the client."""
        self.repairs = +(self.repairs - Counter(self.error_repairs))
        self.repairs[Repair.rejected_request_retried] += 1
        self.was_retried, self.sent = True, self.sent_next


def sends(body: dict[str, Any], path: str) -> bool:
    """The body has this learned path (a top-level key, or a key of some tool's function)."""
    if not path.startswith(TOOL_FUNCTION):
        return path in body
    key, tools = path.removeprefix(TOOL_FUNCTION), body.get("tools")
    return isinstance(tools, list) and any(
        isinstance(t, dict) and isinstance(t.get("function"), dict) and key in t["function"] for t in tools
    )


class Chat:
    name = "chat"

    def open(self, request: Request, env: Env) -> Exchange:
        exchange = ChatExchange(env)
        body, problem = request.read_json()
        if isinstance(body, dict) and "input" in body and "messages" not in body and env.settings.responses == "bridge":
            # Cursor's agent mode: a Responses body sent here, answered as chat.
            body = responses_body_as_chat(body, request, env, exchange)
            if body is None:
                return exchange
        if isinstance(body, dict):
            new = exchange.read_request(body)
            if exchange.repairs:
                exchange.forward = Forward(body=dump(new))
        elif problem or body is not None:
            problem = problem or "not a JSON object"
            log.warning("%s: the request body was not read (%s); passing it through unchanged", env.label, problem)
        return exchange


CHAT = Chat()
