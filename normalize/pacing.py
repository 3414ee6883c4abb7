"""Pacing: at most N requests per API key reach the upstream in any window of T seconds.

Contract: `parse_rate_limit("40/60s")` gives a `RateLimit` (ValueError says
what is wrong); `key_of(host, headers)` is the short hash a key is known by
(never the key itself, which is neither logged nor stored); `Pacer(limit)`
keeps, per key, the times of the last N requests sent: `delay(key, now)` is
how long the next one must wait (0: send now), `sent(key, now)` records one,
`pause(key, until)` holds every request of that key until then (the
upstream's Retry-After). Time is passed in (monotonic seconds), so all of it
is arithmetic a test can drive without a clock or an event loop.

The window is kept a little wider than the limit says (`slack`: a tenth of
it, at most a second): the upstream counts requests when they arrive, which
is later than when they leave here by a connection set-up or a scheduling
delay, and a request that left just in time must not arrive just too early.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# A request held longer than this is answered with a 429 instead (a client waiting
# minutes for a reply that has not started is worse off than one told to retry).
MAX_WAIT = 300.0
# Keys remembered at most; idle ones are forgotten first.
MAX_KEYS = 10_000
# Request headers that carry an API key, in the order they are looked at.
KEY_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")

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
        self.sends: dict[str, deque[float]] = {}
        self.paused: dict[str, float] = {}

    def delay(self, key: str, now: float) -> float:
        """Seconds until a request of `key` may be sent without exceeding the limit."""
        wait = self.paused.get(key, now) - now
        sends = self.sends.get(key)
        if sends is not None and len(sends) >= self.limit.requests:
            wait = max(wait, sends[-self.limit.requests] + self.window - now)
        return max(wait, 0.0)

    def sent(self, key: str, now: float) -> None:
        sends = self.sends.get(key)
        if sends is None:
            if len(self.sends) >= MAX_KEYS:
                self.forget_idle(now)
            sends = self.sends[key] = deque(maxlen=self.limit.requests)
        sends.append(now)

    def pause(self, key: str, until: float) -> None:
        """Holds `key`'s requests until `until` (the upstream said to retry after then)."""
        self.paused[key] = max(self.paused.get(key, until), until)

    def forget_idle(self, now: float) -> None:
        for key in [k for k, sends in self.sends.items() if not sends or sends[-1] + self.window <= now]:
            del self.sends[key]
        for key in [k for k, until in self.paused.items() if until <= now]:
            del self.paused[key]
