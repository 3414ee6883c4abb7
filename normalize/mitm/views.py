"""mitmweb's content views for flows the addon looked after: the text comes from normalize.views."""

from __future__ import annotations

from mitmproxy import contentviews, http

from ..views.assembled import assembled_view
from ..views.diff import before_after_view
from ..views.sse import sse_view
from ..views.text import json_text


def touched_response(metadata: contentviews.Metadata) -> bool:
    """The message is the response of a flow this addon looked after."""
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


class RequestView(contentviews.Contentview):
    """The client's request as it sent it, beside the one the addon sent upstream."""

    name = "OpenAI request before-after"

    def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
        flow = metadata.flow
        info = flow.metadata.get("normalize", {}) if isinstance(flow, http.HTTPFlow) else {}
        original = info.get("request_original")
        if original is None:
            return "The addon sent this request upstream as the client sent it.\n\n" + json_text(data)
        return "The client sent:\n" + json_text(original) + "\nThe addon sent upstream:\n" + json_text(data)

    def render_priority(self, data: bytes, metadata: contentviews.Metadata) -> float:
        flow = metadata.flow
        rewritten = (
            isinstance(flow, http.HTTPFlow)
            and "request_original" in flow.metadata.get("normalize", {})
            and metadata.http_message is flow.request
        )
        return 2 if rewritten else -1


VIEWS = (AssembledView(), SSEView(), BeforeAfterView(), RequestView())


def register() -> None:
    for view in VIEWS:
        contentviews.add(view)  # a reload replaces views of the same name
