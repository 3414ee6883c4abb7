"""Whole bodies (completions, errors, model lists) through every endpoint, and what must hold.

Shared by the property tests (tests/test_hardening.py) and the fuzz target
(fuzz/fuzz_whole.py): `check(endpoint, status, content_type, body)` hands the
body to that endpoint's exchange as the glue does, and fails when an exception
escapes or when the exchange answers with anything but valid UTF-8 strict JSON
(no NaN or Infinity). An exchange that returns UNCHANGED or None leaves the
body as it came: the glue sends the input unchanged.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from normalize.endpoints import CHAT, MODEL, MODELS
from normalize.endpoints.base import UNCHANGED, Env, Exchange, Head, Reply, Request, Shared
from normalize.endpoints.fallback import FALLBACK
from normalize.profiles import profile_for
from normalize.settings import Settings

ENV = Env(Settings(model_map=MappingProxyType({"gpt-4o": "m"})), profile_for("api.example.com"), Shared(), "POST test")
CHAT_REQUESTS = (
    b'{"model":"gpt-4o","messages":[]}',
    b'{"model":"gpt-4o","messages":[],"stream":true,"stream_options":{"include_usage":true}}',
)
ENDPOINTS = ("chat", "chat_stream_requested", "models", "model", "other")
CONTENT_TYPES = ("application/json", "text/html", "application/problem+json", "text/plain", "", "text/event-stream")
STATUSES = (200, 201, 204, 400, 401, 404, 405, 422, 429, 500, 502, 503)


def exchange(endpoint: str) -> tuple[Exchange, str]:
    """A fresh exchange for `endpoint`, and its request's method."""
    if endpoint.startswith("chat"):
        body = CHAT_REQUESTS[endpoint == "chat_stream_requested"]
        return CHAT.open(Request("POST", "/v1/chat/completions", body=body), ENV), "POST"
    if endpoint == "models":
        return MODELS.open(Request("GET", "/v1/models"), ENV), "GET"
    if endpoint == "model":
        return MODEL.open(Request("GET", "/v1/models/gpt-4o"), ENV), "GET"
    return FALLBACK.open(Request("POST", "/v1/embeddings"), ENV), "POST"


def _no_constant(name: str) -> Any:
    raise AssertionError(f"{name} in a body the addon wrote")


def check(endpoint: str, status: int, content_type: str, body: bytes) -> Reply | None:
    """The invariant for one whole body; returns the reply written, if any."""
    ex, method = exchange(endpoint)
    result = ex.whole(Head(status, content_type, method), body)
    if result is None or result is UNCHANGED:
        return None
    assert isinstance(result, Reply), result
    assert 100 <= result.status <= 599 and result.content_type == "application/json", result
    text = result.body.decode("utf-8")  # strict: invalid UTF-8 fails here
    json.loads(text, parse_constant=_no_constant)
    return result
