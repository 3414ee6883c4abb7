"""The pieces of a chat request that both bridges build from their client's request alike.

Contract: small pure functions, each one piece of chat's request shape, so the
two translations (responses/request.py, messages/request.py) say it once:

  function_tool(name, description, parameters, strict)  a chat function tool
  named_tool_choice(name)        tool_choice forcing one function
  CHAT_TOOL_CHOICES              the words chat's tool_choice takes
  image_part(url, detail)        an `image_url` content part
  part_content(parts, sep)       one string when every part is text (joined by
                                 `sep`), else the parts
  stream_with_usage(body, chat)  `stream: true` asked for, with
                                 `stream_options.include_usage` (usage ends the
                                 stream: the bridge reports it)
  left_out(body, known)          the top-level fields chat has no place for,
                                 and `shown(names)` them for one log line (names
                                 the client chose: cut short, at most a few)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

CHAT_TOOL_CHOICES = ("auto", "none", "required")
# What of names a client chose goes into a log line.
MAX_SHOWN, MAX_NAME = 8, 40


def function_tool(name: Any, description: Any = None, parameters: Any = None, strict: bool = False) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if isinstance(description, str):
        function["description"] = description
    if parameters is not None:
        function["parameters"] = parameters
    if strict:
        function["strict"] = True  # an upstream that rejects it (NIM) loses it by its profile
    return {"type": "function", "function": function}


def named_tool_choice(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def image_part(url: str, detail: Any = None) -> dict[str, Any]:
    image = {"url": url}
    if isinstance(detail, str):
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def part_content(parts: list[dict[str, Any]], separator: str) -> str | list[dict[str, Any]]:
    if all(part["type"] == "text" for part in parts):
        return separator.join(part["text"] for part in parts)
    return parts


def stream_with_usage(body: dict[str, Any], chat: dict[str, Any]) -> None:
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}


def left_out(body: dict[str, Any], known: Collection[str]) -> list[str]:
    return [key for key in body if key not in known]


def shown(names: Iterable[str]) -> str:
    names = sorted({name[:MAX_NAME] for name in names})
    return ", ".join(names[:MAX_SHOWN]) + (", ..." if len(names) > MAX_SHOWN else "")
