"""The stream as a whole: framing, termination, fallbacks, and split invariance."""

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.chat.options import Options
from normalize.endpoints.chat.stream import ChatStream
from tests.recorded import (
    ALL_STREAMS,
    EXO_STREAM,
    NIM_STREAM,
    NIM_STREAM_EVENTS,
    NIM_STREAM_REPAIRED,
    NIM_TEXT,
    OPENAI_STREAM,
    TGI_STREAM,
    nim_chunk,
)

OPTIONS = Options(make_id=lambda: "chatcmpl-synth", make_call_id=lambda: "call_synth", now=lambda: 1700000000)


def run(pieces, options=OPTIONS):
    stream = ChatStream(options)
    out = [stream.feed(piece) for piece in pieces]
    out.append(stream.close())
    return b"".join(out), stream


def events(body):
    return [e for e in body.split(b"\n\n") if e]


def chunks(body):
    return [json.loads(e[6:]) for e in events(body) if e.startswith(b"data: {")]


def content_of(body):
    return "".join(str(c["choices"][0]["delta"].get("content")) for c in chunks(body) if c["choices"] and "content" in c["choices"][0]["delta"])


def test_nim_stream():
    out, stream = run(NIM_STREAM_EVENTS)
    assert out == NIM_STREAM_REPAIRED
    assert content_of(out) == NIM_TEXT
    assert stream.events == len(NIM_STREAM_EVENTS)


def test_no_buffering():
    # Each complete event is answered in the call that completed it.
    stream = ChatStream(OPTIONS)
    expected = events(NIM_STREAM_REPAIRED)
    for event, want in zip(NIM_STREAM_EVENTS, expected):
        assert stream.feed(event) == want + b"\n\n"
    assert stream.close() == b""


def test_unfinished_event_is_held_then_completed():
    stream = ChatStream(OPTIONS)
    first = NIM_STREAM_EVENTS[0]
    assert stream.feed(first[:-1]) == b""
    assert stream.feed(first[-1:]).startswith(b'data: {"id"')


def test_data_without_space():
    out, stream = run([TGI_STREAM])
    assert events(out)[0].startswith(b'data: {"id":"chatcmpl-synth","object":"chat.completion.chunk"')
    assert stream.repairs["data_without_space"] == 3


def test_keep_alive_comments_pass_through():
    out, _ = run([TGI_STREAM])
    assert b"\n\n:\n\n" in out
    out, _ = run([b": keep-alive\n\n" + NIM_STREAM])
    assert out.startswith(b": keep-alive\n\ndata: {")


def test_tgi_stream():
    out, _ = run([TGI_STREAM])
    got = chunks(out)
    assert [c["choices"][0]["delta"] for c in got] == [{"role": "assistant", "content": "Hel"}, {"content": "lo"}]
    assert got[-1]["choices"][0]["finish_reason"] == "stop"
    assert {c["id"] for c in got} == {"chatcmpl-synth"}
    assert out.endswith(b"\n\n:\n\n" + events(out)[2] + b"\n\ndata: [DONE]\n\n")


def test_cr_line_ends():
    for sep in (b"\r\n", b"\r"):
        out, stream = run([NIM_STREAM.replace(b"\n", sep)])
        assert out == NIM_STREAM_REPAIRED
        assert stream.repairs["cr_line_ends"] == 1


def test_done_missing():
    out, stream = run([EXO_STREAM])
    got = chunks(out)
    assert [c["object"] for c in got] == ["chat.completion.chunk"] * 3
    assert got[-1]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert out.endswith(b"data: [DONE]\n\n") and out.count(b"[DONE]") == 1
    assert stream.repairs["done_missing"] == 1
    assert stream.repairs["finish_reason_never_sent"] == 1


def test_done_repeated():
    out, stream = run([NIM_STREAM + b"data: [DONE]\n\n"])
    assert out == NIM_STREAM_REPAIRED
    assert stream.repairs["done_repeated"] == 1


def test_finish_reason_never_sent_before_done():
    body = b"".join(NIM_STREAM_EVENTS[:-2]) + b"data: [DONE]\n\n"
    out, _ = run([body])
    assert chunks(out)[-1]["choices"][0]["finish_reason"] == "stop"
    assert out.endswith(b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


def test_chunk_after_done(caplog):
    with caplog.at_level(logging.WARNING):
        out, stream = run([NIM_STREAM + nim_chunk("late")])
    assert out == NIM_STREAM_REPAIRED
    assert stream.repairs["chunk_after_done"] == 1
    assert "after [DONE]" in caplog.text


def test_named_event():
    body = b"event: message\ndata: " + NIM_STREAM_EVENTS[0][6:] + b"event: delta\nid: 4\n" + NIM_STREAM_EVENTS[1]
    out, stream = run([body])
    repaired = events(NIM_STREAM_REPAIRED)
    assert events(out)[:2] == [repaired[0], b"id: 4\n" + repaired[1]]
    assert stream.repairs["named_event"] == 1


def test_multiline_data_is_joined():
    first = NIM_STREAM_EVENTS[0][6:-2]
    split_at = first.index(b',"choices"')
    out, _ = run([b"data: " + first[:split_at] + b"\ndata: " + first[split_at:] + b"\n\n"])
    assert events(out)[0] == events(NIM_STREAM_REPAIRED)[0]


def test_not_json_passes_through(caplog):
    with caplog.at_level(logging.WARNING):
        out, _ = run([b"data: {not json\n\n" + NIM_STREAM])
    assert out == b"data: {not json\n\n" + NIM_STREAM_REPAIRED
    assert caplog.text.count("not JSON") == 1


def test_json_not_chunk_passes_through():
    # Nothing here is a chat chunk, so nothing is added either.
    out, _ = run([b'data: ["a"]\n\ndata: {"hello":1}\n\n'])
    assert out == b'data: ["a"]\n\ndata: {"hello":1}\n\n'


def test_truncated_event_at_end_is_flushed_as_received():
    cut = NIM_STREAM_EVENTS[1][:40]
    out, stream = run([NIM_STREAM_EVENTS[0], cut])
    assert out == events(NIM_STREAM_REPAIRED)[0] + b"\n\n" + cut
    assert b"[DONE]" not in out


def test_event_without_blank_line_at_end_is_still_an_event():
    out, _ = run([NIM_STREAM[:-2]])
    assert out == NIM_STREAM_REPAIRED


def test_overflowing_event_goes_raw(caplog):
    options = Options(max_event_bytes=100)
    with caplog.at_level(logging.WARNING):
        out, stream = run([NIM_STREAM_EVENTS[0], b"data: " + b"x" * 200, b"\n\nmore"], options)
    assert out.endswith(b"data: " + b"x" * 200 + b"\n\nmore")
    assert stream.raw
    assert "normalize_max_event_bytes" in caplog.text


def test_failure_passes_the_rest_through(monkeypatch, caplog):
    stream = ChatStream(OPTIONS)
    first = stream.feed(NIM_STREAM_EVENTS[0])

    def boom(chunk):
        raise RuntimeError("bug")

    monkeypatch.setattr(stream._rules, "rewrite", boom)
    with caplog.at_level(logging.ERROR):
        rest = stream.feed(NIM_STREAM_EVENTS[1][:10]) + stream.feed(NIM_STREAM_EVENTS[1][10:] + NIM_STREAM_EVENTS[2])
    assert first == events(NIM_STREAM_REPAIRED)[0] + b"\n\n"
    assert rest == NIM_STREAM_EVENTS[1] + NIM_STREAM_EVENTS[2]
    assert stream.close() == b""
    assert caplog.text.count("rewrite failed") == 1


def test_garbage_passes_through(caplog):
    with caplog.at_level(logging.WARNING):
        out, _ = run([b"\xff\xfe garbage \x00\x01\n\n"])
    assert out == b"\xff\xfe garbage \x00\x01\n\n"
    assert "not a server-sent event field" in caplog.text


def test_empty_body():
    assert run([])[0] == b""


def test_lone_surrogate_is_escaped():
    out, _ = run([nim_chunk("a") + b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"\\ud83d"},"finish_reason":null}]}\n\n'])
    assert b'"content":"\\ud83d"' in out


def test_openai_stream_is_unchanged():
    out, stream = run([OPENAI_STREAM])
    assert out == OPENAI_STREAM
    assert not stream.repairs


# -- properties ---------------------------------------------------------------

@st.composite
def split_points(draw, body):
    cuts = draw(st.lists(st.integers(0, len(body)), max_size=40))
    return [body[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(body)])]


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
@given(data=st.data())
def test_any_split_gives_identical_output(name, data):
    body = ALL_STREAMS[name]
    whole, _ = run([body])
    assert run(data.draw(split_points(body)))[0] == whole


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_single_byte_chunks(name):
    body = ALL_STREAMS[name]
    assert run([body[i : i + 1] for i in range(len(body))])[0] == run([body])[0]


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_normalizing_twice_changes_nothing(name):
    once, _ = run([ALL_STREAMS[name]])
    twice, stream = run([once])
    assert twice == once
    assert not stream.repairs


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_fast_path_gives_the_same_bytes_as_the_rules(name):
    slow = Options(make_id=OPTIONS.make_id, make_call_id=OPTIONS.make_call_id, now=OPTIONS.now, fast_path=False)
    body = ALL_STREAMS[name]
    fast_out, fast = run([body])
    slow_out, slow_stream = run([body], slow)
    assert fast_out == slow_out
    assert fast.repairs == slow_stream.repairs


def test_fast_path_is_used_for_nim():
    stream = ChatStream(OPTIONS)
    for event in NIM_STREAM_EVENTS:
        stream.feed(event)
    assert stream.fast_path_uses == len(NIM_STREAM_EVENTS) - 4


def test_fast_path_carries_usage_on_every_chunk():
    # NIM sends its running usage on every chunk once usage was asked for: the text and
    # the usage both vary, so a template splices the text and keeps the latest usage.
    from tests.recorded import NIM_TEXT_PIECES, NIM_USAGE_STREAM_EVENTS, nim_usage

    usage = Options(make_id=OPTIONS.make_id, make_call_id=OPTIONS.make_call_id, now=OPTIONS.now, include_usage=True)
    stream = ChatStream(usage)
    fast_out = b"".join(stream.feed(event) for event in NIM_USAGE_STREAM_EVENTS) + stream.close()
    assert stream.fast_path_uses == len(NIM_TEXT_PIECES) - 1
    slow_out, slow = run(NIM_USAGE_STREAM_EVENTS, Options(**{**usage_fields(usage), "fast_path": False}))
    assert fast_out == slow_out
    assert stream.repairs == slow.repairs
    last = chunks(fast_out)[-1]
    assert last["choices"] == [] and last["usage"] == nim_usage(len(NIM_TEXT_PIECES))
    assert content_of(fast_out) == NIM_TEXT


def usage_fields(options):
    return {"make_id": options.make_id, "make_call_id": options.make_call_id, "now": options.now, "include_usage": options.include_usage}


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20), st.integers(0, 3))
def test_fast_path_with_usage_on_every_chunk_is_exact(pieces, cut):
    from tests.recorded import nim_usage

    events = [nim_chunk(None, role="assistant", usage=nim_usage(0))]
    events += [nim_chunk(p, usage=nim_usage(i + 1)) for i, p in enumerate(pieces)]
    events += [nim_chunk(None, finish_reason="stop", usage=nim_usage(len(pieces)))][:cut % 2] + [b"data: [DONE]\n\n"]
    fields = usage_fields(Options(make_id=OPTIONS.make_id, now=OPTIONS.now, include_usage=True))
    out, fast = run(events, Options(**fields))
    slow, rules = run(events, Options(**fields, fast_path=False))
    assert out == slow
    assert fast.repairs == rules.repairs
    assert content_of(out) == "".join(pieces)
    assert chunks(out)[-1]["usage"] == nim_usage(len(pieces))


def test_fast_path_is_used_for_reasoning_text():
    from tests.recorded import DEEPSEEK_REASONING_STREAM, REASONING_PIECES

    stream = ChatStream(OPTIONS)
    for event in DEEPSEEK_REASONING_STREAM.split(b"\n\n")[:-1]:
        stream.feed(event + b"\n\n")
    assert stream.fast_path_uses == len(REASONING_PIECES) - 1


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20))
def test_fast_path_content_is_exact(pieces):
    body = nim_chunk(None, role="assistant") + b"".join(nim_chunk(p) for p in pieces) + b"data: [DONE]\n\n"
    out, _ = run([body])
    slow, _ = run([body], Options(make_id=OPTIONS.make_id, now=OPTIONS.now, fast_path=False))
    assert out == slow
    # With reasoning kept as sent, the content is the upstream's exactly (split moves `<think>`…).
    keep, _ = run([body], Options(make_id=OPTIONS.make_id, now=OPTIONS.now, reasoning="keep"))
    assert content_of(keep) == "".join(pieces)


# -- errors inside a stream ---------------------------------------------------

def stream_with(error_event):
    """Two content events, then the upstream's error event, then whatever it sends after."""
    return b"".join(NIM_STREAM_EVENTS[:2]) + error_event + NIM_STREAM_EVENTS[2] + b"data: [DONE]\n\n"


def error_tail(out):
    head = b"".join(e + b"\n\n" for e in events(NIM_STREAM_REPAIRED)[:2])
    assert out.startswith(head)
    return out[len(head):]


@pytest.mark.parametrize(
    ("name", "event", "message", "kind", "repair"),
    [
        (
            "openai",
            b'data: {"error":{"message":"The server had an error processing your request.","type":"server_error","param":null,"code":null}}\n\n',
            "The server had an error processing your request.",
            "server_error",
            None,
        ),
        ("tgi_error_is_string", b'data:{"error":"Input validation error","error_type":"validation"}\n\n', "Input validation error", "validation", "error_is_string"),
        ("vllm_error_not_wrapped", b'data: {"object":"error","message":"boom","type":"BadRequestError","param":null,"code":400}\n\n', "boom", "BadRequestError", "error_not_wrapped"),
    ],
)
def test_error_inside_stream(name, event, message, kind, repair):
    check_error_inside_stream(event, message, kind, repair)


def test_error_line_not_data():
    """llama.cpp's `error: {…}` line, which no SSE client reads as data."""
    event = b'error: {"code":400,"message":"the request exceeds the available context size","type":"invalid_request_error"}\n\n'
    check_error_inside_stream(event, "the request exceeds the available context size", "invalid_request_error", "error_line_not_data")


def test_named_error_event():
    """`event: error` with a bare message: a client reading only `data:` sees no error shape."""
    check_error_inside_stream(b'event: error\ndata: {"message":"overloaded"}\n\n', "overloaded", "server_error", "named_error_event")


def check_error_inside_stream(event, message, kind, repair):
    out, stream = run([stream_with(event)])
    tail = error_tail(out)
    first, rest = tail.split(b"\n\n", 1)
    assert first.startswith(b"data: {")
    error = json.loads(first[6:])["error"]
    assert (error["message"], error["type"]) == (message, kind)
    assert set(error) >= {"message", "type", "param", "code"}
    # OpenAI ends a failed stream with [DONE] right after the error: no finish chunk.
    assert rest == b"data: [DONE]\n\n"
    if repair:
        assert stream.repairs[repair] == 1
    assert stream.repairs["chunk_after_done"] == 1


# -- what a client assembles is exactly what the upstream said --------------------

def assemble(body):
    """Content, reasoning and all tool arguments, joined as a `+=` accumulator would,
    reading the JSON of every data event (framing as lenient as a client's)."""
    content, reasoning, arguments = [], [], []
    for block in body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            try:
                chunk = json.loads(line[5:])
            except ValueError:
                continue
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                content.append(delta.get("content") or "")
                reasoning.append(delta.get("reasoning_content") or "")
                calls = delta.get("tool_calls") or []
                for call in [calls] if isinstance(calls, dict) else calls:
                    arguments.append(((call.get("function") or {}).get("arguments")) or "")
    return "".join(content), "".join(reasoning), "".join(a if isinstance(a, str) else json.dumps(a, separators=(",", ":")) for a in arguments)


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_assembled_text_is_the_upstreams(name):
    body = ALL_STREAMS[name]
    assert assemble(run([body])[0]) == assemble(body)


@given(
    st.lists(
        st.tuples(st.sampled_from(["content", "reasoning_content", "tool"]), st.text(min_size=1, max_size=8)),
        min_size=1,
        max_size=15,
    ),
    st.data(),
)
def test_any_stream_keeps_content_reasoning_and_arguments(pieces, data):
    """Transport only: with reasoning kept as sent (`split` and `fold` change where text goes, and
    have their own properties in test_think.py; Hypothesis draws `<think>` from the code)."""
    keep = Options(make_id=OPTIONS.make_id, make_call_id=OPTIONS.make_call_id, now=OPTIONS.now, reasoning="keep")
    events = [nim_chunk(None, role="assistant")]
    for kind, text in pieces:
        delta = {"role": None, "content": None, "reasoning_content": None}
        if kind == "tool":
            delta["tool_calls"] = [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": text}}]
        else:
            delta[kind] = text
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    body = b"".join(events)
    out = run(data.draw(split_points(body)), keep)[0]
    assert assemble(out) == assemble(body)
    assert out == run([out], keep)[0]


# -- bad input ----------------------------------------------------------------------

def test_invalid_utf8_passes_through(caplog):
    bad = b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"\xff\xfe"},"finish_reason":null}]}\n\n'
    with caplog.at_level(logging.WARNING):
        out, _ = run([NIM_STREAM_EVENTS[0], bad, *NIM_STREAM_EVENTS[1:]])
    assert bad in out
    assert out.endswith(b"data: [DONE]\n\n")
    assert "not JSON" in caplog.text


def test_deeply_nested_json_passes_through(caplog):
    deep = b"data: " + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n\n"
    with caplog.at_level(logging.WARNING):
        out, stream = run([deep, NIM_STREAM])
    assert out == deep + NIM_STREAM_REPAIRED
    assert not stream.raw


def test_data_that_is_json_but_not_an_object(caplog):
    with caplog.at_level(logging.WARNING):
        out, _ = run([b"data: 42\n\ndata: null\n\n" + NIM_STREAM])
    assert out == b"data: 42\n\ndata: null\n\n" + NIM_STREAM_REPAIRED
    assert caplog.text.count("not an object") == 1


# -- a stream request answered with one JSON body --------------------------------

def test_stream_answered_with_json_error():
    out, stream = run([b"\n ", b'{"error":{"message":"boom","type":"server_error","param":null,"code":null}}'])
    assert out == b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\ndata: [DONE]\n\n'
    assert stream.repairs["stream_answered_with_json"] == 1


def test_stream_answered_with_json_completion():
    completion = {
        "id": "c1", "object": "chat.completion", "created": 5, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "tool_calls": None}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    body = json.dumps(completion).encode()
    out, stream = run([body[:10], body[10:]])
    assert chunks(out) == [
        {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello!"}, "logprobs": None, "finish_reason": None}]},
        {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    assert out.endswith(b"data: [DONE]\n\n")
    with_usage, _ = run([body], Options(make_id=OPTIONS.make_id, include_usage=True))
    assert chunks(with_usage)[-1]["usage"] == completion["usage"]


def test_json_body_that_is_no_reply_passes_through():
    assert run([b'{"hello": 1}'])[0] == b'{"hello": 1}'
    assert run([b"{not json"])[0] == b"{not json"
