"""End to end: a NIM-shaped stream through `mitmdump -s addon.py` to real clients.

The client is the `openai` SDK (`client.chat.completions.create(stream=True)`)
or httpx reading the raw body. The upstream is the scripted local server from
upstream.py replaying the stream from nim_stream.py.

Expected bytes are written out literally below (not computed with the code
under test), so a wrong rewrite fails here.
"""

from __future__ import annotations

import json
import ssl

import httpx
import openai
import pytest

from tests.harness.proxy import MitmdumpLauncher, shared_rig
from tests.harness.upstream import Gate, ScriptedUpstream

from .nim_stream import CHAT_PATH, FRAMINGS, ID, MODEL, TEXT, nim_body, nim_chunks

pytestmark = pytest.mark.e2e

SSE_UTF8 = "text/event-stream; charset=utf-8"
REQUEST = {"model": MODEL, "messages": [{"role": "user", "content": "Say it."}], "stream": True}

# What the client must receive for the NIM stream, written by hand: nulls in
# delta gone, "usage":null and "matched_stop":null gone, "logprobs":null and
# "finish_reason":null kept, content "" on the role chunk, UTF-8 unescaped.
_HEAD = (
    '{"id":"8f20d6699e194a0abed38c671384d32d","object":"chat.completion.chunk",'
    '"created":1754000000,"model":"qwen/qwen3-next-80b-a3b-instruct","choices":'
)
EXPECTED_EVENTS = [
    _HEAD + '[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}',
    _HEAD + '[{"index":0,"delta":{"content":"Ta"},"logprobs":null,"finish_reason":null}]}',
    _HEAD + '[{"index":0,"delta":{"content":"bs, "},"logprobs":null,"finish_reason":null}]}',
    _HEAD + '[{"index":0,"delta":{"content":"naïve "},"logprobs":null,"finish_reason":null}]}',
    _HEAD + '[{"index":0,"delta":{"content":"café — "},"logprobs":null,"finish_reason":null}]}',
    _HEAD + '[{"index":0,"delta":{"content":"東京"},"logprobs":null,"finish_reason":null}]}',
    _HEAD + '[{"index":0,"delta":{"content":" 🚀"},"logprobs":null,"finish_reason":null}]}',
    _HEAD + '[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}',
]
DONE = b"data: [DONE]\n\n"
KEEPALIVE_OUT = b": keep-alive\n\n"


def expected_body(framing: str = "standard") -> bytes:
    events = [b"data: " + e.encode("utf-8") + b"\n\n" for e in EXPECTED_EVENTS]
    if framing == "keepalive":
        # nim_chunks("keepalive") puts a comment first, and after events 0 and 3.
        events = [KEEPALIVE_OUT, events[0], KEEPALIVE_OUT, *events[1:4], KEEPALIVE_OUT, *events[4:]]
    # "no_done" ends without a finish chunk and [DONE]; the addon's finish chunk
    # is then exactly the last event above. Every other framing converges too.
    return b"".join(events) + DONE


# --------------------------------------------------------------------------- helpers


def serve_nim(
    upstream: ScriptedUpstream,
    framing: str = "standard",
    *,
    mode: str = "chunked",
    content_type: str = "text/event-stream",
    chunks: list | None = None,
) -> None:
    upstream.reply(
        "POST",
        CHAT_PATH,
        nim_chunks(framing) if chunks is None else chunks,
        headers={"Content-Type": content_type},
        mode=mode,
    )


def sdk_client(base_url: str, http_client: httpx.Client | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=base_url, api_key="test", max_retries=0, timeout=15, http_client=http_client
    )


def sdk_stream(client: openai.OpenAI) -> list:
    stream = client.chat.completions.create(
        model=MODEL, messages=REQUEST["messages"], stream=True
    )
    with stream:
        return list(stream)


def check_sdk_chunks(chunks: list) -> None:
    """What a chat app built on the SDK relies on."""
    assert chunks, "no chunks"
    with_choices = [c for c in chunks if c.choices]
    assert with_choices == chunks, "a chunk without choices (e.g. a usage chunk) was not expected"

    # Older chat apps: "".join(str(delta.content)) - str() on None included. Every
    # chunk before the finish chunk must carry a string (the role chunk: "").
    # The finish chunk has "delta":{} exactly as OpenAI sends it, so its
    # .content is None in the SDK (str() would give "None" with OpenAI too);
    # it is checked separately below.
    *body, last = chunks
    assert "".join(str(c.choices[0].delta.content) for c in body) == TEXT
    assert all(isinstance(c.choices[0].delta.content, str) for c in body)
    assert all(c.choices[0].finish_reason is None for c in body)

    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.model_fields_set == set(), "finish chunk delta must be {}"
    assert last.choices[0].delta.content is None

    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert all("role" not in c.choices[0].delta.model_fields_set for c in chunks[1:])

    assert {c.id for c in chunks} == {ID}
    assert {c.model for c in chunks} == {MODEL}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    for c in chunks:
        # No null extras survive, in the model's view either.
        assert "usage" not in c.model_fields_set
        assert "matched_stop" not in (c.choices[0].model_extra or {})
        assert "reasoning_content" not in (c.choices[0].delta.model_extra or {})
        assert "tool_calls" not in c.choices[0].delta.model_fields_set


def raw_post(url: str, **client_kw) -> tuple[httpx.Response, bytes, list[bytes]]:
    """POSTs REQUEST with httpx, returns (response, raw body, raw pieces as read)."""
    with httpx.Client(timeout=15, **client_kw) as c:
        with c.stream("POST", url, json=REQUEST, headers={"Authorization": "Bearer test"}) as r:
            pieces = list(r.iter_raw())
    return r, b"".join(pieces), pieces


def check_sse_headers(r: httpx.Response) -> None:
    assert r.status_code == 200
    assert r.headers["content-type"] == SSE_UTF8
    assert "content-length" not in r.headers
    assert r.headers.get("cache-control") == "no-cache"
    assert r.headers.get("x-accel-buffering") == "no"
    assert "content-encoding" not in r.headers


def show(body: bytes) -> str:
    return body.decode("utf-8", "replace").replace("\n", "\\n\n")


# --------------------------------------------------------------------------- fixtures


# One upstream and one regular-mode mitmdump targeting it, shared by this module's tests.
_regular, regular = shared_rig("regular", fixture="regular")


# --------------------------------------------------------------------------- (a) regular proxy, plain HTTP


@pytest.mark.parametrize("framing", FRAMINGS)
def test_regular_proxy_openai_sdk(regular, framing: str) -> None:
    up, mitm = regular
    serve_nim(up, framing)
    client = sdk_client(up.url + "/v1", httpx.Client(proxy=mitm.url))
    with client:
        chunks = sdk_stream(client)
    check_sdk_chunks(chunks)
    assert len(chunks) == len(EXPECTED_EVENTS)
    assert [r.path for r in up.requests] == [CHAT_PATH]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_regular_proxy_exact_bytes(regular, framing: str) -> None:
    up, mitm = regular
    serve_nim(up, framing)
    r, body, _ = raw_post(up.url + CHAT_PATH, proxy=mitm.url)
    check_sse_headers(r)
    assert body == expected_body(framing), show(body)
    assert body.count(DONE) == 1 and body.endswith(DONE)


@pytest.mark.parametrize("mode", ["content-length", "close"])
def test_upstream_framing_modes(regular, mode: str) -> None:
    """A content-length or close-delimited upstream body: socket reads, not events, arrive."""
    up, mitm = regular
    serve_nim(up, mode=mode)
    r, body, _ = raw_post(up.url + CHAT_PATH, proxy=mitm.url)
    check_sse_headers(r)
    assert body == expected_body(), show(body)


def test_response_is_chunked_and_connection_reused(regular) -> None:
    """The rewritten body length is unknown up front: it must be chunked, not
    close-delimited, so the client's connection stays usable for the next request."""
    up, mitm = regular
    serve_nim(up)
    with httpx.Client(proxy=mitm.url, timeout=15) as c:
        local_ports = []
        for _ in range(2):
            with c.stream("POST", up.url + CHAT_PATH, json=REQUEST) as r:
                assert r.headers.get("transfer-encoding") == "chunked"
                local_ports.append(r.extensions["network_stream"].get_extra_info("client_addr")[1])
                assert b"".join(r.iter_raw()) == expected_body()
        # Both requests went over one client connection to mitmproxy.
        assert local_ports[0] == local_ports[1]


def test_streams_each_event_as_it_arrives(regular) -> None:
    """The upstream holds back event k+1 until the client has seen chunk k.

    A proxy that buffered the body (or even one event) would deadlock here:
    the upstream gives up after its gate timeout and resets the connection.
    """
    up, mitm = regular
    gates = [Gate() for _ in EXPECTED_EVENTS]
    chunks: list = []
    pieces = nim_chunks("standard")
    g = iter(gates)
    for p in pieces:
        chunks.append(p)
        if p.endswith(b"\n\n") and not p.startswith(b"data: [DONE]"):
            chunks.append(next(g))  # after each complete JSON event
    assert next(g, None) is None
    serve_nim(up, chunks=chunks)

    client = sdk_client(up.url + "/v1", httpx.Client(proxy=mitm.url))
    got = []
    try:
        with client, client.chat.completions.create(model=MODEL, messages=REQUEST["messages"], stream=True) as stream:
            for i, chunk in enumerate(stream):
                got.append(chunk)
                gates[i].set()
    except openai.APIError as e:
        pytest.fail(f"stream broke after {len(got)} chunks: {e!r}; upstream: {up.errors}")
    assert not up.errors, up.errors
    check_sdk_chunks(got)


# --------------------------------------------------------------------------- (b) reverse mode


@pytest.mark.parametrize("framing", ["standard", "crlf"])
def test_reverse_mode_openai_sdk(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, framing: str) -> None:
    serve_nim(upstream, framing)
    mitm = mitmdump.start(mode=f"reverse:{upstream.url}", normalize_hosts=[upstream.host_port])
    with sdk_client(mitm.url + "/v1") as client:
        chunks = sdk_stream(client)
    check_sdk_chunks(chunks)

    r, body, _ = raw_post(mitm.url + CHAT_PATH)
    check_sse_headers(r)
    assert body == expected_body(framing), show(body)


# --------------------------------------------------------------------------- (c) HTTPS through the proxy


def test_https_proxy_from_environment(
    tls_upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a user does: HTTPS_PROXY and SSL_CERT_FILE set, the SDK built with no http_client."""
    serve_nim(tls_upstream)
    mitm = mitmdump.start(normalize_hosts=[tls_upstream.host_port], ssl_insecure=True)
    assert mitm.ca_path.is_file()
    monkeypatch.setenv("HTTPS_PROXY", mitm.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(mitm.ca_path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    # no_proxy_env (autouse) removed NO_PROXY/no_proxy, so 127.0.0.1 is not exempt.

    with sdk_client(tls_upstream.url + "/v1") as client:
        chunks = sdk_stream(client)
    check_sdk_chunks(chunks)
    # It really went through mitmproxy, and mitmproxy really intercepted TLS.
    mitm.wait_for_log(rf"POST https://127\.0\.0\.1:{tls_upstream.port}{CHAT_PATH}")
    assert tls_upstream.requests[-1].header("accept-encoding") == "identity"

    # Same, raw bytes (httpx 0.28 also reads HTTPS_PROXY and SSL_CERT_FILE).
    r, body, _ = raw_post(tls_upstream.url + CHAT_PATH)
    check_sse_headers(r)
    assert body == expected_body(), show(body)


def test_https_client_rejects_proxy_without_its_ca(
    tls_upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher
) -> None:
    """Guards the test above: without trusting mitmproxy's CA the client must fail,
    so the HTTPS test cannot pass by bypassing the proxy or verification."""
    serve_nim(tls_upstream)
    mitm = mitmdump.start(normalize_hosts=[tls_upstream.host_port], ssl_insecure=True)
    other_ca = ssl.create_default_context(cafile=str(tls_upstream.cert_path))
    with pytest.raises(httpx.ConnectError):
        raw_post(tls_upstream.url + CHAT_PATH, proxy=mitm.url, verify=other_ca)
    # And directly (no proxy) the upstream's own cert verifies.
    r, body, _ = raw_post(tls_upstream.url + CHAT_PATH, verify=other_ca)
    assert body == nim_body()


# --------------------------------------------------------------------------- (d) untargeted host


def test_untargeted_host_passes_through_unchanged(
    upstream_factory, mitmdump: MitmdumpLauncher
) -> None:
    targeted = upstream_factory()
    other = upstream_factory()
    serve_nim(other)
    mitm = mitmdump.start(normalize_hosts=[targeted.host_port])

    r, body, _ = raw_post(other.url + CHAT_PATH, proxy=mitm.url)
    assert body == nim_body()  # byte for byte, nulls and all
    assert b'"content":null' in body and b'"usage":null' in body
    assert r.headers["content-type"] == "text/event-stream"
    assert "x-accel-buffering" not in r.headers
    # The request was not touched either.
    assert other.requests[-1].header("accept-encoding") != "identity"
    assert "gzip" in other.requests[-1].header("accept-encoding")

    # Through the SDK, the untouched stream shows the problem the addon fixes.
    with sdk_client(other.url + "/v1", httpx.Client(proxy=mitm.url)) as client:
        chunks = sdk_stream(client)
    assert chunks[0].choices[0].delta.content is None
    assert not targeted.requests


# --------------------------------------------------------------------------- (e) exo: stream sent as JSON


def test_exo_stream_sent_as_application_json(regular) -> None:
    up, mitm = regular
    serve_nim(up, content_type="application/json")
    with sdk_client(up.url + "/v1", httpx.Client(proxy=mitm.url)) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=REQUEST["messages"], stream=True
        )
        assert raw.headers["content-type"] == SSE_UTF8
        with raw.parse() as stream:
            chunks = list(stream)
    check_sdk_chunks(chunks)

    r, body, _ = raw_post(up.url + CHAT_PATH, proxy=mitm.url)
    check_sse_headers(r)
    assert body == expected_body(), show(body)


def test_exo_json_without_stream_request_is_left_alone(regular) -> None:
    """application/json answering a request without "stream": true is a plain
    JSON reply: content-type kept, nothing turned into SSE."""
    up, mitm = regular
    reply = json.dumps({"id": ID, "object": "chat.completion", "choices": []}).encode()
    up.reply("POST", CHAT_PATH, [reply], headers={"Content-Type": "application/json"}, mode="content-length")
    with httpx.Client(proxy=mitm.url, timeout=15) as c:
        r = c.post(up.url + CHAT_PATH, json={"model": MODEL, "messages": [], "stream": False})
    assert r.headers["content-type"] == "application/json"
    assert json.loads(r.content)["id"] == ID


# --------------------------------------------------------------------------- (f) request side


def test_targeted_upstream_is_asked_for_identity_encoding(regular) -> None:
    up, mitm = regular
    serve_nim(up)
    with sdk_client(up.url + "/v1", httpx.Client(proxy=mitm.url)) as client:
        sdk_stream(client)
    (req,) = up.requests
    assert req.method == "POST" and req.path == CHAT_PATH
    assert req.header_all("accept-encoding") == ["identity"]
    assert json.loads(req.body)["stream"] is True
    assert req.header("authorization") == "Bearer test"


# --------------------------------------------------------------------------- normalize_hosts forms


def test_normalize_hosts_given_twice_targets_both(upstream_factory, mitmdump: MitmdumpLauncher) -> None:
    """`--set normalize_hosts=A --set normalize_hosts=B`: mitmproxy 12 appends, both are targeted."""
    a, b = upstream_factory(), upstream_factory()
    for up in (a, b):
        serve_nim(up)
    mitm = mitmdump.start(normalize_hosts=[a.host_port, b.host_port])
    for up in (a, b):
        r, body, _ = raw_post(up.url + CHAT_PATH, proxy=mitm.url)
        check_sse_headers(r)
        assert body == expected_body(), show(body)


def test_normalize_hosts_bare_host_matches_any_port(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher) -> None:
    serve_nim(upstream)
    mitm = mitmdump.start(normalize_hosts=["127.0.0.1"])
    r, body, _ = raw_post(upstream.url + CHAT_PATH, proxy=mitm.url)
    assert body == expected_body(), show(body)


def test_default_hosts_leave_local_traffic_alone(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher) -> None:
    """Without --set normalize_hosts only integrate.api.nvidia.com is targeted."""
    serve_nim(upstream)
    mitm = mitmdump.start()
    r, body, _ = raw_post(upstream.url + CHAT_PATH, proxy=mitm.url)
    assert body == nim_body()
    assert r.headers["content-type"] == "text/event-stream"


def test_paths_other_than_chat_completions_are_left_alone(regular) -> None:
    up, mitm = regular
    up.reply("POST", "/v1/completions", nim_chunks(), headers={"Content-Type": "text/event-stream"})
    with httpx.Client(proxy=mitm.url, timeout=15) as c:
        r = c.post(up.url + "/v1/completions", json=REQUEST)
    assert r.content == nim_body()
    assert up.requests[-1].header("accept-encoding") != "identity"


# --------------------------------------------------------------------------- compressed upstream


@pytest.mark.parametrize("mode", ["chunked", "content-length"])
def test_upstream_that_ignores_identity_and_gzips(regular, mode: str) -> None:
    """Asked for identity, the upstream gzips anyway: the client still gets the
    rewritten stream, uncompressed and without content-encoding."""
    up, mitm = regular
    up.reply(
        "POST", CHAT_PATH, nim_chunks(), headers={"Content-Type": "text/event-stream"}, mode=mode, gzip=True
    )
    r, body, _ = raw_post(up.url + CHAT_PATH, proxy=mitm.url)
    assert up.requests[-1].header("accept-encoding") == "identity"
    check_sse_headers(r)
    assert body == expected_body(), show(body)
