"""Sending a repaired request once more, in place of a rejection the client has not seen yet.

Contract: the hooks delegate to `Retrier`: `keep_keys(flow, state)` at the
headers of a rejection notes the key headers and path as sent (the stored copy
is redacted right after), `take_keys(state)` takes them back at the response
hook (never kept past it), and `retrier.send(flow, state, change, body,
result, sent, settings)` is the coroutine the response hook returns: it waits
for the key's turn under normalize_rate_limit, sends the repaired request once
(unless the client has gone) and hands the client the exchange's rewrite of
its reply, or of the first rejection if anything on the way fails; the flow's
state is detached once it is done.

`await resend(flow, change, timeout)` sends a copy of `flow`'s
request, changed as `change` says, to the same upstream, and returns the
upstream's response, or None when none came (an error, or `timeout`). The
caller uses it only from the `response` hook of a reply that was not
streamed: mitmproxy has read the whole rejection and sent the client
nothing yet, so the client gets the retry's reply instead, as if it had
been the first.

How: the copy goes through mitmproxy's own client-replay handler
(`mitmproxy.addons.clientplayback.ReplayHandler`, the one `replay.client`
uses), so it is sent exactly as mitmproxy sends a request: the same
connection options, TLS settings, upstream proxy mode, and every addon sees
it as a replayed flow (mitmweb lists it, `-w` saves it). It is not put on
`replay.client`'s queue, which replays one flow at a time and would make one
client's retry wait for another's. The copy is marked (`is_retry`) so this
addon's hooks leave it alone: its body is already rewritten. Its stored
request headers are redacted once it is done, like any flow's.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx, http
from mitmproxy.addons.clientplayback import ReplayHandler

from ..endpoints.base import Forward, Head, Reply, Unchanged
from ..settings import Settings
from ..wire.body import DecodeError
from .apply import guarded, head, read_body
from .pace import Pace
from .record import Unredacted, secrets
from .state import FlowState, Keys, detach
from .streaming import close_delimit
from .whole import send_whole

log = logging.getLogger("normalize")

_MARK = "_normalize_retry"
# A retried request that is not answered within this long gets the first rejection.
RETRY_TIMEOUT = 600.0


class Retrier:
    def __init__(self, pace: Pace, unredacted: Unredacted) -> None:
        self.pace = pace
        self.unredacted = unredacted

    @staticmethod
    def keep_keys(flow: http.HTTPFlow, state: FlowState) -> None:
        """At the headers of an error, before the stored copy is redacted: a retry must send the
        key headers and path as the client did."""
        assert flow.response is not None
        if flow.response.status_code >= 400:
            state.keys, state.path = secrets(flow), flow.request.path

    @staticmethod
    def take_keys(state: FlowState) -> tuple[Keys, str]:
        sent = state.keys, state.path
        state.keys, state.path = (), ""
        return sent

    async def send(
        self,
        flow: http.HTTPFlow,
        state: FlowState,
        change: Forward,
        body: bytes,
        result: Reply | Unchanged | None,
        sent: tuple[Keys, str],
        settings: Settings,
    ) -> None:
        """Sends the exchange's repaired request once in place of the rejection (which the client
        has not seen: the reply is not streamed); the client gets the reply to that, if one comes,
        and the rejection if anything in the way fails."""
        exchange = state.exchange
        assert exchange is not None
        try:
            if (retried := await self.resend(flow, state, change, sent, settings.max_body_bytes)) is not None:
                response, body = retried
                retried_head = Head(response.status_code, response.headers.get("content-type", ""), flow.request.method)
                result = guarded(state.label, "on the retry's reply", None, lambda: exchange.whole(retried_head, body))
                flow.response = response
                close_delimit(flow)  # as responseheaders does for any reply (the retry's never went through it)
        except Exception:
            log.exception("%s: the retry failed; the client gets the rejection", state.label)
        try:
            send_whole(flow, state, body, result, settings.keep_bytes)
        finally:
            detach(flow)

    async def resend(
        self, flow: http.HTTPFlow, state: FlowState, change: Forward, sent: tuple[Keys, str], cap: int
    ) -> tuple[http.Response, bytes] | None:
        """The reply to the repaired request, read within `cap`; None when there is none to give."""

        def gone() -> bool:
            return flow.client_conn.timestamp_end is not None

        if gone():
            return None  # no client to send a reply to: no retry
        if self.pace.on:
            if await self.pace.hold(state.pace_key, gone) is None:
                return None  # waiting for the rate limit that long: the client gets the rejection
            if gone():
                return None  # let go without a turn
        log.info("%s %s: rejected; sending it once more, repaired", state.label, head(flow).status)
        keys, path = sent
        try:
            response = await resend(flow, change, RETRY_TIMEOUT, state.label, keys, self.unredacted, path)
        finally:
            if self.pace.on:
                self.pace.arrived(state.pace_key)  # however the retry ended, its slot is not in flight
        if response is None or gone():
            return None
        try:
            body = read_body(response, cap)
        except DecodeError as e:
            log.warning("%s: the retry's reply was not read (%s); the client gets the rejection", state.label, e)
            return None
        assert state.exchange is not None
        state.exchange.retried()
        return response, body


def is_retry(flow: http.HTTPFlow) -> bool:
    return getattr(flow, _MARK, False)


async def resend(
    flow: http.HTTPFlow,
    change: Forward,
    timeout: float,
    label: str,
    keys: Keys,
    unredacted: Unredacted,
    path: str = "",
) -> http.Response | None:
    """`keys`: the API key headers as the client sent them, and `path` its path ("": as the
    flow has it), whose query may hold a key (the flow's own are redacted by now);
    `unredacted` holds the copy from its request headers on and takes the keys off it once
    it is done."""
    copy = flow.copy()
    setattr(copy, _MARK, True)
    copy.is_replay = "request"
    copy.response = None
    copy.error = None
    if flow.response is not None:
        copy.request.http_version = flow.response.http_version  # what the upstream spoke
    for name, values in keys:
        copy.request.headers.set_all(name, values)
    if path:
        copy.request.path = path
    if change.body is not None:
        copy.request.content = change.body
    handler = ReplayHandler(copy, ctx.options)
    try:
        await asyncio.wait_for(handler.replay(), timeout)
    except TimeoutError:
        log.warning("%s: the retry got no reply within %.0f s; the client gets the rejection", label, timeout)
        for transport in handler.transports.values():
            if transport.handler:
                transport.handler.cancel()
        return None
    finally:
        unredacted.redact(copy)
    if copy.response is None:
        log.warning("%s: the retry failed (%s); the client gets the rejection", label, copy.error.msg if copy.error else "no reply")
    elif copy.response.raw_content is None:
        # mitmproxy streamed the reply (past stream_large_bodies) into the replay's mock client,
        # which drops it: there is no body to hand the client.
        log.warning(
            "%s: the retry's reply was streamed by mitmproxy (stream_large_bodies) and not kept; the client gets the rejection", label
        )
        return None
    return copy.response
