"""The Messages bridge end to end: Claude Code and anthropic-python on a NIM-like chat upstream.

One mitmdump in reverse mode (`--mode reverse:http://127.0.0.1:<upstream>`,
addon.py) in front of a local upstream that serves only `/v1/chat/completions`,
the way hosted NIM does (tests/e2e/nim_chat.py: content null, role null, usage
on every chunk, repeated tool names, unknown keys refused, problem+json errors). The clients point
their Anthropic base URL at the addon and must get exactly what the upstream
said; then each runs straight against the upstream, where it fails (NIM has no
`/v1/messages`: a 404).

Claude Code (tests/node, pinned 2.1.328) runs as its README says it runs here:
`claude -p PROMPT --model <upstream model>` with HOME in a temporary folder,
ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY, CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK=1
and CLAUDE_CODE_MAX_RETRIES=0 (so a broken stream cannot hide behind its
non-streaming retry), `--allowedTools Bash`, and nothing but loopback reachable
(a dead HTTPS_PROXY for everything else).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import anthropic
import pytest

from tests.e2e.nim_chat import (
    CHAT_PATH,
    NIM_PROBLEM_422,
    PROMPT_TOKENS,
    Call,
    Turn,
    last_tool_result,
    nim_chat,
    nim_error,
    nim_stream,
    tool_results,
)
from tests.harness.proxy import REPO, MitmdumpProcess, shared_rig
from tests.harness.upstream import ScriptedUpstream
from tests.upstreams import DONE, NIM_422_DETAIL, compact, nim_chunk, sse

pytestmark = pytest.mark.e2e

MODEL = "qwen/qwen3-next-80b-a3b-instruct"
KEY = "nvapi-test-key"
TEXT = ["Hello", " from", " NIM", " — naïve café 東京 🚀"]
CLAUDE = REPO / "tests" / "node" / "node_modules" / ".bin" / "claude"
CLAUDE_TIMEOUT = 120  # seconds for one `claude -p` run
needs_claude = pytest.mark.skipif(
    shutil.which("node") is None or not CLAUDE.exists(),
    reason="Claude Code is not installed: run `make test` or `npm ci --prefix tests/node`",
)


_bridge, bridge = shared_rig("messages", fixture="bridge", reverse=True)


def client(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0, timeout=20)


def chat_requests(up: ScriptedUpstream) -> list[dict]:
    requests = [r for r in up.requests if r.path == CHAT_PATH]
    for request in requests:
        assert request.header("authorization") == f"Bearer {KEY}"
        assert request.header("x-api-key") is None and request.header("anthropic-version") is None
    return [json.loads(r.body) for r in requests]


HI = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


# =========================================================================== anthropic-python


def test_create(bridge):
    up, mitm = bridge
    nim_chat(up, Turn(text=TEXT))
    message = client(mitm.url).messages.create(model=MODEL, max_tokens=100, messages=HI)
    assert [(b.type, b.text) for b in message.content] == [("text", "".join(TEXT))]
    assert (message.role, message.model, message.stop_reason) == ("assistant", MODEL, "end_turn")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (PROMPT_TOKENS, len(TEXT))
    assert message.id.startswith("msg_")
    assert chat_requests(up) == [{"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100}]


def test_create_streaming(bridge):
    up, mitm = bridge
    nim_chat(up, Turn(text=TEXT))
    events = list(client(mitm.url).messages.create(model=MODEL, max_tokens=100, messages=HI, stream=True))
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * len(TEXT),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "".join(TEXT)
    assert events[0].message.usage.output_tokens == 0  # present from the start (free-claude-code #121)
    assert (events[-2].delta.stop_reason, events[-2].usage.input_tokens, events[-2].usage.output_tokens) == ("end_turn", PROMPT_TOKENS, len(TEXT))
    assert chat_requests(up)[0]["stream_options"] == {"include_usage": True}


def test_stream_helper_with_a_tool(bridge):
    up, mitm = bridge

    def pick(body):
        result = last_tool_result(body)
        if result is not None:
            return Turn(text=["It is ", result, " in Paris."])
        return Turn(text=["Let me check."], calls=[Call("call_w1", "get_weather", ['{"city": ', '"Paris"}'])])

    nim_chat(up, pick)
    sdk = client(mitm.url)
    with sdk.messages.stream(model=MODEL, max_tokens=200, messages=HI, tools=[WEATHER]) as stream:
        text = "".join(stream.text_stream)
        first = stream.get_final_message()
    assert text == "Let me check."
    assert [b.type for b in first.content] == ["text", "tool_use"]
    call = first.content[1]
    assert (call.id, call.name, call.input) == ("call_w1", "get_weather", {"city": "Paris"})
    assert first.stop_reason == "tool_use"

    result = {"type": "tool_result", "tool_use_id": "call_w1", "content": "sunny"}
    history = [*HI, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}]
    with sdk.messages.stream(model=MODEL, max_tokens=200, messages=history, tools=[WEATHER]) as stream:
        second = stream.get_final_message()
    assert [(b.type, b.text) for b in second.content] == [("text", "It is sunny in Paris.")]
    sent = chat_requests(up)
    assert sent[0]["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city", "parameters": WEATHER["input_schema"]}}]
    assert sent[1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [{"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"},
    ]


def test_reasoning_arrives_as_thinking(bridge):
    up, mitm = bridge
    nim_chat(up, Turn(reasoning=["The user", " says hi."], text=["Hi!"]))
    with client(mitm.url).messages.stream(model=MODEL, max_tokens=100, messages=HI, thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        message = stream.get_final_message()
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in message.content] == [
        ("thinking", "The user says hi."),
        ("text", "Hi!"),
    ]
    assert message.content[0].signature == ""
    assert "thinking" not in chat_requests(up)[0]  # NIM rejects it (CLIProxyAPI #4149)


def test_count_tokens(bridge):
    up, mitm = bridge
    counted = client(mitm.url).messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "x" * 400}], tools=[WEATHER])
    assert counted.input_tokens == 3 + 100 + -(-len(compact(WEATHER)) // 4)
    assert up.requests == []  # answered by the addon


def test_models_list(bridge):
    up, mitm = bridge
    models = {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 1735689600, "owned_by": "qwen"}]}
    up.reply("GET", "/v1/models", compact(models), headers={"Content-Type": "application/json"}, mode="content-length")
    page = client(mitm.url).models.list()
    assert [(m.id, m.display_name, m.type) for m in page.data] == [(MODEL, MODEL, "model")]
    assert page.data[0].created_at.year == 2025


def test_rate_limit_error(bridge):
    up, mitm = bridge
    detail = "Worker local total request limit reached (32/32)"
    up.respond("POST", CHAT_PATH, lambda request: nim_error(429, {"status": 429, "title": "Too Many Requests", "detail": detail}))
    for stream in (False, True):
        with pytest.raises(anthropic.RateLimitError) as raised:
            client(mitm.url).messages.create(model=MODEL, max_tokens=10, messages=HI, stream=stream)
        assert raised.value.status_code == 429
        assert raised.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": detail}}
        assert detail in str(raised.value)


def test_unprocessable_entity_error(bridge):
    up, mitm = bridge
    up.respond("POST", CHAT_PATH, lambda request: NIM_PROBLEM_422)
    with pytest.raises(anthropic.UnprocessableEntityError) as raised:
        client(mitm.url).messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert raised.value.body["error"] == {"type": "invalid_request_error", "message": NIM_422_DETAIL}


def test_error_inside_the_stream(bridge):
    up, mitm = bridge
    error = b'data: {"error":{"message":"Worker crashed","type":"server_error","param":null,"code":null}}\n\n'
    first = nim_stream(Turn(text=["Hel"]), model=MODEL, end=False)
    up.reply("POST", CHAT_PATH, [*first, error, sse(nim_chunk({"content": "lo"})), DONE], headers={"Content-Type": "text/event-stream"})
    seen = []
    with pytest.raises(anthropic.APIStatusError, match="Worker crashed"):
        for event in client(mitm.url).messages.create(model=MODEL, max_tokens=10, messages=HI, stream=True):
            seen.append(event.type)
    assert seen == ["message_start", "content_block_start", "content_block_delta"]  # and no message_stop


def test_stream_cut_off(bridge):
    # The upstream closes the connection in the middle of an event: an error, never a clean end.
    up, mitm = bridge
    first = nim_stream(Turn(text=["Hel"]), model=MODEL, end=False)
    up.reply("POST", CHAT_PATH, [*first, sse(nim_chunk({"content": "lo"}))[:30]], headers={"Content-Type": "text/event-stream"}, mode="close")
    with pytest.raises(anthropic.APIStatusError, match="broke off inside an event"):
        with client(mitm.url).messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
            stream.get_final_message()


@pytest.mark.parametrize("call", ["create", "stream", "stream helper", "count_tokens"])
def test_raw_upstream_has_no_messages_api(bridge, call):
    # What the addon removes: NIM answers /v1/messages with 404, whatever the request.
    up, _ = bridge
    nim_chat(up, Turn(text=TEXT))
    sdk = client(up.url)
    with pytest.raises(anthropic.NotFoundError):
        if call == "create":
            sdk.messages.create(model=MODEL, max_tokens=10, messages=HI)
        elif call == "stream":
            list(sdk.messages.create(model=MODEL, max_tokens=10, messages=HI, stream=True))
        elif call == "stream helper":
            with sdk.messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
                stream.get_final_message()
        else:
            sdk.messages.count_tokens(model=MODEL, messages=HI)
    assert [r.path.split("?")[0] for r in up.requests] == ["/v1/messages" + ("/count_tokens" if call == "count_tokens" else "")]


def test_raw_upstream_errors_are_not_anthropic(bridge):
    # Straight from NIM (were it to serve the path), a 429 is problem+json: the SDK's
    # error body then has no Anthropic error in it.
    up, _ = bridge
    up.respond("POST", "/v1/messages", lambda request: nim_error(429, {"status": 429, "title": "Too Many Requests"}))
    with pytest.raises(anthropic.RateLimitError) as raised:
        client(up.url).messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert raised.value.body == {"status": 429, "title": "Too Many Requests"}
    assert "error" not in raised.value.body


# =========================================================================== Claude Code


def claude(base_url: str, tmp_path: Path, *args: str, proxy: MitmdumpProcess | None = None) -> subprocess.CompletedProcess[str]:
    """`claude -p`, in reverse mode (`base_url` at the addon), or through `proxy` in regular mode."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY=KEY,
        CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK="1",
        CLAUDE_CODE_MAX_RETRIES="0",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        # Nothing but loopback: anything else would go to a closed port.
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
    )
    if proxy is not None:
        del env["NO_PROXY"]
        env.update(HTTPS_PROXY=proxy.url, NODE_EXTRA_CA_CERTS=str(proxy.ca_path))
    return subprocess.run(
        [str(CLAUDE), "-p", *args, "--model", MODEL, "--allowedTools", "Bash"],
        env=env,
        cwd=work,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLAUDE_TIMEOUT,
    )


def bash(call_id, command, description):
    arguments = json.dumps({"command": command, "description": description})
    return Call(call_id, "Bash", [arguments[:20], arguments[20:]])


def magic_word_turns(body):
    # Two Bash calls in one turn: each its own tool_use block, both run, both results sent back.
    results = tool_results(body)
    if results:
        # Claude Code runs both at once and sends the results in the order they finished.
        return Turn(text=["The magic words are ", " and ".join(sorted(r.strip() for r in results)), "."])
    if "magic words" in json.dumps(body["messages"]):
        calls = [bash("call_bash_1", "echo bridged-$((6*7))", "Print the first word"), bash("call_bash_2", "echo second-$((2*2))", "Print the second")]
        return Turn(text=["Running them."], calls=calls)
    return Turn(text=TEXT)


@needs_claude
def test_claude_code_plain_answer(bridge, tmp_path):
    up, mitm = bridge
    nim_chat(up, Turn(text=TEXT))
    run = claude(mitm.url, tmp_path, "Say hi")
    assert (run.returncode, run.stdout) == (0, "".join(TEXT) + "\n"), run.stderr
    sent = chat_requests(up)
    assert sent and all(body["model"] == MODEL and body["stream"] is True for body in sent)
    assert any(t["function"]["name"] == "Bash" for t in sent[0]["tools"])
    assert not {"thinking", "metadata", "context_management", "output_config"} & set(sent[0])


@needs_claude
def test_claude_code_runs_bash_and_answers(bridge, tmp_path):
    up, mitm = bridge
    nim_chat(up, magic_word_turns)
    run = claude(mitm.url, tmp_path, "Use Bash to print the magic words, then tell me what it printed.")
    assert (run.returncode, run.stdout) == (0, "The magic words are bridged-42 and second-4.\n"), run.stderr
    sent = chat_requests(up)
    assert len(sent) == 2
    assert sent[1]["messages"][-3] == {
        "role": "assistant",
        "content": "Running them.",
        "tool_calls": [
            {
                "id": "call_bash_1",
                "type": "function",
                "function": {"name": "Bash", "arguments": '{"command":"echo bridged-$((6*7))","description":"Print the first word"}'},
            },
            {
                "id": "call_bash_2",
                "type": "function",
                "function": {"name": "Bash", "arguments": '{"command":"echo second-$((2*2))","description":"Print the second"}'},
            },
        ],
    }
    assert sorted(sent[1]["messages"][-2:], key=lambda m: m["tool_call_id"]) == [
        {"role": "tool", "tool_call_id": "call_bash_1", "content": "bridged-42"},
        {"role": "tool", "tool_call_id": "call_bash_2", "content": "second-4"},
    ]


@needs_claude
def test_claude_code_stream_json(bridge, tmp_path):
    up, mitm = bridge
    nim_chat(up, Turn(text=TEXT))
    run = claude(mitm.url, tmp_path, "Say hi", "--output-format", "stream-json", "--verbose")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assistant = [line["message"] for line in lines if line["type"] == "assistant"]
    assert [[(b["type"], b.get("text")) for b in m["content"]] for m in assistant] == [[("text", "".join(TEXT))]]
    result = next(line for line in lines if line["type"] == "result")
    assert (result["subtype"], result["is_error"], result["result"]) == ("success", False, "".join(TEXT))
    assert (result["usage"]["input_tokens"], result["usage"]["output_tokens"]) == (PROMPT_TOKENS, len(TEXT))


@needs_claude
def test_claude_code_against_the_raw_upstream(bridge, tmp_path):
    up, _ = bridge
    nim_chat(up, Turn(text=TEXT))
    run = claude(up.url, tmp_path, "Say hi")
    assert run.returncode == 1
    assert "".join(TEXT) not in run.stdout
    assert "issue with the selected model" in run.stdout + run.stderr
    assert {r.path for r in up.requests} == {"/v1/messages?beta=true"}


@needs_claude
def test_claude_code_through_a_regular_proxy(tls_upstream, mitmdump, tmp_path):
    # HTTPS_PROXY at the addon, the base URL at the upstream's own https host, mitmproxy's CA trusted.
    up = tls_upstream
    nim_chat(up, Turn(text=TEXT))
    proxy = mitmdump(normalize_hosts=[f"localhost:{up.port}"], ssl_insecure=True)
    run = claude(f"https://localhost:{up.port}", tmp_path, "Say hi", proxy=proxy)
    assert (run.returncode, run.stdout) == (0, "".join(TEXT) + "\n"), run.stderr
    assert {r.path for r in up.requests} == {CHAT_PATH}
    servers = [line for line in proxy.log_lines if "server connect" in line]
    assert servers and all(f"server connect localhost:{up.port} " in line for line in servers)
