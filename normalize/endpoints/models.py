"""`/v1/models` and `/v1/models/{id}`: an upstream's model list in, OpenAI's out.

Contract: `rewrite_models(obj, ...)` takes the parsed list body and returns
`{"object": "list", "data": [...]}` plus the repairs made, by name; a value
that is no model list at all comes back unchanged with no repairs.
`rewrite_model` does the same for one model, and `models_list` builds the
list locally for an upstream that has no models endpoint. Inputs are never
changed in place. `MODELS` and `MODEL` are the endpoints (`GET …/models`,
`GET …/models/{id}`): the list is answered locally when `normalize_models`
is set, or when the upstream has no models endpoint (404 or 405).

Every model gets what OpenAI's spec requires (`id`, `object: "model"`, an
integer `created`, `owned_by`), in that order, then its own keys as they came
(nulls included: OpenAI's own list sends `shutdown_date: null`). A missing
`created` is `now`; a missing `owned_by` is "system", what OpenAI says for
the models it serves itself. Each alias the proxy answers to is listed as a
model of its own, after the upstream's, unless the upstream lists that id.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..ids import unix_now
from ..repairs import Repair
from ..wire.body import parse_json_body
from .base import UNCHANGED, Env, Exchange, Forward, Head, Reply, Request, Unchanged
from .messages.errors import error_reply
from .messages.models import anthropic_client, anthropic_shape

OWNED_BY = "system"


def rewrite_models(obj: object, *, now: int, aliases: dict[str, str], owned_by: str = OWNED_BY) -> tuple[object, Counter[Repair]]:
    """OpenAI's model list from an upstream's, with aliases appended; and the repairs made."""
    repairs: Counter[Repair] = Counter()
    if isinstance(obj, list):
        repairs[Repair.models_bare_list] += 1  # exo
        obj = {"object": "list", "data": obj}
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        return obj, repairs
    if obj.get("object") != "list":
        repairs[Repair.models_list_object_missing] += 1
    data = [model_fields_missing(m, now, owned_by, repairs) for m in obj["data"]]
    data += alias_models(data, aliases, now, owned_by)
    out = {"object": "list", "data": data}
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out, repairs


def rewrite_model(obj: object, *, now: int, model_alias: str | None = None, owned_by: str = OWNED_BY) -> tuple[object, Counter[Repair]]:
    """One model (`/v1/models/{id}`); reported under the alias when the client asked by alias."""
    repairs: Counter[Repair] = Counter()
    out = model_fields_missing(obj, now, owned_by, repairs)
    if model_alias and isinstance(out, dict):
        out = {**out, "id": model_alias}
    return out, repairs


def models_list(ids: list[str], aliases: dict[str, str], now: int, owned_by: str = OWNED_BY) -> dict[str, Any]:
    """The model list to answer locally when the upstream has no models endpoint."""
    data = [model_object(model_id, now, owned_by) for model_id in ids]
    return {"object": "list", "data": data + alias_models(data, aliases, now, owned_by)}


def model_object(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def model_fields_missing(model: object, now: int, owned_by: str, repairs: Counter[Repair]) -> object:
    """One model with id, object, created and owned_by; a model named by a bare string becomes an object."""
    if isinstance(model, str) and model:
        repairs[Repair.model_is_string] += 1
        return model_object(model, now, owned_by)
    if not isinstance(model, dict):
        return model
    model_id = model.get("id")
    if not (isinstance(model_id, str) and model_id):
        model_id = model.get("name")  # some servers name models but give them no id
        if not (isinstance(model_id, str) and model_id):
            return model  # nothing to call it by: not ours to invent
        repairs[Repair.model_id_missing] += 1
    if model.get("object") != "model":
        repairs[Repair.model_object_missing] += 1
    created = model.get("created")
    if isinstance(created, bool) or not isinstance(created, int):
        repairs[Repair.model_created_missing_or_not_integer] += 1
        created = int(created) if isinstance(created, float) else now
    owner = model.get("owned_by")
    if not (isinstance(owner, str) and owner):
        repairs[Repair.model_owned_by_missing] += 1
        owner = owned_by
    out = model_object(model_id, created, owner)
    out.update((k, v) for k, v in model.items() if k not in out)
    return out


def alias_models(data: list[Any], aliases: dict[str, str], now: int, owned_by: str) -> list[dict[str, Any]]:
    """A model entry per alias not already listed, dated and owned like the model it stands for."""
    listed = {m["id"]: m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)}
    out = []
    for alias, target in aliases.items():
        if alias in listed:
            continue
        model = listed.get(target, {})
        out.append(model_object(alias, model.get("created", now), model.get("owned_by", owned_by)))
        listed[alias] = out[-1]
    return out


# -- the endpoints ---------------------------------------------------------------


def json_body(exchange: Exchange, head: Head, body: bytes) -> Any | None:
    """A successful reply's JSON value, counting blank lines or `data:` before it; None when not JSON."""
    if not head.ok:
        return None
    obj = parse_json_body(body)
    if obj is not None and (body[:1].isspace() or body.startswith(b"data:")):
        exchange.repairs[Repair.body_not_bare_json] += 1  # DeepSeek's blank lines under load, NIM's data:
    return obj


class ModelExchange(Exchange):
    """One model (`…/models/{id}`); reported under the alias when the client asked by alias."""

    alias: str | None = None
    anthropic = False  # an Anthropic client asked: answered in Anthropic's shape (messages/models.py)

    def rewrite(self, obj: Any) -> tuple[object, Counter[Repair]]:
        return rewrite_model(obj, now=unix_now(), model_alias=self.alias)

    def whole(self, head: Head, body: bytes) -> Reply | Unchanged | None:
        if head.status >= 400:
            return self.error(head, body)
        obj = json_body(self, head, body)
        if obj is None:
            return None
        out, repairs = self.rewrite(obj)
        self.repairs.update(repairs)
        return self.reply(head.status, out) if out != obj or self.repairs or self.anthropic else UNCHANGED

    def reply(self, status: int, out: Any) -> Reply:
        shaped = anthropic_shape(out) if self.anthropic else None
        if shaped is None:
            return Reply.json(status, out)
        self.repairs[Repair.models_not_anthropic] += 1
        return Reply.json(status, shaped)

    def error(self, head: Head, body: bytes) -> Reply | Unchanged:
        return error_reply(head, body, self.repairs) if self.anthropic else super().error(head, body)


class ModelsExchange(ModelExchange):
    """The model list, aliases appended; answered locally when the upstream has none."""

    def answer_locally(self, repair: Repair) -> Reply:
        settings = self.env.settings
        self.repairs[repair] += 1
        return self.reply(200, models_list(list(settings.models), dict(settings.model_map), unix_now()))

    def rewrite(self, obj: Any) -> tuple[object, Counter[Repair]]:
        return rewrite_models(obj, now=unix_now(), aliases=dict(self.env.settings.model_map))

    def whole(self, head: Head, body: bytes) -> Reply | Unchanged | None:
        if head.status in (404, 405):
            return self.answer_locally(Repair.models_endpoint_missing)
        return super().whole(head, body)


class Models:
    name = "models"

    def open(self, request: Request, env: Env) -> Exchange:
        exchange = ModelsExchange(env)
        exchange.anthropic = anthropic_client(request, env)
        if env.settings.models:
            exchange.answer = exchange.answer_locally(Repair.models_answered_locally)
        return exchange


class Model:
    """`GET …/models/{id}`: asked by alias, the upstream is asked for the model it stands for."""

    name = "model"

    def open(self, request: Request, env: Env) -> Exchange:
        exchange = ModelExchange(env)
        exchange.anthropic = anthropic_client(request, env)
        model = request.path.rsplit("/", 1)[1]
        target = env.settings.model_map.get(model)
        if target is not None:
            exchange.alias = model
            exchange.repairs[Repair.model_alias] += 1
            path = request.path[: len(request.path) - len(model)] + target
            exchange.forward = Forward(path=path + ("?" + request.query if request.query else ""))
        return exchange


MODELS = Models()
MODEL = Model()
