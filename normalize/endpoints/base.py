"""The one shape every endpoint has: what the glue hands it, and what it hands back.

Contract: for a flow to a targeted host, the route table (endpoints/__init__.py)
picks an `Endpoint`; at the request the glue calls `endpoint.open(request,
env)`, which returns the flow's `Exchange`. The exchange says what to send
upstream instead (`forward`) or answers itself (`answer`); at the response
headers `stream(head)` gives a `Transducer` for a streamed body (or None;
then `passes(head)` says whether the body goes on unread, as it comes); a
body that is not streamed goes to `whole(head, body)`, which returns a
`Reply` to send instead, `UNCHANGED` when it looked after the body and found
nothing to change, or None when the body is none of its business. Repairs are
counted in `exchange.repairs`; `verb` heads the flow's summary.

Everything here is pure: no sockets, no mitmproxy. Bodies are bytes already
decoded from their content-encoding, never larger than the caps in
`Settings`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from ..repairs import Repair
from ..wire.body import read_json_body
from ..wire.jsonio import dump_pretty
from .errors import error_reply
from .learned import Learned
from .responses.store import ResponseStore

if TYPE_CHECKING:
    from ..profiles import Profile
    from ..settings import Settings


@dataclass(frozen=True, slots=True)
class Request:
    """The client's request, as an endpoint sees it. Header names are lower case; values
    may hold secrets, so nothing here is ever logged."""

    method: str
    path: str  # without the query
    query: str = ""  # after the "?", as sent
    params: Mapping[str, str] = field(default_factory=dict)  # what the route took from the path
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = b""  # None: the body could not be read within the caps (see `problem`)
    problem: str = ""

    def json(self) -> Any | None:
        """The body's JSON value, or None when there is none or it is not JSON."""
        return self.read_json()[0]

    def read_json(self) -> tuple[Any | None, str]:
        """The body's JSON value and "", or None and why it could not be read
        ("" when there is no body, or `problem` already says why)."""
        if not self.body:
            return None, ""
        value, why = read_json_body(self.body)
        return value, why and f"not JSON within the limits: {why}"


@dataclass(frozen=True, slots=True)
class Forward:
    """What to change in the request before it goes upstream (None: keep as sent)."""

    body: bytes | None = None
    path: str | None = None  # with the query, if any
    set_headers: Mapping[str, str] = field(default_factory=dict)
    drop_headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole response: the addon's own answer, or a rewritten body."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()  # more headers to set (e.g. retry-after)

    @classmethod
    def json(cls, status: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
        return cls(status, dump_pretty(obj), headers=headers)


# Content types of replies that are streams by nature.
STREAMED_TYPES = ("text/event-stream", "application/x-ndjson")


@dataclass(frozen=True, slots=True)
class Head:
    """A response's status line and what its headers say about its body."""

    status: int
    content_type: str = ""
    method: str = "GET"  # of the request: a HEAD request's response has no body

    @property
    def has_body(self) -> bool:
        """RFC 9110 6.4.1: no body in a reply to HEAD, nor with a 1xx, 204 or 304."""
        return self.method != "HEAD" and self.status not in (204, 304) and not 100 <= self.status < 200

    @property
    def ok(self) -> bool:
        """A success that carries a body."""
        return 200 <= self.status < 300 and self.has_body

    @property
    def event_stream(self) -> bool:
        return "text/event-stream" in self.content_type.lower()

    @property
    def passes_as_stream(self) -> bool:
        """A stream by nature (server-sent events, NDJSON): whatever does not read it passes it
        on as it comes, never holding it whole."""
        content_type = self.content_type.lower()
        return any(kind in content_type for kind in STREAMED_TYPES)


class Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged()


class Transducer(Protocol):
    """One streamed body, rewritten as it passes: bytes in, bytes out, never raising.
    `fail(why)` says the rest of the body cannot be read: the transducer tells the
    client in its own protocol, and adds nothing that could read as a clean end."""

    events: int

    @property
    def raw(self) -> bool: ...
    @property
    def repairs(self) -> Counter[Repair]: ...
    def feed(self, data: bytes) -> bytes: ...
    def close(self) -> bytes: ...
    def fail(self, why: str) -> bytes: ...


@dataclass
class Shared:
    """State that outlives one flow, owned by the addon and handed to every exchange."""

    # -- the Responses bridge
    responses: ResponseStore = field(default_factory=ResponseStore)  # bounded by the exchange from Settings

    # -- profiles: learned parameters (pacing is the addon's own: mitm/pace.py)
    learned: Learned = field(default_factory=Learned)  # what upstreams rejected, per (host, model)


@dataclass(frozen=True)
class Env:
    """What an exchange knows besides its request: options, the upstream's profile, shared state."""

    settings: Settings
    profile: Profile
    shared: Shared  # the addon's own, never a fresh one: what one exchange learns, the next must see
    label: str = "request"  # names the flow in log lines: method, host and path, never headers
    host: str = ""  # the upstream's host[:port], under which what it rejects is learned


class Exchange:
    """One request and its response at an endpoint. The base answers errors in OpenAI's shape."""

    verb = "normalized"
    quiet = False  # True: its log line is at debug level (an answer polled every few seconds)

    def __init__(self, env: Env) -> None:
        self.env = env
        self.repairs: Counter[Repair] = Counter()
        self.forward: Forward | None = None
        self.answer: Reply | None = None
        # A repaired request to send once instead of passing on the error `whole` just read
        # (set only for replies that are not streamed; the glue may decline to send it).
        self.retry: Forward | None = None

    def stream(self, head: Head) -> Transducer | None:
        return None

    def passes(self, head: Head) -> bool:
        """A reply `stream` gave no transducer for that goes on as it comes, unread (not to
        `whole`): by default a success that is a stream by nature; errors are read whole,
        whatever their content-type says."""
        return head.status < 400 and head.passes_as_stream

    def whole(self, head: Head, body: bytes) -> Reply | Unchanged | None:
        if head.status >= 400:
            return self.error(head, body)
        return None

    def take_retry(self) -> Forward | None:
        """`retry`, given once (the glue sends it at most once)."""
        change, self.retry = self.retry, None
        return change

    def retried(self) -> None:
        """The glue sent what `take_retry` gave in place of the reply `whole` read last: that one
        never reached the client."""

    def error(self, head: Head, body: bytes) -> Reply | Unchanged:
        """Any error reply as OpenAI's `{"error": {...}}`, with the status a client should act on."""
        status, error, repairs = error_reply(head.status, body, head.content_type)
        if not repairs:
            return UNCHANGED
        self.repairs.update(repairs)
        return Reply.json(status, error)


class Endpoint(Protocol):
    name: str

    def open(self, request: Request, env: Env) -> Exchange: ...
