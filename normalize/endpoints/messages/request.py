"""A Messages request body as a chat completions body.

Contract: `chat_request(body)` takes the parsed body of `POST …/v1/messages`
(a dict, never changed in place) and returns a `Bridged`: the chat body to
send upstream, the repairs made (by name), and the names of what was left
out, for one log line (names of fields and block types only, never content).
The chat request rules (model aliases, dropped parameters: chat/request.py)
apply afterwards, through `ChatExchange.read_request`.

Mapping:
- `system` (a string or text blocks) -> a first `system` message; a message
  with role `system` inside `messages` (Claude Code sends one) stays a system
  message where it is.
- A user turn's `tool_result` blocks -> `tool` messages (`tool_call_id` kept;
  text joined; `is_error` -> the text prefixed "Error: "), in order, then the
  rest of the turn as one user message: text blocks (one string when there is
  no image, blocks joined by a blank line), images (base64 or url) as
  `image_url` parts, images from tool results after them, documents with a
  text source as text.
- An assistant turn: text -> `content`, `tool_use` -> `tool_calls` (id kept,
  input as a JSON string); `thinking` and `redacted_thinking` blocks are not
  sent (they are the client's record; their signatures mean nothing upstream).
- `tools` -> functions (`input_schema` as `parameters`); Anthropic's own
  server tools (any `type` but `custom`: web search, bash, text editor, …)
  are not sent. `tool_choice` auto/any/tool/none -> "auto"/"required"/the
  function/"none"; `disable_parallel_tool_use` -> `parallel_tool_calls: false`.
- `max_tokens`, `temperature`, `top_p`, `top_k` as they are; `stop_sequences`
  -> `stop`; `stream: true` -> `stream: true` with `include_usage`.
- `thinking` `{"type": "enabled", "budget_tokens": N}` -> `reasoning_effort`
  (low under 4,096 tokens, medium under 16,384, else high), which the chat
  rules turn into the model family's own switch (chat/validation.py);
  `adaptive` (the model decides) and `disabled` are not sent (counted as
  `thinking_param_unsupported`): "none" is a word few upstreams take.
  Everything else (`metadata`, `context_management`, `output_config`,
  `service_tier`, …) is not sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import dump
from ..bridge.request import function_tool, image_part, left_out, named_tool_choice, part_content, stream_with_usage

# Top-level Messages fields that have a chat counterpart (handled below).
BRIDGED_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "stream"}
    | {"thinking"}
)
SAMPLING = ("max_tokens", "temperature", "top_p", "top_k")
# Anthropic's tool_choice types that are a word in chat.
_TOOL_CHOICE_WORDS = {"auto": "auto", "any": "required", "none": "none"}


@dataclass
class Bridged:
    body: dict[str, Any]
    repairs: Counter[Repair] = field(default_factory=Counter)
    left_out: list[str] = field(default_factory=list)  # names for the log line

    def leave_out(self, repair: Repair, name: str) -> None:
        self.repairs[repair] += 1
        if name not in self.left_out:
            self.left_out.append(name)


def chat_request(body: dict[str, Any]) -> Bridged:
    out: dict[str, Any] = {}
    bridged = Bridged(out)
    if "model" in body:
        out["model"] = body["model"]
    messages = system_messages(body.get("system"))
    turns = body.get("messages")
    for message in turns if isinstance(turns, list) else ():
        messages += chat_messages(message, bridged)
    out["messages"] = messages
    tools = chat_tools(body.get("tools"), bridged)
    if tools:
        out["tools"] = tools
        tool_choice(body.get("tool_choice"), out)
    for key in SAMPLING:
        if key in body:
            out[key] = body[key]
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and stops:
        out["stop"] = stops
    stream_with_usage(body, out)
    thinking_as_reasoning_effort(body, bridged)
    for key in left_out(body, BRIDGED_FIELDS):
        bridged.leave_out(Repair.messages_field_unsupported, key)
    return bridged


# Thinking budgets (tokens) below which OpenAI's lower effort words stand for them.
EFFORT_BUDGETS = ((4096, "low"), (16384, "medium"))


def thinking_as_reasoning_effort(body: dict[str, Any], bridged: Bridged) -> None:
    """Anthropic's `thinking` has no chat key (NIM rejects the key itself); asked for
    explicitly, it is sent as OpenAI's `reasoning_effort`, which the chat rules give each
    model family as its own switch. Adaptive or disabled thinking is not sent."""
    if "thinking" not in body:
        return
    thinking = body["thinking"]
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        budget = budget if isinstance(budget, int) and not isinstance(budget, bool) else 0
        bridged.body["reasoning_effort"] = next((word for limit, word in EFFORT_BUDGETS if budget < limit), "high")
        bridged.repairs[Repair.thinking_as_reasoning_effort] += 1
        return
    bridged.leave_out(Repair.thinking_param_unsupported, "thinking")


# -- messages ----------------------------------------------------------------------


def system_messages(system: Any) -> list[dict[str, Any]]:
    text = system if isinstance(system, str) else joined_text(system)
    return [{"role": "system", "content": text}] if text else []


def chat_messages(message: Any, bridged: Bridged) -> list[dict[str, Any]]:
    if not isinstance(message, dict):
        bridged.leave_out(Repair.content_block_unsupported, "a message that is not an object")
        return []
    role = message.get("role")
    content = message.get("content")
    if role == "assistant":
        return [assistant_message(content, bridged)]
    if role == "system":
        return [{"role": "system", "content": content if isinstance(content, str) else joined_text(content)}]
    return user_messages(role if isinstance(role, str) else "user", content, bridged)


def user_messages(role: str, content: Any, bridged: Bridged) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"role": role, "content": content if isinstance(content, str) else ""}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    tool_images: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            tools.append(tool_message(block, tool_images, bridged))
        elif kind in ("text", "image", "document"):
            part = content_part(block)
            if part is None:
                bridged.leave_out(Repair.content_block_unsupported, f"{kind} block")
            else:
                parts.append(part)
        else:
            bridged.leave_out(Repair.content_block_unsupported, f"{kind} block" if isinstance(kind, str) else "a block without a type")
    parts += tool_images
    if parts or not tools:
        tools.append({"role": role, "content": part_content(parts, "\n\n")})
    return tools


def tool_message(block: dict[str, Any], images: list[dict[str, Any]], bridged: Bridged) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            converted = content_part(part)
            if converted is None:
                kind = part.get("type") if isinstance(part, dict) else None
                bridged.leave_out(
                    Repair.content_block_unsupported,
                    f"{kind} block in a tool result" if isinstance(kind, str) else "a block without a type",
                )
            elif converted["type"] == "image_url":
                images.append(converted)
            else:
                texts.append(converted["text"])
        text = "\n".join(texts)
    else:
        text = content if isinstance(content, str) else ""
    if block.get("is_error") is True:
        text = "Error: " + text
    call_id = block.get("tool_use_id")
    return {"role": "tool", "tool_call_id": call_id if isinstance(call_id, str) else "", "content": text}


def assistant_message(content: Any, bridged: Bridged) -> dict[str, Any]:
    if not isinstance(content, list):
        return {"role": "assistant", "content": content if isinstance(content, str) else ""}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(tool_call(block))
        elif kind in ("thinking", "redacted_thinking"):
            bridged.leave_out(Repair.thinking_block_in_history, f"{kind} block")
        else:
            bridged.leave_out(Repair.content_block_unsupported, f"{kind} block" if isinstance(kind, str) else "a block without a type")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    call_input = block.get("input")
    return {
        "id": block.get("id") if isinstance(block.get("id"), str) else "",
        "type": "function",
        "function": {
            "name": block.get("name") if isinstance(block.get("name"), str) else "",
            "arguments": dump(call_input if call_input is not None else {}).decode("utf-8"),
        },
    }


def content_part(block: Any) -> dict[str, Any] | None:
    """A chat content part for a text, image or text document block; None for anything else."""
    if not isinstance(block, dict):
        return None
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if kind == "image":
        if source.get("type") == "base64" and isinstance(source.get("data"), str):
            media_type = source.get("media_type") if isinstance(source.get("media_type"), str) else "image/png"
            return image_part(f"data:{media_type};base64,{source['data']}")
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return image_part(source["url"])
    if kind == "document" and source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    return None


def joined_text(blocks: Any, separator: str = "\n\n") -> str:
    if not isinstance(blocks, list):
        return ""
    texts = [b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]
    return separator.join(texts)


# -- tools -------------------------------------------------------------------------


def chat_tools(tools: Any, bridged: Bridged) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        return []
    out = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        kind = tool.get("type")
        if kind not in (None, "custom"):
            # Anthropic runs these itself (web search, code execution, …); no chat upstream can.
            bridged.leave_out(Repair.server_tool_unsupported, f"server tool {kind}")
            continue
        schema = tool.get("input_schema")
        out.append(
            function_tool(
                tool.get("name"), tool.get("description"), schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
            )
        )
    return out


def tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if isinstance(kind, str) and kind in _TOOL_CHOICE_WORDS:
        out["tool_choice"] = _TOOL_CHOICE_WORDS[kind]
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = named_tool_choice(choice["name"])
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
