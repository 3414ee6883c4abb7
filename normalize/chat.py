"""Chat completion chunk rewrites: parsed chunk in, OpenAI-shaped chunk out.

Contract: `ChunkRules.rewrite(chunk)` takes one parsed `chat.completion.chunk`
(a dict, which it may change) and returns the chunk to send, or None when the
chunk has nothing left to say. Rules that need to remember earlier chunks
(the first chunk of each choice, tool call indexes, the stream id) keep it in
`StreamState`. Every repair is a function named after the upstream behaviour
it repairs, and counts itself under that name in `repairs`.

Shape produced (OpenAI's own, ../shared/quirks.md section 1): the same
non-empty `id` on every chunk, `object: "chat.completion.chunk"`, an integer
`created`, a `model`; each choice has `index`, a `delta` object and a
`finish_reason` key; the first delta of a choice says `role: "assistant"`, and
`content: ""` when it carries neither content nor tool calls; later deltas
carry no role; no delta field is null.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import Options

CHUNK = "chat.completion.chunk"
# Keys OpenAI itself sends as null on every choice; every other null is dropped.
NULLS_OPENAI_SENDS = frozenset({"finish_reason", "logprobs"})
# Top-level keys that alone do not make a chunk worth sending.
BOOKKEEPING = frozenset({"id", "object", "created", "model", "system_fingerprint", "choices"})
CHOICE_BOOKKEEPING = frozenset({"index", "delta", "logprobs", "finish_reason"})
# Finish reasons some servers send that OpenAI spells "stop".
STOP_SYNONYMS = frozenset({"eos_token", "eos", "end_turn", "stop_sequence"})
# Chunks of a tool call opened without a name that are held, at most, waiting for it.
HOLD_LIMIT = 32


@dataclass
class ChoiceState:
    started: bool = False
    finish_reason: str | None = None
    # Tool calls, per choice: our index for each upstream id and upstream index,
    # and what was already sent for each of our indexes.
    call_by_id: dict[str, int] = field(default_factory=dict)
    call_by_upstream_index: dict[int, int] = field(default_factory=dict)
    calls_sent: list[dict[str, str]] = field(default_factory=list)

    @property
    def saw_tool_calls(self) -> bool:
        return bool(self.calls_sent)


@dataclass
class StreamState:
    id: str | None = None
    created: int | None = None
    model: str | None = None
    choices: dict[int, ChoiceState] = field(default_factory=dict)
    usage: Any = None  # the latest usage seen, sent at the end when the client asked
    usage_chunk: dict[str, Any] | None = None  # the upstream's own usage chunk, if it sent one


def choice_index_missing(choice: dict[str, Any], position: int, note: Callable[[str], None]) -> int:
    """A choice without an integer index (some servers omit it) is the one at its
    position in the list; streams and whole replies alike."""
    index = choice.get("index")
    if isinstance(index, int) and not isinstance(index, bool):
        return index
    note("choice_index_missing")
    return position


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


def completion_as_chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole chat.completion as the chunks a stream would have carried (for
    upstreams that ignore "stream": true): each message as one delta, then
    each finish_reason, then usage on a chunk of its own. The chunk rules
    still apply to them."""
    top = {k: v for k, v in completion.items() if k not in ("choices", "usage", "object")}
    top["object"] = CHUNK
    chunks, finishes = [], []
    for position, choice in enumerate(completion.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        message = choice.get("message", choice.get("delta"))
        delta = dict(message) if isinstance(message, dict) else {"content": message}
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            delta["tool_calls"] = [{"index": i, **call} if isinstance(call, dict) else call for i, call in enumerate(calls)]
        chunks.append({**top, "choices": [{"index": index, "delta": delta, "logprobs": choice.get("logprobs"), "finish_reason": None}]})
        finishes.append({**top, "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}]})
    chunks += finishes
    if completion.get("usage") is not None:
        chunks.append({**top, "choices": [], "usage": completion["usage"]})
    return chunks


def looks_like_chunk(obj: dict[str, Any]) -> bool:
    """A JSON object the chunk rules should handle (not an error, not a stranger)."""
    return isinstance(obj.get("choices"), (list, dict)) or obj.get("object") in (
        CHUNK,
        "chat.completion",
    )


class ChunkRules:
    def __init__(self, options: Options, repairs: Counter[str] | None = None) -> None:
        self.options = options
        self.repairs: Counter[str] = Counter() if repairs is None else repairs
        self.state = StreamState()
        # Chunks held back while a tool call waits for its name (see tool_name_late).
        self.held: list[dict[str, Any]] = []
        self.held_call: tuple[int, int] | None = None

    def note(self, repair: str, n: int = 1) -> None:
        self.repairs[repair] += n

    # -- the chunk -----------------------------------------------------------

    def chunks(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks to send now for one upstream chunk: usually its rewrite alone."""
        return self.tool_name_late(self.rewrite(chunk))

    def tool_name_late(self, out: dict[str, Any] | None) -> list[dict[str, Any]]:
        """vLLM (some models) opens a tool call with "name":"" and names it in a later
        delta. OpenAI names a call in its first delta, and clients that take the name
        from there (the AI SDK before vercel/ai#16507) record an empty name. So the
        chunks of such a call are held until its name comes (HOLD_LIMIT at most, and
        never past the stream's end), and the name moves into the first."""
        if out is None:
            return []
        if self.held_call is None:
            self.held_call = nameless_new_call(out)
            if self.held_call is None:
                return [out]
            self.held = [out]
            return []
        call = call_delta(out, self.held_call)
        if call is None:
            return self.release() + [out]
        name = call.get("function", {}).get("name")
        if not name:
            self.held.append(out)
            return self.release() if len(self.held) >= HOLD_LIMIT else []
        first = call_delta(self.held[0], self.held_call)
        first["function"]["name"] = name
        self.note("tool_name_late")
        held = self.release()
        if drop_name(out, call):
            return held + [out]
        self.note("empty_chunk")  # the name was all it said
        return held

    def release(self) -> list[dict[str, Any]]:
        held, self.held, self.held_call = self.held, [], None
        return held

    def rewrite(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        if chunk.get("choices") == [] and not self.options.include_usage:
            return self.empty_choices_chunk()
        out: dict[str, Any] = {
            "id": self.chunk_id_missing_or_changing(chunk.get("id")),
            "object": self.chunk_object_wrong(chunk.get("object")),
            "created": self.created_missing_or_not_integer(chunk.get("created")),
            "model": self.model_missing(chunk.get("model")),
        }
        choices_in = self.choices_missing_or_object(chunk.get("choices"))
        choices_out = []
        for position, choice in enumerate(choices_in):
            rewritten = self.choice(choice, position)
            if rewritten is not None:
                choices_out.append(rewritten)
        usage = None
        for key, value in chunk.items():
            if key in out:
                continue
            if key == "choices":
                out["choices"] = choices_out
            elif value is None:
                self.null_fields(key)
            elif key == "usage" and self.options.include_usage:
                usage = value  # sent once, at the end, as OpenAI does
            else:
                out[key] = value
        if "choices" not in out:
            out["choices"] = choices_out
        if self.options.include_usage and self.usage_not_last(out, usage, bool(choices_in)):
            return None  # the upstream's usage chunk: sent at the end instead
        if not choices_out and out.keys() <= BOOKKEEPING:
            if not choices_in and usage is None:
                self.note("empty_chunk")
            return None  # nothing left to say (empty choices are counted as empty_chunk)
        return out

    def empty_choices_chunk(self) -> None:
        """llama.cpp usage chunks, Azure prompt-filter chunks: clients index choices[0]."""
        self.note("empty_choices_chunk")
        return None

    def usage_not_last(self, chunk: dict[str, Any], usage: Any, has_choices: bool) -> bool:
        """Usage on content chunks, on every chunk, or under x_groq: kept for one
        final chunk. True when `chunk` is the upstream's own usage chunk."""
        groq = chunk.get("x_groq")
        if isinstance(groq, dict) and isinstance(groq.get("usage"), dict):
            # Sent once at the end instead, or a client adding both counts it twice.
            self.note("usage_under_x_groq")
            usage = usage if usage is not None else groq["usage"]
            chunk["x_groq"] = {k: v for k, v in groq.items() if k != "usage"}
        if usage is None:
            return False
        self.state.usage = usage
        if has_choices:
            self.note("usage_not_last")
            return False
        # Keep its extras (system_fingerprint, ...) for the chunk sent at the end.
        self.state.usage_chunk = chunk
        return True

    def chunk_id_missing_or_changing(self, value: Any) -> str:
        state = self.state
        if state.id is None:
            if isinstance(value, str) and value:
                state.id = value
                return value
            state.id = self.options.make_id()
            self.note("chunk_id_missing")
            return state.id
        if value != state.id:
            self.note("chunk_id_missing" if not value else "chunk_id_changing")
        return state.id

    def chunk_object_wrong(self, value: Any) -> str:
        if value != CHUNK:
            self.note("chunk_object_wrong")
        return CHUNK

    def created_missing_or_not_integer(self, value: Any) -> int:
        """OpenAI sends one positive integer `created` on every chunk of a stream."""
        state = self.state
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            if state.created is None:
                state.created = value
            elif value != state.created:
                self.note("created_changing")  # TGI stamps each chunk anew
            return state.created
        self.note("created_missing_or_not_integer")  # also Azure's created: 0
        if state.created is None:
            state.created = int(value) if isinstance(value, float) and value > 0 else self.options.now()
        return state.created

    def model_missing(self, value: Any) -> str:
        if isinstance(value, str) and value:
            if not self.state.model:
                self.state.model = value
            return self.reported_model(value)
        self.note("model_missing")
        return self.reported_model(self.fallback_model())

    def reported_model(self, model: str) -> str:
        """The alias the client asked for, when the addon mapped it to another model."""
        return self.options.model_alias or model

    def fallback_model(self) -> str:
        """The upstream's model name when it gave one, else the one the client asked for."""
        return self.state.model or self.options.model or ""

    def choices_missing_or_object(self, value: Any) -> list[Any]:
        if isinstance(value, list):
            return value
        self.note("choices_missing_or_object")
        if isinstance(value, dict):
            return [value]
        return []

    def null_fields(self, key: str) -> None:
        self.note("null_fields")

    def keep_rest(self, source: dict[str, Any], out: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
        """Keys the rules do not handle pass through unchanged, unless null."""
        for key, value in source.items():
            if key in known:
                continue
            if value is None:
                self.null_fields(key)
            else:
                out[key] = value
        return out

    # -- one choice ----------------------------------------------------------

    def choice(self, choice: Any, position: int) -> dict[str, Any] | None:
        if not isinstance(choice, dict):
            return choice  # not ours to judge: pass it on as it came
        index = choice_index_missing(choice, position, self.note)
        state = self.state.choices.get(index)
        if state is None:
            state = self.state.choices[index] = ChoiceState()
        first = not state.started

        delta = self.delta(self.message_in_chunk(choice), state, first)
        out: dict[str, Any] = {"index": index, "delta": delta}
        for key, value in choice.items():
            if key in ("index", "delta", "message"):
                continue
            if key == "finish_reason":
                out[key] = self.finish_reason(value, state)
            elif value is None and key not in NULLS_OPENAI_SENDS:
                self.null_fields(key)
            else:
                out[key] = value
        if "finish_reason" not in out:
            self.note("finish_reason_key_missing")
            out["finish_reason"] = None

        if first:
            state.started = True
        elif (
            not delta
            and out["finish_reason"] is None
            and out.get("logprobs") is None
            and out.keys() <= CHOICE_BOOKKEEPING
        ):
            self.note("empty_chunk")
            return None
        return out

    def message_in_chunk(self, choice: dict[str, Any]) -> Any:
        """exo (2024) puts `message` beside `delta` in stream chunks; openai-node's
        stream helper then overwrites the text it built with each chunk's message.
        The delta says it all; a chunk with only a message uses it as the delta."""
        if "message" not in choice:
            return choice.get("delta")
        self.note("message_in_chunk")
        return choice["delta"] if "delta" in choice else choice["message"]

    def finish_reason(self, value: Any, state: ChoiceState) -> Any:
        if value == "":
            self.note("finish_reason_empty")
            return None
        if isinstance(value, str) and value in STOP_SYNONYMS:
            self.note("finish_reason_eos_token")
            value = "stop"
        if value == "stop" and state.saw_tool_calls:
            self.note("tool_calls_finish_stop")
            value = "tool_calls"
        if value is not None:
            state.finish_reason = value
        return value

    # -- the delta -----------------------------------------------------------

    def delta(self, delta: Any, state: ChoiceState, first: bool) -> dict[str, Any]:
        if delta is None:
            self.note("delta_missing")
            delta = {}
        elif not isinstance(delta, dict):
            # Not an object: keep what it said, as content, rather than lose it.
            self.note("delta_not_object")
            delta = {"content": delta if isinstance(delta, str) else json.dumps(delta, ensure_ascii=False)}
        out: dict[str, Any] = {}
        if first:
            out["role"] = self.role_missing_on_first_chunk(delta.get("role"))
        for key, value in delta.items():
            if key == "role":
                if not first:
                    self.role_repeated(value)
            elif value is None:
                self.null_fields(key)
            elif key == "tool_calls":
                calls = self.tool_calls(value, state)
                if calls:
                    out["tool_calls"] = calls
            else:
                out[key] = value
        if first and "content" not in out and "tool_calls" not in out:
            self.note("content_missing_on_first_chunk")
            out = {"role": "assistant", "content": "", **{k: v for k, v in out.items() if k != "role"}}
        return out

    def role_missing_on_first_chunk(self, value: Any) -> str:
        if value != "assistant":
            self.note("role_missing_on_first_chunk")
        return "assistant"

    def role_repeated(self, value: Any) -> None:
        if value is None:
            self.note("null_fields")
        else:
            self.note("role_repeated")

    # -- tool calls ----------------------------------------------------------

    def tool_calls(self, value: Any, state: ChoiceState) -> list[Any]:
        if isinstance(value, dict):
            self.note("tool_calls_as_object")
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
        if new:
            if not (isinstance(call_id, str) and call_id):
                self.note("tool_call_id_missing")
                call_id = self.options.make_call_id()
            out["id"] = sent["id"] = call_id
            call_type = call.get("type")
            if call_type is None:
                self.note("tool_call_type_missing")
                call_type = "function"
            out["type"] = sent["type"] = call_type
        else:
            if call_id is not None and call_id in ("", sent.get("id")):
                self.note("tool_call_id_repeated")  # TGI: "id":"" on every delta
            elif call_id is not None:
                out["id"] = call_id
            call_type = call.get("type")
            if call_type is not None and call_type == sent.get("type"):
                pass  # OpenAI sends the type once; a repeat says nothing new
            elif call_type is not None:
                out["type"] = call_type

        function = call.get("function")
        if isinstance(function, dict):
            out["function"] = self.tool_function(function, sent, new)
        elif new:
            out["function"] = {"arguments": ""}
        return self.keep_rest(call, out, ("index", "id", "type", "function"))

    def tool_call_index(self, call: dict[str, Any], state: ChoiceState) -> tuple[int, bool]:
        """Our index for this tool call delta, and whether it starts a new call."""
        call_id = call.get("id")
        upstream_index = call.get("index")
        if not isinstance(upstream_index, int) or isinstance(upstream_index, bool):
            upstream_index = None
        if isinstance(call_id, str) and call_id:
            index = state.call_by_id.get(call_id)
            new = index is None
            if new:
                index = self.new_tool_call(state)
                state.call_by_id[call_id] = index
                if upstream_index is not None and upstream_index in state.call_by_upstream_index:
                    self.note("tool_call_index_reused")
                elif upstream_index is None:
                    self.note("tool_call_index_missing")
            if upstream_index is not None:
                state.call_by_upstream_index[upstream_index] = index
        elif upstream_index is not None:
            index = state.call_by_upstream_index.get(upstream_index)
            new = index is None
            if new:
                index = state.call_by_upstream_index[upstream_index] = self.new_tool_call(state)
        else:
            self.note("tool_call_index_missing")
            function = call.get("function")
            named = isinstance(function, dict) and bool(function.get("name"))
            new = named or not state.calls_sent
            index = self.new_tool_call(state) if new else len(state.calls_sent) - 1
        return index, new

    def new_tool_call(self, state: ChoiceState) -> int:
        state.calls_sent.append({})
        return len(state.calls_sent) - 1

    def tool_function(self, function: dict[str, Any], sent: dict[str, str], new: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        name = function.get("name")
        if new:
            if not name:
                self.note("tool_name_missing")
            if name is not None:
                out["name"] = sent["name"] = name
        elif name is not None:
            if name == "":
                self.note("tool_name_empty")
            elif name == sent.get("name"):
                self.note("tool_name_repeated")
            else:
                out["name"] = sent["name"] = name  # a late or changed name is news
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            self.note("tool_arguments_not_string")
            arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        if arguments is not None:
            out["arguments"] = arguments
        elif new:
            out["arguments"] = ""
        return self.keep_rest(function, out, ("name", "arguments"))

    # -- the end -------------------------------------------------------------

    def closing_chunks(self) -> list[dict[str, Any]]:
        """What OpenAI sends before [DONE] that the upstream did not: a finish for
        every unfinished choice, then the usage chunk when the client asked for it."""
        out = self.release()
        out += [self.closing_chunk([choice]) for choice in self.missing_finish_reason()]
        usage = self.state.usage
        if usage is not None:
            chunk = self.state.usage_chunk or self.closing_chunk([])
            chunk["choices"] = []
            chunk["usage"] = usage
            out.append(chunk)
            self.state.usage = self.state.usage_chunk = None
        return out

    def missing_finish_reason(self) -> list[dict[str, Any]]:
        """Finishing choices for every choice the upstream left unfinished."""
        out = []
        for index, state in self.state.choices.items():
            if state.finish_reason is not None:
                continue
            reason = "tool_calls" if state.saw_tool_calls else "stop"
            state.finish_reason = reason
            self.note("finish_reason_never_sent")
            out.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": reason})
        return out

    def closing_chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.state.id or self.chunk_id_missing_or_changing(None),
            "object": CHUNK,
            "created": self.state.created if self.state.created is not None else self.options.now(),
            "model": self.reported_model(self.fallback_model()),
            "choices": choices,
        }
