"""The Messages bridge's stream: repaired chat chunks in, Anthropic's events out (messages/sink.py).

Every stream is also read with anthropic-python's own accumulator
(`accumulate_event`, what `messages.stream(...)` builds its message with), so
the events are held to what the SDK does with them, not only to their bytes.
"""

import dataclasses
import json
import logging
from collections import Counter

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.chat.options import Options
from normalize.endpoints.chat.stream import ChatStream
from normalize.endpoints.messages.message import ReplyInfo
from normalize.endpoints.messages.sink import MessagesSink
from tests.recorded import (
    ALL_STREAMS,
    DEEPSEEK_REASONING_STREAM,
    NIM_REPEATED_TOOL_NAME_STREAM,
    NIM_STREAM,
    NIM_STREAM_EVENTS,
    NIM_TEXT,
    NIM_TEXT_PIECES,
    OLLAMA_TOOLS_STREAM,
    REASONING_PIECES,
    VLLM_LATE_TOOL_NAME_STREAM,
    nim_chunk,
)

INFO = ReplyInfo(model="claude-sonnet-4-5", input_tokens=21, stop_sequences=("END",), make_id=lambda: "chatcmpl-synth")
OPTIONS = Options(include_usage=True, make_id=lambda: "chatcmpl-synth", make_call_id=lambda: "call_synth", now=lambda: 1700000000)
SLOW = Options(include_usage=True, make_id=OPTIONS.make_id, make_call_id=OPTIONS.make_call_id, now=OPTIONS.now, fast_path=False)


def run(pieces, options=OPTIONS, info=INFO):
    repairs: Counter = Counter()
    stream = ChatStream(options, MessagesSink(info, repairs, "test"))
    out = [stream.feed(piece) for piece in pieces]
    out.append(stream.close())
    return b"".join(out), stream, repairs


def parse(out):
    """(name, data) of every event; each must be `event: <type>` + `data: <json of that type>`."""
    events = []
    for block in out.split(b"\n\n"):
        if not block:
            continue
        if block.startswith(b":"):
            events.append((":", None))
            continue
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: "), block
        obj = json.loads(data[6:])
        assert obj["type"] == name[7:].decode()
        events.append((obj["type"], obj))
    assert out.endswith(b"\n\n") or not out
    return events


def names(out):
    return [name for name, _ in parse(out)]


def message(out):
    """The message anthropic-python's stream helper builds; an error event raises."""
    snapshot, buffers = None, {}
    for name, obj in parse(out):
        if name in (":", "ping"):
            continue
        if name == "error":
            raise RuntimeError(obj["error"]["message"])
        snapshot = accumulate_event(event=obj, current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


def check_protocol(out):
    """What every stream must be: message_start first, blocks opened once with indexes 0, 1,
    2, … and closed once, deltas only into open blocks, at most one message_stop, nothing
    after message_stop or an error."""
    events = [(n, o) for n, o in parse(out) if n != ":"]
    open_blocks: set[int] = set()
    next_index = 0
    ended = False
    for position, (name, obj) in enumerate(events):
        assert not ended, f"{name} after the end"
        if name == "error":
            ended = True
            continue
        if position == 0:
            assert name == "message_start"
            usage = obj["message"]["usage"]
            assert isinstance(usage["input_tokens"], int) and isinstance(usage["output_tokens"], int)
            continue
        assert name != "message_start"
        if name == "content_block_start":
            assert obj["index"] == next_index
            open_blocks.add(next_index)
            next_index += 1
        elif name == "content_block_delta":
            assert obj["index"] in open_blocks
        elif name == "content_block_stop":
            open_blocks.remove(obj["index"])
        elif name == "message_delta":
            assert not open_blocks
            assert set(obj["usage"]) >= {"input_tokens", "output_tokens"}
        elif name == "message_stop":
            assert events[position - 1][0] == "message_delta"
            ended = True
    assert [n for n, _ in events].count("message_stop") <= 1
    return events


# -- a plain answer ------------------------------------------------------------------


def test_nim_stream_as_messages_events():
    out, stream, repairs = run(NIM_STREAM_EVENTS)
    text = [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}} for piece in NIM_TEXT_PIECES]
    assert [obj for _, obj in parse(out)] == [
        {
            "type": "message_start",
            "message": {
                "id": "msg_8f20d6699e194a0abed38c671384d32d",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 21, "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *text,
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"input_tokens": 21, "output_tokens": len(NIM_TEXT_PIECES)},
        },
        {"type": "message_stop"},
    ]
    assert message(out).content[0].text == NIM_TEXT
    assert stream.fast_path_uses == len(NIM_TEXT_PIECES) - 1
    assert not repairs


def test_no_buffering():
    # Every upstream event is answered in the call that completed it.
    repairs: Counter = Counter()
    stream = ChatStream(OPTIONS, MessagesSink(INFO, repairs))
    first = stream.feed(NIM_STREAM_EVENTS[0])
    assert names(first) == ["message_start"]
    assert names(stream.feed(NIM_STREAM_EVENTS[1])) == ["content_block_start", "content_block_delta"]
    for event in NIM_STREAM_EVENTS[2:-2]:
        assert names(stream.feed(event)) == ["content_block_delta"]
    assert names(stream.feed(NIM_STREAM_EVENTS[-2])) == ["content_block_stop"]
    assert names(stream.feed(NIM_STREAM_EVENTS[-1])) == ["message_delta", "message_stop"]
    assert stream.close() == b""


def test_message_start_always_has_usage():
    # free-claude-code #121: without usage in message_start Claude Code crashes on
    # `$.input_tokens`, anthropic-python on `output_tokens`. Before any usage came, and
    # for a reply with no text at all.
    for body in (NIM_STREAM, NIM_STREAM_EVENTS[0] + b"data: [DONE]\n\n"):
        out, _, _ = run([body])
        start = parse(out)[0][1]
        assert start["message"]["usage"] == {"input_tokens": 21, "output_tokens": 0}
        assert message(out).usage.input_tokens == 21


def test_usage_from_the_upstream():
    # NIM sends usage on every chunk; the last one counts, cached tokens apart.
    def with_usage(event, completion):
        usage = {"prompt_tokens": 900, "completion_tokens": completion, "total_tokens": 900 + completion, "prompt_tokens_details": {"cached_tokens": 512}}
        return event.replace(b'"usage":null', b'"usage":' + json.dumps(usage).encode())

    events = [with_usage(event, n) for n, event in enumerate(NIM_STREAM_EVENTS[:-1])] + [NIM_STREAM_EVENTS[-1]]
    out, _, _ = run(events)
    final = parse(out)[-2][1]
    assert final["usage"] == {"input_tokens": 388, "cache_read_input_tokens": 512, "output_tokens": len(NIM_STREAM_EVENTS) - 2}
    got = message(out).usage
    assert (got.input_tokens, got.output_tokens, got.cache_read_input_tokens) == (388, len(NIM_STREAM_EVENTS) - 2, 512)


def nim_with_running_usage(details=False):
    """NIM asked for usage: running totals on every chunk (tests/upstreams.py nim_usage_on_every_chunk)."""

    def with_usage(event, n):
        usage = {"prompt_tokens": 900, "total_tokens": 900 + n, "completion_tokens": n}
        if details:
            usage["prompt_tokens_details"] = {"cached_tokens": 0}
        return event.replace(b'"usage":null', b'"usage":' + json.dumps(usage, separators=(",", ":")).encode())

    return [with_usage(event, n) for n, event in enumerate(NIM_STREAM_EVENTS[:-1])] + [NIM_STREAM_EVENTS[-1]]


def rules_only(pieces):
    """The same stream through the full chat rules (no fast path) into the sink."""
    repairs: Counter = Counter()
    stream = ChatStream(dataclasses.replace(OPTIONS, fast_path=False), MessagesSink(INFO, repairs))
    return b"".join([stream.feed(piece) for piece in pieces] + [stream.close()]), repairs + stream.repairs


@pytest.mark.parametrize("whole", [False, True], ids=["one event per read", "one read"])
def test_running_usage_keeps_the_fast_path(whole):
    events = nim_with_running_usage()
    out, stream, repairs = run([b"".join(events)] if whole else events)
    assert stream.fast_path_uses == len(NIM_TEXT_PIECES) - 1
    assert parse(out)[-2][1]["usage"] == {"input_tokens": 900, "output_tokens": len(NIM_STREAM_EVENTS) - 2}
    slow, slow_repairs = rules_only(events)
    assert out == slow
    assert repairs + stream.repairs == slow_repairs  # usage_not_last counted alike


def test_running_usage_with_nested_details_keeps_the_fast_path():
    events = nim_with_running_usage(details=True)
    out, stream, _ = run(events)
    assert stream.fast_path_uses == len(NIM_TEXT_PIECES) - 1
    assert out == rules_only(events)[0]
    assert parse(out)[-2][1]["usage"]["output_tokens"] == len(NIM_STREAM_EVENTS) - 2


@given(data=st.data())
def test_running_usage_any_split_gives_the_same_events(data):
    body = b"".join(nim_with_running_usage())
    whole = run([body])[0]
    assert whole == rules_only([body])[0]
    assert run(data.draw(split_points(body)))[0] == whole


def test_usage_tail_inside_a_string_is_text():
    # `,"usage":{...}}` inside a JSON string has its quotes escaped: never taken for usage.
    text = ',"usage":{"completion_tokens":999}}'
    event = nim_chunk(text)
    out, _, _ = run([*NIM_STREAM_EVENTS[:2], event, *NIM_STREAM_EVENTS[2:]])
    assert text in message(out).content[0].text
    assert parse(out)[-2][1]["usage"]["output_tokens"] == len(NIM_TEXT_PIECES) + 1


@pytest.mark.parametrize(
    ("finish", "matched", "reason", "sequence"),
    [
        ("stop", None, "end_turn", None),
        ("stop", '"END"', "stop_sequence", "END"),
        ("stop", '"other"', "end_turn", None),
        ("length", None, "max_tokens", None),
        ("content_filter", None, "refusal", None),
        ("eos_token", None, "end_turn", None),
    ],
)
def test_stop_reason(finish, matched, reason, sequence):
    finish_event = nim_chunk(None, finish_reason=finish)
    if matched:
        finish_event = finish_event.replace(b'"matched_stop":151645', b'"matched_stop":' + matched.encode())
    out, _, _ = run([*NIM_STREAM_EVENTS[:3], finish_event, b"data: [DONE]\n\n"])
    got = message(out)
    assert (got.stop_reason, got.stop_sequence) == (reason, sequence)


# -- thinking -------------------------------------------------------------------------


def test_reasoning_becomes_a_thinking_block():
    out, stream, _ = run([DEEPSEEK_REASONING_STREAM])
    events = check_protocol(out)
    starts = [obj["content_block"] for name, obj in events if name == "content_block_start"]
    assert starts == [{"type": "thinking", "thinking": "", "signature": ""}, {"type": "text", "text": ""}]
    assert "signature_delta" not in out.decode()  # none made up (anthropics/claude-code#10627)
    got = message(out)
    assert [block.type for block in got.content] == ["thinking", "text"]
    assert got.content[0].thinking == "".join(REASONING_PIECES)
    assert got.content[0].signature == ""
    assert got.content[1].text == "Hey! 👋"


def test_fast_path_is_used_for_thinking_deltas():
    _, stream, _ = run([event + b"\n\n" for event in DEEPSEEK_REASONING_STREAM.split(b"\n\n")[:-1]])
    assert stream.fast_path_uses == len(REASONING_PIECES) - 1


# -- tool calls -------------------------------------------------------------------------


def test_tool_call_becomes_a_tool_use_block():
    out, _, _ = run([NIM_REPEATED_TOOL_NAME_STREAM])
    events = check_protocol(out)
    assert [obj for name, obj in events if name == "content_block_start"] == [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "call_0", "name": "read_file", "input": {}}}
    ]
    assert [obj["delta"] for name, obj in events if name == "content_block_delta"] == [
        {"type": "input_json_delta", "partial_json": '{"path":'},
        {"type": "input_json_delta", "partial_json": '"a.txt"}'},
    ]
    got = message(out)
    assert got.stop_reason == "tool_use"
    assert [(b.type, b.id, b.name, b.input) for b in got.content] == [("tool_use", "call_0", "read_file", {"path": "a.txt"})]


def test_text_after_tool_calls_closes_them_first():
    # Blocks never overlap: tool_use blocks that text follows are stopped before it starts.
    calls = [{"index": i, "id": f"call_{i}", "type": "function", "function": {"name": "Bash", "arguments": "{}"}} for i in (0, 1)]
    out, _, _ = run([chunk({"role": "assistant", "tool_calls": calls}) + chunk({"content": "Done."}) + chunk({}, "stop") + b"data: [DONE]\n\n"])
    check_protocol(out)
    blocks = [(n, o["index"]) for n, o in parse(out) if n.startswith("content_block_") and n != "content_block_delta"]
    assert blocks == [
        ("content_block_start", 0),
        ("content_block_start", 1),
        ("content_block_stop", 0),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_stop", 2),
    ]
    assert [b.type for b in message(out).content] == ["tool_use", "tool_use", "text"]


def test_tool_call_after_text_that_followed_it(caplog):
    # Its block is stopped; what came cannot be put in order: an error, not a call cut short.
    start = {"index": 0, "id": "call_0", "type": "function", "function": {"name": "Bash", "arguments": '{"command":'}}
    late = chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"ls"}'}}]})
    with caplog.at_level(logging.WARNING):
        out, _, repairs = run([chunk({"role": "assistant", "tool_calls": [start]}) + chunk({"content": "Hmm."}) + late + b"data: [DONE]\n\n"])
    check_protocol(out)
    assert "tool call" in error_of(out)["error"]["message"] and "message_stop" not in names(out)
    assert repairs["stream_not_translatable"] == 1


def test_nothing_after_an_error_in_the_middle_of_a_chunk():
    # The late arguments and the finish in one chunk, another call open: the error is last.
    first = {"index": 0, "id": "call_0", "type": "function", "function": {"name": "Bash", "arguments": "{"}}
    second = {"index": 1, "id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{"}}
    late = chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}, "tool_calls")
    out, _, _ = run([chunk({"role": "assistant", "tool_calls": [first]}) + chunk({"content": "Hmm."}) + chunk({"tool_calls": [second]}) + late])
    check_protocol(out)
    assert names(out)[-1] == "error"


def test_refusal_is_text():
    # A chat refusal has no block of its own in a Messages reply: it is the reply's text.
    out, _, _ = run([chunk({"role": "assistant", "refusal": "I can't help with that."}) + chunk({}, "stop") + b"data: [DONE]\n\n"])
    assert [(b.type, b.text) for b in message(out).content] == [("text", "I can't help with that.")]


def test_every_block_gets_a_fresh_index():
    # PeakCode PR #16: a reused index makes the SDK keep only the first tool call.
    out, _, _ = run([OLLAMA_TOOLS_STREAM])
    check_protocol(out)
    got = message(out)
    assert [(b.name, b.input) for b in got.content] == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]


def test_late_tool_name():
    out, _, _ = run([VLLM_LATE_TOOL_NAME_STREAM])
    check_protocol(out)
    assert [(b.name, b.input) for b in message(out).content] == [("get_weather", {"city": "Paris"})]


def tool_chunk(calls, content=None, finish=None):
    chunk = {
        "id": "t",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content, "tool_calls": calls}, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def call(index, arguments, name=None, call_id=None):
    out = {"index": index, "function": {"arguments": arguments}}
    if name:
        out["id"], out["type"], out["function"]["name"] = call_id or f"call_{index}", "function", name
    return out


def test_interleaved_tool_calls_each_keep_their_arguments():
    body = b"".join(
        [
            tool_chunk(None, content="Let me look."),
            tool_chunk([call(0, '{"a":', "f")]),
            tool_chunk([call(1, '{"b":', "g")]),
            tool_chunk([call(0, "1}")]),
            tool_chunk([call(1, "2}")]),
            tool_chunk(None, finish="tool_calls"),
            b"data: [DONE]\n\n",
        ]
    )
    out, _, _ = run([body])
    check_protocol(out)
    got = message(out)
    assert [(b.type, getattr(b, "name", None), getattr(b, "input", None)) for b in got.content] == [
        ("text", None, None),
        ("tool_use", "f", {"a": 1}),
        ("tool_use", "g", {"b": 2}),
    ]


def test_tool_call_without_arguments_has_input_of_nothing():
    # bifrost PR #1354: streams with empty tool arguments. No delta, and input {} stays.
    body = tool_chunk([call(0, "", "list_files")]) + tool_chunk(None, finish="tool_calls") + b"data: [DONE]\n\n"
    out, _, _ = run([body])
    assert "input_json_delta" not in out.decode()
    assert [(b.name, b.input) for b in message(out).content] == [("list_files", {})]


# -- the end, errors, cuts ------------------------------------------------------------------


def error_of(out):
    name, obj = parse(out)[-1]
    assert name == "error"
    return obj


@pytest.mark.parametrize(
    ("event", "kind", "text"),
    [
        (b'data: {"error":{"message":"Worker local total request limit reached (32/32)","type":"server_error","param":null,"code":429}}\n\n', "rate_limit_error", "Worker local total request limit reached (32/32)"),
        (b'data: {"status":503,"title":"Service Unavailable","detail":"DEGRADED function cannot be invoked"}\n\n', "api_error", "DEGRADED function cannot be invoked"),
        (b'event: error\ndata: {"message":"overloaded"}\n\n', "api_error", "overloaded"),
        (b'error: {"code":400,"message":"the request exceeds the available context size","type":"invalid_request_error"}\n\n', "invalid_request_error", "the request exceeds the available context size"),
    ],
)
def test_error_inside_stream(event, kind, text):
    # An error event, and nothing after it: no message_stop (litellm #40345 sent a 500 after one).
    body = b"".join(NIM_STREAM_EVENTS[:3]) + event + b"".join(NIM_STREAM_EVENTS[3:])
    out, _, _ = run([body])
    check_protocol(out)
    assert error_of(out) == {"type": "error", "error": {"type": kind, "message": text}}
    assert "message_stop" not in names(out)
    with pytest.raises(RuntimeError, match="^" + text.replace("(", r"\(").replace(")", r"\)")):
        message(out)


def test_error_after_the_end_is_dropped():
    out, _, _ = run([NIM_STREAM + b'data: {"error":{"message":"late","type":"server_error"}}\n\n'])
    assert names(out)[-1] == "message_stop"
    assert names(out).count("error") == 0


def test_stream_ended_early():
    out, _, repairs = run([b"".join(NIM_STREAM_EVENTS[:3]) + NIM_STREAM_EVENTS[3][:40]])
    check_protocol(out)
    assert error_of(out)["error"]["type"] == "api_error"
    assert repairs["stream_ended_early"] == 1
    assert "message_stop" not in names(out)


@pytest.mark.parametrize("body", [b"", b"\n\n", b": keep-alive\n\n", b"data: [DONE]\n\n", b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":1}}\n\ndata: [DONE]\n\n'])
def test_stream_without_chunks(body):
    # "API returned an empty or malformed response (HTTP 200)" (free-claude-code #917): a
    # stream that carried no chat chunk (nothing, keep-alives, only [DONE], only usage) is
    # no answer, and must not end as one.
    out, _, repairs = run([body])
    assert [name for name in names(out) if name not in (":", "message_start")] == ["error"]
    assert error_of(out)["error"]["message"] == "The upstream's stream ended without a reply."
    assert repairs["stream_without_chunks"] == 1


def test_stream_with_an_empty_reply_is_an_empty_message():
    out, _, _ = run([NIM_STREAM_EVENTS[0] + b"data: [DONE]\n\n"])
    assert names(out) == ["message_start", "message_delta", "message_stop"]
    assert message(out).content == []


def test_stream_without_done_ends_cleanly():
    # A chunked stream ending at an event boundary: the chat rules finish it, so do we.
    out, _, _ = run([b"".join(NIM_STREAM_EVENTS[:4])])
    check_protocol(out)
    assert names(out)[-2:] == ["message_delta", "message_stop"]


def test_failure_reading_the_rest(caplog):
    repairs: Counter = Counter()
    stream = ChatStream(OPTIONS, MessagesSink(INFO, repairs))
    out = b"".join(stream.feed(e) for e in NIM_STREAM_EVENTS[:3])
    with caplog.at_level(logging.WARNING):
        out += stream.fail("gzip: invalid block")
    out += stream.feed(NIM_STREAM_EVENTS[3]) + stream.close()
    check_protocol(out)
    assert "gzip: invalid block" in error_of(out)["error"]["message"]


def test_stream_not_translatable(caplog):
    options = Options(include_usage=True, max_event_bytes=1000, make_id=OPTIONS.make_id)
    big = nim_chunk("x" * 2000)
    with caplog.at_level(logging.WARNING):
        # Held unfinished past the cap (a whole event in one piece is read as it is).
        out, stream, repairs = run([*NIM_STREAM_EVENTS[:2], big[:1500], big[1500:], *NIM_STREAM_EVENTS[2:]], options)
    check_protocol(out)
    assert stream.raw
    assert error_of(out)["error"]["message"] == "The proxy could not read the rest of the upstream's reply."
    assert repairs["stream_not_translatable"] == 1
    assert b'"x' not in out


def test_event_not_chunk(caplog):
    # JSON that is no chat chunk says nothing a Messages client reads: left out, counted, logged.
    with caplog.at_level(logging.WARNING):
        out, _, repairs = run([NIM_STREAM_EVENTS[0] + b'data: {"hello": 1}\n\n' + b"".join(NIM_STREAM_EVENTS[1:])])
    check_protocol(out)
    assert b"hello" not in out
    assert repairs["event_not_chunk"] == 1
    assert message(out).content[0].text == NIM_TEXT
    assert "no chat chunk" in caplog.text


@pytest.mark.parametrize("event", [b"data: {not json\n\n", b'data: {"choices":[{"index":0,"delta":{"content":"\xff"}}]}\n\n'])
def test_unreadable_event_ends_the_stream_with_an_error(event, caplog):
    # What it said is lost: the reply is not whole, so it must not end as if it were.
    with caplog.at_level(logging.WARNING):
        out, _, repairs = run([b"".join(NIM_STREAM_EVENTS[:3]) + event + b"".join(NIM_STREAM_EVENTS[3:])])
    check_protocol(out)
    assert "message_stop" not in names(out)
    assert error_of(out)["error"]["message"] == "The upstream sent an event that could not be read."
    assert repairs["stream_not_translatable"] == 1


def test_keep_alives_become_pings_once_started():
    out, _, _ = run([b": keep-alive\n\n" + NIM_STREAM_EVENTS[0] + b": keep-alive\n\n" + b"".join(NIM_STREAM_EVENTS[1:])])
    assert names(out)[:3] == [":", "message_start", "ping"]


def test_stream_answered_with_one_json_error():
    out, _, _ = run([b'{"status":429,"title":"Too Many Requests"}'])
    assert parse(out) == [("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "Too Many Requests"}})]


def test_stream_answered_with_a_whole_completion():
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "created": 5,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    out, _, _ = run([json.dumps(completion).encode()])
    check_protocol(out)
    got = message(out)
    assert (got.content[0].text, got.usage.input_tokens, got.usage.output_tokens) == ("Hello!", 7, 2)


# -- properties ------------------------------------------------------------------------------


@st.composite
def split_points(draw, body):
    cuts = draw(st.lists(st.integers(0, len(body)), max_size=40))
    return [body[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(body)])]


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
@given(data=st.data())
def test_any_split_gives_the_same_events(name, data):
    body = ALL_STREAMS[name]
    whole, _, _ = run([body])
    assert run(data.draw(split_points(body)))[0] == whole


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_every_recorded_stream_keeps_the_protocol(name):
    out, _, _ = run([ALL_STREAMS[name]])
    check_protocol(out)
    assert names(out)[-1] == "message_stop"
    message(out)


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_fast_path_gives_the_same_events_as_the_rules(name):
    body = ALL_STREAMS[name]
    fast_out, _, fast_repairs = run([body])
    slow_out, _, slow_repairs = run([body], SLOW)
    assert fast_out == slow_out
    assert fast_repairs == slow_repairs


def chunk(delta, finish=None):
    obj = {"id": "p", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


PIECE = st.tuples(
    st.sampled_from(["content", "reasoning_content", "tool", "new_tool", "keep_alive"]),
    st.text(min_size=1, max_size=8),
)


@given(st.lists(PIECE, min_size=1, max_size=25), st.sampled_from(["stop", "length", "tool_calls", None]), st.data())
def test_any_stream_keeps_text_thinking_and_tool_inputs_exact(pieces, finish, data):
    # Build the upstream: text and thinking pieces as deltas; each tool call's arguments
    # are `{"v": "<its pieces joined>"}`, sent as one delta per piece.
    events = [chunk({"role": "assistant", "content": None})]
    expected: list = []
    calls = 0
    for kind, text in pieces:
        if kind == "keep_alive":
            events.append(b": keep-alive\n\n")
        elif kind in ("content", "reasoning_content"):
            # A call's arguments end before text that follows it (the reply would fail).
            for block in expected:
                if block[0] == "tool_use" and len(block) == 3:
                    events.append(chunk({"tool_calls": [{"index": block[2], "function": {"arguments": '"}'}}]}))
                    block.append("closed")
            block = "text" if kind == "content" else "thinking"
            if expected and expected[-1][0] == block:
                expected[-1][1] += text
            else:
                expected.append([block, text])
            events.append(chunk({kind: text}))
        else:
            if kind == "new_tool" or not expected or expected[-1][0] != "tool_use":
                expected.append(["tool_use", "", calls])
                events.append(chunk({"tool_calls": [{"index": calls, "id": f"call_{calls}", "type": "function", "function": {"name": f"t{calls}", "arguments": '{"v":"'}}]}))
                calls += 1
            expected[-1][1] += text
            escaped = json.dumps(text, ensure_ascii=False)[1:-1]
            events.append(chunk({"tool_calls": [{"index": expected[-1][2], "function": {"arguments": escaped}}]}))
    # Close every tool call's JSON still open, in order.
    for block in expected:
        if block[0] == "tool_use" and len(block) == 3:
            events.append(chunk({"tool_calls": [{"index": block[2], "function": {"arguments": '"}'}}]}))
    if finish:
        events.append(chunk({}, finish))
    events.append(b"data: [DONE]\n\n")
    body = b"".join(events)
    out, _, _ = run(data.draw(split_points(body)))
    assert out == run([body])[0] == run([body], SLOW)[0]
    check_protocol(out)
    assert names(out)[-1] == "message_stop"
    got = message(out)
    built = []
    for block in got.content:
        if block.type == "tool_use":
            built.append(("tool_use", block.input["v"], int(block.name[1:])))
        else:
            built.append((block.type, block.text if block.type == "text" else block.thinking))
    # Tool blocks come in the order their calls started; text and thinking where they were.
    want = [("tool_use", b[1], b[2]) if b[0] == "tool_use" else (b[0], b[1]) for b in expected]
    assert built == want


@given(st.binary(max_size=300), st.data())
def test_any_bytes_give_exactly_one_end(body, data):
    # Whatever the upstream sends: the protocol holds, and there is exactly one end:
    # message_stop or an error, never both.
    out, _, _ = run(data.draw(split_points(body)))
    events = check_protocol(out)
    ends = [n for n, _ in events if n in ("message_stop", "error")]
    assert len(ends) == 1
