"""mitmweb's views on what the Messages bridge sends: the assembled message, the SSE lines, before-after."""

import json
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.chat.options import Options
from normalize.endpoints.chat.stream import ChatStream
from normalize.endpoints.messages.message import ReplyInfo
from normalize.endpoints.messages.sink import MessagesSink
from normalize.views.anthropic import anthropic_view, is_anthropic, translated_view
from normalize.views.assembled import assembled_view
from normalize.views.diff import before_after_view
from normalize.views.sse import sse_view
from tests.recorded import ALL_STREAMS, DEEPSEEK_REASONING_STREAM, NIM_STREAM, OLLAMA_TOOLS_STREAM

INFO = ReplyInfo(model="claude-x", input_tokens=12, stop_sequences=(), make_id=lambda: "chatcmpl-synth")


def bridged(body):
    stream = ChatStream(Options(include_usage=True, make_id=lambda: "chatcmpl-synth"), MessagesSink(INFO, Counter()))
    return stream.feed(body) + stream.close()


def test_assembled_view_of_thinking_and_text():
    assert assembled_view(bridged(DEEPSEEK_REASONING_STREAM)) == (
        "id: msg_8f20d6699e194a0abed38c671384d32d\n"
        "model: claude-x\n"
        "role: assistant\n"
        "stop_reason: end_turn\n"
        "block 0: thinking (no signature)\n"
        "    Okay, the user says hi — 挨拶\n"
        "block 1: text\n"
        "    Hey! 👋\n"
        "usage: input_tokens 12, output_tokens 5\n"
    )


def test_assembled_view_of_tool_calls():
    view = assembled_view(bridged(OLLAMA_TOOLS_STREAM))
    assert "stop_reason: tool_use\n" in view
    assert 'block 0: tool_use get_weather (id call_rcja46yu)\n    {\n      "city": "Paris"\n    }\n' in view
    assert "block 1: tool_use get_time (id call_x81kq2mz)\n" in view


def test_assembled_view_of_an_error_and_a_cut():
    body = bridged(NIM_STREAM[:600])
    view = assembled_view(body)
    assert view.startswith("id: msg_")
    assert "error: {\"type\":\"api_error\",\"message\":\"The upstream's reply broke off inside an event: it is incomplete.\"}\n" in view
    error_only = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    assert assembled_view(error_only) == 'error: {"type":"overloaded_error","message":"Overloaded"}\n'


def test_assembled_view_notes_what_clients_trip_on():
    body = bridged(NIM_STREAM)
    events = body.split(b"\n\n")
    without_stop = b"\n\n".join(events[:-2]) + b"\n\n"
    assert "(the stream ended without message_stop or an error)" in assembled_view(without_stop)
    stray = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":7,"delta":{"type":"text_delta","text":"x"}}\n\n'
    assert "(a delta for block 7, which was never started)" in assembled_view(events[0] + b"\n\n" + stray)
    after = body + stray
    assert "(1 event after the end, where clients stop reading)" in assembled_view(after)


def test_assembled_view_of_a_whole_message():
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    assert assembled_view(json.dumps(message, indent=2).encode()) == (
        'id: msg_1\nmodel: claude-x\nrole: assistant\nstop_reason: tool_use\nblock 0: text\n    Hi\nblock 1: tool_use f (id call_1)\n    {\n      "a": 1\n    }\n'
        "usage: input_tokens 3, output_tokens 4\n"
    )
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "Too Many Requests"}}
    assert assembled_view(json.dumps(error).encode()) == 'error: {"type":"rate_limit_error","message":"Too Many Requests"}\n'


def test_chat_bodies_are_not_anthropic():
    for body in ALL_STREAMS.values():
        assert not is_anthropic(body)
        assert is_anthropic(bridged(body))
    assert not is_anthropic(b'{"object":"chat.completion","choices":[]}')
    assert not is_anthropic(b'{"type":"message"}')  # no content list


def test_sse_view_shows_event_names():
    lines = sse_view(bridged(NIM_STREAM)).splitlines()
    assert lines[0].startswith('event: message_start | data: {"type":"message_start"')
    assert lines[-1] == 'event: message_stop | data: {"type":"message_stop"}'


def test_before_after_of_a_bridged_stream():
    body = bridged(NIM_STREAM)
    view = before_after_view(NIM_STREAM, body)
    assert view == translated_view(NIM_STREAM, body)
    assert view.startswith("The upstream's chat reply was translated into Anthropic's Messages API.\n\nWhat a chat client builds")
    assert "  choice 0\n" in view and "  block 0: text\n" in view
    assert "\nThe upstream's events:\n  data: {" in view and "\nThe events sent:\n  event: message_start | data:" in view
    # Chat on both sides: the usual event pairs.
    assert before_after_view(NIM_STREAM, NIM_STREAM).startswith("upstream ")


@given(st.binary(max_size=400))
def test_views_take_any_bytes(data):
    framed = b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n' + data
    for body in (data, framed):
        for view in (anthropic_view, assembled_view, sse_view, lambda d: before_after_view(NIM_STREAM, d), lambda d: translated_view(d, d)):
            text = view(body)
            assert isinstance(text, str) and "could not render" not in text


@given(st.lists(st.dictionaries(st.sampled_from(["type", "index", "delta", "content_block", "message", "usage", "error"]), st.recursive(st.none() | st.integers() | st.text(max_size=5) | st.booleans(), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["type", "text", "index", "input", "partial_json"]), inner, max_size=3), max_leaves=8), max_size=5), max_size=8))
def test_views_take_odd_events(objects):
    body = b'event: message_start\ndata: {"type":"message_start","message":{"id":"m"}}\n\n'
    body += b"".join(b"event: x\ndata: " + json.dumps(obj).encode() + b"\n\n" for obj in objects)
    text = assembled_view(body)
    assert "could not render" not in text
