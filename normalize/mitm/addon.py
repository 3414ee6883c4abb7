"""The mitmproxy hooks: guard, route, delegate.

For a flow to a host in `normalize_hosts`, `requestheaders` picks the endpoint
from the route table and attaches the flow's state; `request` hands the
endpoint the client's request (body decoded within the caps) and applies what
it says: a rewritten request, or a local answer; `responseheaders` wires the
endpoint's stream transducer into `response.stream`; `response` hands it a
whole body; `response` and `error` record what was repaired. Every other flow
passes untouched. With `normalize_rate_limit`, `request` holds a request until
its key may send (pace.py); `response` sends a rejected request that was not
streamed once more, repaired, when its exchange offers a `retry` (retry.py).
Those two hooks return a coroutine only when they have something to wait for
(mitmproxy awaits what a hook returns), so nothing else waits on the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from mitmproxy import ctx, http

from ..endpoints import OTHER, route
from ..endpoints.base import Env, Exchange, Forward, Head, Reply, Request, Shared, Unchanged
from ..pacing import key_of
from ..repairs import Repair
from ..settings import Settings
from ..wire.body import ENCODINGS, DecodeError, Decoder, decode_whole, encoding_of
from . import options, retry
from .pace import Pace, wait_too_long
from .record import label, record, redact, secrets
from .state import FlowState, Keys, attach, state_of
from .streaming import StreamRewriter, set_stream_headers

log = logging.getLogger("normalize")

# A retried request that is not answered within this long gets the first rejection.
RETRY_TIMEOUT = 600.0


class Normalize:
    def __init__(self) -> None:
        self.settings = Settings()
        self.shared = Shared()
        self.pace = Pace()

    def load(self, loader: Any) -> None:
        options.declare(loader)

    def configure(self, updated: set[str]) -> None:
        if any(name in updated for name in options.FIELDS):
            self.settings = options.settings(ctx.options)
            self.pace.configure(self.settings.rate_limit)

    # -- hooks ---------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not flow.live or retry.is_retry(flow) or not self.settings.targets(flow.request.host, flow.request.port):
            return
        state = attach(flow, FlowState(route(flow.request.method, flow.request.path_components), label(flow)))
        if state.route is not OTHER:
            # Compressed bodies would reach the stream rewrite compressed.
            flow.request.headers["accept-encoding"] = "identity"

    def request(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, bool] | None:
        if state_of(flow) is None:
            self.requestheaders(flow)
        state = state_of(flow)
        if state is None or flow.response is not None or not flow.live:
            return None
        host, port = flow.request.host, flow.request.port
        env = Env(self.settings, self.settings.profile_for(host, port), state.label, self.shared, f"{host}:{port}")
        request = self.client_request(flow)
        exchange = state.exchange = state.route.endpoint.open(request, env)
        if exchange.answer is not None:
            state.answered = True
            answer(flow, exchange.answer)
            return None
        if exchange.forward is not None:
            if exchange.forward.body is not None and request.body is not None and self.settings.keep_bytes:
                state.request_original = request.body[: self.settings.keep_bytes]
            forward(flow, exchange.forward)
        if not self.pace.on:
            return None
        state.pace_key = key_of(host, request.headers)
        return self.hold(flow, state, exchange)

    async def hold(self, flow: http.HTTPFlow, state: FlowState, exchange: Exchange) -> bool:
        """Waits until normalize_rate_limit lets this request go; answers 429 if that is too long."""
        held = await self.pace.hold(state.pace_key, lambda: flow.client_conn.timestamp_end is not None)
        if held is None:
            state.answered = True
            exchange.repairs[Repair.rate_limit_exceeded_wait] += 1
            answer(flow, wait_too_long(self.settings.rate_limit))
            return False
        if held >= 0.001:
            exchange.repairs[Repair.rate_limit_held] += round(held * 1000)
        return True

    def client_request(self, flow: http.HTTPFlow) -> Request:
        request = flow.request
        path, _, query = request.path.partition("?")
        body: bytes | None = None
        problem = ""
        try:
            body = read_body(request, self.settings.max_body_bytes)
        except DecodeError as e:
            problem = str(e)
            log.warning("%s: the request body was not read (%s); passing it through unchanged", label(flow), problem)
        headers = {name.lower(): request.headers[name] for name in request.headers}
        return Request(request.method, path, query, headers=headers, body=body, problem=problem)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        response = flow.response
        if retry.is_retry(flow) and self.settings.redact_keys:
            redact(flow)  # the addon's own retry: sent, so its stored copy need not keep the key either
        if state is None or response is None or not flow.live:
            return
        if self.settings.redact_keys:
            if response.status_code >= 400 and retry.available():
                state.keys = secrets(flow)  # a retry must send them as the client did
            redact(flow)  # the request has gone upstream: the stored copy need not keep the key
        if response.status_code == 429 and state.pace_key and "retry-after" in response.headers:
            seconds = self.pace.retry_after(state.pace_key, response.headers["retry-after"])
            log.info("%s: upstream 429: key %s paused for %s s", state.label, state.pace_key, seconds)
        if state.exchange is None or state.answered:
            return
        transducer = state.exchange.stream(head(flow))
        if transducer is None:
            return
        decoder = None
        encoding = encoding_of(response.headers.get("content-encoding", ""))
        if encoding:
            if encoding not in ENCODINGS:
                log.warning(
                    "%s: upstream used content-encoding %r, which is not decoded here; passing the stream through unchanged",
                    state.label,
                    encoding,
                )
                response.stream = True
                return
            decoder = Decoder(encoding, self.settings.max_event_bytes)
            del response.headers["content-encoding"]
        set_stream_headers(flow)
        state.rewriter = StreamRewriter(transducer, decoder, self.settings.keep_bytes, state.label)
        response.stream = state.rewriter.rewrite  # a bound method: cheaper to call than __call__

    def response(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        state = state_of(flow)
        response = flow.response
        if state is None or response is None or not flow.live:
            return None
        keys, state.keys = state.keys, ()  # for a retry, never kept past this hook
        if self.settings.redact_keys:
            redact(flow)
        exchange = state.exchange
        if exchange is None:
            return None
        if state.rewriter is not None or state.answered:
            record(flow, state, self.settings.keep_bytes)
            return None
        if response.stream:
            return None  # passed through (an encoding we do not decode)
        try:
            body = read_body(response, self.settings.max_body_bytes)
        except DecodeError as e:
            log.warning("%s %s: the reply body was not read (%s); passing it through unchanged", state.label, response.status_code, e)
            return None
        result = exchange.whole(head(flow), body)
        if exchange.retry is not None and retry.available():
            return self.retry(flow, state, exchange, body, result, keys)
        self.answered(flow, state, body, result)
        return None

    def answered(self, flow: http.HTTPFlow, state: FlowState, body: bytes, result: Reply | Unchanged | None) -> None:
        """Sends the exchange's rewrite of a whole reply (`body`, as the upstream sent it)."""
        assert flow.response is not None and state.exchange is not None
        if isinstance(result, Reply):
            replace(flow.response, result)
        if result is not None or state.exchange.repairs:
            record(flow, state, self.settings.keep_bytes, original=body)

    async def retry(
        self, flow: http.HTTPFlow, state: FlowState, exchange: Exchange, body: bytes, result: Reply | Unchanged | None, keys: Keys
    ) -> None:
        """Sends the exchange's repaired request once in place of the rejection (which the client
        has not seen: the reply is not streamed); the client gets the reply to that, if one comes."""
        if (retried := await self.resend(flow, state, exchange, keys)) is not None:
            body = retried
            result = exchange.whole(head(flow), body)
        self.answered(flow, state, body, result)

    async def resend(self, flow: http.HTTPFlow, state: FlowState, exchange: Exchange, keys: Keys) -> bytes | None:
        change, exchange.retry = exchange.retry, None
        if change is None or (self.pace.on and await self.pace.hold(state.pace_key) is None):
            return None  # waiting for the rate limit that long: the client gets the rejection
        log.info("%s %s: rejected; sending it once more, repaired", state.label, head(flow).status)
        response = await retry.resend(flow, change, RETRY_TIMEOUT, state.label, keys, redact_keys=self.settings.redact_keys)
        if response is None:
            return None
        try:
            body = read_body(response, self.settings.max_body_bytes)
        except DecodeError as e:
            log.warning("%s: the retry's reply was not read (%s); the client gets the rejection", state.label, e)
            return None
        exchange.retried()
        flow.response = response
        return body

    def error(self, flow: http.HTTPFlow) -> None:
        # A client or upstream went away (mid-stream, too): no response hook will come.
        if retry.is_retry(flow) and self.settings.redact_keys:
            redact(flow)
        state = state_of(flow)
        if state is None:
            return
        if self.settings.redact_keys:
            redact(flow)
        if state.rewriter is not None:
            transducer = state.rewriter.transducer
            log.info(
                "%s: stream ended early after %d events (%s)", state.label, transducer.events, flow.error.msg if flow.error else "error"
            )


def head(flow: http.HTTPFlow) -> Head:
    assert flow.response is not None
    return Head(flow.response.status_code, flow.response.headers.get("content-type", ""), flow.request.method)


def read_body(message: http.Message, cap: int) -> bytes:
    """A message's body decoded from its content-encoding, within `cap` bytes; DecodeError else."""
    raw = message.raw_content or b""
    if len(raw) > cap:
        raise DecodeError(f"{len(raw)} bytes, over normalize_max_body_bytes ({cap})")
    encoding = encoding_of(message.headers.get("content-encoding", ""))
    if encoding and encoding not in ENCODINGS:
        raise DecodeError(f"content-encoding {encoding!r} is not decoded here")
    return decode_whole(raw, encoding, cap)


def forward(flow: http.HTTPFlow, change: Forward) -> None:
    request = flow.request
    if change.body is not None:
        request.headers.pop("content-encoding", None)
        request.content = change.body  # also corrects content-length
    if change.path is not None:
        request.path = change.path
    for name in change.drop_headers:
        request.headers.pop(name, None)
    for name, value in change.set_headers.items():
        request.headers[name] = value


def answer(flow: http.HTTPFlow, reply: Reply) -> None:
    flow.response = http.Response.make(reply.status, reply.body, {"content-type": reply.content_type, **dict(reply.headers)})


def replace(response: http.Response, reply: Reply) -> None:
    response.status_code = reply.status
    response.headers.pop("content-encoding", None)
    response.headers["content-type"] = reply.content_type
    for name, value in reply.headers:
        response.headers[name] = value
    response.content = reply.body  # also corrects content-length
