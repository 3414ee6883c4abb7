"""Pacing: the window arithmetic (no clock: times are passed in), and the hold on the event loop."""

import asyncio
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.mitm.pace import Pace
from normalize.pacing import MAX_WAIT, Pacer, RateLimit, key_of, parse_rate_limit, retry_after


@pytest.mark.parametrize(
    ("text", "limit"),
    [("40/60s", RateLimit(40, 60.0)), ("40/1m", RateLimit(40, 60.0)), ("20/2s", RateLimit(20, 2.0)),
     ("5/s", RateLimit(5, 1.0)), ("40/60", RateLimit(40, 60.0)), (" 3 / 500ms ", RateLimit(3, 0.5)), ("", None)],
)
def test_parse_rate_limit(text, limit):
    assert parse_rate_limit(text) == limit


@pytest.mark.parametrize("bad", ["40", "0/60s", "40/0s", "x/60s", "40/60d", "-1/5s"])
def test_parse_rate_limit_refuses(bad):
    with pytest.raises(ValueError):
        parse_rate_limit(bad)


def test_key_of_hashes_the_key():
    a = key_of("integrate.api.nvidia.com", {"authorization": "Bearer nvapi-secret"})
    assert a == key_of("integrate.api.nvidia.com", {"authorization": "bearer nvapi-secret", "api-key": "other"})
    assert "secret" not in a and len(a) == 12
    assert a != key_of("integrate.api.nvidia.com", {"authorization": "Bearer nvapi-other"})
    assert a != key_of("other.host", {"authorization": "Bearer nvapi-secret"})
    assert key_of("h", {"x-api-key": "k"}) == key_of("h", {"api-key": "k"})


def test_window():
    limit = RateLimit(3, 10.0)
    pacer = Pacer(limit)
    window = 10.0 + limit.slack
    for t in (0.0, 1.0, 2.0):
        assert pacer.delay("k", t) == 0
        pacer.sent("k", t)
        pacer.arrived("k", t)
    assert pacer.delay("k", 2.0) == pytest.approx(window - 2.0)  # the fourth waits for the first to leave
    assert pacer.delay("other", 2.0) == 0  # keys are counted apart
    pacer.sent("k", window)
    pacer.arrived("k", window)
    assert pacer.delay("k", window) == pytest.approx(1.0)  # now the second must leave


def test_in_flight_counts_as_now():
    # A request the upstream has not answered may arrive there any time: it counts as now,
    # and from when its answer began once it has one.
    pacer = Pacer(RateLimit(2, 10.0))
    pacer.sent("k", 0.0)
    pacer.sent("k", 0.0)
    assert pacer.delay("k", 3.0) == float("inf")  # both in flight: until one is answered
    pacer.arrived("k", 5.0)
    assert pacer.delay("k", 5.0) == pytest.approx(pacer.window)  # one counts from 5, one is still "now"
    pacer.arrived("k", 6.0)
    assert pacer.delay("k", 6.0) == pytest.approx(pacer.window - 1.0)


def test_pause():
    pacer = Pacer(RateLimit(100, 1.0))
    pacer.pause("k", 30.0)
    assert pacer.delay("k", 10.0) == 20.0
    pacer.pause("k", 20.0)  # a shorter pause does not shorten it
    assert pacer.delay("k", 10.0) == 20.0
    assert pacer.delay("k", 31.0) == 0


@given(
    st.lists(st.tuples(st.floats(0, 5), st.floats(0, 2), st.floats(0, 3)), max_size=60),
    st.integers(1, 5),
    st.floats(0.5, 3),
)
def test_never_more_than_the_limit_in_a_window(requests_made, requests, seconds):
    """Requests come (a gap after the last), leave when `delay` lets them, reach the upstream
    some time later (up to 2 s: a busy machine) and are answered after that (up to 3 s). The
    upstream counts arrivals: no window of its holds more than the limit."""
    import heapq

    pacer = Pacer(RateLimit(requests, seconds))
    events: list[tuple[float, int, str, int]] = []  # (time, order, what, request)
    t = 0.0
    for i, (gap, _, _) in enumerate(requests_made):
        t += gap
        heapq.heappush(events, (t, i, "comes", i))
    waiting: list[int] = []
    arrivals: list[float] = []
    order = len(requests_made)
    while events:
        now, _, what, i = heapq.heappop(events)
        if what == "comes":
            waiting.append(i)
        elif what == "answered":
            pacer.arrived("k", now)
        while waiting and (wait := pacer.delay("k", now)) <= 0:
            j = waiting.pop(0)
            pacer.sent("k", now)
            _, transit, work = requests_made[j]
            arrivals.append(now + transit)
            order += 1
            heapq.heappush(events, (now + transit + work, order, "answered", j))
        if waiting and wait != float("inf"):
            order += 1
            heapq.heappush(events, (now + wait, order, "tick", -1))
    assert len(arrivals) == len(requests_made)
    arrivals.sort()
    for i, a in enumerate(arrivals):
        assert sum(1 for b in arrivals[i:] if b < a + seconds) <= requests


def test_retry_after():
    assert retry_after("7", 0) == 7
    assert retry_after("1.5", 0) == 1.5
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470) == 10
    assert retry_after("-3", 0) == 0
    assert retry_after("100000", 0) == MAX_WAIT
    assert retry_after("soon", 0) is None
    assert retry_after("nan", 0) is None


def test_rate_limit_held():
    """The hold on the event loop: 3 requests at 2/0.2s, the third waits for the window,
    sleeping (the loop runs other work meanwhile), in the order they came."""

    async def main():
        pace = Pace()
        pace.configure(RateLimit(2, 0.2))
        order = []

        async def one(i):
            held = await pace.hold("k")
            order.append(i)
            pace.arrived("k")  # the upstream answers at once
            return held

        ticks = 0

        async def ticker():
            nonlocal ticks
            while len(order) < 3:
                ticks += 1
                await asyncio.sleep(0.01)

        start = time.monotonic()
        held, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(3))), ticker())
        assert order == [0, 1, 2]
        assert held[0] < 0.05 and held[1] < 0.05 and held[2] >= 0.2
        assert time.monotonic() - start >= 0.2
        assert ticks >= 5  # the loop was free while the third waited
        assert pace.queues == {}  # nothing kept for a key no request waits on

    asyncio.run(main())


def test_rate_limit_exceeded_wait(monkeypatch):
    """A wait longer than MAX_WAIT is given up (the glue answers 429)."""
    monkeypatch.setattr("normalize.mitm.pace.MAX_WAIT", 0.05)

    async def main():
        pace = Pace()
        pace.configure(RateLimit(1, 60.0))
        assert await pace.hold("k") is not None
        assert await pace.hold("k") is None
        assert pace.queues == {}

    asyncio.run(main())


def test_upstream_retry_after_pauses_the_key():
    async def main():
        pace = Pace()
        pace.configure(RateLimit(100, 1.0))
        assert pace.retry_after("k", "0.2") == 0.2
        held = await pace.hold("k")
        assert held >= 0.2
        assert await pace.hold("other") < 0.05

    asyncio.run(main())


def test_client_gone_takes_no_turn():
    async def main():
        pace = Pace()
        pace.configure(RateLimit(1, 60.0))
        assert await pace.hold("k") is not None
        assert await pace.hold("k", lambda: True) is not None  # let go at once, no turn taken
        assert pace.pacer.in_flight["k"] == 1

    asyncio.run(main())


# -- the hook ----------------------------------------------------------------------

from mitmproxy.test import taddons, tflow, tutils  # noqa: E402

from normalize.mitm import addon  # noqa: E402
from normalize.mitm.state import state_of  # noqa: E402


def chat_flow(key="nvapi-a"):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}).encode()
    flow = tflow.tflow(req=tutils.treq(host="api.example.com", port=443, path="/v1/chat/completions", method=b"POST",
                                       content=body, headers=((b"authorization", f"Bearer {key}".encode()),)))
    flow.client_conn.timestamp_end = None  # the client is still there
    return flow


def test_request_hook_waits_only_when_pacing():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"])
        assert a.request(chat_flow()) is None  # nothing to wait for: a plain hook
        tctx.configure(a, normalize_rate_limit="5/s")
        flow = chat_flow()
        waiting = a.request(flow)
        assert asyncio.iscoroutine(waiting)
        asyncio.run(waiting)
        assert flow.response is None  # let go upstream


def test_wait_too_long_is_answered_429(monkeypatch):
    monkeypatch.setattr("normalize.mitm.pace.MAX_WAIT", 0.05)
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_rate_limit="1/60s")

        async def main():
            first, second = chat_flow(), chat_flow()
            await a.request(first)
            assert first.response is None  # its turn came
            await a.request(second)
            assert second.response is not None  # answered by the proxy
            return second

        flow = asyncio.run(main())
        assert flow.response.status_code == 429
        assert flow.response.headers["retry-after"] == "60"
        assert json.loads(flow.response.content)["error"]["code"] == "rate_limit_exceeded"
        a.response(flow)
        assert flow.comment == "normalized: answered 429: the wait for normalize_rate_limit was too long"


def test_streamed_requests_are_paced_by_their_own_key():
    """A request body mitmproxy streamed upstream (stream_large_bodies) went before the request
    hook: its key is read before the headers are redacted (else every such request would share
    one window), and it is counted at once, not held."""
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_rate_limit="1/60s")
        flows = [chat_flow("nvapi-a"), chat_flow("nvapi-b")]
        for flow in flows:
            flow.request.stream = True
            flow.response = None
            a.requestheaders(flow)
            assert a.request(flow) is None  # nothing to wait for
            assert flow.request.headers["authorization"] == "Bearer [redacted]"
        keys = [state_of(flow).pace_key for flow in flows]
        assert keys == [key_of("api.example.com", {"authorization": f"Bearer {k}"}) for k in ("nvapi-a", "nvapi-b")]
        assert a.pace.pacer.in_flight == {keys[0]: 1, keys[1]: 1}
        flows[0].response = tutils.tresp()
        a.responseheaders(flows[0])
        assert a.pace.pacer.in_flight == {keys[1]: 1}


@pytest.mark.parametrize(("value", "logged"), [("1.5", "paused for 1.5 s"), ("soon", "its Retry-After ('soon') is not a time; key")])
def test_upstream_retry_after_is_logged_as_read(value, logged, caplog):
    import logging

    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_rate_limit="5/s")
        flow = chat_flow()
        asyncio.run(a.request(flow))
        flow.response = tutils.tresp(status_code=429, headers=((b"retry-after", value.encode()),))
        with caplog.at_level(logging.INFO):
            a.responseheaders(flow)
        assert logged in caplog.text and "None" not in caplog.text


def test_wait_too_long_for_a_head_request_has_no_body(monkeypatch):
    """The proxy's own 429 to a HEAD request: its headers, no body (one would be read by a
    keep-alive client as the start of its next response)."""
    monkeypatch.setattr("normalize.mitm.pace.MAX_WAIT", 0.05)
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_rate_limit="1/60s")

        async def main():
            first, second = chat_flow(), chat_flow()
            second.request.method = "HEAD"
            await a.request(first)
            await a.request(second)
            return second

        flow = asyncio.run(main())
        assert flow.response.status_code == 429 and flow.response.raw_content == b""
        assert int(flow.response.headers["content-length"]) > 0
