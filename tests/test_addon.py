"""The mitmproxy glue, driven through mitmproxy's own test helpers."""

import gzip
import json
import logging

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow, tutils

import addon
from recorded import EXO_STREAM, NIM_STREAM, NIM_STREAM_EVENTS


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
    assert addon.parse_hosts(entries) == expected


@pytest.mark.parametrize("bad", ["", "a,,b", "host:0", "host:port", "host:99999", "http://host/x"])
def test_bad_hosts_option_is_refused(bad):
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match="Cannot parse normalize_hosts"):
            tctx.configure(a, normalize_hosts=[bad])


def test_default_host_is_nim():
    a = addon.Normalize()
    with taddons.context(a):
        assert a.targeted(chat_flow(host="integrate.api.nvidia.com"))
        assert not a.targeted(chat_flow(host="api.openai.com"))


def test_host_and_port_matching(normalize):
    assert normalize.targeted(chat_flow(host="api.example.com", port=1234))
    assert normalize.targeted(chat_flow(host="127.0.0.1", port=8000))
    assert not normalize.targeted(chat_flow(host="127.0.0.1", port=8001))


def test_request_asks_for_identity_encoding(normalize):
    flow = chat_flow()
    flow.request.headers["accept-encoding"] = "gzip, br"
    normalize.requestheaders(flow)
    assert flow.request.headers["accept-encoding"] == "identity"


def test_other_paths_and_hosts_are_untouched(normalize):
    for flow in (chat_flow(host="other.example"), chat_flow(path="/v1/embeddings")):
        flow.request.headers["accept-encoding"] = "gzip"
        through_headers(normalize, flow)
        assert flow.request.headers["accept-encoding"] == "gzip"
        assert flow.response.stream is False
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
    assert normalize.flows[flow.id].repairs["stream_sent_as_json"] == 1


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


def test_response_logs_a_summary_and_releases_state(normalize, caplog):
    flow = chat_flow()
    through_headers(normalize, flow)
    drive(flow, [NIM_STREAM])
    with caplog.at_level(logging.INFO):
        normalize.response(flow)
    assert not normalize.flows
    assert "normalized POST api.example.com/v1/chat/completions 200: 11 events" in caplog.text
    assert "null_fields" in caplog.text


def test_error_hook_releases_state(normalize):
    flow = chat_flow()
    through_headers(normalize, flow)
    flow.response.stream(NIM_STREAM_EVENTS[0])
    normalize.error(flow)
    assert not normalize.flows


def test_rewriter_never_raises(normalize, caplog):
    flow = chat_flow()
    flow.response.headers["content-encoding"] = "gzip"
    through_headers(normalize, flow)
    with caplog.at_level(logging.ERROR):
        out = flow.response.stream(b"definitely not gzip")
    assert out == b"definitely not gzip"
    assert flow.response.stream(b"more") == b"more"
    assert flow.response.stream(b"") == []
