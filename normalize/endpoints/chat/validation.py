"""Chat requests fitted to what the upstream's request validation accepts (its profile, and what it said).

Contract: `fit_request(body, fit, repairs)` changes `body` (a request already
through request.py, owned by the caller) in place so that the upstream does
not reject it: the parameters its profile says it rejects, the keys of each
tool's function it rejects, the parameters it rejected before for this model
(`Learned`), `max_tokens` below 1, and above what the model allows once the
upstream has said what that is; and adds `max_tokens` when the operator asked
for a default. One rule per upstream behaviour, each counted as a `Repair`
of the same name. `without(body, params)` is a body with learned paths removed
(the request retried after a rejection). Bodies are never logged.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, TypeGuard

from ...profiles import Profile
from ...profiles.thinking import Thinking
from ...repairs import Repair
from ...wire.jsonio import dump
from ..learned import Model
from .rejected import TOOL_FUNCTION

TOKEN_KEYS = ("max_tokens", "max_completion_tokens")
# Prompt tokens are estimated from the body's size at the rate last seen, plus this much.
ESTIMATE_MARGIN = 1.1
ESTIMATE_EXTRA = 16


@dataclass(frozen=True, slots=True)
class Fit:
    profile: Profile
    learned: Model | None = None  # what the upstream said about this model
    default_max_tokens: int = 0
    legacy_names: bool = True  # the upstream takes max_tokens (else max_completion_tokens)


def fit_request(body: dict[str, Any], fit: Fit, repairs: Counter[Repair]) -> None:
    profile, learned = fit.profile, fit.learned
    family = profile.thinking_for(body.get("model") if isinstance(body.get("model"), str) else None)
    if family is not None:
        reasoning_effort_not_the_switch(body, family, repairs)
    switch = family.fields if family is not None else frozenset()
    param_unsupported(body, tuple(p for p in profile.drop_params if p not in switch), repairs)
    tool_function_key_unsupported(body, profile.drop_function_keys, repairs)
    if learned is not None:
        param_rejected_before(body, learned.params, repairs)
    if profile.raise_max_tokens:
        max_tokens_below_1(body, repairs)
    if fit.default_max_tokens:
        max_tokens_default_too_low(body, fit.default_max_tokens, repairs, "max_tokens" if fit.legacy_names else "max_completion_tokens")
    if learned is not None:
        max_tokens_over_model_limit(body, learned, repairs)


def reasoning_effort_not_the_switch(body: dict[str, Any], family: Thinking, repairs: Counter[Repair]) -> None:
    """OpenAI's `reasoning_effort` ("none" for off), as this model family understands it:
    kept (its words mapped to low | medium | high) where the family takes it, else its
    own switch (`chat_template_kwargs`, `thinking`, a system prompt line). Chat clients
    and the bridges (Responses' reasoning.effort, Messages' thinking) ask the same way."""
    effort = body.get("reasoning_effort")
    if not isinstance(effort, str) or (not family.switchable and not family.effort):
        return
    enabled = effort != "none"
    switched = family.switch({k: v for k, v in body.items() if k != "reasoning_effort"}, enabled, effort)
    if switched != body:
        body.clear()
        body.update(switched)
        repairs[Repair.reasoning_effort_not_the_switch] += 1


def param_unsupported(body: dict[str, Any], params: tuple[str, ...], repairs: Counter[Repair]) -> None:
    # NIM: 400 "Validation: Unsupported parameter(s): `prompt_cache_key`" (see profiles.NIM_REJECTED).
    if n := drop_keys(body, params):
        repairs[Repair.param_unsupported] += n


def tool_function_key_unsupported(body: dict[str, Any], keys: tuple[str, ...], repairs: Counter[Repair]) -> None:
    # NIM: 401 "Failed to validate model spec: Unknown parameter: function.strict" (charmbracelet/crush #2472).
    if n := drop_function_keys(body, keys):
        repairs[Repair.tool_function_key_unsupported] += n


def param_rejected_before(body: dict[str, Any], params: frozenset[str], repairs: Counter[Repair]) -> None:
    """Parameters this upstream rejected for this model before (learned; see rejected.py)."""
    if n := drop_paths(body, params):
        repairs[Repair.param_rejected_before] += n


def drop_paths(body: dict[str, Any], paths: frozenset[str]) -> int:
    top = tuple(p for p in paths if not p.startswith(TOOL_FUNCTION))
    nested = tuple(p.removeprefix(TOOL_FUNCTION) for p in paths if p.startswith(TOOL_FUNCTION))
    return drop_keys(body, top) + drop_function_keys(body, nested)


def drop_keys(body: dict[str, Any], keys: tuple[str, ...]) -> int:
    dropped = [key for key in keys if key in body]
    for key in dropped:
        del body[key]
    return len(dropped)


def drop_function_keys(body: dict[str, Any], keys: tuple[str, ...]) -> int:
    """Removes `keys` from each `tools[].function`; the number of tools changed."""
    tools = body.get("tools")
    if not keys or not isinstance(tools, list):
        return 0
    changed = 0
    fixed = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and any(key in function for key in keys):
            tool = {**tool, "function": {k: v for k, v in function.items() if k not in keys}}
            changed += 1
        fixed.append(tool)
    if changed:
        body["tools"] = fixed
    return changed


def max_tokens_below_1(body: dict[str, Any], repairs: Counter[Repair]) -> None:
    # NIM: 400 "max_tokens must be at least 1, got -853." (free-claude-code #1198): a client
    # that computes what is left of the context can come out at 0 or below.
    for key in TOKEN_KEYS:
        value = body.get(key)
        if is_int(value) and value < 1:
            body[key] = 1
            repairs[Repair.max_tokens_below_1] += 1


def max_tokens_default_too_low(body: dict[str, Any], default: int, repairs: Counter[Repair], key: str = "max_tokens") -> None:
    # NIM's own default is so low that thinking models stop with finish_reason "length" on "hi"
    # (NousResearch/hermes-agent #10279): the operator's default is sent instead, under the
    # name the upstream takes (OpenAI's o-series reject `max_tokens`).
    if not any(k in body for k in TOKEN_KEYS):
        body[key] = default
        repairs[Repair.max_tokens_default_too_low] += 1


def max_tokens_over_model_limit(body: dict[str, Any], learned: Model, repairs: Counter[Repair]) -> None:
    """Lowers max_tokens to what the model takes (NIM, vLLM, TGI reject more instead of clamping):
    its cap when the upstream named one, else its context length less the prompt, estimated
    from the body's size at the rate the upstream's last rejection showed."""
    present = [key for key in TOKEN_KEYS if is_int(body.get(key))]
    if not present:
        return
    limit = learned.cap
    if limit is None and learned.context is not None:
        estimate = math.ceil(len(dump(body)) * learned.context.tokens_per_byte * ESTIMATE_MARGIN) + ESTIMATE_EXTRA
        limit = learned.context.tokens - estimate
    if limit is None or limit < 1:
        return  # nothing known, or the prompt alone fills the context: the upstream says so
    for key in present:
        if body[key] > limit:
            body[key] = limit
            repairs[Repair.max_tokens_over_model_limit] += 1


def without(body: dict[str, Any], params: frozenset[str]) -> dict[str, Any]:
    """`body` (not changed) without these learned paths."""
    out = dict(body)
    drop_paths(out, params)
    return out


def with_max_tokens(body: dict[str, Any], limit: int) -> dict[str, Any]:
    """`body` (not changed) with every max_tokens key lowered to `limit`."""
    return {k: (min(v, limit) if k in TOKEN_KEYS and is_int(v) else v) for k, v in body.items()}


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
