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
Keys = tuple[tuple[str, list[str]], ...]  # API key headers: (name, values)


@dataclass
class FlowState:
    route: Route
    label: str
    exchange: Exchange | None = None  # set at the request, when the body is there
    rewriter: StreamRewriter | None = None  # set at the response headers, for a streamed body
    collected: Collected | None = None  # set at the response headers, for a whole body mitmproxy streams
    answered: bool = False  # the addon answered the request itself
    request_original: bytes | None = None  # the client's body, when the addon sent another (capped)
    pace_key: str = ""  # normalize_rate_limit's key: a short hash of host and API key, never the key
    paced: bool = False  # sent under normalize_rate_limit, and the upstream has not answered yet
    # The key headers as sent, from an error's headers until its body is handled, for a retry
    # (the stored copy is redacted by then). In memory only: the flow's saved state has none.
    keys: Keys = ()


def attach(flow: http.HTTPFlow, state: FlowState) -> FlowState:
    setattr(flow, _ATTRIBUTE, state)
    return state


def state_of(flow: http.HTTPFlow) -> FlowState | None:
    return getattr(flow, _ATTRIBUTE, None)
