"""The mitmproxy glue, driven through mitmproxy's own test helpers."""

import gzip
import json
import logging
import weakref

import pytest
from mitmproxy import contentviews, exceptions
from mitmproxy.test import taddons, tflow, tutils

from normalize.mitm import addon, options, views
from normalize.mitm.state import state_of
from tests.recorded import EXO_STREAM, NIM_STREAM, NIM_STREAM_EVENTS


@pytest.fixture
def normalize():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com", "127.0.0.1:8000"])
        yield a


def chat_flow(host="api.example.com", port=443, *, stream=True, content_type="text/event-stream", status=200, path="/v1/chat/completions"):
    flow = tflow.tflow(
        req=tutils.treq(host=host, port=port, path=path, method=b"POST", content=json.dumps({"model": "m", "stream": stream}).encode()),
        resp=tutils.tresp(status_code=status, content=b""),
    )
    flow.response.headers["content-type"] = content_type
    flow.response.headers["content-length"] = "7"
    return flow


def through_headers(normalize, flow):
    """The hooks mitmproxy runs before the body: request (no response yet), then response headers."""
    response, flow.response = flow.response, None
    normalize.requestheaders(flow)
    normalize.request(flow)
    flow.response = response
    normalize.responseheaders(flow)


def drive(flow, pieces):
    out = []
    for piece in pieces:
        result = flow.response.stream(piece)
        assert result != b"", "b'' mid-body would end a chunked response"
        out += [result] if isinstance(result, bytes) else result
    tail = flow.response.stream(b"")
    out += [tail] if isinstance(tail, bytes) else tail
    return b"".join(out)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["integrate.api.nvidia.com"], {("integrate.api.nvidia.com", None)}),
        (["Host.Example:8443"], {("host.example", 8443)}),
        (["[::1]:8080", "::1"], {("::1", 8080), ("::1", None)}),
        (["127.0.0.1:5,127.0.0.1:6"], {("127.0.0.1", 5), ("127.0.0.1", 6)}),
    ],
)
def test_parse_hosts(entries, expected):
    assert options.parse_hosts(entries) == expected


@pytest.mark.parametrize("bad", ["", "a,,b", "host:0", "host:port", "host:99999", "http://host/x"])
def test_bad_hosts_option_is_refused(bad):
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match="Cannot parse normalize_hosts"):
            tctx.configure(a, normalize_hosts=[bad])


def test_default_host_is_nim():
    a = addon.Normalize()
    with taddons.context(a):
        assert a.settings.targets("integrate.api.nvidia.com", 443)
        assert not a.settings.targets("api.openai.com", 443)


def test_host_and_port_matching(normalize):
    assert normalize.settings.targets("api.example.com", 1234)
    assert normalize.settings.targets("127.0.0.1", 8000)
    assert not normalize.settings.targets("127.0.0.1", 8001)


def test_request_asks_for_identity_encoding(normalize):
    flow = chat_flow()
    flow.request.headers["accept-encoding"] = "gzip, br"
    normalize.requestheaders(flow)
    assert flow.request.headers["accept-encoding"] == "identity"


def test_other_paths_and_hosts_are_untouched(normalize):
    for flow in (chat_flow(host="other.example"), chat_flow(path="/v1/completions")):
        flow.request.headers["accept-encoding"] = "gzip"
        through_headers(normalize, flow)
        assert flow.request.headers["accept-encoding"] == "gzip"
        assert flow.response.stream is True  # an event stream passes as it comes, untouched
        assert flow.response.headers["content-length"] == "7"


def test_stream_headers(normalize):
    flow = chat_flow()
    through_headers(normalize, flow)
    headers = flow.response.headers
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "content-length" not in headers
    assert headers["transfer-encoding"] == "chunked"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"


def test_no_transfer_encoding_toward_http2(normalize):
    flow = chat_flow()
    flow.request.http_version = "HTTP/2.0"
    through_headers(normalize, flow)
    assert "transfer-encoding" not in flow.response.headers


def test_stream_is_rewritten(normalize):
    flow = chat_flow()
    through_headers(normalize, flow)
    body = drive(flow, NIM_STREAM_EVENTS)
    assert b"null," not in body.replace(b'"logprobs":null,', b"").replace(b'"finish_reason":null', b"")
    assert body.endswith(b"data: [DONE]\n\n")


def test_stream_sent_as_json(normalize):
    flow = chat_flow(content_type="application/json")
    through_headers(normalize, flow)
    assert flow.response.headers["content-type"] == "text/event-stream; charset=utf-8"
    body = drive(flow, [EXO_STREAM])
    assert body.endswith(b"data: [DONE]\n\n")
    assert state_of(flow).exchange.repairs["stream_sent_as_json"] == 1


def test_json_reply_to_a_non_stream_request_is_not_a_stream(normalize):
    flow = chat_flow(stream=False, content_type="application/json")
    through_headers(normalize, flow)
    assert flow.response.stream is False


def test_error_reply_to_a_stream_request_is_not_a_stream(normalize):
    flow = chat_flow(content_type="application/json", status=422)
    through_headers(normalize, flow)
    assert flow.response.stream is False


def test_error_labelled_as_a_stream_is_not_a_stream(normalize):
    flow = chat_flow(status=422)
    through_headers(normalize, flow)
    assert flow.response.stream is False


def test_gzip_despite_identity(normalize):
    flow = chat_flow()
    flow.response.headers["content-encoding"] = "gzip"
    through_headers(normalize, flow)
    assert "content-encoding" not in flow.response.headers
    packed = gzip.compress(NIM_STREAM)
    plain = chat_flow()
    through_headers(normalize, plain)
    assert drive(flow, [packed[i : i + 7] for i in range(0, len(packed), 7)]) == drive(plain, [NIM_STREAM])


def test_unknown_content_encoding_passes_through(normalize, caplog):
    flow = chat_flow()
    flow.response.headers["content-encoding"] = "zstd"
    with caplog.at_level(logging.WARNING):
        through_headers(normalize, flow)
    assert flow.response.stream is True
    assert "zstd" in caplog.text


def test_response_logs_a_summary(normalize, caplog):
    flow = chat_flow()
    through_headers(normalize, flow)
    drive(flow, [NIM_STREAM])
    with caplog.at_level(logging.INFO):
        normalize.response(flow)
    assert 'POST api.example.com/v1/chat/completions 200: normalized 11 events: 50 null fields dropped, content "" added to first chunk; first byte after' in caplog.text


def test_flow_state_lives_on_the_flow(normalize):
    flow = chat_flow()
    through_headers(normalize, flow)
    assert state_of(flow).rewriter is not None
    flow.response.stream(NIM_STREAM_EVENTS[0])
    normalize.error(flow)
    assert state_of(flow) is None  # the flow is over: detached (see test_flow_keeps_nothing_once_over)
    # No table of flows to leak: the one set of flows (those still holding an API key) is weak,
    # and the flow left it when the error hook redacted it; pacing keeps a queue per API key
    # only while requests wait on it; the retrier holds nothing of its own.
    assert vars(normalize).keys() == {"settings", "shared", "pace", "unredacted", "retrier"}
    assert vars(normalize.retrier).keys() == {"pace", "unredacted"}
    assert isinstance(normalize.unredacted.waiting, weakref.WeakSet) and flow not in normalize.unredacted.waiting


def test_rewriter_never_raises(normalize, caplog):
    # A body that does not decode is never passed on as if it had: the client gets
    # an error event (and no [DONE]), and what comes after is dropped.
    flow = chat_flow()
    flow.response.headers["content-encoding"] = "gzip"
    through_headers(normalize, flow)
    with caplog.at_level(logging.WARNING):
        out = flow.response.stream(b"definitely not gzip")
    error = json.loads(out.removeprefix(b"data: ").removesuffix(b"\n\n"))
    assert error["error"]["message"].startswith("The proxy could not read the rest of the upstream's reply: the body is not valid gzip")
    assert error["error"]["type"] == "server_error"
    assert flow.response.stream(b"more") == []
    assert flow.response.stream(b"") == []
    assert "could not read" in caplog.text


# -- requests and whole replies (issue #3) --------------------------------------

def whole_flow(normalize, path, *, status=200, body=b"", content_type="application/json", method=b"GET", request=b"", host="api.example.com"):
    """A flow through request, response headers and response, with a buffered body."""
    flow = tflow.tflow(req=tutils.treq(host=host, port=443, path=path.encode(), method=method, content=request), resp=False)
    normalize.requestheaders(flow)
    normalize.request(flow)
    if flow.response is None:
        flow.response = tutils.tresp(status_code=status, content=body)
        flow.response.headers["content-type"] = content_type
    normalize.responseheaders(flow)
    normalize.response(flow)
    return flow


def test_request_is_rewritten_with_a_correct_length():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_model_map=["gpt-4o=meta/llama-3.1-70b-instruct"], normalize_drop_params=["frequency_penalty"])
        request = json.dumps({"model": "gpt-4o", "frequency_penalty": 0.5, "stream": False, "stream_options": {"include_usage": True}, "messages": []}).encode()
        flow = tflow.tflow(req=tutils.treq(host="api.example.com", port=443, path=b"/v1/chat/completions", method=b"POST", content=request), resp=False)
        a.request(flow)
        assert json.loads(flow.request.content) == {"model": "meta/llama-3.1-70b-instruct", "stream": False, "messages": []}
        assert flow.request.headers["content-length"] == str(len(flow.request.content))
        assert state_of(flow).exchange.alias == "gpt-4o"


def test_bad_model_map_is_refused():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match="Cannot parse normalize_model_map"):
            tctx.configure(a, normalize_model_map=["no-equals-sign"])


def test_error_reply_keeps_its_status(normalize):
    body = b'data:{"type":"urn:inference-service:problem-details:unprocessable-entity","title":"Unprocessable Entity","status":422,"detail":"body -> frequency_penalty\\n  Extra inputs are not permitted","instance":"/v2/nvcf/pexec/functions/x","requestId":"y"}'
    flow = whole_flow(normalize, "/v1/chat/completions", status=422, body=body, content_type="application/problem+json", method=b"POST")
    assert flow.response.status_code == 422
    assert flow.response.headers["content-type"] == "application/json"
    error = json.loads(flow.response.content)["error"]
    assert error["message"] == "body -> frequency_penalty\n  Extra inputs are not permitted"
    assert flow.response.headers["content-length"] == str(len(flow.response.raw_content))
    assert flow.comment == "normalized: NIM problem+json error made an OpenAI error"
    assert flow.metadata["normalize"]["original"] == body


def test_completion_reply_is_repaired(normalize):
    body = b'\n\n{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"eos_token"}]}'
    flow = whole_flow(normalize, "/v1/chat/completions", body=body, method=b"POST", request=b'{"model":"m"}')
    out = json.loads(flow.response.content)
    assert out["choices"][0]["message"]["content"] == ""
    assert out["choices"][0]["finish_reason"] == "stop"
    assert flow.response.content.startswith(b'{\n  "id": "x",')


def test_conforming_completion_is_left_alone(normalize):
    body = json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None}, "logprobs": None, "finish_reason": "stop"}]}).encode()
    flow = whole_flow(normalize, "/v1/chat/completions", body=body, method=b"POST")
    assert flow.response.content == body
    assert flow.comment == "normalized: nothing to repair"


def test_models_bare_list(normalize):
    flow = whole_flow(normalize, "/v1/models", body=b'[{"id":"llama-3.2-1b","object":"model","owned_by":"exo","ready":true}]')
    out = json.loads(flow.response.content)
    assert out["object"] == "list" and [m["id"] for m in out["data"]] == ["llama-3.2-1b"]


def test_models_endpoint_missing():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_model_map=["gpt-4o=meta/llama"])
        flow = whole_flow(a, "/v1/models", status=404, body=b"Not Found", content_type="text/plain")
        assert flow.response.status_code == 200
        assert [m["id"] for m in json.loads(flow.response.content)["data"]] == ["gpt-4o"]
        assert flow.comment == "normalized: model list answered by the proxy (upstream has none)"


def test_models_answered_locally():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_models=["a", "b"])
        flow = whole_flow(a, "/v1/models")
        assert [m["id"] for m in json.loads(flow.response.content)["data"]] == ["a", "b"]
        assert flow.comment == "normalized: model list answered by the proxy (normalize_models)"


# -- inspection (issue #4) ------------------------------------------------------

def streamed(normalize, flow, pieces):
    through_headers(normalize, flow)
    body = drive(flow, pieces)
    flow.response.raw_content = None  # as mitmproxy leaves a streamed body
    normalize.response(flow)
    return body


def test_stream_flow_records_what_was_repaired(normalize):
    flow = chat_flow()
    body = streamed(normalize, flow, NIM_STREAM_EVENTS)
    info = flow.metadata["normalize"]
    assert flow.comment == 'normalized 11 events: 50 null fields dropped, content "" added to first chunk'
    assert info["repairs"] == {"content_missing_on_first_chunk": 1, "null_fields": 50}
    assert info["events"] == 11 and info["raw_passthrough"] is False
    assert flow.response.raw_content == body
    assert info["original"] == NIM_STREAM


@pytest.mark.parametrize("cap", [0, 100])
def test_keep_bytes_caps_both_bodies(cap):
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_keep_bytes=cap)
        flow = chat_flow()
        body = streamed(a, flow, NIM_STREAM_EVENTS)
        assert flow.response.raw_content == body[:cap]
        info = flow.metadata["normalize"]
        if cap:
            assert info["original"] == NIM_STREAM[:cap]
            assert info["original_dropped"] == len(NIM_STREAM) - cap
        else:
            assert "original" not in info


def test_negative_keep_bytes_is_refused():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match="normalize_keep_bytes"):
            tctx.configure(a, normalize_keep_bytes=-1)


def test_api_keys_are_redacted_after_the_request_went_upstream(normalize):
    flow = chat_flow()
    flow.request.headers["authorization"] = "Bearer nvapi-secret"
    flow.request.headers["x-api-key"] = "sk-secret"
    response, flow.response = flow.response, None
    normalize.requestheaders(flow)
    normalize.request(flow)
    assert flow.request.headers["authorization"] == "Bearer nvapi-secret"  # still to be sent
    flow.response = response
    normalize.responseheaders(flow)
    assert flow.request.headers["authorization"] == "Bearer [redacted]"
    assert flow.request.headers["x-api-key"] == "[redacted]"


def test_redaction_can_be_turned_off():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_redact_keys=False)
        flow = chat_flow()
        flow.request.headers["authorization"] = "Bearer nvapi-secret"
        through_headers(a, flow)
        assert flow.request.headers["authorization"] == "Bearer nvapi-secret"


def test_other_hosts_keep_their_headers(normalize):
    flow = chat_flow(host="other.example")
    flow.request.headers["authorization"] = "Bearer sk-other"
    through_headers(normalize, flow)
    normalize.response(flow)
    assert flow.request.headers["authorization"] == "Bearer sk-other"
    assert "normalize" not in flow.metadata and not flow.comment


def test_content_views(normalize):
    from mitmproxy import contentviews

    flow = chat_flow()
    body = streamed(normalize, flow, NIM_STREAM_EVENTS)
    meta = contentviews.Metadata(flow=flow, http_message=flow.response, content_type="text/event-stream")
    assembled, sse, before_after = views.AssembledView(), views.SSEView(), views.BeforeAfterView()
    assert assembled.render_priority(body, meta) > sse.render_priority(body, meta) > 1
    assert "Tabs, naïve café — 東京 🚀" in assembled.prettify(body, meta)
    assert sse.prettify(body, meta).splitlines()[-1] == "data: [DONE]"
    assert "repaired" in before_after.prettify(body, meta)
    untouched = chat_flow(host="other.example")
    other = contentviews.Metadata(flow=untouched, http_message=untouched.response, content_type="text/event-stream")
    assert assembled.render_priority(body, other) < 0 and sse.render_priority(body, other) < 0


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 200), (b"POST", 204)])
def test_bodiless_replies_are_left_alone(normalize, method, status):
    flow = chat_flow(status=status)
    flow.request.method = method.decode()
    through_headers(normalize, flow)
    assert flow.response.stream is False
    assert flow.response.headers["content-type"] == "text/event-stream"


def test_request_view_shows_what_the_client_sent_and_what_went_upstream():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_model_map=["gpt-4o=meta/llama"])
        sent = json.dumps({"model": "gpt-4o", "messages": []}).encode()
        flow = tflow.tflow(req=tutils.treq(host="api.example.com", port=443, path=b"/v1/chat/completions", method=b"POST", content=sent), resp=False)
        a.request(flow)
        flow.response = tutils.tresp(status_code=200, content=b"{}")
        a.response(flow)
        assert flow.metadata["normalize"]["request_original"] == sent
        meta = contentviews.Metadata(flow=flow, http_message=flow.request, content_type="application/json")
        view = views.RequestView()
        assert view.render_priority(flow.request.content, meta) == 2
        text = view.prettify(flow.request.content, meta)
        assert text == 'The client sent:\n{\n  "model": "gpt-4o",\n  "messages": []\n}\n\nThe addon sent upstream:\n{\n  "model": "meta/llama",\n  "messages": []\n}\n'
        untouched = tflow.tflow(resp=True)
        other = contentviews.Metadata(flow=untouched, http_message=untouched.request, content_type="application/json")
        assert view.render_priority(b"{}", other) == -1



def bodiless(normalize, method, status, length="122"):
    """A reply with no body, through the hooks: the upstream's headers say how long a body would be."""
    flow = tflow.tflow(req=tutils.treq(host="api.example.com", port=443, path=b"/v1/models", method=method, content=b""), resp=False)
    normalize.requestheaders(flow)
    normalize.request(flow)
    flow.response = tutils.tresp(status_code=status, content=b"")
    flow.response.headers["content-type"] = "application/json"
    if length is None:
        del flow.response.headers["content-length"]
    else:
        flow.response.headers["content-length"] = length
    normalize.responseheaders(flow)
    normalize.response(flow)
    return flow


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 404), (b"HEAD", 200), (b"GET", 304), (b"GET", 204)])
def test_bodiless_reply_gets_no_body(normalize, method, status):
    """A reply to HEAD, a 204 or a 304 has no body (RFC 9110 6.4.1): one written after its headers
    would be read by a keep-alive client as the start of its next response."""
    flow = bodiless(normalize, method, status)
    assert flow.response.raw_content == b""
    assert flow.response.status_code == status
    assert flow.response.headers["content-length"] == "122" and "transfer-encoding" not in flow.response.headers


def exchange_ref(flow):
    """A weak reference to the flow's exchange, and the flow's state dropped from this frame."""
    return weakref.ref(state_of(flow).exchange)


@pytest.mark.parametrize("ending", ["response", "error"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/messages"])
def test_flow_keeps_nothing_once_over(normalize, path, ending):
    """mitmweb keeps every flow while it runs: once the flow is over, nothing of the exchange (the
    parsed request bodies, several times their JSON; the Messages bridge's forwarded key header)
    stays reachable from it."""
    import gc

    flow = chat_flow(path=path)
    flow.request.content = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}], "input": "hi"}).encode()
    flow.request.headers["x-api-key"] = "sk-secret"
    through_headers(normalize, flow)
    assert callable(flow.response.stream)
    ref = exchange_ref(flow)
    assert ref().forward is None  # applied: not kept
    flow.response.stream(NIM_STREAM_EVENTS[0])
    if ending == "response":
        flow.response.stream(b"")
        normalize.response(flow)
    else:
        flow.error = tflow.terr("Client disconnected.")
        normalize.error(flow)
    assert state_of(flow) is None and flow.response.stream is True
    gc.collect()
    assert ref() is None


def test_whole_reply_flow_keeps_nothing_once_over(normalize):
    import gc

    flow = tflow.tflow(req=tutils.treq(host="api.example.com", port=443, path=b"/v1/chat/completions", method=b"POST", content=b'{"model":"m"}'), resp=False)
    normalize.requestheaders(flow)
    normalize.request(flow)
    ref = exchange_ref(flow)
    flow.response = tutils.tresp(status_code=200, content=b'{"object":"chat.completion","choices":[]}')
    normalize.responseheaders(flow)
    normalize.response(flow)
    assert state_of(flow) is None
    gc.collect()
    assert ref() is None


def test_host_letter_case_is_one_upstream(normalize):
    """What an upstream rejects is learned under its host: API.example.com is api.example.com,
    as normalize_hosts and the profiles take it."""
    flow = tflow.tflow(req=tutils.treq(host="API.Example.com", port=443, path=b"/v1/chat/completions", method=b"POST", content=b'{"model":"m"}'), resp=False)
    normalize.requestheaders(flow)
    normalize.request(flow)
    assert state_of(flow).exchange.env.host == "api.example.com:443"


def test_api_key_in_the_query_is_redacted(normalize):
    """Gemini takes its key as `?key=` too: the stored copy loses it as it loses the key headers."""
    flow = chat_flow(path="/v1beta/openai/chat/completions?alt=sse&key=AIza-secret")
    through_headers(normalize, flow)
    assert flow.request.query.get_all("key") == ["[redacted]"]
    assert flow.request.query["alt"] == "sse"
    assert "AIza-secret" not in flow.request.url
