"""The bridge's stream: a NIM chat stream through every chat repair, out as Responses events."""

import itertools
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.chat.options import Options
from normalize.endpoints.chat.stream import ChatStream
from normalize.endpoints.responses.shapes import Shell
from normalize.endpoints.responses.sink import ResponsesSink
from normalize.endpoints.responses.tools import ToolMap, chat_tools
from normalize.repairs import Repair
from tests.responses_stream import assemble, events, nim_stream, usage
from tests.upstreams import DONE, NIM_422_PROBLEM, compact, nim_chunk, sse

PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+Hello, \"world\" — 東京 🚀\n*** End Patch\n"
TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
    {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
    {"type": "namespace", "name": "multi_agent_v1", "description": "agents", "tools": [{"type": "function", "name": "close_agent"}]},
]


def tool_map() -> ToolMap:
    return chat_tools(TOOLS, repairs=__import__("collections").Counter(), label="t")[1]


def run(pieces, *, fast=True, tools=None, request=None, on_end=None, input_tokens=0):
    ids = itertools.count()
    request = request or {"model": "gpt-5.5", "store": False}
    shell = Shell(request, "gpt-5.5", make_id=lambda p: f"{p}_{next(ids)}", now=lambda: 1700000000, input_tokens=input_tokens)
    sink = ResponsesSink(shell, tools or tool_map(), on_end=on_end)
    options = Options(include_usage=True, fast_path=fast, make_id=lambda: "chatcmpl-x", make_call_id=lambda: "call_x", now=lambda: 1)
    stream = ChatStream(options, sink)
    out = [stream.feed(piece) for piece in pieces]
    out.append(stream.close())
    return b"".join(out), stream, sink


TEXT = ["Tabs", " or", " spaces", "? ", "Spaces — ", "naïve café 東京 🚀", '"quoted"\n', "Tabs"]


def test_nim_text_stream():
    body, stream, _ = run(nim_stream([("content", t) for t in TEXT]))
    types = [e["type"] for e in events(body)]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(TEXT),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    got = assemble(body)
    assert got.text == "".join(TEXT)
    assert got.items == [
        {
            "id": "msg_1",
            "type": "message",
            "status": "completed",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "".join(TEXT)}],
            "role": "assistant",
        }
    ]
    assert got.response["status"] == "completed"
    assert got.response["usage"] == {
        "input_tokens": 9,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": len(TEXT),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 9 + len(TEXT),
    }
    assert b"[DONE]" not in body
    assert body.count(b"\n\n") == len(types)  # every event ends with its blank line (Anionex PR #5)


def test_text_delta_event_exactly():
    body, _, _ = run(nim_stream([("content", "Hi")], usage_every_chunk=False))
    delta = body.split(b"\n\n")[4]
    assert delta == (
        b"event: response.output_text.delta\n"
        b'data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,'
        b'"content_index":0,"delta":"Hi","logprobs":[]}'
    )


def test_fast_path_gives_the_same_bytes_as_the_rules():
    for steps in ([("content", t) for t in TEXT * 3], [("reasoning", t) for t in TEXT * 3] + [("content", t) for t in TEXT * 3]):
        pieces = nim_stream(steps, usage_every_chunk=False)
        fast, stream, _ = run(pieces)
        slow, _, _ = run(pieces, fast=False)
        assert fast == slow
        assert stream.fast_path_uses > 0


def test_reasoning_items_survive_the_fast_path():
    # LiteLLM dropped reasoning items on its fast path (litellm#38907).
    body, stream, _ = run(nim_stream([("reasoning", t) for t in TEXT * 2] + [("content", "Answer.")], usage_every_chunk=False))
    got = assemble(body)
    assert stream.fast_path_uses > 0
    assert got.reasoning == "".join(TEXT * 2)
    assert got.text == "Answer."
    assert [item["type"] for item in got.items] == ["reasoning", "message"]
    assert got.items[0]["summary"] == [{"type": "summary_text", "text": "".join(TEXT * 2)}]
    kinds = [e["type"] for e in events(body)]
    assert "response.reasoning_summary_part.added" in kinds and "response.reasoning_summary_text.delta" in kinds


def test_tool_call_is_a_function_call_item():
    body, _, _ = run(
        nim_stream(
            [("content", "Let me look."), ("call", 0, "call_a1", "exec_command", ""), ("call", 0, None, None, '{"cmd":'), ("call", 0, None, None, ' "ls"}')],
            finish="tool_calls",
        )
    )
    got = assemble(body)
    assert got.text == "Let me look."
    assert got.calls == [("function_call", "exec_command", '{"cmd": "ls"}')]
    call = got.items[1]
    assert call == {"id": "fc_2", "type": "function_call", "status": "completed", "arguments": '{"cmd": "ls"}', "call_id": "call_a1", "name": "exec_command"}
    assert got.terminal == "response.completed"
    (done,) = [e for e in events(body) if e["type"] == "response.function_call_arguments.done"]
    assert done["name"] == "exec_command"  # OpenAI's event names the function


def test_tool_arguments_missing():
    # A call with no argument deltas: "{}", as the whole-reply path (and OpenAI) say it.
    body, _, sink = run(nim_stream([("call", 0, "call_a", "exec_command", "")], finish="tool_calls"))
    got = assemble(body)
    assert got.items[0]["arguments"] == "{}"
    assert sink.repairs[Repair.tool_arguments_missing] == 1


def test_arguments_sent_in_one_delta_reach_done():
    # LiteLLM ended with arguments '{}' when they came whole rather than in deltas (litellm#27144).
    body, _, _ = run(nim_stream([("call", 0, "call_a1", "exec_command", '{"cmd": "echo hi"}')], finish="tool_calls"))
    assert assemble(body).calls == [("function_call", "exec_command", '{"cmd": "echo hi"}')]


def test_custom_tool_unsupported_call_comes_back_as_custom_tool_call():
    # A bridge answering with function_call breaks Codex: "tool apply_patch invoked with
    # incompatible payload" (antirez/ds4#745).
    arguments = json.dumps({"input": PATCH}, ensure_ascii=False)
    steps = [("call", 0, "call_p1", "apply_patch", "")] + [("call", 0, None, None, arguments[i : i + 7]) for i in range(0, len(arguments), 7)]
    body, _, _ = run(nim_stream(steps, finish="tool_calls"))
    got = assemble(body)
    assert got.calls == [("custom_tool_call", "apply_patch", PATCH)]
    assert got.items[0] == {"id": "ctc_1", "type": "custom_tool_call", "status": "completed", "call_id": "call_p1", "input": PATCH, "name": "apply_patch"}
    kinds = [e["type"] for e in events(body)]
    assert kinds.count("response.custom_tool_call_input.delta") > 5  # streamed as the model wrote it
    assert "response.function_call_arguments.delta" not in kinds


def test_custom_tool_input_written_as_plain_text_is_the_input():
    body, _, _ = run(nim_stream([("call", 0, "call_p1", "apply_patch", PATCH)], finish="tool_calls"))
    assert assemble(body).calls == [("custom_tool_call", "apply_patch", PATCH)]


def test_namespace_tool_unsupported_call_names_its_namespace():
    body, _, _ = run(nim_stream([("call", 0, "call_n1", "multi_agent_v1__close_agent", '{"target": "a"}')], finish="tool_calls"))
    item = assemble(body).items[0]
    assert (item["name"], item["namespace"], item["arguments"]) == ("close_agent", "multi_agent_v1", '{"target": "a"}')


def test_parallel_tool_calls_each_an_item():
    steps = [
        ("call", 0, "call_a", "exec_command", '{"cmd": "ls"}'),
        ("call", 1, "call_b", "exec_command", '{"cmd": "pwd"}'),
    ]
    got = assemble(run(nim_stream(steps, finish="tool_calls"))[0])
    assert [(i["call_id"], i["arguments"]) for i in got.items] == [("call_a", '{"cmd": "ls"}'), ("call_b", '{"cmd": "pwd"}')]


def test_text_after_tool_calls_closes_them_first():
    # Items finish in output_index order: calls that text follows are done before it starts.
    steps = [("call", 0, "call_a", "exec_command", '{"cmd":"ls"}'), ("call", 1, "call_b", "exec_command", "{}"), ("content", "Done.")]
    body, _, _ = run(nim_stream(steps))
    kinds = [(e["type"], e.get("output_index")) for e in events(body) if e["type"].startswith("response.output_item")]
    assert kinds == [
        ("response.output_item.added", 0),
        ("response.output_item.added", 1),
        ("response.output_item.done", 0),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.output_item.done", 2),
    ]
    got = assemble(body)
    assert got.text == "Done." and [c[2] for c in got.calls] == ['{"cmd":"ls"}', "{}"]


def test_tool_call_after_text_that_followed_it(caplog):
    # Its item is done; what came cannot be put in order: failed, not a call cut short.
    steps = [("call", 0, "call_a", "exec_command", '{"cmd":'), ("content", "Hmm."), ("call", 0, None, None, '"ls"}')]
    with caplog.at_level(logging.WARNING):
        body, _, sink = run(nim_stream(steps))
    got = assemble(body)
    assert got.terminal == "response.failed" and "tool call" in got.error["message"]
    assert sink.repairs[Repair.stream_not_translatable] == 1


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_finish_length_is_incomplete(finish, reason):
    got = assemble(run(nim_stream([("content", "cut sh")], finish=finish))[0])
    assert got.terminal == "response.incomplete"
    assert got.response["status"] == "incomplete"
    assert got.response["incomplete_details"] == {"reason": reason}
    assert got.items[0]["status"] == "incomplete"


def test_error_inside_stream_is_response_failed(caplog):
    error = sse({"error": {"message": "Worker local total request limit reached (32/32)", "type": "requests", "code": 429}})
    with caplog.at_level(logging.WARNING):
        got = assemble(run([*nim_stream([("content", "Hel")], finish=None, done=False), error, *nim_stream([("content", "lo")])])[0])
    assert got.terminal == "response.failed"
    assert got.error == {"code": "rate_limit_exceeded", "message": "Worker local total request limit reached (32/32)"}
    assert got.response["status"] == "failed"


@pytest.mark.parametrize(
    ("event", "code"),
    [
        # vLLM's wording: Codex compacts the conversation on context_length_exceeded.
        (b'data: {"error":{"message":"This model\'s maximum context length is 8192 tokens. However, you requested 9000 tokens (8000 in the messages, 1000 in the completion).","type":"BadRequestError","code":400}}\n\n', "context_length_exceeded"),
        # llama.cpp's, on an error: line at HTTP 200
        (b'error: {"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}\n\n', "context_length_exceeded"),
        (b'data: {"error":{"message":"slow down","type":"rate_limit_error"}}\n\n', "rate_limit_exceeded"),
        (b'data: {"error":{"message":"busy","code":"503"}}\n\n', "server_error"),
        (b'data: {"error":{"message":"no credit","type":"insufficient_quota","code":"insufficient_quota"}}\n\n', "insufficient_quota"),
    ],
)
def test_response_failed_code(event, code):
    got = assemble(run([*nim_stream([("content", "Hel")], finish=None, done=False), event])[0])
    assert got.terminal == "response.failed" and got.error["code"] == code


def test_problem_json_before_any_chunk_is_response_failed():
    got = assemble(run([b"data:" + compact(NIM_422_PROBLEM) + b"\n\n"])[0])
    assert got.terminal == "response.failed"
    assert got.error["message"] == NIM_422_PROBLEM["detail"]


def test_cut_stream_is_never_completed():
    pieces = nim_stream([("content", "Hello"), ("content", " world")], finish=None, done=False)
    body, _, _ = run([*pieces, pieces[-1][:30]])
    got = assemble(body)
    assert got.terminal == "response.failed"
    assert got.text == "Hello world"
    assert "broke off" in got.error["message"]


def test_unreadable_rest_is_response_failed():
    stream = ChatStream(Options(include_usage=True), ResponsesSink(Shell({}, "m")))
    body = b"".join(stream.feed(p) for p in nim_stream([("content", "Hi")], finish=None, done=False))
    body += stream.fail("gzip data is corrupt") + stream.feed(b"more") + stream.close()
    got = assemble(body)
    assert got.terminal == "response.failed"
    assert "gzip data is corrupt" in got.error["message"]


def test_oversized_event_is_response_failed(caplog):
    options = Options(include_usage=True, max_event_bytes=1000)
    stream = ChatStream(options, ResponsesSink(Shell({}, "m")))
    big = sse(nim_chunk({"content": "x" * 5000}))
    with caplog.at_level(logging.WARNING):
        pieces = [*nim_stream([("content", "a")], finish=None, done=False), *(big[i : i + 600] for i in range(0, len(big), 600)), DONE]
        body = b"".join(stream.feed(p) for p in pieces) + stream.close()
    assert assemble(body).terminal == "response.failed"


@pytest.mark.parametrize(
    "body", [b"", b"   \n", b": keep-alive\n\n", DONE, b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":1}}\n\n' + DONE]
)
def test_stream_without_chunks(body):
    # A stream that carried no chat chunk (nothing, keep-alives, only [DONE], only usage):
    # Codex takes a completed response with no output as an answer and exits 0 with none.
    body, _, sink = run([body] if body else [])
    got = assemble(body)
    assert got.terminal == "response.failed"
    assert got.error == {"code": "server_error", "message": "The upstream's stream ended without a reply."}
    assert sink.repairs[Repair.stream_without_chunks] == 1


def test_stream_with_an_empty_reply_is_completed():
    got = assemble(run(nim_stream([]))[0])
    assert got.terminal == "response.completed" and got.items == []


def test_keep_alive_comments_pass():
    pieces = nim_stream([("content", "a")])
    body, _, _ = run([pieces[0], b": keep-alive\n\n", *pieces[1:]])
    assert b": keep-alive\n\n" in body
    assert assemble(body).text == "a"


def test_keep_alive_after_the_terminal_event_is_dropped():
    # Nothing follows the terminal event, not even a comment.
    body, _, _ = run([*nim_stream([("content", "a")]), b": keep-alive\n\n"])
    assert body.endswith(b"}\n\n") and events(body)[-1]["type"] == "response.completed"


def test_usage_when_the_upstream_reports_none():
    # No usage from the upstream: counts that stand in for it, never null (Codex reads zeros).
    body, _, _ = run(nim_stream([("content", "Hel"), ("content", "lo")], usage_every_chunk=False), request={"model": "m"}, input_tokens=12)
    assert assemble(body).response["usage"] == {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 14,
    }


def test_event_not_chunk(caplog):
    pieces = nim_stream([("content", "a")])
    with caplog.at_level(logging.WARNING):
        body, _, sink = run([pieces[0], b'data: {"hello": 1}\n\n', *pieces[1:]])
    assert b"hello" not in body
    assert sink.repairs[Repair.event_not_chunk] == 1
    assert assemble(body).terminal == "response.completed"


def test_unreadable_event_fails_the_response(caplog):
    # What it said is lost: the reply is not whole, so it must not read as completed.
    pieces = nim_stream([("content", "a"), ("content", "b")])
    with caplog.at_level(logging.WARNING):
        body, _, _ = run([*pieces[:2], b'data: {"choices":[{"index":0,"delta":{"content":"\xff"}}]}\n\n', *pieces[2:]])
    got = assemble(body)
    assert got.terminal == "response.failed" and got.text == "a"
    assert got.error["message"] == "The upstream sent an event that could not be read."


def test_choice_beyond_first(caplog):
    second = nim_chunk({"content": "other"})
    second["choices"][0]["index"] = 1
    pieces = nim_stream([("content", "a")])
    with caplog.at_level(logging.WARNING):
        body, _, sink = run([pieces[0], sse(second), *pieces[1:]])
    assert assemble(body).text == "a"
    assert sink.repairs[Repair.choice_beyond_first] == 2  # its delta, and the finish the rules add for it


def test_whole_json_reply_to_a_stream_request():
    completion = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "usage": usage(2),
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}]}
    got = assemble(run([compact(completion)])[0])
    assert (got.terminal, got.text, got.response["usage"]["output_tokens"]) == ("response.completed", "Hi there", 2)


def test_completed_response_is_handed_over_to_keep():
    kept = []
    body, _, _ = run(nim_stream([("content", "Hi")]), on_end=kept.append)
    assert json.loads(kept[0]) == assemble(body).response


def test_lone_surrogate_in_text():
    body, _, _ = run([sse(nim_chunk({"role": "assistant"})), b'data: {"choices":[{"index":0,"delta":{"content":"a\\ud800b"}}]}\n\n', DONE])
    assert assemble(body).text == "a\ud800b"


# -- properties -------------------------------------------------------------------------

STEP = st.one_of(
    st.tuples(st.just("content"), st.text(min_size=1, max_size=6)),
    st.tuples(st.just("reasoning"), st.text(min_size=1, max_size=6)),
    st.tuples(st.just("call"), st.integers(0, 2), st.text(min_size=0, max_size=6)),
)


def _steps(drawn):
    """Calls open with their id and name the first time their index appears; a call's
    arguments do not go on after text that followed it (the reply would fail)."""
    seen, ended, steps = set(), set(), []
    for step in drawn:
        if step[0] == "call":
            index, piece = step[1], step[2]
            if index in ended:
                continue
            name = ["exec_command", "apply_patch", "multi_agent_v1__close_agent"][index]
            steps.append(("call", index, None if index in seen else f"call_{index}", name, piece))
            seen.add(index)
        else:
            ended |= seen
            steps.append(step)
    return steps


@st.composite
def split(draw, body):
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=12)))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)]) if body[a:b]]


@given(st.lists(STEP, min_size=1, max_size=12), st.booleans(), st.data())
def test_any_split_gives_the_same_events_and_the_upstreams_text(drawn, usage_every_chunk, data):
    steps = _steps(drawn)
    pieces = nim_stream(steps, usage_every_chunk=usage_every_chunk, finish="tool_calls")
    whole, _, _ = run([b"".join(pieces)])
    assert run(data.draw(split(b"".join(pieces))))[0] == whole
    assert run(pieces, fast=False)[0] == run(pieces)[0]
    got = assemble(whole)
    assert got.terminal == "response.completed"
    assert got.text == "".join(s[1] for s in steps if s[0] == "content")
    assert got.reasoning == "".join(s[1] for s in steps if s[0] == "reasoning")
    for index, kind, name in ((0, "function_call", "exec_command"), (1, "custom_tool_call", "apply_patch"), (2, "function_call", "close_agent")):
        arguments = "".join(s[4] for s in steps if s[0] == "call" and s[1] == index)
        if any(s[0] == "call" and s[1] == index for s in steps):
            found = [c for c in got.calls if c[1] == name]
            want = (arguments or "{}") if kind == "function_call" else _custom_input(arguments)
            assert found == [(kind, name, want)]


def _custom_input(arguments):
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    return value["input"] if isinstance(value, dict) and isinstance(value.get("input"), str) else arguments


@given(st.binary(max_size=300), st.data())
def test_any_bytes_give_one_terminal_event(garbage, data):
    pieces = nim_stream([("content", "ok")], finish=None, done=False) + [garbage]
    body = b"".join(pieces)
    out = run(data.draw(split(body)))[0]
    assemble(out)  # sequence numbers increase, exactly one terminal event, consistent items
