"""A whole chat completion as Anthropic's `message` object, and what streams share with it.

Contract: `message_from_completion(completion, reply)` takes a chat.completion
already repaired by the chat rules (chat/completion.py) and returns the
Messages API's reply: `{"id": "msg_…", "type": "message", "role":
"assistant", "model", "content": [...], "stop_reason", "stop_sequence",
"usage"}`, and the repairs made. Content blocks, in this order: the reasoning
text as a `thinking` block (with an empty `signature`: there is none to give,
and none is made up), the text as a `text` block, each tool call as a
`tool_use` block whose `input` is the parsed arguments (arguments that are no
JSON object give `{}`, counted). `stop_reason` and `usage` come from the
helpers below, which the stream's sink uses too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import NotJSON, loads
from ..bridge.usage import read_usage

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


@dataclass(frozen=True, slots=True)
class ReplyInfo:
    """What a reply needs from the request: the model the client asked for, its stop
    sequences, the estimate of its input tokens, and where message ids come from."""

    model: str
    input_tokens: int
    stop_sequences: tuple[str, ...]
    make_id: Callable[[], str]


def message_id(chat_id: Any, info: ReplyInfo) -> str:
    if not (isinstance(chat_id, str) and chat_id):
        chat_id = info.make_id()
    return "msg_" + chat_id.removeprefix("chatcmpl-")


def stop_reason(finish_reason: Any, choice: dict[str, Any], stop_sequences: Sequence[str]) -> tuple[str, str | None]:
    """Anthropic's stop_reason and stop_sequence for a chat finish_reason. A stop on one of
    the request's stop sequences shows in SGLang's and NIM's `matched_stop` or vLLM's
    `stop_reason` (the matched string); any other finish reads as end_turn."""
    if finish_reason == "stop":
        for key in ("matched_stop", "stop_reason"):
            matched = choice.get(key)
            if isinstance(matched, str) and matched in stop_sequences:
                return "stop_sequence", matched
    return STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn", None


def anthropic_usage(usage: Any, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """Anthropic's usage from a chat usage object; where the upstream reported none,
    `input_tokens` (the request's estimate) and `output_tokens` (counted deltas) stand in.
    Anthropic's input_tokens leave out tokens read from the cache, which are reported apart."""
    counts = read_usage(usage, input_tokens, output_tokens)
    out: dict[str, Any] = {"input_tokens": counts.input, "output_tokens": counts.output}
    if counts.cached and counts.cached <= counts.input:
        out["input_tokens"] = counts.input - counts.cached
        out["cache_read_input_tokens"] = counts.cached
    return out


def tool_input(arguments: Any, repairs: Counter[Repair]) -> dict[str, Any]:
    """A tool call's arguments as the `input` object; `{}` (counted) for anything else."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            value = loads(arguments)
        except NotJSON:
            value = None
        if isinstance(value, dict):
            return value
    repairs[Repair.tool_arguments_not_json] += 1
    return {}


def message_from_completion(completion: dict[str, Any], info: ReplyInfo) -> tuple[dict[str, Any], Counter[Repair]]:
    repairs: Counter[Repair] = Counter()
    choices = completion.get("choices")
    choice: dict[str, Any] = {}
    if isinstance(choices, list):
        choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), {})
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str):
        reasoning = message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        content.append(
            {
                "type": "tool_use",
                "id": call["id"],  # the chat rules give every call an id
                "name": function.get("name") if isinstance(function.get("name"), str) else "",
                "input": tool_input(function.get("arguments"), repairs),
            }
        )
    reason, sequence = stop_reason(choice.get("finish_reason"), choice, info.stop_sequences)
    out = {
        "id": message_id(completion.get("id"), info),
        "type": "message",
        "role": "assistant",
        "model": info.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(completion.get("usage"), info.input_tokens, 0),
    }
    return out, repairs
