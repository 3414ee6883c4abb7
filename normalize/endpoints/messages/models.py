"""The model list, and one model, in the shape Anthropic's API gives them.

Contract: an Anthropic client (its requests carry `anthropic-version`; see
`anthropic_client`) that lists models (`GET …/v1/models`) gets
`{"data": [{"type": "model", "id", "display_name", "created_at"}, …],
"has_more": false, "first_id", "last_id"}`, and one model (`GET
…/v1/models/{id}`) as one such entry. `anthropic_shape(obj)` converts the
OpenAI-shaped list or model that endpoints/models.py made (aliases
included); anything else comes back as None. `created` (Unix seconds)
becomes `created_at` in RFC 3339; `display_name` is the id, as the upstream
gives no other name.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..base import Env, Request

EPOCH = "1970-01-01T00:00:00Z"


def anthropic_client(request: Request, env: Env) -> bool:
    """A request from an Anthropic SDK (or Claude Code), while the Messages bridge is on."""
    return "anthropic-version" in request.headers and env.settings.messages == "bridge"


def anthropic_shape(obj: Any) -> dict[str, Any] | None:
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        data = [m for m in map(anthropic_model, obj["data"]) if m is not None]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    return anthropic_model(obj)


def anthropic_model(model: Any) -> dict[str, Any] | None:
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        return None
    return {"type": "model", "id": model["id"], "display_name": model["id"], "created_at": rfc3339(model.get("created"))}


def rfc3339(created: Any) -> str:
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        return EPOCH
    try:
        return datetime.datetime.fromtimestamp(created, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return EPOCH
