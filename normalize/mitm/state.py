"""What the addon remembers of one flow between its hooks, on the flow itself.

The state lives as an attribute of the flow object, so it goes when the flow
goes: no table keyed by flow id that a missed hook could leak. mitmproxy does
not save it (it is no part of the flow's state), and a flow read back from a
file has none. Once the flow is over (its response or error hook has recorded
it) the state is detached: mitmweb keeps every flow for as long as it runs,
and the state holds the parsed request bodies, and the key headers for a retry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mitmproxy import http

from ..endpoints import Route
from ..endpoints.base import Exchange
from .streaming import StreamRewriter
from .whole import Collected

_ATTRIBUTE = "_normalize_state"
Keys = tuple[tuple[str, list[str]], ...]  # API key headers: (name, values)


class Mode(enum.Enum):
    """What the addon does with the reply's body, decided once, at its headers (or at the
    request, for its own answer); the response and error hooks act on it."""

    PASS = "pass"  # left alone: no body, a stream no exchange reads, or an encoding not decoded here
    STREAM = "stream"  # through the exchange's transducer (`rewriter`)
    COLLECT = "collect"  # whole, collected by the addon through response.stream (`collected`)
    WHOLE = "whole"  # whole, as mitmproxy read it, handed to the exchange at the response hook
    LOCAL = "local"  # the addon's own answer


@dataclass
class FlowState:
    route: Route
    label: str
    exchange: Exchange | None = None  # set at the request, when the body is there
    rewriter: StreamRewriter | None = None  # set at the response headers, for a streamed body
    collected: Collected | None = None  # set at the response headers, for a whole body mitmproxy streams
    mode: Mode = Mode.PASS
    request_original: bytes | None = None  # the client's body, when the addon sent another (capped)
    pace_key: str = ""  # normalize_rate_limit's key: a short hash of host and API key, never the key
    paced: bool = False  # sent under normalize_rate_limit, and the upstream has not answered yet
    # The key headers as sent, from an error's headers until its body is handled, for a retry
    # (the stored copy is redacted by then). In memory only: the flow's saved state has none.
    keys: Keys = ()
    path: str = ""  # likewise, the path as sent: its query may hold a key (Gemini's ?key=)


def attach(flow: http.HTTPFlow, state: FlowState) -> FlowState:
    setattr(flow, _ATTRIBUTE, state)
    return state


def state_of(flow: http.HTTPFlow) -> FlowState | None:
    return getattr(flow, _ATTRIBUTE, None)


def detach(flow: http.HTTPFlow) -> None:
    """The flow is over: what the addon held for it goes, and so does its stream callable
    (which holds the exchange: mitmproxy calls it no more once the response hook has run)."""
    if hasattr(flow, _ATTRIBUTE):
        delattr(flow, _ATTRIBUTE)
    if flow.response is not None and callable(flow.response.stream):
        flow.response.stream = True
