"""One test per upstream error shape, named after it; bytes from ../shared/quirks.md."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.errors import error_body, error_object, error_reply, error_status, stream_error_line


def stream_error(obj):
    """OpenAI's error for a JSON value met inside a stream, or None when it is no error."""
    found = error_object(obj)
    return None if found is None else found[0]

NIM_PROBLEM = (
    b'{"type":"urn:inference-service:problem-details:unprocessable-entity","title":"Unprocessable Entity",'
    b'"status":422,"detail":"body -> frequency_penalty\\n  Extra inputs are not permitted (type=extra_forbidden)",'
    b'"instance":"/v2/nvcf/pexec/functions/1136f83f-0000","requestId":"2230b3a0-0000"}'
)
NIM_DETAIL = "body -> frequency_penalty\n  Extra inputs are not permitted (type=extra_forbidden)"
VLLM_MESSAGE = "This model's maximum context length is 2048 tokens. However, you requested 4000 tokens."
OPENAI_ERROR = {
    "error": {
        "message": "The server had an error processing your request.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


def error(message, kind, param=None, code=None, **extra):
    return {"error": {"message": message, "type": kind, "param": param, "code": code, **extra}}


def test_openai_error_unchanged():
    body = json.dumps(OPENAI_ERROR).encode()
    out, repair = error_body(500, body)
    assert out == OPENAI_ERROR
    assert repair is None


def test_nim_backend_error_leak():
    # Already OpenAI's shape (vLLM behind NIM): passes untouched, vLLM's type kept.
    body = (
        b'{"error":{"message":"\\"auto\\" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
        b'to be set","type":"BadRequestError","param":null,"code":400}}'
    )
    out, repair = error_body(400, body)
    assert out == json.loads(body)
    assert repair is None


def problem_and_error(problem, message, kind, **error_fields):
    """NIM's problem members kept as sent, OpenAI's `error` beside them."""
    return {**problem, **error(message, kind, **error_fields)}


def test_nim_problem_json():
    # The problem's members stay at the top level: langchain-nvidia-ai-endpoints builds its
    # message from title and detail; OpenAI's SDKs read `error`.
    out, repair = error_body(422, NIM_PROBLEM, "application/problem+json")
    assert out == problem_and_error(json.loads(NIM_PROBLEM), NIM_DETAIL, "invalid_request_error")
    assert list(out)[:4] == ["type", "title", "status", "detail"]
    assert repair == "nim_problem_json"


def test_nim_problem_json_with_data_prefix():
    # LiteLLM #4558 quotes the 422 body starting with `data:`; langchain-nvidia strips it.
    for prefix in (b"data:", b"data: "):
        out, repair = error_body(422, prefix + NIM_PROBLEM, "application/json")
        assert out == problem_and_error(json.loads(NIM_PROBLEM), NIM_DETAIL, "invalid_request_error")
        assert repair == "nim_problem_json"


def test_nim_problem_json_server_error():
    body = b'{"type":"urn:inference-service:problem-details:internal-server-error","title":"Internal Server Error","status":500,"detail":"System role not supported"}'
    expected = problem_and_error(json.loads(body), "System role not supported", "server_error")
    assert error_body(500, body) == (expected, "nim_problem_json")


def test_nim_problem_json_without_detail():
    body = b'{"type":"about:blank","title":"Unprocessable Entity","status":422}'
    assert error_body(422, body)[0] == problem_and_error(json.loads(body), "Unprocessable Entity", "invalid_request_error")


def test_nim_rate_limit_problem():
    # NIM's 40 requests a minute (NousResearch/hermes-agent #69802): status and title only.
    body = b'{"status":429,"title":"Too Many Requests"}'
    assert error_reply(429, body) == (429, problem_and_error(json.loads(body), "Too Many Requests", "requests"), ["nim_problem_json"])


# -- statuses a client should act on (error_reply) ---------------------------------


def test_validation_error_as_401():
    # NIM's 401 for `tools[].function.strict` (charmbracelet/crush #2472): not an auth failure.
    body = (
        b'{"error":{"message":"Failed to validate model spec: Unknown parameter: function.strict",'
        b'"type":"invalid_request_error","param":"function.strict","code":"invalid_value"}}'
    )
    status, out, repairs = error_reply(401, body)
    assert status == 400
    assert out == json.loads(body)
    assert repairs == ["validation_error_as_401"]


def test_real_401_unchanged():
    body = b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}'
    assert error_reply(401, body) == (401, json.loads(body), [])


def test_resource_exhausted_not_429():
    # NIM's per-model worker cap (anomalyco/opencode #34613): a rate limit, sent as a 500.
    body = b'{"error":{"message":"ResourceExhausted: Worker local total request limit reached (32/32)"}}'
    status, out, repairs = error_reply(500, body)
    assert status == 429
    assert out == error("ResourceExhausted: Worker local total request limit reached (32/32)", "requests")
    assert repairs == ["error_fields_missing", "resource_exhausted_not_429"]


@pytest.mark.parametrize("status", [404, 410])
def test_model_gone_as_problem(status):
    # NIM's removed model (free-claude-code #1021; oh-my-pi #2299 for 410): OpenAI's model_not_found.
    problem = {"status": status, "title": "Not Found" if status == 404 else "Gone",
               "detail": "Function '23d4c1a0-0000': Not found for account 'acct-0000'"}
    status_out, out, repairs = error_reply(status, json.dumps(problem).encode(), "application/problem+json")
    assert status_out == 404
    assert out == problem_and_error(problem, problem["detail"], "invalid_request_error", code="model_not_found")
    assert repairs == ["nim_problem_json", "model_gone_as_problem"]


def test_function_degraded_as_400():
    # NIM (farion1231/cc-switch #3536): the function's state, not the request, is at fault.
    problem = {"status": 400, "title": "Bad Request", "detail": "Function id '9f1c0000': DEGRADED function cannot be invoked"}
    status, out, repairs = error_reply(400, json.dumps(problem).encode(), "application/problem+json")
    assert status == 503
    assert out == problem_and_error(problem, problem["detail"], "server_error")
    assert repairs == ["nim_problem_json", "function_degraded_as_400"]


def test_nim_flat_error_not_wrapped():
    # free-claude-code #127: no `error` wrapper.
    body = b'{"message":"Validation: Unsupported parameter(s): reasoning_budget","type":"Bad Request","code":400}'
    assert error_reply(400, body) == (
        400,
        error("Validation: Unsupported parameter(s): reasoning_budget", "Bad Request", code=400),
        ["error_not_wrapped"],
    )


def test_vllm_error_not_wrapped():
    body = json.dumps(
        {"object": "error", "message": VLLM_MESSAGE, "type": "BadRequestError", "param": None, "code": 400}
    ).encode()
    assert error_body(400, body) == (error(VLLM_MESSAGE, "BadRequestError", code=400), "error_not_wrapped")


def test_gemini_error_in_array():
    body = (
        b'[{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \\"web_search_options\\": '
        b'Cannot find field.","status":"INVALID_ARGUMENT"}}]'
    )
    out, repair = error_body(400, body)
    assert out == error(
        'Invalid JSON payload received. Unknown name "web_search_options": Cannot find field.',
        "invalid_request_error",
        code=400,
        status="INVALID_ARGUMENT",
    )
    assert repair == "error_in_array"


def test_tgi_error_is_string():
    body = b'{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096","error_type":"validation"}'
    out, repair = error_body(422, body)
    assert out == error("Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096", "validation")
    assert repair == "error_is_string"


def test_tgi_error_fields_missing():
    # TGI after PR #2668: wrapped, but with no type, param or code.
    body = b'{"error":{"message":"Input validation error","http_status_code":422}}'
    out, repair = error_body(422, body)
    assert out == error("Input validation error", "invalid_request_error", http_status_code=422)
    assert list(out["error"]) == ["message", "type", "param", "code", "http_status_code"]
    assert repair == "error_fields_missing"


def test_error_type_empty():
    # The thinking-mode provider in quirks.md: type "", code a string; the code is kept as sent.
    body = b'{"error":{"code":"400","message":"Param Incorrect","param":"The reasoning_content in the thinking mode must be passed back to the API.","type":""}}'
    out, repair = error_body(400, body)
    assert out == error(
        "Param Incorrect",
        "invalid_request_error",
        param="The reasoning_content in the thinking mode must be passed back to the API.",
        code="400",
    )
    assert repair == "error_fields_missing"


def test_error_code_not_string_or_int():
    body = b'{"error":{"message":"m","type":"t","param":null,"code":{"x":1}}}'
    assert error_body(400, body) == (error("m", "t"), "error_fields_missing")


def test_error_data_prefix():
    body = b"data: " + json.dumps(OPENAI_ERROR).encode()
    assert error_body(500, body) == (OPENAI_ERROR, "error_data_prefix")


def test_nim_error_is_detail():
    body = b'{"detail":"Function id \'0f0f\': DEGRADED function cannot be invoked"}'
    assert error_body(400, body) == (
        error("Function id '0f0f': DEGRADED function cannot be invoked", "invalid_request_error"),
        "error_is_detail",
    )


def test_fastapi_error_is_detail_list():
    body = json.dumps(
        {
            "detail": [
                {"loc": ["body", "messages"], "msg": "field required", "type": "value_error.missing"},
                {"loc": ["body", "dimensions"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
            ]
        }
    ).encode()
    out, repair = error_body(422, body)
    assert out == error(
        "body -> messages: field required; body -> dimensions: Extra inputs are not permitted", "invalid_request_error"
    )
    assert repair == "error_is_detail"


def test_error_not_json_html_gateway_page():
    body = (
        b"<html>\r\n<head><title>502 Bad Gateway</title><style>h1{color:red}</style></head>\r\n"
        b"<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<!-- a comment -->"
        b"<hr><center>nginx &amp; friends</center>\r\n</body>\r\n</html>\r\n"
    )
    out, repair = error_body(502, body, "text/html")
    assert out == error("502 Bad Gateway nginx & friends", "server_error")
    assert repair == "error_not_json"


def test_gateway_html_is_cut_short():
    body = b"<html><body><p>" + b"word " * 1000 + b"</p></body></html>"
    message = error_body(503, body, "text/html; charset=utf-8")[0]["error"]["message"]
    assert len(message) == 1000
    assert message.endswith("word…")


def test_error_not_json_plain_text():
    body = b"\n400 Validation: Unsupported parameter(s): `tool_stream`\n"
    out, repair = error_body(400, body, "text/plain")
    assert out == error("400 Validation: Unsupported parameter(s): `tool_stream`", "invalid_request_error")
    assert repair == "error_not_json"


def test_gateway_plain_text_not_utf8():
    out, _ = error_body(500, b"bad \xff byte")
    assert out["error"]["message"] == "bad \ufffd byte"


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (502, "Bad Gateway", "server_error"),
        (401, "Unauthorized", "invalid_request_error"),
        (404, "Not Found", "invalid_request_error"),
        (429, "Too Many Requests", "requests"),
        (503, "Service Unavailable", "server_error"),
        (520, "HTTP status 520", "server_error"),
    ],
)
def test_error_body_empty(status, message, kind):
    assert error_body(status, b" \r\n") == (error(message, kind), "error_body_empty")


def test_error_unknown_shape():
    assert error_body(404, b'{"message":"no Route matched with those values"}') == (
        error("no Route matched with those values", "invalid_request_error"),
        "error_unknown_shape",
    )
    assert error_body(500, b'"oops"') == (error("oops", "server_error"), "error_unknown_shape")
    assert error_body(500, b"[1,2]") == (error("[1,2]", "server_error"), "error_unknown_shape")


# -- inside a stream -----------------------------------------------------------


def test_stream_tgi_error_is_string():
    obj = {"error": "Request failed during generation: Server error: CUDA out of memory", "error_type": "generation"}
    assert stream_error(obj) == error("Request failed during generation: Server error: CUDA out of memory", "generation")


def test_stream_tgi_error_fields_missing():
    obj = {"error": {"message": "Input validation error", "http_status_code": 422}}
    assert stream_error(obj) == error("Input validation error", "invalid_request_error", http_status_code=422)


def test_stream_openai_error_unchanged():
    assert stream_error(OPENAI_ERROR) is OPENAI_ERROR


def test_stream_vllm_error_not_wrapped():
    obj = {"object": "error", "message": VLLM_MESSAGE, "type": "BadRequestError", "param": None, "code": 400}
    assert stream_error(obj) == error(VLLM_MESSAGE, "BadRequestError", code=400)


def test_stream_nim_problem_json():
    problem = json.loads(NIM_PROBLEM)
    assert stream_error(problem) == {**problem, **error(NIM_DETAIL, "invalid_request_error")}


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "a"}}]},
        {"id": "x", "choices": [], "error": None},
        {"message": "not an error: no type or code"},
        [1],
        "text",
        None,
    ],
)
def test_stream_not_an_error(obj):
    assert stream_error(obj) is None


def test_llama_cpp_error_line():
    payload = b' {"code":400,"message":"the request exceeds the available context size, try increasing it","type":"invalid_request_error"}'
    assert stream_error_line(payload) == error(
        "the request exceeds the available context size, try increasing it", "invalid_request_error", code=400
    )


def test_llama_cpp_error_line_not_json():
    assert stream_error_line(b" something broke") == error("something broke", "server_error")
    assert stream_error_line(b'{"code":503}') == error("Service Unavailable", "server_error", code=503)


# -- what the real openai SDK makes of each result ----------------------------

SHAPES = [
    (422, NIM_PROBLEM),
    (400, b'{"object":"error","message":"m","type":"BadRequestError","param":null,"code":400}'),
    (400, b'[{"error":{"code":400,"message":"m","status":"INVALID_ARGUMENT"}}]'),
    (422, b'{"error":"m","error_type":"validation"}'),
    (422, b'{"error":{"message":"m","http_status_code":422}}'),
    (400, b'{"detail":"m"}'),
    (502, b"<html><body>Bad gateway</body></html>"),
    (504, b""),
]


@pytest.mark.parametrize(("status", "body"), SHAPES)
def test_openai_sdk_reads_the_message(status, body):
    openai = pytest.importorskip("openai")
    httpx = pytest.importorskip("httpx2")
    fixed, _ = error_body(status, body)
    request = httpx.Request("POST", "http://upstream/v1/chat/completions")
    response = httpx.Response(status, content=json.dumps(fixed).encode(), request=request)
    exc = openai.OpenAI(api_key="x", base_url="http://upstream/v1")._make_status_error_from_response(response)
    assert exc.message == f"Error code: {status} - {fixed['error']['message']}"
    assert exc.type == fixed["error"]["type"]
    assert exc.status_code == status


# -- any input: an OpenAI error out, nothing raised ------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),  # what the wire reader gives
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["error", "message", "type", "param", "code", "detail", "title", "status", "object", "error_type", "loc", "msg"])
        | st.text(),
        inner,
        max_size=4,
    ),
    max_leaves=12,
)


def assert_openai_error(out):
    error = out["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert "param" in error and "code" in error
    json.dumps(out)


@given(st.integers(400, 599), st.binary(max_size=200), st.sampled_from(["", "text/html", "application/problem+json"]))
def test_error_body_any_bytes(status, body, content_type):
    assert_openai_error(error_body(status, body, content_type)[0])


@given(st.integers(400, 599), JSON)
def test_error_body_any_json(status, obj):
    assert_openai_error(error_body(status, json.dumps(obj).encode())[0])


@given(JSON)
def test_stream_error_any_json(obj):
    out = stream_error(obj)
    if out is not None:
        assert_openai_error(out)
    assert_openai_error(stream_error_line(json.dumps(obj).encode()))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ({"error": {"message": "m", "code": 429}}, 429),
        ({"error": {"message": "m", "code": "503"}}, 503),
        ({"error": {"message": "m", "type": "requests", "code": None}}, 429),
        ({"error": {"message": "m", "type": "invalid_request_error"}}, 400),
        ({"error": {"message": "m", "type": "authentication_error", "code": "invalid_api_key"}}, 401),
        ({"error": {"message": "m", "type": "server_error"}}, 502),
        ({"error": {"message": "m", "code": 200}}, 502),
        ({"error": "m"}, 502),
    ],
)
def test_error_status(error, status):
    # What an error without an HTTP status (sent with 200, or inside a stream) says its status is.
    assert error_status(error) == status
