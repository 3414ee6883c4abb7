"""A streamed response body through an endpoint's transducer: the flow's `response.stream` callable.

Contract: `through_transducer(flow, transducer, max_event_bytes, keep_bytes,
label)` puts a reply's body through the transducer: it sets the response's
headers for a stream and a `StreamRewriter`'s `rewrite` as `response.stream`,
and returns the rewriter (None, and the body passes as it came, for a
content-encoding not decoded here). `StreamRewriter.rewrite` is what mitmproxy calls once per upstream
data event, then once with b"" at the end. It decodes a compressed body (capped
per call), feeds the transducer, keeps capped copies of both sides for
inspection, and never raises: it is the one guard around the transducer (an
exception there would be a hole in the client's stream, or on the last call a
response that never ends), so after anything raises it logs once and passes the
rest through as it came. Mid-body it never returns b"" (that would end a
chunked body): "nothing yet" is an empty list. (whole.py has the callable for
a whole reply that mitmproxy streams.) `set_stream_headers`, `open_length` and `close_delimit` make the response
headers fit a body whose length changes (chunked on HTTP/1.1, ended by closing
the connection on HTTP/1.0, framed by HTTP/2 itself).
"""

from __future__ import annotations

import logging
import time

from mitmproxy import http

from ..endpoints.base import Transducer
from ..views.capped import CappedBuffer
from ..wire.body import ENCODINGS, DecodeError, Decoder, encoding_of

log = logging.getLogger("normalize")

SSE = "text/event-stream; charset=utf-8"


def through_transducer(
    flow: http.HTTPFlow, transducer: Transducer, max_event_bytes: int, keep_bytes: int, label: str
) -> StreamRewriter | None:
    response = flow.response
    assert response is not None
    decoder = None
    encoding = encoding_of(response.headers.get("content-encoding", ""))
    if encoding:
        if encoding not in ENCODINGS:
            log.warning(
                "%s: upstream used content-encoding %r, which is not decoded here; passing the stream through unchanged", label, encoding
            )
            response.stream = True
            return None
        decoder = Decoder(encoding, max_event_bytes)
        del response.headers["content-encoding"]
    set_stream_headers(flow)
    rewriter = StreamRewriter(transducer, decoder, keep_bytes, label)
    response.stream = rewriter.rewrite  # a bound method: cheaper to call than __call__
    return rewriter


class StreamRewriter:
    def __init__(self, transducer: Transducer, decoder: Decoder | None, keep_bytes: int, label: str) -> None:
        self.transducer = transducer
        self.feed = transducer.feed
        self.decoder = decoder
        self.label = label
        self.started = time.monotonic()
        self.first_byte: float | None = None
        # What the upstream sent and what the client got, for inspection (capped).
        self.original = CappedBuffer(keep_bytes)
        self.rewritten = CappedBuffer(keep_bytes)
        self.keep = keep_bytes > 0
        self.bytes_in = self.bytes_out = 0
        self.failure: str | None = None  # why the rest of the body could not be read
        self.broken = False  # the rewrite raised: the rest passes as it came
        self.stopped = False  # either of those: every later call takes `after_stop`

    def rewrite(self, data: bytes) -> bytes | list[bytes]:
        # Called for every upstream event: kept lean, as it runs on the event loop.
        if self.stopped:
            return self.after_stop(data)
        try:
            if data:
                if self.decoder is not None:
                    data = self.decoder.feed(data)
                out = self.feed(data)
            else:
                if self.decoder is not None:
                    data = self.decoder.close()
                out = self.transducer.feed(data) + self.transducer.close()
        except DecodeError as e:
            # The decoder raised before `data` was replaced: b"" still means the last call.
            out = self.undecodable(str(e), last=not data)
            data = b""
        except Exception:
            # mitmproxy would drop this piece (a hole in the stream) or, on the last call, never
            # end the response: the rest passes as it came instead.
            log.exception("%s: the stream rewrite failed; passing the rest of the stream through unchanged", self.label)
            self.stopped = self.broken = True
            out = data  # decoded, when the decoder was not what failed
        return self.sent(data, out)

    def sent(self, data: bytes, out: bytes) -> bytes | list[bytes]:
        self.bytes_in += len(data)
        self.bytes_out += len(out)
        if self.keep:  # until both copies are full
            self.keep = self.original.append(data) | self.rewritten.append(out)
        if not out:
            return []
        if self.first_byte is None:
            self.first_byte = time.monotonic()
        return out

    def undecodable(self, why: str, last: bool) -> bytes:
        """The rest of the body cannot be decoded: the transducer tells the client and ends
        (on the last call); what comes after is dropped."""
        self.failure = why
        self.stopped = True
        try:
            out = self.transducer.fail(why)
            return out + self.transducer.close() if last else out
        except Exception:
            log.exception("%s: the stream rewrite failed while ending the stream", self.label)
            return b""

    def after_stop(self, data: bytes) -> bytes | list[bytes]:
        """Every call after a failure: the rest passed as it came (decoded) after the rewrite
        failed, or dropped after the body could not be decoded (the transducer ends it)."""
        if not self.broken:
            if data:
                return []
            try:
                return self.sent(b"", self.transducer.close())
            except Exception:
                log.exception("%s: the stream rewrite failed while ending the stream", self.label)
                return []
        try:
            if self.decoder is not None:
                data = self.decoder.feed(data) if data else self.decoder.close()
        except DecodeError as e:
            if self.failure is None:
                log.warning("%s: the rest of the stream could not be decoded (%s); dropped", self.label, e)
            self.failure = str(e)
            data = b""
        return self.sent(data, data)

    @property
    def ttfb_ms(self) -> float | None:
        return None if self.first_byte is None else round((self.first_byte - self.started) * 1000, 1)


def set_stream_headers(flow: http.HTTPFlow) -> None:
    assert flow.response is not None
    headers = flow.response.headers
    headers["content-type"] = SSE
    headers["cache-control"] = "no-cache"
    headers["x-accel-buffering"] = "no"  # an nginx in front must not buffer the stream
    open_length(flow)


def open_length(flow: http.HTTPFlow) -> None:
    """Headers for a body whose length is not known when they go out."""
    assert flow.response is not None
    headers = flow.response.headers
    headers.pop("content-length", None)
    if flow.request.http_version == "HTTP/1.1":
        # Chunked, which keeps the connection reusable. (HTTP/2 peers frame it themselves.)
        headers["transfer-encoding"] = "chunked"
    else:
        close_delimit(flow)


def close_delimit(flow: http.HTTPFlow) -> None:
    """An HTTP/1.0 client must not get a chunked body (RFC 9112, 6.1): without a length,
    the body ends when the connection closes."""
    assert flow.response is not None
    if flow.request.http_version not in ("HTTP/1.0", "HTTP/0.9"):
        return
    headers = flow.response.headers
    headers.pop("transfer-encoding", None)
    if "content-length" not in headers:
        headers["connection"] = "close"
