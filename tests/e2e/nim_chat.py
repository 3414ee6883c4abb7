"""A chat-only upstream that answers like hosted NVIDIA NIM, for the bridges' end-to-end tests.

One way to script a NIM turn, for every bridge (Responses: Codex CLI, openai-python,
the Agents SDK, the AI SDK; Messages: Claude Code, anthropic-python), so each is
tested against every NIM quirk below, not a subset of them.

`nim_chat(upstream, turn)` scripts `POST /v1/chat/completions` on a
ScriptedUpstream. `turn` is a `Turn` (reasoning pieces, text pieces, `Call`s,
finish reason) or a function of the parsed request that returns one (an agent's
second request carries its tool's result: `tool_results(body)`,
`last_tool_result(body)`). The reply has NIM's quirks (tests/upstreams.py,
quirks.md §2):

- a stream request gets chunks in the key order NIM's SGLang backend writes,
  `content: null` on the first chunk, `role: null`, `reasoning_content: null`
  and `tool_calls: null` everywhere else, `matched_stop`, one event per HTTP
  chunk, then `[DONE]` (`nim_stream`);
- usage on every chunk as running totals when the request asked for it
  (`stream_options.include_usage`), `null` otherwise;
- a tool call opens with an empty `arguments` delta, and its id, type and name
  are repeated in every delta (MiniMax M2.7 on NIM, quirks.md);
- a whole request gets NIM's chat.completion, nulls kept (`nim_completion`);
- a body with a key chat does not have is refused with the 400 NIM sends
  (`Validation: Unsupported parameter(s): ...`, router-for-me/CLIProxyAPI#4149),
  so a test fails if a bridge leaks a Responses or Messages key;
- `/v1/responses` and `/v1/messages` are not served: NIM's problem+json 404,
  as on integrate.api.nvidia.com.

Errors: `nim_error(status, problem, data_prefix=...)` is NIM's problem+json
reply (with the `data:` prefix NIM sometimes puts before it); `NIM_PROBLEM_422`
is its 422.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.harness.upstream import RecordedRequest, Reply, ScriptedUpstream
from tests.upstreams import DONE, NIM_422_PROBLEM, NIM_ID, compact, nim_chunk, sse

CHAT_PATH = "/v1/chat/completions"
SSE = [("Content-Type", "text/event-stream")]
PROMPT_TOKENS = 1234
NIM_404 = b'{"status":404,"title":"Not Found","detail":"Not Found"}'
UNSERVED = ("/v1/responses", "/v1/messages", "/v1/messages/count_tokens")
# Chat request keys this upstream takes; any other is refused as NIM refuses it.
CHAT_KEYS = frozenset(
    {"model", "messages", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls", "max_tokens"}
    | {"temperature", "top_p", "stop", "response_format", "reasoning_effort", "seed", "n", "logprobs", "top_logprobs"}
)


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: Sequence[str]  # the pieces the arguments stream in


@dataclass(frozen=True)
class Turn:
    """What the model says, in the order NIM streams it: reasoning, text, tool calls."""

    text: Sequence[str] = ()
    reasoning: Sequence[str] = ()
    calls: Sequence[Call] = field(default_factory=tuple)
    finish: str | None = None  # default: "tool_calls" when there are calls, else "stop"

    @property
    def finish_reason(self) -> str:
        return self.finish or ("tool_calls" if self.calls else "stop")

    @property
    def tokens(self) -> int:
        """completion_tokens: one per piece streamed."""
        return len(self.reasoning) + len(self.text) + sum(len(call.arguments) for call in self.calls)


Pick = Callable[[dict[str, Any]], Turn]


def usage(completion: int) -> dict[str, int]:
    return {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS + completion, "completion_tokens": completion}


def nim_stream(turn: Turn, *, model: str, include_usage: bool = True, end: bool = True) -> list[bytes]:
    """NIM's events for one turn, one per element; `end=False` stops before the finish chunk and [DONE]."""
    deltas: list[tuple[dict[str, Any], int]] = [({"reasoning_content": piece}, 1) for piece in turn.reasoning]
    deltas += [({"content": piece}, 1) for piece in turn.text]
    for index, call in enumerate(turn.calls):
        for n, piece in enumerate(["", *call.arguments]):
            function = {"name": call.name, "arguments": piece}
            deltas.append(({"tool_calls": [{"index": index, "id": call.id, "type": "function", "function": function}]}, int(n > 0)))

    def chunk(delta: dict[str, Any], tokens: int, finish: str | None = None) -> bytes:
        return sse(nim_chunk(delta, finish_reason=finish, usage=usage(tokens) if include_usage else None, model=model))

    events, tokens = [chunk({"role": "assistant"}, 0)], 0
    for delta, pieces in deltas:
        tokens += pieces
        events.append(chunk(delta, tokens))
    if end:
        events += [chunk({}, tokens, turn.finish_reason), DONE]
    return events


def nim_completion(turn: Turn, *, model: str) -> dict[str, Any]:
    """NIM's whole reply for the same turn (SGLang key order, nulls kept)."""
    calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": "".join(c.arguments)}} for c in turn.calls]
    message = {
        "role": "assistant",
        "content": "".join(turn.text) or None,
        "reasoning_content": "".join(turn.reasoning) or None,
        "tool_calls": calls or None,
    }
    finish = turn.finish_reason
    return {
        "id": NIM_ID,
        "object": "chat.completion",
        "created": 1754000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
                "matched_stop": 151645 if finish == "stop" else None,
            }
        ],
        "usage": usage(turn.tokens),
    }


def nim_error(status: int, problem: dict[str, Any], *, data_prefix: bool = False) -> Reply:
    """NIM's problem+json error (with the `data:` prefix NIM sometimes puts before it)."""
    body = compact(problem)
    if data_prefix:
        body = b"data:" + body + b"\n\n"
    return Reply(status, [("Content-Type", "application/problem+json")], [body], mode="content-length")


NIM_PROBLEM_422 = nim_error(422, NIM_422_PROBLEM, data_prefix=True)


def nim_reply(turn: Turn | Pick) -> Callable[[RecordedRequest], Reply]:
    """A responder for the chat path: NIM's refusal of unknown keys, else the turn as NIM sends it."""
    pick: Pick = turn if callable(turn) else lambda body: turn

    def answer(request: RecordedRequest) -> Reply:
        body = json.loads(request.body)
        unknown = sorted(set(body) - CHAT_KEYS)
        if unknown:
            error = {
                "error": {"message": f"Validation: Unsupported parameter(s): {', '.join(unknown)}", "type": "Bad Request", "code": 400}
            }
            return Reply(400, [("Content-Type", "application/json")], [compact(error)], "content-length")
        chosen, model = pick(body), body.get("model", "")
        if body.get("stream") is True:
            asked = (body.get("stream_options") or {}).get("include_usage") is True
            return Reply(200, SSE, nim_stream(chosen, model=model, include_usage=asked))
        return Reply(200, [("Content-Type", "application/json")], [compact(nim_completion(chosen, model=model))], "content-length")

    return answer


def nim_chat(upstream: ScriptedUpstream, turn: Turn | Pick) -> None:
    """Scripts the upstream as NIM: the chat path answers `turn`; the Responses and Messages paths 404."""
    upstream.respond("POST", CHAT_PATH, nim_reply(turn))
    for path in UNSERVED:
        upstream.reply("POST", path, NIM_404, status=404, headers={"Content-Type": "application/problem+json"}, mode="content-length")


def tool_results(body: dict[str, Any]) -> list[str]:
    """The contents of the `tool` messages in a chat request (a tool's output sent back)."""
    return [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "tool"]


def last_tool_result(body: dict[str, Any]) -> str | None:
    """The content of the chat request's trailing tool message, if its last turn is one."""
    for message in reversed([m for m in body.get("messages") or [] if isinstance(m, dict)]):
        if message.get("role") == "tool":
            return str(message.get("content"))
        if message.get("role") == "assistant":
            return None
    return None
