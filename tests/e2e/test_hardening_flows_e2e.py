"""End to end (issue #10): the cases about mitmproxy itself around the addon.

Saved flows and keys (`-w` at shutdown, `-r` replays, abandoned streams),
mitmproxy's `stream_large_bodies`, an unreachable upstream in reverse mode, and
option values that must stop start-up. Each test is named after its case and
starts the mitmdump (or mitmweb) it needs.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.harness.proxy import ADDON, MITMDUMP, MITMWEB, REPO, MitmdumpLauncher, client_env
from tests.harness.upstream import Gate, RecordedRequest, Reply, ScriptedUpstream
from tests.recorded import NIM_STREAM_EVENTS, NIM_STREAM_REPAIRED

from .bystander import Bystander, Memory
from .test_mitmweb_e2e import KEY_HEADERS, REDACTED, SECRET, headers_of, poll, read_flows, start_mitmweb

pytestmark = pytest.mark.e2e

PATH = "/v1/chat/completions"
SSE = [("Content-Type", "text/event-stream")]
JSON = [("Content-Type", "application/json")]
REQUEST = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
NULL_COMPLETION = b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"stop"}]}'
REPAIRED_COMPLETION = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}
NIM_422 = b'{"type":"urn:inference-service:problem-details:unprocessable-entity","title":"Unprocessable Entity","status":422,"detail":"body -> frequency_penalty\\n  Extra inputs are not permitted"}'
FIRST_EVENT_REPAIRED = NIM_STREAM_REPAIRED.split(b"\n\n")[0] + b"\n\n"


def held(gate: Gate, reply: Reply):
    """A responder that holds the response (headers included) until `gate` opens."""

    def respond(request: RecordedRequest) -> Reply:
        gate.wait(20)
        return reply

    return respond


def send_in_background(url: str, proxy: str, **kwargs: object) -> threading.Thread:
    """A request whose answer the test does not wait for (it may never come)."""

    def go() -> None:
        try:
            with httpx.Client(proxy=proxy, timeout=30, trust_env=False) as client:
                client.post(url, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError:
            pass  # mitmdump went away under it: expected

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


# -- case 1: keys of requests in flight at shutdown ---------------------------------


def test_api_key_in_flight_at_shutdown_is_not_saved(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, tmp_path: Path):
    """Ctrl-C while a slow model thinks: `-w` writes the waiting flow at shutdown, keys redacted."""
    gate = Gate()
    upstream.respond("POST", PATH, held(gate, Reply(200, SSE, NIM_STREAM_EVENTS)))
    path = tmp_path / "flows.mitm"
    mitm = mitmdump.start("-w", str(path), normalize_hosts=[upstream.host_port])
    client = send_in_background(upstream.url + PATH, mitm.url, json=REQUEST, headers=KEY_HEADERS)
    (request,) = upstream.wait_for_requests(1, timeout=10)  # it reached the upstream, which thinks
    assert mitm.stop() == 0, mitm.log
    gate.set()
    client.join(10)
    for name, value in KEY_HEADERS.items():
        assert request.header_all(name) == [value]  # the upstream got the keys
    (flow,) = read_flows(path)
    for name, value in REDACTED.items():
        assert flow.request.headers.get_all(name) == [value]
    assert SECRET.encode() not in path.read_bytes()
    assert SECRET not in mitm.log


def test_api_key_in_the_query_is_not_saved(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, tmp_path: Path):
    """Gemini's `?key=`: the upstream gets it, the saved flow and mitmdump's output do not."""
    upstream.reply("POST", PATH, NIM_STREAM_EVENTS, headers=SSE)
    path = tmp_path / "flows.mitm"
    mitm = mitmdump.start("-w", str(path), "--flow-detail", "1", normalize_hosts=[upstream.host_port])
    with httpx.Client(proxy=mitm.url, timeout=10, trust_env=False) as client:
        reply = client.post(upstream.url + PATH, params={"alt": "sse", "key": SECRET}, json=REQUEST)
    assert reply.content == NIM_STREAM_REPAIRED
    (request,) = upstream.requests
    assert request.path == f"{PATH}?alt=sse&key={SECRET}"
    assert mitm.stop() == 0, mitm.log
    (flow,) = read_flows(path)
    assert flow.request.query.get_all("key") == ["[redacted]"] and flow.request.query["alt"] == "sse"
    assert SECRET.encode() not in path.read_bytes()
    assert SECRET not in mitm.log


def test_api_key_redacted_in_mitmweb_from_the_response_headers_on(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher):
    """mitmweb's live view: the key shows while the request waits for its response headers (mitmproxy
    sends the request's headers from the flow after the last hook), and is gone from then on."""
    gate, body_gate = Gate(), Gate()
    upstream.respond("POST", PATH, held(gate, Reply(200, SSE, [NIM_STREAM_EVENTS[0], body_gate, *NIM_STREAM_EVENTS[1:]])))
    web = start_mitmweb(mitmdump, upstream)
    client = send_in_background(upstream.url + PATH, web.proc.url, json=REQUEST, headers=KEY_HEADERS)
    upstream.wait_for_requests(1, timeout=10)
    with web.api() as api:

        def chat_flow() -> dict:
            (flow,) = [f for f in api.get("/flows").json() if f["request"]["path"] == PATH]
            return flow

        assert headers_of(chat_flow())["authorization"] == [KEY_HEADERS["authorization"]]  # waiting: the documented window
        gate.set()
        flow = poll("the response headers in mitmweb", chat_flow, lambda f: f.get("response"))
        assert headers_of(flow)["authorization"] == [REDACTED["authorization"]]
        assert SECRET.encode() not in api.get("/flows").content + api.get("/flows/dump").content
        body_gate.set()
    client.join(10)


# -- case 6: stream_large_bodies ------------------------------------------------------


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScriptedUpstream, object]]:
    launcher = MitmdumpLauncher(tmp_path_factory.mktemp("large"))
    with ScriptedUpstream() as up:
        try:
            yield up, launcher.start(normalize_hosts=[up.host_port], options={"stream_large_bodies": "1"})
        finally:
            problems = launcher.close()
    assert not problems, problems


def test_stream_large_bodies_error_is_still_an_openai_error(large):
    """With `--set stream_large_bodies=1` mitmproxy streams every body it knows the length of: the
    addon collects a targeted whole reply itself, within normalize_max_body_bytes."""
    up, mitm = large
    up.reset()
    up.reply("POST", PATH, NIM_422, status=422, headers=[("Content-Type", "application/problem+json")], mode="content-length")
    client = openai.OpenAI(base_url=up.url + "/v1", api_key="test", max_retries=0, http_client=httpx.Client(proxy=mitm.url, trust_env=False))
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="m", messages=[])
    assert info.value.body == {"message": "body -> frequency_penalty\n  Extra inputs are not permitted", "type": "invalid_request_error", "param": None, "code": None}


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
def test_stream_large_bodies_completion_is_still_repaired(large, mode):
    up, mitm = large
    up.reset()
    up.reply("POST", PATH, [NULL_COMPLETION[:60], NULL_COMPLETION[60:]], headers=JSON, mode=mode)
    with httpx.Client(proxy=mitm.url, timeout=10, trust_env=False) as client:
        r = client.post(up.url + PATH, json={"model": "m", "messages": []})
    assert json.loads(r.content) == REPAIRED_COMPLETION
    client = openai.OpenAI(base_url=up.url + "/v1", api_key="test", max_retries=0, http_client=httpx.Client(proxy=mitm.url, trust_env=False))
    assert client.chat.completions.create(model="m", messages=[]).choices[0].message.content == ""


def test_stream_large_bodies_stream_is_still_rewritten(large):
    up, mitm = large
    up.reset()
    up.reply("POST", PATH, NIM_STREAM_EVENTS, headers=SSE, mode="content-length")
    with httpx.Client(proxy=mitm.url, timeout=10, trust_env=False) as client:
        assert client.post(up.url + PATH, json=REQUEST).content == NIM_STREAM_REPAIRED


def test_stream_large_bodies_reply_past_the_cap(large):
    """The collector holds at most normalize_max_body_bytes: a 40 MiB reply passes as it came,
    another client's stream is served meanwhile, and the proxy's peak RSS rises by far less."""
    up, mitm = large
    up.reset()
    body = b'{"id":"c","object":"chat.completion","choices":[],"pad":"' + b"x" * (40 * 2**20) + b'"}'
    up.reply("POST", PATH, [body[i : i + 2**20] for i in range(0, len(body), 2**20)], headers=JSON, mode="content-length")
    with Memory(mitm.proc.pid) as memory, Bystander(up, mitm.url):
        with httpx.Client(proxy=mitm.url, timeout=30, trust_env=False) as client:
            r = client.post(up.url + PATH, json={"model": "m", "messages": []})
    assert r.content == body
    mitm.wait_for_log(r"the reply grew past normalize_max_body_bytes \(16777216\) and was not read; passing it through unchanged")
    memory.check(48)


def test_stream_large_bodies_error_at_200_keeps_its_status(large):
    """Decided: the headers went out before the body, so an error sent with 200 keeps 200 (logged);
    its body is still OpenAI's error, which the SDKs raise for a stream and report for a whole reply."""
    up, mitm = large
    up.reset()
    up.reply("POST", PATH, b'{"error":{"message":"Provider returned error","code":502}}', headers=JSON, mode="content-length")
    with httpx.Client(proxy=mitm.url, timeout=10, trust_env=False) as client:
        r = client.post(up.url + PATH, json={"model": "m", "messages": []})
    assert r.status_code == 200
    assert json.loads(r.content) == {"error": {"message": "Provider returned error", "type": "server_error", "param": None, "code": 502}}
    mitm.wait_for_log(r"its status 200 and content-type 'application/json' stay; the addon's reply would have had 502")


# -- case 8: replaying saved flows --------------------------------------------------


def save_three_flows(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, path: Path) -> None:
    upstream.reply("POST", PATH, NIM_STREAM_EVENTS, headers=SSE)
    upstream.reply("POST", "/v1/whole/chat/completions", NULL_COMPLETION, headers=JSON, mode="content-length")
    upstream.reply("POST", "/v1/error/chat/completions", NIM_422, status=422, headers=[("Content-Type", "application/problem+json")], mode="content-length")
    mitm = mitmdump.start("-w", str(path), normalize_hosts=[upstream.host_port])
    with httpx.Client(proxy=mitm.url, timeout=10, trust_env=False) as client:
        for p in (PATH, "/v1/whole/chat/completions", "/v1/error/chat/completions"):
            client.post(upstream.url + p, json=REQUEST if p == PATH else {"model": "m", "messages": []}, headers=KEY_HEADERS)
    mitm.wait_for_log(r"/v1/error/chat/completions 422: normalized")
    assert mitm.stop() == 0


def stored(flow) -> tuple:
    return (flow.request.path, flow.request.headers.fields, flow.response.status_code, flow.response.headers.fields,
            flow.response.raw_content, flow.comment, flow.metadata)


def test_replayed_flows_keep_their_bodies(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, tmp_path: Path):
    """`mitmdump -r saved -s addon.py` runs the hooks again on flows that are not live: they must
    leave the saved bodies, the upstream's original, the comment and the metadata as they were."""
    saved, again = tmp_path / "saved.mitm", tmp_path / "again.mitm"
    save_three_flows(upstream, mitmdump, saved)
    before = read_flows(saved)
    assert [f.comment.split(":")[0] for f in before] == ["normalized 11 events", "normalized", "normalized"]
    assert before[0].response.raw_content == NIM_STREAM_REPAIRED
    run = subprocess.run(
        [str(MITMDUMP), "-n", "-q", "-s", str(ADDON), "-r", str(saved), "-w", str(again), "--set", f"normalize_hosts={upstream.host_port}"],
        cwd=REPO, env=client_env(), capture_output=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert [stored(f) for f in read_flows(again)] == [stored(f) for f in before]


def test_replayed_flows_keep_their_bodies_in_mitmweb(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, tmp_path: Path):
    saved = tmp_path / "saved.mitm"
    save_three_flows(upstream, mitmdump, saved)
    before = read_flows(saved)
    web = start_mitmweb(mitmdump, upstream, rfile=str(saved))
    with web.api() as api:
        poll("the three saved flows in mitmweb", lambda: api.get("/flows").json(), lambda flows: len(flows) == 3)
        shown = read_flows(api.get("/flows/dump").content)
    assert [stored(f) for f in shown] == [stored(f) for f in before]


# -- case 10: abandoned streams -------------------------------------------------------


def test_abandoned_stream_is_recorded(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, tmp_path: Path):
    """The client hangs up after the first event: the saved flow says so, with what was sent and received."""
    gate = Gate()
    upstream.reply("POST", PATH, [NIM_STREAM_EVENTS[0], gate, *NIM_STREAM_EVENTS[1:]], headers=SSE)
    path = tmp_path / "flows.mitm"
    mitm = mitmdump.start("-w", str(path), normalize_hosts=[upstream.host_port])
    with httpx.Client(proxy=mitm.url, timeout=10, trust_env=False) as client:
        with client.stream("POST", upstream.url + PATH, json=REQUEST) as response:
            first = next(response.iter_raw())
    gate.set()
    mitm.wait_for_log(r"stream ended early after 1 events \(Client disconnected\.\)")
    assert mitm.stop() == 0
    (flow,) = read_flows(path)
    assert first == FIRST_EVENT_REPAIRED
    assert flow.comment == 'normalized 1 event: 5 null fields dropped, content "" added to first chunk (ended early: Client disconnected.)'
    info = flow.metadata["normalize"]
    assert (info["events"], info["ended_early"]) == (1, "Client disconnected.")
    assert flow.response.raw_content == FIRST_EVENT_REPAIRED
    assert info["original"] == NIM_STREAM_EVENTS[0]


# -- case 11: unreachable upstream in reverse mode ------------------------------------------


def test_unreachable_upstream_in_reverse_mode(mitmdump: MitmdumpLauncher, dead_port: int):
    """With the default (eager) connection strategy the client's connection is closed with no status
    at all; with connection_strategy=lazy (what the README recommends) it gets mitmproxy's 502 page,
    which no addon hook can reshape (test_unreachable_upstream_gives_openai_error stays xfail)."""
    spec = dict(mode=f"reverse:http://127.0.0.1:{dead_port}", normalize_hosts=[f"127.0.0.1:{dead_port}"])
    eager = mitmdump.start(**spec)
    with httpx.Client(timeout=10, trust_env=False) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected without sending a response"):
            client.post(eager.url + PATH, json={"model": "m", "messages": []})
    lazy = mitmdump.start(**spec, options={"connection_strategy": "lazy"})
    with httpx.Client(timeout=10, trust_env=False) as client:
        r = client.post(lazy.url + PATH, json={"model": "m", "messages": []})
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    assert b"502 Bad Gateway" in r.content
    lazy.wait_for_log(r"POST 127\.0\.0\.1/v1/chat/completions: ended before any reply \(\[Errno 111\] Connect call failed")


# -- case 13: option values ---------------------------------------------------------------


BAD_VALUES = [
    ("normalize_keep_bytes=abc", "Cannot parse normalize_keep_bytes option: 'abc' is not an integer; expected an integer, 0 or more (bytes)"),
    ("normalize_legacy_params=maybe", "Cannot parse normalize_legacy_params option: 'maybe' is not true or false; expected true or false"),
    ("normalize_hosts=a/b", "Cannot parse normalize_hosts option: 'a/b' is not host or host:port; expected host or host:port"),
    ("normalize_model_map=bad", "Cannot parse normalize_model_map option: 'bad' is not alias=upstream-model; expected alias=upstream-model"),
]


@pytest.mark.parametrize(("setting", "message"), BAD_VALUES, ids=[s.split("=")[0] for s, _ in BAD_VALUES])
@pytest.mark.parametrize("program", [MITMDUMP, MITMWEB], ids=["mitmdump", "mitmweb"])
def test_bad_option_value_stops_start_up(mitmdump: MitmdumpLauncher, setting: str, message: str, program: Path):
    """At once, before listening, exit status 2, naming the option and the form it takes; the proxy
    never runs without the addon (before, a mistyped int started a proxy with no addon at all)."""
    extra = ("--set", "web_open_browser=false", "--set", "web_port=0") if program == MITMWEB else ()
    proc = mitmdump.start("--set", setting, *extra, program=program, expect_failure=True, startup_timeout=30)
    assert proc.proc.returncode == 2, proc.log
    assert f"openai-normalize: {message}" in proc.log
    assert "listening at" not in proc.log


def test_bad_option_value_in_mitmweb_is_refused(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher):
    """Edited in a running mitmweb: refused with the same message, the addon goes on as it was."""
    web = start_mitmweb(mitmdump, upstream)
    upstream.reply("POST", PATH, NIM_STREAM_EVENTS, headers=SSE)
    with web.api() as api:
        # A PUT must echo mitmweb's XSRF cookie in a header (tornado compares the two).
        r = api.put("/options", json={"normalize_hosts": ["a/b"]}, headers={"X-XSRFToken": "5e", "Cookie": "_mitmproxy_xsrf=5e"})
        assert r.status_code == 400 and "Cannot parse normalize_hosts option: 'a/b' is not host or host:port" in r.text
        assert api.get("/options").json()["normalize_hosts"]["value"] == [upstream.host_port]
    with httpx.Client(proxy=web.proc.url, timeout=10, trust_env=False) as client:
        assert client.post(upstream.url + PATH, json=REQUEST).content == NIM_STREAM_REPAIRED
