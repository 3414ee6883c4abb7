"""The one retry of a rejected request (mitm/retry.py), through the addon's hooks.

mitmproxy's client-replay handler is replaced by `Replay`, which runs the
copy through the addon's hooks as mitmproxy does and answers it as the test
says (or keeps it waiting, as a slow model would). tests/e2e/test_nim_e2e.py
shows the retry through a real mitmdump.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from normalize.mitm import addon, retry

KEY = "Bearer nvapi-secret"
REJECTED = {"model": "g", "messages": [{"role": "user", "content": "Hi"}], "presence_penalty": 0}
REJECTION = json.dumps({"error": "body -> presence_penalty\n  Extra inputs are not permitted (type=extra_forbidden)"}).encode()
COMPLETION = json.dumps(
    {"id": "c", "object": "chat.completion", "created": 1, "model": "g",
     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "refusal": None}, "logprobs": None, "finish_reason": "stop"}]}
).encode()


def ok(copy: http.HTTPFlow) -> http.Response:
    return http.Response.make(200, COMPLETION, {"content-type": "application/json"})


class Replay:
    """Stands in for mitmproxy's ReplayHandler (constructed as it is, with the copy and the
    options): runs the copy through the addon's hooks, waits for `gate` when there is one
    (a model thinking), and gives it `answer(copy)` (None: the copy fails)."""

    def __init__(self, normalize: addon.Normalize, answer: Callable[[http.HTTPFlow], http.Response | None] = ok) -> None:
        self.normalize = normalize
        self.answer = answer
        self.gate: asyncio.Event | None = None
        self.copies: list[http.HTTPFlow] = []
        self.transports: dict = {}
        self.sent = asyncio.Event()  # the copy's request hooks have run

    def __call__(self, flow: http.HTTPFlow, options: object) -> Replay:
        self.copies.append(flow)
        return self

    async def replay(self) -> None:
        copy = self.copies[-1]
        self.sent_path = copy.request.path
        self.normalize.requestheaders(copy)
        self.normalize.request(copy)
        self.sent.set()
        if self.gate is not None:
            await self.gate.wait()
        copy.response = self.answer(copy)
        if copy.response is None:
            copy.error = tflow.terr("Server disconnected.")
            self.normalize.error(copy)
        else:
            self.normalize.responseheaders(copy)
            self.normalize.response(copy)


@pytest.fixture
def normalize(monkeypatch):
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_profile=["api.example.com=nim"])
        replay = Replay(a)
        monkeypatch.setattr(retry, "ReplayHandler", replay)
        yield a, tctx, replay


async def rejected(a: addon.Normalize, *, status: int = 422, body: bytes = REJECTION, path: bytes = b"/v1/chat/completions"):
    """A client's chat request through the hooks up to its response, which the upstream rejected:
    the flow, and what the response hook returned (the retry's coroutine, if it retries)."""
    flow = tflow.tflow(
        req=tutils.treq(host="api.example.com", port=443, path=path, method=b"POST",
                        content=json.dumps(REJECTED).encode(), headers=((b"authorization", KEY.encode()),)),
        resp=False,
    )
    flow.client_conn.timestamp_end = None  # the client is still there
    a.requestheaders(flow)
    if (waiting := a.request(flow)) is not None:
        await waiting  # normalize_rate_limit
    flow.response = http.Response.make(status, body, {"content-type": "application/json"})
    a.responseheaders(flow)
    return flow, a.response(flow)


def retried(a: addon.Normalize):
    """The flow of a rejected request, once the response hook (and any retry) is done."""

    async def main():
        flow, waiting = await rejected(a)
        if waiting is not None:
            await waiting
        return flow

    return asyncio.run(main())


def test_rejected_request_retried(normalize):
    a, _, replay = normalize
    flow = retried(a)
    (copy,) = replay.copies
    assert json.loads(copy.request.content) == {k: v for k, v in REJECTED.items() if k != "presence_penalty"}
    assert flow.response.status_code == 200 and json.loads(flow.response.content)["choices"][0]["message"]["content"] == "Hello!"
    assert copy.request.headers["authorization"] == "Bearer [redacted]"


def test_retry_in_flight_at_shutdown_holds_no_key(normalize):
    """Ctrl-C while the retry waits for a slow model: mitmproxy's save addon writes the copy it
    saw at its request hook after the addon's done hook, which must have taken the key off."""
    a, _, replay = normalize

    async def main():
        replay.gate = asyncio.Event()
        _, waiting = await rejected(a)
        task = asyncio.ensure_future(waiting)
        await asyncio.wait_for(replay.sent.wait(), 5)
        (copy,) = replay.copies
        assert copy.request.headers["authorization"] == KEY  # still to be sent
        a.done()
        assert copy.request.headers["authorization"] == "Bearer [redacted]"
        replay.gate.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_retry_reply_mitmproxy_streamed_gives_the_rejection(normalize, caplog):
    """With stream_large_bodies, a retry's reply past the limit is streamed by mitmproxy into the
    replay's mock client, which drops it (raw_content None): the client gets the first rejection,
    not the retry's headers with no body (a hang on its content-length)."""
    a, _, replay = normalize

    def streamed(copy):
        response = http.Response.make(200, COMPLETION, {"content-type": "application/json"})
        response.raw_content = None
        return response

    replay.answer = streamed
    with caplog.at_level(logging.WARNING):
        flow = retried(a)
    assert flow.response.status_code == 422
    assert json.loads(flow.response.content)["error"]["message"].endswith("from this model's requests from now on)")
    assert "the retry's reply was streamed by mitmproxy (stream_large_bodies)" in caplog.text


REJECTION_AS_OPENAI = {
    "message": "body -> presence_penalty\n  Extra inputs are not permitted (type=extra_forbidden) "
    "(the proxy will drop `presence_penalty` from this model's requests from now on)",
    "type": "invalid_request_error", "param": None, "code": None,
}


def test_retry_that_raises_gives_the_rejection_and_frees_its_slot(normalize, caplog):
    """Anything raising on the way (here mitmproxy's replay handler) leaves the client the
    rejection in OpenAI's shape, and the rate-limit slot the retry took is free again (else the
    key would lose it for good)."""
    a, tctx, replay = normalize
    tctx.configure(a, normalize_rate_limit="1/0.1s")

    async def broken():
        raise RuntimeError("the replay handler broke")

    replay.replay = broken
    with caplog.at_level(logging.ERROR):
        flow = retried(a)
    assert flow.response.status_code == 422
    assert json.loads(flow.response.content) == {"error": REJECTION_AS_OPENAI}
    assert "the retry failed; the client gets the rejection" in caplog.text
    assert a.pace.pacer.in_flight == {}


def test_retry_skipped_when_the_client_has_gone(normalize):
    """A client that went away while its request was rejected gets no retry sent for it."""
    a, _, replay = normalize

    async def main():
        flow, waiting = await rejected(a)
        flow.client_conn.timestamp_end = 1.0
        await waiting

    asyncio.run(main())
    assert replay.copies == []


def test_retry_skipped_when_the_client_left_during_the_pacing_wait(normalize):
    """The wait for the rate limit can last minutes: a client gone by its end takes no turn."""
    a, tctx, replay = normalize
    tctx.configure(a, normalize_rate_limit="1/0.2s")

    async def main():
        flow, waiting = await rejected(a)  # its first request took the one slot of the window
        task = asyncio.ensure_future(waiting)
        await asyncio.sleep(0)
        flow.client_conn.timestamp_end = 1.0
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert replay.copies == []
    assert a.pace.pacer.in_flight == {}


def test_retry_reply_to_an_http10_client_is_not_chunked(normalize):
    """The retry's reply takes the rejection's place without passing responseheaders: an
    HTTP/1.0 client must not get its chunked framing (RFC 9112 6.1) from there either."""
    a, _, replay = normalize

    def chunked(copy):
        return http.Response.make(200, COMPLETION, {"content-type": "application/json", "transfer-encoding": "chunked"})

    replay.answer = chunked

    async def main():
        flow = tflow.tflow(
            req=tutils.treq(host="api.example.com", port=443, path=b"/v1/chat/completions", method=b"POST",
                            content=json.dumps(REJECTED).encode(), http_version=b"HTTP/1.0"),
            resp=False,
        )
        flow.client_conn.timestamp_end = None
        a.requestheaders(flow)
        a.request(flow)
        flow.response = http.Response.make(422, REJECTION, {"content-type": "application/json"})
        a.responseheaders(flow)
        await a.response(flow)
        return flow

    flow = asyncio.run(main())
    assert replay.copies and flow.response.status_code == 200
    assert "transfer-encoding" not in flow.response.headers


def test_retry_sends_the_key_in_the_query_as_the_client_did(normalize):
    """Gemini's `?key=`: redacted on the stored flow by the time of the rejection, sent again
    with the retry, and redacted on the retry's copy too."""
    a, _, replay = normalize

    async def main():
        flow, waiting = await rejected(a, path=b"/v1/chat/completions?key=AIza-secret")
        assert flow.request.query["key"] == "[redacted]"
        await waiting
        return flow

    flow = asyncio.run(main())
    assert flow.response.status_code == 200
    assert replay.sent_path == "/v1/chat/completions?key=AIza-secret"
    (copy,) = replay.copies
    assert copy.request.query["key"] == "[redacted]"
