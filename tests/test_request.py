"""Request rewrites: one test per rule, named after the upstream behaviour it avoids."""

import json

import pytest

from normalize.endpoints.chat.request import rewrite_request
from normalize.mitm.options import parse_model_map

MESSAGES = [{"role": "user", "content": "Hi"}]


def rewrite(body, *, model_map=None, drop_params=(), rename_legacy=True):
    return rewrite_request(body, model_map=model_map or {}, drop_params=list(drop_params), rename_legacy=rename_legacy)


def test_plain_request_unchanged():
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 5}
    out, repairs, alias = rewrite(body)
    assert out == body
    assert not repairs
    assert alias is None


def test_model_alias():
    body = {"model": "gpt-4o", "messages": MESSAGES}
    before = json.dumps(body)
    out, repairs, alias = rewrite(body, model_map={"gpt-4o": "meta/llama-3.1-8b-instruct"})
    assert out == {"model": "meta/llama-3.1-8b-instruct", "messages": MESSAGES}
    assert alias == "gpt-4o"
    assert repairs == {"model_alias": 1}
    assert json.dumps(body) == before  # never changed in place


def test_model_not_an_alias():
    out, repairs, alias = rewrite({"model": "meta/llama-3.1-8b-instruct"}, model_map={"gpt-4o": "x"})
    assert out == {"model": "meta/llama-3.1-8b-instruct"}
    assert (repairs, alias) == ({}, None)


@pytest.mark.parametrize("stream", [None, False, "true"])
def test_stream_options_without_stream(stream):
    # NIM: 400 "The 'stream_options' field is only allowed when 'stream' is set to true."
    body = {"model": "m", "messages": MESSAGES, "stream_options": {"include_usage": True}}
    if stream is not None:
        body["stream"] = stream
    out, repairs, _ = rewrite(body)
    assert "stream_options" not in out
    assert out == {k: v for k, v in body.items() if k != "stream_options"}
    assert repairs == {"stream_options_without_stream": 1}


def test_param_dropped():
    # NIM: "Unsupported parameter(s): `tool_stream`", "extra_forbidden ... ('body', 'dimensions')".
    body = {"model": "m", "messages": MESSAGES, "tool_stream": True, "frequency_penalty": 0.5, "temperature": 0}
    out, repairs, _ = rewrite(body, drop_params=["tool_stream", "frequency_penalty", "client_metadata"])
    assert out == {"model": "m", "messages": MESSAGES, "temperature": 0}
    assert repairs == {"param_dropped": 2}


def test_max_completion_tokens_unsupported():
    out, repairs, _ = rewrite({"model": "m", "max_completion_tokens": 100, "messages": MESSAGES})
    assert list(out.items()) == [("model", "m"), ("max_tokens", 100), ("messages", MESSAGES)]
    assert repairs == {"max_completion_tokens_unsupported": 1}


def test_max_completion_tokens_beside_max_tokens():
    out, repairs, _ = rewrite({"model": "m", "max_tokens": 50, "max_completion_tokens": 100})
    assert out == {"model": "m", "max_tokens": 50}
    assert repairs == {"max_completion_tokens_unsupported": 1}


def test_developer_role_unsupported():
    messages = [{"role": "developer", "content": "Be brief."}, *MESSAGES, {"role": "developer", "content": "Again."}]
    out, repairs, _ = rewrite({"model": "m", "messages": messages})
    assert out["messages"] == [{"role": "system", "content": "Be brief."}, *MESSAGES, {"role": "system", "content": "Again."}]
    assert messages[0]["role"] == "developer"  # the client's body is left as it was
    assert repairs == {"developer_role_unsupported": 2}


def test_rename_legacy_off():
    body = {"model": "m", "max_completion_tokens": 100, "messages": [{"role": "developer", "content": "x"}]}
    out, repairs, _ = rewrite(body, rename_legacy=False)
    assert out == body
    assert not repairs


def test_parse_model_map():
    assert parse_model_map(["gpt-4o=meta/llama-3.1-8b-instruct", " small = qwen/qwen3:0.6b=q4 "]) == {
        "gpt-4o": "meta/llama-3.1-8b-instruct",
        "small": "qwen/qwen3:0.6b=q4",
    }
    assert parse_model_map([]) == {}
    assert parse_model_map(["a=b", "a=b"]) == {"a": "b"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("gpt-4o", "'gpt-4o' is not alias=upstream-model"),
        ("=upstream", "'=upstream' is not alias=upstream-model"),
        ("alias=", "'alias=' is not alias=upstream-model"),
    ],
)
def test_parse_model_map_bad_entry(entry, message):
    with pytest.raises(ValueError, match=message):
        parse_model_map([entry])


def test_parse_model_map_alias_twice():
    with pytest.raises(ValueError, match="alias 'a' maps to both 'b' and 'c'"):
        parse_model_map(["a=b", "a=c"])
