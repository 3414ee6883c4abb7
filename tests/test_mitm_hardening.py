"""The hardening cases (project issue #10) in the mitmproxy glue, through mitmproxy's test helpers.

Named after the cases; tests/e2e/test_hardening_e2e.py and
tests/e2e/test_hardening_flows_e2e.py prove them through a real mitmdump.
"""

from __future__ import annotations

import gzip
import json
import logging

import pytest
from mitmproxy import exceptions
from mitmproxy.optmanager import _UnconvertedStrings
from mitmproxy.test import taddons, tflow, tutils

from normalize.mitm import addon, options
from normalize.mitm.state import state_of
from normalize.profiles import PROFILES
from tests.recorded import NIM_STREAM, NIM_STREAM_EVENTS, NIM_STREAM_REPAIRED
from tests.test_mitm import bodiless, chat_flow, drive, through_headers

NULL_COMPLETION = b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"stop"}]}'
REPAIRED_COMPLETION = b'{\n  "id": "c",\n  "object": "chat.completion",\n  "created": 1,\n  "model": "m",\n  "choices": [\n    {\n      "index": 0,\n      "message": {\n        "role": "assistant",\n        "content": ""\n      },\n      "finish_reason": "stop"\n    }\n  ]\n}\n'


@pytest.fixture
def normalize():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.options.add_option("stream_large_bodies", str | None, None, "as mitmproxy's proxyserver declares it")
        tctx.configure(a, normalize_hosts=["api.example.com"])
        yield a, tctx


# -- case 1: keys of requests still waiting at shutdown ----------------------------


def test_api_key_of_a_request_in_flight_is_redacted_at_shutdown(normalize):
    """mitmproxy's save addon writes flows still in flight after the addon's done hook."""
    a, _ = normalize
    flow = chat_flow()
    flow.request.headers["authorization"] = "Bearer nvapi-secret"
    flow.request.headers["x-goog-api-key"] = "AIza-secret"
    flow.response = None
    a.requestheaders(flow)
    a.request(flow)
    assert flow.request.headers["authorization"] == "Bearer nvapi-secret"  # it has yet to go upstream
    a.done()
    assert flow.request.headers["authorization"] == "Bearer [redacted]"
    assert flow.request.headers["x-goog-api-key"] == "[redacted]"
    assert not a.unredacted.waiting


def test_api_key_of_a_request_in_flight_stays_when_the_addon_is_reloaded(normalize):
    """mitmproxy runs the done hook when it unloads a script (a reload, too): the request has
    still to go upstream and must keep its key; the next instance redacts it as usual,
    at its response headers or at shutdown."""
    a, tctx = normalize
    flow = chat_flow()
    flow.request.headers["authorization"] = "Bearer nvapi-secret"
    flow.response = None
    a.requestheaders(flow)
    a.request(flow)
    tctx.master.addons.remove(a)  # unloaded: mitmproxy calls its done hook
    assert flow.request.headers["authorization"] == "Bearer nvapi-secret"
    b = addon.Normalize()
    tctx.master.addons.add(b)
    tctx.configure(b, normalize_hosts=["api.example.com"])
    b.done()  # shutdown
    assert flow.request.headers["authorization"] == "Bearer [redacted]"


def test_api_key_of_a_locally_answered_request_is_redacted_at_once():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_models=["m"])
        flow = tflow.tflow(req=tutils.treq(host="api.example.com", port=443, path=b"/v1/models", method=b"GET", content=b""), resp=False)
        flow.request.headers["authorization"] = "Bearer nvapi-secret"
        a.requestheaders(flow)
        a.request(flow)
        assert flow.response is not None and flow.request.headers["authorization"] == "Bearer [redacted]"


def test_api_key_of_a_streamed_request_is_redacted_at_the_request_hook(normalize, caplog):
    """A request body larger than stream_large_bodies went upstream, headers first, before the
    request hook: the key can go there, and the body is not read (nor rewritten)."""
    a, _ = normalize
    flow = chat_flow()
    flow.request.headers["authorization"] = "Bearer nvapi-secret"
    flow.request.stream = True
    flow.response = None
    a.requestheaders(flow)
    with caplog.at_level(logging.WARNING):
        a.request(flow)
    assert flow.request.headers["authorization"] == "Bearer [redacted]"
    assert "mitmproxy streamed it upstream before the addon could read it" in caplog.text


# -- case 6: stream_large_bodies -------------------------------------------------


def collected_flow(a, body_pieces, *, status=200, content_type="application/json", encoding=None, length=True, stream=False):
    """A whole reply that mitmproxy streams (stream_large_bodies), through the hooks and the callable."""
    flow = chat_flow(stream=stream, content_type=content_type, status=status)
    if encoding:
        flow.response.headers["content-encoding"] = encoding
    if not length:
        del flow.response.headers["content-length"]
        flow.response.headers["transfer-encoding"] = "chunked"
    else:
        flow.response.stream = True  # what mitmproxy decided before responseheaders
    through_headers(a, flow)
    out = drive(flow, body_pieces)
    flow.response.raw_content = None  # mitmproxy keeps no streamed body
    a.response(flow)
    return flow, out


def test_stream_large_bodies_whole_reply_is_still_repaired(normalize):
    a, tctx = normalize
    tctx.options.stream_large_bodies = "1"
    flow, out = collected_flow(a, [NULL_COMPLETION[:50], NULL_COMPLETION[50:]])
    assert out == REPAIRED_COMPLETION
    assert "content-length" not in flow.response.headers and flow.response.headers["transfer-encoding"] == "chunked"
    assert flow.comment == 'normalized: null content made ""'
    assert flow.response.raw_content == REPAIRED_COMPLETION
    assert flow.metadata["normalize"]["original"] == NULL_COMPLETION


def test_stream_large_bodies_reply_of_unknown_length(normalize):
    """mitmproxy would switch a chunked body to streaming later, with no hook: the addon collects it from the start."""
    a, tctx = normalize
    tctx.options.stream_large_bodies = "1k"
    _, out = collected_flow(a, [NULL_COMPLETION], length=False)
    assert out == REPAIRED_COMPLETION


def test_stream_large_bodies_gzip_reply_is_encoded_again(normalize):
    a, tctx = normalize
    tctx.options.stream_large_bodies = "1"
    packed = gzip.compress(NULL_COMPLETION)
    flow, out = collected_flow(a, [packed], encoding="gzip")
    assert flow.response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(out) == REPAIRED_COMPLETION


def test_stream_large_bodies_error_keeps_its_status(normalize, caplog):
    """An error sent with 200: the body becomes OpenAI's error, but the status was sent already."""
    a, tctx = normalize
    tctx.options.stream_large_bodies = "1"
    with caplog.at_level(logging.WARNING):
        flow, out = collected_flow(a, [b'{"error":{"message":"Provider returned error","code":502}}'])
    assert json.loads(out) == {"error": {"message": "Provider returned error", "type": "server_error", "param": None, "code": 502}}
    assert flow.response.status_code == 200
    assert "its status 200 and content-type 'application/json' stay; the addon's reply would have had 502" in caplog.text


def test_stream_large_bodies_reply_past_the_cap_passes_through(caplog):
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.options.add_option("stream_large_bodies", str | None, "1", "")
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_max_body_bytes=100)
        with caplog.at_level(logging.WARNING):
            _, out = collected_flow(a, [NULL_COMPLETION[:80], NULL_COMPLETION[80:]])
        assert out == NULL_COMPLETION
        assert "grew past normalize_max_body_bytes (100)" in caplog.text


def test_stream_large_bodies_reply_that_breaks_off_says_so(normalize, caplog):
    a, tctx = normalize
    tctx.options.stream_large_bodies = "1"
    flow = chat_flow(stream=False, content_type="application/json")
    flow.response.stream = True
    through_headers(a, flow)
    assert flow.response.stream(NULL_COMPLETION[:50]) == []
    flow.error = tflow.terr("Server disconnected.")
    with caplog.at_level(logging.WARNING):
        a.error(flow)
    assert "the reply broke off before its end (Server disconnected.); the client got none of its body" in caplog.text


def test_stream_large_bodies_stream_is_still_rewritten(normalize):
    a, tctx = normalize
    tctx.options.stream_large_bodies = "1"
    flow = chat_flow()
    flow.response.stream = True
    through_headers(a, flow)
    assert drive(flow, NIM_STREAM_EVENTS) == NIM_STREAM_REPAIRED


def test_stream_large_bodies_not_modified_gets_no_body(normalize):
    """A 304 has no body: with stream_large_bodies the addon must not open a chunked one for it
    (mitmproxy would write the chunked end, 0 CRLF CRLF, after the 304)."""
    a, tctx = normalize
    tctx.options.stream_large_bodies = "1"
    flow = bodiless(a, b"GET", 304, length=None)
    assert not flow.response.stream
    assert "transfer-encoding" not in flow.response.headers


# -- case 7: untargeted streams --------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/event-stream", "text/event-stream; charset=utf-8", "application/x-ndjson"])
def test_untargeted_event_stream_is_streamed(normalize, content_type):
    a, _ = normalize
    flow = chat_flow(host="other.example", content_type=content_type)
    through_headers(a, flow)
    assert flow.response.stream is True
    assert flow.response.headers["content-type"] == content_type  # nothing else touched


def test_untargeted_whole_reply_is_not_streamed(normalize):
    a, _ = normalize
    flow = chat_flow(host="other.example", content_type="application/json")
    through_headers(a, flow)
    assert flow.response.stream is False


def test_targeted_event_stream_no_endpoint_reads_is_streamed(normalize):
    a, _ = normalize
    flow = chat_flow(path="/v1/completions")
    through_headers(a, flow)
    assert flow.response.stream is True


# -- case 10: abandoned streams ----------------------------------------------------


def test_abandoned_stream_is_recorded(normalize, caplog):
    a, _ = normalize
    flow = chat_flow()
    through_headers(a, flow)
    first = flow.response.stream(NIM_STREAM_EVENTS[0]) + flow.response.stream(NIM_STREAM_EVENTS[1])
    flow.error = tflow.terr("Client disconnected.")
    with caplog.at_level(logging.INFO):
        a.error(flow)
    assert flow.comment == 'normalized 2 events: 10 null fields dropped, content "" added to first chunk (ended early: Client disconnected.)'
    info = flow.metadata["normalize"]
    assert info["events"] == 2 and info["ended_early"] == "Client disconnected."
    assert flow.response.raw_content == first
    assert info["original"] == NIM_STREAM_EVENTS[0] + NIM_STREAM_EVENTS[1]
    assert "stream ended early after 2 events (Client disconnected.)" in caplog.text


# -- case 12: HTTP/1.0 clients -------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_http10_client_gets_no_chunked_body(normalize, stream):
    a, _ = normalize
    flow = chat_flow(stream=stream, content_type="text/event-stream" if stream else "application/json")
    flow.request.http_version = "HTTP/1.0"
    flow.response.headers["transfer-encoding"] = "chunked"
    del flow.response.headers["content-length"]
    through_headers(a, flow)
    assert "transfer-encoding" not in flow.response.headers
    assert flow.response.headers["connection"] == "close"


# -- case 13: option values -----------------------------------------------------------


BAD_VALUES = {
    "normalize_keep_bytes": (["abc"], "Cannot parse normalize_keep_bytes option: 'abc' is not an integer; expected an integer, 0 or more (bytes)"),
    "normalize_legacy_params": (["maybe"], "Cannot parse normalize_legacy_params option: 'maybe' is not true or false; expected true or false"),
    "normalize_hosts": (["a/b"], "Cannot parse normalize_hosts option: 'a/b' is not host or host:port; expected host or host:port ([::1]:8000 for IPv6), several comma-separated"),
    "normalize_model_map": (["bad"], "Cannot parse normalize_model_map option: 'bad' is not alias=upstream-model; expected alias=upstream-model"),
    "normalize_max_body_bytes": (["0"], "Cannot parse normalize_max_body_bytes option: must be 1 or more; expected an integer, 1 or more (bytes)"),
    "normalize_redact_keys": (["true", "false"], "Cannot parse normalize_redact_keys option: given 2 times ('true', 'false'); expected true or false"),
    "normalize_rate_limit": (
        ["40 per minute"],
        "Cannot parse normalize_rate_limit option: '40 per minute' is not requests/window, e.g. 40/60s; "
        "expected requests/window, e.g. 40/60s, 40/1m or 5/s (empty: off)",
    ),
    "normalize_profile": (
        ["vllm"],
        "Cannot parse normalize_profile option: 'vllm' is not host[:port]=profile; "
        "expected host[:port]=profile (e.g. 127.0.0.1:8000=vllm), several comma-separated; profiles: " + ", ".join(PROFILES),
    ),
}


@pytest.mark.parametrize("name", BAD_VALUES)
def test_bad_option_value_stops_start_up(name, capsys):
    value, message = BAD_VALUES[name]
    assert options.deferred_problems({name: _UnconvertedStrings(value)}) == {name: message}
    with pytest.raises(SystemExit) as info:
        options.check_deferred(type("Opts", (), {"deferred": {name: _UnconvertedStrings(value)}})(), starting=True)
    assert info.value.code == 2
    assert f"openai-normalize: {message}\n" in capsys.readouterr().err


def test_good_option_values_pass():
    deferred = {
        "normalize_keep_bytes": _UnconvertedStrings(["0"]),
        "normalize_legacy_params": _UnconvertedStrings([]),  # `--set normalize_legacy_params` means true
        "normalize_hosts": _UnconvertedStrings(["a.example", "[::1]:8000"]),
        "normalize_model_map": ["gpt-4o=meta/llama"],  # from config.yaml: already a list
        "normalize_redact_keys": False,
        "other_option": _UnconvertedStrings(["whatever"]),
    }
    assert options.deferred_problems(deferred) == {}


@pytest.mark.parametrize(("name", "value"), [("normalize_keep_bytes", "12"), ("normalize_redact_keys", "yes"), ("normalize_hosts", "a.example")])
def test_config_yaml_values_of_the_wrong_type(name, value):
    assert name in options.deferred_problems({name: value})


def test_bad_option_value_once_running_is_dropped_with_an_error(caplog):
    opts = type("Opts", (), {"deferred": {"normalize_keep_bytes": _UnconvertedStrings(["abc"])}})()
    with caplog.at_level(logging.ERROR):
        options.check_deferred(opts, starting=False)
    assert opts.deferred == {}
    assert "Cannot parse normalize_keep_bytes option" in caplog.text


@pytest.mark.parametrize(("name", "value"), [("normalize_keep_bytes", -1), ("normalize_hosts", ["a/b"]), ("normalize_model_map", ["x"])])
def test_bad_option_value_at_runtime_is_refused(name, value):
    """What mitmweb's option editor gets: OptionsError, and the old value stays."""
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        before = a.settings
        with pytest.raises(exceptions.OptionsError, match=f"Cannot parse {name} option: .*; expected "):
            tctx.configure(a, **{name: value})
        assert a.settings == before


def test_stream_rewrite_unaffected(normalize):
    a, _ = normalize
    flow = chat_flow()
    through_headers(a, flow)
    assert drive(flow, [NIM_STREAM]) == NIM_STREAM_REPAIRED
    assert state_of(flow).rewriter is not None


# -- the stream callable never raises (mitmproxy would leave a hole, or never end the body) --


def raising(monkeypatch, name, when=lambda *args: True):
    """ChatStream.<name> raises the first time `when(*args)` holds (a bug in a repair or a bridge's sink)."""
    from normalize.endpoints.chat.stream import ChatStream

    real = getattr(ChatStream, name)
    raised = False

    def method(self, *args):
        nonlocal raised
        if not raised and when(*args):
            raised = True
            raise RuntimeError("a bug")
        return real(self, *args)

    monkeypatch.setattr(ChatStream, name, method)


def test_stream_rewrite_that_raises_passes_the_rest_through(normalize, monkeypatch, caplog):
    a, _ = normalize
    clean = chat_flow()
    through_headers(a, clean)
    first_repaired = clean.response.stream(NIM_STREAM_EVENTS[0])
    raising(monkeypatch, "feed", lambda data: data == NIM_STREAM_EVENTS[1])
    flow = chat_flow()
    through_headers(a, flow)
    assert flow.response.stream(NIM_STREAM_EVENTS[0]) == first_repaired
    with caplog.at_level(logging.ERROR):
        rest = [flow.response.stream(event) for event in NIM_STREAM_EVENTS[1:]]
    assert rest == list(NIM_STREAM_EVENTS[1:])  # as they came: no hole
    assert flow.response.stream(b"") == []  # and nothing invented after them
    assert caplog.text.count("the stream rewrite failed; passing the rest of the stream through unchanged") == 1
    flow.response.raw_content = None
    with caplog.at_level(logging.INFO):
        a.response(flow)
    assert flow.metadata["normalize"]["raw_passthrough"] is True
    assert "(passed through raw after a failure)" in caplog.text


def test_stream_end_that_raises_still_ends_the_body(normalize, monkeypatch, caplog):
    a, _ = normalize
    raising(monkeypatch, "close")
    flow = chat_flow()
    through_headers(a, flow)
    flow.response.stream(NIM_STREAM_EVENTS[0])
    with caplog.at_level(logging.ERROR):
        assert flow.response.stream(b"") == []
    assert "the stream rewrite failed" in caplog.text


def test_stream_failure_report_that_raises_still_ends_the_body(normalize, monkeypatch, caplog):
    """An undecodable body: the transducer's `fail` (the client's error event) raising too."""
    a, _ = normalize
    raising(monkeypatch, "fail")
    flow = chat_flow()
    flow.response.headers["content-encoding"] = "gzip"
    through_headers(a, flow)
    with caplog.at_level(logging.ERROR):
        assert flow.response.stream(b"not gzip") == []
        assert flow.response.stream(b"more") == []
        assert flow.response.stream(b"") == []
    assert "the stream rewrite failed while ending the stream" in caplog.text


# -- what the addon chose for a reply's body is what the response hook acts on ---------


@pytest.mark.parametrize(
    ("stream", "content_type", "encoding"),
    [(False, "application/x-ndjson", None), (True, "application/json", "zstd")],
    ids=["ndjson", "unknown-encoding"],
)
def test_reply_the_addon_passed_on_is_not_blamed_on_stream_large_bodies(normalize, caplog, stream, content_type, encoding):
    """An ndjson stream (Ollama's) the addon passes on, or a stream (exo's, labelled JSON) in an
    encoding it does not decode: the addon streamed it itself, so the log must not say mitmproxy did."""
    a, _ = normalize
    flow = chat_flow(stream=stream, content_type=content_type)
    if encoding:
        flow.response.headers["content-encoding"] = encoding
    through_headers(a, flow)
    assert flow.response.stream is True
    flow.response.raw_content = None  # mitmproxy keeps no streamed body
    with caplog.at_level(logging.WARNING):
        a.response(flow)
    assert "stream_large_bodies" not in caplog.text


# -- an endpoint that raises: the flow passes on as it is ----------------------------


def broken(monkeypatch, owner, name):
    def method(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(owner, name, method)


def test_endpoint_that_raises_on_the_request_leaves_it_as_sent_and_paced(monkeypatch, caplog):
    import asyncio

    from normalize.endpoints.chat import Chat

    broken(monkeypatch, Chat, "open")
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_model_map=["gpt-4o=meta/llama"], normalize_rate_limit="5/s")
        flow = chat_flow()
        flow.request.content = b'{"model":"gpt-4o","stream":true}'
        flow.client_conn.timestamp_end = None
        flow.response = None
        a.requestheaders(flow)
        with caplog.at_level(logging.ERROR):
            waiting = a.request(flow)
        assert asyncio.iscoroutine(waiting)  # still paced
        asyncio.run(waiting)
        assert flow.request.content == b'{"model":"gpt-4o","stream":true}'
        assert "the endpoint failed reading the request; passing it on unchanged" in caplog.text


def test_endpoint_that_raises_on_the_reply_headers_lets_the_stream_through(normalize, monkeypatch, caplog):
    from normalize.endpoints.chat import ChatExchange

    a, _ = normalize
    broken(monkeypatch, ChatExchange, "stream")
    flow = chat_flow()
    with caplog.at_level(logging.ERROR):
        through_headers(a, flow)
    assert flow.response.stream is True  # not held whole by mitmproxy
    assert flow.response.headers["content-length"] == "7"
    assert "the endpoint failed on the reply's headers" in caplog.text


@pytest.mark.parametrize("large", [False, True], ids=["whole", "stream_large_bodies"])
def test_endpoint_that_raises_on_a_whole_reply_passes_it_as_it_came(normalize, monkeypatch, caplog, large):
    from normalize.endpoints.chat import ChatExchange

    a, tctx = normalize
    broken(monkeypatch, ChatExchange, "whole")
    if large:
        tctx.options.stream_large_bodies = "1"
        with caplog.at_level(logging.ERROR):
            _, out = collected_flow(a, [NULL_COMPLETION])
        assert out == NULL_COMPLETION
    else:
        flow = chat_flow(stream=False, content_type="application/json")
        through_headers(a, flow)
        flow.response.content = NULL_COMPLETION
        with caplog.at_level(logging.ERROR):
            a.response(flow)
        assert flow.response.content == NULL_COMPLETION
    assert "the endpoint failed on the reply; passing it on unchanged" in caplog.text
