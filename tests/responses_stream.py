"""Test helpers for the Responses bridge: NIM-shaped chat streams in, Responses events read back.

`nim_stream(steps, usage=True)` writes the chat stream a NIM model sends for a
list of steps: ("content", text), ("reasoning", text), ("call", index, id,
name, arguments piece), with NIM's nulls in every chunk and, when the request
asked for usage, usage (running totals) on every chunk, as NIM sends it
(tests/upstreams.py has the sources). `events(body)` parses a Responses event
stream strictly (each event `event: <type>\\ndata: <json>` and a blank line,
the name equal to the JSON's type); `Assembled` is what a client builds from
it, checked for consistency on the way: sequence numbers 0, 1, 2, ...; one
terminal event, last; every delta adds up to its `.done` text, its
`output_item.done` item and the terminal response's output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.upstreams import DONE, nim_chunk, sse

TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def usage(completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": 9, "total_tokens": 9 + completion_tokens, "completion_tokens": completion_tokens}


def nim_stream(steps: list[tuple[Any, ...]], *, usage_every_chunk: bool = True, finish: str | None = "stop", done: bool = True) -> list[bytes]:
    """One upstream event per element (the last: [DONE])."""
    out = [sse(nim_chunk({"role": "assistant"}, usage=usage(0) if usage_every_chunk else None))]
    for n, step in enumerate(steps, 1):
        if step[0] == "content":
            delta: dict[str, Any] = {"content": step[1]}
        elif step[0] == "reasoning":
            delta = {"reasoning_content": step[1]}
        else:
            _, index, call_id, name, piece = step
            call: dict[str, Any] = {"index": index, "function": {"arguments": piece}}
            if call_id is not None:
                call.update(id=call_id, type="function")
                call["function"]["name"] = name
            delta = {"tool_calls": [call]}
        out.append(sse(nim_chunk(delta, usage=usage(n) if usage_every_chunk else None)))
    if finish is not None:
        out.append(sse(nim_chunk({}, finish_reason=finish, usage=usage(len(steps)) if usage_every_chunk else None)))
    if done:
        out.append(DONE)
    return out


def events(body: bytes) -> list[dict[str, Any]]:
    """The events of a Responses stream, parsed strictly; SSE comments skipped."""
    out = []
    assert body.endswith(b"\n\n") or not body, body[-200:]
    for block in body.split(b"\n\n")[:-1]:
        if block.startswith(b":"):
            continue
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: "), block
        event = json.loads(data[6:])
        assert event["type"] == name[7:].decode(), block
        out.append(event)
    return out


@dataclass
class Assembled:
    terminal: str = ""
    response: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)  # output items as the deltas built them
    text: str = ""
    reasoning: str = ""
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (type, name, arguments or input)

    @property
    def error(self) -> dict[str, Any] | None:
        return self.response.get("error")


def assemble(body: bytes) -> Assembled:
    """What a client builds from the events, each check a client (or OpenAI's contract) relies on."""
    got = Assembled()
    evs = events(body)
    assert [e["sequence_number"] for e in evs] == list(range(len(evs))), "sequence numbers 0, 1, 2, ..."
    assert evs and evs[0]["type"] == "response.created", "response.created first"
    terminals = [e for e in evs if e["type"] in TERMINAL]
    assert len(terminals) == 1 and evs[-1] is terminals[0], "exactly one terminal event, last"
    response_id = evs[0]["response"]["id"]
    items: dict[int, dict[str, Any]] = {}
    built: dict[int, str] = {}
    done: dict[int, dict[str, Any]] = {}
    for e in evs:
        kind = e["type"]
        if "response" in e:
            assert e["response"]["id"] == response_id, "one response id throughout"
        if kind == "response.output_item.added":
            assert e["output_index"] == len(items), "output indexes in order"
            items[e["output_index"]] = e["item"]
            built[e["output_index"]] = ""
        elif kind.endswith(".delta"):
            assert e["output_index"] in items and e["output_index"] not in done, kind
            assert e["item_id"] == items[e["output_index"]]["id"]
            built[e["output_index"]] += e["delta"]
        elif kind in ("response.output_text.done", "response.reasoning_summary_text.done", "response.refusal.done"):
            assert e["text" if "refusal" not in kind else "refusal"] == built[e["output_index"]], kind
        elif kind == "response.function_call_arguments.done":
            assert e["arguments"] == built[e["output_index"]]
        elif kind == "response.custom_tool_call_input.done":
            assert e["input"] == built[e["output_index"]]
        elif kind == "response.output_item.done":
            item = e["item"]
            assert item["id"] == items[e["output_index"]]["id"] and e["output_index"] not in done
            done[e["output_index"]] = item
            assert _item_text(item) == built[e["output_index"]], item
    got.terminal = terminals[0]["type"]
    got.response = terminals[0]["response"]
    output = got.response["output"]
    assert output == [done[i] for i in sorted(done)], "the response repeats every finished item, in order"
    if got.terminal != "response.failed":
        assert set(done) == set(items), "every item finished"
    got.items = [done.get(i, items[i]) for i in sorted(items)]
    for index in sorted(items):
        item, text = items[index], built[index]
        if item["type"] == "message":
            got.text += text
        elif item["type"] == "reasoning":
            got.reasoning += text
        else:
            got.calls.append((item["type"], item["name"], text))
    return got


def _item_text(item: dict[str, Any]) -> str:
    if item["type"] == "message":
        return "".join(part.get("text", part.get("refusal", "")) for part in item["content"])
    if item["type"] == "reasoning":
        return "".join(part["text"] for part in item["summary"])
    return item["arguments"] if item["type"] == "function_call" else item["input"]
