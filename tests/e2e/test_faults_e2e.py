"""Faults through a real mitmdump: an upstream or a client that goes away mid-stream,
and hosts the addon must not touch, over HTTPS."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.harness.upstream import ABORT, Gate
from tests.recorded import NIM_STREAM, NIM_STREAM_EVENTS, NIM_STREAM_REPAIRED

pytestmark = pytest.mark.e2e

SSE = [("Content-Type", "text/event-stream")]
PATH = "/v1/chat/completions"
REQUEST = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def repaired_events(n):
    return b"".join(e + b"\n\n" for e in NIM_STREAM_REPAIRED.split(b"\n\n")[:n])


@pytest.mark.parametrize("mode", ["chunked", "content-length"])
def test_upstream_dies_mid_stream(upstream, mitmdump, mode):
    """The client gets the events that arrived, then an abnormal end: no finish chunk, no [DONE]."""
    upstream.reply("POST", PATH, [*NIM_STREAM_EVENTS[:3], ABORT], headers=SSE, mode=mode)
    proxy = mitmdump.start(normalize_hosts=[upstream.host_port])
    received = b""
    with httpx.Client(proxy=proxy.url, timeout=10) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            with client.stream("POST", upstream.url + PATH, json=REQUEST) as response:
                for piece in response.iter_raw():
                    received += piece
    assert received == repaired_events(3)
    proxy.wait_for_log(r"stream ended early after 3 events ")


def test_upstream_dies_mid_stream_openai_sdk(upstream, mitmdump):
    upstream.reply("POST", PATH, [*NIM_STREAM_EVENTS[:3], ABORT], headers=SSE)
    proxy = mitmdump.start(normalize_hosts=[upstream.host_port])
    client = openai.OpenAI(base_url=upstream.url + "/v1", api_key="test", max_retries=0,
                           http_client=httpx.Client(proxy=proxy.url))
    texts = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="m", messages=[], stream=True):
            texts.append(chunk.choices[0].delta.content)
    assert texts == ["", "Ta", "bs, "]


def test_client_disconnects_mid_stream(upstream, mitmdump):
    """The addon's per-flow state is released through the error hook."""
    gate = Gate()
    upstream.reply("POST", PATH, [NIM_STREAM_EVENTS[0], gate, *NIM_STREAM_EVENTS[1:]], headers=SSE)
    proxy = mitmdump.start(normalize_hosts=[upstream.host_port])
    with httpx.Client(proxy=proxy.url, timeout=10) as client:
        with client.stream("POST", upstream.url + PATH, json=REQUEST) as response:
            first = next(response.iter_raw())
    # The client has hung up; let the upstream go on writing into the dead flow.
    gate.set()
    assert first == repaired_events(1)
    proxy.wait_for_log(r"stream ended early after \d+ events ")


def test_untargeted_https_host_is_byte_identical(tls_upstream, upstream, mitmdump, monkeypatch):
    """Over HTTPS (mitmproxy intercepting TLS), a host not in normalize_hosts gets the upstream's exact bytes."""
    tls_upstream.reply("POST", PATH, NIM_STREAM_EVENTS, headers=SSE)
    proxy = mitmdump.start(normalize_hosts=[upstream.host_port], ssl_insecure=True)
    with httpx.Client(proxy=proxy.url, verify=str(proxy.ca_path), timeout=10) as client:
        with client.stream("POST", tls_upstream.url + PATH, json=REQUEST, headers={"accept-encoding": "gzip"}) as response:
            body = b"".join(response.iter_raw())
            assert response.headers["content-type"] == "text/event-stream"
    assert body == NIM_STREAM
    assert tls_upstream.requests[0].header("accept-encoding") == "gzip"
    assert "normalized" not in proxy.log


def test_allow_hosts_leaves_other_tls_alone(tls_upstream, mitmdump):
    """With --allow-hosts naming only the target, mitmproxy does not even intercept other
    TLS: the client sees the other host's own certificate, not mitmproxy's."""
    tls_upstream.reply("POST", PATH, NIM_STREAM_EVENTS, headers=SSE)
    proxy = mitmdump.start("--allow-hosts", r"^integrate\.api\.nvidia\.com:443$", normalize_hosts=["integrate.api.nvidia.com"])
    with httpx.Client(proxy=proxy.url, verify=str(tls_upstream.cert_path), timeout=10) as client:
        body = client.post(tls_upstream.url + PATH, json=REQUEST).content
    assert body == NIM_STREAM
