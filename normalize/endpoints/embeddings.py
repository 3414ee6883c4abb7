"""`POST …/embeddings`: the request fitted to the upstream, the reply in OpenAI's embedding list shape.

Contract: `EMBEDDINGS.open(request, env)` rewrites the request
(`rewrite_request`): a model alias (`normalize_model_map`) goes upstream as
its model; for a profile whose models want them (`Profile.embedding_input_type`,
NIM) `input_type` and `truncate` are added when missing
(`normalize_embedding_input_type`, `normalize_embedding_truncate`), and
`dimensions` goes for a model that rejected it before. That is learned from
the upstream's error (NIM: 400 `extra_forbidden` at `('body', 'dimensions')`),
remembered in `Shared`, and said in that error's message. A success comes back
as OpenAI's list (`rewrite_embeddings`): `object: "list"`, each item
`object: "embedding"` with its `index`, the model, `usage`; when the client
asked for `encoding_format: "base64"` and the upstream sent lists of floats,
each list is encoded as OpenAI encodes it (little-endian float32, base64),
which is what openai-python decodes (it asks for base64 unless told
otherwise). Errors reach the client in OpenAI's shape.

Bodies are never logged. A body that needs nothing passes byte for byte.
"""

from __future__ import annotations

import base64
import logging
import struct
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..repairs import Repair
from ..wire.body import parse_json_body
from ..wire.jsonio import dump
from .base import UNCHANGED, Env, Exchange, Forward, Head, Reply, Request, Unchanged
from .chat.rejected import rejected_params
from .errors import error_body

log = logging.getLogger(__name__)


def rewrite_request(
    body: dict[str, Any],
    *,
    model_map: Mapping[str, str],
    input_type: str = "",
    truncate: str = "",
    drop_dimensions: bool = False,
) -> tuple[dict[str, Any], Counter[Repair], str | None]:
    """The body to send upstream (the client's is never changed in place), the repairs, and the
    alias the client asked by (None when none). `input_type`/`truncate` are added when given and
    missing; `drop_dimensions` removes `dimensions`."""
    repairs: Counter[Repair] = Counter()
    out = dict(body)
    alias = None
    model = out.get("model")
    if isinstance(model, str) and model in model_map:
        alias, out["model"] = model, model_map[model]
        repairs[Repair.model_alias] += 1
    if input_type and "input_type" not in out:
        out["input_type"] = input_type  # NIM: 400 'input_type' parameter is required for asymmetric models
        repairs[Repair.embedding_input_type_missing] += 1
    if truncate and "truncate" not in out:
        out["truncate"] = truncate  # NIM's models take 512 tokens, and fail on more unless told to cut
        repairs[Repair.embedding_truncate_missing] += 1
    if drop_dimensions and "dimensions" in out:
        del out["dimensions"]
        repairs[Repair.embedding_dimensions_rejected] += 1
    return out, repairs, alias


def rewrite_embeddings(obj: dict[str, Any], *, base64_asked: bool, model: str | None) -> tuple[dict[str, Any], Counter[Repair]]:
    """OpenAI's embedding list from an upstream's `{"data": [...]}`, and the repairs made."""
    repairs: Counter[Repair] = Counter()
    if obj.get("object") != "list":
        repairs[Repair.embedding_list_object_missing] += 1
    data = [item(value, position, base64_asked, repairs) for position, value in enumerate(obj["data"])]
    out: dict[str, Any] = {"object": "list", "data": data}
    if model or "model" in obj:
        out["model"] = model or obj["model"]
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        repairs[Repair.embedding_usage_missing] += 1
        usage = {"prompt_tokens": 0, "total_tokens": 0}
    out["usage"] = usage
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out, repairs


def item(value: Any, position: int, base64_asked: bool, repairs: Counter[Repair]) -> Any:
    if not isinstance(value, dict):
        return value
    if value.get("object") != "embedding":
        repairs[Repair.embedding_object_missing] += 1
    index = value.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        repairs[Repair.embedding_index_missing] += 1
        index = position
    vector = value.get("embedding")
    if base64_asked and isinstance(vector, list):
        encoded = float32_base64(vector)
        if encoded is not None:
            repairs[Repair.embedding_floats_for_base64] += 1
            vector = encoded
    out = {"object": "embedding", "index": index, "embedding": vector}
    out.update((k, v) for k, v in value.items() if k not in out)
    return out


def float32_base64(vector: list[Any]) -> str | None:
    """The vector as OpenAI sends it for `encoding_format: "base64"`: little-endian float32,
    base64. None when it is not a list of numbers that fit a float32."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vector):
        return None
    try:
        packed = struct.pack(f"<{len(vector)}f", *vector)
    except (OverflowError, struct.error):
        return None
    return base64.b64encode(packed).decode("ascii")


def rejects_dimensions(error: dict[str, Any]) -> bool:
    """The upstream's error says the model does not take `dimensions` (any style chat/rejected.py reads)."""
    message = error.get("error", {}).get("message")
    return isinstance(message, str) and "dimensions" in rejected_params(message)


class EmbeddingsExchange(Exchange):
    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.model: str | None = None  # sent upstream
        self.alias: str | None = None  # asked for by the client, reported back
        self.base64_asked = False
        self.sent_dimensions = False

    def read_request(self, body: dict[str, Any]) -> dict[str, Any]:
        env = self.env
        model = body.get("model")
        model = env.settings.model_map.get(model, model) if isinstance(model, str) else None
        wanted = env.profile.embedding_input_type
        new, repairs, self.alias = rewrite_request(
            body,
            model_map=env.settings.model_map,
            input_type=env.settings.embedding_input_type if wanted else "",
            truncate=env.settings.embedding_truncate if wanted else "",
            drop_dimensions="dimensions" in (learned.params if (learned := env.shared.learned.get(env.host, model)) else ()),
        )
        self.repairs.update(repairs)
        self.model = model
        self.base64_asked = body.get("encoding_format") == "base64"
        self.sent_dimensions = "dimensions" in new
        return new

    def whole(self, head: Head, body: bytes) -> Reply | Unchanged | None:
        if head.status >= 400:
            return self.error(head, body)
        if not head.ok:
            return None
        obj = parse_json_body(body)
        if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
            return None
        out, repairs = rewrite_embeddings(obj, base64_asked=self.base64_asked, model=self.alias)
        self.repairs.update(repairs)
        return Reply.json(head.status, out) if repairs or out != obj else UNCHANGED

    def error(self, head: Head, body: bytes) -> Reply | Unchanged:
        error, repair = error_body(head.status, body, head.content_type)
        if not (self.sent_dimensions and self.env.profile.embedding_input_type and rejects_dimensions(error)):
            return super().error(head, body)
        # The model does not take `dimensions`: from now on it goes, and the client is told.
        if self.model is None:
            return super().error(head, body)
        self.env.shared.learned.reject(self.env.host, self.model, ["dimensions"])
        log.info("%s: %s rejects dimensions; dropping it from its later requests", self.env.label, self.model)
        self.repairs[Repair.embedding_dimensions_unsupported] += 1
        if repair:
            self.repairs[repair] += 1
        message = error["error"]["message"]
        error["error"]["message"] = f"{message} (the proxy will drop `dimensions` for {self.model} from now on)"
        return Reply.json(head.status, error)


class Embeddings:
    name = "embeddings"

    def open(self, request: Request, env: Env) -> Exchange:
        exchange = EmbeddingsExchange(env)
        body = request.json()
        if isinstance(body, dict):
            new = exchange.read_request(body)
            if new != body:
                exchange.forward = Forward(body=dump(new))
        return exchange


EMBEDDINGS = Embeddings()
