"""What the addon leaves on a flow it looked after, and what it takes off.

Contract: `record(...)` writes what was repaired where people look: the flow's
comment (the summary line), `flow.metadata["normalize"]` (a counter per
repair, the event count, time to first byte, and capped copies of the
upstream's original body and of the client's request as it was sent before
the addon rewrote it), the rewritten stream as the response body (capped;
mitmproxy keeps none for a streamed body), and one log line; a stream the
client or the upstream abandoned is recorded the same way, saying so.
`redact(flow)` replaces API keys in the stored request headers and
`redact_query(flow)` in its query (`?key=`), and `Unredacted` knows which flows
still hold them. Neither ever writes a request header or
body to the log.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

from mitmproxy import http

from ..keys import KEY_HEADERS, KEY_QUERY
from ..views.capped import CappedBuffer
from ..views.summary import describe

if TYPE_CHECKING:
    from .state import FlowState

log = logging.getLogger("normalize")

REDACTED = "[redacted]"


def label(flow: http.HTTPFlow) -> str:
    """How a flow is named in the log: method, host and path, never headers or bodies."""
    return f"{flow.request.method} {flow.request.pretty_host}{flow.request.path.partition('?')[0]}"


def record(flow: http.HTTPFlow, state: FlowState, keep_bytes: int, original: bytes | None = None, ended: str | None = None) -> None:
    """`original` is the upstream's whole body before the exchange rewrote it; `ended` says why
    a stream stopped before its end (the client or the upstream went away)."""
    assert flow.response is not None and state.exchange is not None
    exchange, rewriter, collected = state.exchange, state.rewriter, state.collected
    transducer = rewriter.transducer if rewriter else None
    repairs = exchange.repairs + transducer.repairs if transducer else exchange.repairs
    events = transducer.events if transducer else None
    summary = describe(repairs, events, exchange.verb)
    info: dict[str, Any] = {"repairs": dict(sorted(repairs.items())), "summary": summary}
    if state.request_original is not None:
        info["request_original"] = state.request_original
    if rewriter is not None and transducer is not None:
        info.update(
            events=events,
            raw_passthrough=transducer.raw or rewriter.broken,
            ttfb_ms=rewriter.ttfb_ms,
            bytes_in=rewriter.bytes_in,
            bytes_out=rewriter.bytes_out,
        )
        if keep_bytes:
            original = rewriter.original.take()
            info.update(
                original=original,
                original_dropped=rewriter.bytes_in - len(original),
                body_dropped=rewriter.bytes_out - len(rewriter.rewritten),
            )
        # mitmproxy keeps no streamed body; the rewritten one (capped) is what mitmweb shows.
        flow.response.raw_content = rewriter.rewritten.take()
    elif collected is not None:
        flow.response.raw_content = collected.sent[:keep_bytes]  # what was sent (capped), as for streams
        original = collected.original
    if rewriter is None and original is not None and keep_bytes and original != flow.response.raw_content:
        kept = CappedBuffer(keep_bytes)
        kept.append(original)
        info.update(original=kept.value, original_dropped=kept.dropped)
    flow.metadata["normalize"] = info
    flow.comment = summary
    ttfb = "" if rewriter is None or rewriter.ttfb_ms is None else f"; first byte after {rewriter.ttfb_ms} ms"
    raw = " (passed through raw after a failure)" if rewriter is not None and (rewriter.broken or rewriter.transducer.raw) else ""
    if rewriter is not None and rewriter.failure is not None:
        info["failure"] = rewriter.failure
        raw = f" (ended with an error: the rest of the upstream's body could not be read: {rewriter.failure})"
    if ended is not None:
        info["ended_early"] = ended
        flow.comment = f"{summary} (ended early: {ended})"
        raw += f"; stream ended early after {events} events ({ended})" if events is not None else f"; ended early ({ended})"
    (log.debug if exchange.quiet else log.info)("%s %s: %s%s%s", state.label, flow.response.status_code, summary, raw, ttfb)


def secrets(flow: http.HTTPFlow) -> tuple[tuple[str, list[str]], ...]:
    """The API key headers as sent, for a retry that must carry them after `redact` (kept on the
    flow's state, in memory, until the reply is handled: never logged or saved)."""
    headers = flow.request.headers
    return tuple((name, values) for name in KEY_HEADERS if (values := headers.get_all(name)))


class Unredacted:
    """The flows whose stored request still holds an API key, and the one way keys are taken
    off a flow (`enabled`: normalize_redact_keys; off, it does nothing).

    mitmproxy sends a request's headers from the flow itself, after the last hook
    that sees the request, so the key stays on the flow until the request has
    gone upstream. `hold(flow)` notes a flow; `redact(flow)` takes the keys off
    it (at the response headers, an error, or a local answer); `redact_all()`
    takes them off every flow still waiting, for the addon's done hook at
    shutdown, which mitmproxy runs before its save addon writes the flows in
    flight (`-w`); `leave()` hands them to the next instance when the addon is
    unloaded while mitmproxy runs on.
    Weak references: a flow mitmproxy forgets is forgotten here too."""

    def __init__(self) -> None:
        self.enabled = True  # normalize_redact_keys
        self.waiting: weakref.WeakSet[http.HTTPFlow] = weakref.WeakSet(_LEFT)  # from an unloaded instance
        _LEFT.clear()

    def hold(self, flow: http.HTTPFlow) -> None:
        if self.enabled:
            self.waiting.add(flow)

    def redact(self, flow: http.HTTPFlow) -> None:
        self.waiting.discard(flow)
        if self.enabled:
            redact(flow)
            redact_query(flow)

    def redact_all(self) -> None:
        for flow in list(self.waiting):
            self.redact(flow)

    def leave(self) -> None:
        """The addon is unloaded (a script reload), mitmproxy runs on: the flows still waiting
        go to the next instance's `Unredacted`, which redacts them as usual."""
        _LEFT.update(self.waiting)
        self.waiting.clear()


# Flows an unloaded instance left, until the next instance takes them (a script reload keeps
# this module: addon.py is loaded again, the package is not).
_LEFT: weakref.WeakSet[http.HTTPFlow] = weakref.WeakSet()


def redact(flow: http.HTTPFlow) -> None:
    headers = flow.request.headers
    for name in KEY_HEADERS:
        values = headers.get_all(name)
        if values:
            headers.set_all(name, [redacted(name, value) for value in values])


def redact_query(flow: http.HTTPFlow) -> None:
    if "?" not in flow.request.path:
        return
    query = flow.request.query
    for name in KEY_QUERY:
        if values := query.get_all(name):
            query.set_all(name, [REDACTED] * len(values))


def redacted(name: str, value: str) -> str:
    """`Bearer [redacted]` keeps the scheme, which helps debugging; the key itself goes."""
    scheme, space, secret = value.partition(" ")
    if name == "authorization" and space and secret:
        return f"{scheme} {REDACTED}"
    return REDACTED
