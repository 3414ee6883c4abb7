"""End to end (issue #10): hostile clients and upstreams against one real mitmdump.

Every test is named after the case it proves, sends the hostile input
(tests/hostile.py, at make-test size) through `mitmdump -s addon.py` in regular
proxy mode, and asserts what the client gets. While the attack runs, a
`Bystander` (another client's chat stream through the same proxy) must be
served without waiting `MAX_WAIT_S` (one second) for any of its events; for the
memory cases, the proxy's peak RSS (VmHWM) must not rise by more than the
bound the test states, measured on a mitmdump of its own (`fresh`: memory a
process once took, glibc keeps, so a shared one would hide the next peak).
`make load` (bench/load.py --attacks) runs the same attacks at the sizes the
issue measured.
"""

from __future__ import annotations

import json
import socket

import httpx
import openai
import pytest

from tests import hostile
from tests.harness.proxy import MitmdumpProcess, shared_rig
from tests.harness.upstream import Gate, ScriptedUpstream
from tests.recorded import NIM_STREAM, NIM_STREAM_EVENTS, NIM_STREAM_REPAIRED

from .bystander import Bystander, Memory

pytestmark = pytest.mark.e2e

_rig, rig = shared_rig("hardening")
SIZES = hostile.sizes()  # make test's; make load sets NORMALIZE_ATTACKS=full


@pytest.fixture
def fresh(rig, mitmdump):
    """The shared upstream, and a mitmdump of the test's own targeting it (for memory measures)."""
    up, _ = rig
    return up, mitmdump.start(normalize_hosts=[up.host_port])

PATH = "/v1/chat/completions"
SSE = [("Content-Type", "text/event-stream")]
JSON = [("Content-Type", "application/json")]
DONE = b"data: [DONE]\n\n"
COMPLETION = b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
NULL_COMPLETION = COMPLETION.replace(b'"content":"ok"', b'"content":null')
REPAIRED_NULL_COMPLETION = json.dumps(json.loads(COMPLETION.replace(b'"content":"ok"', b'"content":""')), indent=2).encode() + b"\n"
FIRST_EVENT_REPAIRED = NIM_STREAM_REPAIRED.split(b"\n\n")[0] + b"\n\n"


def post(mitm: MitmdumpProcess, url: str, *, content: bytes, headers: dict[str, str] | None = None, timeout: float = 30) -> httpx.Response:
    """A POST through the proxy; the body is read raw (not decoded), into `.raw`."""
    headers = {"content-type": "application/json", **(headers or {})}
    with httpx.Client(proxy=mitm.url, timeout=timeout, trust_env=False) as client:
        with client.stream("POST", url, content=content, headers=headers) as response:
            response.raw = b"".join(response.iter_raw())  # type: ignore[attr-defined]
    return response


def chat(**extra: object) -> bytes:
    return json.dumps(hostile.chat_request(**extra)).encode()


def upstream_bodies(up: ScriptedUpstream) -> list[bytes]:
    return [r.body for r in up.requests if r.path == PATH]


# -- case 2: client-triggered memory and freezes ---------------------------------


def test_request_gzip_bomb(fresh):
    """A gzip request body inflating to 256 MiB (1 GiB in make load): decoded only up to
    normalize_max_body_bytes, then passed upstream as it came."""
    up, mitm = fresh
    bomb = hostile.gzip_bomb(SIZES.bomb_inflated)
    up.reply("POST", PATH, COMPLETION, headers=JSON, mode="content-length")
    with Memory(mitm.proc.pid) as memory, Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=bomb, headers={"content-encoding": "gzip"})
    assert (r.status_code, r.raw) == (200, COMPLETION)
    assert upstream_bodies(up) == [bomb]
    mitm.wait_for_log(r"the request body was not read \(the body decodes to more than 16777216 bytes in one piece\); passing it through unchanged")
    memory.check(64)


def test_request_of_many_empty_objects(fresh):
    """12 MiB of `{},` messages (4 million objects; 50 MiB in make load): refused before parsing."""
    up, mitm = fresh
    body = hostile.empty_objects_request(SIZES.empty_objects)
    up.reply("POST", PATH, COMPLETION, headers=JSON, mode="content-length")
    with Memory(mitm.proc.pid) as memory, Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=body)
    assert (r.status_code, r.raw) == (200, COMPLETION)
    assert upstream_bodies(up) == [body]
    if len(body) <= 16 * 1024 * 1024:
        mitm.wait_for_log(r"the request body was not read \(not JSON within the limits: more than 1000000 objects and arrays\)")
    else:
        mitm.wait_for_log(r"the request body was not read \(\d+ bytes, over normalize_max_body_bytes \(16777216\)\)")
    memory.check(32 + 3 * len(body) / 2**20)  # mitmproxy's own copies of the body; 1.5 GiB before


def test_request_nested_too_deep(rig):
    """100,000 deep: passed upstream as it came, with a log line (an uncaught RecursionError before)."""
    up, mitm = rig
    body = hostile.deep_request(SIZES.depth)
    up.reply("POST", PATH, COMPLETION, headers=JSON, mode="content-length")
    with Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=body)
    assert (r.status_code, r.raw) == (200, COMPLETION)
    assert upstream_bodies(up) == [body]
    mitm.wait_for_log(r"the request body was not read \(not JSON within the limits: maximum recursion depth exceeded")
    assert "Traceback" not in mitm.log


# -- case 3: upstream-triggered freezes --------------------------------------------


def test_html_error_of_unclosed_comments(rig):
    """A 128 KiB HTML 502 of unclosed `<!--` (21 s of frozen proxy before): OpenAI's error at once."""
    up, mitm = rig
    up.reply("POST", PATH, hostile.unclosed_comments(SIZES.html), status=502, headers=[("Content-Type", "text/html")], mode="content-length")
    with Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat())
    assert r.status_code == 502 and r.headers["content-type"] == "application/json"
    assert json.loads(r.raw) == {"error": {"message": "Bad Gateway", "type": "server_error", "param": None, "code": None}}


def test_stream_error_event_of_unclosed_comments(rig):
    """`event: error` with 1 MiB (8 MiB in make load) of unclosed `<!--` as its data."""
    up, mitm = rig
    error = b"event: error\ndata: " + hostile.unclosed_comments(SIZES.stream_error) + b"\n\n"
    up.reply("POST", PATH, [NIM_STREAM_EVENTS[0], error, DONE], headers=SSE)
    with Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat(stream=True))
    assert r.raw == FIRST_EVENT_REPAIRED + b'data: {"error":{"message":"error","type":"server_error","param":null,"code":null}}\n\n' + DONE


@pytest.mark.parametrize("status", [200, 500])
def test_reply_gzip_bomb(fresh, status):
    """A whole reply (or error) of 256 MiB gzipped (1 GiB in make load): not decoded past the cap;
    it reaches the client as it came (peak 2.1-4.2 GiB and seconds frozen before)."""
    up, mitm = fresh
    bomb = hostile.gzip_bomb(SIZES.bomb_inflated)
    up.reply("POST", PATH, bomb, status=status, headers=[*JSON, ("Content-Encoding", "gzip")], mode="content-length")
    with Memory(mitm.proc.pid) as memory, Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat())
    assert (r.status_code, r.headers["content-encoding"], r.raw) == (status, "gzip", bomb)
    mitm.wait_for_log(rf"{status}: the reply body was not read \(the body decodes to more than 16777216 bytes in one piece\)")
    memory.check(64)


def test_stream_gzip_bomb(fresh):
    """A gzip event stream that inflates past normalize_max_event_bytes in one piece: one OpenAI
    error event, and no [DONE] (nothing that could read as a clean end)."""
    up, mitm = fresh
    bomb = hostile.gzip_bomb(SIZES.bomb_inflated)
    up.reply("POST", PATH, [bomb[i : i + 65536] for i in range(0, len(bomb), 65536)], headers=[*SSE, ("Content-Encoding", "gzip")])
    with Memory(mitm.proc.pid) as memory, Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat(stream=True))
    assert r.raw == (
        b"data: {\"error\":{\"message\":\"The proxy could not read the rest of the upstream's reply: "
        b'the body decodes to more than 8388608 bytes in one piece.","type":"server_error","param":null,"code":null}}\n\n'
    )
    memory.check(64)


def test_blank_lines_before_the_first_event(fresh):
    """4 MiB of blank lines before the stream (6 s frozen before): nothing held, the stream exact."""
    up, mitm = fresh
    blank = hostile.blank_lines(SIZES.blank)
    up.reply("POST", PATH, [*(blank[i : i + 65536] for i in range(0, len(blank), 65536)), *NIM_STREAM_EVENTS], headers=SSE)
    with Memory(mitm.proc.pid) as memory, Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat(stream=True))
    assert r.raw == NIM_STREAM_REPAIRED
    memory.check(32)


def test_event_of_many_choices(fresh):
    """One 0.9 MiB event of 300,000 `{}` choices (1 million in make load): passed through unparsed
    (67 MiB out and 334 MiB kept before)."""
    up, mitm = fresh
    event = hostile.many_choices_event(SIZES.choices)
    up.reply("POST", PATH, [NIM_STREAM_EVENTS[0], event, *NIM_STREAM_EVENTS[1:]], headers=SSE)
    with Memory(mitm.proc.pid) as memory, Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat(stream=True))
    assert r.raw == FIRST_EVENT_REPAIRED + event + NIM_STREAM_REPAIRED[len(FIRST_EVENT_REPAIRED) :]
    memory.check(32)


def test_deeply_nested_reply(rig):
    """A whole reply nested 5,000 deep that needs a repair: repaired, written compact (10 KB in,
    about 10 KB out; 50 MB before)."""
    up, mitm = rig
    body = hostile.deep_completion(SIZES.reply_depth)
    up.reply("POST", PATH, body, headers=JSON, mode="content-length")
    with Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat())
    assert r.status_code == 200 and len(r.raw) <= len(body) + 1
    assert json.loads(r.raw)["choices"][0]["message"]["content"] == ""


def test_multiline_event_fed_line_by_line(rig):
    """One multi-line event sent a line per write, 20,000 lines (80,000 in make load): linear."""
    up, mitm = rig
    up.reply("POST", PATH, list(hostile.multiline_event(SIZES.lines)), headers=SSE)
    with Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat(stream=True))
    assert r.raw == hostile.multiline_event_repaired(SIZES.lines)


# -- cases 4 and 5: encodings ------------------------------------------------------


def test_gzip_stream_of_several_members(rig):
    """Every gzip member is decoded: all of the text, then [DONE] (0 characters and an invented end before)."""
    up, mitm = rig
    up.reply("POST", PATH, hostile.gzip_members(), headers=[*SSE, ("Content-Encoding", "gzip")])
    with Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat(stream=True))
    assert "content-encoding" not in r.headers
    assert r.raw == NIM_STREAM_REPAIRED
    client = openai.OpenAI(base_url=up.url + "/v1", api_key="test", max_retries=0, http_client=httpx.Client(proxy=mitm.url, trust_env=False))
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(model="m", messages=[], stream=True))
    assert text == "Tabs, naïve café — 東京 🚀\n\"quoted\""


def test_raw_deflate(rig):
    """`content-encoding: deflate` without the zlib wrapper, streamed and whole."""
    up, mitm = rig
    up.reply("POST", PATH, hostile.raw_deflate(), headers=[*SSE, ("Content-Encoding", "deflate")])
    with Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat(stream=True))
    assert "content-encoding" not in r.headers and r.raw == NIM_STREAM_REPAIRED
    import zlib

    z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    up.reply("POST", PATH, z.compress(NULL_COMPLETION) + z.flush(), headers=[*JSON, ("Content-Encoding", "deflate")], mode="content-length")
    r = post(mitm, up.url + PATH, content=chat())
    assert "content-encoding" not in r.headers and r.raw == REPAIRED_NULL_COMPLETION


# -- case 7: untargeted streams ----------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_untargeted_event_stream_is_streamed(rig, upstream_factory, mitmdump, tls):
    """Another provider's stream through the same proxy (HTTPS_PROXY style, TLS intercepted, too)
    arrives as it is sent, byte for byte, instead of all at once at its end."""
    up, mitm = rig
    other = upstream_factory(tls=tls)
    if tls:
        mitm = mitmdump.start(normalize_hosts=[up.host_port], ssl_insecure=True)
    gate = Gate()
    other.reply("POST", PATH, [NIM_STREAM_EVENTS[0], gate, *NIM_STREAM_EVENTS[1:]], headers=SSE)
    with httpx.Client(proxy=mitm.url, timeout=10, trust_env=False, verify=str(mitm.ca_path) if tls else True) as client:
        with client.stream("POST", other.url + PATH, content=chat(stream=True)) as response:
            pieces = response.iter_raw()
            first = next(pieces)  # arrives while the upstream waits on the gate
            gate.set()
            body = first + b"".join(pieces)
    assert first == NIM_STREAM_EVENTS[0]
    assert body == NIM_STREAM


# -- case 9: lone surrogates and numbers JSON does not have ---------------------------


def test_lone_surrogate_in_a_repaired_reply(rig):
    """Written as valid UTF-8 (an escape), and read back by the SDK."""
    up, mitm = rig
    body = NULL_COMPLETION.replace(b'"role":"assistant","content":null', b'"content":"\\ud83d \xc3\xa9"')
    up.reply("POST", PATH, body, headers=JSON, mode="content-length")
    with Bystander(up, mitm.url):
        r = post(mitm, up.url + PATH, content=chat())
    r.raw.decode("utf-8")  # valid UTF-8
    assert json.loads(r.raw)["choices"][0]["message"] == {"role": "assistant", "content": "\ud83d é"}
    assert b"\\ud83d" in r.raw


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (PATH, NULL_COMPLETION.replace(b'"created":1', b'"created":NaN')),
        (PATH, NULL_COMPLETION.replace(b'"created":1', b'"created":1e400')),
        ("/v1/models", b'[{"id":"a","created":Infinity}]'),
        ("/v1/models", b'[{"id":"a","created":1e400}]'),
    ],
)
def test_not_a_number_passes_through(rig, path, body):
    """NaN, Infinity and numbers beyond a float are not JSON: the body passes as it came (uncaught
    ValueError and OverflowError before), with a log line for a chat reply."""
    up, mitm = rig
    method = "POST" if path == PATH else "GET"
    up.reply(method, path, body, headers=JSON, mode="content-length")
    with Bystander(up, mitm.url), httpx.Client(proxy=mitm.url, timeout=10, trust_env=False) as client:
        r = client.request(method, up.url + path, content=chat() if method == "POST" else None)
    assert (r.status_code, r.content) == (200, body)
    assert "Traceback" not in mitm.log


# -- case 12: HTTP/1.0 clients --------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_http10_client_gets_no_chunked_body(rig, stream):
    """RFC 9112 forbids chunked toward HTTP/1.0: the body ends when the proxy closes the connection."""
    up, mitm = rig
    if stream:
        up.reply("POST", PATH, NIM_STREAM_EVENTS, headers=SSE)
    else:
        up.reply("POST", PATH, [NULL_COMPLETION[:40], NULL_COMPLETION[40:]], headers=JSON)  # chunked
    body = chat(stream=stream)
    request = (
        f"POST {up.url}{PATH} HTTP/1.0\r\nHost: {up.host_port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with Bystander(up, mitm.url), socket.create_connection((mitm.host, mitm.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while piece := sock.recv(65536):  # the proxy closes the connection at the end of the body
            received += piece
    head, _, payload = received.partition(b"\r\n\r\n")
    headers = {line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")[1:]}
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in headers
    assert payload == (NIM_STREAM_REPAIRED if stream else REPAIRED_NULL_COMPLETION)
