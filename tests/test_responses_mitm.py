"""A bridged flow through the mitmproxy glue: the path rewritten, the stream wired, what is
recorded on the flow (client's request, upstream's chat stream, the Responses events), the
views, and GET answered locally."""

import json

from mitmproxy import contentviews
from mitmproxy.test import taddons, tflow, tutils

from normalize.mitm import addon, views
from tests.responses_stream import assemble, nim_stream
from tests.test_mitm import drive, through_headers

BODY = {"model": "gpt-4o", "input": "Tabs or spaces?", "stream": True, "store": True}


def bridged_flow(body=BODY, path=b"/v1/responses"):
    flow = tflow.tflow(
        req=tutils.treq(host="api.example.com", port=443, path=path, method=b"POST", content=json.dumps(body).encode()),
        resp=tutils.tresp(status_code=200, content=b""),
    )
    flow.request.headers["authorization"] = "Bearer nvapi-secret"
    flow.response.headers["content-type"] = "text/event-stream"
    return flow


def test_bridged_stream_is_recorded_and_viewable():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"])
        flow = bridged_flow()
        through_headers(a, flow)
        assert flow.request.path == "/v1/chat/completions"
        assert json.loads(flow.request.content)["messages"] == [{"role": "user", "content": "Tabs or spaces?"}]
        pieces = nim_stream([("content", "Spaces"), ("content", ".")])
        body = drive(flow, pieces)
        a.response(flow)
        got = assemble(body)
        assert got.text == "Spaces."
        info = flow.metadata["normalize"]
        assert json.loads(info["request_original"]) == BODY
        assert info["original"] == b"".join(pieces)
        assert flow.response.raw_content == body
        assert flow.comment.startswith("bridged responses -> chat 5 events: ")
        assert flow.request.headers["authorization"] == "Bearer [redacted]"

        meta = contentviews.Metadata(flow=flow, http_message=flow.response, content_type="text/event-stream")
        assert "  text:\n    Spaces.\n" in views.AssembledView().prettify(body, meta)
        assert views.BeforeAfterView().prettify(body, meta).startswith("bridged: ")
        request_meta = contentviews.Metadata(flow=flow, http_message=flow.request, content_type="application/json")
        assert '"input": "Tabs or spaces?"' in views.RequestView().prettify(flow.request.content, request_meta)

        # the response was kept: GET answers it without the upstream
        get = tflow.tflow(req=tutils.treq(host="api.example.com", port=443, path=f"/v1/responses/{got.response['id']}".encode(), method=b"GET", content=b""), resp=False)
        get.request.headers["authorization"] = "Bearer nvapi-secret"
        a.request(get)
        assert get.response.status_code == 200 and json.loads(get.response.content) == got.response


def test_pass_option_leaves_the_request_alone():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"], normalize_responses="pass")
        flow = bridged_flow()
        through_headers(a, flow)
        assert flow.request.path == "/v1/responses" and json.loads(flow.request.content) == BODY
        assert flow.response.stream is True  # the upstream's own Responses stream, passed on as it comes


def test_bad_responses_option_is_refused():
    import pytest
    from mitmproxy import exceptions

    a = addon.Normalize()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match="Cannot parse normalize_responses"):
            tctx.configure(a, normalize_responses="maybe")
