"""Embeddings end to end: openai-python and LangChain's OpenAIEmbeddings through a real mitmdump
(the `nim` profile, by normalize_profile) to a NIM-like upstream, and straight at it.

The upstream answers as hosted NIM's asymmetric models do: 400
`{"error":"'input_type' parameter is required for asymmetric models"}` without
`input_type` (decolua/9router #1378; the body as openai-python prints it in
honcho-self-hosted's notes), 400 `extra_forbidden` for `dimensions` on a
model of one size (CortexReach/memory-lancedb-pro #578), and otherwise
OpenAI's list with the vectors as floats whatever `encoding_format` said (what
an upstream that ignores base64 does; SGLang did until sgl-project/sglang PR
#30434). openai-python asks for base64 unless told otherwise.
"""

from __future__ import annotations

import array
import base64
import json
import struct

import httpx
import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.harness.proxy import MitmdumpProcess, shared_rig
from tests.harness.upstream import RecordedRequest, Reply, ScriptedUpstream
from tests.upstreams import compact

pytestmark = pytest.mark.e2e

PATH = "/v1/embeddings"
MODEL = "nvidia/nv-embedqa-e5-v5"
VECTORS = [[0.1, -0.2, 0.30000001, 1.5], [-0.7071067811865476, 0.0, 2.5e-8, 1e-3]]
INPUT_TYPE_ERROR = "'input_type' parameter is required for asymmetric models"
DIMENSIONS_ERROR = ("Your request cannot be validated, it is incorrect. detail={'type': 'extra_forbidden', "
                    "'loc': ('body', 'dimensions'), 'msg': 'Extra inputs are not permitted', 'input': 256}")
JSON = [("Content-Type", "application/json")]


def float32(vector: list[float]) -> list[float]:
    """What a float32 holds of each value: what OpenAI's base64 carries."""
    return list(struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector)))


def nim(request: RecordedRequest) -> Reply:
    body = json.loads(request.body)
    if "input_type" not in body:
        return Reply(400, JSON, [compact({"error": INPUT_TYPE_ERROR})])
    if "dimensions" in body:
        return Reply(400, JSON, [compact({"error": DIMENSIONS_ERROR})])
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [{"index": i, "embedding": VECTORS[i % len(VECTORS)], "object": "embedding"} for i in range(len(inputs))]
    usage = {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}
    return Reply(200, JSON, [compact({"object": "list", "data": data, "model": body["model"], "usage": usage})])


_rig, nim_rig = shared_rig("embeddings", fixture="nim_rig", options={"normalize_profile": "127.0.0.1=nim"})


@pytest.fixture
def rig(nim_rig: tuple[ScriptedUpstream, MitmdumpProcess]) -> tuple[ScriptedUpstream, MitmdumpProcess]:
    """The shared rig, its upstream answering embeddings as NIM does."""
    nim_rig[0].respond("POST", PATH, nim)
    return nim_rig


def client(up: ScriptedUpstream, proxy: MitmdumpProcess | None) -> openai.OpenAI:
    http = httpx.Client(proxy=proxy.url if proxy else None, timeout=15)
    return openai.OpenAI(base_url=up.url + "/v1", api_key="nvapi-test", http_client=http, max_retries=0)


def last_body(up: ScriptedUpstream) -> dict:
    return json.loads(up.requests[-1].body)


def test_openai_python_default_base64(rig) -> None:
    up, mitm = rig
    got = client(up, mitm).embeddings.create(model=MODEL, input=["a question", "another"])
    # The SDK asked for base64, got it, and decoded it: float32 values, as from OpenAI.
    assert [d.embedding for d in got.data] == [float32(v) for v in VECTORS]
    assert [d.index for d in got.data] == [0, 1]
    assert got.usage.total_tokens == 6
    sent = last_body(up)
    assert (sent["encoding_format"], sent["input_type"], sent["truncate"]) == ("base64", "query", "END")
    # Raw: NIM rejects the request OpenAI's SDK sends.
    with pytest.raises(openai.BadRequestError) as raised:
        client(up, None).embeddings.create(model=MODEL, input=["a question"])
    assert raised.value.status_code == 400 and raised.value.body == INPUT_TYPE_ERROR


def test_openai_python_asks_for_base64(rig) -> None:
    up, mitm = rig
    got = client(up, mitm).embeddings.create(model=MODEL, input="q", encoding_format="base64")
    encoded = got.data[0].embedding
    assert isinstance(encoded, str)
    assert array.array("f", base64.b64decode(encoded)).tolist() == float32(VECTORS[0])
    # Raw (with the input_type NIM wants): the application's decoding breaks on a list.
    raw = client(up, None).embeddings.create(model=MODEL, input="q", encoding_format="base64", extra_body={"input_type": "query"})
    assert raw.data[0].embedding == VECTORS[0]
    with pytest.raises(TypeError):
        base64.b64decode(raw.data[0].embedding)  # type: ignore[arg-type]


def langchain(up: ScriptedUpstream, proxy: MitmdumpProcess | None) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model=MODEL,
        base_url=up.url + "/v1",
        api_key="nvapi-test",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,  # raw text, as LangChain's docs say for compatible servers
        http_client=httpx.Client(proxy=proxy.url if proxy else None, timeout=15),
        max_retries=0,
    )


def test_langchain_openai_embeddings(rig) -> None:
    up, mitm = rig
    embeddings = langchain(up, mitm)
    assert embeddings.embed_documents(["one", "two", "three"]) == [float32(VECTORS[i % 2]) for i in range(3)]
    assert embeddings.embed_query("q") == float32(VECTORS[0])
    assert last_body(up)["input_type"] == "query"
    with pytest.raises(openai.BadRequestError) as raised:
        langchain(up, None).embed_query("q")
    assert raised.value.body == INPUT_TYPE_ERROR


def test_dimensions_rejected_then_dropped(rig) -> None:
    up, mitm = rig
    model = "nvidia/nv-embed-v1"  # its own name: what the proxy learns outlives the test
    with pytest.raises(openai.BadRequestError) as raised:
        client(up, mitm).embeddings.create(model=model, input="q", dimensions=256)
    assert raised.value.message.endswith(f"(the proxy will drop `dimensions` for {model} from now on)")
    assert last_body(up)["dimensions"] == 256
    got = client(up, mitm).embeddings.create(model=model, input="q", dimensions=256)
    assert got.data[0].embedding == float32(VECTORS[0])
    assert "dimensions" not in last_body(up)
    # Raw: every request fails, the second as the first.
    for _ in range(2):
        with pytest.raises(openai.BadRequestError):
            client(up, None).embeddings.create(model=model, input="q", dimensions=256, extra_body={"input_type": "query"})
