"""The endpoints, and the one route table that picks the endpoint for a request.

Contract: `route(method, components)` gives the `Route` for a request to a
targeted host, from its method and path components (as mitmproxy's
`Request.path_components` gives them: unquoted, no empty ones): the first
row whose method and path pattern match, else `FALLBACK` (errors only).
Patterns match the end of the path, so a prefix (`/v1`, Gemini's
`/v1beta/openai`, Azure's deployments) never matters. A new endpoint is one
module (or folder) here and one row below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .base import Endpoint
from .chat import CHAT
from .embeddings import EMBEDDINGS
from .fallback import FALLBACK
from .health import HEALTH
from .messages import COUNT_TOKENS, MESSAGES
from .models import MODEL, MODELS
from .responses.exchange import RESPONSES, STORED_RESPONSES

Matcher = Callable[[tuple[str, ...]], bool]


def ends_with(*parts: str) -> Matcher:
    """The path ends with these components: `ends_with("chat", "completions")`."""
    return lambda components: components[-len(parts) :] == parts


def exactly(*parts: str) -> Matcher:
    """The whole path is these components, under no prefix: the addon's own paths."""
    return lambda components: components == parts


def within(part: str) -> Matcher:
    """The path has this component and at least one after it: `within("models")` for `models/{id}`."""
    return lambda components: part in components[:-1]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    match: Matcher
    endpoint: Endpoint


ROUTES: tuple[Route, ...] = (
    Route("POST", ends_with("chat", "completions"), CHAT),
    Route("GET", ends_with("models"), MODELS),
    Route("GET", within("models"), MODEL),
    # the Responses bridge
    Route("POST", ends_with("responses"), RESPONSES),
    Route("GET", within("responses"), STORED_RESPONSES),
    Route("DELETE", within("responses"), STORED_RESPONSES),
    # the Messages bridge (`v1` keeps OpenAI's `/v1/threads/{id}/messages` out; the query never matters)
    Route("POST", ends_with("v1", "messages"), MESSAGES),
    Route("POST", ends_with("v1", "messages", "count_tokens"), COUNT_TOKENS),
    # embeddings
    Route("POST", ends_with("embeddings"), EMBEDDINGS),
    # the addon's own health check
    Route("GET", exactly("normalize", "health"), HEALTH),
)
OTHER = Route("*", lambda components: True, FALLBACK)


def route(method: str, components: tuple[str, ...]) -> Route:
    return next((r for r in ROUTES if r.method == method and r.match(components)), OTHER)
