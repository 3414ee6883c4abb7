"""A Responses request's tools as chat tools, and the names that map the calls back.

Contract: `chat_tools(tools, repairs, label)` returns the chat
`tools` list and the `ToolMap` for one request. Responses tools are flat
(`{"type": "function", "name", "parameters", ...}`), chat's are nested
(`{"type": "function", "function": {...}}`):

  function     nested; a true `strict` kept (the upstream's profile drops it where
               it is rejected: NIM), a false one, the default, never sent; Responses-only keys
               (`defer_loading`, `output_schema`, ...) left out
  custom       (Codex's freeform `apply_patch`) a function taking one string,
               `input`, its grammar or format told in the description; the
               call comes back as a `custom_tool_call` whose input is that string
  namespace    its member tools, each named `<namespace>__<name>` (another
               suffix when that name is taken); calls come back with `name`
               and `namespace` apart
  hosted       (web_search, file_search, code_interpreter, computer use, image
               generation, tool_search, mcp, ...) cannot run on a chat upstream:
               left out, counted and logged, never a 400

`ToolMap.tool(chat_name)` says what a chat call's name stands for;
`ToolMap.chat_name(kind, name, namespace)` names a call from the conversation
the same way, so history and tools agree.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...repairs import Repair
from ..bridge.request import CHAT_TOOL_CHOICES, function_tool, named_tool_choice, shown

log = logging.getLogger(__name__)

FUNCTION, CUSTOM = "function", "custom"
NAMESPACE_SEPARATOR = "__"


@dataclass(frozen=True, slots=True)
class Tool:
    kind: str  # FUNCTION or CUSTOM
    name: str
    namespace: str | None = None


@dataclass
class ToolMap:
    by_chat_name: dict[str, Tool] = field(default_factory=dict)
    chat_names: dict[Tool, str] = field(default_factory=dict)

    def add(self, tool: Tool) -> str:
        wanted = tool.name if tool.namespace is None else f"{tool.namespace}{NAMESPACE_SEPARATOR}{tool.name}"
        name, n = wanted, 1
        while name in self.by_chat_name:
            n += 1
            name = f"{wanted}_{n}"
        self.by_chat_name[name] = tool
        self.chat_names[tool] = name
        return name

    def tool(self, chat_name: str) -> Tool:
        """What a call named `chat_name` upstream is: one of the request's tools, or a function of that name."""
        return self.by_chat_name.get(chat_name) or Tool(FUNCTION, chat_name)

    def chat_name(self, kind: str, name: str, namespace: str | None = None) -> str:
        """The chat name of a call in the conversation (a tool no longer offered keeps the same rule)."""
        known = self.chat_names.get(Tool(kind, name, namespace)) or self.chat_names.get(Tool(_other(kind), name, namespace))
        if known is not None:
            return known
        return name if namespace is None else f"{namespace}{NAMESPACE_SEPARATOR}{name}"


def chat_tools(tools: Any, *, repairs: Counter[Repair], label: str) -> tuple[list[dict[str, Any]], ToolMap]:
    out: list[dict[str, Any]] = []
    names = ToolMap()
    hosted: list[str] = []
    for tool in tools if isinstance(tools, list) else ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function" and isinstance(tool.get("name"), str):
            out.append(_function(tool, names.add(Tool(FUNCTION, tool["name"]))))
        elif kind == "custom" and isinstance(tool.get("name"), str):
            repairs[Repair.custom_tool_unsupported] += 1
            out.append(_custom(tool, names.add(Tool(CUSTOM, tool["name"]))))
        elif kind == "namespace" and isinstance(tool.get("name"), str):
            repairs[Repair.namespace_tool_unsupported] += 1
            out += _namespace(tool, names, repairs, hosted)
        else:
            hosted.append(str(kind) if isinstance(tool, dict) else type(tool).__name__)
    if hosted:
        repairs[Repair.hosted_tool_unavailable] += len(hosted)
        log.info("%s: tools the upstream cannot run were left out: %s", label, shown(hosted))
    return out, names


def _function(tool: dict[str, Any], name: str) -> dict[str, Any]:
    return function_tool(name, tool.get("description"), tool.get("parameters"), strict=tool.get("strict") is True)


def _custom(tool: dict[str, Any], name: str) -> dict[str, Any]:
    described = [tool["description"]] if isinstance(tool.get("description"), str) and tool["description"] else []
    form = tool.get("format")
    if isinstance(form, dict) and form.get("type") == "grammar" and isinstance(form.get("definition"), str):
        syntax = form.get("syntax") if isinstance(form.get("syntax"), str) else "lark"
        described.append(f"The input is plain text (not JSON) that must match this {syntax} grammar:\n{form['definition']}")
    parameters = {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The tool's whole input, as plain text."}},
        "required": ["input"],
        "additionalProperties": False,
    }
    return function_tool(name, "\n\n".join(described) or "Takes one string, the input.", parameters)


def _namespace(tool: dict[str, Any], names: ToolMap, repairs: Counter[Repair], hosted: list[str]) -> Iterable[dict[str, Any]]:
    namespace = tool["name"]
    members = tool.get("tools")
    for member in members if isinstance(members, list) else ():
        kind = member.get("type") if isinstance(member, dict) else None
        if kind == "function" and isinstance(member.get("name"), str):
            yield _function(member, names.add(Tool(FUNCTION, member["name"], namespace)))
        elif kind == "custom" and isinstance(member.get("name"), str):
            repairs[Repair.custom_tool_unsupported] += 1
            yield _custom(member, names.add(Tool(CUSTOM, member["name"], namespace)))
        else:
            hosted.append(f"{namespace}.{kind}")


def chat_tool_choice(choice: Any, names: ToolMap) -> Any:
    """`tool_choice` as chat says it; None when it cannot be said (a hosted tool)."""
    if choice in CHAT_TOOL_CHOICES:
        return choice
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        namespace = choice.get("namespace") if isinstance(choice.get("namespace"), str) else None
        return named_tool_choice(names.chat_name(kind, choice["name"], namespace))
    if kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        return choice["mode"]
    return None


def _other(kind: str) -> str:
    return CUSTOM if kind == FUNCTION else FUNCTION
