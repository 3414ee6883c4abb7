"""Every upstream fixture of tests/upstreams.py, replayed through a real mitmdump.

One local upstream and one regular-mode `mitmdump -s addon.py` (plain HTTP,
`normalize_hosts` = the upstream) serve the whole module. Each test replays
one fixture and reads the reply with httpx, as raw bytes, and checks two
things: what a client assembles from it is exactly the fixture's expectation
(text, reasoning, tool calls, finish_reason, usage, error), and the bytes are
in OpenAI's own shape (for a stream: one `data: [DONE]`, last; the first chunk
says role "assistant"; no null delta field; one id and one `created`
everywhere; each tool call delta has an integer index, and its id, type and
name come once, in its first delta).

A test's docstring says what the client must receive. Where the addon's
output is known to be wrong, the main test tolerates exactly that problem
(by its tag) so everything else stays checked, and a separate strict-xfail
test asserts it is gone; see the `*_known_bug` tests at the end.
"""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

import tests.upstreams as U
from tests.harness.proxy import MitmdumpProcess, shared_rig
from tests.harness.upstream import ScriptedUpstream
from tests.upstreams import Fixture

pytestmark = pytest.mark.e2e


_rig, rig = shared_rig("upstreams")


def fetch(rig: tuple[ScriptedUpstream, MitmdumpProcess], fx: Fixture) -> tuple[httpx.Response, bytes]:
    """Replays `fx` and sends its request through the proxy; the response and its raw body."""
    up, mitm = rig
    U.serve(up, fx)
    with httpx.Client(proxy=mitm.url, timeout=15) as client:
        with client.stream(fx.request.method, up.url + fx.request.path, json=fx.request.body(),
                           headers={"Authorization": "Bearer test"}) as r:
            body = b"".join(r.iter_raw())
    (seen,) = up.requests
    sent = json.loads(seen.body) if seen.body else None
    for key in fx.expected.removed_params:
        assert key not in sent, f"{key!r} reached the upstream: {sent}"
    return r, body


def show(body: bytes) -> str:
    return body.decode("utf-8", "replace").replace("\n\n", "\n\n  ")


def unexpected(problems: list[str], allow: tuple[str, ...]) -> list[str]:
    return [p for p in problems if p.split(":", 1)[0] not in allow]


def check(rig: tuple[ScriptedUpstream, MitmdumpProcess], fx: Fixture, *, allow: tuple[str, ...] = ()) -> bytes:
    """Replays `fx` through mitmdump; asserts what the client gets and its shape. Returns the body."""
    r, body = fetch(rig, fx)
    expected = replace(fx.expected, removed_params=())  # checked upstream-side, in fetch()
    if fx.request.path == U.MODELS_PATH:
        obj = json.loads(body)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        assert unexpected(U.models_problems(obj), allow) == [], obj
        assert tuple(m["id"] for m in obj["data"]) == expected.models
        return body
    if fx.reply.status >= 400:
        obj = json.loads(body)
        assert r.status_code == expected.error.status
        assert r.headers["content-type"].startswith("application/json")
        assert unexpected(U.error_problems(obj), allow) == [], obj
        assert obj["error"]["message"] == expected.error.message
        return body
    assert r.status_code == 200
    if fx.request.stream:
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert unexpected(U.stream_problems(body, include_usage=fx.request.include_usage), allow) == [], show(body)
        assert U.assemble_stream(body, r.status_code) == expected, show(body)
        return body
    obj = json.loads(body)
    assert r.headers["content-type"].startswith("application/json")
    assert unexpected(U.completion_problems(obj), allow) == [], obj
    assert U.assemble_completion(obj) == expected, obj
    return body


# --------------------------------------------------------------------------- NVIDIA NIM


def test_nim_null_fields_stream(rig) -> None:
    """Text "Tabs or spaces? Spaces — naïve café 東京 🚀", finish_reason "stop"; the first
    delta is {"role":"assistant","content":""}, no later role, no null anywhere in a delta."""
    body = check(rig, U.nim_null_fields_stream)
    assert b'"usage"' not in body and b'"matched_stop":null' not in body


def test_nim_usage_on_every_chunk(rig) -> None:
    """Text "Four tokens of text", "stop", and usage {9, 13, 4} exactly once, in a final
    `choices:[]` chunk, not on the content chunks."""
    check(rig, U.nim_usage_on_every_chunk)


def test_nim_repeated_tool_name(rig) -> None:
    """Two calls, read_file {"path": "README.md"} and read_file {"path": "docs/quirks.md"},
    each name sent once (a `+=` accumulator gets "read_file", not "read_fileread_file"),
    finish_reason "tool_calls"."""
    body = check(rig, U.nim_repeated_tool_name)
    assert body.count(b'"name":"read_file"') == 2


def test_nim_problem_json_422(rig) -> None:
    """HTTP 422 with {"error":{"message": <the problem's detail>, ...}}, not `data:{problem}`."""
    body = check(rig, U.nim_problem_json_422)
    problem = json.loads(body)
    assert {k: problem[k] for k in U.NIM_422_PROBLEM} == U.NIM_422_PROBLEM  # kept for NVIDIA's own client


def test_nim_function_strict_401(rig) -> None:
    """HTTP 400 (not 401: the key is fine) with NIM's message and its own type, param and code."""
    obj = json.loads(check(rig, U.nim_function_strict_401))
    assert obj == json.loads(U.nim_function_strict_401.reply.body)


def test_nim_resource_exhausted(rig) -> None:
    """HTTP 429 (not 500): the worker cap is a rate limit; type "requests"."""
    assert json.loads(check(rig, U.nim_resource_exhausted))["error"]["type"] == "requests"


def test_nim_function_not_found_404(rig) -> None:
    """HTTP 404 with code "model_not_found", the problem's members beside `error`."""
    obj = json.loads(check(rig, U.nim_function_not_found_404))
    assert obj["error"]["code"] == "model_not_found"
    assert obj["status"] == 404 and obj["title"] == "Not Found"


def test_nim_function_gone_410(rig) -> None:
    """HTTP 404 model_not_found for NIM's 410; the problem still says 410."""
    obj = json.loads(check(rig, U.nim_function_gone_410))
    assert obj["error"]["code"] == "model_not_found" and obj["status"] == 410


def test_nim_degraded_function(rig) -> None:
    """HTTP 503 server_error: the function is degraded, the request is fine."""
    assert json.loads(check(rig, U.nim_degraded_function))["error"]["type"] == "server_error"


def test_nim_rate_limit_429(rig) -> None:
    """HTTP 429 with message "Too Many Requests", status and title kept at the top level."""
    obj = json.loads(check(rig, U.nim_rate_limit_429))
    assert {k: obj[k] for k in U.NIM_RATE_LIMIT_PROBLEM} == U.NIM_RATE_LIMIT_PROBLEM


def test_nim_flat_error(rig) -> None:
    """HTTP 400 wrapped in `error`, NIM's type and code kept."""
    assert json.loads(check(rig, U.nim_flat_error))["error"]["type"] == "Bad Request"


def test_nim_error_string(rig) -> None:
    """HTTP 400 with the string as `error.message`."""
    check(rig, U.nim_error_string)


def test_nim_penalties_422(rig) -> None:
    """HTTP 422 with both lines as `error.message` (with the generic profile nothing is learned)."""
    check(rig, U.nim_penalties_422)


def test_nim_backend_error_leak(rig) -> None:
    """HTTP 400 with the upstream's OpenAI-shaped error exactly as it was sent."""
    body = check(rig, U.nim_backend_error_leak)
    assert body == U.nim_backend_error_leak.reply.body


def test_nim_stream_options_without_stream(rig) -> None:
    """The upstream never sees `stream_options` on a non-stream request; the client gets
    "Hi! How can I help?", "stop" and the usage, with no null in the message."""
    check(rig, U.nim_stream_options_without_stream)


def test_nim_think_tags_in_content(rig) -> None:
    """Reasoning "\\nOkay, the user says hi. I should greet back.\\n" as reasoning_content,
    text "\\n\\nHello! How can I help you today?", no tag left, no chunk holding only a tag."""
    body = check(rig, U.nim_think_tags_in_content)
    assert b"think>" not in body and b"<th" not in body


def test_nim_think_tags_in_content_nonstream(rig) -> None:
    """The same split in a whole reply: message.reasoning_content and content."""
    check(rig, U.nim_think_tags_in_content_nonstream)


# --------------------------------------------------------------------------- TGI


def test_tgi_axum_stream(rig) -> None:
    """Text "The sky is blue.", finish_reason "stop" (not "eos_token"), a made-up non-empty
    id on every chunk, role only on the first, `data: ` with a space; keep-alives may stay."""
    body = check(rig, U.tgi_axum_stream)
    assert b'"id":""' not in body and b"data:{" not in body


def test_tgi_tool_calls_object_stream(rig) -> None:
    """One call get_weather {"city":"Paris"}, `tool_calls` as a list, a made-up call id
    sent once (TGI's `"id":""` on every later delta is not passed on), finish_reason
    "tool_calls" (TGI said "stop")."""
    body = check(rig, U.tgi_tool_calls_object_stream)
    assert b'"id":""' not in body


def test_tgi_arguments_object_nonstream(rig) -> None:
    """get_weather with arguments as the JSON string '{"city":"Paris"}', a non-empty
    completion id and call id, finish_reason "tool_calls"."""
    check(rig, U.tgi_arguments_object_nonstream)


def test_tgi_error_string_midstream(rig) -> None:
    """Text "Once upon", then `data: {"error":{"message": <TGI's string>, ...}}` and
    `data: [DONE]`; no finish chunk is invented."""
    body = check(rig, U.tgi_error_string_midstream)
    assert b'"finish_reason":"' not in body


def test_tgi_error_object_midstream(rig) -> None:
    """Text "Once", then TGI's error as OpenAI's (`type`, `param` and `code` added) and the
    `data: [DONE]` TGI never sent."""
    check(rig, U.tgi_error_object_midstream)


# --------------------------------------------------------------------------- vLLM


def test_vllm_error_not_wrapped(rig) -> None:
    """HTTP 400 with the message wrapped as {"error":{"message":...}}."""
    check(rig, U.vllm_error_not_wrapped)


def test_vllm_empty_first_tool_name(rig) -> None:
    """One call get_weather {"city": "Paris"}, "tool_calls". Known bug: the first delta
    carries name "" and the name follows in a later delta (see the known-bug test)."""
    check(rig, U.vllm_empty_first_tool_name, allow=("tool_name",))


def test_vllm_gpt_oss_reasoning(rig) -> None:
    """Reasoning "The user greets; greet back." in `delta.reasoning`, passed through as sent
    (not renamed), text "Hello again!", "stop"."""
    body = check(rig, U.vllm_gpt_oss_reasoning)
    assert b'"reasoning":"The user"' in body


# --------------------------------------------------------------------------- Ollama


def test_ollama_tool_calls_without_index(rig) -> None:
    """Two calls at indexes 0 and 1, get_weather {"city":"Paris"} and get_time
    {"tz":"Europe/Paris"}, finish_reason "tool_calls" (Ollama said "stop")."""
    check(rig, U.ollama_tool_calls_without_index)


def test_ollama_parallel_calls_index_0(rig) -> None:
    """Two separate file_write calls at indexes 0 and 1 with their own arguments, not
    one call with both argument strings concatenated."""
    check(rig, U.ollama_parallel_calls_index_0)


def test_ollama_old_empty_finish_reason(rig) -> None:
    """Text "Hi! Hello there.", finish_reason null on every chunk but the last ("stop"),
    never ""."""
    body = check(rig, U.ollama_old_empty_finish_reason)
    assert b'"finish_reason":""' not in body


# --------------------------------------------------------------------------- LM Studio


def test_lmstudio_later_tool_names_empty(rig) -> None:
    """count_letters {"word":"strawberry","letter":"r"}: the name once, never "" later."""
    body = check(rig, U.lmstudio_later_tool_names_empty)
    assert b'"name":""' not in body


# --------------------------------------------------------------------------- llama.cpp


def test_llamacpp_error_line_http_200(rig) -> None:
    """HTTP 200, `data: {"error":{"message":"the request exceeds ...",...}}` then
    `data: [DONE]`: an error clients raise, not an `error:` line they ignore."""
    body = check(rig, U.llamacpp_error_line_http_200)
    assert not body.startswith(b"error:")


def test_llamacpp_usage_chunk_unasked(rig) -> None:
    """Text "Hello from llama.cpp", "stop", and no `choices:[]` chunk (the client did not
    ask for usage); the empty model is filled in."""
    body = check(rig, U.llamacpp_usage_chunk_unasked)
    assert b'"choices":[]' not in body


def test_llamacpp_usage_chunk_asked(rig) -> None:
    """Same text, and the usage {4, 12, 16} once, in the last chunk before [DONE]."""
    check(rig, U.llamacpp_usage_chunk_asked)


# --------------------------------------------------------------------------- exo


def test_exo_stream_as_json(rig) -> None:
    """Served as text/event-stream; text "Hi there!", "stop", `chat.completion.chunk`
    objects with a `delta` and no `message` beside it (openai-node's stream helper would
    overwrite its text with each chunk's message), and a `data: [DONE]` exo never sent."""
    body = check(rig, U.exo_stream_as_json)
    assert b'"message"' not in body


def test_exo_models_bare_list(rig) -> None:
    """{"object":"list","data":[...]} with both models, each with id, object "model",
    an integer created and owned_by."""
    check(rig, U.exo_models_bare_list)


# --------------------------------------------------------------------------- DeepSeek, DashScope


def test_deepseek_reasoning_null_content(rig) -> None:
    """Reasoning "Hmm, the user says hi." (reasoning_content, passed through), text
    "Hey! 👋", "stop"; content is never null, so `+=` never sees "None"/"null"."""
    check(rig, U.deepseek_reasoning_null_content)


def test_deepseek_blank_lines_nonstream(rig) -> None:
    """The completion as bare JSON, starting with `{` (no blank lines before it, which
    hand-rolled parsers choke on): "Hello! How can I help you today?", "stop", usage {9, 9, 18}."""
    body = check(rig, U.deepseek_blank_lines_nonstream)
    assert body.startswith(b"{")


def test_thinking_mode_history_error(rig) -> None:
    """HTTP 400, message "Param Incorrect", a non-empty `type` (the upstream sent "")."""
    body = check(rig, U.thinking_mode_history_error)
    assert json.loads(body)["error"]["type"]


def test_dashscope_reasoning_no_space(rig) -> None:
    """Reasoning "Okay, a greeting", text "Hello!", and a finish_reason "stop" chunk added
    before [DONE] (DashScope never sent one)."""
    check(rig, U.dashscope_reasoning_no_space)


# --------------------------------------------------------------------------- Gemini


def test_gemini_text_no_id(rig) -> None:
    """Text "Why hello there.", "stop", one made-up id on every chunk."""
    check(rig, U.gemini_text_no_id)


def test_gemini_tool_calls_no_index_no_id(rig) -> None:
    """get_weather {"city":"Paris"} at index 0 and get_time {"tz":"Europe/Paris"} at 1,
    each with a made-up call id, finish_reason "tool_calls" (Gemini said "stop")."""
    check(rig, U.gemini_tool_calls_no_index_no_id)


def test_gemini_error_array(rig) -> None:
    """HTTP 400 with {"error":{"message":"Invalid JSON payload received. ...",...}},
    an object, not a one-element array."""
    check(rig, U.gemini_error_array)


# --------------------------------------------------------------------------- Groq, Azure


def test_groq_x_groq_usage(rig) -> None:
    """Text "Fast inference.", "stop", and Groq's usage as a top-level `usage` in a final
    `choices:[]` chunk."""
    check(rig, U.groq_x_groq_usage)


def test_azure_prompt_filter_chunk(rig) -> None:
    """Text "Filtered and fine.", "stop"; no `choices:[]` chunk; the annotation chunk has a
    `delta`, and the same id and `created` as the others (Azure gave it "" and 0)."""
    body = check(rig, U.azure_prompt_filter_chunk)
    assert b'"choices":[]' not in body and b'"created":0' not in body


# --------------------------------------------------------------------------- Misc


def test_misc_empty_role_empty_finish_no_object(rig) -> None:
    """Text "Ni hao", role "assistant" (not ""), finish_reason null then "stop" (never ""),
    `object` on every chunk."""
    check(rig, U.misc_empty_role_empty_finish_no_object)


def test_fireworks_arguments_null(rig) -> None:
    """get_weather {"city": "Paris"}; the first delta's arguments are "" (not null)."""
    check(rig, U.fireworks_arguments_null)


# --------------------------------------------------------------------------- coverage


def test_every_fixture_has_a_test() -> None:
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert set(U.FIXTURES) <= tested, sorted(set(U.FIXTURES) - tested)


# --------------------------------------------------------------------------- found by these fixtures, since fixed


def test_vllm_empty_first_tool_name_sent_once(rig) -> None:
    """OpenAI's first delta of a call carries its real name, and no later delta names it."""
    _, body = fetch(rig, U.vllm_empty_first_tool_name)
    assert [p for p in U.stream_problems(body) if p.startswith("tool_name")] == []
