"""Field rules that stream chunks and whole completions share, written once.

Contract: `FieldRules` holds the repair counter and the rules both
`ChunkRules` (streams) and `CompletionRules` (whole replies) apply to the same
field: `keep_rest` copies the keys no rule handles and drops nulls, `created`,
`model`, `choices_list`, `choice_index`, `finish_reason`, `tool_type` and
`tool_arguments`. Each counts itself under the name of the upstream behaviour
it repairs (normalize.repairs); none changes its input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import dump
from .options import Options

# Keys OpenAI itself sends as null on every choice; every other null is dropped.
CHOICE_NULLS = frozenset({"finish_reason", "logprobs"})
# Finish reasons some servers send that OpenAI spells "stop".
STOP_SYNONYMS = frozenset({"eos_token", "eos", "end_turn", "stop_sequence"})


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class FieldRules:
    def __init__(self, options: Options, repairs: Counter[Repair] | None = None) -> None:
        self.options = options
        self.repairs: Counter[Repair] = Counter() if repairs is None else repairs

    def note(self, repair: Repair, n: int = 1) -> None:
        self.repairs[repair] += n

    def keep_rest(
        self,
        source: Mapping[str, Any],
        out: dict[str, Any],
        replace: Mapping[str, Any] | None = None,
        skip: Collection[str] = (),
        nulls_kept: Collection[str] = (),
    ) -> dict[str, Any]:
        """`out` with the rest of `source` in its order: keys in `replace` take the value
        given there, keys in `out` or `skip` are left out, and nulls are dropped
        (counted) unless OpenAI itself sends that key as null."""
        for key, value in source.items():
            if key in out or key in skip:
                continue
            if replace is not None and key in replace:
                out[key] = replace[key]
            elif value is None and key not in nulls_kept:
                self.note(Repair.null_fields)
            else:
                out[key] = value
        return out

    def created_missing_or_not_integer(self, value: Any) -> int | None:
        """OpenAI's `created` is a positive integer (Azure sends 0); None when the value is not one."""
        if is_int(value) and value > 0:
            return int(value)
        self.note(Repair.created_missing_or_not_integer)
        return int(value) if isinstance(value, float) and value > 0 else None

    def model_missing(self, value: Any, fallback: str) -> str:
        """The reply's model, or `fallback` when it names none; the client's alias when it asked by one."""
        if not (isinstance(value, str) and value):
            self.note(Repair.model_missing)
            value = fallback
        return self.options.model_alias or value

    def choices_missing_or_object(self, value: Any) -> list[Any]:
        if isinstance(value, list):
            return value
        self.note(Repair.choices_missing_or_object)
        return [value] if isinstance(value, dict) else []

    def choice_index_missing(self, choice: Mapping[str, Any], position: int) -> int:
        """A choice without an integer index (some servers omit it) is the one at its position."""
        index = choice.get("index")
        if isinstance(index, int) and not isinstance(index, bool):
            return index
        self.note(Repair.choice_index_missing)
        return position

    def finish_reason(self, value: Any, has_tool_calls: bool) -> Any:
        """OpenAI's spelling of a finish reason: "" is no reason, eos_token is stop, and
        stop after tool calls is tool_calls (Gemini and Ollama say stop)."""
        if value == "":
            self.note(Repair.finish_reason_empty)
            return None
        if isinstance(value, str) and value in STOP_SYNONYMS:
            self.note(Repair.finish_reason_eos_token)
            value = "stop"
        if value == "stop" and has_tool_calls:
            self.note(Repair.tool_calls_finish_stop)
            value = "tool_calls"
        return value

    def tool_call_type_missing(self, value: Any) -> str:
        if isinstance(value, str) and value:
            return value
        self.note(Repair.tool_call_type_missing)
        return "function"

    def tool_arguments_not_string(self, value: Any) -> Any:
        """Arguments as OpenAI sends them, a JSON string (TGI sends an object); None stays None."""
        if value is None or isinstance(value, str):
            return value
        self.note(Repair.tool_arguments_not_string)
        return dump(value).decode("utf-8")
