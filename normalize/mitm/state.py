"""What the addon remembers of one flow between its hooks, on the flow itself.

The state lives as an attribute of the flow object, so it goes when the flow
goes: no table keyed by flow id that a missed hook could leak. mitmproxy does
not save it (it is no part of the flow's state), and a flow read back from a
file has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from mitmproxy import http

from ..endpoints import Route
from ..endpoints.base import Exchange
from .streaming import StreamRewriter
from .whole import Collected

_ATTRIBUTE = "_normalize_state"


@dataclass
class FlowState:
    route: Route
    label: str
    exchange: Exchange | None = None  # set at the request, when the body is there
    rewriter: StreamRewriter | None = None  # set at the response headers, for a streamed body
    collected: Collected | None = None  # set at the response headers, for a whole body mitmproxy streams
    answered: bool = False  # the addon answered the request itself
    request_original: bytes | None = None  # the client's body, when the addon sent another (capped)


def attach(flow: http.HTTPFlow, state: FlowState) -> FlowState:
    setattr(flow, _ATTRIBUTE, state)
    return state


def state_of(flow: http.HTTPFlow) -> FlowState | None:
    return getattr(flow, _ATTRIBUTE, None)
