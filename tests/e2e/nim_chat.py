"""A chat-only upstream that answers like NVIDIA NIM, for the Responses bridge's end-to-end tests.

`nim_chat(upstream, turns)` scripts `POST /v1/chat/completions` on a
ScriptedUpstream with a function of the request: `turns(request_body)` returns
the steps of the reply (see tests/responses_stream.py: ("content", text),
("reasoning", text), ("call", index, id, name, arguments)) and its finish
reason. A stream request gets NIM's stream (role:null, content:null and the
other nulls in every chunk, usage on every chunk when include_usage was
asked, one event per HTTP chunk); a whole request gets NIM's chat.completion.
`/v1/responses` is not served (404), as on integrate.api.nvidia.com. Like
NIM's hosted endpoint, it refuses a body with keys chat does not have, with
the 400 NIM sends (`Validation: Unsupported parameter(s): ...`,
router-for-me/CLIProxyAPI#4149), so a test fails if the bridge leaks a
Responses-only key. `NIM_PROBLEM_422` is NIM's problem+json error reply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.harness.upstream import RecordedRequest, Reply, ScriptedUpstream
from tests.responses_stream import nim_stream, usage
from tests.upstreams import NIM_422_PROBLEM, NIM_ID, compact

CHAT_PATH = "/v1/chat/completions"
Turns = Callable[[dict[str, Any]], tuple[list[tuple[Any, ...]], str]]
NIM_404 = b'{"status":404,"title":"Not Found","detail":"Not Found"}'
# Chat request keys this upstream takes; any other is refused as NIM refuses it.
CHAT_KEYS = frozenset(
    {"model", "messages", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls", "max_tokens"}
    | {"temperature", "top_p", "stop", "response_format", "reasoning_effort", "seed", "n", "logprobs", "top_logprobs"}
)
NIM_PROBLEM_422 = Reply(422, [("Content-Type", "application/problem+json")], [b"data:" + compact(NIM_422_PROBLEM) + b"\n\n"], "content-length")


def nim_chat(upstream: ScriptedUpstream, turns: Turns, *, path: str = CHAT_PATH) -> None:
    def answer(request: RecordedRequest) -> Reply:
        body = json.loads(request.body)
        unknown = sorted(set(body) - CHAT_KEYS)
        if unknown:
            error = {"error": {"message": f"Validation: Unsupported parameter(s): {', '.join(unknown)}", "type": "Bad Request", "code": 400}}
            return Reply(400, [("Content-Type", "application/json")], [compact(error)], "content-length")
        steps, finish = turns(body)
        if body.get("stream") is True:
            asked = (body.get("stream_options") or {}).get("include_usage") is True
            return Reply(200, [("Content-Type", "text/event-stream")], nim_stream(steps, usage_every_chunk=asked, finish=finish))
        return Reply(200, [("Content-Type", "application/json")], [compact(completion(steps, finish))], "content-length")

    upstream.respond("POST", path, answer)
    upstream.reply("POST", "/v1/responses", NIM_404, status=404, headers={"Content-Type": "application/problem+json"}, mode="content-length")


def completion(steps: list[tuple[Any, ...]], finish: str) -> dict[str, Any]:
    """NIM's whole reply for the same steps (SGLang key order, nulls kept)."""
    content = "".join(s[1] for s in steps if s[0] == "content") or None
    reasoning = "".join(s[1] for s in steps if s[0] == "reasoning") or None
    calls: dict[int, dict[str, Any]] = {}
    for step in steps:
        if step[0] == "call":
            _, index, call_id, name, piece = step
            call = calls.setdefault(index, {"id": call_id, "type": "function", "function": {"name": name, "arguments": ""}})
            call["function"]["arguments"] += piece
    return {
        "id": NIM_ID,
        "object": "chat.completion",
        "created": 1754000000,
        "model": "qwen/qwen3-next-80b-a3b-instruct",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "reasoning_content": reasoning, "tool_calls": list(calls.values()) or None},
                "logprobs": None,
                "finish_reason": finish,
                "matched_stop": 151645 if finish == "stop" else None,
            }
        ],
        "usage": usage(len(steps)),
    }


def tool_results(body: dict[str, Any]) -> list[str]:
    """The contents of the `tool` messages in a chat request (a tool's output sent back)."""
    return [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "tool"]
