"""Calling an endpoint, and applying what it says to the flow.

Contract: `guarded(label, what, fallback, call)` is the one guard around the
endpoint's code (`open`, `stream`, `whole`): an exception there is logged,
with the flow's label and what was being done, and `fallback` (leave the flow
as it is) is returned instead; a hook never raises because of an endpoint.
`read_body(message, cap)` is a message's body decoded from its
content-encoding (`DecodeError` past `cap` bytes, on bytes that do not decode,
or for an encoding not decoded here); `client_request(flow, cap, label)` is
the client's request as an endpoint sees it (its body read so, or why not); `forward` changes the
request as the exchange's `Forward` says, `answer` puts the addon's own reply
on the flow, `replace` turns a response into the exchange's `Reply`;
`head(flow)` is what the exchange learns of a response's headers;
`stream_through` lets a reply that is a stream by nature pass as it comes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import http

from ..endpoints.base import Forward, Head, Reply, Request
from ..wire.body import DecodeError, decode_whole

log = logging.getLogger("normalize")


def guarded[T](label: str, what: str, fallback: T, call: Callable[[], T]) -> T:
    try:
        return call()
    except Exception:
        log.exception("%s: the endpoint failed %s; passing it on unchanged", label, what)
        return fallback


def read_body(message: http.Message, cap: int) -> bytes:
    return decode_whole(message.raw_content or b"", message.headers.get("content-encoding", ""), cap)


def client_request(flow: http.HTTPFlow, cap: int, label: str) -> Request:
    request = flow.request
    path, _, query = request.path.partition("?")
    body: bytes | None = None
    problem = ""
    try:
        if request.stream:  # mitmproxy streamed it upstream already (stream_large_bodies)
            raise DecodeError("mitmproxy streamed it upstream before the addon could read it (stream_large_bodies)")
        body = read_body(request, cap)
    except DecodeError as e:
        problem = str(e)
        log.warning("%s: the request body was not read (%s); passing it through unchanged", label, problem)
    headers = {name.lower(): request.headers[name] for name in request.headers}
    return Request(request.method, path, query, headers=headers, body=body, problem=problem)


def head(flow: http.HTTPFlow) -> Head:
    """What an exchange learns of a response's headers."""
    assert flow.response is not None
    return Head(flow.response.status_code, flow.response.headers.get("content-type", ""), flow.request.method)


def stream_through(flow: http.HTTPFlow) -> None:
    """A reply that is a stream by nature, which nothing reads, passes as it comes: without
    this, mitmproxy would hold all of it and send it at the end."""
    assert flow.response is not None
    if not flow.response.stream and head(flow).passes_as_stream:
        flow.response.stream = True


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
    flow.response = response = http.Response.make(reply.status, reply.body, {"content-type": reply.content_type, **dict(reply.headers)})
    if flow.request.method == "HEAD":
        response.raw_content = b""  # the headers of the reply to GET, no body (RFC 9110 9.3.2)


def replace(response: http.Response, reply: Reply) -> None:
    response.status_code = reply.status
    response.headers.pop("content-encoding", None)
    response.headers["content-type"] = reply.content_type
    for name, value in reply.headers:
        response.headers[name] = value
    response.content = reply.body  # also corrects content-length
