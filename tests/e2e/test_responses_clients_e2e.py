"""Responses API clients against a chat-only NIM-like upstream, through the bridge: openai-python
(`responses.create`, streamed and not, the `responses.stream` helper, a function tool and
`previous_response_id`), the OpenAI Agents SDK (an agent with one function tool, run to the
end), and the Vercel AI SDK's `openai(model)` (`streamText` with a tool it executes). Each is
also run straight at the upstream, where it gets the 404 the bridge removes.

mitmdump runs in reverse mode (`--mode reverse:http://127.0.0.1:<upstream>`); the upstream
(tests/e2e/nim_chat.py) answers `/v1/chat/completions` as NIM does, quirks and all, and has no
`/v1/responses`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import openai
import pytest

from tests.e2e.nim_chat import NIM_PROBLEM_422, PROMPT_TOKENS, SSE, Call, Turn, nim_chat, nim_stream, tool_results
from tests.harness.proxy import REPO, client_env, shared_rig
from tests.harness.upstream import Reply
from tests.upstreams import NIM_422_DETAIL, sse

MODEL = "qwen/qwen3-next-80b-a3b-instruct"
TEXT = ["Tabs", " or", " spaces", "? ", "Spaces — ", 'naïve café 東京 🚀 "quoted"']
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False},
    "strict": True,
}
NODE = shutil.which("node")
AI_SDK = REPO / "tests" / "node" / "node_modules" / "@ai-sdk" / "openai" / "package.json"


_rig, rig = shared_rig("responses-clients", reverse=True)


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="nvapi-test", max_retries=0, timeout=20)


def weather_turns(body):
    """A tool call first; once the tool's result is back, an answer that quotes it."""
    results = tool_results(body)
    if not results:
        return Turn(calls=[Call("call_w1", "get_weather", ['{"city": ', '"Paris"}'])])
    return Turn(text=[f"In Paris: {results[0]}."])


# -- openai-python -------------------------------------------------------------------------


def test_openai_python_create(rig):
    up, mitm = rig
    nim_chat(up, Turn(text=TEXT))
    response = client(mitm.url).responses.create(model=MODEL, instructions="Be brief.", input="Tabs or spaces?")
    assert response.output_text == "".join(TEXT)
    assert (response.status, response.model, response.object) == ("completed", MODEL, "response")
    assert response.usage.input_tokens == PROMPT_TOKENS and response.usage.output_tokens == len(TEXT)
    sent = json.loads(up.requests[0].body)
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tabs or spaces?"}]
    assert "stream" not in sent
    # kept: GET answers it, DELETE forgets it
    assert client(mitm.url).responses.retrieve(response.id).output_text == "".join(TEXT)
    client(mitm.url).responses.delete(response.id)
    with pytest.raises(openai.NotFoundError, match=f"Response with id '{response.id}' not found"):
        client(mitm.url).responses.retrieve(response.id)


def test_openai_python_create_stream(rig):
    up, mitm = rig
    nim_chat(up, Turn(reasoning=["Hmm, ", "tabs?"], text=TEXT))
    events = list(client(mitm.url).responses.create(model=MODEL, input="Tabs or spaces?", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "".join(TEXT)
    assert "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta") == "Hmm, tabs?"
    final = events[-1].response
    assert final.output_text == "".join(TEXT) and final.usage.output_tokens == len(TEXT) + 2
    assert json.loads(up.requests[0].body)["stream_options"] == {"include_usage": True}


def test_openai_python_stream_helper_tool_and_previous_response(rig):
    up, mitm = rig
    nim_chat(up, weather_turns)
    with client(mitm.url).responses.stream(model=MODEL, input="Weather in Paris?", tools=[WEATHER]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        first = stream.get_final_response()
    (call,) = first.output
    assert (call.type, call.name, call.call_id, call.arguments) == ("function_call", "get_weather", "call_w1", '{"city": "Paris"}')
    assert "".join(deltas) == '{"city": "Paris"}'
    second = client(mitm.url).responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "call_w1", "output": "sunny, 24 °C"}],
        tools=[WEATHER],
    )
    assert second.output_text == "In Paris: sunny, 24 °C."
    sent = json.loads(up.requests[1].body)
    assert sent["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 24 °C"},
    ]  # fmt: skip
    assert sent["tools"][0]["function"]["strict"] is True  # kept: 127.0.0.1 is no NIM host (NIM rejects it)


def test_openai_python_upstream_error_keeps_its_status_and_message(rig):
    up, mitm = rig
    up.respond("POST", "/v1/chat/completions", lambda request: NIM_PROBLEM_422)
    for stream in (False, True):
        with pytest.raises(openai.UnprocessableEntityError) as e:
            client(mitm.url).responses.create(model=MODEL, input="x", stream=stream)
        assert e.value.status_code == 422 and e.value.message == f"Error code: 422 - {NIM_422_DETAIL}"


def test_openai_python_error_inside_the_stream_is_response_failed(rig):
    up, mitm = rig
    error = sse({"error": {"message": "Worker local total request limit reached (32/32)", "type": "server_error", "code": None}})

    up.respond("POST", "/v1/chat/completions", lambda request: Reply(200, SSE, [*nim_stream(Turn(text=["Hel"]), model=MODEL, end=False), error]))
    events = list(client(mitm.url).responses.create(model=MODEL, input="x", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.message == "Worker local total request limit reached (32/32)"
    assert not any(e.type == "response.completed" for e in events)


def test_openai_python_against_the_raw_upstream_gets_404(rig):
    up, _ = rig
    nim_chat(up, Turn(text=["never"]))
    with pytest.raises(openai.NotFoundError):
        client(up.url).responses.create(model=MODEL, input="hi")


# -- the OpenAI Agents SDK -----------------------------------------------------------------


def run_agent(base: str) -> tuple[str, list[str]]:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # no trace export to api.openai.com
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny, 24 °C"

    model = OpenAIResponsesModel(MODEL, openai_client=openai.AsyncOpenAI(base_url=base + "/v1", api_key="nvapi-test", max_retries=0))
    agent = Agent(name="weather", instructions="Answer with the weather.", tools=[get_weather], model=model)
    result = asyncio.run(Runner.run(agent, "Weather in Paris?"))
    return result.final_output, calls


def test_openai_agents_runs_a_tool_to_the_end(rig):
    up, mitm = rig
    nim_chat(up, weather_turns)
    output, calls = run_agent(mitm.url)
    assert output == "In Paris: sunny, 24 °C."
    assert calls == ["Paris"]
    first, second = (json.loads(r.body) for r in up.requests)
    assert first["messages"] == [{"role": "system", "content": "Answer with the weather."}, {"role": "user", "content": "Weather in Paris?"}]
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 24 °C"}


def test_openai_agents_against_the_raw_upstream_gets_404(rig):
    up, _ = rig
    nim_chat(up, weather_turns)
    with pytest.raises(openai.NotFoundError):
        run_agent(up.url)


# -- the Vercel AI SDK ---------------------------------------------------------------------


def ai_sdk(base: str) -> dict:
    config = {
        "baseURL": base + "/v1",
        "model": MODEL,
        "prompt": "Weather in Paris?",
        "tool": {"name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["parameters"], "result": "sunny, 24 °C"},
    }
    done = subprocess.run(
        [NODE or "node", str(REPO / "tests" / "node" / "ai_sdk_responses_client.mjs"), json.dumps(config)],
        capture_output=True, text=True, timeout=60, env=client_env(), cwd=REPO / "tests" / "node",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


needs_node = pytest.mark.skipif(NODE is None or not AI_SDK.exists(), reason="node and `npm ci --prefix tests/node` are needed")


@needs_node
def test_ai_sdk_stream_text_with_a_tool(rig):
    up, mitm = rig
    nim_chat(up, weather_turns)
    got = ai_sdk(mitm.url)
    assert got["errors"] == [] and got["ok"]
    assert got["tool_calls"] == [{"id": "call_w1", "name": "get_weather", "input": {"city": "Paris"}}]
    assert got["tool_results"] == [{"id": "call_w1", "output": "sunny, 24 °C"}]
    assert got["text"] == "In Paris: sunny, 24 °C."
    assert (got["steps"], got["finish_reason"]) == (2, "stop")
    assert [r.path for r in up.requests] == ["/v1/chat/completions"] * 2


@needs_node
def test_ai_sdk_against_the_raw_upstream_gets_404(rig):
    up, _ = rig
    nim_chat(up, weather_turns)
    got = ai_sdk(up.url)
    assert not got["ok"] and got["errors"][0]["status"] == 404


# -- Cursor's agent mode: a Responses body on the chat path ---------------------------------


def test_responses_body_on_chat_path_is_answered_as_chat(rig):
    # No Cursor client runs here (it calls from Cursor's servers); openai-python posts the
    # body Cursor's agent sends and reads the reply as chat chunks, as Cursor does.
    from openai import Stream
    from openai.types.chat import ChatCompletionChunk

    up, mitm = rig
    nim_chat(up, weather_turns)
    body = {"model": MODEL, "stream": True, "input": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER], "include": [], "reasoning": {"effort": "low"}}  # fmt: skip
    chunks = client(mitm.url).post("/chat/completions", body=body, cast_to=ChatCompletionChunk, stream=True, stream_cls=Stream[ChatCompletionChunk])
    calls = [call for chunk in chunks for choice in chunk.choices for call in choice.delta.tool_calls or []]
    assert calls[0].function.name == "get_weather" and "".join(c.function.arguments or "" for c in calls) == '{"city": "Paris"}'
    sent = json.loads(up.requests[0].body)
    assert sent["messages"] == [{"role": "user", "content": "Weather in Paris?"}] and "input" not in sent
    with pytest.raises(openai.BadRequestError, match=r"Unsupported parameter\(s\): include, input, reasoning"):  # NIM, asked directly
        client(up.url).post("/chat/completions", body=body, cast_to=ChatCompletionChunk, stream=True, stream_cls=Stream[ChatCompletionChunk])
