"""Pacing: at most N requests per API key reach the upstream in any window of T seconds.

Contract: `parse_rate_limit("40/60s")` gives a `RateLimit` (ValueError says
what is wrong); `key_of(host, headers)` is the short hash a key is known by
(never the key itself, which is neither logged nor stored); `Pacer(limit)`
keeps, per key, the requests in flight and when the last N were answered:
`delay(key, now)` is how long the next one must wait (0: send now; infinity:
until one in flight is answered), `sent(key)` counts one going upstream,
`arrived(key, now)` one the upstream has answered (or failed),
`pause(key, until)` holds every request of that key until then (the
upstream's Retry-After). Time is passed in (monotonic seconds), so all of it
is arithmetic a test can drive without a clock or an event loop.

The upstream counts a request when it arrives, which is later than when it
leaves here (a connection set-up, a scheduling delay on a busy machine), and
no later than when the upstream starts answering it. So a request counts as
"now" while it is in flight, and from the moment its answer begins once it
has one: never earlier than the upstream counted it. The window is also kept
a little wider than the limit says (`slack`: a tenth of it, at most a second).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .keys import KEY_HEADERS

# A request held longer than this is answered with a 429 instead (a client waiting
# minutes for a reply that has not started is worse off than one told to retry).
MAX_WAIT = 300.0
# Keys remembered at most; idle ones are forgotten first.
MAX_KEYS = 10_000

_LIMIT = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)?\s*")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests: int
    seconds: float

    @property
    def slack(self) -> float:
        return min(1.0, self.seconds / 10)

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds:g}s"


def parse_rate_limit(text: str) -> RateLimit | None:
    """`40/60s`, `40/1m`, `20/2s`, `5/s` or `40/60` (seconds); "" is off (None)."""
    if not text.strip():
        return None
    match = _LIMIT.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not requests/window, e.g. 40/60s")
    requests = int(match.group(1))
    seconds = float(match.group(2) or 1) * _UNIT[match.group(3) or "s"]
    if requests < 1 or seconds <= 0:
        raise ValueError(f"{text!r}: requests and window must be more than 0")
    return RateLimit(requests, seconds)


def key_of(host: str, headers: Mapping[str, str]) -> str:
    """A short hash of the upstream host and the request's API key (no key: one shared window)."""
    key = next((headers[name] for name in KEY_HEADERS if headers.get(name)), "")
    if key.lower().startswith("bearer "):
        key = key[7:].strip()
    return hashlib.sha256(f"{host.lower()}\0{key}".encode()).hexdigest()[:12]


def retry_after(value: str, now_wall: float) -> float | None:
    """Seconds from now that a Retry-After header asks for (a number, or an HTTP date); None if unreadable."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now_wall
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_WAIT)


class Pacer:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.window = limit.seconds + limit.slack
        self.sends: dict[str, deque[float]] = {}  # when the upstream answered, the last N
        self.in_flight: dict[str, int] = {}
        self.paused: dict[str, float] = {}

    def delay(self, key: str, now: float) -> float:
        """Seconds until a request of `key` may be sent without exceeding the limit
        (infinity: not before one of those in flight is answered)."""
        wait = self.paused.get(key, now) - now
        room = self.limit.requests - self.in_flight.get(key, 0)
        if room <= 0:
            return math.inf
        sends = self.sends.get(key)
        if sends is not None and len(sends) >= room:
            wait = max(wait, sends[-room] + self.window - now)
        return max(wait, 0.0)

    def sent(self, key: str, now: float) -> None:
        if key not in self.in_flight and len(self.in_flight) + len(self.sends) >= MAX_KEYS:
            self.forget_idle(now)
        self.in_flight[key] = self.in_flight.get(key, 0) + 1

    def arrived(self, key: str, now: float) -> None:
        """One request of `key` in flight has its answer (or failed): it counts from `now`."""
        flying = self.in_flight.get(key, 0)
        if flying <= 1:
            self.in_flight.pop(key, None)
        else:
            self.in_flight[key] = flying - 1
        sends = self.sends.get(key)
        if sends is None:
            sends = self.sends[key] = deque(maxlen=self.limit.requests)
        sends.append(now)

    def pause(self, key: str, until: float) -> None:
        """Holds `key`'s requests until `until` (the upstream said to retry after then)."""
        self.paused[key] = max(self.paused.get(key, until), until)

    def forget_idle(self, now: float) -> None:
        idle = [k for k, sends in self.sends.items() if k not in self.in_flight and (not sends or sends[-1] + self.window <= now)]
        for key in idle:
            del self.sends[key]
        for key in [k for k, until in self.paused.items() if until <= now]:
            del self.paused[key]
