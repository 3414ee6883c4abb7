"""Codex CLI (@openai/codex 0.169.0, tests/node) against a chat-only NIM-like upstream, through
the Responses bridge: a plain answer, a shell tool turn, an apply_patch turn, in reverse mode
and once through HTTPS_PROXY with Codex's real base URL; and straight at the upstream (404).

Codex runs as `codex exec` with CODEX_HOME in a temporary folder, a custom provider given
with `-c` (no retries, so a failure shows at once), the sandbox and approvals off in a
temporary workspace, `--json` events on stdout and the last message written to a file.
It needs nothing beyond loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.nim_chat import PROMPT_TOKENS, Call, Turn, nim_chat, tool_results
from tests.harness.proxy import REPO

CODEX = REPO / "tests" / "node" / "node_modules" / ".bin" / "codex"
KEY = "nvapi-test-key"
NIM_MODEL = "qwen/qwen3-coder-480b-a35b-instruct"
ANSWER = "Hello from NIM — naïve café 東京 🚀 \"quoted\""
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+Hello from the bridge — 東京\n*** End Patch\n"

pytestmark = pytest.mark.skipif(not CODEX.exists(), reason="run `npm ci` in tests/node (make test does)")


def codex(base_url: str, prompt: str, tmp_path: Path, *, model: str = "meta/llama-3.1-70b-instruct", env: dict[str, str] | None = None):
    home, workspace = tmp_path / "codex-home", tmp_path / "workspace"
    home.mkdir(exist_ok=True)
    workspace.mkdir(exist_ok=True)
    last = tmp_path / "last-message.txt"
    provider = (
        f'model_providers.nim={{name="nim",base_url="{base_url}",env_key="NIM_KEY",wire_api="responses",'
        "request_max_retries=0,stream_max_retries=0}"
    )
    argv = [
        str(CODEX), "exec", "--skip-git-repo-check", "-m", model,
        "-c", "model_provider=nim", "-c", provider,
        "--dangerously-bypass-approvals-and-sandbox", "-C", str(workspace), "--json", "-o", str(last), prompt,
    ]  # fmt: skip
    run_env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    run_env.update(CODEX_HOME=str(home), NIM_KEY=KEY, **(env or {}))
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, env=run_env, cwd=workspace)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    output = last.read_text() if last.exists() else None
    return done, events, output, workspace


@pytest.fixture
def rig(upstream, mitmdump):
    return upstream, mitmdump.start(mode=f"reverse:{upstream.url}", normalize_hosts=[upstream.host_port])


def test_codex_plain_answer(rig, tmp_path):
    upstream, mitm = rig
    nim_chat(upstream, Turn(text=["Hello from NIM — ", "naïve café ", '東京 🚀 "quoted"']))
    done, events, output, _ = codex(f"{mitm.url}/v1", "Say hello", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert output == ANSWER
    assert events[-1]["type"] == "turn.completed" and events[-1]["usage"]["input_tokens"] == PROMPT_TOKENS
    (request,) = upstream.requests
    assert request.path == "/v1/chat/completions" and request.header("authorization") == f"Bearer {KEY}"
    sent = json.loads(request.body)
    assert {m["role"] for m in sent["messages"]} == {"system", "user"}  # Codex's developer messages, renamed
    assert sent["messages"][-1] == {"role": "user", "content": "Say hello"}
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    for key in ("input", "store", "include", "prompt_cache_key", "client_metadata", "reasoning"):
        assert key not in sent
    assert {t["function"]["name"] for t in sent["tools"]} >= {"exec_command", "multi_agent_v1__close_agent"}
    assert not any("strict" in t["function"] for t in sent["tools"])
    mitm.wait_for_log(r"POST 127\.0\.0\.1/v1/responses 200: bridged responses -> chat \d+ events: .*hosted tool")


def test_codex_runs_a_shell_tool_and_answers(rig, tmp_path):
    upstream, mitm = rig

    def turns(body):
        results = tool_results(body)
        if not results:
            arguments = json.dumps({"cmd": "echo bridged-$((6*7))"})
            return Turn(text=["Running it."], calls=[Call("call_shell_1", "exec_command", [arguments[:9], arguments[9:]])])
        return Turn(text=["The command printed bridged-42."])

    nim_chat(upstream, turns)
    done, events, output, _ = codex(f"{mitm.url}/v1", "Run the command", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert output == "The command printed bridged-42."
    first, second = (json.loads(r.body) for r in upstream.requests)
    call = next(m for m in second["messages"] if m.get("tool_calls"))
    assert call["tool_calls"] == [{"id": "call_shell_1", "type": "function",
                                   "function": {"name": "exec_command", "arguments": json.dumps({"cmd": "echo bridged-$((6*7))"})}}]  # fmt: skip
    (result,) = tool_results(second)
    assert "bridged-42" in result and "exited with code 0" in result
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_shell_1", "content": result}
    assert any(e["type"] == "item.completed" and e["item"]["type"] == "command_execution" for e in events)


def test_codex_applies_a_patch(upstream, mitmdump, tmp_path):
    # gpt-5.5 is a model Codex knows to offer its freeform apply_patch tool; the alias
    # (README: Responses API clients) sends it to the NIM model.
    options = {"normalize_model_map": f"gpt-5.5={NIM_MODEL}"}
    mitm = mitmdump.start(mode=f"reverse:{upstream.url}", normalize_hosts=[upstream.host_port], options=options)

    def turns(body):
        if not tool_results(body):
            arguments = json.dumps({"input": PATCH}, ensure_ascii=False)
            pieces = [arguments[i : i + 11] for i in range(0, len(arguments), 11)]
            return Turn(calls=[Call("call_patch_1", "apply_patch", pieces)])
        return Turn(text=["Created hello.txt."])

    nim_chat(upstream, turns)
    done, events, output, workspace = codex(f"{mitm.url}/v1", "Create hello.txt", tmp_path, model="gpt-5.5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (workspace / "hello.txt").read_text() == "Hello from the bridge — 東京\n"
    assert output == "Created hello.txt."
    first, second = (json.loads(r.body) for r in upstream.requests)
    assert first["model"] == second["model"] == NIM_MODEL
    patch_tool = next(t["function"] for t in first["tools"] if t["function"]["name"] == "apply_patch")
    assert patch_tool["parameters"]["required"] == ["input"] and "lark grammar" in patch_tool["description"]
    call = next(m for m in second["messages"] if m.get("tool_calls"))["tool_calls"][0]
    assert call["function"] == {"name": "apply_patch", "arguments": json.dumps({"input": PATCH}, ensure_ascii=False, separators=(",", ":"))}
    assert "hello.txt" in tool_results(second)[0]


def test_codex_against_the_raw_upstream_gets_404(upstream, tmp_path):
    nim_chat(upstream, Turn(text=["never"]))
    done, events, output, _ = codex(f"{upstream.url}/v1", "Say hello", tmp_path)
    assert done.returncode == 1
    assert "404" in events[-1]["error"]["message"]
    assert [r.path for r in upstream.requests] == ["/v1/responses"]


def test_codex_through_https_proxy(tls_upstream, mitmdump, tmp_path):
    # Codex keeps its real base URL and goes through mitmproxy as HTTPS_PROXY, trusting
    # mitmproxy's CA (CODEX_CA_CERTIFICATE); the test's resolver addon dials the local TLS
    # upstream for integrate.api.nvidia.com and refuses every other server.
    mitm = mitmdump.start(
        "-s", str(REPO / "tests" / "e2e" / "resolve_addon.py"),
        ssl_insecure=True,
        options={"test_resolve": f"integrate.api.nvidia.com=127.0.0.1:{tls_upstream.port}", "connection_strategy": "lazy"},
    )  # fmt: skip
    nim_chat(tls_upstream, Turn(text=[ANSWER]))
    env = {"HTTPS_PROXY": mitm.url, "CODEX_CA_CERTIFICATE": str(mitm.ca_path)}
    done, events, output, _ = codex("https://integrate.api.nvidia.com/v1", "Say hello", tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert output == ANSWER
    assert [r.path for r in tls_upstream.requests] == ["/v1/chat/completions"]
    mitm.wait_for_log(r"POST integrate\.api\.nvidia\.com/v1/responses 200: bridged responses -> chat")
    # Codex also called github.com and chatgpt.com through the proxy; none of it left the machine.
    assert "POST https://integrate.api.nvidia.com/v1/chat/completions" in mitm.log
