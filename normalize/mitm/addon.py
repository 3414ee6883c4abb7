"""The mitmproxy hooks: guard, route, delegate.

For a flow to a host in `normalize_hosts`, `requestheaders` picks the endpoint
from the route table and attaches the flow's state; `request` hands the
endpoint the client's request (body decoded within the caps) and applies what
it says: a rewritten request, or a local answer; `responseheaders` wires the
endpoint's stream transducer into `response.stream` (or the addon's collector
for a whole reply mitmproxy streams); `response` hands it a whole body;
`response` and `error` record what was repaired. API keys come off the stored
request as soon as it has gone upstream, and at shutdown (`done`). `load`
checks option values given before the addon loaded. Every other flow passes
untouched, except that an event stream is passed on as it comes.

With `normalize_rate_limit`, `request` holds a request until its key may send
(pace.py); `response` sends a rejected request that was not streamed once
more, repaired, when its exchange offers a `retry` (retry.py). Those two
hooks return a coroutine only when they have something to wait for
(mitmproxy awaits what a hook returns), so nothing else waits on the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any, Final

from mitmproxy import ctx, http

from ..endpoints import OTHER, route
from ..endpoints.base import UNCHANGED, Env, Exchange, Shared, Transducer, Unchanged
from ..settings import Settings
from . import options, retry
from .apply import answer, client_request, forward, guarded, head, stream_through
from .pace import Pace
from .record import Unredacted, label, record
from .state import FlowState, Mode, attach, detach, state_of
from .streaming import close_delimit, open_length, through_transducer
from .whole import Collected, rewrite, send_whole

log = logging.getLogger("normalize")

# `exchange.stream` failed: the reply passes as it comes.
STREAM_THROUGH: Final[Transducer | Unchanged | None] = UNCHANGED


class Normalize:
    def __init__(self) -> None:
        self.settings = Settings()
        self.shared = Shared()
        self.pace = Pace()
        self.unredacted = Unredacted()
        self.retrier = retry.Retrier(self.pace, self.unredacted)

    def load(self, loader: Any) -> None:
        options.declare(loader)
        options.check_deferred(ctx.options, starting=starting())

    def configure(self, updated: set[str]) -> None:
        if any(name in updated for name in options.FIELDS):
            self.settings = options.settings(ctx.options)
            self.pace.configure(self.settings.rate_limit)
            self.shared.responses.resize(self.settings.responses_store_bytes)
            self.unredacted.enabled = self.settings.redact_keys

    # -- hooks ---------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if retry.is_retry(flow):
            # The addon's own retry, carrying the client's key: held like any flow until sent
            # (mitmproxy's save addon keeps it in flight from its request hook on).
            self.unredacted.hold(flow)
            return
        if not flow.live or not self.settings.targets(flow.request.host, flow.request.port):
            return
        state = attach(flow, FlowState(route(flow.request.method, flow.request.path_components), label(flow)))
        self.unredacted.hold(flow)
        if state.route is not OTHER:
            # Compressed bodies would reach the stream rewrite compressed.
            flow.request.headers["accept-encoding"] = "identity"

    def request(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        if state_of(flow) is None:
            # A flow whose headers came before this instance was loaded (a script reload
            # mid-request) gets its state now; for any other flow with none (untargeted, the
            # addon's own retry) requestheaders only decides the same again.
            self.requestheaders(flow)
        state = state_of(flow)
        if state is None or flow.response is not None or not flow.live:
            return None
        host, port = flow.request.host, flow.request.port
        env = Env(self.settings, self.settings.profile_for(host, port), self.shared, state.label, f"{host.lower()}:{port}")
        # Read before any redaction: the pace key needs the API key.
        request = client_request(flow, self.settings.max_body_bytes, state.label)
        if flow.request.stream:
            self.unredacted.redact(flow)  # streamed (stream_large_bodies): its headers went upstream first
        endpoint = state.route.endpoint
        exchange = state.exchange = guarded(state.label, "reading the request", Exchange(env), lambda: endpoint.open(request, env))
        if exchange.answer is not None:
            state.mode = Mode.LOCAL
            answer(flow, exchange.answer)
            self.unredacted.redact(flow)  # nothing goes upstream
            return None
        if exchange.forward is not None:
            if exchange.forward.body is not None and request.body is not None and self.settings.keep_bytes:
                state.request_original = request.body[: self.settings.keep_bytes]
            forward(flow, exchange.forward)
            exchange.forward = None  # applied (and it may hold a key header, as the Messages bridge's does)
        return self.pace.admit(flow, state, exchange, request, self.unredacted)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        response = flow.response
        if retry.is_retry(flow):
            self.unredacted.redact(flow)  # the addon's own retry: sent, so its stored copy need not keep the key either
        if response is None or not flow.live:
            return
        if state is None:
            stream_through(flow)  # untargeted: event streams pass as they come
            return
        self.pace.replied(flow, state)
        self.retrier.keep_keys(flow, state)
        self.unredacted.redact(flow)  # the request has gone upstream: the stored copy need not keep the key
        close_delimit(flow)
        if state.exchange is None or state.mode is Mode.LOCAL:
            stream_through(flow)
            return
        reply = head(flow)
        if not reply.has_body:
            return  # PASS: a reply to HEAD, a 204 or 304 (a body written after their headers would be
            # read as the start of the connection's next response)
        exchange = state.exchange
        transducer = guarded(state.label, "on the reply's headers", STREAM_THROUGH, lambda: exchange.stream(reply))
        if isinstance(transducer, Unchanged):
            stream_through(flow)
            return  # PASS
        if transducer is None:
            state.mode = self.whole_reply_headers(flow, state)
            return
        settings = self.settings
        state.rewriter = through_transducer(flow, transducer, settings.max_event_bytes, settings.keep_bytes, state.label)
        state.mode = Mode.STREAM if state.rewriter is not None else Mode.PASS  # PASS: an encoding not decoded here

    def whole_reply_headers(self, flow: http.HTTPFlow, state: FlowState) -> Mode:
        """A reply the exchange reads whole. mitmproxy streams it on its own when it is larger than
        `stream_large_bodies` (it decided before this hook; for a body of unknown length it would
        decide later, with no hook): the addon then collects it itself, within its cap."""
        response = flow.response
        assert response is not None and state.exchange is not None
        if state.exchange.passes(head(flow)):
            stream_through(flow)  # a stream the exchange leaves alone
            return Mode.PASS
        unknown_length = "content-length" not in response.headers
        if response.stream or (getattr(ctx.options, "stream_large_bodies", None) and unknown_length):
            state.collected = Collected(flow, state.exchange, self.settings.max_body_bytes, state.label)
            open_length(flow)
            response.stream = state.collected.collect
            return Mode.COLLECT
        return Mode.WHOLE

    def response(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        state = state_of(flow)
        if state is None or flow.response is None or not flow.live:
            return None
        waiting = self.settle(flow, state)
        if waiting is None:
            detach(flow)
        return waiting

    def settle(self, flow: http.HTTPFlow, state: FlowState) -> Coroutine[Any, Any, None] | None:
        """Records the reply, or sends the exchange's rewrite of a whole one (or a retry)."""
        response = flow.response
        assert response is not None
        sent = self.retrier.take_keys(state)  # for a retry, never kept past this hook
        exchange = state.exchange
        if exchange is None:
            return None
        keep = self.settings.keep_bytes
        mode = state.mode
        if mode is Mode.STREAM or mode is Mode.LOCAL:
            record(flow, state, keep)
            return None
        if mode is Mode.COLLECT:
            assert state.collected is not None
            if state.collected.result is not None or exchange.repairs:
                record(flow, state, keep)
            return None
        if mode is Mode.PASS or response.stream:
            if mode is Mode.WHOLE:  # mitmproxy switched to streaming it after its headers
                log.warning(
                    "%s %s: mitmproxy streamed the reply itself (stream_large_bodies); passed through unchanged",
                    state.label,
                    response.status_code,
                )
            if exchange.repairs:
                record(flow, state, keep)  # the request's repairs
            return None
        body, result = rewrite(flow, exchange, response.raw_content or b"", self.settings.max_body_bytes, state.label)
        if body is None:
            return None
        if (change := exchange.take_retry()) is not None:
            return self.retrier.send(flow, state, change, body, result, sent, self.settings)
        send_whole(flow, state, body, result, self.settings.keep_bytes)
        return None

    def error(self, flow: http.HTTPFlow) -> None:
        # A client or upstream went away (mid-stream, too), or the upstream could not be
        # reached: no response hook will come.
        if retry.is_retry(flow):
            self.unredacted.redact(flow)
        state = state_of(flow)
        if state is None:
            return
        self.pace.release(state)
        self.unredacted.redact(flow)
        why = flow.error.msg if flow.error else "error"
        if state.mode is Mode.STREAM and flow.response is not None:
            record(flow, state, self.settings.keep_bytes, ended=why)
        elif state.mode is Mode.COLLECT:
            log.warning("%s: the reply broke off before its end (%s); the client got none of its body", state.label, why)
        elif flow.response is None:
            log.warning("%s: ended before any reply (%s)", state.label, why)
        detach(flow)

    def done(self) -> None:
        # mitmproxy's save addon (-w) writes the flows still in flight after this hook. It also
        # runs when the script is unloaded or reloaded: the flows still waiting are then sent
        # later, with their keys, so they are left to the next instance to redact.
        if shutting_down(self):
            self.unredacted.redact_all()
        else:
            self.unredacted.leave()


def shutting_down(addon: Normalize) -> bool:
    """mitmproxy is stopping (not just unloading the addon: it removes an addon from its
    table before that addon's done hook runs)."""
    master = ctx.master
    return master.should_exit.is_set() or master.addons.get("normalize") is addon


def starting() -> bool:
    """mitmproxy is still starting up (it has not run its running hook yet)."""
    loader = ctx.master.addons.get("scriptloader")
    return not getattr(loader, "is_running", False)
