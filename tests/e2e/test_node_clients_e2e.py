"""End to end with real Node clients: openai-node and the Vercel AI SDK.

Each test replays one upstream quirk (../../../shared/quirks.md) from the local
scripted upstream and runs a Node client script (tests/node/*.mjs) against it
three ways, in one `node` process:

  addon    base URL http://127.0.0.1:<mitmdump>/v1, mitmdump in reverse mode
           (`--mode reverse:http://127.0.0.1:<upstream>`) running addon.py
  raw      base URL straight at the upstream: what the client does without us
  proxied  base URL at the upstream, requests sent through a regular-mode
           mitmdump with undici's ProxyAgent (CONNECT tunnel); must give
           exactly the same result as `addon`

Clients (see tests/node/*.mjs for what each records):

  openai-node  helper: chat.completions.stream().finalChatCompletion()
               create: chat.completions.create({stream: true}) iterated, deltas
                       joined, tool calls accumulated the naive `+=` way
  AI SDK       openai:     streamText with createOpenAI(...).chat(model)
                           (@ai-sdk/openai, the strict schema)
               compatible: streamText with createOpenAICompatible(...)(model)

Through the addon every client must get the exact text, tool calls and finish
reason, with no error (or, for the error scenarios, exactly the upstream's
message). Against the raw upstream each test asserts how the client fails, so
the test shows the addon is what makes it work; where raw does not fail, a
comment says so.

The last section runs every chat fixture of tests/upstreams.py (one per
upstream row of quirks.md) through the addon with both SDKs, in one `node`
process per SDK, and checks each client against the fixture's `expected`.

Node and `npm ci --prefix tests/node` are needed (`make test` runs it); without
them these tests skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests import recorded
from tests.harness.proxy import REPO, MitmdumpLauncher, MitmdumpProcess, client_env
from tests.harness.upstream import ScriptedUpstream, check_no_crash
from tests.upstreams import NIM_422_DETAIL, NIM_422_PROBLEM

NODE = shutil.which("node")
NODE_DIR = REPO / "tests" / "node"
NODE_PACKAGES = ("openai", "ai", "@ai-sdk/openai", "@ai-sdk/openai-compatible", "undici")
_missing = [p for p in NODE_PACKAGES if not (NODE_DIR / "node_modules" / p / "package.json").exists()]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(NODE is None, reason="node is not installed (Node 20+ is needed for tests/node)"),
    pytest.mark.skipif(
        NODE is not None and bool(_missing),
        reason=f"tests/node/node_modules lacks {', '.join(_missing)}: run `make test` "
        "or `npm ci --prefix tests/node`",
    ),
]

CHAT_PATH = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]
NODE_TIMEOUT = 30  # seconds for one node process (each client call has its own 10 s limit)


def _tool(name: str, **props: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in props.items()},
            },
        },
    }


TOOLS = [
    _tool("get_weather", city="string"),
    _tool("get_time", tz="string"),
    _tool("read_file", path="string"),
]


# --------------------------------------------------------------------------- upstream bodies
# Streams not in tests/recorded.py, written out here.


def _nim_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-nim-norole",
        "object": "chat.completion.chunk",
        "created": 1754000000,
        "model": "meta/llama-3.1-8b-instruct",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


# NIM: the first chunk has no role at all, later ones role:null.
NIM_NO_ROLE_STREAM = b"".join(
    [
        _nim_chunk({"content": "Hi"}),
        _nim_chunk({"role": None, "content": " there"}),
        _nim_chunk({"role": None, "content": None}, "stop"),
        b"data: [DONE]\n\n",
    ]
)

# TGI before PR #2668: a generation error mid-stream as a string, `data:` with no
# space, no [DONE] after it.
TGI_ERROR_MESSAGE = (
    "Request failed during generation: Server error: "
    "Out of available cache blocks: asked 1024, only 172 free blocks"
)
TGI_ERROR_STREAM = (
    b'data:{"object":"chat.completion.chunk","id":"","created":1732000000,"model":"tgi",'
    b'"system_fingerprint":"2.4.0","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},'
    b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b"data:"
    + json.dumps({"error": TGI_ERROR_MESSAGE, "error_type": "generation"}).encode()
    + b"\n\n"
)

# NIM problem+json 422 (BerriAI/litellm #4558), bare and with the leading `data:`.
NIM_422_BODY = json.dumps(NIM_422_PROBLEM, separators=(",", ":")).encode()
NIM_422_REASON = "Unprocessable Entity"
NIM_422_SHAPES = {
    # name: (content type, body)
    "data_prefix": ("application/json", b"data:" + NIM_422_BODY),
    "problem_json": ("application/problem+json", NIM_422_BODY),
}


# --------------------------------------------------------------------------- harness


@dataclass
class Env:
    upstream: ScriptedUpstream
    reverse: MitmdumpProcess  # reverse:http://upstream, addon on
    regular: MitmdumpProcess  # regular proxy, addon on

    def configs(self, **cfg: Any) -> list[dict[str, Any]]:
        """One client config per target, in TARGETS order."""
        base = {"model": "test-model", "messages": MESSAGES, "tools": TOOLS, **cfg}
        return [
            {**base, "baseURL": self.reverse.url + "/v1"},
            {**base, "baseURL": self.upstream.url + "/v1"},
            {**base, "baseURL": self.upstream.url + "/v1", "proxy": self.regular.url},
        ]


TARGETS = ("addon", "raw", "proxied")


@pytest.fixture(scope="module")
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("node-clients")
    launcher = MitmdumpLauncher(tmp)
    with ScriptedUpstream() as up:
        try:
            rev = launcher.start(mode=f"reverse:{up.url}", normalize_hosts=[up.host_port])
            reg = launcher.start(normalize_hosts=[up.host_port])
            yield Env(up, rev, reg)
        finally:
            problems = launcher.close()
    assert not problems, problems


@pytest.fixture
def env(_env: Env) -> Iterator[Env]:
    _env.upstream.reset()
    for m in (_env.reverse, _env.regular):
        assert m.running, f"shared mitmdump died; output:\n{m.log}"
    logs_before = (len(_env.reverse.log), len(_env.regular.log))
    yield _env
    check_no_crash(_env.upstream)
    for m, before in zip((_env.reverse, _env.regular), logs_before):
        new = m.log[before:]
        assert "Traceback" not in new, f"mitmdump logged a traceback:\n{new}"


def serve(env: Env, body: bytes, *, content_type: str = "text/event-stream", status: int = 200,
          reason: str | None = None) -> None:
    env.upstream.reply(
        "POST", CHAT_PATH, body, headers={"Content-Type": content_type}, status=status, reason=reason
    )


def run_node(script: str, configs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Runs tests/node/<script> on the configs; returns {target: result}."""
    try:
        p = subprocess.run(
            [NODE, str(NODE_DIR / script)],
            input=json.dumps(configs),
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
            cwd=NODE_DIR,
            env=client_env(),
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"node {script} did not finish within {NODE_TIMEOUT}s; stderr:\n{e.stderr}")
    assert p.returncode == 0, f"node {script} exited {p.returncode}; stderr:\n{p.stderr}"
    try:
        results = json.loads(p.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"node {script} printed no JSON:\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    assert len(results) == len(configs)
    for r in results:
        assert "scriptError" not in r, f"node {script} failed: {r['scriptError']}"
    out = dict(zip(TARGETS, results))
    # The regular-proxy path must behave exactly as the reverse-proxy one; when
    # raw differs from addon, this also proves the proxy was really used.
    assert out["proxied"] == out["addon"], json.dumps(out, indent=1)
    return out


def openai_node(env: Env, **cfg: Any) -> dict[str, dict[str, Any]]:
    return run_node("openai_client.mjs", env.configs(**cfg))


def ai_sdk(env: Env, **cfg: Any) -> dict[str, dict[str, Any]]:
    return run_node("ai_sdk_client.mjs", env.configs(**cfg))


def completed(content: str | None, finish_reason: str, tool_calls: list | None = None) -> dict:
    """What the openai-node helper's finalChatCompletion() must give (message part)."""
    return {
        "ok": True,
        "role": "assistant",
        "content": content,
        "tool_calls": tool_calls or [],
        "finish_reason": finish_reason,
    }


def helper_view(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r.get(k) for k in ("ok", "role", "content", "tool_calls", "finish_reason", "error")
            if k in r}


def sdk_view(r: dict[str, Any]) -> dict[str, Any]:
    """An AI SDK result without the part-type trace."""
    return {k: v for k, v in r.items() if k != "part_types"}


def sdk_ok(text: str, finish_reason: str, raw_finish_reason: str,
           tool_calls: list | None = None) -> dict[str, Any]:
    return {
        "ok": True,
        "text": text,
        "reasoning": "",
        "tool_calls": tool_calls or [],
        "finish_reason": finish_reason,
        "raw_finish_reason": raw_finish_reason,
        "errors": [],
    }


# --------------------------------------------------------------------------- NIM: content:null, role:null


def test_nim_nulls_openai_node(env: Env) -> None:
    serve(env, recorded.NIM_STREAM)
    r = openai_node(env)
    assert helper_view(r["addon"]["helper"]) == completed(recorded.NIM_TEXT, "stop")
    assert r["addon"]["create"] == {
        "ok": True, "content": recorded.NIM_TEXT, "tool_calls": [], "finish_reason": "stop",
        "first_role": "assistant", "chunks": len(recorded.NIM_TEXT_PIECES) + 2,
        "reasoning": "", "usage": None,
    }
    # Raw does not fail: openai-node skips null role/content in its accumulator.
    # The addon's value here is the clean shape (no nulls, content "" on the role chunk).
    assert helper_view(r["raw"]["helper"]) == completed(recorded.NIM_TEXT, "stop")
    assert r["raw"]["create"]["content"] == recorded.NIM_TEXT


def test_nim_nulls_ai_sdk(env: Env) -> None:
    serve(env, recorded.NIM_STREAM)
    r = ai_sdk(env)
    for provider in ("openai", "compatible"):
        assert sdk_view(r["addon"][provider]) == sdk_ok(recorded.NIM_TEXT, "stop", "stop"), provider
        # Raw does not fail: both schemas take role/content as nullish.
        assert sdk_view(r["raw"][provider]) == sdk_ok(recorded.NIM_TEXT, "stop", "stop"), provider


# --------------------------------------------------------------------------- NIM: no role on the first chunk


def test_nim_no_role_openai_node(env: Env) -> None:
    serve(env, NIM_NO_ROLE_STREAM)
    r = openai_node(env)
    assert helper_view(r["addon"]["helper"]) == completed("Hi there", "stop")
    assert r["addon"]["create"]["content"] == "Hi there"
    assert r["addon"]["create"]["first_role"] == "assistant"
    assert r["addon"]["create"]["finish_reason"] == "stop"

    # Raw: ChatCompletionStream throws at the end (LibreChat #1221/#1353).
    assert r["raw"]["helper"]["ok"] is False
    assert r["raw"]["helper"]["error"]["class"] == "OpenAIError"
    assert r["raw"]["helper"]["error"]["message"] == "missing role for choice 0"
    # Plain iteration does not care about the role.
    assert r["raw"]["create"]["content"] == "Hi there"
    assert r["raw"]["create"]["first_role"] is None


def test_nim_no_role_ai_sdk(env: Env) -> None:
    serve(env, NIM_NO_ROLE_STREAM)
    r = ai_sdk(env)
    for provider in ("openai", "compatible"):
        assert sdk_view(r["addon"][provider]) == sdk_ok("Hi there", "stop", "stop"), provider
        # Raw does not fail: the AI SDK never needs a role on stream chunks.
        assert sdk_view(r["raw"][provider]) == sdk_ok("Hi there", "stop", "stop"), provider


# --------------------------------------------------------------------------- Ollama < 0.4.7: tool calls without index

OLLAMA_CALLS = [
    ("call_rcja46yu", "get_weather", '{"city":"Paris"}'),
    ("call_x81kq2mz", "get_time", '{"tz":"CET"}'),
]


def test_ollama_tool_calls_without_index_openai_node(env: Env) -> None:
    serve(env, recorded.OLLAMA_TOOLS_STREAM)
    r = openai_node(env)
    assert helper_view(r["addon"]["helper"]) == completed(
        None,  # as OpenAI: a tool-call message has content null
        "tool_calls",
        [{"id": i, "type": "function", "name": n, "arguments": a} for i, n, a in OLLAMA_CALLS],
    )
    assert r["addon"]["create"]["tool_calls"] == [
        {"index": k, "id": i, "name": n, "arguments": a} for k, (i, n, a) in enumerate(OLLAMA_CALLS)
    ]
    assert r["addon"]["create"]["finish_reason"] == "tool_calls"

    # Raw: no exception, but the helper files both calls under tool_calls[undefined],
    # so finalChatCompletion() has no tool calls at all, and says "stop".
    assert helper_view(r["raw"]["helper"]) == completed(None, "stop", [])
    # A naive accumulator merges the two calls into one.
    assert r["raw"]["create"]["tool_calls"] == [
        {"index": None, "id": "call_x81kq2mz", "name": "get_weatherget_time",
         "arguments": '{"city":"Paris"}{"tz":"CET"}'}
    ]


def test_ollama_tool_calls_without_index_ai_sdk(env: Env) -> None:
    serve(env, recorded.OLLAMA_TOOLS_STREAM)
    r = ai_sdk(env)
    calls = [{"id": i, "name": n, "input": json.loads(a)} for i, n, a in OLLAMA_CALLS]
    for provider in ("openai", "compatible"):
        assert sdk_view(r["addon"][provider]) == sdk_ok("", "tool-calls", "tool_calls", calls), provider

    # Raw, @ai-sdk/openai: each tool chunk fails schema validation (ollama #7881);
    # the calls are lost.
    strict = r["raw"]["openai"]
    assert strict["tool_calls"] == []
    assert len(strict["errors"]) == 2
    for e in strict["errors"]:
        assert e["name"] == "AI_TypeValidationError"
        assert e["message"].startswith("Type validation failed: Value: ")
        assert "Invalid input: expected number, received undefined" in e["message"]
        assert '"tool_calls",\n            0,\n            "index"' in e["message"]
    # Raw, @ai-sdk/openai-compatible (index nullish since 2.0.35): the calls come
    # through, but the run reports "stop", so an agent loop waiting for
    # "tool-calls" stops here.
    assert sdk_view(r["raw"]["compatible"]) == sdk_ok("", "stop", "stop", calls)


# --------------------------------------------------------------------------- NIM MiniMax: tool name in every chunk

MINIMAX_CALL = ("call_0", "read_file", '{"path":"a.txt"}')


def test_nim_repeated_tool_name_openai_node(env: Env) -> None:
    serve(env, recorded.NIM_REPEATED_TOOL_NAME_STREAM)
    r = openai_node(env)
    i, n, a = MINIMAX_CALL
    assert helper_view(r["addon"]["helper"]) == completed(
        None, "tool_calls", [{"id": i, "type": "function", "name": n, "arguments": a}]
    )
    assert r["addon"]["create"]["tool_calls"] == [{"index": 0, "id": i, "name": n, "arguments": a}]
    assert r["addon"]["create"]["finish_reason"] == "tool_calls"

    # Raw: the helper does not fail (it assigns the name rather than appending).
    assert helper_view(r["raw"]["helper"]) == helper_view(r["addon"]["helper"])
    # A `+=` accumulator (hermes-agent #12233, Open WebUI) triples the name.
    assert r["raw"]["create"]["tool_calls"] == [
        {"index": 0, "id": i, "name": "read_fileread_fileread_file", "arguments": a}
    ]


def test_nim_repeated_tool_name_ai_sdk(env: Env) -> None:
    serve(env, recorded.NIM_REPEATED_TOOL_NAME_STREAM)
    r = ai_sdk(env)
    i, n, a = MINIMAX_CALL
    expected = sdk_ok("", "tool-calls", "tool_calls", [{"id": i, "name": n, "input": json.loads(a)}])
    for provider in ("openai", "compatible"):
        assert sdk_view(r["addon"][provider]) == expected, provider
        # Raw does not fail: the AI SDK takes the name from the first delta only.
        assert sdk_view(r["raw"][provider]) == expected, provider


# --------------------------------------------------------------------------- exo: no finish_reason, no [DONE]
# Served as application/json, as exo did (exo #175).


def test_exo_no_finish_openai_node(env: Env) -> None:
    serve(env, recorded.EXO_STREAM, content_type="application/json")
    r = openai_node(env)
    assert helper_view(r["addon"]["helper"]) == completed("Hi there", "stop")
    assert r["addon"]["create"]["content"] == "Hi there"
    assert r["addon"]["create"]["finish_reason"] == "stop"

    # Raw: ChatCompletionStream throws (openai-node #1292); plain iteration
    # never sees a finish_reason.
    assert r["raw"]["helper"]["ok"] is False
    assert r["raw"]["helper"]["error"]["message"] == "missing finish_reason for choice 0"
    assert r["raw"]["create"]["content"] == "Hi there"
    assert r["raw"]["create"]["finish_reason"] is None


def test_exo_no_finish_ai_sdk(env: Env) -> None:
    serve(env, recorded.EXO_STREAM, content_type="application/json")
    r = ai_sdk(env)
    for provider in ("openai", "compatible"):
        assert sdk_view(r["addon"][provider]) == sdk_ok("Hi there", "stop", "stop"), provider

    # Raw, @ai-sdk/openai: no error, but finish reason "other".
    assert sdk_view(r["raw"]["openai"]) == {**sdk_ok("Hi there", "other", None)}
    # Raw, @ai-sdk/openai-compatible: an error part (vercel/ai #19169).
    compat = r["raw"]["compatible"]
    assert compat["text"] == "Hi there"
    assert compat["finish_reason"] == "error"
    assert [(e["name"], e["message"]) for e in compat["errors"]] == [
        ("AI_InvalidResponseDataError", "Response stream ended without a finish reason.")
    ]


# --------------------------------------------------------------------------- TGI: string error inside the stream


def test_tgi_stream_error_openai_node(env: Env) -> None:
    serve(env, TGI_ERROR_STREAM)
    r = openai_node(env)
    for mode in ("helper", "create"):
        got = r["addon"][mode]
        assert got["ok"] is False, mode
        assert got["content"] == "Hel", mode
        assert got["error"]["class"] == "APIError", mode
        assert got["error"]["message"] == TGI_ERROR_MESSAGE, mode
        assert got["error"]["error"]["message"] == TGI_ERROR_MESSAGE, mode

        # Raw: an APIError too, but its message is the JSON-quoted string
        # (APIError.makeMessage stringifies an `error` with no `.message`).
        raw = r["raw"][mode]
        assert raw["ok"] is False, mode
        assert raw["error"]["message"] == json.dumps(TGI_ERROR_MESSAGE), mode
        assert raw["error"]["error"] == TGI_ERROR_MESSAGE, mode


def test_tgi_stream_error_ai_sdk(env: Env) -> None:
    serve(env, TGI_ERROR_STREAM)
    r = ai_sdk(env)
    for provider in ("openai", "compatible"):
        got = r["addon"][provider]
        assert got["text"] == "Hel", provider
        assert got["tool_calls"] == [], provider
        assert got["finish_reason"] == "error", provider
        # The upstream's error object is passed through as the error part.
        assert [(e["part"], e["message"]) for e in got["errors"]] == [("error", TGI_ERROR_MESSAGE)]

        # Raw: the chunk fails the schema; the message is a validation dump.
        raw = r["raw"][provider]
        assert raw["text"] == "Hel", provider
        assert raw["finish_reason"] == "error", provider
        assert len(raw["errors"]) == 1, provider
        assert raw["errors"][0]["name"] == "AI_TypeValidationError", provider
        assert raw["errors"][0]["message"].startswith(
            'Type validation failed: Value: {"error":"Request failed during generation'
        ), provider


# --------------------------------------------------------------------------- NIM: problem+json 422


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nonstream"])
@pytest.mark.parametrize("shape", list(NIM_422_SHAPES))
def test_nim_422_openai_node(env: Env, shape: str, stream: bool) -> None:
    content_type, body = NIM_422_SHAPES[shape]
    serve(env, body, content_type=content_type, status=422, reason=NIM_422_REASON)
    r = openai_node(env, stream=stream)
    modes = ("helper", "create") if stream else ("create",)
    for mode in modes:
        err = r["addon"][mode]["error"]
        assert err["class"] == "UnprocessableEntityError", mode
        assert err["status"] == 422
        assert err["message"] == f"422 {NIM_422_DETAIL}", mode

        raw = r["raw"][mode]["error"]
        assert raw["class"] == "UnprocessableEntityError", mode
        if shape == "data_prefix":
            # Raw: not JSON, so the message is the whole body (as LiteLLM quoted it).
            assert raw["message"] == "422 " + body.decode(), mode
        else:
            # Raw: JSON with no `error` key, so openai-node shows no message at all.
            assert raw["message"] == "422 status code (no body)", mode


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nonstream"])
@pytest.mark.parametrize("shape", list(NIM_422_SHAPES))
def test_nim_422_ai_sdk(env: Env, shape: str, stream: bool) -> None:
    content_type, body = NIM_422_SHAPES[shape]
    serve(env, body, content_type=content_type, status=422, reason=NIM_422_REASON)
    r = ai_sdk(env, stream=stream)
    part = "error" if stream else "thrown"  # streamText: an error part; generateText: throws
    for provider in ("openai", "compatible"):
        errs = r["addon"][provider]["errors"]
        assert [(e["part"], e["name"], e["status"], e["message"]) for e in errs] == [
            (part, "AI_APICallError", 422, NIM_422_DETAIL)
        ], provider
        # Raw: the body does not match the error schema, so only the status text is shown.
        raw = r["raw"][provider]["errors"]
        assert [(e["part"], e["name"], e["status"], e["message"]) for e in raw] == [
            (part, "AI_APICallError", 422, NIM_422_REASON)
        ], provider
        assert raw[0]["responseBody"] == body.decode(), provider


# --------------------------------------------------------------------------- every fixture in tests/upstreams.py
# Each chat fixture of tests/upstreams.py (one per quirks.md §2 row), through the
# addon only, checked against the fixture's `expected`. All fixtures are served
# at once, each under its own path prefix (/<name>/v1/chat/completions), and each
# Node script runs once for all of them.

try:
    from tests import upstreams
except ImportError:  # written by another change; the tests above do not need it
    upstreams = None

CHAT_FIXTURES = (
    [f for f in upstreams.FIXTURES.values() if f.request.is_chat] if upstreams is not None else []
)
AI_SDK_FINISH = {"stop": "stop", "tool_calls": "tool-calls", "length": "length",
                 "content_filter": "content-filter"}

# (fixture name, client) -> why it fails through the addon today.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def _fixture_params() -> list:
    if upstreams is None:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="tests/upstreams.py is missing"))]
    params = []
    for f in CHAT_FIXTURES:
        for client in ("openai-node", "ai-sdk"):
            why = KNOWN_FAILURES.get((f.name, client))
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            params.append(pytest.param(f.name, client, id=f"{f.name}-{client}", marks=marks))
    return params


@pytest.fixture(scope="module")
def fixture_results(_env: Env) -> dict[tuple[str, str], dict[str, Any]]:
    """{(fixture name, client): result} for every chat fixture, through the addon."""
    configs = []
    for f in CHAT_FIXTURES:
        prefix = f"/{f.name}"
        _env.upstream.reply(
            f.request.method, prefix + f.request.path, list(f.reply.chunks),
            headers=f.reply.all_headers(), status=f.reply.status,
        )
        body = f.request.body()
        extra = {k: v for k, v in body.items() if k not in ("model", "messages", "stream", "tools")}
        configs.append({
            "baseURL": _env.reverse.url + prefix + "/v1",
            "model": f.request.model,
            "messages": body["messages"],
            "tools": body.get("tools"),
            "stream": f.request.stream,
            "extra": extra,  # openai-node sends these; the AI SDK cannot
        })
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for script, client in (("openai_client.mjs", "openai-node"), ("ai_sdk_client.mjs", "ai-sdk")):
        results = _run_batch(script, configs)
        for f, r in zip(CHAT_FIXTURES, results):
            out[f.name, client] = r
    check_no_crash(_env.upstream)
    return out


def _run_batch(script: str, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    p = subprocess.run(
        [NODE, str(NODE_DIR / script)], input=json.dumps(configs), capture_output=True,
        text=True, timeout=NODE_TIMEOUT, cwd=NODE_DIR, env=client_env(),
    )
    assert p.returncode == 0, f"node {script} exited {p.returncode}; stderr:\n{p.stderr}"
    results = json.loads(p.stdout)
    assert len(results) == len(configs)
    return results


def _brief(obj: Any) -> str:
    """A result for a failure message: long strings cut, traces left out."""

    def cut(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: cut(v) for k, v in o.items() if k not in ("cause", "part_types")}
        if isinstance(o, list):
            return [cut(v) for v in o]
        if isinstance(o, str) and len(o) > 300:
            return o[:300] + "..."
        return o

    return json.dumps(cut(obj), ensure_ascii=False)


def _check_openai_node(f: Any, r: dict[str, Any]) -> None:
    exp = f.expected
    for mode, got in r.items():
        where = f"{f.name} {mode}: {_brief(got)}"
        if exp.error is not None:
            assert got["ok"] is False, where
            err = got["error"]
            if exp.error.status == 200:  # inside the stream
                assert err["class"] == "APIError", where
                assert "status" not in err, where
                assert err["message"] == exp.error.message, where
                assert got["content"] == exp.text, where
            else:
                assert err["status"] == exp.error.status, where
                assert err["message"] == f"{exp.error.status} {exp.error.message}", where
            continue
        assert got["ok"] is True, where
        assert (got["content"] or "") == exp.text, where
        assert [(c["name"], c["arguments"]) for c in got["tool_calls"]] == [
            (c.name, c.arguments) for c in exp.tool_calls
        ], where
        assert got["finish_reason"] == exp.finish_reason, where
        if exp.usage is not None:
            assert got["usage"] == exp.usage, where
        if mode == "create" and f.request.stream:
            assert [c["index"] for c in got["tool_calls"]] == list(range(len(exp.tool_calls))), where
            assert got["reasoning"] == exp.reasoning, where
            assert got["first_role"] == "assistant", where


def _check_ai_sdk(f: Any, r: dict[str, Any]) -> None:
    exp = f.expected
    for provider, got in r.items():
        where = f"{f.name} {provider}: {_brief(got)}"
        assert got["text"] == exp.text, where
        if exp.error is not None:
            assert [e["message"] for e in got["errors"]] == [exp.error.message], where
            if exp.error.status != 200:
                assert got["errors"][0]["name"] == "AI_APICallError", where
                assert got["errors"][0]["status"] == exp.error.status, where
            continue
        assert got["errors"] == [], where
        assert [(c["name"], c["input"]) for c in got["tool_calls"]] == [
            (c.name, json.loads(c.arguments)) for c in exp.tool_calls
        ], where
        assert got["raw_finish_reason"] == exp.finish_reason, where
        assert got["finish_reason"] == AI_SDK_FINISH[exp.finish_reason], where
        # Only the compatible provider reads reasoning_content / reasoning.
        assert got["reasoning"] == (exp.reasoning if provider == "compatible" else ""), where


@pytest.mark.parametrize(("name", "client"), _fixture_params())
def test_upstream_fixture_through_addon(fixture_results, name: str, client: str) -> None:
    f = upstreams.FIXTURES[name]
    r = fixture_results[name, client]
    assert "scriptError" not in r, r
    if client == "openai-node":
        _check_openai_node(f, r)
    else:
        _check_ai_sdk(f, r)
