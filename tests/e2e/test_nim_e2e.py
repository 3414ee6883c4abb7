"""NIM's request validation end to end: a real mitmdump with the `nim` profile, the openai SDK, and
an upstream that validates requests as NIM does (tests/upstreams.py REJECTIONS).

Each rejection is shown both ways: through the addon the client gets NIM's answer and
the upstream never sees what it rejects; raw, the client gets NIM's rejection. The
learned ones (no profile knows them per model) show the lesson: a request that is
not streamed is retried once, repaired, so the client never sees the rejection; a
streamed one gets the rejection, which names what the proxy will drop, and the next
request succeeds. Every test uses its own model name, since what the addon learns
is kept per model for the life of the module's mitmdump.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import openai
import pytest

import tests.upstreams as U
from tests.harness.proxy import MitmdumpProcess, shared_rig
from tests.harness.upstream import RecordedRequest, Reply, ScriptedUpstream
from tests.upstreams import Rejection

pytestmark = pytest.mark.e2e

STATIC = [r for r in U.REJECTIONS.values() if not r.learned]


_rig, rig = shared_rig("nim", options={"normalize_profile": "127.0.0.1=nim"})


def validating(up: ScriptedUpstream, rx: Rejection) -> None:
    """The upstream answers as NIM would: `rx.reply` while the request has what NIM rejects."""

    def answer(request: RecordedRequest) -> Reply:
        body = json.loads(request.body)
        if rx.rejects(body):
            return Reply(rx.reply.status, rx.reply.all_headers(), list(rx.reply.chunks), mode="content-length")
        if body.get("stream"):
            return Reply(200, [("Content-Type", U.SSE)], U.nim_ok_stream(body["model"]))
        return Reply(200, [("Content-Type", U.JSON)], [U.compact(U.nim_ok_completion(body["model"]))], mode="content-length")

    up.respond("POST", U.CHAT_PATH, answer)


def client(up: ScriptedUpstream, proxy: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=up.url + "/v1", api_key="nvapi-test", max_retries=0,
                         http_client=httpx.Client(proxy=proxy, timeout=20))


def ask(up: ScriptedUpstream, proxy: str | None, rx: Rejection, model: str, *, stream: bool) -> str:
    """One chat request with the rejection's extras; the text the client got."""
    kwargs: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "extra_body": dict(rx.extra)}
    if rx.tools:
        kwargs["tools"] = list(rx.tools)
    with client(up, proxy) as c:
        if not stream:
            return c.chat.completions.create(**kwargs).choices[0].message.content
        return "".join(chunk.choices[0].delta.content or "" for chunk in c.chat.completions.create(stream=True, **kwargs))


def bodies(up: ScriptedUpstream) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in up.requests]


# --------------------------------------------------------------------------- what the profile knows


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
@pytest.mark.parametrize("rx", STATIC, ids=lambda rx: rx.name)
def test_rejected_field_never_reaches_nim(rig, rx: Rejection, stream: bool) -> None:
    """Through the addon: NIM's answer ("Hello!"), in one upstream request that NIM accepts."""
    up, mitm = rig
    validating(up, rx)
    assert ask(up, mitm.url, rx, f"{rx.name}-{stream}", stream=stream) == "Hello!"
    (sent,) = bodies(up)
    assert not rx.rejects(sent), sent


@pytest.mark.parametrize("rx", STATIC, ids=lambda rx: rx.name)
def test_rejected_field_raw(rig, rx: Rejection) -> None:
    """Raw, NIM's rejection: the SDK raises with NIM's status and message (for function.strict
    an AuthenticationError: the client would think its key is bad)."""
    up, _ = rig
    validating(up, rx)
    with pytest.raises(openai.APIStatusError) as e:
        ask(up, None, rx, rx.name, stream=False)
    assert e.value.status_code == rx.error.status
    if isinstance(json.loads(rx.reply.body).get("error"), str):
        assert str(e.value) == f"Error code: {rx.error.status}"  # openai-python loses a string `error`
    else:
        assert str(e.value) == f"Error code: {rx.error.status} - {rx.error.message}"
    if rx is U.nim_rejects_function_strict:
        assert isinstance(e.value, openai.AuthenticationError)


# --------------------------------------------------------------------------- what the addon learns


def test_learned_removal_not_streamed(rig) -> None:
    """gemma's penalties: the first request is rejected upstream and retried once without them,
    so the client gets the answer; the upstream never sees them again for that model."""
    up, mitm = rig
    rx = U.nim_rejects_penalties
    validating(up, rx)
    assert ask(up, mitm.url, rx, "gemma-a", stream=False) == "Hello!"
    first, retry = bodies(up)
    assert rx.rejects(first) and not rx.rejects(retry)
    assert {k: v for k, v in first.items() if k not in ("presence_penalty", "frequency_penalty")} == retry
    mitm.wait_for_log(r"POST 127\.0\.0\.1/v1/chat/completions 200: .*2 params rejected by the upstream, to be dropped "
                      r"from now on, rejected request retried once, repaired")
    up.reset()
    validating(up, rx)
    assert ask(up, mitm.url, rx, "gemma-a", stream=True) == "Hello!"
    assert ask(up, mitm.url, rx, "gemma-a", stream=False) == "Hello!"
    assert [rx.rejects(b) for b in bodies(up)] == [False, False]


def test_learned_removal_streamed(rig) -> None:
    """A streamed request cannot be retried unseen: the first gets NIM's 422 with a message that
    names what the proxy will drop; the second succeeds; the upstream never sees them again."""
    up, mitm = rig
    rx = U.nim_rejects_penalties
    validating(up, rx)
    with pytest.raises(openai.UnprocessableEntityError) as e:
        ask(up, mitm.url, rx, "gemma-b", stream=True)
    assert str(e.value) == (
        "Error code: 422 - " + U.NIM_PENALTIES
        + " (the proxy will drop `presence_penalty`, `frequency_penalty` from this model's requests from now on)"
    )
    assert ask(up, mitm.url, rx, "gemma-b", stream=True) == "Hello!"
    assert ask(up, mitm.url, rx, "gemma-b", stream=False) == "Hello!"
    assert [rx.rejects(b) for b in bodies(up)] == [True, False, False]


def test_learned_removal_raw(rig) -> None:
    """Raw, every request is rejected, the second as the first, and openai-python does not even
    show NIM's text (its `error` is a string)."""
    up, _ = rig
    rx = U.nim_rejects_penalties
    validating(up, rx)
    for _ in range(2):
        with pytest.raises(openai.UnprocessableEntityError) as e:
            ask(up, None, rx, "gemma-c", stream=False)
        assert str(e.value) == "Error code: 422"
    assert [rx.rejects(b) for b in bodies(up)] == [True, True]


def test_max_tokens_over_context_not_streamed(rig) -> None:
    """Claude Code's 32000 on an 8192-token model: retried with what fits (8180) unseen; later
    requests for the model go with a max_tokens that fits from the start."""
    up, mitm = rig
    rx = U.nim_rejects_max_tokens_over_context
    validating(up, rx)
    assert ask(up, mitm.url, rx, "ctx-a", stream=False) == "Hello!"
    assert [b["max_tokens"] for b in bodies(up)] == [32000, U.NIM_CONTEXT - U.NIM_PROMPT_TOKENS]
    up.reset()
    validating(up, rx)
    assert ask(up, mitm.url, rx, "ctx-a", stream=True) == "Hello!"
    (sent,) = bodies(up)
    assert 1 <= sent["max_tokens"] <= U.NIM_CONTEXT - U.NIM_PROMPT_TOKENS


def test_max_tokens_over_cap_streamed(rig) -> None:
    """A model that caps max_tokens at 4096: the first streamed request gets the rejection,
    saying the proxy will lower it; the next goes with 4096 and succeeds."""
    up, mitm = rig
    rx = U.nim_rejects_max_tokens_over_cap
    validating(up, rx)
    with pytest.raises(openai.BadRequestError) as e:
        ask(up, mitm.url, rx, "cap-a", stream=True)
    assert str(e.value) == (
        f"Error code: 400 - {U.NIM_CAP_MESSAGE} (the proxy will lower max_tokens to what this model allows from now on (here 4096))"
    )
    assert ask(up, mitm.url, rx, "cap-a", stream=True) == "Hello!"
    assert [b["max_tokens"] for b in bodies(up)] == [32000, U.NIM_CAP]


@pytest.mark.parametrize("rx", [U.nim_rejects_max_tokens_over_context, U.nim_rejects_max_tokens_over_cap], ids=lambda rx: rx.name)
def test_max_tokens_over_limit_raw(rig, rx: Rejection) -> None:
    """Raw, every agent turn asking for 32000 fails (and NIM's text is lost when `error` is a string)."""
    up, _ = rig
    validating(up, rx)
    for _ in range(2):
        with pytest.raises(openai.BadRequestError) as e:
            ask(up, None, rx, "raw", stream=True)
        string = isinstance(json.loads(rx.reply.body)["error"], str)
        assert str(e.value) == ("Error code: 400" if string else f"Error code: 400 - {rx.error.message}")


# --------------------------------------------------------------------------- NVIDIA's own client


def nvidia_message(base_url: str) -> str:
    """What ChatNVIDIA (langchain-nvidia-ai-endpoints) raises for the reply, as its user reads it."""
    import warnings

    from langchain_nvidia_ai_endpoints import ChatNVIDIA

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unable to determine validity of ..." for a local base URL
        llm = ChatNVIDIA(base_url=base_url + "/v1", model=U.NIM_LLAMA, api_key="nvapi-test")
        with pytest.raises(Exception) as e:
            llm.invoke("Hi")
    return str(e.value)


NVIDIA_422 = (f"[422] Unprocessable Entity\n{U.NIM_422_DETAIL}\nRequestID: {U.NIM_422_PROBLEM['requestId']}")


@pytest.fixture
def reverse(upstream: ScriptedUpstream, mitmdump) -> MitmdumpProcess:
    """ChatNVIDIA takes a base URL: mitmdump in reverse mode in front of the upstream."""
    return mitmdump.start(mode=f"reverse:{upstream.url}", normalize_hosts=[upstream.host_port])


def test_chatnvidia_422_reads_as_raw(upstream: ScriptedUpstream, reverse: MitmdumpProcess) -> None:
    """NIM's problem+json 422: ChatNVIDIA's message through the addon is the one it shows raw
    (title, detail, request id), while OpenAI's SDKs get `error` (test_upstreams_e2e)."""
    upstream.reply("POST", U.CHAT_PATH, [U.compact(U.NIM_422_PROBLEM)], status=422,
                   headers=[("Content-Type", "application/problem+json")])
    assert nvidia_message(upstream.url) == NVIDIA_422
    assert nvidia_message(reverse.url) == NVIDIA_422


def test_chatnvidia_422_with_data_prefix(upstream: ScriptedUpstream, reverse: MitmdumpProcess) -> None:
    """The same 422 behind `data:` (BerriAI/litellm #4558): raw, ChatNVIDIA cannot parse it and
    dumps its response object; through the addon it reads as the bare problem does."""
    upstream.reply("POST", U.CHAT_PATH, list(U.nim_problem_json_422.reply.chunks), status=422,
                   headers=[("Content-Type", "application/problem+json")])
    raw = nvidia_message(upstream.url)
    assert raw.startswith("[422] Unprocessable Content\n{'_content': b'data:{\"type\":\"urn:inference-service")
    assert nvidia_message(reverse.url) == NVIDIA_422


def test_chatnvidia_429_reads_as_raw(upstream: ScriptedUpstream, reverse: MitmdumpProcess) -> None:
    """NIM's 429 has no `detail`, so ChatNVIDIA shows its title and then the whole body: the
    same first line through the addon, and the body is NIM's problem with OpenAI's `error`
    beside it (which is what lets OpenAI's SDKs read it)."""
    upstream.reply("POST", U.CHAT_PATH, [U.compact(U.NIM_RATE_LIMIT_PROBLEM)], status=429,
                   headers=[("Content-Type", "application/json")])
    raw = nvidia_message(upstream.url)
    assert raw == "[429] Too Many Requests\n{'status': 429, 'title': 'Too Many Requests'}"
    error = {"message": "Too Many Requests", "type": "requests", "param": None, "code": None}
    assert nvidia_message(reverse.url) == f"[429] Too Many Requests\n{ {**U.NIM_RATE_LIMIT_PROBLEM, 'error': error}!r}"


def test_retry_over_tls_in_reverse_mode(tls_upstream: ScriptedUpstream, mitmdump, tmp_path) -> None:
    """As NIM is reached in the README's recipe: reverse mode to an HTTPS upstream. The retry goes
    out on mitmproxy's own TLS settings (here ssl_insecure for the test's self-signed upstream),
    with the client's key, although the flow's stored copy is redacted by then; the saved flows
    (the client's, and the retry as a replayed flow) hold no key."""
    rx = U.nim_rejects_penalties
    validating(tls_upstream, rx)
    saved = tmp_path / "flows.mitm"
    mitm = mitmdump.start("-w", str(saved), mode=f"reverse:{tls_upstream.url}", normalize_hosts=[tls_upstream.host_port],
                          ssl_insecure=True, options={"normalize_profile": f"{tls_upstream.host_port}=nim"})
    with openai.OpenAI(base_url=mitm.url + "/v1", api_key="nvapi-test", max_retries=0, http_client=httpx.Client(timeout=20)) as c:
        reply = c.chat.completions.create(model="gemma-tls", messages=[{"role": "user", "content": "Hi"}], extra_body=dict(rx.extra))
    assert reply.choices[0].message.content == "Hello!"
    assert [rx.rejects(b) for b in bodies(tls_upstream)] == [True, False]
    assert [r.header("authorization") for r in tls_upstream.requests] == ["Bearer nvapi-test"] * 2
    mitm.stop()
    from mitmproxy import io

    with saved.open("rb") as f:
        flows = list(io.FlowReader(f).stream())
    assert sorted(f.is_replay or "client" for f in flows) == ["client", "request"]
    assert [f.request.headers["authorization"] for f in flows] == ["Bearer [redacted]"] * 2
    assert b"nvapi-test" not in saved.read_bytes()


def test_retry_in_flight_at_shutdown_is_saved_without_its_key(upstream: ScriptedUpstream, mitmdump, tmp_path) -> None:
    """Ctrl-C while the retry waits for a slow model: `-w` writes the client's flow and the retry's
    copy, both still in flight, and neither holds the key the upstream got."""
    rx = U.nim_rejects_penalties
    gate = threading.Event()

    def answer(request: RecordedRequest) -> Reply:
        if rx.rejects(json.loads(request.body)):
            return Reply(rx.reply.status, rx.reply.all_headers(), list(rx.reply.chunks), mode="content-length")
        gate.wait(20)  # the retry: the model thinks until the test has stopped mitmdump
        return Reply(200, [("Content-Type", U.JSON)], [U.compact(U.nim_ok_completion("gemma-slow"))], mode="content-length")

    upstream.respond("POST", U.CHAT_PATH, answer)
    saved = tmp_path / "flows.mitm"
    mitm = mitmdump.start("-w", str(saved), normalize_hosts=[upstream.host_port], options={"normalize_profile": f"{upstream.host_port}=nim"})

    def ask_in_background() -> None:
        try:
            ask(upstream, mitm.url, rx, "gemma-slow", stream=False)
        except openai.APIError:
            pass  # mitmdump went away under it: expected

    thread = threading.Thread(target=ask_in_background, daemon=True)
    thread.start()
    try:
        first, retried = upstream.wait_for_requests(2, timeout=10)
        assert [r.header("authorization") for r in (first, retried)] == ["Bearer nvapi-test"] * 2
        assert mitm.stop() == 0, mitm.log
    finally:
        gate.set()
        thread.join(10)
    from mitmproxy import io

    with saved.open("rb") as f:
        flows = list(io.FlowReader(f).stream())
    assert sorted(f.is_replay or "client" for f in flows) == ["client", "request"]
    assert [f.request.headers["authorization"] for f in flows] == ["Bearer [redacted]"] * 2
    assert b"nvapi-test" not in saved.read_bytes()


def test_retry_reply_past_stream_large_bodies_gives_the_rejection(upstream: ScriptedUpstream, mitmdump) -> None:
    """With stream_large_bodies (which the README recommends), a retry whose reply is larger than
    the limit: mitmproxy streams that reply into its replay handler, which keeps none of it. The
    client gets the first rejection (naming what the proxy drops from now on), at once, rather
    than the retry's headers with no body behind them. (250 bytes: the request, 120 bytes, and
    the rejection, 177, are read whole; the retry's reply, 343, is not.)"""
    rx = U.nim_rejects_penalties
    validating(upstream, rx)
    mitm = mitmdump.start(normalize_hosts=[upstream.host_port],
                          options={"normalize_profile": f"{upstream.host_port}=nim", "stream_large_bodies": "250"})
    with client(upstream, mitm.url) as c, pytest.raises(openai.UnprocessableEntityError) as e:
        c.chat.completions.create(model="gemma-large", messages=[{"role": "user", "content": "Hi"}], extra_body=dict(rx.extra))
    assert str(e.value).endswith("(the proxy will drop `presence_penalty`, `frequency_penalty` from this model's requests from now on)")
    assert [rx.rejects(b) for b in bodies(upstream)] == [True, False]
    mitm.wait_for_log(r"the retry's reply was streamed by mitmproxy \(stream_large_bodies\) and not kept; the client gets the rejection")


# --------------------------------------------------------------------------- NIM's error shapes, raw
# Through the addon each of these reaches every client as OpenAI's error with the status to act
# on (test_upstreams_e2e, test_python_clients_e2e, test_node_clients_e2e replay them all).

RAW_ERRORS = [
    # A 401: the client concludes its key is bad.
    ("nim_function_strict_401", openai.AuthenticationError, f"Error code: 401 - {U.NIM_STRICT_MESSAGE}"),
    # A 500: a server failure, not a rate limit to back off from.
    ("nim_resource_exhausted", openai.InternalServerError, f"Error code: 500 - {U.NIM_EXHAUSTED}"),
    # No `error.message`: openai-python shows only the status; no model_not_found code.
    ("nim_function_not_found_404", openai.NotFoundError, "Error code: 404"),
    ("nim_function_gone_410", openai.APIStatusError, "Error code: 410"),
    # A 400, which clients do not retry, and no message.
    ("nim_degraded_function", openai.BadRequestError, "Error code: 400"),
    ("nim_rate_limit_429", openai.RateLimitError, "Error code: 429"),
    # A string `error`: the text is lost.
    ("nim_error_string", openai.BadRequestError, "Error code: 400"),
    ("nim_penalties_422", openai.UnprocessableEntityError, "Error code: 422"),
    # openai-python reads a flat body's `message` (openai-node says "400 status code (no body)").
    ("nim_flat_error", openai.BadRequestError, f"Error code: 400 - {U.NIM_FLAT_MESSAGE}"),
]


@pytest.mark.parametrize(("name", "kind", "text"), RAW_ERRORS, ids=[r[0] for r in RAW_ERRORS])
def test_raw_nim_error_shape(upstream: ScriptedUpstream, name: str, kind: type, text: str) -> None:
    fx = U.FIXTURES[name]
    U.serve(upstream, fx)
    with client(upstream, None) as c, pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model=fx.request.model, messages=[{"role": "user", "content": "Hi"}])
    assert type(e.value) is kind
    assert str(e.value) == text
    assert e.value.status_code == fx.reply.status


def test_every_nim_error_shape_is_shown_raw() -> None:
    nim = {n for n, f in U.FIXTURES.items() if f.upstream == "NVIDIA NIM" and f.reply.status >= 400}
    assert nim - {"nim_problem_json_422", "nim_backend_error_leak"} == {r[0] for r in RAW_ERRORS}
