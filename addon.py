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
from collections import Counter
from typing import Any

from mitmproxy import contentviews, ctx, exceptions, http

from normalize import ChatStream, Options
from normalize.completion import parse_json_body, rewrite_completion
from normalize.config import unix_now
from normalize.errors import error_body, error_object
from normalize.inspect import CappedBuffer, assembled_view, before_after_view, describe, sse_view
from normalize.models import models_list, rewrite_model, rewrite_models
from normalize.request import parse_model_map, rewrite_request
from normalize.stream import dump

log = logging.getLogger("normalize")

DEFAULT_HOSTS = ["integrate.api.nvidia.com"]
# Request headers that carry API keys (OpenAI, Azure, Anthropic-style, Gemini).
SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")
REDACTED = "[redacted]"
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
    """A flow's `response.stream` callable (`rewrite`): decodes, rewrites, and never raises.

    mitmproxy calls it once per upstream data event, then once with b"" at the
    end. Mid-body it must never return b"" (that would end a chunked body), so
    "nothing yet" is an empty list.
    """

    def __init__(self, stream: ChatStream, decoder: Any = None, keep_bytes: int = 0) -> None:
        self.stream = stream
        self.feed = stream.feed
        self.decoder = decoder
        self.started = time.monotonic()
        self.first_byte: float | None = None
        # What the upstream sent and what the client got, for inspection (capped).
        self.original = CappedBuffer(keep_bytes)
        self.rewritten = CappedBuffer(keep_bytes)
        self.keep = keep_bytes > 0
        self.bytes_in = self.bytes_out = 0

    def rewrite(self, data: bytes) -> bytes | list[bytes]:
        # Called for every upstream event: kept lean, as it runs on the event loop.
        try:
            if data:
                if self.decoder is not None:
                    data = self.decoder.decompress(data)
                out = self.feed(data)
            else:
                data = self._flush_decoder()
                out = self.stream.feed(data) + self.stream.close()
        except Exception:
            # The core already falls back to raw itself; this catches the decoder.
            log.exception("%s: could not decode the upstream body; passing it through unchanged", self.stream.options.label)
            self.stream.raw = True
            self.decoder = None
            out = data
        self.bytes_in += len(data)
        self.bytes_out += len(out)
        if self.keep:  # until both copies are full
            self.keep = self.original.append(data) | self.rewritten.append(out)
        if not out:
            return []
        if self.first_byte is None:
            self.first_byte = time.monotonic()
        return out

    @property
    def ttfb_ms(self) -> float | None:
        return None if self.first_byte is None else round((self.first_byte - self.started) * 1000, 1)

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


class FlowState:
    """What the addon remembers of one flow between its hooks; dropped at response or error.

    (A plain class: mitmproxy loads this file as a module that is not in
    sys.modules, where @dataclass cannot resolve its annotations.)
    """

    __slots__ = ("repairs", "stream_requested", "include_usage", "model", "alias", "rewriter", "answered")

    def __init__(self) -> None:
        self.repairs: Counter[str] = Counter()
        self.stream_requested = False  # the request said "stream": true
        self.include_usage = False  # ... and stream_options.include_usage: true
        self.model: str | None = None  # the model sent upstream
        self.alias: str | None = None  # the alias the client asked for, reported back
        self.rewriter: StreamRewriter | None = None
        self.answered = False  # the addon answered this request itself


class Normalize:
    def __init__(self) -> None:
        self.hosts: frozenset[tuple[str, int | None]] = parse_hosts(DEFAULT_HOSTS)
        self.model_map: dict[str, str] = {}
        self.flows: dict[str, FlowState] = {}

    def load(self, loader) -> None:
        loader.add_option(
            "normalize_hosts",
            collections.abc.Sequence[str],
            DEFAULT_HOSTS,
            "Hosts whose OpenAI-compatible traffic is rewritten, as host or host:port; "
            "all other traffic passes untouched.",
        )
        loader.add_option(
            "normalize_model_map",
            collections.abc.Sequence[str],
            [],
            "Model aliases as alias=upstream-model: requests for the alias go to the upstream model, "
            "replies report the alias, and /v1/models lists it.",
        )
        loader.add_option(
            "normalize_models",
            collections.abc.Sequence[str],
            [],
            "Model ids the addon lists itself on /v1/models, without asking the upstream "
            "(for upstreams with no models endpoint; one that answers 404/405 gets the aliases alone).",
        )
        loader.add_option(
            "normalize_drop_params",
            collections.abc.Sequence[str],
            [],
            "Top-level chat request keys removed before the request reaches the upstream "
            "(for upstreams that reject unknown parameters, like NIM).",
        )
        loader.add_option(
            "normalize_keep_bytes",
            int,
            1024 * 1024,
            "Bytes of each rewritten stream and of the upstream's original kept on the flow for "
            "mitmweb and saved flows (each capped separately; 0 keeps nothing).",
        )
        loader.add_option(
            "normalize_max_event_bytes",
            int,
            8 * 1024 * 1024,
            "An upstream event larger than this is not parsed: the rest of that stream passes through unchanged.",
        )
        loader.add_option(
            "normalize_redact_keys",
            bool,
            True,
            "Replace the authorization, api-key, x-api-key and x-goog-api-key request headers of rewritten "
            "flows with [redacted] in the stored copy (mitmweb, saved flows) once the request has gone upstream.",
        )
        loader.add_option(
            "normalize_legacy_params",
            bool,
            True,
            "Send max_completion_tokens as max_tokens and developer messages as system messages, "
            "which older OpenAI-compatible servers understand.",
        )

    def configure(self, updated: set[str]) -> None:
        if "normalize_hosts" in updated:
            try:
                self.hosts = parse_hosts(ctx.options.normalize_hosts)
            except ValueError as e:
                raise exceptions.OptionsError(f"Cannot parse normalize_hosts option: {e}") from e
        for name in ("normalize_keep_bytes", "normalize_max_event_bytes"):
            if name in updated and getattr(ctx.options, name) < 0:
                raise exceptions.OptionsError(f"Cannot parse {name} option: must be 0 or more")
        if "normalize_model_map" in updated:
            try:
                self.model_map = parse_model_map(list(ctx.options.normalize_model_map))
            except ValueError as e:
                raise exceptions.OptionsError(f"Cannot parse normalize_model_map option: {e}") from e

    def targeted(self, flow: http.HTTPFlow) -> bool:
        host = flow.request.host.lower().strip("[]")
        return (host, None) in self.hosts or (host, flow.request.port) in self.hosts

    # -- hooks ---------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self.targeted(flow) or not is_chat_completions(flow.request.path):
            return
        # Compressed bodies would reach the stream rewrite compressed.
        flow.request.headers["accept-encoding"] = "identity"

    def request(self, flow: http.HTTPFlow) -> None:
        if not self.targeted(flow) or flow.response is not None:
            return
        path = flow.request.path.partition("?")[0].rstrip("/")
        method = flow.request.method
        if method == "POST" and path.endswith("/chat/completions"):
            self.flows[flow.id] = self.chat_request(flow)
        elif method == "GET" and path.endswith("/models"):
            if ctx.options.normalize_models:
                state = self.flows[flow.id] = FlowState()
                state.answered = True
                self.answer_models(flow, state, "models_answered_locally")
        elif method == "GET" and "/models/" in path:
            state = FlowState()
            model = path.rsplit("/", 1)[1]
            if model in self.model_map:
                state.alias = model
                state.repairs["model_alias"] += 1
                flow.request.path = flow.request.path.replace("/" + model, "/" + self.model_map[model], 1)
            self.flows[flow.id] = state

    def chat_request(self, flow: http.HTTPFlow) -> FlowState:
        state = FlowState()
        body = request_json(flow)
        if not body:
            return state
        new, repairs, alias = rewrite_request(
            body,
            model_map=self.model_map,
            drop_params=list(ctx.options.normalize_drop_params),
            rename_legacy=ctx.options.normalize_legacy_params,
        )
        if repairs:
            flow.request.content = dump(new)  # also corrects content-length
        options = body.get("stream_options")
        state.repairs.update(repairs)
        state.stream_requested = body.get("stream") is True
        state.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        state.model = new.get("model") if isinstance(new.get("model"), str) else None
        state.alias = alias
        return state

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or not self.targeted(flow):
            return
        self.redact(flow)  # the request has gone upstream: the stored copy need not keep the key
        if not is_chat_completions(flow.request.path):
            return
        if flow.request.method == "HEAD" or not 200 <= response.status_code < 300 or response.status_code == 204:
            return  # errors are whole bodies (NIM sends problem+json as `data:{...}`), handled in `response`
        state = self.flows.setdefault(flow.id, FlowState())
        content_type = response.headers.get("content-type", "").lower()
        if "text/event-stream" not in content_type:
            # exo sends streams as application/json: trust the request instead.
            if not state.stream_requested:
                return
            log.info("%s: stream sent as %r; answering as text/event-stream", label(flow), content_type or "no content-type")
            state.repairs["stream_sent_as_json"] += 1
        decoder = None
        encoding = response.headers.get("content-encoding", "")
        if encoding.strip().lower() not in ("", "identity"):
            try:
                decoder = decoder_for(encoding)
            except ValueError:
                log.warning("%s: upstream used content-encoding %r, which is not decoded here; passing the stream through unchanged", label(flow), encoding)
                response.stream = True
                return
            del response.headers["content-encoding"]
        options = Options(
            model=state.model,
            model_alias=state.alias,
            include_usage=state.include_usage,
            max_event_bytes=ctx.options.normalize_max_event_bytes,
            label=label(flow),
        )
        self.set_stream_headers(flow)
        state.rewriter = StreamRewriter(ChatStream(options), decoder, ctx.options.normalize_keep_bytes)
        response.stream = state.rewriter.rewrite  # a bound method: cheaper to call than __call__

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
        state = self.flows.pop(flow.id, None)
        if flow.response is None or not self.targeted(flow):
            return
        self.redact(flow)
        state = state or FlowState()
        rewriter = state.rewriter
        if rewriter is not None:
            self.record(flow, state.repairs + rewriter.stream.repairs, rewriter)
            return
        if state.answered:
            self.record(flow, state.repairs)
            return
        if flow.response.stream:
            return  # passed through (an encoding we do not decode)
        original = flow.response.get_content(strict=False) or b""
        if self.whole_body(flow, state):
            self.record(flow, state.repairs, original=original)

    def whole_body(self, flow: http.HTTPFlow, state: FlowState) -> bool:
        """Replies that are not streams: errors, chat completions, model lists.
        True when this is a reply the addon looks after (repaired or not)."""
        response = flow.response
        path = flow.request.path.partition("?")[0].rstrip("/")
        status = response.status_code
        if status in (404, 405) and flow.request.method == "GET" and path.endswith("/models"):
            self.answer_models(flow, state, "models_endpoint_missing")
            return True
        body = response.get_content(strict=False) or b""
        if status >= 400:
            error, repair = error_body(status, body, response.headers.get("content-type", ""))
            if repair:
                state.repairs[repair] += 1
                replace_body(response, error)
            return True
        if not 200 <= status < 300 or flow.request.method == "HEAD" or status == 204:
            return bool(state.repairs)
        obj = parse_json_body(body)
        if obj is None:
            return bool(state.repairs)
        if path.endswith("/chat/completions") and (found := error_object(obj)) is not None:
            # An error sent as a success (OpenRouter-style): clients would take it for
            # a reply with no choices. Send it as the error it is.
            error, repair = found
            state.repairs["error_at_status_200"] += 1
            if repair:
                state.repairs[repair] += 1
            response.status_code = error_status(error)
            replace_body(response, error)
            return True
        if path.endswith("/chat/completions"):
            if not isinstance(obj, dict):
                return bool(state.repairs)
            out, repairs = rewrite_completion(obj, model=state.model, model_alias=state.alias)
        elif path.endswith("/models"):
            out, repairs = rewrite_models(obj, now=unix_now(), aliases=self.model_map)
        elif "/models/" in path:
            out, repairs = rewrite_model(obj, now=unix_now(), model_alias=state.alias)
        else:
            return bool(state.repairs)
        if body[:1].isspace() or body.startswith(b"data:"):
            repairs["body_not_bare_json"] += 1  # DeepSeek's blank lines under load, NIM's data:
        if out != obj or repairs:
            state.repairs.update(repairs)
            replace_body(response, out)
        return True

    def answer_models(self, flow: http.HTTPFlow, state: FlowState, repair: str) -> None:
        models = models_list(list(ctx.options.normalize_models), self.model_map, unix_now())
        flow.response = http.Response.make(200, pretty(models), {"content-type": "application/json"})
        state.repairs[repair] += 1

    def record(
        self,
        flow: http.HTTPFlow,
        repairs: Counter[str],
        rewriter: StreamRewriter | None = None,
        original: bytes | None = None,
    ) -> None:
        """What was repaired, on the flow (comment, metadata, kept bodies) and in the log."""
        events = rewriter.stream.events if rewriter else None
        summary = describe(repairs, events)
        info: dict[str, Any] = {"repairs": dict(sorted(repairs.items())), "summary": summary}
        keep = ctx.options.normalize_keep_bytes
        if rewriter is not None:
            info.update(events=events, raw_passthrough=rewriter.stream.raw, ttfb_ms=rewriter.ttfb_ms,
                        bytes_in=rewriter.bytes_in, bytes_out=rewriter.bytes_out)
            if keep:
                original = rewriter.original.take()
                info.update(original=original, original_dropped=rewriter.bytes_in - len(original),
                            body_dropped=rewriter.bytes_out - len(rewriter.rewritten))
            # mitmproxy keeps no streamed body; the rewritten one (capped) is what mitmweb shows.
            flow.response.raw_content = rewriter.rewritten.take()
        elif original is not None and keep and original != flow.response.raw_content:
            kept = CappedBuffer(keep)
            kept.append(original)
            info.update(original=kept.value, original_dropped=kept.dropped)
        flow.metadata["normalize"] = info
        flow.comment = summary
        ttfb = "" if rewriter is None or rewriter.ttfb_ms is None else f"; first byte after {rewriter.ttfb_ms} ms"
        raw = " (passed through raw after a failure)" if rewriter and rewriter.stream.raw else ""
        log.info("%s %s: %s%s%s", label(flow), flow.response.status_code, summary, raw, ttfb)

    def redact(self, flow: http.HTTPFlow) -> None:
        if not ctx.options.normalize_redact_keys:
            return
        headers = flow.request.headers
        for name in SECRET_HEADERS:
            values = headers.get_all(name)
            if values:
                headers.set_all(name, [redacted(name, value) for value in values])

    def error(self, flow: http.HTTPFlow) -> None:
        # A client or upstream went away (mid-stream, too): no response hook will come.
        state = self.flows.pop(flow.id, None)
        if not self.targeted(flow):
            return
        self.redact(flow)
        if state is not None and state.rewriter is not None:
            stream = state.rewriter.stream
            log.info("%s: stream ended early after %d events (%s); %d flows in progress",
                     label(flow), stream.events, flow.error.msg if flow.error else "error", len(self.flows))


def error_status(error: dict[str, Any]) -> int:
    """The status for an error the upstream sent as a success: its own code when that is
    an HTTP error status, else 502 (the upstream failed)."""
    code = error.get("error", {}).get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return code if isinstance(code, int) and 400 <= code <= 599 else 502


def redacted(name: str, value: str) -> str:
    """`Bearer [redacted]` keeps the scheme, which helps debugging; the key itself goes."""
    scheme, space, secret = value.partition(" ")
    if name == "authorization" and space and secret:
        return f"{scheme} {REDACTED}"
    return REDACTED


def replace_body(response: http.Response, obj: Any) -> None:
    response.headers.pop("content-encoding", None)
    response.headers["content-type"] = "application/json"
    response.content = pretty(obj)  # also corrects content-length


def pretty(obj: Any) -> bytes:
    """Whole JSON bodies as OpenAI writes them: 2-space indent, trailing newline."""
    return json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8", "surrogatepass") + b"\n"


def label(flow: http.HTTPFlow) -> str:
    """How a flow is named in the log: method, host and path, never headers or bodies."""
    return f"{flow.request.method} {flow.request.pretty_host}{flow.request.path.partition('?')[0]}"


# -- content views: what mitmweb shows for a rewritten flow ---------------------------


def touched_response(metadata: contentviews.Metadata) -> bool:
    """The message is the response of a flow this addon rewrote."""
    flow = metadata.flow
    return (
        isinstance(flow, http.HTTPFlow)
        and "normalize" in flow.metadata
        and flow.response is not None
        and metadata.http_message is flow.response
    )


class AssembledView(contentviews.Contentview):
    """The message a client builds from the reply: the default for rewritten flows."""

    name = "OpenAI assembled"

    def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
        return assembled_view(data)

    def render_priority(self, data: bytes, metadata: contentviews.Metadata) -> float:
        return 2 if touched_response(metadata) else -1


class SSEView(contentviews.Contentview):
    """A stream one event per line, JSON compact, comments shown."""

    name = "OpenAI SSE"

    def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
        return sse_view(data)

    def render_priority(self, data: bytes, metadata: contentviews.Metadata) -> float:
        return 1.5 if touched_response(metadata) and metadata.content_type == "text/event-stream" else -1


class BeforeAfterView(contentviews.Contentview):
    """The upstream's original reply beside the rewritten one, repairs marked."""

    name = "OpenAI before-after"

    def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
        flow = metadata.flow
        info = flow.metadata.get("normalize", {}) if isinstance(flow, http.HTTPFlow) else {}
        if "original" not in info:
            return "The upstream's original reply was not kept (nothing was changed, or normalize_keep_bytes is 0).\n\n" + sse_view(data)
        return before_after_view(info["original"], data)

    def render_priority(self, data: bytes, metadata: contentviews.Metadata) -> float:
        return -1  # chosen by name only


for view in (AssembledView(), SSEView(), BeforeAfterView()):
    contentviews.add(view)  # a reload replaces views of the same name

addons = [Normalize()]
