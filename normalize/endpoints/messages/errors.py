"""Anthropic's error envelope, from the OpenAI errors the rest of the package builds.

Contract: `anthropic_error(message, kind)` is the body Anthropic's API sends,
`{"type": "error", "error": {"type": kind, "message": message}}`, both as an
HTTP error body and as the data of an `event: error` inside a stream.
`from_openai(error, status)` turns an OpenAI `{"error": {...}}` (what
`endpoints.errors` makes of any upstream's error shape) into that envelope,
keeping the message; the type comes from the HTTP status when there is one
(`error_type`), else from the status the error itself says (its code or
type: `endpoints.errors.error_status`). `error_reply(head, body, repairs)`
is the reply for any upstream error body, in that envelope, with the status
`endpoints.errors.error_reply` gives (the Messages bridge's own errors go
through the chat exchange, which gives the same).
Pure and total.

The types are those of Anthropic's error reference: 400 invalid_request_error
(also for other 4xx), 401 authentication_error, 403 permission_error, 404
not_found_error, 413 request_too_large, 429 rate_limit_error, 500 api_error,
529 overloaded_error. A 503 (an upstream out of capacity) reads as
overloaded_error; any other 5xx as api_error.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ...repairs import Repair
from ..base import Head, Reply
from ..errors import error_reply as openai_error_reply
from ..errors import error_status

_BY_STATUS = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error(message: str, kind: str = "api_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_type(status: int | None) -> str:
    """Anthropic's error type for an HTTP status."""
    if status is None:
        return "api_error"
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def from_openai(error: dict[str, Any], status: int | None = None) -> dict[str, Any]:
    """Anthropic's envelope for an OpenAI-shaped `{"error": {...}}`, message kept; the type
    from `status`, or from the status the error says (`errors.error_status`)."""
    inner = error.get("error")
    inner = inner if isinstance(inner, dict) else {}
    message = inner.get("message")
    if not (isinstance(message, str) and message):
        message = "error"
    return anthropic_error(message, error_type(status if status is not None else error_status(error)))


def error_reply(head: Head, body: bytes, repairs: Counter[Repair]) -> Reply:
    """Any upstream error body (every shape endpoints/errors.py reads) in Anthropic's envelope,
    with the status a client should act on (errors.error_reply: NIM's misleading ones fixed)."""
    status, error, found = openai_error_reply(head.status, body, head.content_type)
    repairs.update(found)
    repairs[Repair.error_not_anthropic] += 1
    return Reply.json(status, from_openai(error, status))
