"""What the addon knows about each kind of upstream, as data: one `Profile` per upstream.

Contract: `profile_for(host, port, overrides)` gives the profile for an
upstream: the one `normalize_profile` names for that `host:port` or `host`,
else the one whose `hosts` name the host (exact, or `*.suffix`), else
`GENERIC`. Endpoints read the profile from their `Env`; nothing else in the
package names a provider. Every profile has a `title` under which the
README's provider notes describe it, and `describe(profile)` says in one
sentence what it changes, generated from its fields (a test checks that the
notes say exactly that).

The chat repairs of replies (streams, whole replies, errors) apply to every
upstream alike: they are chosen by what the bytes look like. A profile holds
what cannot be seen in the bytes: which request fields the upstream rejects,
which of its rejections the addon may learn from, whether OpenAI's newer
parameter names need renaming for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import thinking
from .thinking import Thinking

# Chunks of a tool call opened without a name that are held, at most, waiting for it (vLLM).
HOLD_LIMIT = 32


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    title: str  # as the README's provider notes name it
    hosts: tuple[str, ...] = ()  # chosen for these hosts: exact names, or "*.suffix"
    hold_limit: int = HOLD_LIMIT
    # -- reasoning and embeddings (README: Reasoning, Embeddings)
    # How each model family switches reasoning on and off, and how its reasoning comes back.
    thinking: tuple[Thinking, ...] = ()
    # Embedding requests get `input_type` and `truncate` when missing (NIM's asymmetric models
    # need them), and lose `dimensions` for models that rejected it (learned from their errors).
    embedding_input_type: bool = False

    def thinking_for(self, model: str | None) -> Thinking | None:
        """The reasoning family of `model`, if this profile knows it."""
        if not model:
            return None
        return next((t for t in self.thinking if t.serves(model)), None)

    # -- request validation, errors and pacing (issue 14) ----------------------
    # Top-level chat request keys removed before the upstream sees them: it rejects them.
    drop_params: tuple[str, ...] = ()
    # Keys removed from each `tools[].function` (NIM: 401 "Unknown parameter: function.strict").
    drop_function_keys: tuple[str, ...] = ()
    # `max_tokens`/`max_completion_tokens` below 1 raised to 1 (NIM rejects them).
    raise_max_tokens: bool = False
    # Learn (model, parameter) from the upstream's "unsupported parameter" rejections and
    # drop it from that model's later requests; a request that is not streamed is retried once.
    learns_rejected_params: bool = False
    # Learn what `max_tokens` a model allows from the upstream's rejection of a larger one,
    # lower it in that model's later requests; a request that is not streamed is retried once.
    learns_max_tokens: bool = False
    # Send OpenAI's newer names in their older spelling (normalize_legacy_params permitting).
    renames_legacy_params: bool = True

    def serves(self, host: str) -> bool:
        return any(host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])) for pattern in self.hosts)


# Request fields hosted NIM rejects, each with a report of the rejection:
NIM_REJECTED = (
    "prompt_cache_key",  # 400 Unsupported parameter(s): `prompt_cache_key` (OmniRoute #848, kimi-cli #2534, CipherTalk #353)
    "tool_stream",  # 400 Unsupported parameter(s): `tool_stream` (Gitlawb/openclaude #1950)
    "reasoning_budget",  # 400 flat {'message': 'Validation: Unsupported parameter(s): reasoning_budget'} (free-claude-code #127)
    "thinking",  # 400 Unsupported parameter(s): thinking (router-for-me/CLIProxyAPI #4149)
    "reasoning",  # 400 Unsupported parameter(s): reasoning, "every model" (NousResearch/hermes-agent PR #77973)
    "enable_thinking",  # 400 at the top level; it belongs in chat_template_kwargs (can1357/oh-my-pi #2299)
    "client_metadata",  # 400 Unsupported parameter: client_metadata (decolua/9router #1887)
    # OpenAI platform features NIM's request schema does not have (it forbids unknown
    # fields: can1357/oh-my-pi #2299; NIMLLMChatCompletionRequest in docs.nvidia.com/nim):
    "store",
    "metadata",
    "service_tier",
    "prompt_cache_retention",
    "safety_identifier",
)

GENERIC = Profile("generic", "Any other OpenAI-compatible server")

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "nim",
            "NVIDIA NIM",
            hosts=("integrate.api.nvidia.com",),
            thinking=thinking.NIM,
            embedding_input_type=True,
            drop_params=NIM_REJECTED,
            drop_function_keys=("strict",),
            raise_max_tokens=True,
            learns_rejected_params=True,
            learns_max_tokens=True,
        ),
        # vLLM: "This model's maximum context length is N tokens. However, you requested
        # M tokens (P in the messages, Q in the completion)" (vllm #12886).
        Profile("vllm", "vLLM", learns_max_tokens=True),
        # TGI: "`inputs` tokens + `max_new_tokens` must be <= N. Given: P `inputs` tokens
        # and Q `max_new_tokens`" (TGI router validation).
        Profile("tgi", "Hugging Face TGI", learns_max_tokens=True),
        Profile("ollama", "Ollama"),
        Profile("llamacpp", "llama.cpp server"),
        Profile("lmstudio", "LM Studio"),
        Profile("exo", "exo"),
        # Gemini: 400 'Unknown name "web_search_options": Cannot find field.' (FuzzAnything/PromptFuzz #42).
        Profile("gemini", "Gemini's OpenAI-compatible endpoint", hosts=("generativelanguage.googleapis.com",), learns_rejected_params=True),
        # Groq: 400 "property 'stream_options' is unsupported, did you mean 'stream'?" (vercel/ai #1651).
        Profile("groq", "Groq", hosts=("api.groq.com",), learns_rejected_params=True),
        Profile("deepseek", "DeepSeek", hosts=("api.deepseek.com",)),
        Profile("azure", "Azure OpenAI", hosts=("*.openai.azure.com",)),
        # OpenAI knows its own newer names; its o-series models reject `max_tokens`.
        Profile("openai", "OpenAI", hosts=("api.openai.com",), renames_legacy_params=False),
        GENERIC,
    )
}


def profile_for(host: str, port: int | None = None, overrides: Mapping[tuple[str, int | None], str] | None = None) -> Profile:
    host = host.lower().strip("[]")
    if overrides:
        name = overrides.get((host, port)) or overrides.get((host, None))
        if name is not None:
            return PROFILES[name]
    return next((p for p in PROFILES.values() if p.serves(host)), GENERIC)


def describe(profile: Profile) -> str:
    """What the profile changes, in one sentence generated from its fields (the README quotes it)."""
    default = f" (the default for {', '.join(f'`{h}`' for h in profile.hosts)})" if profile.hosts else ""
    does: list[str] = []
    if profile.drop_params:
        does.append("removes " + ", ".join(f"`{p}`" for p in profile.drop_params) + " from chat requests")
    if profile.drop_function_keys:
        does.append("removes " + ", ".join(f"`{k}`" for k in profile.drop_function_keys) + " from each tool's `function`")
    if profile.raise_max_tokens:
        does.append("raises `max_tokens` below 1 to 1")
    if profile.learns_rejected_params:
        does.append("learns each parameter the upstream rejects, per model, and drops it from then on")
    if profile.learns_max_tokens:
        does.append("learns what `max_tokens` each model allows from the upstream's rejection, and lowers it from then on")
    if profile.learns_rejected_params or profile.learns_max_tokens:
        does.append("retries a rejected request that is not streamed once, repaired")
    if not profile.renames_legacy_params:
        does.append("keeps `max_completion_tokens` and `developer` messages as sent (it knows them)")
    if not does:
        does.append("adds no request rule of its own (the general request fixes and the reply repairs apply, as for every upstream)")
    return f"Profile `{profile.name}`{default}: " + "; ".join(does) + "."
