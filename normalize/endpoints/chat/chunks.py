"""Chat completion chunk rewrites: parsed chunk in, OpenAI-shaped chunks out.

Contract: `ChunkRules.chunks(chunk)` takes one parsed `chat.completion.chunk`
(a dict, which it may change) and returns the chunks to send for it: usually
its rewrite alone, none when it has nothing left to say, more when held
chunks are released (see calls.LateNames). `closing_chunks()` gives what
OpenAI sends before `[DONE]` that the upstream did not. `preview(chunk)` is a
dry run for the fast path: the rewrite and the repairs it would count, or
None when the rewrite would change what the rules remember.

Shape produced (OpenAI's own, ../shared/quirks.md section 1): the same
non-empty `id` on every chunk, `object: "chat.completion.chunk"`, one positive
integer `created`, a `model`; each choice has `index`, a `delta` object and a
`finish_reason` key; the first delta of a choice says `role: "assistant"`, and
`content: ""` when it carries neither content nor tool calls; later deltas
carry no role; no delta field is null.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import dump
from .calls import BOOKKEEPING, CHOICE_BOOKKEEPING, CallRules, ChoiceState, LateNames
from .fields import CHOICE_NULLS, is_int
from .options import Options
from .think import KEEP, ReasoningRules

CHUNK = "chat.completion.chunk"


@dataclass
class StreamState:
    id: str | None = None
    created: int | None = None
    model: str | None = None
    choices: dict[int, ChoiceState] = field(default_factory=dict)
    usage: Any = None  # the latest usage seen, sent at the end when the client asked
    usage_chunk: dict[str, Any] | None = None  # the upstream's own usage chunk, if it sent one
    epoch: int = 0  # grows when a reasoning rule's state changes (the fast path then forgets)


def looks_like_chunk(obj: dict[str, Any]) -> bool:
    """A JSON object the chunk rules should handle (not an error, not a stranger)."""
    return isinstance(obj.get("choices"), (list, dict)) or obj.get("object") in (CHUNK, "chat.completion")


class ChunkRules(CallRules):
    def __init__(self, options: Options, repairs: Counter[Repair] | None = None) -> None:
        super().__init__(options, repairs)
        self.state = StreamState()
        self.late_names = LateNames(self, options.hold_limit)
        reasoning = options.reasoning
        self.reasoning = None if reasoning == KEEP else ReasoningRules(self, reasoning, options.opens_inside)

    @property
    def holding(self) -> bool:
        """Chunks or text are held back (a tool call waits for its name, or a tag may be cut)."""
        return bool(self.late_names.held) or (self.reasoning is not None and self.reasoning.holding)

    @property
    def epoch(self) -> int:
        return self.state.epoch

    def tags_matter(self) -> bool:
        """A `<` in choice 0's content could be part of a reasoning tag (think.py)."""
        return self.reasoning is not None and self.reasoning.tags_matter()

    def started(self, index: int) -> bool:
        """Choice `index` has had its first chunk."""
        choice = self.state.choices.get(index)
        return choice is not None and choice.started

    def chunks(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out = self.rewrite(chunk)
        if self.reasoning is None:
            return self.late_names.chunks(out)
        return [c for piece in self.reasoning.chunks(out) for c in self.late_names.chunks(piece)]

    def release(self) -> list[dict[str, Any]]:
        """Held chunks and text, to be sent before whatever ends the stream."""
        held = self.late_names.release()
        return held if self.reasoning is None else held + self.reasoning.release()

    def preview(self, chunk: dict[str, Any], usage_varies: bool = False) -> tuple[dict[str, Any], Counter[Repair]] | None:
        """What `rewrite` would make of `chunk` and count, when that changes nothing the
        rules remember (so the same rewrite holds for every such chunk); else None.
        With `usage_varies`, the latest usage the rules keep for the end may change
        (the fast path then carries it: `FastPath.usage`)."""
        before, counted = self.state, self.repairs
        self.state, self.repairs = copy.deepcopy(before), Counter()
        try:
            out = self.rewrite(chunk)
            if out is not None and self.reasoning is not None:
                outs = self.reasoning.chunks(out)
                out = outs[0] if len(outs) == 1 else None
            if usage_varies:
                self.state.usage = before.usage
            if out is None or self.state != before:
                return None
            return out, self.repairs
        finally:
            self.state, self.repairs = before, counted

    # -- the chunk -----------------------------------------------------------

    def rewrite(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        include_usage = self.options.include_usage
        if chunk.get("choices") == [] and not include_usage:
            # llama.cpp usage chunks, Azure prompt-filter chunks: clients index choices[0].
            self.note(Repair.empty_choices_chunk)
            return None
        out: dict[str, Any] = {
            "id": self.chunk_id_missing_or_changing(chunk.get("id")),
            "object": self.chunk_object_wrong(chunk.get("object")),
            "created": self.created(chunk.get("created")),
            "model": self.model(chunk.get("model")),
        }
        choices_in = self.choices_missing_or_object(chunk.get("choices"))
        choices_out = [c for c in (self.choice(c, i) for i, c in enumerate(choices_in)) if c is not None]
        usage = chunk.get("usage") if include_usage else None
        self.keep_rest(chunk, out, replace={"choices": choices_out}, skip=("usage",) if usage is not None else ())
        out.setdefault("choices", choices_out)
        if include_usage and self.usage_not_last(out, usage, bool(choices_in)):
            return None  # the upstream's usage chunk: sent at the end instead
        if not choices_out and out.keys() <= BOOKKEEPING:
            if not choices_in and usage is None:
                self.note(Repair.empty_chunk)
            return None  # nothing left to say (empty choices are counted as empty_chunk)
        return out

    def usage_not_last(self, chunk: dict[str, Any], usage: Any, has_choices: bool) -> bool:
        """Usage on content chunks, on every chunk, or under x_groq: kept for one
        final chunk. True when `chunk` is the upstream's own usage chunk."""
        groq = chunk.get("x_groq")
        if isinstance(groq, dict) and isinstance(groq.get("usage"), dict):
            # Sent once at the end instead, or a client adding both counts it twice.
            self.note(Repair.usage_under_x_groq)
            usage = usage if usage is not None else groq["usage"]
            chunk["x_groq"] = {k: v for k, v in groq.items() if k != "usage"}
        if usage is None:
            return False
        self.state.usage = usage
        if has_choices:
            self.note(Repair.usage_not_last)
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
            self.note(Repair.chunk_id_missing)
            return state.id
        if value != state.id:
            self.note(Repair.chunk_id_missing if not value else Repair.chunk_id_changing)
        return state.id

    def chunk_object_wrong(self, value: Any) -> str:
        if value != CHUNK:
            self.note(Repair.chunk_object_wrong)
        return CHUNK

    def created(self, value: Any) -> int:
        """One `created` for the whole stream: the first chunk's (TGI stamps each chunk anew)."""
        state = self.state
        created = self.created_missing_or_not_integer(value)
        if state.created is None:
            state.created = created if created is not None else self.options.now()
        elif created is not None and is_int(value) and created != state.created:
            self.note(Repair.created_changing)
        return state.created

    def model(self, value: Any) -> str:
        if isinstance(value, str) and value and not self.state.model:
            self.state.model = value
        return self.model_missing(value, self.fallback_model())

    def fallback_model(self) -> str:
        """The upstream's model name when it gave one, else the one the client asked for."""
        return self.state.model or self.options.model or ""

    # -- one choice ----------------------------------------------------------

    def choice(self, choice: Any, position: int) -> Any:
        if not isinstance(choice, dict):
            return choice  # not ours to judge: pass it on as it came
        index = self.choice_index_missing(choice, position)
        state = self.state.choices.get(index)
        if state is None:
            state = self.state.choices[index] = ChoiceState()
        first = not state.started
        delta = self.delta(self.message_in_chunk(choice), state, first)
        out: dict[str, Any] = {"index": index, "delta": delta}
        replace = None
        if "finish_reason" in choice:
            reason = self.finish_reason(choice["finish_reason"], state.saw_tool_calls)
            if reason is not None:
                state.finish_reason = reason
            replace = {"finish_reason": reason}
        self.keep_rest(choice, out, replace=replace, skip=("message",), nulls_kept=CHOICE_NULLS)
        if "finish_reason" not in out:
            self.note(Repair.finish_reason_key_missing)
            out["finish_reason"] = None
        if first:
            state.started = True
        elif not delta and out["finish_reason"] is None and out.get("logprobs") is None and out.keys() <= CHOICE_BOOKKEEPING:
            self.note(Repair.empty_chunk)
            return None
        return out

    def message_in_chunk(self, choice: dict[str, Any]) -> Any:
        """exo (2024) puts `message` beside `delta` in stream chunks; openai-node's
        stream helper then overwrites the text it built with each chunk's message.
        The delta says it all; a chunk with only a message uses it as the delta."""
        if "message" not in choice:
            return choice.get("delta")
        self.note(Repair.message_in_chunk)
        return choice["delta"] if "delta" in choice else choice["message"]

    # -- the delta -----------------------------------------------------------

    def delta(self, delta: Any, state: ChoiceState, first: bool) -> dict[str, Any]:
        if delta is None:
            self.note(Repair.delta_missing)
            delta = {}
        elif not isinstance(delta, dict):
            # Not an object: keep what it said, as content, rather than lose it.
            self.note(Repair.delta_not_object)
            delta = {"content": delta if isinstance(delta, str) else dump(delta).decode("utf-8")}
        out: dict[str, Any] = {}
        if first:
            out["role"] = self.role_missing_on_first_chunk(delta.get("role"))
        for key, value in delta.items():
            if key == "role":
                if not first:
                    self.note(Repair.null_fields if value is None else Repair.role_repeated)
            elif value is None:
                self.note(Repair.null_fields)
            elif key == "tool_calls":
                calls = self.tool_calls(value, state)
                if calls:
                    out["tool_calls"] = calls
            else:
                out[key] = value
        if first and "content" not in out and "tool_calls" not in out:
            self.note(Repair.content_missing_on_first_chunk)
            out = {"role": "assistant", "content": "", **{k: v for k, v in out.items() if k != "role"}}
        return out

    def role_missing_on_first_chunk(self, value: Any) -> str:
        if value != "assistant":
            self.note(Repair.role_missing_on_first_chunk)
        return "assistant"

    # -- the end -------------------------------------------------------------

    def closing_chunks(self) -> list[dict[str, Any]]:
        """What OpenAI sends before [DONE] that the upstream did not: a finish for
        every unfinished choice, then the usage chunk when the client asked for it."""
        out = self.release()
        out += [self.closing_chunk([choice]) for choice in self.finish_reason_never_sent()]
        usage = self.state.usage
        if usage is not None:
            chunk = self.state.usage_chunk or self.closing_chunk([])
            chunk["choices"] = []
            chunk["usage"] = usage
            out.append(chunk)
            self.state.usage = self.state.usage_chunk = None
        return out

    def finish_reason_never_sent(self) -> list[dict[str, Any]]:
        """Finishing choices for every choice the upstream left unfinished."""
        out = []
        for index, state in self.state.choices.items():
            if state.finish_reason is not None:
                continue
            reason = "tool_calls" if state.saw_tool_calls else "stop"
            state.finish_reason = reason
            self.note(Repair.finish_reason_never_sent)
            out.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": reason})
        return out

    def closing_chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.state.id or self.chunk_id_missing_or_changing(None),
            "object": CHUNK,
            "created": self.state.created if self.state.created is not None else self.options.now(),
            "model": self.options.model_alias or self.fallback_model(),
            "choices": choices,
        }
