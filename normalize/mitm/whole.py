"""Whole (not streamed) replies of targeted flows: read within the caps, handed to the exchange.

Contract: `rewrite(flow, exchange, raw, cap, label)` reads a whole reply (decoded within
`cap`) and hands it to the exchange, never raising; `send_whole(flow, state, body, result,
keep)` puts what the exchange made of it on the flow and records it.

`Collected` is for a whole reply that mitmproxy streams because of its
`stream_large_bodies` option: its `collect` is the `response.stream` callable.
It holds the body (up to `cap` bytes as sent; past that, what it held and the
rest pass through as they come) and, at the end, sends the exchange's rewrite
of it, or the body as it came. The headers went out before the body, so the
upstream's status code and content-type stay (a rewrite that would change them
is logged); the length is left open (`open_length`) and the content-encoding
is kept: a rewritten body is encoded again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mitmproxy import http

from ..endpoints.base import Exchange, Reply, Unchanged
from ..wire.body import DecodeError, decode_whole, encode_whole
from .apply import guarded, head, replace
from .record import record

if TYPE_CHECKING:
    from .state import FlowState

log = logging.getLogger("normalize")


def rewrite(flow: http.HTTPFlow, exchange: Exchange, raw: bytes, cap: int, label: str) -> tuple[bytes | None, Reply | Unchanged | None]:
    """(the body as decoded, what the exchange made of it); (None, None) when it could not be read."""
    assert flow.response is not None
    response = flow.response
    try:
        body = decode_whole(raw, response.headers.get("content-encoding", ""), cap)
    except DecodeError as e:
        log.warning("%s %s: the reply body was not read (%s); passing it through unchanged", label, response.status_code, e)
        return None, None
    reply = head(flow)
    return body, guarded(label, "on the reply", None, lambda: exchange.whole(reply, body))


def send_whole(flow: http.HTTPFlow, state: FlowState, body: bytes, result: Reply | Unchanged | None, keep: int) -> None:
    """Sends the exchange's rewrite of a whole reply (`body`, as the upstream sent it)."""
    assert flow.response is not None and state.exchange is not None
    if isinstance(result, Reply):
        replace(flow.response, result)
    if result is not None or state.exchange.repairs:
        record(flow, state, keep, original=body)


class Collected:
    """A whole reply collected through `response.stream` (see the module's docstring)."""

    def __init__(self, flow: http.HTTPFlow, exchange: Exchange, cap: int, label: str) -> None:
        self.flow = flow
        self.exchange = exchange
        self.cap = cap
        self.label = label
        self.held: list[bytes] = []
        self.size = 0
        self.passing = False  # past the cap: everything passes as it comes
        # For the response hook: the body the exchange saw, its answer, what was sent.
        self.original: bytes | None = None
        self.result: Reply | Unchanged | None = None
        self.sent = b""

    def collect(self, data: bytes) -> bytes | list[bytes]:
        if self.passing:
            return data or []
        if data:
            self.size += len(data)
            self.held.append(data)
            if self.size <= self.cap:
                return []
            log.warning(
                "%s: the reply grew past normalize_max_body_bytes (%d) and was not read; passing it through unchanged", self.label, self.cap
            )
            self.passing = True
            held, self.held = self.held, []
            return held
        raw, self.held = b"".join(self.held), []
        try:
            self.sent = self.finish(raw)
        except Exception:
            log.exception("%s: could not rewrite the reply; passing it through unchanged", self.label)
            self.sent = raw
        return self.sent or []

    def finish(self, raw: bytes) -> bytes:
        response = self.flow.response
        assert response is not None
        self.original, self.result = rewrite(self.flow, self.exchange, raw, self.cap, self.label)
        if not isinstance(self.result, Reply):
            return raw
        reply = self.result
        if reply.status != response.status_code or reply.content_type != response.headers.get("content-type"):
            log.warning(
                "%s: the reply's headers were sent before its body (stream_large_bodies), so its status %d and "
                "content-type %r stay; the addon's reply would have had %d and %r",
                self.label,
                response.status_code,
                response.headers.get("content-type", ""),
                reply.status,
                reply.content_type,
            )
        return encode_whole(reply.body, response.headers.get("content-encoding", ""))
