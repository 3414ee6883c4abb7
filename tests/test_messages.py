"""The Messages bridge's request, whole replies, errors, count_tokens and model lists.

One test per repair, named after it, plus the translation of each part of a
Messages request. `CLAUDE_CODE_REQUEST` is the shape Claude Code 2.1.328 sends
(recorded here against a local server, texts shortened).
"""

import json
import logging
from types import MappingProxyType

import pytest
from anthropic.types import Message
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints import ROUTES, route
from normalize.endpoints.base import Env, Head, Reply, Request, Shared
from normalize.endpoints.bridge.tokens import estimate_input_tokens
from normalize.endpoints.messages import COUNT_TOKENS, MESSAGES, PassedExchange
from normalize.endpoints.messages.errors import error_type
from normalize.endpoints.messages.models import anthropic_shape
from normalize.endpoints.messages.request import chat_request
from normalize.endpoints.models import MODEL, MODELS
from normalize.profiles import GENERIC, PROFILES
from normalize.settings import Settings

ENV = Env(Settings(), GENERIC, Shared(), "POST api.example.com/v1/messages")
UPSTREAM_MODEL = "qwen/qwen3-next-80b-a3b-instruct"

CLAUDE_CODE_REQUEST = {
    "model": UPSTREAM_MODEL,
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\nAttribution for git commits…\n</system-reminder>"},
                {"type": "text", "text": "say hi"},
            ],
        },
        {"role": "system", "content": [{"type": "text", "text": "You are an interactive agent…", "cache_control": {"type": "ephemeral"}}]},
    ],
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328;"},
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
    ],
    "tools": [
        {
            "name": "Bash",
            "description": "Executes a given bash command…",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
        },
        {"name": "DeferredToolPlaceholder", "description": "…", "input_schema": {"type": "object", "properties": {}}, "defer_loading": True},
    ],
    "metadata": {"user_id": '{"device_id":"a99c"}'},
    "max_tokens": 32000,
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "stream": True,
}


def request(body, path="/v1/messages", query="beta=true", headers=None):
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    headers = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219"} if headers is None else headers
    return Request("POST", path, query, headers=headers, body=raw)


def sent(exchange):
    return json.loads(exchange.forward.body)


# -- the request -------------------------------------------------------------------


def test_claude_code_request():
    exchange = MESSAGES.open(request(CLAUDE_CODE_REQUEST), ENV)
    assert sent(exchange) == {
        "model": UPSTREAM_MODEL,
        "messages": [
            {"role": "system", "content": "x-anthropic-billing-header: cc_version=2.1.328;\n\nYou are Claude Code, Anthropic's official CLI for Claude."},
            {"role": "user", "content": "<system-reminder>\nAttribution for git commits…\n</system-reminder>\n\nsay hi"},
            {"role": "system", "content": "You are an interactive agent…"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "Bash",
                    "description": "Executes a given bash command…",
                    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
                },
            },
            {"type": "function", "function": {"name": "DeferredToolPlaceholder", "description": "…", "parameters": {"type": "object", "properties": {}}}},
        ],
        "max_tokens": 32000,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert exchange.forward.path == "/v1/chat/completions"
    assert exchange.forward.set_headers == {"authorization": "Bearer sk-test"}
    assert set(exchange.forward.drop_headers) == {"x-api-key", "anthropic-version", "anthropic-beta"}
    assert exchange.repairs == {
        "thinking_param_unsupported": 1,
        "messages_field_unsupported": 3,
        "api_key_header": 1,
    }
    assert exchange.verb == "bridged messages -> chat"
    assert exchange.info.model == UPSTREAM_MODEL


def test_nothing_unknown_is_sent_upstream():
    # cc-switch #1919: bridges that add or keep fields NIM rejects (prompt_cache_key,
    # metadata, thinking) get 400 "Unsupported parameter(s)".
    body = {**CLAUDE_CODE_REQUEST, "prompt_cache_key": "k", "service_tier": "auto", "container": "c", "mcp_servers": []}
    chat = sent(MESSAGES.open(request(body), ENV))
    assert set(chat) <= {"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens", "temperature", "top_p", "top_k", "stop", "stream", "stream_options"}


def test_thinking_param_unsupported(caplog):
    # Adaptive (the model decides, as Claude Code asks) or disabled: nothing to switch.
    for thinking in ({"type": "adaptive", "display": "omitted"}, {"type": "disabled"}):
        with caplog.at_level(logging.INFO):
            exchange = MESSAGES.open(request({"model": "m", "max_tokens": 5, "messages": [], "thinking": thinking}), ENV)
        assert "thinking" not in sent(exchange) and "reasoning_effort" not in sent(exchange)
        assert exchange.repairs["thinking_param_unsupported"] == 1
        assert "not sent upstream, as chat has no place for them: thinking" in caplog.text


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (8000, "medium"), (32000, "high"), (None, "low")])
def test_thinking_as_reasoning_effort(budget, effort):
    thinking = {"type": "enabled"} | ({"budget_tokens": budget} if budget is not None else {})
    exchange = MESSAGES.open(request({"model": "m", "max_tokens": 5, "messages": [], "thinking": thinking}), ENV)
    assert sent(exchange)["reasoning_effort"] == effort and "thinking" not in sent(exchange)
    assert exchange.repairs["thinking_as_reasoning_effort"] == 1


def test_thinking_reaches_a_nim_family_as_its_own_switch():
    # GLM-5.1 on NIM switches reasoning with chat_template_kwargs (the chat rules translate).
    nim = Env(Settings(), PROFILES["nim"], Shared(), "POST integrate.api.nvidia.com/v1/messages")
    body = {"model": "z-ai/glm-5.1", "max_tokens": 5, "messages": [], "thinking": {"type": "enabled", "budget_tokens": 9000}}
    chat = sent(MESSAGES.open(request(body), nim))
    assert chat["chat_template_kwargs"] == {"enable_thinking": True, "clear_thinking": False}
    assert "reasoning_effort" not in chat and "thinking" not in chat


def test_thinking_block_in_history():
    # Signatures are Anthropic's, for Anthropic's models: never sent upstream (claude-code #10627).
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "The user greets me.", "signature": "EqQBCkYIBxgCKkA…"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy…"},
                {"type": "text", "text": "Hello!"},
            ],
        },
        {"role": "user", "content": "again"},
    ]
    bridged = chat_request({"model": "m", "messages": history})
    assert bridged.body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "again"},
    ]
    assert bridged.repairs == {"thinking_block_in_history": 2}
    assert "EqQB" not in json.dumps(bridged.body)


def test_server_tool_unsupported():
    tools = [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {"type": "custom", "name": "lookup", "input_schema": {"type": "object"}},
        {"name": "plain", "description": "d", "input_schema": {"type": "object"}},
    ]
    bridged = chat_request({"model": "m", "messages": [], "tools": tools, "tool_choice": {"type": "auto"}})
    assert [t["function"]["name"] for t in bridged.body["tools"]] == ["lookup", "plain"]
    assert bridged.repairs == {"server_tool_unsupported": 3}
    assert bridged.left_out == ["server tool web_search_20250305", "server tool bash_20250124", "server tool text_editor_20250728"]


def test_no_tool_choice_without_tools():
    bridged = chat_request({"model": "m", "messages": [], "tools": [{"type": "web_search_20250305", "name": "w"}], "tool_choice": {"type": "any"}})
    assert "tools" not in bridged.body and "tool_choice" not in bridged.body


def test_content_block_unsupported():
    content = [
        {"type": "text", "text": "Read this"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
        {"type": "search_result", "source": "s", "title": "t", "content": []},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
    ]
    bridged = chat_request({"model": "m", "messages": [{"role": "user", "content": content}]})
    assert bridged.body["messages"] == [{"role": "user", "content": "Read this\n\nplain words"}]
    assert bridged.repairs == {"content_block_unsupported": 2}


def test_messages_field_unsupported():
    bridged = chat_request({"model": "m", "messages": [], "metadata": {"user_id": "u"}, "service_tier": "auto", "output_config": {}})
    assert bridged.repairs == {"messages_field_unsupported": 3}
    assert bridged.left_out == ["metadata", "service_tier", "output_config"]


def test_api_key_header():
    exchange = MESSAGES.open(request({"model": "m", "messages": []}, headers={"x-api-key": "nvapi-1"}), ENV)
    assert exchange.forward.set_headers == {"authorization": "Bearer nvapi-1"}
    assert exchange.forward.drop_headers == ("x-api-key",)
    assert exchange.repairs["api_key_header"] == 1


def test_api_key_header_when_authorization_was_sent():
    headers = {"authorization": "Bearer nvapi-2", "x-api-key": "other"}
    exchange = MESSAGES.open(request({"model": "m", "messages": []}, headers=headers), ENV)
    assert exchange.forward.set_headers == {}
    assert exchange.forward.drop_headers == ("x-api-key",)
    assert "api_key_header" not in exchange.repairs


def test_tool_turns():
    messages = [
        {"role": "user", "content": "What is in /tmp?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls /tmp"}},
                {"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {"file_path": "/tmp/a"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a\nb", "cache_control": {"type": "ephemeral"}},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_02",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "<tool_use_error>File does not exist.</tool_use_error>"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                    ],
                },
                {"type": "text", "text": "Go on."},
            ],
        },
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_03", "name": "Bash", "input": {}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_03",
                    "content": [
                        {"type": "text", "text": "one"},
                        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "two"}},
                        {"type": "search_result", "source": "s", "title": "t", "content": []},
                    ],
                }
            ],
        },
    ]
    bridged = chat_request({"model": "m", "messages": messages})
    assert bridged.body["messages"] == [
        {"role": "user", "content": "What is in /tmp?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {"name": "Bash", "arguments": '{"command":"ls /tmp"}'}},
                {"id": "toolu_02", "type": "function", "function": {"name": "Read", "arguments": '{"file_path":"/tmp/a"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01", "content": "a\nb"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "Error: <tool_use_error>File does not exist.</tool_use_error>"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Go on."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"id": "toolu_03", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_03", "content": "one\ntwo"},
    ]
    assert bridged.repairs == {"content_block_unsupported": 1}
    assert bridged.left_out == ["search_result block in a tool result"]


def test_images():
    content = [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
        {"type": "text", "text": "Which is nicer?"},
    ]
    bridged = chat_request({"model": "m", "messages": [{"role": "user", "content": content}]})
    assert bridged.body["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "text", "text": "Which is nicer?"},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "Bash"}, {"tool_choice": {"type": "function", "function": {"name": "Bash"}}}),
        ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
        # A type that is no word (a list is not even hashable): no tool_choice, no failure.
        ({"type": []}, {}),
        ({"type": "tool", "name": ["Bash"]}, {}),
    ],
)
def test_tool_choice(choice, expected):
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    body = chat_request({"model": "m", "messages": [], "tools": tools, "tool_choice": choice}).body
    assert {k: body[k] for k in ("tool_choice", "parallel_tool_calls") if k in body} == expected


def test_sampling_and_stops():
    body = {"model": "m", "messages": [], "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"], "stream": False}
    assert chat_request(body).body == {"model": "m", "messages": [], "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "top_k": 40, "stop": ["END"]}


def test_chat_request_rules_apply_to_bridged_requests():
    settings = Settings(model_map=MappingProxyType({"claude-sonnet-4-5": UPSTREAM_MODEL}), drop_params=("top_k",))
    exchange = MESSAGES.open(request({"model": "claude-sonnet-4-5", "messages": [], "top_k": 5, "stream": True}), Env(settings, GENERIC, Shared()))
    assert sent(exchange)["model"] == UPSTREAM_MODEL
    assert "top_k" not in sent(exchange)
    assert exchange.repairs["model_alias"] == 1 and exchange.repairs["param_dropped"] == 1
    assert exchange.info.model == "claude-sonnet-4-5"  # replies name the model the client asked for
    assert exchange.include_usage


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/v1/messages", "beta=true", "/v1/chat/completions"),
        ("/v1/messages", "", "/v1/chat/completions"),
        ("/anthropic/v1/messages", "beta=true&api-version=2024-10-21", "/anthropic/v1/chat/completions?api-version=2024-10-21"),
    ],
)
def test_chat_path(path, query, expected):
    assert MESSAGES.open(request({"model": "m", "messages": []}, path, query), ENV).forward.path == expected


def test_routes():
    def endpoint(method, path):
        return route(method, tuple(p for p in path.split("/") if p)).endpoint

    assert endpoint("POST", "/v1/messages") is MESSAGES
    assert endpoint("POST", "/anthropic/v1/messages") is MESSAGES
    assert endpoint("POST", "/v1/messages/count_tokens") is COUNT_TOKENS
    assert endpoint("POST", "/v1/threads/thread_abc/messages") is not MESSAGES  # OpenAI's Assistants API
    assert endpoint("GET", "/v1/models") is MODELS
    assert endpoint("GET", "/v1/models/claude-x") is MODEL
    assert sum(r.endpoint is MESSAGES for r in ROUTES) == 1


@pytest.mark.parametrize(
    ("raw", "status", "kind"),
    [
        (b"{not json", 400, "invalid_request_error"),
        (b'{"model": "m", "messages": "hi"}', 400, "invalid_request_error"),
        (b"[1, 2]", 400, "invalid_request_error"),
    ],
)
def test_request_not_bridgeable(raw, status, kind):
    exchange = MESSAGES.open(request(raw), ENV)
    assert exchange.forward is None
    assert exchange.answer.status == status
    assert json.loads(exchange.answer.body)["error"]["type"] == kind
    assert exchange.repairs == {"request_not_bridgeable": 1}


def test_request_body_not_read():
    exchange = MESSAGES.open(Request("POST", "/v1/messages", body=None, problem="20000000 bytes, over normalize_max_body_bytes (16777216)"), ENV)
    error = json.loads(exchange.answer.body)
    assert exchange.answer.status == 413
    assert error == {"type": "error", "error": {"type": "request_too_large", "message": "The request body was not read: 20000000 bytes, over normalize_max_body_bytes (16777216)."}}


def test_pass_option():
    env = Env(Settings(messages="pass"), GENERIC, Shared())
    for endpoint in (MESSAGES, COUNT_TOKENS):
        exchange = endpoint.open(request({"model": "m", "messages": []}), env)
        assert isinstance(exchange, PassedExchange)
        assert exchange.forward is None and exchange.answer is None
        assert exchange.whole(Head(404), b"nope") is None


# -- count_tokens ----------------------------------------------------------------------


def test_count_tokens_unsupported():
    # envoyproxy/ai-gateway #1360: /v1/messages/count_tokens?beta=true unanswered.
    exchange = COUNT_TOKENS.open(request(CLAUDE_CODE_REQUEST, path="/v1/messages/count_tokens"), ENV)
    assert exchange.forward is None
    assert exchange.answer.status == 200
    assert json.loads(exchange.answer.body) == {"input_tokens": estimate_input_tokens(CLAUDE_CODE_REQUEST)}
    assert exchange.repairs == {"count_tokens_unsupported": 1}


def test_token_estimate():
    body = {
        "system": "a" * 40,  # 40 bytes
        "messages": [
            {"role": "user", "content": "東京" * 10},  # 60 bytes
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"c": "ls"}}]},  # 4 + 10
            {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x" * 9999}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "x" * 400, "signature": "s" * 400}]},
        ],
    }
    assert estimate_input_tokens(body) == 4 * 3 + 1600 + -(-(40 + 60 + 4 + 10) // 4)
    assert estimate_input_tokens({"messages": [], "tools": [{"name": "f"}]}) == 3  # '{"name":"f"}' is 12 bytes
    assert estimate_input_tokens("nonsense") == 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["type", "text", "input", "content", "name", "source"]), inner, max_size=4),
    max_leaves=30,
)


@given(JSON)
def test_token_estimate_takes_anything(body):
    assert estimate_input_tokens(body) >= 0
    assert estimate_input_tokens({"messages": [{"role": "user", "content": body}], "system": body}) >= 3


@given(JSON, JSON, JSON, JSON)
def test_any_request_translates_without_failing(messages, system, tools, choice):
    body = {"model": "m", "messages": messages if isinstance(messages, list) else [messages], "system": system, "tools": tools, "tool_choice": choice}
    exchange = MESSAGES.open(request(body), ENV)
    chat = sent(exchange)
    assert chat["model"] == "m" and isinstance(chat["messages"], list)
    assert all(isinstance(m, dict) and isinstance(m["role"], str) and "content" in m for m in chat["messages"])


def test_token_estimate_of_deep_nesting():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert estimate_input_tokens({"messages": [{"role": "user", "content": deep}]}) == 3


# -- whole replies ------------------------------------------------------------------------


def opened(body=None):
    return MESSAGES.open(request(body or {"model": "claude-x", "messages": [], "stop_sequences": ["END"]}), ENV)


NIM_COMPLETION = {
    "id": "chatcmpl-7d1b",
    "object": "chat.completion",
    "created": 1754000000,
    "model": UPSTREAM_MODEL,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "The user wants files.",
                "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
            "matched_stop": None,
        }
    ],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150, "prompt_tokens_details": None},
}


def test_whole_reply_is_a_message():
    exchange = opened()
    reply = exchange.whole(Head(200, "application/json", "POST"), json.dumps(NIM_COMPLETION).encode())
    message = json.loads(reply.body)
    assert message == {
        "id": "msg_7d1b",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "The user wants files.", "signature": ""},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_9", "name": "Bash", "input": {"command": "ls"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 120, "output_tokens": 30},
    }
    Message.model_validate(message)  # anthropic-python's own type, strictly


def test_tool_arguments_not_json():
    completion = json.loads(json.dumps(NIM_COMPLETION))
    completion["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"command": "ls'
    exchange = opened()
    message = json.loads(exchange.whole(Head(200, "application/json", "POST"), json.dumps(completion).encode()).body)
    assert message["content"][2]["input"] == {}
    assert exchange.repairs["tool_arguments_not_json"] == 1


@given(JSON, JSON, JSON)
def test_any_whole_reply_translates_without_failing(choices, usage, message):
    completion = {"id": "c", "choices": choices if isinstance(choices, list) else [{"index": 0, "message": message, "finish_reason": choices}], "usage": usage}
    reply = opened().whole(Head(200, "application/json", "POST"), json.dumps(completion).encode())
    assert isinstance(reply, Reply)
    if reply.status == 502:  # no choice to translate: an error, not an empty answer
        assert json.loads(reply.body)["error"]["type"] == "api_error"
    else:
        Message.model_validate(json.loads(reply.body))


def test_whole_reply_stop_sequence():
    completion = json.loads(json.dumps(NIM_COMPLETION))
    completion["choices"][0].update(finish_reason="stop", matched_stop="END")
    completion["choices"][0]["message"]["tool_calls"] = None
    message = json.loads(opened().whole(Head(200, "application/json", "POST"), json.dumps(completion).encode()).body)
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")


def test_choices_missing_or_object():
    # A whole reply whose choices is one object: the chat core makes it a list, and the
    # bridge translates it (not a 502).
    completion = {**NIM_COMPLETION, "choices": NIM_COMPLETION["choices"][0]}
    exchange = opened()
    reply = exchange.whole(Head(200, "application/json", "POST"), json.dumps(completion).encode())
    assert reply.status == 200 and json.loads(reply.body)["content"][1] == {"type": "text", "text": "Checking."}
    assert exchange.repairs["choices_missing_or_object"] == 1


def test_whole_reply_that_is_no_completion():
    reply = opened().whole(Head(200, "application/json", "POST"), b'{"hello": "world"}')
    assert reply.status == 502
    assert json.loads(reply.body)["error"]["type"] == "api_error"


def test_error_sent_with_status_200():
    reply = opened().whole(Head(200, "application/json", "POST"), b'{"error": {"message": "quota", "type": "insufficient_quota", "code": 429}}')
    assert (reply.status, json.loads(reply.body)) == (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "quota"}})


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "content_type", "kind", "message"),
    [
        (429, b'{"status":429,"title":"Too Many Requests"}', "application/problem+json", "rate_limit_error", "Too Many Requests"),
        (
            422,
            b'data:{"type":"urn:nvcf-worker-service:problem-details:unprocessable-entity","title":"Unprocessable Entity","status":422,"detail":"Inference error"}',
            "application/json",
            "invalid_request_error",
            "Inference error",
        ),
        (401, b'{"error":{"message":"Invalid API key","type":"invalid_request_error","param":null,"code":null}}', "application/json", "authentication_error", "Invalid API key"),
        (404, b'{"status":404,"title":"Not Found","detail":"Function \'23d4\': Not found for account \'x\'"}', "application/json", "not_found_error", "Function '23d4': Not found for account 'x'"),
        (400, b'{"message":"Validation: Unsupported parameter(s): reasoning_budget","type":"Bad Request","code":400}', "application/json", "invalid_request_error", "Validation: Unsupported parameter(s): reasoning_budget"),
        (500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html", "api_error", "500 Internal Server Error"),
        (503, b"", "", "overloaded_error", "Service Unavailable"),
        (529, b'{"error":"overloaded"}', "application/json", "overloaded_error", "overloaded"),
    ],
)
def test_error_not_anthropic(status, body, content_type, kind, message):
    exchange = opened()
    reply = exchange.whole(Head(status, content_type, "POST"), body)
    assert reply.status == status
    assert json.loads(reply.body) == {"type": "error", "error": {"type": kind, "message": message}}
    assert exchange.repairs["error_not_anthropic"] == 1


def test_validation_error_as_401():
    # NIM answers a request it failed to validate with 401 (charmbracelet/crush #2472): the
    # chat core's status fix holds for the bridge, so Claude Code is not told its key is bad.
    body = b'{"error":{"message":"Failed to validate model spec: Unknown parameter: function.strict","type":"invalid_request_error","param":"function.strict","code":"invalid_value"}}'
    exchange = opened()
    reply = exchange.whole(Head(401, "application/json", "POST"), body)
    assert reply.status == 400
    assert json.loads(reply.body)["error"]["type"] == "invalid_request_error"
    assert exchange.repairs["validation_error_as_401"] == 1


@pytest.mark.parametrize(
    ("status", "body", "content_type", "fixed", "kind"),
    [
        (500, b'{"error":{"message":"ResourceExhausted: worker limit","type":"server_error"}}', "application/json", 429, "rate_limit_error"),
        (404, b'{"type":"about:blank","title":"Not Found","status":404,"detail":"model gone"}', "application/problem+json", 404, "not_found_error"),
        (400, b'{"error":{"message":"DEGRADED function cannot be invoked","type":"invalid_request_error"}}', "application/json", 503, "overloaded_error"),
    ],
)
def test_nim_error_statuses_reach_anthropic_clients(status, body, content_type, fixed, kind):
    reply = opened().whole(Head(status, content_type, "POST"), body)
    assert (reply.status, json.loads(reply.body)["error"]["type"]) == (fixed, kind)


def test_param_rejected_is_learned_and_retried():
    # What a rejection teaches the chat core holds for bridged requests too: the parameter
    # is dropped from then on, and the one rejected request is retried without it.
    env = Env(Settings(), PROFILES["nim"], Shared(), "POST integrate.api.nvidia.com/v1/messages", "integrate.api.nvidia.com")
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "top_k": 3}
    exchange = MESSAGES.open(request(body), env)
    problem = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "Validation: Unsupported parameter(s): top_k"}
    reply = exchange.whole(Head(400, "application/problem+json", "POST"), json.dumps(problem).encode())
    assert reply.status == 400 and "drop `top_k`" in json.loads(reply.body)["error"]["message"]
    assert "top_k" not in json.loads(exchange.retry.body)
    assert "top_k" not in json.loads(MESSAGES.open(request(body), env).forward.body)


def test_error_types_by_status():
    assert [error_type(s) for s in (400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503, 529)] == [
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "invalid_request_error",
        "request_too_large",
        "invalid_request_error",
        "rate_limit_error",
        "api_error",
        "api_error",
        "overloaded_error",
        "overloaded_error",
    ]


def test_stream_is_only_for_successes():
    exchange = opened({"model": "m", "messages": [], "stream": True})
    assert exchange.stream(Head(429, "text/event-stream", "POST")) is None
    assert exchange.stream(Head(200, "text/event-stream", "POST")) is not None
    assert exchange.stream(Head(200, "application/json", "POST")) is not None  # asked to stream: exo-style label
    assert opened().stream(Head(200, "application/json", "POST")) is None


# -- model lists -------------------------------------------------------------------------------


def test_models_not_anthropic():
    env = Env(Settings(models=("meta/llama-3.1-8b-instruct",), model_map=MappingProxyType({"claude-sonnet-4-5": "meta/llama-3.1-8b-instruct"})), GENERIC, Shared())
    exchange = MODELS.open(Request("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"}), env)
    listed = json.loads(exchange.answer.body)
    assert listed["data"][0]["type"] == "model"
    assert [m["id"] for m in listed["data"]] == ["meta/llama-3.1-8b-instruct", "claude-sonnet-4-5"]
    assert (listed["has_more"], listed["first_id"], listed["last_id"]) == (False, "meta/llama-3.1-8b-instruct", "claude-sonnet-4-5")
    assert exchange.repairs["models_not_anthropic"] == 1


def test_models_from_the_upstream_for_an_anthropic_client():
    exchange = MODELS.open(Request("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"}), ENV)
    body = b'{"object":"list","data":[{"id":"meta/llama-3.1-8b-instruct","object":"model","created":1735689600,"owned_by":"meta"}]}'
    reply = exchange.whole(Head(200, "application/json"), body)
    assert json.loads(reply.body) == {
        "data": [{"type": "model", "id": "meta/llama-3.1-8b-instruct", "display_name": "meta/llama-3.1-8b-instruct", "created_at": "2025-01-01T00:00:00Z"}],
        "has_more": False,
        "first_id": "meta/llama-3.1-8b-instruct",
        "last_id": "meta/llama-3.1-8b-instruct",
    }
    error = exchange.whole(Head(401, "application/json"), b'{"status":401,"title":"Unauthorized"}')
    assert json.loads(error.body) == {"type": "error", "error": {"type": "authentication_error", "message": "Unauthorized"}}


def test_model_list_error_for_an_anthropic_client_has_the_status_to_act_on():
    # The same status fixes as every other error (NIM's worker cap is a rate limit).
    exchange = MODELS.open(Request("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"}), ENV)
    error = exchange.whole(Head(500, "application/json"), b'{"error":{"message":"ResourceExhausted: too many requests","type":"server_error"}}')
    assert error.status == 429 and json.loads(error.body)["error"]["type"] == "rate_limit_error"
    assert exchange.repairs["resource_exhausted_not_429"] == 1


def test_one_model_for_an_anthropic_client():
    exchange = MODEL.open(Request("GET", "/v1/models/m1", headers={"anthropic-version": "2023-06-01"}), ENV)
    reply = exchange.whole(Head(200, "application/json"), b'{"id":"m1","object":"model","created":0,"owned_by":"x"}')
    assert json.loads(reply.body) == {"type": "model", "id": "m1", "display_name": "m1", "created_at": "1970-01-01T00:00:00Z"}


def test_models_for_openai_clients_unchanged():
    exchange = MODELS.open(Request("GET", "/v1/models"), ENV)
    body = b'{"object":"list","data":[{"id":"m1","object":"model","created":1,"owned_by":"x"}]}'
    assert not isinstance(exchange.whole(Head(200, "application/json"), body), Reply)
    pass_env = Env(Settings(messages="pass"), GENERIC, Shared())
    assert not MODELS.open(Request("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"}), pass_env).anthropic


def test_anthropic_shape_of_odd_values():
    assert anthropic_shape({"data": [{"id": "a", "created": 10**20}, "junk", {"no": "id"}]}) == {
        "data": [{"type": "model", "id": "a", "display_name": "a", "created_at": "1970-01-01T00:00:00Z"}],
        "has_more": False,
        "first_id": "a",
        "last_id": "a",
    }
    assert anthropic_shape([1, 2]) is None

