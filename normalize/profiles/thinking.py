"""How each family of models switches its reasoning on and off, and how the reasoning comes back.

Contract: a `Thinking` is data about one family of models (matched by
`fnmatch` patterns on the lower-cased model id): the request fields, or the
system prompt line, that switch its reasoning on and off, whether it takes
OpenAI's `reasoning_effort`, and where its reasoning arrives (`reply`). A
profile lists its families (`Profile.thinking`); `Profile.thinking_for(model)`
finds one. The bridges use `switch(body, enabled, effort)` to turn a client's
reasoning request (Anthropic's `thinking`, the Responses API's
`reasoning.effort`) into what that model understands; the chat rules use
`reply` and `switched_off(body)` to know whether a reply starts inside its
reasoning with no opening `<think>` (see endpoints/chat/think.py).

Sources for the NIM table, by family: NVIDIA's own client,
langchain-nvidia-ai-endpoints 1.5.0 (`_statics.py`, `thinking_param_enable`,
`thinking_prefix`), and the issue threads named on each entry.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Final

# Where a family's reasoning comes back.
REASONING_FIELD: Final = "reasoning_content"  # the server parses it out: delta.reasoning_content
THINK_TAGS: Final = "think_tags"  # `<think>…</think>` at the start of content
OPENS_INSIDE: Final = "opens_inside"  # content starts inside the reasoning: only `</think>` comes

# OpenAI's and the bridges' effort words, as the low | medium | high that NIM models take.
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


@dataclass(frozen=True, slots=True, eq=False)
class Thinking:
    family: str
    models: tuple[str, ...]  # fnmatch patterns on the lower-cased model id
    on: Mapping[str, Any] = field(default_factory=dict)  # request fields merged in to switch reasoning on
    off: Mapping[str, Any] = field(default_factory=dict)  # ... and off
    system_on: str = ""  # or a system prompt line that switches it on ("detailed thinking on")
    system_off: str = ""
    effort: bool = False  # takes top-level `reasoning_effort` (low | medium | high)
    reply: str = REASONING_FIELD
    source: str = ""

    def serves(self, model: str) -> bool:
        model = model.lower()
        return any(fnmatchcase(model, pattern) for pattern in self.models)

    @property
    def fields(self) -> frozenset[str]:
        """The top-level request fields this family's switch sets: the upstream takes them
        for this family, whatever it rejects for others."""
        return frozenset(self.on) | frozenset(self.off) | ({"reasoning_effort"} if self.effort else set())

    @property
    def switchable(self) -> bool:
        """The family can be told to reason or not (some always reason)."""
        return bool(self.on or self.off or self.system_on)

    def switch(self, body: Mapping[str, Any], enabled: bool, effort: str | None = None) -> dict[str, Any]:
        """A copy of the chat request `body` that switches reasoning on or off for this
        family, at `effort` (OpenAI's words; mapped to low | medium | high) where the
        family takes one. Fields the client set itself are overridden only where the
        switch needs them."""
        out = dict(body)
        merge(out, self.on if enabled else self.off)
        line = self.system_on if enabled else self.system_off
        if line:
            out["messages"] = with_system_line(out.get("messages"), line, (self.system_on, self.system_off))
        if self.effort:
            level = EFFORTS.get(effort or "")
            if enabled and level:
                out["reasoning_effort"] = level
            elif not enabled:
                out.pop("reasoning_effort", None)
        return out

    def switched_off(self, body: Mapping[str, Any]) -> bool:
        """The request `body` switches this family's reasoning off."""
        if self.off and contains(body, self.off):
            return True
        if self.system_off:
            first = first_system_text(body.get("messages"))
            if first is not None and self.system_off in first:
                return True
        return self.effort and body.get("reasoning_effort") == "none"


def merge(target: dict[str, Any], fields: Mapping[str, Any]) -> None:
    """Deep-merges `fields` into `target` (nested objects merged, never shared)."""
    for key, value in fields.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged = dict(current)
            merge(merged, value)
            target[key] = merged
        else:
            target[key] = copy.deepcopy(value)


def contains(body: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
    """Every one of `fields` is in `body` with that value (nested objects compared key by key)."""
    for key, value in fields.items():
        current = body.get(key)
        if isinstance(value, Mapping):
            if not (isinstance(current, Mapping) and contains(current, value)):
                return False
        elif current != value or key not in body:
            return False
    return True


def first_system_text(messages: Any) -> str | None:
    if isinstance(messages, list) and messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
        content = messages[0].get("content")
        return content if isinstance(content, str) else None
    return None


def with_system_line(messages: Any, line: str, lines: tuple[str, str]) -> Any:
    """`messages` with `line` as the first line of the first system message (NIM's
    docs: the system prompt must be the first message), replacing either switch line."""
    if not isinstance(messages, list):
        return messages
    text = first_system_text(messages)
    if text is None:
        return [{"role": "system", "content": line}, *messages]
    head, sep, rest = text.partition("\n")
    if head.strip() in lines:
        text = rest if sep else ""
    return [{**messages[0], "content": line + ("\n" + text if text else "")}, *messages[1:]]


def _kwargs(**fields: Any) -> dict[str, Any]:
    return {"chat_template_kwargs": fields}


_LANGCHAIN_NVIDIA = "langchain-nvidia-ai-endpoints 1.5.0 _statics.py"

NIM: Final = (
    Thinking(
        "qwq",
        ("qwen/qwq-32b",),
        reply=OPENS_INSIDE,
        source="always reasons; sends only </think> (BerriAI/litellm #10848)",
    ),
    Thinking(
        "deepseek-r1",
        ("deepseek-ai/deepseek-r1", "deepseek-ai/deepseek-r1-*"),
        reply=THINK_TAGS,
        source="always reasons; <think> inside content (lobehub/lobehub #5868)",
    ),
    Thinking(
        "minimax-m2",
        ("minimaxai/minimax-m2", "minimaxai/minimax-m2.*"),
        reply=THINK_TAGS,
        source="always reasons; <think> inside content (datawhalechina/hello-agents PR #377)",
    ),
    Thinking(
        "nemotron-3-nano",
        ("nvidia/nemotron-3-nano-*",),
        on=_kwargs(enable_thinking=True),
        off=_kwargs(enable_thinking=False),
        reply=OPENS_INSIDE,
        source=f"{_LANGCHAIN_NVIDIA}; sends only </think> (logancyang/obsidian-copilot PR #2153)",
    ),
    Thinking(
        "glm-5",
        ("z-ai/glm5", "z-ai/glm-5", "z-ai/glm-5.1"),
        on=_kwargs(enable_thinking=True, clear_thinking=False),
        off=_kwargs(enable_thinking=False),
        source=f"{_LANGCHAIN_NVIDIA}; clear_thinking from the model card (apmantza/pi-free #217, anomalyco/opencode #13584)",
    ),
    Thinking(
        "glm-5.2",
        ("z-ai/glm-5.2", "z-ai/glm-5.2-*"),
        on={"thinking": {"type": "enabled"}},
        off={"thinking": {"type": "disabled"}},
        source="NousResearch/hermes-agent PR #62140 (other models reject `thinking`: router-for-me/CLIProxyAPI #4149)",
    ),
    Thinking(
        "enable_thinking",
        (
            "qwen/qwen3-235b-a22b",
            "qwen/qwen3-next-80b-a3b-thinking",
            "qwen/qwen3.5-*",
            "ibm/granite-3.3-8b-instruct",
            "deepseek-ai/deepseek-v3.1",
            "deepseek-ai/deepseek-v3.1-terminus",
            "deepseek-ai/deepseek-v3.2",
            "nvidia/nemotron-3-super-*",
            "nvidia/nemotron-3-ultra-*",
            "nvidia/nemotron-3.5-*",
            "google/gemma-4-*",
            "z-ai/glm4.7",
            "moonshotai/kimi-k2-thinking",
            "nvidia/ising-calibration-*",
        ),
        on=_kwargs(enable_thinking=True),
        off=_kwargs(enable_thinking=False),
        source=_LANGCHAIN_NVIDIA,
    ),
    Thinking(
        "thinking",
        ("deepseek-ai/deepseek-v4-pro*", "deepseek-ai/deepseek-v4-flash*", "moonshotai/kimi-k2.5", "moonshotai/kimi-k2.6"),
        on=_kwargs(thinking=True),
        off=_kwargs(thinking=False),
        effort=True,
        source=f"{_LANGCHAIN_NVIDIA}; reasoning_effort: NousResearch/hermes-agent #19883, PR #28184",
    ),
    Thinking(
        "minimax-m3",
        ("minimaxai/minimax-m3",),
        on=_kwargs(thinking_mode="enabled"),
        off=_kwargs(thinking_mode="disabled"),
        source=_LANGCHAIN_NVIDIA,
    ),
    Thinking(
        "detailed-thinking",
        (
            "nvidia/llama-3.1-nemotron-nano-8b-v1",
            "nvidia/llama-3.1-nemotron-nano-4b-v1.1",
            "nvidia/llama-3.1-nemotron-ultra-253b-v1",
            "nvidia/llama-3.3-nemotron-super-49b-v1",
        ),
        system_on="detailed thinking on",
        system_off="detailed thinking off",
        reply=THINK_TAGS,
        source=f"{_LANGCHAIN_NVIDIA}; NIM docs, reasoning-model.html; <think> inside content (danny-avila/LibreChat #8410)",
    ),
    Thinking(
        "think-directive",
        ("nvidia/llama-3.3-nemotron-super-49b-v1.5", "nvidia/nvidia-nemotron-nano-9b-v2", "nvidia/nemotron-nano-12b-v2-vl"),
        system_on="/think",
        system_off="/no_think",
        source=_LANGCHAIN_NVIDIA,
    ),
    Thinking(
        "reasoning_effort",
        ("openai/gpt-oss-*", "mistralai/mistral-small-4-*"),
        effort=True,
        source=f"{_LANGCHAIN_NVIDIA}; NousResearch/hermes-agent #19883",
    ),
)
