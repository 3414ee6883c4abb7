"""A Responses request body as the chat request that asks the upstream the same.

Contract: `to_chat(body, lookup, label)` returns a `Bridged`: the
chat body (the chat request rules still apply to it: chat/request.py), the
tool names (tools.py), this request's input items as the Responses API sees
them (for the store, which keeps each response's own items) and the repairs
made. It raises `BridgeError` (an OpenAI error and its status) for
what OpenAI would refuse too: an unknown `previous_response_id` or item
reference. The body is never changed in place, and never logged.

  instructions          a leading system message
  input (string)        one user message
  message items         by role (user, system, developer, assistant); parts
                        `input_text`/`output_text` as text (several joined
                        with a newline), `input_image` as `image_url`,
                        `refusal` as text; items without `type` are messages
  function_call         assistant `tool_calls` (consecutive calls, and a call
                        after an assistant message, make one message)
  function_call_output  a `tool` message; custom tool calls and outputs alike
  reasoning             not sent (the upstream cannot take it back), counted
  item_reference        the item, from the store
  tools, tool_choice    tools.py
  max_output_tokens -> max_tokens, text.format -> response_format,
  reasoning.effort -> reasoning_effort; temperature, top_p, stop and
  parallel_tool_calls as they are; `stream: true` with
  `stream_options.include_usage` (usage ends the stream). Everything else
  (store, include, prompt_cache_key, client_metadata, metadata, truncation,
  service_tier, user, background, ...) is not sent upstream.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import dump
from ..bridge.request import image_part, left_out, part_content, shown, stream_with_usage
from ..errors import openai_error
from .shapes import text_or
from .store import Lookup
from .tools import CUSTOM, FUNCTION, ToolMap, chat_tool_choice, chat_tools

log = logging.getLogger(__name__)

# Responses keys that have their own translation below; every other key is Responses-only.
_TRANSLATED = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens", "temperature"}
    | {"top_p", "stop", "text", "reasoning", "stream", "previous_response_id"}
)
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")


class BridgeError(Exception):
    """What OpenAI itself answers such a request with: an error envelope and its status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = openai_error(message, status, param=param, code=code)


@dataclass
class Bridged:
    chat: dict[str, Any]
    tools: ToolMap
    input: list[Any]  # this request's input, as Responses items (item references resolved)
    repairs: Counter[Repair] = field(default_factory=Counter)


def to_chat(body: dict[str, Any], lookup: Lookup | None = None, *, label: str = "request") -> Bridged:
    lookup = lookup or Lookup()
    repairs: Counter[Repair] = Counter()
    chat: dict[str, Any] = {}
    if "model" in body:
        chat["model"] = body["model"]
    tools, names = chat_tools(body.get("tools"), repairs=repairs, label=label)
    previous, given = _previous(body, lookup, repairs), _input(body, lookup, repairs)
    messages = Messages(names, repairs, label)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.add({"role": "system", "content": instructions})
    for item in previous + given:
        messages.item(item)
    chat["messages"] = messages.out
    if tools:
        chat["tools"] = tools
        choice = chat_tool_choice(body.get("tool_choice"), names)
        if choice is not None:
            chat["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    for key in ("temperature", "top_p", "stop"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    stream_with_usage(body, chat)
    unknown = left_out(body, _TRANSLATED)
    if unknown:
        repairs[Repair.responses_param_unsupported] += len(unknown)
        log.info("%s: not sent upstream, as chat has no place for them: %s", label, shown(unknown))
    return Bridged(chat, names, given, repairs)


def _previous(body: dict[str, Any], lookup: Lookup, repairs: Counter[Repair]) -> list[Any]:
    """The conversation `previous_response_id` continues, as Responses items."""
    previous = body.get("previous_response_id")
    if not (isinstance(previous, str) and previous):
        return []
    stored = lookup.previous(previous)
    if stored is None:
        raise BridgeError(400, f"Previous response with id '{previous}' not found.", "previous_response_id", "previous_response_not_found")
    repairs[Repair.previous_response_unsupported] += 1
    return stored


def _input(body: dict[str, Any], lookup: Lookup, repairs: Counter[Repair]) -> list[Any]:
    """This request's input as Responses items, item references resolved from the store."""
    given = body.get("input")
    if isinstance(given, str):
        return [{"type": "message", "role": "user", "content": given}]
    items: list[Any] = []
    for item in given if isinstance(given, list) else ():
        if isinstance(item, dict) and item.get("type") == "item_reference":
            found = lookup.item(text_or(item.get("id")))
            if found is None:
                raise BridgeError(404, f"Item with id '{item.get('id')}' not found.", "input")
            repairs[Repair.item_reference_unsupported] += 1
            item = found
        items.append(item)
    return items


def _response_format(text: Any) -> dict[str, Any] | None:
    form = text.get("format") if isinstance(text, dict) else None
    if not isinstance(form, dict):
        return None
    if form.get("type") == "json_object":
        return {"type": "json_object"}
    if form.get("type") == "json_schema":
        schema = {key: form[key] for key in ("name", "description", "schema", "strict") if form.get(key) is not None}
        return {"type": "json_schema", "json_schema": schema}
    return None


class Messages:
    """Chat messages built from Responses items, one item at a time."""

    def __init__(self, names: ToolMap, repairs: Counter[Repair], label: str) -> None:
        self.out: list[dict[str, Any]] = []
        self.names = names
        self.repairs = repairs
        self.label = label
        self._dropped: set[str] = set()

    def add(self, message: dict[str, Any]) -> None:
        self.out.append(message)

    def item(self, item: Any) -> None:
        if not isinstance(item, dict):
            self._drop(Repair.input_item_unsupported, type(item).__name__)
            return
        kind = item.get("type")
        if kind in (None, "message") and item.get("role") in _MESSAGE_ROLES:
            self._message(item)
        elif kind == "function_call":
            self._call(FUNCTION, item, item.get("arguments"))
        elif kind == "custom_tool_call":
            self._call(CUSTOM, item, dump({"input": item.get("input") if isinstance(item.get("input"), str) else ""}).decode())
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self.add({"role": "tool", "tool_call_id": text_or(item.get("call_id")), "content": self._output(item.get("output"))})
        elif kind == "reasoning":
            self._drop(Repair.reasoning_item_unsupported, "reasoning")
        else:
            self._drop(Repair.input_item_unsupported, str(kind))

    def _message(self, item: dict[str, Any]) -> None:
        role = item["role"]
        content = item.get("content")
        if isinstance(content, list):
            content = self._parts(content, images=role == "user")
        elif not isinstance(content, str):
            content = ""
        self.add({"role": role, "content": content})  # only user messages keep images: the rest is text

    def _parts(self, parts: list[Any], images: bool) -> str | list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
                out.append({"type": "text", "text": part["text"]})
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                out.append({"type": "text", "text": part["refusal"]})
            elif kind == "input_image" and images and isinstance(part.get("image_url"), str):
                out.append(image_part(part["image_url"], part.get("detail")))
            else:
                self._drop(Repair.content_part_unsupported, str(kind))
        return part_content(out, "\n")

    def _call(self, kind: str, item: dict[str, Any], arguments: Any) -> None:
        name = text_or(item.get("name"))
        namespace = item.get("namespace") if isinstance(item.get("namespace"), str) else None
        call = {
            "id": text_or(item.get("call_id")),
            "type": "function",
            "function": {"name": self.names.chat_name(kind, name, namespace), "arguments": arguments if isinstance(arguments, str) else ""},
        }
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "assistant" and ("tool_calls" in last or isinstance(last.get("content"), str)):
            last.setdefault("tool_calls", []).append(call)
            if not last["content"]:
                last["content"] = None  # as chat writes an assistant turn that only calls tools
        else:
            self.add({"role": "assistant", "content": None, "tool_calls": [call]})

    def _output(self, output: Any) -> str:
        if isinstance(output, str):
            return output
        if isinstance(output, list):
            parts = self._parts(output, images=False)
            return parts if isinstance(parts, str) else "\n".join(part.get("text", "") for part in parts)
        return "" if output is None else dump(output).decode()

    def _drop(self, repair: Repair, what: str) -> None:
        self.repairs[repair] += 1
        what = what[:40]  # a type name the client chose: logged, so kept short
        if what not in self._dropped and len(self._dropped) < 8:
            self._dropped.add(what)
            log.info("%s: a %s item or part cannot be sent to a chat upstream; left out", self.label, what)
