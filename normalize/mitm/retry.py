"""Sending a repaired request once more, in place of a rejection the client has not seen yet.

Contract: `await resend(flow, change, timeout)` sends a copy of `flow`'s
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

from ..endpoints.base import Forward
from .record import Unredacted

log = logging.getLogger("normalize")

_MARK = "_normalize_retry"


def is_retry(flow: http.HTTPFlow) -> bool:
    return getattr(flow, _MARK, False)


async def resend(
    flow: http.HTTPFlow,
    change: Forward,
    timeout: float,
    label: str,
    keys: tuple[tuple[str, list[str]], ...],
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
