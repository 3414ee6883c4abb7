"""What upstreams have said they reject, per (host, model), kept for the addon's lifetime.

Contract: `Learned` holds, per upstream host and model, the request
parameters that upstream rejected (`params`, as paths: `prompt_cache_key`
for a top-level key, `tools[].function.strict` for a key of every tool's
function), the largest `max_tokens` it said it allows (`cap`), and its
context length with how many prompt tokens a byte of request body came to
(`context`). Writers are the chat exchange reading a rejection; readers are
the request rules. At most `MAX_MODELS` (host, model) pairs are kept, the
least recently used forgotten first, so a client naming endless models
cannot grow it without bound. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

MAX_MODELS = 1024


@dataclass(frozen=True, slots=True)
class Context:
    tokens: int  # the model's context length
    tokens_per_byte: float  # prompt tokens per byte of request body, as last seen


@dataclass
class Model:
    params: frozenset[str] = frozenset()
    cap: int | None = None
    context: Context | None = None


@dataclass
class Learned:
    models: OrderedDict[tuple[str, str], Model] = field(default_factory=OrderedDict)

    def get(self, host: str, model: str | None) -> Model | None:
        if model is None:
            return None
        found = self.models.get((host, model))
        if found is not None:
            self.models.move_to_end((host, model))
        return found

    def entry(self, host: str, model: str) -> Model:
        found = self.get(host, model)
        if found is None:
            found = self.models[(host, model)] = Model()
            while len(self.models) > MAX_MODELS:
                self.models.popitem(last=False)
        return found

    def reject(self, host: str, model: str, params: list[str]) -> None:
        entry = self.entry(host, model)
        entry.params = entry.params | frozenset(params)

    def limit(self, host: str, model: str, *, cap: int | None = None, context: Context | None = None) -> None:
        entry = self.entry(host, model)
        if cap is not None:
            entry.cap = cap if entry.cap is None else min(entry.cap, cap)
        if context is not None:
            entry.context = context
