"""Non-stream chat completions: the reply body in, OpenAI's `chat.completion` out.

Contract: `parse_json_body(bytes)` reads a reply body the way a lenient client
would (blank lines before it, a stray `data:` prefix) and gives None when it is
not JSON. `rewrite_completion(obj, ...)` takes the parsed `chat.completion`
(never changed in place) and returns the body to send plus the repairs made,
each counted under the name of the upstream behaviour it repairs, as the
stream rules in chat.py do (shared names where the behaviour is the same).

Shape produced (OpenAI's own, ../shared/quirks.md section 1): `id`, `object:
"chat.completion"`, integer `created` and `model` first; each choice has
`index`, a `message` with `role: "assistant"` and a `content` key, and a
non-null `finish_reason` (the reply is over, so OpenAI always names why).
`content` is a string, or null only beside tool calls (as OpenAI sends it).
Every tool call has an `id`, `type` and string `arguments`. Other nulls are
dropped, except `logprobs` on a choice and `refusal` in a message, which
OpenAI itself sends as null. Unknown keys pass through.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from .chat import NULLS_OPENAI_SENDS, STOP_SYNONYMS, choice_index_missing
from .config import new_call_id, new_completion_id, unix_now

COMPLETION = "chat.completion"
# Message keys OpenAI itself sends as null; every other null is dropped.
MESSAGE_NULLS_OPENAI_SENDS = frozenset({"refusal"})


def strip_body(body: bytes) -> bytes:
    """The body without surrounding whitespace and one leading `data:` (NIM, DeepSeek under load)."""
    body = body.strip()
    if body.startswith(b"data:"):
        body = body[5:].lstrip()
    return body


def parse_json_body(body: bytes) -> object | None:
    """The JSON value of a reply body, or None when it is not JSON."""
    try:
        return json.loads(strip_body(body))
    except (ValueError, RecursionError):
        return None


def has_tool_calls(calls: Any) -> bool:
    return isinstance(calls, list) and bool(calls)


def rewrite_completion(
    obj: dict[str, Any],
    *,
    model: str | None = None,
    model_alias: str | None = None,
    make_id: Callable[[], str] = new_completion_id,
    make_call_id: Callable[[], str] = new_call_id,
    now: Callable[[], int] = unix_now,
) -> tuple[dict[str, Any], Counter[str]]:
    """OpenAI's `chat.completion` from an upstream's, and the repairs made.

    `model` is the model the client asked for (used when the reply names none);
    `model_alias` is the alias it asked for, reported as the reply's model.
    """
    rules = CompletionRules(model=model, model_alias=model_alias, make_id=make_id, make_call_id=make_call_id, now=now)
    return rules.rewrite(obj), rules.repairs


class CompletionRules:
    def __init__(
        self,
        *,
        model: str | None = None,
        model_alias: str | None = None,
        make_id: Callable[[], str] = new_completion_id,
        make_call_id: Callable[[], str] = new_call_id,
        now: Callable[[], int] = unix_now,
    ) -> None:
        self.model = model
        self.model_alias = model_alias
        self.make_id = make_id
        self.make_call_id = make_call_id
        self.now = now
        self.repairs: Counter[str] = Counter()

    def note(self, repair: str) -> None:
        self.repairs[repair] += 1

    # -- the completion ------------------------------------------------------

    def rewrite(self, obj: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id_missing(obj.get("id")),
            "object": self.completion_object_wrong(obj.get("object")),
            "created": self.created_missing_or_not_integer(obj.get("created")),
            "model": self.model_missing(obj.get("model")),
        }
        choices = [self.choice(c, i) for i, c in enumerate(self.choices_missing_or_object(obj.get("choices")))]
        for key, value in obj.items():
            if key in out:
                continue
            if key == "choices":
                out[key] = choices
            elif value is None:
                self.note("null_fields")
            else:
                out[key] = value
        out.setdefault("choices", choices)
        return out

    def id_missing(self, value: Any) -> str:
        if isinstance(value, str) and value:
            return value
        self.note("id_missing")
        return self.make_id()

    def completion_object_wrong(self, value: Any) -> str:
        if value != COMPLETION:
            self.note("completion_object_wrong")
        return COMPLETION

    def created_missing_or_not_integer(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self.note("created_missing_or_not_integer")
        return int(value) if isinstance(value, float) else self.now()

    def model_missing(self, value: Any) -> str:
        if self.model_alias:
            return self.model_alias  # the client asked for the alias: it reads the alias back
        if isinstance(value, str) and value:
            return value
        self.note("model_missing")
        return self.model or ""

    def choices_missing_or_object(self, value: Any) -> list[Any]:
        if isinstance(value, list):
            return value
        self.note("choices_missing_or_object")
        return [value] if isinstance(value, dict) else []

    # -- one choice ----------------------------------------------------------

    def choice(self, choice: Any, position: int) -> Any:
        if not isinstance(choice, dict):
            return choice  # not ours to judge: pass it on as it came
        index = choice_index_missing(choice, position, self.note)
        message = self.message(choice)
        has_calls = has_tool_calls(message.get("tool_calls"))
        out: dict[str, Any] = {"index": index, "message": message}
        for key, value in choice.items():
            if key in out:
                continue
            if key == "finish_reason":
                out[key] = self.finish_reason(value, has_calls)
            elif value is None and key not in NULLS_OPENAI_SENDS:
                self.note("null_fields")
            else:
                out[key] = value
        if "finish_reason" not in out:
            out["finish_reason"] = self.finish_reason(None, has_calls)
        return out

    def finish_reason(self, value: Any, has_calls: bool) -> Any:
        if value == "":
            self.note("finish_reason_empty")
            value = None
        elif value is None:
            self.note("finish_reason_never_sent")
        elif isinstance(value, str) and value in STOP_SYNONYMS:
            self.note("finish_reason_eos_token")
            value = "stop"
        if value is None:
            return "tool_calls" if has_calls else "stop"
        if value == "stop" and has_calls:
            self.note("tool_calls_finish_stop")
            return "tool_calls"
        return value

    # -- the message ---------------------------------------------------------

    def message(self, choice: dict[str, Any]) -> dict[str, Any]:
        message = self.message_missing(choice)
        calls = message.get("tool_calls")
        if calls is not None:
            calls = self.tool_calls(calls)
        out: dict[str, Any] = {
            "role": self.role_missing(message.get("role")),
            "content": self.content_null(message, has_tool_calls(calls)),
        }
        for key, value in message.items():
            if key in out:
                continue
            if key == "tool_calls" and calls is not None:
                out[key] = calls
            elif value is None and key not in MESSAGE_NULLS_OPENAI_SENDS:
                self.note("null_fields")
            else:
                out[key] = value
        return out

    def message_missing(self, choice: dict[str, Any]) -> dict[str, Any]:
        message = choice.get("message")
        if isinstance(message, dict):
            return message
        self.note("message_missing")
        if isinstance(message, str):
            return {"content": message}
        delta = choice.get("delta")  # a stream-shaped choice (exo) says it in its delta
        return delta if isinstance(delta, dict) else {}

    def role_missing(self, value: Any) -> str:
        if value != "assistant":
            self.note("role_missing")
        return "assistant"

    def content_null(self, message: dict[str, Any], has_calls: bool) -> Any:
        if "content" not in message:
            self.note("content_missing")
            return None if has_calls else ""
        content = message["content"]
        if content is None and not has_calls:
            self.note("content_null")
            return ""
        return content

    # -- tool calls ----------------------------------------------------------

    def tool_calls(self, value: Any) -> Any:
        if isinstance(value, dict):
            self.note("tool_calls_as_object")
            value = [value]
        if not isinstance(value, list):
            return value
        return [self.tool_call(call) for call in value]

    def tool_call(self, call: Any) -> Any:
        if not isinstance(call, dict):
            return call
        call_id = call.get("id")
        if not (isinstance(call_id, str) and call_id):
            self.note("tool_call_id_missing")
            call_id = self.make_call_id()
        call_type = call.get("type")
        if not (isinstance(call_type, str) and call_type):
            self.note("tool_call_type_missing")
            call_type = "function"
        out: dict[str, Any] = {"id": call_id, "type": call_type}
        for key, value in call.items():
            if key in out:
                continue
            if key == "function" and isinstance(value, dict):
                out[key] = self.tool_function(value)
            elif value is None:
                self.note("null_fields")
            else:
                out[key] = value
        return out

    def tool_function(self, function: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in function.items():
            if key == "arguments":
                out[key] = self.tool_arguments_not_string(value)
            elif value is None:
                self.note("null_fields")
            else:
                out[key] = value
        if "arguments" not in out:
            out["arguments"] = self.tool_arguments_not_string(None)
        return out

    def tool_arguments_not_string(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if value is None:
            # Fireworks sends null; a finished call with no arguments is "{}" at OpenAI.
            self.note("tool_arguments_missing")
            return "{}"
        self.note("tool_arguments_not_string")  # TGI: the arguments as a JSON object
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
