"""One test per chunk rule, named after the upstream behaviour it repairs."""

import itertools

import pytest

from normalize.endpoints.chat.chunks import ChunkRules
from normalize.endpoints.chat.options import Options


def make_rules(**options):
    ids = itertools.count()
    base = dict(
        make_id=lambda: "chatcmpl-synth",
        make_call_id=lambda: f"call_synth{next(ids)}",
        now=lambda: 1700000000,
        model="asked-model",
    )
    return ChunkRules(Options(**{**base, **options}))


def chunk(delta=None, finish_reason=None, *, index=0, **top):
    out = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out.update(top)
    out.setdefault("choices", [{"index": index, "delta": delta if delta is not None else {}, "finish_reason": finish_reason}])
    return out


def run(rules, *chunks):
    return [rules.rewrite(c) for c in chunks]


def delta_of(out):
    return out["choices"][0]["delta"]


def test_null_fields():
    rules = make_rules()
    first, later = run(
        rules,
        chunk({"role": "assistant", "content": None, "reasoning_content": None, "tool_calls": None}, usage=None),
        {
            **chunk({"role": None, "content": "Ta", "reasoning_content": None}),
            "system_fingerprint": None,
            "usage": None,
        },
    )
    assert delta_of(first) == {"role": "assistant", "content": ""}
    assert "usage" not in first
    assert delta_of(later) == {"content": "Ta"}
    assert list(later) == ["id", "object", "created", "model", "choices"]
    assert rules.repairs["null_fields"] == 8


def test_null_fields_keeps_the_nulls_openai_sends():
    out = make_rules().rewrite(
        chunk(choices=[{"index": 0, "delta": {"content": "x"}, "logprobs": None, "finish_reason": None, "matched_stop": None}])
    )
    assert out["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": "x"}, "logprobs": None, "finish_reason": None}]


def test_role_missing_on_first_chunk():
    rules = make_rules()
    (out,) = run(rules, chunk({"content": "Hi"}))
    assert delta_of(out) == {"role": "assistant", "content": "Hi"}
    assert rules.repairs["role_missing_on_first_chunk"] == 1
    # GLM-5 sends role "" and NIM role null: both become "assistant" on the first chunk.
    assert delta_of(make_rules().rewrite(chunk({"role": "", "content": "Hi"})))["role"] == "assistant"


def test_role_repeated():
    rules = make_rules()
    outs = run(rules, chunk({"role": "assistant", "content": "Hel"}), chunk({"role": "assistant", "content": "lo"}))
    assert [delta_of(o) for o in outs] == [{"role": "assistant", "content": "Hel"}, {"content": "lo"}]
    assert rules.repairs["role_repeated"] == 1


def test_content_missing_on_first_chunk():
    rules = make_rules()
    (out,) = run(rules, chunk({"role": "assistant", "reasoning_content": "Okay"}))
    assert delta_of(out) == {"role": "assistant", "content": "", "reasoning_content": "Okay"}
    assert rules.repairs["content_missing_on_first_chunk"] == 1


def test_first_chunk_with_tool_calls_gets_no_empty_content():
    out = make_rules().rewrite(
        chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]})
    )
    assert "content" not in delta_of(out)


def test_chunk_id_missing():
    rules = make_rules()
    outs = run(rules, chunk({"content": "a"}, id=""), chunk({"content": "b"}, id=None))
    assert [o["id"] for o in outs] == ["chatcmpl-synth", "chatcmpl-synth"]
    assert rules.repairs["chunk_id_missing"] == 2
    gemini = {"choices": [{"delta": {"content": "x", "role": "assistant"}, "index": 0}], "created": 5, "model": "gemini-2.0-flash", "object": "chat.completion.chunk"}
    out = make_rules().rewrite(gemini)
    assert list(out)[:4] == ["id", "object", "created", "model"]
    assert out["id"] == "chatcmpl-synth"


def test_chunk_id_changing():
    rules = make_rules()
    outs = run(rules, chunk({"content": "a"}, id="one"), chunk({"content": "b"}, id="two"))
    assert [o["id"] for o in outs] == ["one", "one"]
    assert rules.repairs["chunk_id_changing"] == 1


def test_chunk_object_wrong():
    rules = make_rules()
    (out,) = run(rules, chunk({"content": "a"}, object="chat.completion"))
    assert out["object"] == "chat.completion.chunk"
    assert rules.repairs["chunk_object_wrong"] == 1


def test_created_changing():
    rules = make_rules()
    outs = run(rules, chunk({"content": "a"}, created=5), chunk({"content": "b"}, created=6), chunk({"content": "c"}, created=0))
    assert [o["created"] for o in outs] == [5, 5, 5]
    assert rules.repairs["created_changing"] == 1
    assert rules.repairs["created_missing_or_not_integer"] == 1


@pytest.mark.parametrize(("created", "expected"), [(None, 1700000000), ("1", 1700000000), (12.7, 12), (0, 1700000000)])
def test_created_missing_or_not_integer(created, expected):
    assert make_rules().rewrite(chunk({"content": "a"}, created=created))["created"] == expected


def test_model_missing():
    rules = make_rules()
    outs = run(rules, chunk({"content": "a"}, model=""), chunk({"content": "b"}, model="real"), chunk({"content": "c"}, model=None))
    assert [o["model"] for o in outs] == ["asked-model", "real", "real"]
    assert rules.repairs["model_missing"] == 2


def test_choices_missing_or_object():
    out = make_rules().rewrite(chunk(choices={"index": 0, "delta": {"content": "a"}, "finish_reason": None}))
    assert out["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": "a"}, "finish_reason": None}]


def test_choice_index_missing():
    out = make_rules().rewrite(chunk(choices=[{"delta": {"content": "a"}, "finish_reason": None}]))
    assert out["choices"][0]["index"] == 0


def test_finish_reason_key_missing():
    # DashScope deepseek-r1: no finish_reason key at all.
    out = make_rules().rewrite(chunk(choices=[{"index": 0, "delta": {"reasoning_content": "Okay", "role": "assistant"}}]))
    assert out["choices"][0] == {"index": 0, "delta": {"role": "assistant", "content": "", "reasoning_content": "Okay"}, "finish_reason": None}


def test_finish_reason_empty():
    rules = make_rules()
    outs = run(rules, chunk({"role": "assistant", "content": " Hello"}, ""), chunk({"content": "!"}, "stop"))
    assert [o["choices"][0]["finish_reason"] for o in outs] == [None, "stop"]
    assert rules.repairs["finish_reason_empty"] == 1


@pytest.mark.parametrize("reason", ["eos_token", "eos"])
def test_finish_reason_eos_token(reason):
    assert make_rules().rewrite(chunk({"content": "a"}, reason))["choices"][0]["finish_reason"] == "stop"


def test_tool_calls_finish_stop():
    rules = make_rules()
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    outs = run(rules, chunk({"role": "assistant", "tool_calls": [call]}), chunk({}, "stop"))
    assert outs[1]["choices"][0]["finish_reason"] == "tool_calls"


def test_delta_missing():
    # Azure's annotation chunks carry a choice with no delta.
    rules = make_rules()
    (out,) = run(rules, chunk(choices=[{"index": 0, "finish_reason": None, "content_filter_results": {}}]))
    assert out["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert rules.repairs["delta_missing"] == 1


def test_message_in_chunk():
    # exo: `message` beside `delta` in stream chunks; a chunk with only a message uses it.
    rules = make_rules()
    outs = run(
        rules,
        chunk(choices=[{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]),
        chunk(choices=[{"index": 0, "message": {"content": " there"}, "finish_reason": None}]),
    )
    assert [o["choices"][0] for o in outs] == [
        {"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None},
        {"index": 0, "delta": {"content": " there"}, "finish_reason": None},
    ]
    assert rules.repairs["message_in_chunk"] == 2


def test_delta_not_object():
    out = make_rules().rewrite(chunk(choices=[{"index": 0, "delta": "text", "finish_reason": None}]))
    assert out["choices"][0]["delta"] == {"role": "assistant", "content": "text"}


def test_empty_chunk():
    rules = make_rules()
    outs = run(rules, chunk({"role": "assistant", "content": ""}), chunk({"role": None, "content": None}), chunk({}, "stop"))
    assert outs[1] is None
    assert outs[2]["choices"][0]["finish_reason"] == "stop"
    assert rules.repairs["empty_chunk"] == 1


def test_empty_chunk_keeps_extras():
    rules = make_rules()
    run(rules, chunk({"content": "a"}))
    out = rules.rewrite(chunk({}, timings={"predicted_n": 3}))
    assert out is not None and out["timings"] == {"predicted_n": 3}


# -- tool calls ---------------------------------------------------------------

def tool_chunk(*calls, finish_reason=None):
    return chunk({"tool_calls": list(calls)}, finish_reason)


def calls_of(out):
    return delta_of(out).get("tool_calls")


def test_tool_calls_as_object():
    # TGI before PR #3075 streamed one tool call as an object.
    rules = make_rules()
    (out,) = run(rules, chunk({"role": "assistant", "tool_calls": {"index": 0, "id": "", "type": "function", "function": {"name": "f", "arguments": "{"}}}))
    assert calls_of(out) == [{"index": 0, "id": "call_synth0", "type": "function", "function": {"name": "f", "arguments": "{"}}]
    assert rules.repairs["tool_calls_as_object"] == 1


def test_tool_call_index_missing():
    # Ollama < 0.4.7: each call whole, with an id, without an index.
    rules = make_rules()
    outs = run(
        rules,
        tool_chunk({"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}),
        tool_chunk({"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}}),
    )
    assert [c["index"] for o in outs for c in calls_of(o)] == [0, 1]
    assert rules.repairs["tool_call_index_missing"] == 2


def test_tool_call_index_missing_without_ids():
    # Gemini's compatible endpoint: no index and no id; each named delta is a new call.
    rules = make_rules()
    (out,) = run(rules, tool_chunk({"function": {"name": "a", "arguments": "{}"}, "type": "function"}, {"function": {"name": "b", "arguments": "{}"}, "type": "function"}))
    assert calls_of(out) == [
        {"index": 0, "id": "call_synth0", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"index": 1, "id": "call_synth1", "type": "function", "function": {"name": "b", "arguments": "{}"}},
    ]
    assert rules.repairs["tool_call_id_missing"] == 2


def test_tool_call_index_reused():
    # Ollama: parallel calls all at index 0, told apart by their ids.
    rules = make_rules()
    outs = run(
        rules,
        tool_chunk({"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}),
        tool_chunk({"index": 0, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}),
        tool_chunk({"index": 0, "function": {"arguments": " "}}),
    )
    assert [c["index"] for o in outs for c in calls_of(o)] == [0, 1, 1]
    assert rules.repairs["tool_call_index_reused"] == 1


def test_tool_call_id_reused():
    # Two calls the upstream numbers apart (indexes 0 and 1) under one id: two calls, not
    # one with both arguments run together; the second gets an id of its own, as
    # clients key calls by id. A repeated id on later deltas still continues its call.
    rules = make_rules()
    outs = run(
        rules,
        tool_chunk({"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a":'}}),
        tool_chunk({"index": 1, "id": "call_a", "type": "function", "function": {"name": "g", "arguments": "{}"}}),
        tool_chunk({"index": 0, "function": {"arguments": "1}"}}),
        tool_chunk({"index": 1, "id": "call_a", "function": {"arguments": " "}}),
    )
    calls = [c for o in outs for c in calls_of(o)]
    assert calls == [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a":'}},
        {"index": 1, "id": "call_a_1", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        {"index": 0, "function": {"arguments": "1}"}},
        {"index": 1, "function": {"arguments": " "}},
    ]
    assert rules.repairs["tool_call_id_reused"] == 1
    assert rules.repairs["tool_call_id_repeated"] == 1


def test_tool_name_repeated():
    rules = make_rules()
    first = {"index": 0, "id": "call_0", "type": "function", "function": {"name": "read_file", "arguments": ""}}
    again = {"index": 0, "id": "call_0", "type": "function", "function": {"name": "read_file", "arguments": '{"path":'}}
    outs = run(rules, tool_chunk(first), tool_chunk(again))
    assert calls_of(outs[1]) == [{"index": 0, "function": {"arguments": '{"path":'}}]
    assert rules.repairs["tool_name_repeated"] == 1


def test_tool_call_id_repeated():
    """The call's id again on a later delta (or TGI's `"id":""`): an accumulator that sets the id
    from each delta would replace it; only the first delta of a call carries it."""
    rules = make_rules()
    first = {"index": 0, "id": "call_0", "type": "function", "function": {"name": "read_file", "arguments": ""}}
    again = {"index": 0, "id": "call_0", "type": "function", "function": {"arguments": '{"path":'}}
    empty = {"index": 0, "id": "", "type": "function", "function": {"arguments": '"a"}'}}
    outs = run(rules, tool_chunk(first), tool_chunk(again), tool_chunk(empty))
    assert [calls_of(o) for o in outs[1:]] == [
        [{"index": 0, "function": {"arguments": '{"path":'}}],
        [{"index": 0, "function": {"arguments": '"a"}'}}],
    ]
    assert rules.repairs["tool_call_id_repeated"] == 2


def test_tool_name_empty():
    # LM Studio 0.3.16: later chunks say "name":"".
    rules = make_rules()
    outs = run(
        rules,
        tool_chunk({"index": 0, "id": "c", "type": "function", "function": {"name": "count", "arguments": ""}}),
        tool_chunk({"index": 0, "type": "function", "function": {"name": "", "arguments": "count"}}),
    )
    assert calls_of(outs[1]) == [{"index": 0, "function": {"arguments": "count"}}]
    assert rules.repairs["tool_name_empty"] == 1


def test_tool_name_missing():
    rules = make_rules()
    run(rules, tool_chunk({"index": 0, "id": "c", "type": "function", "function": {"name": "", "arguments": ""}}))
    assert rules.repairs["tool_name_missing"] == 1


def test_tool_name_late():
    # vLLM (command-a): the first tool delta says "name":"", the name comes later.
    rules = make_rules()
    opened = tool_chunk({"index": 0, "id": "call_1", "type": "function", "function": {"name": "", "arguments": ""}})
    named = tool_chunk({"index": 0, "function": {"name": "get_weather", "arguments": '{"city":'}})
    assert rules.chunks(opened) == []  # held until the name comes
    first, second = rules.chunks(named)
    assert calls_of(first) == [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]
    assert calls_of(second) == [{"index": 0, "function": {"arguments": '{"city":'}}]
    assert rules.repairs["tool_name_late"] == 1


def test_tool_name_late_never_comes():
    # Held chunks go as they came when anything else comes, or at the end.
    rules = make_rules()
    assert rules.chunks(tool_chunk({"index": 0, "id": "c", "type": "function", "function": {"name": "", "arguments": "{}"}})) == []
    assert rules.chunks(tool_chunk({"index": 0, "function": {"arguments": " "}})) == []
    held = rules.closing_chunks()
    assert [calls_of(c) for c in held[:2]] == [
        [{"index": 0, "id": "c", "type": "function", "function": {"name": "", "arguments": "{}"}}],
        [{"index": 0, "function": {"arguments": " "}}],
    ]
    assert held[2]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_call_id_missing():
    (out,) = run(make_rules(), tool_chunk({"index": 0, "type": "function", "function": {"name": "f", "arguments": "{}"}}))
    assert calls_of(out)[0]["id"] == "call_synth0"


def test_tool_call_type_missing():
    (out,) = run(make_rules(), tool_chunk({"index": 0, "id": "x", "function": {"name": "f", "arguments": "{}"}}))
    assert calls_of(out)[0]["type"] == "function"


def test_tool_arguments_not_string():
    (out,) = run(make_rules(), tool_chunk({"index": 0, "id": "x", "type": "function", "function": {"name": "f", "arguments": {"city": "東京"}}}))
    assert calls_of(out)[0]["function"]["arguments"] == '{"city":"東京"}'


def test_tool_call_nulls_dropped():
    rules = make_rules()
    outs = run(
        rules,
        tool_chunk({"index": 0, "id": "x", "type": "function", "function": {"name": "f", "arguments": None}}),
        tool_chunk({"index": 0, "id": None, "type": None, "function": {"name": None, "arguments": "{}"}}),
    )
    assert calls_of(outs[0]) == [{"index": 0, "id": "x", "type": "function", "function": {"name": "f", "arguments": ""}}]
    assert calls_of(outs[1]) == [{"index": 0, "function": {"arguments": "{}"}}]


def test_tool_arguments_preserved_byte_for_byte():
    pieces = ['{"q":', ' "a\\"b', " \u00e9\ud83d\ude80", '"}']
    rules = make_rules()
    calls = [{"index": 0, "id": "x", "type": "function", "function": {"name": "f", "arguments": ""}}] + [
        {"index": 0, "function": {"arguments": p}} for p in pieces
    ]
    outs = run(rules, *[tool_chunk(c) for c in calls])
    assert "".join(calls_of(o)[0]["function"]["arguments"] for o in outs) == "".join(pieces)


def test_finish_reason_never_sent():
    rules = make_rules()
    run(rules, chunk({"content": "a"}), tool_chunk({"index": 0, "id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}}, ), chunk({"content": "b"}, index=1))
    finishes = rules.closing_chunks()
    assert [(c["choices"][0]["index"], c["choices"][0]["finish_reason"]) for c in finishes] == [(0, "tool_calls"), (1, "stop")]
    assert finishes[0] == {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}],
    }
    assert rules.closing_chunks() == []


# -- usage --------------------------------------------------------------------

USAGE = {"prompt_tokens": 14, "completion_tokens": 30, "total_tokens": 44}


def test_empty_choices_chunk():
    # llama.cpp sends a usage chunk unasked; Azure sends prompt-filter chunks.
    rules = make_rules()
    assert rules.rewrite(chunk(choices=[], usage=USAGE)) is None
    assert rules.rewrite(chunk(choices=[], prompt_filter_results=[{"prompt_index": 0}], id="", model="")) is None
    assert rules.repairs["empty_choices_chunk"] == 2


def test_usage_not_last():
    # NIM with include_usage: usage on every chunk; OpenAI sends it once, at the end.
    rules = make_rules(include_usage=True)
    outs = run(rules, chunk({"content": "a"}, usage={**USAGE, "completion_tokens": 1}), chunk({}, "stop", usage=USAGE))
    assert all("usage" not in o for o in outs)
    (final,) = rules.closing_chunks()
    assert final == {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": USAGE}
    assert rules.repairs["usage_not_last"] == 2


def test_usage_chunk_from_upstream_is_sent_last():
    rules = make_rules(include_usage=True)
    usage_chunk = chunk(choices=[], usage=USAGE, system_fingerprint="fp_1")
    assert rules.rewrite(chunk({"content": "a"})) is not None
    assert rules.rewrite(usage_chunk) is None
    assert rules.closing_chunks()[-1] == {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": "fp_1", "choices": [], "usage": USAGE}
    assert not rules.repairs["usage_not_last"]


def test_usage_under_x_groq():
    rules = make_rules(include_usage=True)
    out = rules.rewrite(chunk({}, "stop", x_groq={"id": "req_1", "usage": USAGE}))
    assert out["x_groq"] == {"id": "req_1"}
    assert rules.closing_chunks()[-1]["usage"] == USAGE
    assert rules.repairs["usage_under_x_groq"] == 1


def test_model_aliased():
    rules = make_rules(model_alias="gpt-4o")
    assert rules.rewrite(chunk({"content": "a"}, model="meta/llama-3.1-70b-instruct"))["model"] == "gpt-4o"
    assert rules.closing_chunks()[0]["model"] == "gpt-4o"


def test_conforming_chunks_are_unchanged():
    rules = make_rules()
    conforming = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hi"}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    ]
    import copy

    assert run(rules, *copy.deepcopy(conforming)) == conforming
    assert not rules.repairs
