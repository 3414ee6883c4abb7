"""Tool calls in stream chunks: indexes, ids, types and names as OpenAI sends them.

Contract: `CallRules.tool_calls(value, state)` rewrites one delta's
`tool_calls` for the choice whose `ChoiceState` is given: every call gets our
index (in order of first appearance, by id, else by the upstream's index), and
a call's id, type and name go in its first delta only, as OpenAI sends them (a
name repeated in every delta would be concatenated by `+=` accumulators). An
id already given to a call at another upstream index starts a new call, under
an id made unique (clients key calls by id: two calls must not share one).
`LateNames` holds the chunks of a call opened with an empty name until the
name comes (vLLM), then moves the name into the call's first delta.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...repairs import Repair
from .fields import FieldRules, is_int
from .think import ThinkState

# Top-level keys that alone do not make a chunk worth sending.
BOOKKEEPING = frozenset({"id", "object", "created", "model", "system_fingerprint", "choices"})
CHOICE_BOOKKEEPING = frozenset({"index", "delta", "logprobs", "finish_reason"})


@dataclass
class ChoiceState:
    started: bool = False
    finish_reason: str | None = None
    # Our index for each upstream id and upstream index, and what was sent for each of ours.
    call_by_id: dict[str, int] = field(default_factory=dict)
    call_by_upstream_index: dict[int, int] = field(default_factory=dict)
    calls_sent: list[dict[str, str]] = field(default_factory=list)
    # Per call of ours: the id and the index the upstream opened it with.
    calls_upstream: list[tuple[str | None, int | None]] = field(default_factory=list)
    # Reasoning (think.py): where the content is, for `split`; whether folded reasoning is open, for `fold`.
    think: ThinkState | None = None
    fold: int = 0

    @property
    def saw_tool_calls(self) -> bool:
        return bool(self.calls_sent)


class CallRules(FieldRules):
    def tool_calls(self, value: Any, state: ChoiceState) -> Any:
        if isinstance(value, dict):
            self.note(Repair.tool_calls_as_object)
            value = [value]
        elif not isinstance(value, list):
            return value
        return [self.tool_call(call, state) for call in value]

    def tool_call(self, call: Any, state: ChoiceState) -> Any:
        if not isinstance(call, dict):
            return call
        index, new = self.tool_call_index(call, state)
        sent = state.calls_sent[index]
        out: dict[str, Any] = {"index": index}
        call_id = call.get("id")
        call_type = call.get("type")
        if new:
            if not (isinstance(call_id, str) and call_id):
                self.note(Repair.tool_call_id_missing)
                call_id = self.options.make_call_id()
            elif state.call_by_id.get(call_id) != index:
                call_id = self.tool_call_id_reused(call_id, index, state)
            out["id"] = sent["id"] = call_id
            out["type"] = sent["type"] = self.tool_call_type_missing(call_type)
        else:
            if call_id is not None and call_id in ("", sent.get("id"), state.calls_upstream[index][0]):
                self.note(Repair.tool_call_id_repeated)  # TGI: "id":"" on every delta
            elif call_id is not None:
                out["id"] = call_id
            if call_type is not None and call_type != sent.get("type"):
                out["type"] = call_type  # OpenAI sends the type once; only a change is news
        function = call.get("function")
        if isinstance(function, dict):
            out["function"] = self.tool_function(function, sent, new)
        elif new:
            out["function"] = {"arguments": ""}
        return self.keep_rest(call, out, skip=("index", "id", "type", "function"))

    def tool_call_index(self, call: dict[str, Any], state: ChoiceState) -> tuple[int, bool]:
        """Our index for this tool call delta, and whether it starts a new call."""
        call_id = call.get("id")
        upstream_index = call.get("index") if is_int(call.get("index")) else None
        if isinstance(call_id, str) and call_id:
            at_index = None if upstream_index is None else state.call_by_upstream_index.get(upstream_index)
            if at_index is not None and state.calls_upstream[at_index][0] == call_id:
                return at_index, False  # its id again (TGI sends it on every delta)
            index = state.call_by_id.get(call_id)
            if index is not None and upstream_index in (None, state.calls_upstream[index][1]):
                if upstream_index is not None:
                    state.call_by_upstream_index[upstream_index] = index
                return index, False
            if index is None:
                state.call_by_id[call_id] = len(state.calls_sent)
            # else: the id is another call's, opened at another upstream index: a new call
            index = self.new_tool_call(state, call_id, upstream_index)
            if at_index is not None:
                self.note(Repair.tool_call_index_reused)
            elif upstream_index is None:
                self.note(Repair.tool_call_index_missing)
            return index, True
        if upstream_index is not None:
            index = state.call_by_upstream_index.get(upstream_index)
            if index is None:
                return self.new_tool_call(state, None, upstream_index), True
            return index, False
        self.note(Repair.tool_call_index_missing)
        function = call.get("function")
        named = isinstance(function, dict) and bool(function.get("name"))
        if named or not state.calls_sent:
            return self.new_tool_call(state, None, None), True
        return len(state.calls_sent) - 1, False

    @staticmethod
    def new_tool_call(state: ChoiceState, call_id: str | None, upstream_index: int | None) -> int:
        index = len(state.calls_sent)
        state.calls_sent.append({})
        state.calls_upstream.append((call_id, upstream_index))
        if upstream_index is not None:
            state.call_by_upstream_index[upstream_index] = index
        return index

    def tool_call_id_reused(self, call_id: str, index: int, state: ChoiceState) -> str:
        """Two calls the upstream gave one id (at different indexes): the second gets its own,
        as clients key calls by id (openai-python refuses two alike, a Responses client
        keeps one)."""
        self.note(Repair.tool_call_id_reused)
        taken = {sent.get("id") for sent in state.calls_sent} | state.call_by_id.keys()
        unique = f"{call_id}_{index}"
        return unique if unique not in taken else self.options.make_call_id()

    def tool_function(self, function: dict[str, Any], sent: dict[str, str], new: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        name = function.get("name")
        if new:
            if not name:
                self.note(Repair.tool_name_missing)
            if name is not None:
                out["name"] = sent["name"] = name
        elif name is not None:
            if name == "":
                self.note(Repair.tool_name_empty)
            elif name == sent.get("name"):
                self.note(Repair.tool_name_repeated)
            else:
                out["name"] = sent["name"] = name  # a late or changed name is news
        arguments = self.tool_arguments_not_string(function.get("arguments"))
        if arguments is not None:
            out["arguments"] = arguments
        elif new:
            out["arguments"] = ""
        return self.keep_rest(function, out, skip=("name", "arguments"))


class LateNames:
    """vLLM (some models) opens a tool call with "name":"" and names it in a later
    delta. OpenAI names a call in its first delta, and clients that take the name
    from there (the AI SDK before vercel/ai#16507) record an empty name. So the
    chunks of such a call are held until its name comes (`limit` at most, and
    never past the stream's end), and the name moves into the first."""

    def __init__(self, rules: FieldRules, limit: int) -> None:
        self.rules = rules
        self.limit = limit
        self.held: list[dict[str, Any]] = []
        self.call: tuple[int, int] | None = None  # (choice index, call index) waiting for its name

    def chunks(self, out: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The chunks to send now, given one rewritten chunk (None: nothing to say)."""
        if out is None:
            return []
        if self.call is None:
            self.call = nameless_new_call(out)
            if self.call is None:
                return [out]
            self.held = [out]
            return []
        call = call_delta(out, self.call)
        if call is None:
            return [*self.release(), out]
        name = call.get("function", {}).get("name")
        if not name:
            self.held.append(out)
            return self.release() if len(self.held) >= self.limit else []
        first = call_delta(self.held[0], self.call)
        assert first is not None
        first["function"]["name"] = name
        self.rules.note(Repair.tool_name_late)
        held = self.release()
        if drop_name(out, call):
            return [*held, out]
        self.rules.note(Repair.empty_chunk)  # the name was all it said
        return held

    def release(self) -> list[dict[str, Any]]:
        held, self.held, self.call = self.held, [], None
        return held


def nameless_new_call(chunk: dict[str, Any]) -> tuple[int, int] | None:
    """(choice index, call index) of a tool call this rewritten chunk opens with an empty name."""
    for choice in chunk["choices"]:
        if isinstance(choice, dict):
            for call in choice["delta"].get("tool_calls") or ():
                if isinstance(call, dict) and "id" in call and call.get("function", {}).get("name") == "":
                    return choice["index"], call["index"]
    return None


def call_delta(chunk: dict[str, Any], where: tuple[int, int]) -> dict[str, Any] | None:
    """The delta of tool call `where` (choice index, call index) in a rewritten chunk."""
    for choice in chunk["choices"]:
        if isinstance(choice, dict) and choice["index"] == where[0]:
            for call in choice["delta"].get("tool_calls") or ():
                if isinstance(call, dict) and call.get("index") == where[1]:
                    return call
    return None


def drop_name(chunk: dict[str, Any], call: dict[str, Any]) -> bool:
    """Takes the name out of a tool call delta in a rewritten chunk, and whatever that
    leaves empty; False when the chunk then has nothing left to say."""
    del call["function"]["name"]
    if call["function"]:
        return True
    del call["function"]
    if len(call) > 1:
        return True
    for choice in chunk["choices"]:
        calls = choice["delta"].get("tool_calls")
        if calls and call in calls:
            calls.remove(call)
            if not calls:
                del choice["delta"]["tool_calls"]
    if chunk.keys() - BOOKKEEPING:
        return True
    return any(
        choice["delta"] or choice["finish_reason"] is not None or choice.get("logprobs") is not None or choice.keys() - CHOICE_BOOKKEEPING
        for choice in chunk["choices"]
    )
