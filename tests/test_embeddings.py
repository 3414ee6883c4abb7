"""Embeddings (endpoints/embeddings.py): one test per repair, named after it, and the base64 encoding."""

import array
import base64
import json
import struct

import pytest

from normalize.endpoints import route
from normalize.endpoints.base import UNCHANGED, Env, Head, Reply, Request, Shared
from normalize.endpoints.embeddings import EMBEDDINGS, float32_base64, rewrite_embeddings
from normalize.profiles import GENERIC, PROFILES
from normalize.repairs import Repair
from normalize.settings import Settings

NIM = PROFILES["nim"]
MODEL = "nvidia/nv-embedqa-e5-v5"
VECTOR = [0.1, -0.25, 3.4028234663852886e38, 1e-45, 0, 1]
# What NIM says to `dimensions` on a model of one size (CortexReach/memory-lancedb-pro #578).
DIMENSIONS_ERROR = json.dumps({
    "error": "Your request cannot be validated, it is incorrect. detail={'type': 'extra_forbidden', "
    "'loc': ('body', 'dimensions'), 'msg': 'Extra inputs are not permitted', 'input': 1024}"
}).encode()


def exchange(body, profile=NIM, shared=None, **settings):
    env = Env(Settings(**settings), profile, shared or Shared(), "POST test/v1/embeddings", "test:443")
    return EMBEDDINGS.open(Request("POST", "/v1/embeddings", body=json.dumps(body).encode()), env)


def sent(ex, body):
    return body if ex.forward is None else json.loads(ex.forward.body)


def reply(obj):
    return {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": VECTOR}], "model": MODEL, "usage": {"prompt_tokens": 2, "total_tokens": 2}} | obj


def test_route():
    assert route("POST", ("v1", "embeddings")).endpoint is EMBEDDINGS


def test_embedding_input_type_missing():
    # NIM: 400 {"error":"'input_type' parameter is required for asymmetric models"} (decolua/9router #1378)
    body = {"model": MODEL, "input": ["hi"]}
    ex = exchange(body)
    assert sent(ex, body) == {"model": MODEL, "input": ["hi"], "input_type": "query", "truncate": "END"}
    assert ex.repairs == {Repair.embedding_input_type_missing: 1, Repair.embedding_truncate_missing: 1}
    assert sent(exchange(body, embedding_input_type="passage"), body)["input_type"] == "passage"
    given = {**body, "input_type": "passage"}
    assert sent(exchange(given), given)["input_type"] == "passage"  # the client's own is kept
    assert exchange(body, GENERIC).forward is None  # other upstreams reject unknown fields


def test_embedding_truncate_missing():
    body = {"model": MODEL, "input": "hi", "input_type": "query"}
    assert sent(exchange(body), body) == {**body, "truncate": "END"}
    assert exchange(body, embedding_truncate="").forward is None
    given = {**body, "truncate": "NONE"}
    assert exchange(given).forward is None  # the client's own is kept


def test_embedding_dimensions_unsupported():
    shared = Shared()
    body = {"model": MODEL, "input": "hi", "dimensions": 1024}
    ex = exchange(body, shared=shared)
    assert sent(ex, body)["dimensions"] == 1024  # not known yet: the client's request goes as asked
    out = ex.whole(Head(400, "application/json"), DIMENSIONS_ERROR)
    assert isinstance(out, Reply) and out.status == 400
    message = json.loads(out.body)["error"]["message"]
    assert message.startswith("Your request cannot be validated")
    assert message.endswith(f"(the proxy will drop `dimensions` for {MODEL} from now on)")
    assert ex.repairs[Repair.embedding_dimensions_unsupported] == 1
    assert shared.learned.get("test:443", MODEL).params == {"dimensions"}


def test_embedding_dimensions_rejected():
    shared = Shared()
    shared.learned.reject("test:443", MODEL, ["dimensions"])
    body = {"model": MODEL, "input": "hi", "dimensions": 1024, "input_type": "query", "truncate": "END"}
    ex = exchange(body, shared=shared)
    assert sent(ex, body) == {k: v for k, v in body.items() if k != "dimensions"}
    assert ex.repairs == {Repair.embedding_dimensions_rejected: 1}
    other = {**body, "model": "nvidia/llama-3.2-nv-embedqa-1b-v2"}
    assert exchange(other, shared=shared).forward is None  # a Matryoshka model keeps it


def test_other_errors_teach_nothing():
    shared = Shared()
    ex = exchange({"model": MODEL, "input": "hi", "dimensions": 8}, shared=shared)
    out = ex.whole(Head(400, "application/json"), b'{"error":"\'input_type\' parameter is required for asymmetric models"}')
    assert isinstance(out, Reply)
    assert json.loads(out.body)["error"]["message"] == "'input_type' parameter is required for asymmetric models"
    assert not shared.learned.models


def test_embedding_floats_for_base64():
    # openai-python asks for base64 unless told otherwise, and decodes it as little-endian float32.
    ex = exchange({"model": MODEL, "input": "hi", "encoding_format": "base64"})
    out = ex.whole(Head(200, "application/json"), json.dumps(reply({})).encode())
    assert isinstance(out, Reply)
    encoded = json.loads(out.body)["data"][0]["embedding"]
    assert encoded == base64.b64encode(struct.pack("<6f", *VECTOR)).decode()
    decoded = array.array("f", base64.b64decode(encoded)).tolist()  # openai-python without numpy
    assert decoded == list(struct.unpack("<6f", struct.pack("<6f", *VECTOR)))
    assert decoded[1:] == [-0.25, 3.4028234663852886e38, 1.401298464324817e-45, 0.0, 1.0]
    assert ex.repairs == {Repair.embedding_input_type_missing: 1, Repair.embedding_truncate_missing: 1, Repair.embedding_floats_for_base64: 1}


def test_base64_from_the_upstream_passes():
    encoded = float32_base64(VECTOR)
    ex = exchange({"model": MODEL, "input": "hi", "encoding_format": "base64"})
    body = json.dumps(reply({"data": [{"object": "embedding", "index": 0, "embedding": encoded}]})).encode()
    assert ex.whole(Head(200, "application/json"), body) is UNCHANGED


def test_floats_not_asked_as_base64_pass():
    ex = exchange({"model": MODEL, "input": "hi", "encoding_format": "float"})
    assert ex.whole(Head(200, "application/json"), json.dumps(reply({})).encode()) is UNCHANGED


@pytest.mark.parametrize("vector", [[1e39], ["x"], [True], [[1.0]]])
def test_vectors_that_are_no_float32_stay(vector):
    assert float32_base64(vector) is None


def test_embedding_list_object_missing():
    out, repairs = rewrite_embeddings({"data": reply({})["data"], "model": MODEL, "usage": {}}, base64_asked=False, model=None)
    assert list(out) == ["object", "data", "model", "usage"] and out["object"] == "list"
    assert repairs == {Repair.embedding_list_object_missing: 1}


def test_embedding_object_missing():
    out, repairs = rewrite_embeddings(reply({"data": [{"index": 0, "embedding": [1.0]}]}), base64_asked=False, model=None)
    assert out["data"] == [{"object": "embedding", "index": 0, "embedding": [1.0]}]
    assert repairs == {Repair.embedding_object_missing: 1}


def test_embedding_index_missing():
    data = [{"object": "embedding", "embedding": [1.0]}, {"object": "embedding", "embedding": [2.0]}]
    out, repairs = rewrite_embeddings(reply({"data": data}), base64_asked=False, model=None)
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert repairs == {Repair.embedding_index_missing: 2}


def test_embedding_usage_missing():
    obj = reply({})
    del obj["usage"]
    out, repairs = rewrite_embeddings(obj, base64_asked=False, model=None)
    assert out["usage"] == {"prompt_tokens": 0, "total_tokens": 0}
    assert repairs == {Repair.embedding_usage_missing: 1}


def test_alias():
    body = {"model": "text-embedding-3-small", "input": "hi", "input_type": "query", "truncate": "END"}
    ex = exchange(body, model_map={"text-embedding-3-small": MODEL})
    assert sent(ex, body)["model"] == MODEL
    out = ex.whole(Head(200, "application/json"), json.dumps(reply({})).encode())
    assert isinstance(out, Reply) and json.loads(out.body)["model"] == "text-embedding-3-small"


def test_conforming_reply_is_unchanged():
    ex = exchange({"model": MODEL, "input": "hi", "input_type": "query", "truncate": "END"})
    assert ex.forward is None
    assert ex.whole(Head(200, "application/json"), json.dumps(reply({})).encode()) is UNCHANGED
    assert ex.whole(Head(200, "application/json"), b"not json") is None
