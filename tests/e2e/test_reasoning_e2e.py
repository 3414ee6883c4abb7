"""Reasoning end to end: real streaming clients through a real mitmdump, and against the raw upstream.

Upstreams (scripted on 127.0.0.1, byte for byte as NIM sends them):
  R1     DeepSeek-R1: `<think>…</think>` inside content, the tags cut across chunks
  QwQ    qwen/qwq-32b: the reply starts inside reasoning, only `</think>` comes
  V4     a thinking model sending reasoning_content (DeepSeek's and NIM's parser)

Clients: openai-python (`create(stream=True)` read as OpenAI's docs show, the
reasoning from the delta's extra fields), openai-node (`create` iterated) and
the Vercel AI SDK (`streamText`, the openai-compatible provider, which shows
reasoning apart). Each runs through the addon and straight at the upstream,
where the test asserts the failure the addon removes: tags and reasoning
shown as the answer, or (fold) reasoning a content-only client never shows.

Three mitmdumps, regular mode: the default addon (`split`), the addon with the
`nim` profile (normalize_profile: QwQ's family is NIM data), and
`--set normalize_reasoning=fold`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.harness.proxy import REPO, MitmdumpLauncher, MitmdumpProcess, client_env
from tests.harness.upstream import ScriptedUpstream, check_no_crash
from tests.upstreams import DONE, R1_REASONING, R1_TEXT, compact, nim_chunk, sse

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "Hi"}]
NODE = shutil.which("node")
NODE_DIR = REPO / "tests" / "node"
NODE_READY = NODE is not None and (NODE_DIR / "node_modules" / "ai" / "package.json").exists()


def stream(model: str, contents: list[str], reasoning: list[str] = ()) -> bytes:  # type: ignore[assignment]
    chunks = [sse(nim_chunk({"role": "assistant"}, model=model))]
    chunks += [sse(nim_chunk({"reasoning_content": r}, model=model)) for r in reasoning]
    chunks += [sse(nim_chunk({"content": c}, model=model)) for c in contents]
    return b"".join([*chunks, sse(nim_chunk({}, finish_reason="stop", model=model)), DONE])


R1 = "deepseek-ai/deepseek-r1"
R1_STREAM = stream(R1, ["<th", "ink>", "\nOkay", ", the user says hi.", " I should greet back.\n</", "think>",
                        "\n\nHello!", " How can I help you", " today?"])
QWQ = "qwen/qwq-32b"
QWQ_REASONING = "Okay, the user said hi. A short greeting back."
QWQ_TEXT = "\n\nHi there!"
QWQ_STREAM = stream(QWQ, ["Okay", ", the user said hi.", " A short greeting back.", "</think>", "\n\nHi", " there!"])
NANO = "nvidia/nemotron-3-nano-30b-a3b"
V4 = "deepseek-ai/deepseek-v4-flash"
V4_STREAM = stream(V4, ["Hey!", " 👋"], reasoning=["Hmm", ", a greeting."])


# --------------------------------------------------------------------------- rig


class Rig:
    def __init__(self, upstream: ScriptedUpstream, split: MitmdumpProcess, nim: MitmdumpProcess, fold: MitmdumpProcess):
        self.upstream, self.split, self.nim, self.fold = upstream, split, nim, fold

    def serve(self, body: bytes, content_type: str = "text/event-stream") -> None:
        self.upstream.reply("POST", CHAT, body, headers={"Content-Type": content_type})


@pytest.fixture(scope="module")
def _rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    launcher = MitmdumpLauncher(tmp_path_factory.mktemp("reasoning"))
    with ScriptedUpstream() as up:
        try:
            hosts = [up.host_port]
            yield Rig(
                up,
                launcher.start(normalize_hosts=hosts),
                launcher.start(normalize_hosts=hosts, options={"normalize_profile": f"{up.host_port}=nim"}),
                launcher.start(normalize_hosts=hosts, options={"normalize_reasoning": "fold"}),
            )
        finally:
            problems = launcher.close()
    assert not problems, problems


@pytest.fixture
def rig(_rig: Rig) -> Iterator[Rig]:
    _rig.upstream.reset()
    for m in (_rig.split, _rig.nim, _rig.fold):
        assert m.running, m.log
    yield _rig
    check_no_crash(_rig.upstream)


def client(rig: Rig, proxy: MitmdumpProcess | None) -> openai.OpenAI:
    http = httpx.Client(proxy=proxy.url if proxy else None, timeout=15)
    return openai.OpenAI(base_url=rig.upstream.url + "/v1", api_key="nvapi-test", http_client=http, max_retries=0)


def read_stream(rig: Rig, proxy: MitmdumpProcess | None, model: str, **extra: Any) -> tuple[str, str, list[str]]:
    """openai-python's docs loop: (reasoning, content, each delta's keys in order)."""
    reasoning, content, keys = [], [], []
    for chunk in client(rig, proxy).chat.completions.create(model=model, messages=HI, stream=True, **extra):
        delta = chunk.choices[0].delta
        content.append(delta.content or "")
        extra_fields = delta.model_extra or {}
        reasoning.append(extra_fields.get("reasoning_content") or "")
        keys.append(",".join(k for k in ("content", "reasoning_content") if (extra_fields | {"content": delta.content}).get(k)))
    return "".join(reasoning), "".join(content), keys


def run_node(script: str, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    p = subprocess.run([NODE, str(NODE_DIR / script)], input=json.dumps(configs), capture_output=True, text=True,
                       timeout=30, cwd=NODE_DIR, env=client_env())
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout)
    assert all("scriptError" not in r for r in results), results
    return results


def node_configs(rig: Rig, proxy: MitmdumpProcess, model: str) -> list[dict[str, Any]]:
    base = {"baseURL": rig.upstream.url + "/v1", "model": model, "messages": HI}
    return [{**base, "proxy": proxy.url}, base]


needs_node = pytest.mark.skipif(not NODE_READY, reason="node or tests/node/node_modules missing (make test runs npm ci)")


# --------------------------------------------------------------------------- split: <think> in content


def test_think_tags_in_content_openai_python(rig: Rig) -> None:
    rig.serve(R1_STREAM)
    reasoning, content, keys = read_stream(rig, rig.split, R1)
    assert (reasoning, content) == (R1_REASONING, R1_TEXT)
    assert "content,reasoning_content" not in keys  # one text key per delta, in the stream's order
    # Raw: the reasoning and its tags are the answer.
    reasoning, content, _ = read_stream(rig, None, R1)
    assert (reasoning, content) == ("", "<think>" + R1_REASONING + "</think>" + R1_TEXT)


@needs_node
def test_think_tags_in_content_node(rig: Rig) -> None:
    rig.serve(R1_STREAM)
    addon, raw = run_node("ai_sdk_client.mjs", node_configs(rig, rig.split, R1))
    assert (addon["compatible"]["reasoning"], addon["compatible"]["text"]) == (R1_REASONING, R1_TEXT)
    assert addon["openai"]["text"] == R1_TEXT  # @ai-sdk/openai ignores reasoning, but the text is clean
    assert addon["compatible"]["errors"] == addon["openai"]["errors"] == []
    for provider in ("compatible", "openai"):
        assert (raw[provider]["reasoning"], raw[provider]["text"]) == ("", "<think>" + R1_REASONING + "</think>" + R1_TEXT)
    addon, raw = run_node("openai_client.mjs", [{**c, "modes": ["create"]} for c in node_configs(rig, rig.split, R1)])
    assert (addon["create"]["reasoning"], addon["create"]["content"]) == (R1_REASONING, R1_TEXT)
    assert (raw["create"]["reasoning"], raw["create"]["content"]) == ("", "<think>" + R1_REASONING + "</think>" + R1_TEXT)


def test_think_tags_in_content_whole_reply(rig: Rig) -> None:
    completion = {"id": "c1", "object": "chat.completion", "created": 1754000000, "model": R1, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "<think>" + R1_REASONING + "</think>" + R1_TEXT},
         "finish_reason": "stop"}]}
    rig.serve(compact(completion), "application/json")
    message = client(rig, rig.split).chat.completions.create(model=R1, messages=HI).choices[0].message
    assert (message.content, (message.model_extra or {}).get("reasoning_content")) == (R1_TEXT, R1_REASONING)
    message = client(rig, None).chat.completions.create(model=R1, messages=HI).choices[0].message
    assert message.content == "<think>" + R1_REASONING + "</think>" + R1_TEXT


# --------------------------------------------------------------------------- split: no opening tag


def test_think_open_tag_missing_openai_python(rig: Rig) -> None:
    rig.serve(QWQ_STREAM)
    assert read_stream(rig, rig.nim, QWQ)[:2] == (QWQ_REASONING, QWQ_TEXT)
    # Raw: the reasoning reads as the answer, with a stray </think> in it.
    assert read_stream(rig, None, QWQ)[:2] == ("", QWQ_REASONING + "</think>" + QWQ_TEXT)
    # Without the profile's word for it (the generic profile), nothing is assumed: the tag stays visible.
    assert read_stream(rig, rig.split, QWQ)[:2] == ("", QWQ_REASONING + "</think>" + QWQ_TEXT)


@needs_node
def test_think_open_tag_missing_node(rig: Rig) -> None:
    rig.serve(QWQ_STREAM)
    addon, raw = run_node("ai_sdk_client.mjs", [{**c, "providers": ["compatible"]} for c in node_configs(rig, rig.nim, QWQ)])
    assert (addon["compatible"]["reasoning"], addon["compatible"]["text"]) == (QWQ_REASONING, QWQ_TEXT)
    assert (raw["compatible"]["reasoning"], raw["compatible"]["text"]) == ("", QWQ_REASONING + "</think>" + QWQ_TEXT)


def test_reasoning_switched_off_is_not_assumed(rig: Rig) -> None:
    # Nemotron-3-nano opens inside its reasoning, unless the request switched reasoning off.
    rig.serve(stream(NANO, ["Hi", " there!"]))
    off = {"extra_body": {"chat_template_kwargs": {"enable_thinking": False}}}
    assert read_stream(rig, rig.nim, NANO, **off)[:2] == ("", "Hi there!")
    sent = json.loads(rig.upstream.requests[-1].body)
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}


# --------------------------------------------------------------------------- fold


def test_reasoning_in_separate_field_openai_python(rig: Rig) -> None:
    rig.serve(V4_STREAM)
    # A client that shows only content: through fold it shows the reasoning, in <think>.
    assert read_stream(rig, rig.fold, V4)[:2] == ("", "<think>Hmm, a greeting.</think>Hey! 👋")
    # Raw: it never sees the reasoning.
    assert read_stream(rig, None, V4)[:2] == ("Hmm, a greeting.", "Hey! 👋")


def test_think_tags_in_history(rig: Rig) -> None:
    """fold gave the client `<think>…</think>` in content; its next turn sends that back, and the
    upstream gets the reasoning as reasoning_content, as NIM's thinking models require."""
    rig.serve(V4_STREAM)
    turn = client(rig, rig.fold).chat.completions.create(model=V4, stream=True, messages=HI)
    said = "".join(c.choices[0].delta.content or "" for c in turn)
    history = [*HI, {"role": "assistant", "content": said}, {"role": "user", "content": "And?"}]
    list(client(rig, rig.fold).chat.completions.create(model=V4, stream=True, messages=history))
    sent = json.loads(rig.upstream.requests[-1].body)["messages"]
    assert sent[1] == {"role": "assistant", "content": "Hey! 👋", "reasoning_content": "Hmm, a greeting."}


# --------------------------------------------------------------------------- history


@pytest.mark.parametrize("proxy", ["split", "nim", "fold"])
def test_history_keeps_reasoning_content(rig: Rig, proxy: str) -> None:
    """NIM thinking models reject an assistant turn without its reasoning_content
    (NousResearch/hermes-agent #92359): no rule may strip it on the way up."""
    rig.serve(V4_STREAM)
    history = [
        *HI,
        {"role": "assistant", "content": None, "reasoning_content": "Look it up.",
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    list(client(rig, getattr(rig, proxy)).chat.completions.create(model=V4, stream=True, messages=history))  # type: ignore[arg-type]
    assert json.loads(rig.upstream.requests[-1].body)["messages"] == history
