"""End to end (issue #3): errors, non-stream replies, model lists, request fixes and usage.

A real `mitmdump -s addon.py` in regular proxy mode over plain HTTP (unless a
test says otherwise), a local upstream replaying one real upstream's shape
(tests/e2e/replies.py), and the real `openai` SDK as the client, with
`max_retries=0` so a 5xx is seen once. What the client must get is written
out literally, never computed with the code under test.

One upstream and a few mitmdumps (one per set of options) are shared by the
module; each test resets the upstream's replies and recorded requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from tests.harness.proxy import MitmdumpLauncher, MitmdumpProcess
from tests.harness.upstream import ScriptedUpstream, check_no_crash

from .replies import (
    ALIAS,
    CHAT_PATH,
    CREATED,
    ERROR_SHAPES,
    EXO_MODELS,
    LLAMA_CONTEXT_ERROR,
    LLAMA_ID,
    LLAMA_MODEL,
    MESSAGES,
    MODELS_PATH,
    NIM_422_DETAIL,
    NIM_COMPLETION,
    NULL_CONTENT_COMPLETION,
    OPENAI_ERRORS,
    PREFIXED_BODY,
    TARGET,
    TGI_MODEL,
    TGI_STREAM_ERROR,
    TGI_TOOL_COMPLETION,
    USAGE_MODEL,
    ErrorShape,
    compact,
    groq_usage_stream,
    last_chunk_usage_stream,
    llama_error_stream,
    llama_usage_chunk_stream,
    nim_usage_stream,
    openai_usage_stream,
    target_completion,
    target_stream,
    tgi_error_stream,
)

pytestmark = pytest.mark.e2e

DONE = b"data: [DONE]\n\n"
OPENAI_KEYS = ["message", "type", "param", "code"]

# One mitmdump per set of options, started the first time a test asks for it.
PROFILES: dict[str, list[tuple[str, str]]] = {
    "plain": [],
    "mapped": [
        ("normalize_model_map", f"{ALIAS}={TARGET}"),
        ("normalize_drop_params", "frequency_penalty"),
    ],
    "legacy_off": [("normalize_legacy_params", "false")],
    "local_models": [
        ("normalize_models", "a"),
        ("normalize_models", "b"),
        ("normalize_model_map", f"{ALIAS}={TARGET}"),
    ],
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def _shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScriptedUpstream, Callable[[str], MitmdumpProcess]]]:
    launcher = MitmdumpLauncher(tmp_path_factory.mktemp("replies"))
    started: dict[str, MitmdumpProcess] = {}
    with ScriptedUpstream() as up:

        def proxy(profile: str) -> MitmdumpProcess:
            if profile not in started:
                started[profile] = launcher.start(normalize_hosts=[up.host_port], options=PROFILES[profile])
            mitm = started[profile]
            assert mitm.running, f"shared mitmdump {profile!r} died; output:\n{mitm.log}"
            return mitm

        try:
            yield up, proxy
        finally:
            problems = launcher.close()
    assert not problems, problems


@pytest.fixture
def up(_shared) -> Iterator[ScriptedUpstream]:
    upstream, _ = _shared
    upstream.reset()
    yield upstream
    check_no_crash(upstream)


@pytest.fixture
def proxy(_shared) -> Callable[[str], MitmdumpProcess]:
    return _shared[1]


@pytest.fixture
def plain(proxy) -> MitmdumpProcess:
    return proxy("plain")


# --------------------------------------------------------------------------- helpers


def sdk(up: ScriptedUpstream, mitm: MitmdumpProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=up.url + "/v1",
        api_key="test",
        max_retries=0,
        timeout=15,
        http_client=httpx.Client(proxy=mitm.url),
    )


def raw(mitm: MitmdumpProcess, method: str, url: str, **kw) -> httpx.Response:
    with httpx.Client(proxy=mitm.url, timeout=15) as c:
        return c.request(method, url, headers={"Authorization": "Bearer test"}, **kw)


def serve_json(up: ScriptedUpstream, body: bytes, *, status: int = 200, path: str = CHAT_PATH,
               method: str = "POST", content_type: str | None = "application/json",
               mode: str = "content-length") -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    up.reply(method, path, [body] if body else [], status=status, headers=headers, mode=mode)


def serve_stream(up: ScriptedUpstream, chunks: list[bytes]) -> None:
    up.reply("POST", CHAT_PATH, chunks, headers={"Content-Type": "text/event-stream"})


def check_length(r: httpx.Response) -> None:
    assert "transfer-encoding" not in r.headers, r.headers
    assert int(r.headers["content-length"]) == len(r.content)


def events(body: bytes) -> list[bytes]:
    assert body.endswith(b"\n\n"), body
    return body[:-2].split(b"\n\n")


def show(body: bytes) -> str:
    return body.decode("utf-8", "replace").replace("\n", "\\n\n")


def upstream_json(up: ScriptedUpstream) -> dict:
    """The one chat request the upstream got, checked for a correct content-length, parsed."""
    (req,) = up.requests
    assert req.method == "POST" and req.path == CHAT_PATH
    assert req.header("transfer-encoding") is None
    assert int(req.header("content-length")) == len(req.body)
    return json.loads(req.body)


# --------------------------------------------------------------------------- 1. HTTP errors


@pytest.mark.parametrize("shape", ERROR_SHAPES, ids=lambda s: s.name)
def test_error_shape_reaches_sdk_as_openai_error(up, plain, shape: ErrorShape) -> None:
    serve_json(up, shape.body, status=shape.status, content_type=shape.content_type)
    with sdk(up, plain) as client, pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="m", messages=MESSAGES)
    e = info.value
    assert type(e) is getattr(openai, shape.sdk_error)
    assert e.status_code == shape.status
    assert e.body == shape.expected
    assert e.body["message"] == shape.expected["message"]
    assert e.message == f"Error code: {shape.status} - {shape.expected['message']}"
    assert e.type == shape.expected["type"]
    assert len(up.requests) == 1  # max_retries=0: no retry hid anything

    r = raw(plain, "POST", up.url + CHAT_PATH, json={"model": "m", "messages": MESSAGES})
    assert r.status_code == shape.status
    assert r.headers["content-type"] == "application/json"
    check_length(r)
    body = json.loads(r.content)
    assert list(body) == [*shape.beside, "error"]
    assert list(body["error"])[:4] == OPENAI_KEYS
    assert body == {**shape.beside, "error": shape.expected}


def test_error_exact_bytes_nim_422_with_data_prefix(up, plain) -> None:
    """Once, the whole reply as bytes: OpenAI's pretty JSON (2-space indent, final newline)."""
    (shape,) = [s for s in ERROR_SHAPES if s.name == "nim_422_data_prefix"]
    serve_json(up, shape.body, status=422)
    r = raw(plain, "POST", up.url + CHAT_PATH, json={"model": "m", "messages": MESSAGES})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"
    check_length(r)
    assert r.content == (
        b'{\n  "type": "urn:inference-service:problem-details:unprocessable-entity",\n'
        b'  "title": "Unprocessable Entity",\n  "status": 422,\n'
        b'  "detail": "body -> frequency_penalty\\n  Extra inputs are not permitted (type=extra_forbidden)",\n'
        b'  "instance": "/v2/nvcf/pexec/functions/1136f83f-32b8-4e2a-8a83-0d1a4d0a3e6c",\n'
        b'  "requestId": "2230b3a0-5f55-4bb5-9a8c-1f3a0bd1d2a1",\n'
        b'  "error": {\n    "message": "body -> frequency_penalty\\n  Extra inputs are not permitted '
        b'(type=extra_forbidden)",\n    "type": "invalid_request_error",\n    "param": null,\n'
        b'    "code": null\n  }\n}\n'
    ), show(r.content)


def test_error_before_a_requested_stream(up, plain) -> None:
    """stream=True answered with a NIM 422: the SDK raises before any chunk."""
    (shape,) = [s for s in ERROR_SHAPES if s.name == "nim_422_data_prefix"]
    serve_json(up, shape.body, status=422)
    with sdk(up, plain) as client, pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert info.value.status_code == 422
    assert info.value.body["message"] == NIM_422_DETAIL


def test_error_chunked_upstream_body(up, plain) -> None:
    """The same vLLM error, sent chunked: the rewritten body still arrives whole."""
    (shape,) = [s for s in ERROR_SHAPES if s.name == "vllm_unwrapped"]
    serve_json(up, shape.body, status=400, mode="chunked")
    r = raw(plain, "POST", up.url + CHAT_PATH, json={"model": "m", "messages": MESSAGES})
    assert r.status_code == 400
    assert json.loads(r.content) == {"error": shape.expected}
    if "content-length" in r.headers:
        assert int(r.headers["content-length"]) == len(r.content)
    else:
        assert r.headers.get("transfer-encoding") == "chunked"


@pytest.mark.parametrize("status,sdk_error,body", OPENAI_ERRORS, ids=["openai_429", "nim_leaked_vllm_400"])
def test_openai_shaped_error_passes_byte_identical(up, plain, status: int, sdk_error: str, body: bytes) -> None:
    serve_json(up, body, status=status)
    r = raw(plain, "POST", up.url + CHAT_PATH, json={"model": "m", "messages": MESSAGES})
    assert r.status_code == status
    assert r.content == body, show(r.content)
    assert r.headers["content-type"] == "application/json"
    check_length(r)

    with sdk(up, plain) as client, pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert type(info.value) is getattr(openai, sdk_error)
    assert info.value.status_code == status
    assert info.value.body == json.loads(body)["error"]


# --------------------------------------------------------------------------- 2. errors inside a stream


def sdk_stream_until_error(up: ScriptedUpstream, mitm: MitmdumpProcess) -> tuple[list, openai.APIError]:
    got = []
    with sdk(up, mitm) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError) as info, stream:
            for chunk in stream:
                got.append(chunk)
    return got, info.value


def raw_stream(mitm: MitmdumpProcess, url: str) -> tuple[httpx.Response, bytes]:
    with httpx.Client(proxy=mitm.url, timeout=15) as c:
        with c.stream("POST", url, json={"model": "m", "messages": MESSAGES, "stream": True}) as r:
            body = b"".join(r.iter_raw())
    return r, body


def check_no_finish(body: bytes) -> None:
    for event in events(body):
        if event == b"data: [DONE]" or b'"error"' in event:
            continue
        chunk = json.loads(event.removeprefix(b"data: "))
        assert all(c["finish_reason"] is None for c in chunk["choices"]), event


@pytest.mark.parametrize("done", [False, True], ids=["tgi_no_done", "tgi_then_done"])
def test_tgi_string_error_inside_stream(up, plain, done: bool) -> None:
    serve_stream(up, tgi_error_stream(done))
    chunks, e = sdk_stream_until_error(up, plain)
    assert type(e) is openai.APIError
    assert e.message == TGI_STREAM_ERROR
    assert e.body == {"message": TGI_STREAM_ERROR, "type": "generation", "param": None, "code": None}
    assert [c.choices[0].delta.content for c in chunks] == ["Hello", " world"]
    assert [c.choices[0].finish_reason for c in chunks] == [None, None]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[1].choices[0].delta.role is None  # TGI repeats it; OpenAI does not
    assert chunks[0].id == chunks[1].id and chunks[0].id.startswith("chatcmpl-")  # TGI sends ""
    assert {c.model for c in chunks} == {TGI_MODEL}

    r, body = raw_stream(plain, up.url + CHAT_PATH)
    assert r.status_code == 200
    assert body.endswith(
        b'data: {"error":{"message":"' + TGI_STREAM_ERROR.encode()
        + b'","type":"generation","param":null,"code":null}}\n\n' + DONE
    ), show(body)
    assert len(events(body)) == 4  # two chunks, the error, [DONE]
    assert body.count(DONE) == 1
    check_no_finish(body)


def test_llamacpp_error_line_inside_stream(up, plain) -> None:
    """llama.cpp (2025): `error: {...}` at HTTP 200, which the SDK alone ignores."""
    serve_stream(up, llama_error_stream())
    chunks, e = sdk_stream_until_error(up, plain)
    assert type(e) is openai.APIError
    assert e.message == LLAMA_CONTEXT_ERROR
    assert e.body == {"message": LLAMA_CONTEXT_ERROR, "type": "invalid_request_error", "param": None, "code": 400}
    assert e.code == "400"
    assert [c.choices[0].delta.content for c in chunks] == ["Hello", " world"]
    assert [c.choices[0].finish_reason for c in chunks] == [None, None]
    assert {c.id for c in chunks} == {LLAMA_ID}

    r, body = raw_stream(plain, up.url + CHAT_PATH)
    assert r.status_code == 200
    head = (
        '{"id":"chatcmpl-llama1","object":"chat.completion.chunk","created":1754000000,'
        '"model":"qwen2.5-7b-instruct","choices":[{"index":0,"delta":'
    )
    tail = ',"finish_reason":null}],"system_fingerprint":"b6100-5c0eb5ef"}'
    assert LLAMA_MODEL in head
    expected = (
        b"data: " + (head + '{"role":"assistant","content":"Hello"}' + tail).encode() + b"\n\n"
        + b"data: " + (head + '{"content":" world"}' + tail).encode() + b"\n\n"
        + b'data: {"error":{"message":"the request exceeds the available context size, try increasing it",'
        + b'"type":"invalid_request_error","param":null,"code":400}}\n\n'
        + DONE
    )
    assert body == expected, show(body)
    check_no_finish(body)


# --------------------------------------------------------------------------- 3. non-stream completions


def sdk_completion(up, mitm, **kw):
    with sdk(up, mitm) as client:
        kw.setdefault("model", "m")
        kw.setdefault("messages", MESSAGES)
        return client.chat.completions.create(**kw)


def raw_completion(up, mitm) -> dict:
    r = raw(mitm, "POST", up.url + CHAT_PATH, json={"model": "m", "messages": MESSAGES})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    check_length(r)
    return json.loads(r.content)


def test_nim_completion_with_nulls(up, plain) -> None:
    serve_json(up, compact(NIM_COMPLETION))
    c = sdk_completion(up, plain)
    message = c.choices[0].message
    assert message.role == "assistant"
    assert message.content == "Hello there!"
    assert message.model_fields_set == {"role", "content"}  # reasoning_content/tool_calls nulls gone
    assert c.choices[0].finish_reason == "stop"
    assert c.usage.total_tokens == 15
    assert (c.id, c.object, c.created, c.model) == ("chatcmpl-5d7c3c1e9a", "chat.completion", CREATED, "meta/llama-3.1-8b-instruct")

    assert raw_completion(up, plain) == {
        "id": "chatcmpl-5d7c3c1e9a",
        "object": "chat.completion",
        "created": CREATED,
        "model": "meta/llama-3.1-8b-instruct",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there!"},
                "logprobs": None,
                "finish_reason": "stop",
                "matched_stop": 128009,
            }
        ],
        "usage": {"prompt_tokens": 12, "total_tokens": 15, "completion_tokens": 3, "prompt_tokens_details": None},
    }


def test_tgi_completion_with_object_arguments(up, plain) -> None:
    serve_json(up, compact(TGI_TOOL_COMPLETION))
    c = sdk_completion(up, plain)
    message = c.choices[0].message
    assert message.role == "assistant"
    assert message.content is None  # OpenAI's own shape beside tool calls
    (call,) = message.tool_calls
    assert (call.id, call.type, call.function.name) == ("0", "function", "get_weather")
    assert call.function.arguments == '{"location":"Paris","unit":"celsius"}'
    assert json.loads(call.function.arguments) == {"location": "Paris", "unit": "celsius"}
    assert c.choices[0].finish_reason == "tool_calls"
    assert c.id.startswith("chatcmpl-") and len(c.id) > len("chatcmpl-")  # TGI sent ""

    body = raw_completion(up, plain)
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "0",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Paris","unit":"celsius"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ]
    assert (body["object"], body["model"], body["system_fingerprint"]) == ("chat.completion", TGI_MODEL, "3.0.1-sha-bb9095a")


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
def test_completion_with_blank_lines_and_data_prefix(up, plain, mode: str) -> None:
    serve_json(up, PREFIXED_BODY, mode=mode)
    c = sdk_completion(up, plain)
    assert isinstance(c, openai.types.chat.ChatCompletion)
    assert c.choices[0].message.role == "assistant"
    assert c.choices[0].message.content == "Hello!"
    assert c.id == "chatcmpl-ds1" and c.model == "deepseek-chat"

    r = raw(plain, "POST", up.url + CHAT_PATH, json={"model": "m", "messages": MESSAGES})
    assert r.headers["content-type"] == "application/json"
    if mode == "content-length":
        check_length(r)
    elif "content-length" in r.headers:
        assert int(r.headers["content-length"]) == len(r.content)
    assert r.content.startswith(b"{\n")
    assert json.loads(r.content) == {
        "id": "chatcmpl-ds1",
        "object": "chat.completion",
        "created": CREATED,
        "model": "deepseek-chat",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }


def test_completion_null_content_without_tool_calls(up, plain) -> None:
    serve_json(up, compact(NULL_CONTENT_COMPLETION))
    c = sdk_completion(up, plain)
    assert c.choices[0].message.role == "assistant"
    assert c.choices[0].message.content == ""
    assert c.choices[0].message.tool_calls is None
    assert c.choices[0].finish_reason == "length"

    body = raw_completion(up, plain)
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": "length"}
    ]


# --------------------------------------------------------------------------- 4. /v1/models


def test_models_bare_list_from_exo(up, plain) -> None:
    serve_json(up, compact(EXO_MODELS), method="GET", path=MODELS_PATH)
    before = int(time.time())
    with sdk(up, plain) as client:
        models = list(client.models.list())
    after = int(time.time())
    assert [m.id for m in models] == ["llama-3.2-1b", "llama-3.1-8b"]
    assert {m.object for m in models} == {"model"}
    assert {m.owned_by for m in models} == {"exo"}
    assert all(before <= m.created <= after for m in models)
    assert models[0].model_extra == {"ready": True}

    r = raw(plain, "GET", up.url + MODELS_PATH)
    check_length(r)
    body = json.loads(r.content)
    assert list(body) == ["object", "data"] and body["object"] == "list"
    assert [list(m) for m in body["data"]] == [["id", "object", "created", "owned_by", "ready"]] * 2


@pytest.mark.parametrize("status", [404, 405])
def test_models_endpoint_missing_lists_aliases(up, proxy, status: int) -> None:
    mitm = proxy("mapped")
    serve_json(up, b'{"detail":"Not Found"}', status=status, method="GET", path=MODELS_PATH)
    before = int(time.time())
    with sdk(up, mitm) as client:
        models = list(client.models.list())
    assert [(m.id, m.object, m.owned_by) for m in models] == [(ALIAS, "model", "system")]
    assert before <= models[0].created <= int(time.time())
    assert [r.path for r in up.requests] == [MODELS_PATH]


def test_models_answered_locally_without_upstream(up, proxy) -> None:
    mitm = proxy("local_models")
    serve_json(up, b'{"detail":"Not Found"}', status=404, method="GET", path=MODELS_PATH)
    with sdk(up, mitm) as client:
        models = list(client.models.list())
    assert [(m.id, m.object, m.owned_by) for m in models] == [
        ("a", "model", "system"),
        ("b", "model", "system"),
        (ALIAS, "model", "system"),
    ]
    assert all(isinstance(m.created, int) for m in models)
    assert up.requests == []

    r = raw(mitm, "GET", up.url + MODELS_PATH)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    check_length(r)
    assert up.requests == []


def test_models_reverse_lazy_with_no_upstream(mitmdump: MitmdumpLauncher, dead_port: int) -> None:
    mitm = mitmdump.start(
        mode=f"reverse:http://127.0.0.1:{dead_port}",
        normalize_hosts=[f"127.0.0.1:{dead_port}"],
        options=[("connection_strategy", "lazy"), ("normalize_models", "a"), ("normalize_model_map", f"{ALIAS}={TARGET}")],
    )
    with openai.OpenAI(base_url=mitm.url + "/v1", api_key="test", max_retries=0, timeout=15) as client:
        models = list(client.models.list())
    assert [m.id for m in models] == ["a", ALIAS]


# --------------------------------------------------------------------------- 5. request fixes


def test_alias_stream_reaches_upstream_as_target(up, proxy) -> None:
    mitm = proxy("mapped")
    serve_stream(up, target_stream())
    with sdk(up, mitm) as client, client.chat.completions.create(model=ALIAS, messages=MESSAGES, stream=True) as s:
        chunks = list(s)
    assert upstream_json(up) == {"model": TARGET, "messages": MESSAGES, "stream": True}
    assert len(chunks) == 5
    assert [c.model for c in chunks] == [ALIAS] * 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello!"


def test_alias_non_stream_reports_alias(up, proxy) -> None:
    mitm = proxy("mapped")
    serve_json(up, compact(target_completion()))
    c = sdk_completion(up, mitm, model=ALIAS)
    assert c.model == ALIAS
    assert c.choices[0].message.content == "Hi!"
    assert upstream_json(up) == {"model": TARGET, "messages": MESSAGES}


LEGACY_REQUEST = dict(
    messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    max_completion_tokens=50,
    temperature=0.2,
    stream=False,
    stream_options={"include_usage": True},
)


def test_request_fixes(up, proxy) -> None:
    mitm = proxy("mapped")
    serve_json(up, compact(target_completion()))
    sdk_completion(up, mitm, model="other-model", frequency_penalty=0.5, **LEGACY_REQUEST)
    sent = upstream_json(up)
    assert sent == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "model": "other-model",
        "max_tokens": 50,
        "temperature": 0.2,
        "stream": False,
    }


def test_request_legacy_params_off(up, proxy) -> None:
    mitm = proxy("legacy_off")
    serve_json(up, compact(target_completion()))
    sdk_completion(up, mitm, model="other-model", frequency_penalty=0.5, **LEGACY_REQUEST)
    assert upstream_json(up) == {
        "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "model": "other-model",
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "frequency_penalty": 0.5,  # not dropped here: this proxy has no normalize_drop_params
        "stream": False,
    }


def test_request_untouched_when_nothing_to_fix(up, proxy) -> None:
    """A request with nothing to repair reaches the upstream byte for byte."""
    mitm = proxy("mapped")
    serve_json(up, compact(target_completion()))
    body = b'{"model":"other-model","messages":[{"role":"user","content":"Hi"}],"max_tokens":5}'
    with httpx.Client(proxy=mitm.url, timeout=15) as c:
        r = c.post(up.url + CHAT_PATH, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    (req,) = up.requests
    assert req.body == body
    assert int(req.header("content-length")) == len(body)


# --------------------------------------------------------------------------- 6. usage


@pytest.mark.parametrize(
    "stream,total",
    [
        (nim_usage_stream, 14),
        (last_chunk_usage_stream, 13),
        (groq_usage_stream, 13),
        (openai_usage_stream, 13),
    ],
    ids=["nim_every_chunk", "last_content_chunk", "groq_x_groq", "openai_own"],
)
def test_usage_arrives_once_at_the_end(up, plain, stream, total: int) -> None:
    serve_stream(up, stream())
    with sdk(up, plain) as client, client.chat.completions.create(
        model=USAGE_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as s:
        chunks = list(s)
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (10, total - 10, total)
    for c in body:
        assert c.usage is None and "usage" not in c.model_fields_set, c
        assert c.choices, c
    assert "".join(c.choices[0].delta.content or "" for c in body) == "Hello!"
    assert body[-1].choices[0].finish_reason == "stop"
    assert len(body) == 5

    r, raw_body = raw_stream_with_usage(plain, up.url + CHAT_PATH)
    *chunk_events, done = events(raw_body)
    assert done == b"data: [DONE]"
    parsed = [json.loads(e.removeprefix(b"data: ")) for e in chunk_events]
    assert ["usage" in p for p in parsed] == [False] * 5 + [True], show(raw_body)
    assert parsed[-1]["choices"] == []
    assert parsed[-1]["usage"]["total_tokens"] == total


def raw_stream_with_usage(mitm: MitmdumpProcess, url: str) -> tuple[httpx.Response, bytes]:
    request = {"model": USAGE_MODEL, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(proxy=mitm.url, timeout=15) as c:
        with c.stream("POST", url, json=request) as r:
            body = b"".join(r.iter_raw())
    return r, body


def test_nim_usage_exact_last_event(up, plain) -> None:
    """Usage from the last of NIM's per-chunk usages, on a chunk of its own, in OpenAI's bytes."""
    serve_stream(up, nim_usage_stream())
    _, body = raw_stream_with_usage(plain, up.url + CHAT_PATH)
    assert body.endswith(
        b'data: {"id":"chatcmpl-usage1","object":"chat.completion.chunk","created":1754000000,'
        b'"model":"meta/llama-3.1-8b-instruct","choices":[],'
        b'"usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14}}\n\n' + DONE
    ), show(body)


def test_llamacpp_usage_chunk_without_include_usage(up, plain) -> None:
    serve_stream(up, llama_usage_chunk_stream())
    with sdk(up, plain) as client, client.chat.completions.create(
        model=USAGE_MODEL, messages=MESSAGES, stream=True
    ) as s:
        chunks = list(s)
    assert [c for c in chunks if not c.choices] == []
    assert all(c.usage is None for c in chunks)
    assert len(chunks) == 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello!"
    assert chunks[-1].choices[0].finish_reason == "stop"


# --------------------------------------------------------------------------- known gaps (xfail until fixed)


def test_error_body_at_http_200_becomes_an_error_status(up, plain) -> None:
    """An error sent as a success (OpenRouter-style) reaches the client as the error it is:
    its own code as the status when that is an HTTP error status (else 502), OpenAI's shape."""
    serve_json(up, b'{"error":{"message":"Provider returned error","code":502}}')
    r = raw(plain, "POST", up.url + CHAT_PATH, json={"model": "m", "messages": MESSAGES})
    assert r.status_code == 502
    assert json.loads(r.content) == {"error": {"message": "Provider returned error", "type": "server_error", "param": None, "code": 502}}
    client = openai.OpenAI(base_url=up.url + "/v1", api_key="test", max_retries=0, http_client=httpx.Client(proxy=plain.url))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 502 and info.value.body["message"] == "Provider returned error"


def test_stream_request_answered_with_json_error(up, plain) -> None:
    """A stream request answered with a whole JSON error: the SDK raises it, as from OpenAI's stream."""
    serve_json(up, b'{"error":{"message":"boom","type":"server_error","param":null,"code":null}}')
    chunks, e = sdk_stream_until_error(up, plain)
    assert chunks == []
    assert e.message == "boom"


# --------------------------------------------------------------------------- known gaps (xfail until fixed)


@pytest.mark.xfail(
    strict=True,
    reason="gap: when the upstream cannot be reached, mitmproxy's own 502 reply is an HTML page "
    "(<title>502 Bad Gateway</title> ... [Errno 111] Connect call failed ...), not an OpenAI error",
)
def test_unreachable_upstream_gives_openai_error(mitmdump: MitmdumpLauncher, dead_port: int) -> None:
    mitm = mitmdump.start(
        mode=f"reverse:http://127.0.0.1:{dead_port}",
        normalize_hosts=[f"127.0.0.1:{dead_port}"],
        options=[("connection_strategy", "lazy")],
    )
    with openai.OpenAI(base_url=mitm.url + "/v1", api_key="test", max_retries=0, timeout=15) as client:
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 502
    assert isinstance(info.value.body, dict), info.value.body
    assert list(info.value.body)[:4] == OPENAI_KEYS
