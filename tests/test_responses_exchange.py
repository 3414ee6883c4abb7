"""The Responses endpoints as the glue drives them: request forwarded as chat, reply answered
as a Response, the store behind previous_response_id and GET/DELETE, Cursor's agent mode."""

import json
from types import MappingProxyType

import pytest

from normalize.endpoints import route
from normalize.endpoints.base import UNCHANGED, Env, Head, Reply, Request, Shared
from normalize.endpoints.responses.exchange import RESPONSES, ResponsesExchange
from normalize.endpoints.responses.store import ResponseStore, key_scope
from normalize.profiles import PROFILES, profile_for
from normalize.repairs import Repair
from normalize.settings import Settings
from tests.responses_stream import assemble, nim_stream
from tests.upstreams import NIM_422_PROBLEM, compact

KEY = {"authorization": "Bearer nvapi-secret"}
COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "meta/llama-3.1-8b-instruct",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "tool_calls": None}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}


def env(shared=None, **settings):
    return Env(Settings(**settings), profile_for("integrate.api.nvidia.com"), shared or Shared(), "POST integrate.api.nvidia.com/v1/responses")


def open_(method, path, body=None, headers=KEY, shared=None, **settings):
    components = tuple(p for p in path.split("/") if p)
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = Request(method, path, headers=headers, body=raw)
    return route(method, components).endpoint.open(request, env(shared, **settings))


def reply_json(reply):
    assert isinstance(reply, Reply)
    return reply.status, json.loads(reply.body)


def test_request_goes_upstream_as_chat():
    exchange = open_("POST", "/v1/responses", {"model": "gpt-4o", "input": "hi", "stream": True, "store": False, "max_output_tokens": 50})
    assert isinstance(exchange, ResponsesExchange)
    assert exchange.verb == "bridged responses -> chat"
    assert exchange.forward.path == "/v1/chat/completions"
    assert json.loads(exchange.forward.body) == {
        "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50,
        "stream": True, "stream_options": {"include_usage": True},
    }


def test_strict_tools_lose_strict_for_nim():
    # NIM answers 401 "Unknown parameter: function.strict": its profile's rule applies to bridged tools.
    tools = [{"type": "function", "name": "f", "strict": True, "parameters": {"type": "object"}}]
    exchange = open_("POST", "/v1/responses", {"model": "m", "input": "hi", "tools": tools})
    assert json.loads(exchange.forward.body)["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert exchange.repairs[Repair.tool_function_key_unsupported] == 1


def test_chat_request_rules_apply_to_bridged_requests():
    body = {"model": "gpt-5.5", "input": [{"role": "developer", "content": "Rules."}, {"role": "user", "content": "hi"}], "temperature": 0.5}
    exchange = open_("POST", "/v1/responses", body, model_map=MappingProxyType({"gpt-5.5": "qwen/qwen3-coder-480b-a35b-instruct"}),
                     drop_params=("temperature",))
    sent = json.loads(exchange.forward.body)
    assert sent == {"model": "qwen/qwen3-coder-480b-a35b-instruct",
                    "messages": [{"role": "system", "content": "Rules."}, {"role": "user", "content": "hi"}]}
    assert exchange.repairs[Repair.model_alias] == exchange.repairs[Repair.developer_role_unsupported] == 1
    assert exchange.repairs[Repair.param_dropped] == 1


def test_prefix_and_query_are_kept():
    exchange = open_("POST", "/openai/v1/responses/", {"input": "x"})
    assert exchange.forward.path == "/openai/v1/chat/completions"
    request = Request("POST", "/v1/responses", "api-version=1", headers=KEY, body=b'{"input":"x"}')
    assert RESPONSES.open(request, env()).forward.path == "/v1/chat/completions?api-version=1"


def test_body_that_is_no_object_is_answered_400():
    exchange = open_("POST", "/v1/responses", b"not json")
    status, body = reply_json(exchange.answer)
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert exchange.forward is None and exchange.repairs == {"request_not_bridgeable": 1}


def test_request_body_not_read():
    """Past normalize_max_body_bytes the request cannot be bridged: the client hears why (413),
    and nothing goes upstream (a Responses body is no chat request)."""
    problem = "20000000 bytes, over normalize_max_body_bytes (16777216)"
    request = Request("POST", "/v1/responses", headers=KEY, body=None, problem=problem)
    exchange = RESPONSES.open(request, env())
    assert exchange.forward is None and exchange.repairs == {"request_not_bridgeable": 1}
    assert reply_json(exchange.answer) == (413, {"error": {
        "message": f"The request body was not read: {problem}.",
        "type": "invalid_request_error", "param": None, "code": "request_too_large"}})


def test_pass_leaves_responses_alone():
    exchange = open_("POST", "/v1/responses", {"input": "x"}, responses="pass")
    assert exchange.forward is None and exchange.answer is None
    assert open_("GET", "/v1/responses/resp_1", responses="pass").answer is None


def test_whole_reply_is_a_response_object():
    shared = Shared()
    exchange = open_("POST", "/v1/responses", {"model": "gpt-4o", "input": "hi", "instructions": "Be nice."}, shared=shared)
    status, response = reply_json(exchange.whole(Head(200, "application/json", "POST"), compact(COMPLETION)))
    assert status == 200
    assert response["object"] == "response" and response["id"].startswith("resp_") and len(response["id"]) == 53
    assert (response["status"], response["model"], response["instructions"]) == ("completed", "gpt-4o", "Be nice.")
    assert response["output"] == [{"id": response["output"][0]["id"], "type": "message", "status": "completed",
                                   "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello!"}], "role": "assistant"}]
    assert response["usage"]["input_tokens"] == 5 and response["usage"]["output_tokens"] == 2
    assert list(response)[:4] == ["id", "object", "created_at", "status"]
    assert len(shared.responses) == 1  # store defaults to true


def test_whole_reply_tool_calls_and_length():
    completion = {**COMPLETION, "choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": None, "reasoning_content": "Hmm.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "apply_patch", "arguments": '{"input": "*** Begin Patch\\n"}'}}]}}]}
    body = {"input": "x", "tools": [{"type": "custom", "name": "apply_patch"}]}
    _, response = reply_json(open_("POST", "/v1/responses", body).whole(Head(200, "application/json", "POST"), compact(completion)))
    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [item["type"] for item in response["output"]] == ["reasoning", "custom_tool_call"]
    assert response["output"][1]["input"] == "*** Begin Patch\n" and response["output"][1]["call_id"] == "call_1"


def test_whole_reply_usage_when_the_upstream_reports_none():
    completion = {key: value for key, value in COMPLETION.items() if key != "usage"}
    _, response = reply_json(open_("POST", "/v1/responses", {"input": "hi there"}).whole(Head(200, "application/json", "POST"), compact(completion)))
    assert response["usage"]["input_tokens"] > 0 and response["usage"]["output_tokens"] == 0


def test_whole_reply_tool_arguments_missing():
    # "" arguments read as "{}", as the stream gives them.
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    completion = {**COMPLETION, "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}
    exchange = open_("POST", "/v1/responses", {"input": "x"})
    _, response = reply_json(exchange.whole(Head(200, "application/json", "POST"), compact(completion)))
    assert response["output"][0]["arguments"] == "{}"
    assert exchange.repairs[Repair.tool_arguments_missing] == 1


def test_stream_sent_as_json():
    # exo labels its streams application/json: the chat core's repair and log line hold here too.
    exchange = open_("POST", "/v1/responses", {"input": "x", "stream": True})
    transducer = exchange.stream(Head(200, "application/json", "POST"))
    assert assemble(b"".join(transducer.feed(p) for p in nim_stream([("content", "hi")])) + transducer.close()).text == "hi"
    assert exchange.repairs[Repair.stream_sent_as_json] == 1


def test_body_not_bare_json():
    # DeepSeek's blank lines before a whole reply, counted as for chat clients.
    exchange = open_("POST", "/v1/responses", {"input": "x"})
    status, response = reply_json(exchange.whole(Head(200, "application/json", "POST"), b"\n\n" + compact(COMPLETION)))
    assert status == 200 and response["output"][0]["content"][0]["text"] == "Hello!"
    assert exchange.repairs[Repair.body_not_bare_json] == 1


def test_upstream_error_keeps_its_status_in_openais_envelope():
    exchange = open_("POST", "/v1/responses", {"input": "x"})
    status, body = reply_json(exchange.whole(Head(422, "application/problem+json", "POST"), b"data:" + compact(NIM_422_PROBLEM)))
    assert status == 422 and body["error"]["message"] == NIM_422_PROBLEM["detail"]
    assert exchange.repairs[Repair.nim_problem_json] == 1


def test_error_at_status_200():
    exchange = open_("POST", "/v1/responses", {"input": "x"})
    status, body = reply_json(exchange.whole(Head(200, "application/json", "POST"), b'{"error":{"message":"overloaded","code":503}}'))
    assert status == 503 and body["error"]["message"] == "overloaded"


def test_reply_that_is_no_completion_is_a_502():
    exchange = open_("POST", "/v1/responses", {"input": "x"})
    assert reply_json(exchange.whole(Head(200, "application/json", "POST"), b'{"hello": 1}'))[0] == 502


def test_streamed_reply_and_the_store():
    shared = Shared()
    first = open_("POST", "/v1/responses", {"model": "m", "input": "first", "stream": True}, shared=shared)
    transducer = first.stream(Head(200, "text/event-stream", "POST"))
    body = b"".join(transducer.feed(p) for p in nim_stream([("content", "one")])) + transducer.close()
    response = assemble(body).response
    assert len(shared.responses) == 1
    second = open_("POST", "/v1/responses", {"model": "m", "input": "second", "previous_response_id": response["id"]}, shared=shared)
    assert json.loads(second.forward.body)["messages"] == [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "one"}, {"role": "user", "content": "second"}]
    # GET and DELETE answer from the store, for the same key only
    assert reply_json(open_("GET", f"/v1/responses/{response['id']}", shared=shared).answer) == (200, response)
    status, items = reply_json(open_("GET", f"/v1/responses/{response['id']}/input_items", shared=shared).answer)
    assert items["data"] == [{"type": "message", "role": "user", "content": "first"}]
    other = {"authorization": "Bearer another-key"}
    assert reply_json(open_("GET", f"/v1/responses/{response['id']}", headers=other, shared=shared).answer)[0] == 404
    assert reply_json(open_("DELETE", f"/v1/responses/{response['id']}", shared=shared).answer) == (
        200, {"id": response["id"], "object": "response", "deleted": True})
    status, error = reply_json(open_("GET", f"/v1/responses/{response['id']}", shared=shared).answer)
    assert (status, error["error"]["message"]) == (404, f"Response with id '{response['id']}' not found.")


def test_store_false_keeps_nothing():
    shared = Shared()
    exchange = open_("POST", "/v1/responses", {"input": "x", "store": False}, shared=shared)
    exchange.whole(Head(200, "application/json", "POST"), compact(COMPLETION))
    assert len(shared.responses) == 0


def test_unknown_previous_response_is_answered_without_the_upstream():
    exchange = open_("POST", "/v1/responses", {"input": "x", "previous_response_id": "resp_nope"})
    assert exchange.forward is None
    status, body = reply_json(exchange.answer)
    assert (status, body["error"]["code"]) == (400, "previous_response_not_found")


def test_strict_dropped_for_nim_only():
    body = {"input": "x", "tools": [{"type": "function", "name": "f", "strict": True}]}
    assert "strict" not in json.loads(open_("POST", "/v1/responses", body).forward.body)["tools"][0]["function"]
    vllm = Env(Settings(), PROFILES["vllm"], Shared(), "label")
    request = Request("POST", "/v1/responses", headers=KEY, body=json.dumps(body).encode())
    assert json.loads(route("POST", ("v1", "responses")).endpoint.open(request, vllm).forward.body)["tools"][0]["function"]["strict"] is True


def test_responses_body_on_chat_path():
    body = {"model": "gpt-4o", "input": [{"role": "user", "content": "hi"}], "stream": True,
            "tools": [{"type": "function", "name": "read_file", "parameters": {"type": "object"}}], "include": [], "reasoning": {"effort": "low"}}
    exchange = open_("POST", "/v1/chat/completions", body)
    sent = json.loads(exchange.forward.body)
    assert sent == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                    "tools": [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}],
                    "reasoning_effort": "low", "stream": True}
    assert exchange.repairs[Repair.responses_body_on_chat_path] == 1
    assert exchange.forward.path is None  # answered as a chat stream, on the same path
    with_usage = open_("POST", "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}})
    assert json.loads(with_usage.forward.body)["stream_options"] == {"include_usage": True}


def test_store_is_bounded_least_recently_used_first():
    store = ResponseStore(max_bytes=3000)
    for n in range(10):
        store.put("k", {"id": f"resp_{n}", "output": []}, [{"type": "message", "id": f"msg_{n}", "role": "user", "content": "x" * 500}])
    assert store.bytes <= 3000 and store.response("k", "resp_0") is None and store.response("k", "resp_9") is not None
    assert store.item("k", "msg_9")["content"] == "x" * 500 and store.item("k", "msg_0") is None
    store.response("k", "resp_7")  # used: kept over 8
    store.put("k", {"id": "resp_10", "output": []}, [])
    assert store.response("k", "resp_7") is not None
    store.resize(0)
    assert len(store) == 0 and store.bytes == 0


def test_store_keeps_each_turn_once_in_a_chain():
    # A conversation continued by previous_response_id costs each turn's bytes once (it was
    # the whole conversation again per turn: quadratic in a long agent run).
    store = ResponseStore()
    previous = None
    for n in range(40):
        turn = [{"type": "message", "id": f"in_{n}", "role": "user", "content": "x" * 1000},
                {"type": "message", "id": f"out_{n}", "role": "assistant", "content": "y" * 1000}]
        assert store.put("k", {"id": f"resp_{n}", "output": turn[1:]}, turn, previous)
        previous = f"resp_{n}"
    assert store.bytes < 40 * 3500
    conversation = store.context("k", "resp_39")
    assert [item["id"] for item in conversation] == [f"{side}_{n}" for n in range(40) for side in ("in", "out")]
    assert store.item("k", "in_3")["content"] == "x" * 1000


def test_a_chain_with_a_hole_cannot_be_continued():
    # Never a conversation sent upstream with turns missing: OpenAI's not-found instead.
    shared = Shared()
    ids = []
    for text in ("first", "second", "third"):
        body = {"model": "m", "input": text, **({"previous_response_id": ids[-1]} if ids else {})}
        exchange = open_("POST", "/v1/responses", body, shared=shared)
        _, response = reply_json(exchange.whole(Head(200, "application/json", "POST"), compact(COMPLETION)))
        ids.append(response["id"])
    third = open_("POST", "/v1/responses", {"model": "m", "input": "fourth", "previous_response_id": ids[2]}, shared=shared)
    assert [m["content"] for m in json.loads(third.forward.body)["messages"]] == ["first", "Hello!", "second", "Hello!", "third", "Hello!", "fourth"]
    shared.responses.delete(key_scope(KEY), ids[1])
    status, error = reply_json(open_("POST", "/v1/responses", {"input": "x", "previous_response_id": ids[2]}, shared=shared).answer)
    assert (status, error["error"]["code"]) == (400, "previous_response_not_found")


def test_store_scopes_by_a_hash_of_the_key():
    scope = key_scope({"authorization": "Bearer nvapi-secret"})
    assert "nvapi-secret" not in scope and len(scope) == 32
    assert scope != key_scope({"authorization": "Bearer other"}) and key_scope({}) == ""


def test_store_bound_follows_the_option():
    # Sized once, when the option is set; a request does not resize it.
    from mitmproxy.test import taddons

    from normalize.mitm import addon

    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_responses_store_bytes=0)
        assert a.shared.responses.max_bytes == 0
        exchange = open_("POST", "/v1/responses", {"input": "x"}, shared=a.shared)
        exchange.whole(Head(200, "application/json", "POST"), compact(COMPLETION))
        assert len(a.shared.responses) == 0 and a.shared.responses.max_bytes == 0
        tctx.configure(a, normalize_responses_store_bytes=1000)
        assert a.shared.responses.max_bytes == 1000


@pytest.mark.parametrize("status", [404, 500])
def test_errors_of_get_pass_when_not_ours(status):
    exchange = open_("POST", "/v1/responses", {"input": "x"})
    assert exchange.whole(Head(status, "application/json", "POST"), b'{"error":{"message":"m","type":"t","param":null,"code":null}}') is UNCHANGED
