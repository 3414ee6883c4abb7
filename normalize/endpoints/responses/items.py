"""The output items of a bridged stream as the sink builds them: their kinds, the event types
of their text, and the objects `output_item.added`/`.done` and the response carry.

Contract: an `Item` holds one output item while it streams: its text kept as JSON
string literals (`pieces`, joined by `literal()`), its delta event as a bytes format
of a sequence number and a JSON literal (`delta`), a call's name and arguments, and
once finished the whole item (`done`, its text as the placeholder `mark` stands for).
"""

from __future__ import annotations

from typing import Any

from .custom_input import InputReader
from .shapes import placeholder

MESSAGE, REFUSAL, REASONING, FUNCTION_CALL, CUSTOM_CALL = "message", "refusal", "reasoning", "function_call", "custom_tool_call"
TEXT_KEYS = {"content": MESSAGE, "reasoning_content": REASONING, "reasoning": REASONING, "refusal": REFUSAL}
ID_PREFIX = {MESSAGE: "msg", REFUSAL: "msg", REASONING: "rs", FUNCTION_CALL: "fc", CUSTOM_CALL: "ctc"}
# Per text kind: the delta and done event types, the part (and its text key), and where the part sits.
TEXT_EVENTS = {
    MESSAGE: ("response.output_text.delta", "response.output_text.done", "text", "content_index"),
    REFUSAL: ("response.refusal.delta", "response.refusal.done", "refusal", "content_index"),
    REASONING: ("response.reasoning_summary_text.delta", "response.reasoning_summary_text.done", "text", "summary_index"),
}


class Item:
    __slots__ = (
        "arguments",
        "call_id",
        "delta",
        "done",
        "id",
        "index",
        "kind",
        "mark",
        "name",
        "namespace",
        "pieces",
        "reader",
    )

    def __init__(self, kind: str, item_id: str, index: int) -> None:
        self.kind = kind
        self.id = item_id
        self.index = index
        self.mark = placeholder(index)  # stands for the text in .done events and the response
        self.pieces: list[bytes] = []  # text kinds: the deltas' JSON literals, without their quotes
        self.delta = b""  # a delta event: `delta % (sequence number, JSON literal)`
        self.call_id = self.name = ""
        self.namespace: str | None = None
        self.arguments: list[str] = []  # calls: the arguments (custom: the input) as sent
        self.reader: InputReader | None = None
        self.done: dict[str, Any] | None = None  # the finished item, text as its placeholder

    def literal(self) -> bytes:
        return b'"' + b"".join(self.pieces) + b'"'


def call_item(item: Item, status: str, value: str = "") -> dict[str, Any]:
    if item.kind == CUSTOM_CALL:
        out = {"id": item.id, "type": CUSTOM_CALL, "status": status, "call_id": item.call_id, "input": value, "name": item.name}
    else:
        out = {"id": item.id, "type": FUNCTION_CALL, "status": status, "arguments": value, "call_id": item.call_id, "name": item.name}
    if item.namespace is not None:
        out["namespace"] = item.namespace
    return out


def text_part(kind: str, text: str) -> dict[str, Any]:
    if kind == REFUSAL:
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
