"""mitmproxy addon: OpenAI-compatible upstreams, answered in OpenAI's exact shape.

Run it with `mitmdump -s addon.py` (or mitmweb). This file is the glue only:
options, which flows to touch, header edits, wiring the stream rewrite, and a
summary on the flow. Everything about bytes, SSE and JSON lives in
`normalize/`, which never imports mitmproxy.
"""

from __future__ import annotations

import collections.abc
import json
import logging
import time
import zlib
from typing import Any

from mitmproxy import ctx, exceptions, http

from normalize import ChatStream, Options

log = logging.getLogger("normalize")

DEFAULT_HOSTS = ["integrate.api.nvidia.com"]
SSE = "text/event-stream; charset=utf-8"


def parse_hosts(entries: collections.abc.Iterable[str]) -> frozenset[tuple[str, int | None]]:
    """`host` or `host:port` (IPv6 as `[::1]:port`) -> {(host, port or None)}.

    An entry may also hold several, separated by commas (`--set normalize_hosts=a,b`).
    """
    hosts = set()
    for entry in (part for item in entries for part in (item.split(",") if "," in item else [item])):
        text = entry.strip().lower()
        if not text:
            raise ValueError("empty host")
        port: int | None = None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"{entry!r} is not host or host:port")
                port = _port(entry, rest[1:])
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            port = _port(entry, port_text)
        else:
            host = text  # a bare name, or a bare IPv6 address
        if not host or "/" in host:
            raise ValueError(f"{entry!r} is not host or host:port")
        hosts.add((host, port))
    return frozenset(hosts)


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r} has no valid port")
    return int(text)


def is_chat_completions(path: str) -> bool:
    return path.partition("?")[0].rstrip("/").endswith("/chat/completions")


def request_json(flow: http.HTTPFlow) -> dict[str, Any]:
    """The request body as a JSON object, or {} (never logged: it may hold secrets)."""
    try:
        body = json.loads(flow.request.get_content(strict=False) or b"")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class StreamRewriter:
    """A flow's `response.stream` callable: decodes, rewrites, and never raises.

    mitmproxy calls it once per upstream data event, then once with b"" at the
    end. Mid-body it must never return b"" (that would end a chunked body), so
    "nothing yet" is an empty list.
    """

    def __init__(self, stream: ChatStream, decoder: Any = None) -> None:
        self.stream = stream
        self.decoder = decoder
        self.started = time.monotonic()
        self.first_byte: float | None = None

    def __call__(self, data: bytes) -> bytes | list[bytes]:
        try:
            if data:
                out = self.stream.feed(self._decode(data))
            else:
                out = self.stream.feed(self._flush_decoder()) + self.stream.close()
        except Exception:
            # The core already falls back to raw itself; this catches the decoder.
            log.exception("%s: could not decode the upstream body; passing it through unchanged", self.stream.options.label)
            self.stream.raw = True
            self.decoder = None
            out = data
        if out and self.first_byte is None:
            self.first_byte = time.monotonic()
        return out if out else []

    def _decode(self, data: bytes) -> bytes:
        return self.decoder.decompress(data) if self.decoder else data

    def _flush_decoder(self) -> bytes:
        return self.decoder.flush() if self.decoder else b""


def decoder_for(content_encoding: str) -> Any:
    """A zlib decoder for a body the upstream compressed although asked not to."""
    encoding = content_encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib-wrapped or gzip; auto-detected
    raise ValueError(encoding)


class Normalize:
    def __init__(self) -> None:
        self.hosts: frozenset[tuple[str, int | None]] = parse_hosts(DEFAULT_HOSTS)
        self.rewriters: dict[str, StreamRewriter] = {}

    def load(self, loader) -> None:
        loader.add_option(
            "normalize_hosts",
            collections.abc.Sequence[str],
            DEFAULT_HOSTS,
            "Hosts whose OpenAI-compatible traffic is rewritten, as host or host:port; "
            "all other traffic passes untouched.",
        )

    def configure(self, updated: set[str]) -> None:
        if "normalize_hosts" in updated:
            try:
                self.hosts = parse_hosts(ctx.options.normalize_hosts)
            except ValueError as e:
                raise exceptions.OptionsError(f"Cannot parse normalize_hosts option: {e}") from e

    def targeted(self, flow: http.HTTPFlow) -> bool:
        host = flow.request.host.lower().strip("[]")
        return (host, None) in self.hosts or (host, flow.request.port) in self.hosts

    # -- hooks ---------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self.targeted(flow) or not is_chat_completions(flow.request.path):
            return
        # Compressed bodies would reach the stream rewrite compressed.
        flow.request.headers["accept-encoding"] = "identity"

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or not self.targeted(flow) or not is_chat_completions(flow.request.path):
            return
        if flow.request.method == "HEAD" or not 200 <= response.status_code < 300 or response.status_code == 204:
            return  # errors are whole bodies (NIM sends problem+json as `data:{...}`), handled in `response`
        content_type = response.headers.get("content-type", "").lower()
        body = request_json(flow)
        if "text/event-stream" not in content_type:
            # exo sends streams as application/json: trust the request instead.
            if body.get("stream") is not True:
                return
            log.info("%s: stream sent as %r; answering as text/event-stream", label(flow), content_type or "no content-type")
        label_ = label(flow)
        decoder = None
        encoding = response.headers.get("content-encoding", "")
        if encoding.strip().lower() not in ("", "identity"):
            try:
                decoder = decoder_for(encoding)
            except ValueError:
                log.warning("%s: upstream used content-encoding %r, which is not decoded here; passing the stream through unchanged", label_, encoding)
                response.stream = True
                return
            del response.headers["content-encoding"]
        model = body.get("model")
        stream = ChatStream(Options(model=model if isinstance(model, str) else None, label=label_))
        if "text/event-stream" not in content_type:
            stream.note("stream_sent_as_json")
        self.set_stream_headers(flow)
        rewriter = StreamRewriter(stream, decoder)
        self.rewriters[flow.id] = rewriter
        response.stream = rewriter

    @staticmethod
    def set_stream_headers(flow: http.HTTPFlow) -> None:
        headers = flow.response.headers
        headers["content-type"] = SSE
        headers.pop("content-length", None)
        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"  # an nginx in front must not buffer the stream
        if flow.request.http_version == "HTTP/1.1":
            # The body length changes, so it cannot be announced: chunk it,
            # which keeps the connection reusable. (HTTP/2 peers frame it themselves.)
            headers["transfer-encoding"] = "chunked"

    def response(self, flow: http.HTTPFlow) -> None:
        rewriter = self.rewriters.pop(flow.id, None)
        if rewriter is None:
            return
        stream = rewriter.stream
        repairs = stream.repairs
        summary = ", ".join(f"{name} x{n}" for name, n in sorted(repairs.items())) or "nothing to repair"
        ttfb = "" if rewriter.first_byte is None else f", first byte after {(rewriter.first_byte - rewriter.started) * 1000:.1f} ms"
        log.info(
            "normalized %s %s: %d events%s; %s%s",
            label(flow),
            flow.response.status_code if flow.response else "-",
            stream.events,
            " (passed through raw after a failure)" if stream.raw else "",
            summary,
            ttfb,
        )

    def error(self, flow: http.HTTPFlow) -> None:
        # A client or upstream went away mid-stream: no response hook will come.
        self.rewriters.pop(flow.id, None)


def label(flow: http.HTTPFlow) -> str:
    """How a flow is named in the log: method, host and path, never headers or bodies."""
    return f"{flow.request.method} {flow.request.pretty_host}{flow.request.path.partition('?')[0]}"


addons = [Normalize()]
