"""The wait behind `normalize_rate_limit`: requests held on the event loop until their key's window has room.

Contract: `Pace.configure(limit)` starts (or stops, with None) pacing;
`await pace.hold(key, gone)` returns once a request of `key` may go upstream
(or its client has gone), and how long it waited, or None when that would take longer than `MAX_WAIT` (the
caller answers 429 instead); `pace.book(key)` counts one that went without
waiting; `pace.arrived(key)` says the upstream answered (or failed) one
request of `key` that `hold` let go (or `book` counted); `pace.retry_after(key,
value)` pauses the key for what an upstream's 429 asked. Requests of one key
go in the order they came (an asyncio.Lock per key, released in FIFO order);
only the first of them waits, on `asyncio.sleep` or, while every slot is in
flight, on the key's next arrival, so nothing blocks the loop and the process
sits idle while requests wait. The arithmetic is `normalize.pacing`.

A flow's part, for the hooks: `pace.admit(flow, state, exchange, request,
unredacted)` at the request hook gives the flow its turn (a coroutine for
mitmproxy to await while it waits, or None when there is nothing to wait
for), answering the proxy's own 429 when the wait would be too long;
`pace.replied(flow, state)` at the response headers releases the flow's slot
and pauses its key for an upstream 429's Retry-After; `pace.release(state)`
releases the slot of a flow that ended in an error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from mitmproxy import http

from ..endpoints.base import Exchange, Reply, Request
from ..endpoints.errors import openai_error
from ..pacing import MAX_WAIT, Pacer, RateLimit, key_of, retry_after
from ..repairs import Repair
from .apply import answer
from .record import Unredacted
from .state import FlowState, Mode

log = logging.getLogger("normalize")


class Queue:
    """The requests of one key waiting or going: their order, and news of an arrival."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # requests holding or waiting for the lock
        self.arrival = asyncio.Event()


class Pace:
    def __init__(self) -> None:
        self.pacer: Pacer | None = None
        self.queues: dict[str, Queue] = {}

    def configure(self, limit: RateLimit | None) -> None:
        if limit is None:
            self.pacer = None
        elif self.pacer is None or self.pacer.limit != limit:
            self.pacer = Pacer(limit)

    @property
    def on(self) -> bool:
        return self.pacer is not None

    async def hold(self, key: str, gone: Callable[[], bool] = lambda: False) -> float | None:
        """`gone()` says the client has left: its request is let go at once and takes no turn
        (mitmproxy does not send a request whose client has gone)."""
        pacer = self.pacer
        if pacer is None:
            return 0.0
        start = time.monotonic()
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = Queue()
        queue.users += 1
        try:
            async with asyncio.timeout(MAX_WAIT):
                async with queue.lock:
                    while not gone() and (wait := pacer.delay(key, time.monotonic())) > 0:
                        if math.isinf(wait):
                            queue.arrival.clear()
                            await queue.arrival.wait()  # every slot is in flight: until one is answered
                        else:
                            await asyncio.sleep(wait)
                    if not gone():
                        pacer.sent(key, time.monotonic())
        except TimeoutError:
            return None
        finally:
            queue.users -= 1
            if not queue.users:
                del self.queues[key]
        return time.monotonic() - start

    def book(self, key: str) -> None:
        """Counts a request of `key` that went upstream without waiting (mitmproxy streamed it)."""
        if self.pacer is not None:
            self.pacer.sent(key, time.monotonic())

    def arrived(self, key: str) -> None:
        if self.pacer is not None:
            self.pacer.arrived(key, time.monotonic())
        queue = self.queues.get(key)
        if queue is not None:
            queue.arrival.set()

    def retry_after(self, key: str, value: str) -> float | None:
        """Pauses `key` for what a Retry-After header says; the seconds, or None if unreadable."""
        seconds = retry_after(value, time.time())
        if self.pacer is not None and seconds is not None:
            self.pacer.pause(key, time.monotonic() + seconds)
        return seconds

    # -- a flow's turn -----------------------------------------------------------

    def admit(
        self, flow: http.HTTPFlow, state: FlowState, exchange: Exchange, request: Request, unredacted: Unredacted
    ) -> Coroutine[Any, Any, None] | None:
        """At the request hook, once the request is what goes upstream: its turn under
        normalize_rate_limit, keyed by host and API key (`request`'s headers, read before the
        flow's were redacted). A coroutine for the hook to return while it waits, or None."""
        if self.pacer is None:
            return None
        state.pace_key = key_of(flow.request.host, request.headers)
        if flow.request.stream:
            # Streamed (stream_large_bodies): it went upstream before this hook, so it is counted,
            # not held (holding it would only delay its reply).
            self.book(state.pace_key)
            state.paced = True
            return None
        return self.wait_turn(flow, state, exchange, unredacted)

    async def wait_turn(self, flow: http.HTTPFlow, state: FlowState, exchange: Exchange, unredacted: Unredacted) -> None:
        """Waits until normalize_rate_limit lets this request go; answers 429 if that is too long."""

        def gone() -> bool:
            return flow.client_conn.timestamp_end is not None

        held = await self.hold(state.pace_key, gone)
        if held is None:
            state.mode = Mode.LOCAL
            exchange.repairs[Repair.rate_limit_exceeded_wait] += 1
            answer(flow, wait_too_long(self.pacer.limit if self.pacer is not None else None))
            unredacted.redact(flow)
            return
        state.paced = not gone()  # a request whose client has gone takes no turn
        if held >= 0.001:
            exchange.repairs[Repair.rate_limit_held] += round(held * 1000)

    def release(self, state: FlowState) -> None:
        """The upstream has the flow's request (it answered, or the exchange failed): its slot
        is dated now, the latest it can have counted the request."""
        if state.paced:
            state.paced = False
            self.arrived(state.pace_key)

    def replied(self, flow: http.HTTPFlow, state: FlowState) -> None:
        """At the reply's headers: the flow's slot is released, and an upstream 429's
        Retry-After pauses the key."""
        self.release(state)
        response = flow.response
        assert response is not None
        if response.status_code == 429 and state.pace_key and "retry-after" in response.headers:
            value = response.headers["retry-after"]
            seconds = self.retry_after(state.pace_key, value)
            if seconds is None:
                log.info("%s: upstream 429: its Retry-After (%r) is not a time; key %s not paused", state.label, value[:64], state.pace_key)
            else:
                log.info("%s: upstream 429: key %s paused for %s s", state.label, state.pace_key, seconds)


def wait_too_long(limit: RateLimit | None) -> Reply:
    """The proxy's own 429 for a request that would wait longer than MAX_WAIT, in OpenAI's shape."""
    seconds = limit.seconds if limit is not None else MAX_WAIT
    error = openai_error(
        f"Too many requests for normalize_rate_limit ({limit}): this one would have waited more than {MAX_WAIT:.0f} s; retry later.",
        429,
        code="rate_limit_exceeded",
    )
    return Reply.json(429, error, headers=(("retry-after", str(math.ceil(seconds))),))
