"""The Messages bridge through the mitmproxy glue: what a flow sends upstream, answers and records."""

import json

from mitmproxy.test import taddons, tflow, tutils

from normalize.mitm import addon
from tests.recorded import NIM_STREAM, NIM_STREAM_EVENTS
from tests.test_mitm import drive

BODY = {"model": "claude-x", "max_tokens": 64, "stream": True, "thinking": {"type": "adaptive"}, "messages": [{"role": "user", "content": "Hi"}]}


def messages_flow(path=b"/v1/messages?beta=true", body=BODY, headers=()):
    request = tutils.treq(host="api.example.com", port=443, path=path, method=b"POST", content=json.dumps(body).encode())
    request.headers["x-api-key"] = "nvapi-secret"
    request.headers["anthropic-version"] = "2023-06-01"
    for name, value in headers:
        request.headers[name] = value
    return tflow.tflow(req=request, resp=False)


def test_bridged_stream_flow():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"])
        flow = messages_flow()
        a.requestheaders(flow)
        a.request(flow)
        assert flow.request.path == "/v1/chat/completions"
        assert flow.request.headers["authorization"] == "Bearer nvapi-secret"
        assert "x-api-key" not in flow.request.headers and "anthropic-version" not in flow.request.headers
        sent = json.loads(flow.request.content)
        assert sent == {"model": "claude-x", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64, "stream": True, "stream_options": {"include_usage": True}}
        flow.response = tutils.tresp(status_code=200, content=b"")
        flow.response.headers["content-type"] = "text/event-stream"
        a.responseheaders(flow)
        assert flow.request.headers["authorization"] == "Bearer [redacted]"  # the stored copy
        body = drive(flow, NIM_STREAM_EVENTS)
        flow.response.raw_content = None
        a.response(flow)
        assert flow.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert body.startswith(b"event: message_start\n") and body.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        info = flow.metadata["normalize"]
        assert flow.comment == (
            "bridged messages -> chat 11 events: 50 null fields dropped, x-api-key sent as Authorization: Bearer, "
            'content "" added to first chunk, adaptive or disabled thinking not sent upstream'
        )
        assert json.loads(info["request_original"]) == BODY
        assert info["original"] == NIM_STREAM
        assert flow.response.raw_content == body


def test_count_tokens_flow():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"])
        flow = messages_flow(path=b"/v1/messages/count_tokens?beta=true")
        a.requestheaders(flow)
        a.request(flow)
        assert flow.response.status_code == 200
        assert json.loads(flow.response.content) == {"input_tokens": 4}
        a.responseheaders(flow)
        a.response(flow)
        assert flow.comment == "answered messages count_tokens: input tokens estimated by the proxy"


def test_whole_error_flow():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"])
        flow = messages_flow(body={**BODY, "stream": False})
        a.requestheaders(flow)
        a.request(flow)
        flow.response = tutils.tresp(status_code=429, content=b'{"status":429,"title":"Too Many Requests"}')
        flow.response.headers["content-type"] = "application/problem+json"
        a.responseheaders(flow)
        a.response(flow)
        assert flow.response.status_code == 429
        assert flow.response.headers["content-type"] == "application/json"
        assert json.loads(flow.response.content) == {"type": "error", "error": {"type": "rate_limit_error", "message": "Too Many Requests"}}


def test_pass_option_leaves_the_flow_alone():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_messages="pass")
        flow = messages_flow()
        a.requestheaders(flow)
        a.request(flow)
        assert flow.request.path == "/v1/messages?beta=true"
        assert json.loads(flow.request.content) == BODY
        flow.response = tutils.tresp(status_code=404, content=b"nope")
        a.responseheaders(flow)
        a.response(flow)
        assert flow.response.content == b"nope"
        assert "normalize" not in flow.metadata


def test_bad_messages_option_is_refused():
    import pytest
    from mitmproxy import exceptions

    a = addon.Normalize()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match="Cannot parse normalize_messages option: 'yes' is not one of 'bridge', 'pass'"):
            tctx.configure(a, normalize_messages="yes")


def test_mitmweb_views_of_a_bridged_flow():
    from mitmproxy import contentviews

    from normalize.mitm import views

    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"])
        flow = messages_flow()
        a.requestheaders(flow)
        a.request(flow)
        flow.response = tutils.tresp(status_code=200, content=b"")
        flow.response.headers["content-type"] = "text/event-stream"
        a.responseheaders(flow)
        body = drive(flow, NIM_STREAM_EVENTS)
        flow.response.raw_content = None
        a.response(flow)
        meta = contentviews.Metadata(flow=flow, http_message=flow.response, content_type="text/event-stream")
        assembled = views.AssembledView().prettify(body, meta)
        assert assembled.splitlines()[:5] == ["id: msg_8f20d6699e194a0abed38c671384d32d", "model: claude-x", "role: assistant", "stop_reason: end_turn", "block 0: text"]
        assert views.SSEView().prettify(body, meta).splitlines()[-1] == 'event: message_stop | data: {"type":"message_stop"}'
        before_after = views.BeforeAfterView().prettify(body, meta)
        assert before_after.startswith("The upstream's chat reply was translated into Anthropic's Messages API.")
        request_meta = contentviews.Metadata(flow=flow, http_message=flow.request, content_type="application/json")
        request_view = views.RequestView().prettify(flow.request.content, request_meta)
        assert request_view.startswith('The client sent:\n{\n  "model": "claude-x",\n  "max_tokens": 64,')
        assert '"stream_options": {\n    "include_usage": true\n  }' in request_view
