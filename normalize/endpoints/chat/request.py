"""Chat request bodies for targeted upstreams: what the client sent in, what the upstream accepts out.

Contract: `rewrite_request(body, ...)` takes the parsed JSON request (never
changed in place) and returns the body to send, the repairs made, by name,
and the alias the client asked for (None when it named no alias), so the
reply can report that alias back. It changes only what it names: the model
through the alias map, `stream_options` without `stream` (NIM rejects it),
the parameters the operator listed, and, when asked, OpenAI's newer spellings
that older servers reject. Bodies are never logged: they are the user's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from ...repairs import Repair


def rewrite_request(
    body: dict[str, Any],
    *,
    model_map: Mapping[str, str],
    drop_params: Collection[str],
    rename_legacy: bool = True,
) -> tuple[dict[str, Any], Counter[Repair], str | None]:
    """The request to send upstream, the repairs made, and the alias the client asked for."""
    repairs: Counter[Repair] = Counter()
    out = dict(body)
    alias = model_alias(out, model_map, repairs)
    stream_options_without_stream(out, repairs)
    param_dropped(out, drop_params, repairs)
    if rename_legacy:
        max_completion_tokens_unsupported(out, repairs)
        developer_role_unsupported(out, repairs)
    return out, repairs, alias


def model_alias(body: dict[str, Any], model_map: Mapping[str, str], repairs: Counter[Repair]) -> str | None:
    model = body.get("model")
    if not isinstance(model, str) or model not in model_map:
        return None
    body["model"] = model_map[model]
    repairs[Repair.model_alias] += 1
    return model


def stream_options_without_stream(body: dict[str, Any], repairs: Counter[Repair]) -> None:
    # NIM: 400 "The 'stream_options' field is only allowed when 'stream' is set to true."
    if "stream_options" in body and body.get("stream") is not True:
        del body["stream_options"]
        repairs[Repair.stream_options_without_stream] += 1


def param_dropped(body: dict[str, Any], drop_params: Collection[str], repairs: Counter[Repair]) -> None:
    # NIM's strict validation: "Unsupported parameter(s)", "extra_forbidden".
    for key in drop_params:
        if key in body:
            del body[key]
            repairs[Repair.param_dropped] += 1


def max_completion_tokens_unsupported(body: dict[str, Any], repairs: Counter[Repair]) -> None:
    """`max_completion_tokens` (OpenAI's newer name) becomes `max_tokens`, in place; it never overrides one."""
    if "max_completion_tokens" not in body:
        return
    repairs[Repair.max_completion_tokens_unsupported] += 1
    if "max_tokens" in body:
        del body["max_completion_tokens"]
        return
    renamed = {("max_tokens" if k == "max_completion_tokens" else k): v for k, v in body.items()}
    body.clear()
    body.update(renamed)


def developer_role_unsupported(body: dict[str, Any], repairs: Counter[Repair]) -> None:
    """Messages with role `developer` (OpenAI's newer name) become `system` messages."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    developer = [isinstance(m, dict) and m.get("role") == "developer" for m in messages]
    if any(developer):
        body["messages"] = [{**m, "role": "system"} if d else m for m, d in zip(messages, developer, strict=False)]
        repairs[Repair.developer_role_unsupported] += sum(developer)
