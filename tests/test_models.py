"""/v1/models: one test per upstream shape, named after it."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.models import models_list, rewrite_model, rewrite_models

NOW = 1700000000
EXO_MODELS = [
    {"id": "llama-3.2-1b", "object": "model", "owned_by": "exo", "ready": True},
    {"id": "llama-3.1-8b", "object": "model", "owned_by": "exo", "ready": False},
]
OPENAI_MODELS = {
    "object": "list",
    "data": [
        {"id": "model-id-0", "object": "model", "created": 1686935002, "owned_by": "organization-owner", "shutdown_date": None},
        {"id": "model-id-1", "object": "model", "created": 1686935002, "owned_by": "organization-owner"},
    ],
}


def test_openai_models_unchanged():
    before = json.dumps(OPENAI_MODELS)
    out, repairs = rewrite_models(OPENAI_MODELS, now=NOW, aliases={})
    assert out == OPENAI_MODELS
    assert not repairs
    assert json.dumps(OPENAI_MODELS) == before  # never changed in place


def test_models_bare_list():
    out, repairs = rewrite_models(EXO_MODELS, now=NOW, aliases={})
    assert out == {
        "object": "list",
        "data": [
            {"id": "llama-3.2-1b", "object": "model", "created": NOW, "owned_by": "exo", "ready": True},
            {"id": "llama-3.1-8b", "object": "model", "created": NOW, "owned_by": "exo", "ready": False},
        ],
    }
    assert list(out["data"][0]) == ["id", "object", "created", "owned_by", "ready"]
    assert repairs == {"models_bare_list": 1, "model_created_missing_or_not_integer": 2}


def test_models_list_object_missing():
    out, repairs = rewrite_models({"data": OPENAI_MODELS["data"]}, now=NOW, aliases={})
    assert out == OPENAI_MODELS
    assert list(out) == ["object", "data"]
    assert repairs == {"models_list_object_missing": 1}


def test_model_is_string():
    out, repairs = rewrite_models({"object": "list", "data": ["tinyllama"]}, now=NOW, aliases={})
    assert out["data"] == [{"id": "tinyllama", "object": "model", "created": NOW, "owned_by": "system"}]
    assert repairs == {"model_is_string": 1}


def test_model_fields_missing():
    # llama.cpp-style entries: no created, no owned_by, extra `meta`; a float created; a name for an id.
    data = [
        {"id": "qwen.gguf", "object": "model", "meta": {"n_ctx_train": 32768}},
        {"id": "m2", "object": "model", "created": 1754000000.5, "owned_by": None},
        {"name": "llama3:8b", "model": "llama3:8b"},
    ]
    out, repairs = rewrite_models({"object": "list", "data": data}, now=NOW, aliases={})
    assert out["data"] == [
        {"id": "qwen.gguf", "object": "model", "created": NOW, "owned_by": "system", "meta": {"n_ctx_train": 32768}},
        {"id": "m2", "object": "model", "created": 1754000000, "owned_by": "system"},
        {"id": "llama3:8b", "object": "model", "created": NOW, "owned_by": "system", "name": "llama3:8b", "model": "llama3:8b"},
    ]
    assert repairs == {
        "model_created_missing_or_not_integer": 3,
        "model_owned_by_missing": 3,
        "model_id_missing": 1,
        "model_object_missing": 1,
    }


def test_model_id_missing():
    """Ollama-style `name` and no `id`: the name is the id."""
    entry = {"name": "llama3:8b", "object": "model", "created": 5, "owned_by": "me"}
    out, repairs = rewrite_models({"object": "list", "data": [entry]}, now=NOW, aliases={})
    assert out["data"] == [{"id": "llama3:8b", "object": "model", "created": 5, "owned_by": "me", "name": "llama3:8b"}]
    assert repairs == {"model_id_missing": 1}


def test_model_object_missing():
    out, repairs = rewrite_models({"object": "list", "data": [{"id": "m", "created": 5, "owned_by": "me"}]}, now=NOW, aliases={})
    assert out["data"] == [{"id": "m", "object": "model", "created": 5, "owned_by": "me"}]
    assert repairs == {"model_object_missing": 1}


@pytest.mark.parametrize("created", [None, "1754000000", 1754000000.5, True])
def test_model_created_missing_or_not_integer(created):
    entry = {"id": "m", "object": "model", "owned_by": "me"} | ({} if created is None else {"created": created})
    out, repairs = rewrite_models({"object": "list", "data": [entry]}, now=NOW, aliases={})
    want = 1754000000 if isinstance(created, float) else NOW
    assert out["data"] == [{"id": "m", "object": "model", "created": want, "owned_by": "me"}]
    assert repairs == {"model_created_missing_or_not_integer": 1}


@pytest.mark.parametrize("owned_by", [None, "", 7])
def test_model_owned_by_missing(owned_by):
    entry = {"id": "m", "object": "model", "created": 5} | ({} if owned_by is None else {"owned_by": owned_by})
    out, repairs = rewrite_models({"object": "list", "data": [entry]}, now=NOW, aliases={})
    assert out["data"] == [{"id": "m", "object": "model", "created": 5, "owned_by": "system"}]
    assert repairs == {"model_owned_by_missing": 1}


def test_model_without_any_name_passes_through():
    out, repairs = rewrite_models({"object": "list", "data": [{"ready": True}, 7]}, now=NOW, aliases={})
    assert out["data"] == [{"ready": True}, 7]
    assert not repairs


def test_not_a_model_list_passes_through():
    for obj in ({"error": {"message": "x"}}, "text", None):
        assert rewrite_models(obj, now=NOW, aliases={"a": "b"}) == (obj, {})


def test_model_aliases_listed():
    aliases = {"gpt-4o": "llama-3.2-1b", "llama-3.1-8b": "llama-3.2-1b", "gpt-4o-mini": "not-listed"}
    out, _ = rewrite_models(EXO_MODELS, now=NOW, aliases=aliases)
    assert [m["id"] for m in out["data"]] == ["llama-3.2-1b", "llama-3.1-8b", "gpt-4o", "gpt-4o-mini"]
    assert out["data"][2:] == [
        {"id": "gpt-4o", "object": "model", "created": NOW, "owned_by": "exo"},
        {"id": "gpt-4o-mini", "object": "model", "created": NOW, "owned_by": "system"},
    ]


def test_rewrite_model():
    out, repairs = rewrite_model({"id": "llama-3.2-1b", "owned_by": "exo"}, now=NOW)
    assert out == {"id": "llama-3.2-1b", "object": "model", "created": NOW, "owned_by": "exo"}
    assert repairs == {"model_object_missing": 1, "model_created_missing_or_not_integer": 1}


def test_rewrite_model_by_alias():
    out, repairs = rewrite_model(OPENAI_MODELS["data"][1], now=NOW, model_alias="gpt-4o")
    assert out == {"id": "gpt-4o", "object": "model", "created": 1686935002, "owned_by": "organization-owner"}
    assert not repairs


def test_models_endpoint_missing():
    # An upstream with no /v1/models (404/405): the proxy answers from what it knows.
    assert models_list(["meta/llama-3.1-8b-instruct"], {"gpt-4o": "meta/llama-3.1-8b-instruct"}, NOW) == {
        "object": "list",
        "data": [
            {"id": "meta/llama-3.1-8b-instruct", "object": "model", "created": NOW, "owned_by": "system"},
            {"id": "gpt-4o", "object": "model", "created": NOW, "owned_by": "system"},
        ],
    }
    assert models_list([], {}, NOW) == {"object": "list", "data": []}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["object", "data", "id", "name", "created", "owned_by"]), inner, max_size=4),
    max_leaves=15,
)


@given(JSON)
def test_any_value(obj):
    out, _ = rewrite_models(obj, now=NOW, aliases={"alias": "x"})
    json.dumps(out)
    if not isinstance(obj, list) and not (isinstance(obj, dict) and isinstance(obj.get("data"), list)):
        assert out is obj
        return
    assert out["object"] == "list"
    named = [m for m in out["data"] if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]
    assert [m["id"] for m in named].count("alias") >= 1
    for model in named:
        assert model["object"] == "model" and isinstance(model["created"], int) and model["owned_by"]
