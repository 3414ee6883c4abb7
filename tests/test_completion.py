"""One test per non-stream completion rule, named after the upstream behaviour it repairs."""

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.chat.completion import rewrite_completion
from normalize.endpoints.chat.options import Options
from normalize.wire.body import parse_json_body

OPENAI = {
    "id": "chatcmpl-8fbMpBNgyxD4RF9e2CcdsPWtgJ3qq",
    "object": "chat.completion",
    "created": 1704925779,
    "model": "gpt-3.5-turbo-0613",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    "service_tier": "default",
}
OPENAI_TOOL_CALL = {
    "id": "call_4XzlGBLtUe9dy3GVNV4jhq7h",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


def rewrite(obj, **kwargs):
    ids = itertools.count()
    base = dict(
        model="asked-model",
        make_id=lambda: "chatcmpl-synth",
        make_call_id=lambda: f"call_synth{next(ids)}",
        now=lambda: 1700000000,
    )
    return rewrite_completion(obj, Options(**{**base, **kwargs}))


def completion(message, finish_reason="stop", **top):
    out = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m"}
    out.update(top)
    out.setdefault("choices", [{"index": 0, "message": message, "finish_reason": finish_reason}])
    return out


def choice_of(out):
    return out["choices"][0]


def test_openai_completion_unchanged():
    before = json.dumps(OPENAI)
    out, repairs = rewrite(OPENAI)
    assert out == OPENAI
    assert list(out) == list(OPENAI)
    assert not repairs
    assert json.dumps(OPENAI) == before  # never changed in place


def test_openai_tool_calls_unchanged():
    obj = completion({"role": "assistant", "content": None, "tool_calls": [OPENAI_TOOL_CALL], "refusal": None}, "tool_calls")
    out, repairs = rewrite(obj)
    assert out == obj
    assert not repairs


# -- parse_json_body -------------------------------------------------------------


def test_deepseek_blank_lines_before_json():
    assert parse_json_body(b"\n\n\n  " + json.dumps(OPENAI).encode() + b"\n") == OPENAI


@pytest.mark.parametrize("prefix", [b"data:", b"data: ", b"\n data: "])
def test_data_prefix_before_json(prefix):
    assert parse_json_body(prefix + b'{"a":1}') == {"a": 1}


@pytest.mark.parametrize("body", [b"", b"\n\n", b"<html>502</html>", b"data: [DONE]", b'{"a":'])
def test_body_not_json(body):
    assert parse_json_body(body) is None


# -- the completion --------------------------------------------------------------


def test_id_missing():
    for obj in (completion({"content": "x"}, id=""), {k: v for k, v in completion({"content": "x"}).items() if k != "id"}):
        out, repairs = rewrite(obj)
        assert out["id"] == "chatcmpl-synth"
        assert list(out)[:4] == ["id", "object", "created", "model"]
        assert repairs["id_missing"] == 1


def test_completion_object_wrong():
    out, repairs = rewrite(completion({"role": "assistant", "content": "x"}, object="chat.completion.chunk"))
    assert out["object"] == "chat.completion"
    assert repairs == {"completion_object_wrong": 1}


@pytest.mark.parametrize(("created", "expected"), [(None, 1700000000), ("1", 1700000000), (12.7, 12), (True, 1700000000)])
def test_created_missing_or_not_integer(created, expected):
    out, repairs = rewrite(completion({"role": "assistant", "content": "x"}, created=created))
    assert out["created"] == expected
    assert repairs == {"created_missing_or_not_integer": 1}


def test_model_missing():
    out, repairs = rewrite(completion({"role": "assistant", "content": "x"}, model=""))
    assert out["model"] == "asked-model"
    assert repairs == {"model_missing": 1}


def test_model_alias():
    out, repairs = rewrite(completion({"role": "assistant", "content": "x"}, model="meta/llama-3.1-8b-instruct"), model_alias="gpt-4o")
    assert out["model"] == "gpt-4o"
    assert not repairs


def test_choices_missing_or_object():
    out, repairs = rewrite(completion(None, choices={"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}))
    assert out["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}]
    assert repairs == {"choices_missing_or_object": 1}
    out, _ = rewrite({"id": "c1", "object": "chat.completion", "created": 1, "model": "m"})
    assert out["choices"] == []


def test_choice_index_missing():
    obj = completion(None, choices=[{"message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"}] * 2)
    out, repairs = rewrite(obj)
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert list(out["choices"][0]) == ["index", "message", "finish_reason"]
    assert repairs == {"choice_index_missing": 2}


def test_null_fields():
    # SGLang behind NIM: nulls on every level; only logprobs, finish_reason and refusal stay.
    obj = {
        "id": "8f20d6699e194a0abed38c671384d32d",
        "object": "chat.completion",
        "created": 1754000000,
        "model": "qwen/qwen3-next-80b-a3b-instruct",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi", "reasoning_content": None, "tool_calls": None, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
                "matched_stop": None,
            }
        ],
        "usage": None,
        "system_fingerprint": None,
    }
    out, repairs = rewrite(obj)
    assert out == {
        "id": "8f20d6699e194a0abed38c671384d32d",
        "object": "chat.completion",
        "created": 1754000000,
        "model": "qwen/qwen3-next-80b-a3b-instruct",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi", "refusal": None}, "logprobs": None, "finish_reason": "stop"}
        ],
    }
    assert repairs == {"null_fields": 5}


# -- the message -----------------------------------------------------------------


@pytest.mark.parametrize("role", [None, "", "model"])
def test_role_missing(role):
    out, repairs = rewrite(completion({"role": role, "content": "x"}))
    assert choice_of(out)["message"] == {"role": "assistant", "content": "x"}
    assert repairs == {"role_missing": 1}


def test_role_key_missing():
    out, repairs = rewrite(completion({"content": "x"}))
    assert list(choice_of(out)["message"]) == ["role", "content"]
    assert repairs == {"role_missing": 1}


def test_content_null():
    # DeepSeek: content null beside reasoning_content; clients that `+=` print "null".
    out, repairs = rewrite(completion({"role": "assistant", "content": None, "reasoning_content": "Hmm"}))
    assert choice_of(out)["message"] == {"role": "assistant", "content": "", "reasoning_content": "Hmm"}
    assert repairs == {"content_null": 1}


def test_content_missing():
    out, repairs = rewrite(completion({"role": "assistant"}))
    assert choice_of(out)["message"] == {"role": "assistant", "content": ""}
    assert repairs == {"content_missing": 1}


def test_content_missing_beside_tool_calls():
    out, repairs = rewrite(completion({"role": "assistant", "tool_calls": [OPENAI_TOOL_CALL]}, "tool_calls"))
    assert choice_of(out)["message"] == {"role": "assistant", "content": None, "tool_calls": [OPENAI_TOOL_CALL]}
    assert repairs == {"content_missing": 1}


def test_message_missing():
    # exo's stream-shaped choice: the text is in `delta`.
    obj = completion(None, choices=[{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}])
    out, repairs = rewrite(obj)
    assert choice_of(out) == {
        "index": 0,
        "message": {"role": "assistant", "content": "Hi"},
        "delta": {"role": "assistant", "content": "Hi"},
        "finish_reason": "stop",
    }
    assert repairs == {"message_missing": 1}
    out, _ = rewrite(completion(None, choices=[{"index": 0, "finish_reason": "stop"}]))
    assert choice_of(out)["message"] == {"role": "assistant", "content": ""}


# -- finish_reason ---------------------------------------------------------------


def test_finish_reason_eos_token():
    for reason in ("eos_token", "eos"):
        out, repairs = rewrite(completion({"role": "assistant", "content": "x"}, reason))
        assert choice_of(out)["finish_reason"] == "stop"
        assert repairs == {"finish_reason_eos_token": 1}


def test_finish_reason_empty():
    out, repairs = rewrite(completion({"role": "assistant", "content": "x"}, ""))
    assert choice_of(out)["finish_reason"] == "stop"
    assert repairs == {"finish_reason_empty": 1}


def test_finish_reason_never_sent():
    out, repairs = rewrite(completion({"role": "assistant", "content": "x"}, None))
    assert choice_of(out)["finish_reason"] == "stop"
    assert repairs == {"finish_reason_never_sent": 1}
    out, repairs = rewrite(completion(None, choices=[{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [OPENAI_TOOL_CALL]}}]))
    assert choice_of(out) == {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [OPENAI_TOOL_CALL]}, "finish_reason": "tool_calls"}
    assert repairs == {"finish_reason_never_sent": 1}


def test_tool_calls_finish_stop():
    # Ollama and Gemini compat end tool calls with "stop"; agents wait for "tool_calls".
    out, repairs = rewrite(completion({"role": "assistant", "content": "", "tool_calls": [OPENAI_TOOL_CALL]}, "stop"))
    assert choice_of(out)["finish_reason"] == "tool_calls"
    assert choice_of(out)["message"]["content"] == ""
    assert repairs == {"tool_calls_finish_stop": 1}


def test_finish_reason_length_kept():
    out, repairs = rewrite(completion({"role": "assistant", "content": "x"}, "length"))
    assert choice_of(out)["finish_reason"] == "length"
    assert not repairs


# -- tool calls ------------------------------------------------------------------


def test_tgi_tool_arguments_not_string():
    # TGI #2461: non-stream arguments as a JSON object.
    call = {"id": "0", "type": "function", "function": {"description": None, "name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}}}
    out, repairs = rewrite(completion({"role": "assistant", "content": None, "tool_calls": [call]}, "eos_token", id=""))
    assert choice_of(out) == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"°C"}'}}],
        },
        "finish_reason": "tool_calls",
    }
    assert repairs == {
        "id_missing": 1,
        "tool_arguments_not_string": 1,
        "null_fields": 1,
        "finish_reason_eos_token": 1,
        "tool_calls_finish_stop": 1,
    }


def test_tool_arguments_missing():
    # Fireworks: arguments null.
    call = {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": None}}
    out, repairs = rewrite(completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"))
    assert choice_of(out)["message"]["tool_calls"][0]["function"] == {"name": "now", "arguments": "{}"}
    assert repairs == {"tool_arguments_missing": 1}


def test_tool_call_id_missing():
    # Gemini compat: tool calls without ids; each gets its own.
    calls = [{"type": "function", "function": {"name": "a", "arguments": "{}"}}, {"id": "", "function": {"name": "b", "arguments": "{}"}}]
    out, repairs = rewrite(completion({"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"))
    assert choice_of(out)["message"]["tool_calls"] == [
        {"id": "call_synth0", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"id": "call_synth1", "type": "function", "function": {"name": "b", "arguments": "{}"}},
    ]
    assert repairs == {"tool_call_id_missing": 2, "tool_call_type_missing": 1}


def test_tool_call_type_missing():
    call = {"id": "call_1", "function": {"name": "a", "arguments": "{}"}}
    out, repairs = rewrite(completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"))
    assert choice_of(out)["message"]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}}]
    assert repairs == {"tool_call_type_missing": 1}


def test_tool_calls_as_object():
    out, repairs = rewrite(completion({"role": "assistant", "content": None, "tool_calls": OPENAI_TOOL_CALL}, "tool_calls"))
    assert choice_of(out)["message"]["tool_calls"] == [OPENAI_TOOL_CALL]
    assert repairs == {"tool_calls_as_object": 1}


def test_empty_tool_calls_list_kept():
    # vLLM sends `tool_calls: []` beside plain content; it is not a tool call.
    out, repairs = rewrite(completion({"role": "assistant", "content": None, "tool_calls": []}, "stop"))
    assert choice_of(out)["message"] == {"role": "assistant", "content": "", "tool_calls": []}
    assert choice_of(out)["finish_reason"] == "stop"
    assert repairs == {"content_null": 1}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["id", "choices", "index", "message", "delta", "role", "content", "tool_calls", "function", "arguments", "name", "type", "finish_reason"]),
        inner,
        max_size=5,
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(["id", "object", "created", "model", "choices", "usage"]), JSON))
def test_any_completion_comes_out_openai_shaped(obj):
    out, _ = rewrite(obj)
    assert list(out)[:4] == ["id", "object", "created", "model"]
    assert isinstance(out["choices"], list)
    for choice in out["choices"]:
        if isinstance(choice, dict):
            assert choice["message"]["role"] == "assistant"
            assert choice["finish_reason"] is not None
            message = choice["message"]
            assert message["content"] is not None or message["tool_calls"]  # null only beside tool calls
    json.dumps(out)
