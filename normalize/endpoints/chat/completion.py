"""Non-stream chat completions: the reply body in, OpenAI's `chat.completion` out.

Contract: `rewrite_completion(obj, options)` takes the parsed `chat.completion`
(never changed in place) and returns the body to send plus the repairs made,
each counted under the name of the upstream behaviour it repairs, with the
same field rules as stream chunks (fields.py). `completion_as_chunks` turns a
whole completion into the chunks a stream would have carried, for upstreams
that answer a stream request with one JSON body.

Shape produced (OpenAI's own, ../shared/quirks.md section 1): `id`, `object:
"chat.completion"`, a positive integer `created` and `model` first; each
choice has `index`, a `message` with `role: "assistant"` and a `content` key,
and a non-null `finish_reason` (the reply is over, so OpenAI always names
why). `content` is a string, or null only beside tool calls (as OpenAI sends
it). Every tool call has an `id`, `type` and string `arguments`. Other nulls
are dropped, except `logprobs` on a choice and `refusal` in a message, which
OpenAI itself sends as null. Unknown keys pass through. Reasoning in the
message is split out of content, or folded into it, as in a stream (think.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ...repairs import Repair
from .chunks import CHUNK
from .fields import CHOICE_NULLS, FieldRules
from .options import Options
from .think import FOLD, SPLIT, fold_message, split_message

COMPLETION = "chat.completion"
# Message keys OpenAI itself sends as null; every other null is dropped.
MESSAGE_NULLS = frozenset({"refusal"})


def has_tool_calls(calls: Any) -> bool:
    return isinstance(calls, list) and bool(calls)


def rewrite_completion(obj: dict[str, Any], options: Options | None = None) -> tuple[dict[str, Any], Counter[Repair]]:
    """OpenAI's `chat.completion` from an upstream's, and the repairs made."""
    rules = CompletionRules(options or Options())
    return rules.rewrite(obj), rules.repairs


class CompletionRules(FieldRules):
    def rewrite(self, obj: dict[str, Any]) -> dict[str, Any]:
        created = self.created_missing_or_not_integer(obj.get("created"))
        out: dict[str, Any] = {
            "id": self.id_missing(obj.get("id")),
            "object": self.completion_object_wrong(obj.get("object")),
            "created": created if created is not None else self.options.now(),
            "model": self.model_missing(obj.get("model"), self.options.model or ""),
        }
        choices = [self.choice(c, i) for i, c in enumerate(self.choices_missing_or_object(obj.get("choices")))]
        self.keep_rest(obj, out, replace={"choices": choices})
        out.setdefault("choices", choices)
        return out

    def id_missing(self, value: Any) -> str:
        if isinstance(value, str) and value:
            return value
        self.note(Repair.id_missing)
        return self.options.make_id()

    def completion_object_wrong(self, value: Any) -> str:
        if value != COMPLETION:
            self.note(Repair.completion_object_wrong)
        return COMPLETION

    # -- one choice ----------------------------------------------------------

    def choice(self, choice: Any, position: int) -> Any:
        if not isinstance(choice, dict):
            return choice  # not ours to judge: pass it on as it came
        index = self.choice_index_missing(choice, position)
        message = self.message(choice)
        has_calls = has_tool_calls(message.get("tool_calls"))
        out: dict[str, Any] = {"index": index, "message": message}
        reason = self.finish_reason_never_sent(choice.get("finish_reason"), has_calls)
        self.keep_rest(choice, out, replace={"finish_reason": reason}, nulls_kept=CHOICE_NULLS)
        out.setdefault("finish_reason", reason)
        return out

    def finish_reason_never_sent(self, value: Any, has_calls: bool) -> str:
        """A whole reply always says why it ended; what the upstream did not say is inferred."""
        if value is None:
            self.note(Repair.finish_reason_never_sent)
        value = self.finish_reason(value, has_calls)
        if value is None:
            return "tool_calls" if has_calls else "stop"
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
        replace = {"tool_calls": calls} if calls is not None else None
        return self.reasoning(self.keep_rest(message, out, replace=replace, nulls_kept=MESSAGE_NULLS))

    def reasoning(self, message: dict[str, Any]) -> dict[str, Any]:
        mode = self.options.reasoning
        if mode == SPLIT:
            return split_message(message, self.options.opens_inside, self.note)
        if mode == FOLD:
            return fold_message(message, self.note)
        return message

    def message_missing(self, choice: dict[str, Any]) -> dict[str, Any]:
        message = choice.get("message")
        if isinstance(message, dict):
            return message
        self.note(Repair.message_missing)
        if isinstance(message, str):
            return {"content": message}
        delta = choice.get("delta")  # a stream-shaped choice (exo) says it in its delta
        return delta if isinstance(delta, dict) else {}

    def role_missing(self, value: Any) -> str:
        if value != "assistant":
            self.note(Repair.role_missing)
        return "assistant"

    def content_null(self, message: dict[str, Any], has_calls: bool) -> Any:
        if "content" not in message:
            self.note(Repair.content_missing)
            return None if has_calls else ""
        content = message["content"]
        if content is None and not has_calls:
            self.note(Repair.content_null)
            return ""
        return content

    # -- tool calls ----------------------------------------------------------

    def tool_calls(self, value: Any) -> Any:
        if isinstance(value, dict):
            self.note(Repair.tool_calls_as_object)
            value = [value]
        if not isinstance(value, list):
            return value
        return [self.tool_call(call) for call in value]

    def tool_call(self, call: Any) -> Any:
        if not isinstance(call, dict):
            return call
        call_id = call.get("id")
        if not (isinstance(call_id, str) and call_id):
            self.note(Repair.tool_call_id_missing)
            call_id = self.options.make_call_id()
        out: dict[str, Any] = {"id": call_id, "type": self.tool_call_type_missing(call.get("type"))}
        function = call.get("function")
        replace = {"function": self.tool_function(function)} if isinstance(function, dict) else None
        return self.keep_rest(call, out, replace=replace)

    def tool_function(self, function: dict[str, Any]) -> dict[str, Any]:
        arguments = self.tool_arguments_missing(function.get("arguments"))
        out = self.keep_rest(function, {}, replace={"arguments": arguments})
        out.setdefault("arguments", arguments)
        return out

    def tool_arguments_missing(self, value: Any) -> str:
        if value is None:
            # Fireworks sends null; a finished call with no arguments is "{}" at OpenAI.
            self.note(Repair.tool_arguments_missing)
            return "{}"
        return self.tool_arguments_not_string(value)


def completion_as_chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole chat.completion as the chunks a stream would have carried (for
    upstreams that ignore "stream": true): each message as one delta, then
    each finish_reason, then usage on a chunk of its own. The chunk rules
    still apply to them."""
    top = {k: v for k, v in completion.items() if k not in ("choices", "usage", "object")}
    top["object"] = CHUNK
    chunks, finishes = [], []
    for position, choice in enumerate(completion.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        message = choice.get("message", choice.get("delta"))
        delta = dict(message) if isinstance(message, dict) else {"content": message}
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            delta["tool_calls"] = [{"index": i, **call} if isinstance(call, dict) else call for i, call in enumerate(calls)]
        chunks.append({**top, "choices": [{"index": index, "delta": delta, "logprobs": choice.get("logprobs"), "finish_reason": None}]})
        finishes.append({**top, "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}]})
    chunks += finishes
    if completion.get("usage") is not None:
        chunks.append({**top, "choices": [], "usage": completion["usage"]})
    return chunks
