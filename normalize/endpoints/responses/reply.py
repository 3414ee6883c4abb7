"""A whole chat.completion (already repaired: chat/completion.py) as a Response object.

Contract: `to_response(completion, shell, tools, repairs)` returns the Response the
client asked for: the first choice's reasoning text as a `reasoning` item, its
content as a `message` (`output_text`, or `refusal`), each tool call as a
`function_call` (or a `custom_tool_call` for a custom tool, its input read
out of the arguments), `status` from the finish_reason (length and
content_filter: `incomplete`), `usage` in input/output tokens. The same items
the stream sink would have built, in the same order.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ...repairs import Repair
from .custom_input import InputReader
from .shapes import INCOMPLETE, Shell, object_or_empty, responses_usage, text_or
from .tools import CUSTOM, ToolMap


def to_response(completion: dict[str, Any], shell: Shell, tools: ToolMap, repairs: Counter[Repair]) -> dict[str, Any]:
    choices = completion.get("choices")
    choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None) if isinstance(choices, list) else None
    message = choice.get("message") if isinstance(choice, dict) else None
    message = message if isinstance(message, dict) else {}
    reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    incomplete = INCOMPLETE.get(reason) if isinstance(reason, str) else None
    status = "incomplete" if incomplete else "completed"
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append({"id": shell.make_id("rs"), "type": "reasoning", "summary": [{"type": "summary_text", "text": reasoning}]})
    parts = []
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append({"type": "output_text", "annotations": [], "logprobs": [], "text": message["content"]})
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        output.append({"id": shell.make_id("msg"), "type": "message", "status": status, "content": parts, "role": "assistant"})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            output.append(_call(call, shell, tools, status, repairs))
    return shell.response(status, output, responses_usage(completion.get("usage"), shell.input_tokens, 0), incomplete=incomplete)


def _call(call: dict[str, Any], shell: Shell, tools: ToolMap, status: str, repairs: Counter[Repair]) -> dict[str, Any]:
    function = object_or_empty(call.get("function"))
    arguments = text_or(function.get("arguments"))
    call_id = call["id"]  # the chat rules give every call an id
    tool = tools.tool(text_or(function.get("name")))
    if tool.kind == CUSTOM:
        reader = InputReader()
        reader.feed(arguments)
        reader.finish(arguments)
        out = {"id": shell.make_id("ctc"), "type": "custom_tool_call", "status": status, "call_id": call_id}
        out.update(input="".join(reader.sent), name=tool.name)
    else:
        if not arguments:
            repairs[Repair.tool_arguments_missing] += 1  # as the stream gives it, and OpenAI says none
            arguments = "{}"
        out = {"id": shell.make_id("fc"), "type": "function_call", "status": status, "arguments": arguments}
        out.update(call_id=call_id, name=tool.name)
    if tool.namespace is not None:
        out["namespace"] = tool.namespace
    return out
