"""The Responses API's objects, built from what a chat completion said.

Contract: `Shell(request, model)` holds what a Response object repeats from
its request (instructions, tools, tool_choice, ...) and makes the object for
any status: `shell.response(status, output, usage, error=, incomplete=)`.
`responses_usage(usage, input_tokens, output_tokens)` turns chat usage into
the Responses one (estimates standing in for counts the upstream did not
report). `splice(obj, texts)` writes `obj` as
compact JSON with placeholders replaced by JSON string literals, so long texts
kept as literals are never decoded to be written again. Ids look like
OpenAI's: a prefix and 48 hex digits.

Field order follows OpenAI's own stream (a June 2025 capture quoted in
AIProxySwift's OpenAIResponseStreamingEventTests): id, object, created_at,
status, background, error, incomplete_details, instructions,
max_output_tokens, model, output, parallel_tool_calls, previous_response_id,
reasoning, service_tier, store, temperature, text, tool_choice, tools, top_p,
truncation, usage, user, metadata.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from ...ids import new_id, unix_now
from ...wire.jsonio import dump
from ..bridge.usage import read_usage

# Chat finish reasons that end a response as incomplete, and why (Response.incomplete_details.reason).
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Placeholders differ per process, so no client text can be taken for one.
_TOKEN = secrets.token_hex(8)


class Shell:
    """What every Response object of one request says besides its output."""

    def __init__(
        self,
        request: Mapping[str, Any],
        model: str,
        *,
        make_id: Callable[[str], str] = new_id,
        now: Callable[[], int] = unix_now,
        input_tokens: int = 0,
    ) -> None:
        self.id = make_id("resp")
        self.input_tokens = input_tokens  # the request's estimate, for usage the upstream did not report
        self.created_at = now()
        self.make_id = make_id
        reasoning = request.get("reasoning")
        reasoning = reasoning if isinstance(reasoning, dict) else {}
        text = request.get("text")
        text = dict(text) if isinstance(text, dict) else {}
        text.setdefault("format", {"type": "text"})
        self.head: dict[str, Any] = {"background": False}
        self.middle: dict[str, Any] = {
            "instructions": _string(request.get("instructions")),
            "max_output_tokens": _int(request.get("max_output_tokens")),
            "model": model,
        }
        store = request.get("store")
        self.tail: dict[str, Any] = {
            "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
            "previous_response_id": _string(request.get("previous_response_id")),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": "default",
            "store": store is not False,
            "temperature": _number(request.get("temperature")),
            "text": text,
            "tool_choice": request.get("tool_choice") if request.get("tool_choice") is not None else "auto",
            "tools": request.get("tools") if isinstance(request.get("tools"), list) else [],
            "top_p": _number(request.get("top_p")),
            "truncation": request.get("truncation") if isinstance(request.get("truncation"), str) else "disabled",
        }
        metadata = request.get("metadata")
        self.end = {"user": _string(request.get("user")), "metadata": metadata if isinstance(metadata, dict) else {}}

    def response(
        self,
        status: str,
        output: list[Any],
        usage: dict[str, Any] | None = None,
        *,
        error: dict[str, Any] | None = None,
        incomplete: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            **self.head,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            **self.middle,
            "output": output,
            **self.tail,
            "usage": usage,
            **self.end,
        }


def responses_usage(usage: Any, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """Chat usage (prompt/completion tokens) as the Responses API counts it (input/output
    tokens); where the upstream reported none, `input_tokens` (the request's estimate) and
    `output_tokens` (counted deltas) stand in, so clients always find the counts."""
    counts = read_usage(usage, input_tokens, output_tokens)
    return {
        "input_tokens": counts.input,
        "input_tokens_details": {"cached_tokens": counts.cached},
        "output_tokens": counts.output,
        "output_tokens_details": {"reasoning_tokens": counts.reasoning},
        "total_tokens": counts.total,
    }


def placeholder(n: int) -> str:
    """A string no text holds (private-use marks around a random token), to stand for text `n`."""
    return f"\ue000{_TOKEN}-{n}\ue001"


def splice(obj: Any, texts: Mapping[str, bytes]) -> bytes:
    """`obj` as compact JSON, each placeholder (see `placeholder`) in `texts` replaced by its JSON literal."""
    out = dump(obj)
    for mark, literal in texts.items():
        written = dump(mark)
        if written not in out:
            # dump fell back to ASCII escapes (a lone surrogate somewhere): so did the placeholder.
            written = b'"\\ue000' + mark[1:-1].encode() + b'\\ue001"'
        out = out.replace(written, literal)
    return out


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def text_or(value: Any, default: str = "") -> str:
    """`value` when it is a string, else `default`."""
    return value if isinstance(value, str) else default


def object_or_empty(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
