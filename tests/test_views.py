"""What mitmweb shows: the repair summary, the capped body buffer, and the three views."""

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.chat.options import Options
from normalize.endpoints.chat.stream import ChatStream
from normalize.repairs import Repair
from normalize.views.assembled import assembled_view
from normalize.views.capped import CappedBuffer
from normalize.views.diff import before_after_view
from normalize.views.events import MAX_EVENTS
from normalize.views.sse import sse_view
from normalize.views.summary import describe
from tests.recorded import (
    ALL_STREAMS,
    EXO_STREAM,
    NIM_REPEATED_TOOL_NAME_STREAM,
    NIM_STREAM,
    NIM_STREAM_REPAIRED,
    OLLAMA_TOOLS_STREAM,
    OPENAI_STREAM,
    TGI_STREAM,
    nim_chunk,
)

OPTIONS = Options(make_id=lambda: "chatcmpl-synth", make_call_id=lambda: "call_synth", now=lambda: 1700000000)
VIEWS = [sse_view, assembled_view, lambda data: before_after_view(data, data)]


def rewrite(body):
    stream = ChatStream(OPTIONS)
    return stream.feed(body) + stream.close(), stream


def event_lines(body):
    """The events of a stream written compactly by hand or by us: already what sse_view shows."""
    return [e for e in body.decode().split("\n\n") if e]


# -- describe ------------------------------------------------------------------


def test_describe_nothing_to_repair():
    assert describe({}, 12) == "normalized 12 events: nothing to repair"
    assert describe({"null_fields": 0}, 1) == "normalized 1 event: nothing to repair"
    assert describe({}) == "normalized: nothing to repair"


def test_describe_orders_by_count_then_name():
    repairs = {"stream_sent_as_json": 1, "role_repeated": 1, "null_fields": 2, "done_missing": 1}
    assert describe(repairs, 212) == (
        "normalized 212 events: 2 null fields dropped, [DONE] added, role deduplicated, content-type fixed"
    )


def test_describe_counts_and_plurals():
    assert describe({"null_fields": 1}) == "normalized: 1 null field dropped"
    assert describe({"empty_chunk": 3, "tool_call_index_missing": 2}) == (
        "normalized: 3 empty chunks dropped, 2 missing tool call indexes added"
    )
    # A phrase without a count gets one when the repair happened more than once.
    assert describe({"role_repeated": 212}) == "normalized: role deduplicated x212"


def test_describe_unknown_repair_falls_back_to_its_name():
    assert describe({"brand_new_fix": 1, "other_fix": 3}) == "normalized: other fix x3, brand new fix"


def test_describe_recorded_streams():
    _, stream = rewrite(NIM_STREAM)
    assert describe(stream.repairs, stream.events) == (
        'normalized 11 events: 50 null fields dropped, content "" added to first chunk'
    )
    _, stream = rewrite(TGI_STREAM)
    assert describe(stream.repairs, stream.events) == (
        "normalized 4 events: space added after data: on 3 events, 2 missing chunk ids filled in, "
        "2 null fields dropped, finish_reason eos_token renamed stop, role deduplicated"
    )


def test_every_repair_has_a_phrase():
    for repair in Repair:
        assert repair.phrase and repair.phrase != repair.replace("_", " "), repair
        assert describe({repair: 1}) == f"normalized: {repair.phrase.replace('{n}', '1').replace('{s}', '').replace('{es}', '')}"


def test_every_phrase_reads_for_one_and_many():
    for name in Repair:
        for n in (1, 2):
            text = describe({name: n})
            assert "{" + "n}" not in text and "{s}" not in text and "{es}" not in text


# -- CappedBuffer ----------------------------------------------------------------


def test_capped_buffer_under_cap():
    buf = CappedBuffer(10)
    buf.append(b"abc")
    buf.append(b"def")
    assert (buf.value, buf.dropped, buf.dropped > 0, len(buf)) == (b"abcdef", 0, False, 6)


def test_capped_buffer_exact_boundary():
    buf = CappedBuffer(6)
    buf.append(b"abc")
    buf.append(b"def")
    assert (buf.value, buf.dropped, buf.dropped > 0) == (b"abcdef", 0, False)
    buf.append(b"")
    assert (buf.value, buf.dropped, buf.dropped > 0) == (b"abcdef", 0, False)
    buf.append(b"g")
    assert (buf.value, buf.dropped, buf.dropped > 0) == (b"abcdef", 1, True)


def test_capped_buffer_cut_inside_an_append():
    buf = CappedBuffer(4)
    buf.append(b"ab")
    buf.append(b"cdef")
    buf.append(b"ghi")
    assert (buf.value, buf.dropped, buf.dropped > 0, len(buf)) == (b"abcd", 5, True, 4)


def test_capped_buffer_cap_zero_keeps_nothing():
    buf = CappedBuffer(0)
    assert (buf.value, buf.dropped, buf.dropped > 0) == (b"", 0, False)
    buf.append(b"")
    assert (buf.value, buf.dropped, buf.dropped > 0) == (b"", 0, False)
    buf.append(b"abc")
    assert (buf.value, buf.dropped, buf.dropped > 0) == (b"", 3, True)


def test_capped_buffer_takes_bytes_like():
    buf = CappedBuffer(4)
    buf.append(bytearray(b"ab"))
    buf.append(memoryview(b"cdef"))
    assert (buf.value, buf.dropped) == (b"abcd", 2)


def test_capped_buffer_rejects_negative_cap():
    with pytest.raises(ValueError):
        CappedBuffer(-1)


@given(st.integers(0, 64), st.lists(st.binary(max_size=20), max_size=10))
def test_capped_buffer_keeps_a_prefix(cap, pieces):
    buf = CappedBuffer(cap)
    for piece in pieces:
        buf.append(piece)
        assert len(buf) <= cap
    whole = b"".join(pieces)
    assert buf.value == whole[:cap]
    assert buf.dropped == max(0, len(whole) - cap)
    assert (buf.dropped > 0) == (len(whole) > cap)


# -- sse_view --------------------------------------------------------------------


def test_sse_view_nim():
    # NIM's events are already compact JSON, so the view is the stream, one line each.
    assert sse_view(NIM_STREAM) == "\n".join(event_lines(NIM_STREAM)) + "\n"
    assert sse_view(NIM_STREAM).count("\n") == 11


def test_sse_view_tgi_keeps_spacing_and_comments():
    assert sse_view(TGI_STREAM) == (
        'data:{"object":"chat.completion.chunk","id":"","created":1732000000,"model":"tgi","system_fingerprint":"3.0.0",'
        '"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}\n'
        ":\n"
        'data:{"object":"chat.completion.chunk","id":"","created":1732000000,"model":"tgi","system_fingerprint":"3.0.0",'
        '"choices":[{"index":0,"delta":{"role":"assistant","content":"lo"},"logprobs":null,"finish_reason":"eos_token"}],"usage":null}\n'
        "data:[DONE]\n"
    )


def test_sse_view_crlf_and_cr_read_as_lf():
    assert sse_view(ALL_STREAMS["nim_crlf"]) == sse_view(NIM_STREAM)
    assert sse_view(ALL_STREAMS["nim_cr"]) == sse_view(NIM_STREAM)


def test_sse_view_makes_json_compact():
    body = b'data: {"a": 1,\ndata:  "b": ["x", "\\u00e9\\ud83d\\ude80"]}\n\n: keep-alive\n\ndata: [DONE]\n\n'
    # Two data lines are one payload, joined with LF (JSON ignores it).
    assert sse_view(body) == 'data: {"a":1,"b":["x","é🚀"]}\n: keep-alive\ndata: [DONE]\n'


def test_sse_view_fields_comments_and_raw_data():
    body = (
        b": ping\nevent: error\nid: 7\ndata: not json\ndata: second line\nretry: 10\n\n"
        b"data:\n\n"
        b"id: 8\n\n"
    )
    assert sse_view(body) == (
        ": ping\n"
        "event: error | id: 7 | data: not json\\nsecond line | retry: 10\n"
        "data:\n"
        "id: 8\n"
    )


def test_sse_view_invalid_utf8_and_controls_are_escaped():
    body = b"data: caf\xc3 \x1b[31m\xff\n\ndata: \"\\u2028\\r\"\n\n"
    assert sse_view(body) == 'data: caf\\xc3 \\u001b[31m\\xff\ndata: "\\u2028\\r"\n'


def test_sse_view_unterminated_last_event():
    assert sse_view(b"data: [DONE]\n\ndata: {\"a\":") == 'data: [DONE]\ndata: {"a":  (unterminated)\n'
    assert sse_view(b"data: {}\n") == "data: {}  (unterminated)\n"


def test_sse_view_empty():
    assert sse_view(b"") == "(no events)\n"
    assert sse_view(b"\n\n\n\n") == "(no events)\n"


def test_sse_view_caps_events():
    body = nim_chunk("x") * (MAX_EVENTS + 5) + b"data: [DONE]\n\n"
    lines = sse_view(body).splitlines()
    assert len(lines) == MAX_EVENTS + 1
    assert lines[-1] == "… 6 more events"


def test_sse_view_cuts_long_lines():
    body = b'data: {"content":"' + b"x" * 100_000 + b'"}\n\ndata: [DONE]\n\n'
    first, second = sse_view(body).splitlines()
    assert first.endswith("x … (+80020 chars)")
    assert len(first) < 20_100
    assert second == "data: [DONE]"


# -- assembled_view --------------------------------------------------------------

NIM_ASSEMBLED = (
    "id: 8f20d6699e194a0abed38c671384d32d\n"
    "model: qwen/qwen3-next-80b-a3b-instruct\n"
    "choice 0\n"
    "  role: assistant\n"
    "  finish_reason: stop\n"
    "  content:\n"
    "    Tabs, naïve café — 東京 🚀\n"
    '    "quoted"\n'
)


def test_assembled_view_nim():
    assert assembled_view(NIM_STREAM) == NIM_ASSEMBLED
    assert assembled_view(NIM_STREAM_REPAIRED) == NIM_ASSEMBLED


def test_assembled_view_repeated_tool_name():
    # As openai-python's accumulator builds it: names and ids are concatenated.
    assert assembled_view(NIM_REPEATED_TOOL_NAME_STREAM) == (
        "id: nim-tool-1\n"
        "model: minimaxai/minimax-m2.7\n"
        "choice 0\n"
        "  role: assistant\n"
        "  finish_reason: tool_calls\n"
        "  content: null\n"
        "  tool call 0: read_fileread_fileread_file (id call_0call_0call_0)\n"
        "    {\n"
        '      "path": "a.txt"\n'
        "    }\n"
    )
    out, _ = rewrite(NIM_REPEATED_TOOL_NAME_STREAM)
    assert assembled_view(out) == (
        "id: nim-tool-1\n"
        "model: minimaxai/minimax-m2.7\n"
        "choice 0\n"
        "  role: assistant\n"
        "  finish_reason: tool_calls\n"
        "  content: null\n"
        "  tool call 0: read_file (id call_0)\n"
        "    {\n"
        '      "path": "a.txt"\n'
        "    }\n"
    )


def test_assembled_view_ollama_tools():
    upstream = assembled_view(OLLAMA_TOOLS_STREAM)
    assert "  role: assistantassistantassistant\n" in upstream
    assert "  tool call ? (no index): get_weather (id call_rcja46yu)\n" in upstream
    out, _ = rewrite(OLLAMA_TOOLS_STREAM)
    assert assembled_view(out) == (
        "id: chatcmpl-763\n"
        "model: llama3.2\n"
        "choice 0\n"
        "  role: assistant\n"
        "  finish_reason: tool_calls\n"
        '  content: ""\n'
        "  tool call 0: get_weather (id call_rcja46yu)\n"
        "    {\n"
        '      "city": "Paris"\n'
        "    }\n"
        "  tool call 1: get_time (id call_x81kq2mz)\n"
        "    {\n"
        '      "tz": "CET"\n'
        "    }\n"
    )


def test_assembled_view_tgi_and_exo_before_and_after():
    assert assembled_view(TGI_STREAM) == (
        'id: ""\nmodel: tgi\nchoice 0\n  role: assistantassistant\n  finish_reason: eos_token\n  content:\n    Hello\n'
    )
    assert assembled_view(rewrite(TGI_STREAM)[0]) == (
        "id: chatcmpl-synth\nmodel: tgi\nchoice 0\n  role: assistant\n  finish_reason: stop\n  content:\n    Hello\n"
    )
    assert assembled_view(EXO_STREAM).endswith("  finish_reason: (none)\n  content:\n    Hi there\n(the stream ended without [DONE])\n")
    assert assembled_view(rewrite(EXO_STREAM)[0]).endswith("  finish_reason: stop\n  content:\n    Hi there\n")


def chunk(delta, finish_reason=None, **top):
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    body.update(top)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_assembled_view_reasoning_usage_and_two_choices():
    body = (
        chunk({"role": "assistant", "content": None, "reasoning_content": "Let me "})
        + chunk({"content": None, "reasoning_content": "think."})
        + chunk({"content": "Hi"}, usage=None)
        + b'data: {"id":"c","choices":[{"index":1,"delta":{"role":"assistant","reasoning":"other"},"finish_reason":"length"}]}\n\n'
        + chunk({}, "stop")
        + b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":14,"completion_tokens":30,"total_tokens":44,"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'
        + b"data: [DONE]\n\n"
    )
    assert assembled_view(body) == (
        "id: c\n"
        "model: m\n"
        "choice 0\n"
        "  role: assistant\n"
        "  finish_reason: stop\n"
        "  content:\n"
        "    Hi\n"
        "  reasoning_content:\n"
        "    Let me think.\n"
        "choice 1\n"
        "  role: assistant\n"
        "  finish_reason: length\n"
        "  content: null\n"
        "  reasoning:\n"
        "    other\n"
        'usage: prompt 14, completion 30, total 44, completion_tokens_details {"reasoning_tokens":0}\n'
    )


def test_assembled_view_streamed_arguments_join():
    body = (
        chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})
        + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]})
        + chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]})
        + chunk({"tool_calls": [{"index": 1, "id": "call_def", "type": "function", "function": {"name": "broken", "arguments": '{"x":'}}]})
        + chunk({"tool_calls": [{"index": 2, "id": "call_ghi", "type": "function", "function": {"name": "noargs"}}]})
        + chunk({}, "tool_calls")
        + b"data: [DONE]\n\n"
    )
    assert assembled_view(body) == (
        "id: c\n"
        "model: m\n"
        "choice 0\n"
        "  role: assistant\n"
        "  finish_reason: tool_calls\n"
        "  content: null\n"
        "  tool call 0: get_weather (id call_abc)\n"
        "    {\n"
        '      "city": "Paris"\n'
        "    }\n"
        "  tool call 1: broken (id call_def)\n"
        '    {"x":\n'
        "    (arguments are not valid JSON)\n"
        "  tool call 2: noargs (id call_ghi)\n"
        "    (no arguments)\n"
    )


def test_assembled_view_non_stream_body():
    body = json.dumps(
        {
            "id": "chatcmpl-8fbMp",
            "object": "chat.completion",
            "created": 1704925779,
            "model": "gpt-3.5-turbo-0613",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
        indent=2,
    ).encode() + b"\n"
    assert assembled_view(b"\n\n" + body) == (
        "id: chatcmpl-8fbMp\n"
        "model: gpt-3.5-turbo-0613\n"
        "choice 0\n"
        "  role: assistant\n"
        "  finish_reason: tool_calls\n"
        "  content: null\n"
        "  tool call 0: f (id call_1)\n"
        "    {\n"
        '      "a": 1\n'
        "    }\n"
        "    (arguments sent as JSON, not as a string)\n"
        "usage: prompt 1, completion 2, total 3\n"
    )


def test_assembled_view_errors():
    midstream = (
        chunk({"role": "assistant", "content": "Hi"})
        + b'data: {"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}\n\n'
        + b"data: [DONE]\n\n"
    )
    assert assembled_view(midstream).endswith(
        'error: {"message":"The server had an error","type":"server_error","param":null,"code":null}\n'
    )
    tgi = b'data:{"error":"Input validation error","error_type":"validation"}\n\n'
    assert assembled_view(tgi) == (
        'error: {"error":"Input validation error","error_type":"validation"}\n(the stream ended without [DONE])\n'
    )
    gemini = b'[{"error":{"code":400,"message":"Invalid JSON payload"}}]'
    assert assembled_view(gemini) == 'error: {"code":400,"message":"Invalid JSON payload"}\n'
    nim = b'data:{"type":"urn:inference-service:problem-details:unprocessable-entity","title":"Unprocessable Entity","status":422}'
    assert assembled_view(nim) == (
        '(not a chat completion: {"type":"urn:inference-service:problem-details:unprocessable-entity",'
        '"title":"Unprocessable Entity","status":422})\n'
        "(the body is JSON after a data: prefix)\n"
    )
    vllm = b'{"object":"error","message":"too long","type":"BadRequestError","param":null,"code":400}'
    assert assembled_view(vllm).startswith('error: {"object":"error","message":"too long"')


def test_assembled_view_stops_at_done_and_notes_oddities():
    body = (
        chunk({"role": "assistant", "content": "a"})
        + b"data: not json\n\n"
        + b"data: [1, 2]\n\n"
        + b"data: [DONE]\n\n"
        + chunk({"content": "after"})
    )
    assert assembled_view(body) == (
        "id: c\nmodel: m\nchoice 0\n  role: assistant\n  finish_reason: (none)\n  content:\n    a\n"
        "(1 event is not JSON)\n"
        "(1 event is JSON but not chat chunks)\n"
        "(1 event is after [DONE], where clients stop reading)\n"
    )


def test_assembled_view_drops_an_unterminated_last_event():
    body = chunk({"role": "assistant", "content": "a"}) + chunk({"content": "b"})[:-2]
    assert assembled_view(body).endswith(
        "    a\n(the stream ended without [DONE])\n(the last event has no blank line after it, so openai-python drops it)\n"
    )


def test_assembled_view_empty_and_garbage():
    assert assembled_view(b"") == "(empty body)\n"
    assert assembled_view(b"  \n") == "(empty body)\n"
    assert assembled_view(b'{"id": "x", "choi') == "(the body starts like JSON but is not valid JSON)\n"
    assert assembled_view(b"\xff\xfe\x00garbage") == "(no data events)\n"
    assert assembled_view(b": keep-alive\n\n") == "(no data events)\n"


def test_assembled_view_escapes_what_would_break_lines():
    body = chunk({"role": "assistant", "content": "a\r\nb\u2028c\x1bd\ud800"}) + b"data: [DONE]\n\n"
    text = assembled_view(body)
    assert "    a\\r\n    b\\u2028c\\u001bd\\ud800\n" in text
    text.encode("utf-8")


# -- before_after_view -----------------------------------------------------------

NULLS = (
    "choices[0].delta.role=null, choices[0].delta.reasoning_content=null, "
    "choices[0].delta.tool_calls=null, choices[0].matched_stop=null, usage=null"
)


def test_before_after_nim():
    before, after = event_lines(NIM_STREAM), event_lines(NIM_STREAM_REPAIRED)
    notes = (
        [
            "dropped choices[0].delta.reasoning_content=null, choices[0].delta.tool_calls=null, "
            'choices[0].matched_stop=null, usage=null; changed choices[0].delta.content null -> ""'
        ]
        + ["dropped " + NULLS] * 8
        + [
            "dropped choices[0].delta.role=null, choices[0].delta.content=null, "
            "choices[0].delta.reasoning_content=null, choices[0].delta.tool_calls=null, usage=null"
        ]
    )
    expected = ["upstream 11 events, sent 11: 1 unchanged, 10 repaired, 0 dropped, 0 added"]
    for a, b, note in zip(before[:10], after[:10], notes):
        expected += ["~ - " + a, "~ + " + b, "~   " + note]
    expected.append("    data: [DONE]")
    assert before_after_view(NIM_STREAM, NIM_STREAM_REPAIRED) == "\n".join(expected) + "\n"


def test_before_after_repeated_tool_name():
    out, _ = rewrite(NIM_REPEATED_TOOL_NAME_STREAM)
    before, after = event_lines(NIM_REPEATED_TOOL_NAME_STREAM), event_lines(out)
    repeated = (
        "dropped choices[0].delta.role=null, choices[0].delta.content=null, "
        'choices[0].delta.tool_calls[0].id="call_0", choices[0].delta.tool_calls[0].type="function", '
        'choices[0].delta.tool_calls[0].function.name="read_file"'
    )
    assert before_after_view(NIM_REPEATED_TOOL_NAME_STREAM, out) == "\n".join(
        [
            "upstream 5 events, sent 5: 1 unchanged, 4 repaired, 0 dropped, 0 added",
            "~ - " + before[0],
            "~ + " + after[0],
            "~   dropped choices[0].delta.content=null",
            "~ - " + before[1],
            "~ + " + after[1],
            "~   " + repeated,
            "~ - " + before[2],
            "~ + " + after[2],
            "~   " + repeated,
            "~ - " + before[3],
            "~ + " + after[3],
            "~   dropped choices[0].delta.role=null, choices[0].delta.content=null",
            "    data: [DONE]",
            "",
        ]
    )


def test_before_after_tgi_spacing_and_comment():
    out, _ = rewrite(TGI_STREAM)
    lines = before_after_view(TGI_STREAM, out).splitlines()
    assert lines[0] == "upstream 4 events, sent 4: 1 unchanged, 3 repaired, 0 dropped, 0 added"
    assert lines[3] == '~   dropped usage=null; changed id "" -> "chatcmpl-synth"; space added after data:'
    assert lines[4] == "    :"
    assert lines[7] == (
        '~   dropped choices[0].delta.role="assistant", usage=null; changed id "" -> "chatcmpl-synth", '
        'choices[0].finish_reason "eos_token" -> "stop"; space added after data:'
    )
    assert lines[8:] == ["~ - data:[DONE]", "~ + data: [DONE]", "~   space added after data:"]


def test_before_after_added_events():
    out, _ = rewrite(EXO_STREAM)
    lines = before_after_view(EXO_STREAM, out).splitlines()
    assert lines[0] == "upstream 2 events, sent 4: 0 unchanged, 2 repaired, 0 dropped, 2 added"
    assert lines[3] == '~   changed object "chat.completion" -> "chat.completion.chunk"'
    assert lines[-2] == "+   " + event_lines(out)[2]
    assert lines[-1] == "+   data: [DONE]"


def test_before_after_dropped_events():
    body = (
        chunk({"role": "assistant", "content": "a"})
        + chunk({})  # empty: dropped
        + chunk({"content": "b"})
        + chunk({}, "stop")
        + b"data: [DONE]\n\n"
        + b"data: [DONE]\n\n"  # repeated: dropped
        + chunk({"content": "late"})  # after [DONE]: dropped
    )
    out, _ = rewrite(body)
    marks = [line[:4] for line in before_after_view(body, out).splitlines()[1:]]
    assert before_after_view(body, out).splitlines()[0] == (
        "upstream 7 events, sent 4: 4 unchanged, 0 repaired, 3 dropped, 0 added"
    )
    assert marks == ["    ", "-   ", "    ", "    ", "    ", "-   ", "-   "]


def test_before_after_unchanged_stream():
    assert before_after_view(OPENAI_STREAM, rewrite(OPENAI_STREAM)[0]) == (
        "upstream 7 events, sent 7: 7 unchanged, 0 repaired, 0 dropped, 0 added\n"
        + "".join("    " + line + "\n" for line in event_lines(OPENAI_STREAM))
    )


def test_before_after_comment_split_from_its_event():
    body = b': ping\ndata: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
    out, _ = rewrite(body)
    lines = before_after_view(body, out).splitlines()
    assert lines[1] == "    : ping"
    assert lines[2].startswith("~ - data: ")


def test_before_after_caps_events():
    body = nim_chunk(None, role="assistant") + nim_chunk("x") * (MAX_EVENTS + 10) + b"data: [DONE]\n\n"
    out, _ = rewrite(body)
    text = before_after_view(body, out)
    lines = text.splitlines()
    assert lines[0].endswith(f"(first {MAX_EVENTS} upstream and {MAX_EVENTS} sent events compared)")
    # The rewrite has one event more: the finish chunk NIM never sent.
    assert lines[-1] == "… 12 more upstream events, 13 more sent events"
    assert not any(line.startswith(("+   ", "-   ")) for line in lines)


def test_before_after_garbage_on_one_side():
    text = before_after_view(b"\xff\x00\r\rgarbage", NIM_STREAM)
    assert text.startswith("upstream 2 events, sent 11: 0 unchanged, 0 repaired, 2 dropped, 11 added\n")
    assert "\n-   \\xff\\u0000\n" in text
    assert "\n-   garbage  (unterminated)\n" in text


# -- robustness ------------------------------------------------------------------


def check(text):
    assert isinstance(text, str)
    assert "could not render" not in text
    text.encode("utf-8")
    # No line breaks but LF: a text pane shows exactly these lines.
    assert text.splitlines() == text.split("\n")[: len(text.splitlines())]
    assert text.endswith("\n")


@given(st.binary(max_size=400))
def test_views_take_any_bytes(data):
    for view in VIEWS:
        check(view(data))
    check(before_after_view(data, NIM_STREAM))


@given(st.lists(st.sampled_from([b"data:", b"data: ", b"{", b"}", b"[DONE]", b"\n", b"\r", b":", b'"', b"\\u", b"\xff",
                                 b'{"choices":[{"delta":', b'"content":"', b'"tool_calls":[{"index":0,', b"null", b"event: x",
                                 b'"error":', b"[", b"]", b",", b"1"]), max_size=40))
def test_views_take_stream_like_garbage(pieces):
    data = b"".join(pieces)
    for view in VIEWS:
        check(view(data))


@pytest.mark.parametrize("name", sorted(ALL_STREAMS))
def test_views_take_every_truncation(name):
    body = ALL_STREAMS[name]
    out, _ = rewrite(body)
    for cut in range(0, len(body), 7):
        check(sse_view(body[:cut]))
        check(assembled_view(body[:cut]))
        check(before_after_view(body[:cut], out))


def test_views_take_other_input_types():
    for view in VIEWS:
        check(view(bytearray(NIM_STREAM)))
        check(view(memoryview(NIM_STREAM)))
    assert sse_view(bytearray(NIM_STREAM)) == sse_view(NIM_STREAM)


def test_views_take_deep_nesting():
    deep = b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n"
    nested = b'data: {"choices":[{"delta":' + b'{"a":' * 900 + b"1" + b"}" * 900 + b"}]}\n\n"
    for body in (deep, nested):
        for view in VIEWS:
            check(view(body))
    check(before_after_view(nested, nested.replace(b"1", b"2")))


def test_views_are_fast_on_8_mib():
    piece = nim_chunk("token ")
    body = nim_chunk(None, role="assistant") + piece * (8 * 1024 * 1024 // len(piece)) + b"data: [DONE]\n\n"
    out, _ = rewrite(body)
    one_event = b'data: {"choices":[{"delta":{"content":"' + b"x" * (8 << 20) + b'"}}]}\n\n'
    garbage = bytes(range(256)) * (8 << 12)
    for data in (body, out, one_event, garbage):
        for view in VIEWS:
            start = time.perf_counter()
            check(view(data))
            assert time.perf_counter() - start < 3
    start = time.perf_counter()
    check(before_after_view(body, out))
    assert time.perf_counter() - start < 3
