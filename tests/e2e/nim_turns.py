"""A chat-only upstream that answers like hosted NVIDIA NIM, for the bridges' end-to-end tests.

`nim_turn(turn)` is a responder for `ScriptedUpstream.respond("POST",
"/v1/chat/completions", ...)`; `nim_turns(fn)` picks the turn from the
request (an agent's second request carries its tool's result). The reply has
NIM's quirks (tests/upstreams.py, quirks.md §2): a stream request gets chunks
in NIM's key order with `content: null` on the first, `role: null`,
`reasoning_content: null` and `tool_calls: null` everywhere else, usage on
every chunk (running totals), `matched_stop`, tool calls whose id, type and
name are repeated in every delta (MiniMax M2.7 on NIM), then `[DONE]`; any
other request gets a whole chat.completion. Errors: `nim_error(status,
problem)` answers NIM's problem+json. Nothing here serves `/v1/messages`:
that path gets the scripted upstream's 404, as NIM's hosted catalog answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.harness.upstream import RecordedRequest, Reply
from tests.upstreams import DONE, compact, nim_chunk, sse

CHAT_PATH = "/v1/chat/completions"
SSE = [("Content-Type", "text/event-stream")]
PROMPT_TOKENS = 1234


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: Sequence[str]  # the pieces the arguments stream in


@dataclass(frozen=True)
class Turn:
    text: Sequence[str] = ()
    reasoning: Sequence[str] = ()
    calls: Sequence[Call] = field(default_factory=tuple)

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.calls else "stop"


def usage(completion: int) -> dict[str, int]:
    return {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS + completion, "completion_tokens": completion}


def nim_stream(turn: Turn, model: str) -> list[bytes]:
    """NIM's chunks for one turn, one event per HTTP chunk."""
    deltas: list[dict[str, Any]] = [{"reasoning_content": piece} for piece in turn.reasoning]
    deltas += [{"content": piece} for piece in turn.text]
    for index, call in enumerate(turn.calls):
        for piece in [""] + list(call.arguments):
            function = {"name": call.name, "arguments": piece}
            deltas.append({"tool_calls": [{"index": index, "id": call.id, "type": "function", "function": function}]})
    events = [sse(nim_chunk({"role": "assistant"}, usage=usage(0), model=model))]
    events += [sse(nim_chunk(delta, usage=usage(n + 1), model=model)) for n, delta in enumerate(deltas)]
    events.append(sse(nim_chunk({}, finish_reason=turn.finish_reason, usage=usage(len(deltas)), model=model)))
    return [*events, DONE]


def nim_completion(turn: Turn, model: str) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(turn.text) or None, "reasoning_content": "".join(turn.reasoning) or None}
    message["tool_calls"] = [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": "".join(call.arguments)}} for call in turn.calls
    ] or None
    pieces = len(turn.text) + len(turn.reasoning) + sum(len(c.arguments) for c in turn.calls)
    body = {
        "id": "chatcmpl-nim-" + model.replace("/", "-"),
        "object": "chat.completion",
        "created": 1754000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": turn.finish_reason, "matched_stop": None}],
        "usage": usage(pieces),
    }
    return compact(body)


def nim_turns(pick: Callable[[dict[str, Any]], Turn]) -> Callable[[RecordedRequest], Reply]:
    """A responder: the turn `pick` chooses for the parsed chat request, as NIM sends it."""

    def respond(request: RecordedRequest) -> Reply:
        body = json.loads(request.body)
        turn = pick(body)
        model = body.get("model", "")
        if body.get("stream") is True:
            return Reply(200, SSE, nim_stream(turn, model))
        return Reply(200, [("Content-Type", "application/json")], [nim_completion(turn, model)], mode="content-length")

    return respond


def nim_turn(turn: Turn) -> Callable[[RecordedRequest], Reply]:
    return nim_turns(lambda body: turn)


def nim_error(status: int, problem: dict[str, Any], *, data_prefix: bool = False) -> Reply:
    """NIM's problem+json error (with the `data:` prefix NIM sometimes puts before it)."""
    body = compact(problem)
    if data_prefix:
        body = b"data:" + body + b"\n\n"
    return Reply(status, [("Content-Type", "application/problem+json")], [body], mode="content-length")


def last_tool_result(body: dict[str, Any]) -> str | None:
    """The content of the chat request's trailing tool message, if its last turn is one."""
    messages = body.get("messages") or []
    tools = [m for m in reversed(messages) if isinstance(m, dict)]
    for message in tools:
        if message.get("role") == "tool":
            return str(message.get("content"))
        if message.get("role") == "assistant":
            return None
    return None
