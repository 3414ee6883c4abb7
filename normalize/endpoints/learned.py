"""What upstreams have said they reject, per (host, model), kept for the addon's lifetime.

Contract: `Learned` holds, per upstream host and model, the request
parameters that upstream rejected (`params`, as paths: `prompt_cache_key`
for a top-level key, `tools[].function.strict` for a key of every tool's
function), the largest `max_tokens` it said it allows (`cap`), and its
context length with how many prompt tokens a byte of request body came to
(`context`). Writers are the chat exchange reading a rejection; readers are
the request rules. At most `MAX_MODELS` (host, model) pairs are kept, the
least recently used forgotten first, so a client naming endless models
cannot grow it without bound; a model name longer than `MAX_NAME` is never
learned, nor a parameter name longer than that, and a model keeps at most
`MAX_PARAMS` rejected parameters, the earliest learned forgotten first (a
client sending endless made-up keys to an upstream that names each one it
rejects cannot grow one entry either). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

MAX_MODELS = 1024
MAX_PARAMS = 64  # rejected parameters kept per model
MAX_NAME = 256  # characters of a model or parameter name that is learned at all


@dataclass(frozen=True, slots=True)
class Context:
    tokens: int  # the model's context length
    tokens_per_byte: float  # prompt tokens per byte of request body, as last seen


@dataclass
class Model:
    params: frozenset[str] = frozenset()
    cap: int | None = None
    context: Context | None = None
    learned: tuple[str, ...] = field(default=(), repr=False)  # `params` in the order they were learned

    def reject(self, params: list[str]) -> None:
        order = self.learned or tuple(sorted(self.params))
        order += tuple(dict.fromkeys(p for p in params if p not in self.params and len(p) <= MAX_NAME))
        self.learned = order[-MAX_PARAMS:]
        self.params = frozenset(self.learned)


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
        """The model's entry, made if need be (a model name past MAX_NAME: one that is not kept)."""
        found = self.get(host, model)
        if found is None:
            found = Model()
            if len(model) > MAX_NAME:
                return found
            self.models[(host, model)] = found
            while len(self.models) > MAX_MODELS:
                self.models.popitem(last=False)
        return found

    def reject(self, host: str, model: str, params: list[str]) -> None:
        self.entry(host, model).reject(params)

    def limit(self, host: str, model: str, *, cap: int | None = None, context: Context | None = None) -> None:
        entry = self.entry(host, model)
        if cap is not None:
            entry.cap = cap if entry.cap is None else min(entry.cap, cap)
        if context is not None:
            entry.context = context
