"""mitmweb's views on a bridged flow: the Responses events (or Response object) the client got,
and the upstream's chat reply beside them."""

import json
import time

from hypothesis import given
from hypothesis import strategies as st

from normalize.views.assembled import assembled_view
from normalize.views.diff import before_after_view
from normalize.views.responses import is_responses, responses_view
from normalize.views.sse import sse_view
from tests.responses_stream import nim_stream
from tests.test_responses_sink import run

STEPS = [
    ("reasoning", "Hmm"),
    ("content", "Hi"),
    ("content", " there"),
    ("call", 0, "call_1", "exec_command", '{"cmd":"ls"}'),
    ("call", 1, "call_2", "apply_patch", '{"input":"*** Begin Patch\\n"}'),
]


def bridged():
    pieces = nim_stream(STEPS, finish="tool_calls")
    return b"".join(pieces), run(pieces)[0]


def test_assembled_view_of_a_responses_stream():
    _, body = bridged()
    assert is_responses(body)
    text = assembled_view(body)
    assert text.startswith("id: resp_0\nmodel: gpt-5.5\nstatus: completed\n")
    assert "item 0: reasoning rs_1\n  reasoning:\n    Hmm\n" in text
    assert "item 1: message msg_2 (completed)\n  text:\n    Hi there\n" in text
    assert "item 2: function_call fc_3 (completed) exec_command (call_id call_1)\n  arguments:\n" in text
    assert "item 3: custom_tool_call ctc_4 (completed) apply_patch (call_id call_2)\n  input:\n    *** Begin Patch\n" in text
    assert "notes" not in text


def test_assembled_view_of_a_response_object():
    response = {"id": "resp_1", "object": "response", "status": "incomplete", "model": "m", "incomplete_details": {"reason": "max_output_tokens"},
                "output": [{"id": "msg_1", "type": "message", "status": "incomplete", "role": "assistant",
                            "content": [{"type": "output_text", "text": "cut sh", "annotations": []}]}], "usage": None}
    body = json.dumps(response, indent=2).encode()
    assert is_responses(body)
    text = assembled_view(body)
    assert 'incomplete: {"reason":"max_output_tokens"}' in text and "    cut sh\n" in text


def test_failed_and_cut_streams_say_so():
    pieces = nim_stream([("content", "Hel")], finish=None, done=False)
    failed = run([*pieces, b'data: {"error":{"message":"boom","type":"server_error"}}\n\n'])[0]
    assert 'error: {"code":"server_error","message":"boom"}' in assembled_view(failed)
    _, body = bridged()
    cut_off = body[: body.index(b"event: response.completed")]
    assert "no terminal event" in assembled_view(cut_off)


def test_sse_view_shows_event_names():
    _, body = bridged()
    lines = sse_view(body).splitlines()
    assert lines[0].startswith('event: response.created | data: {"type":"response.created","sequence_number":0,')
    assert len(lines) == body.count(b"\n\n")


def test_before_after_of_a_bridged_stream():
    original, body = bridged()
    text = before_after_view(original, body)
    assert text.startswith("bridged: the upstream's chat reply was sent as a Responses reply; text, reasoning and tool calls are the same\n")
    assert "the upstream's reply, as a chat client builds it:\n  id: 8f20d6699e194a0abed38c671384d32d\n" in text
    assert "the reply sent, as a Responses client builds it:\n  id: resp_0\n" in text
    other = body.replace(b"Hi there", b"Hi thare").replace(b'"delta":" there"', b'"delta":" thare"')
    assert "are different (text; the same: reasoning, tool calls)" in before_after_view(original, other)


def test_before_after_of_a_whole_reply():
    completion = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}]}
    response = {"id": "resp_1", "object": "response", "status": "completed", "model": "m",
                "output": [{"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]}]}
    text = before_after_view(json.dumps(completion).encode(), json.dumps(response, indent=2).encode())
    assert "are the same" in text.splitlines()[0]


def test_chat_streams_are_not_taken_for_responses():
    assert not is_responses(b"".join(nim_stream([("content", "x")])))
    assert not is_responses(b'{"object":"chat.completion"}')


@given(st.binary(max_size=400), st.binary(max_size=400))
def test_views_are_total(a, b):
    for data in (a, b"event: response.created\ndata: " + a, b'{"object":"response",' + a):
        responses_view(data)
        assembled_view(data)
    before_after_view(a, b"event: response.created\ndata: " + b)


def test_views_are_linear():
    pieces = nim_stream([("content", "x")] * 20_000, usage_every_chunk=False)
    body = run(pieces)[0]
    start = time.process_time()
    responses_view(body)
    before_after_view(b"".join(pieces), body)
    assert time.process_time() - start < 10
