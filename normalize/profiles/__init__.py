"""What the addon knows about each kind of upstream, as data: one `Profile` per upstream.

Contract: `profile_for(host)` gives the profile for an upstream host: the one
whose `hosts` name it (exact, or `*.suffix`), else `GENERIC`. Endpoints read
the profile from their `Env`; nothing else in the package names a provider.
Every profile has a `title` under which the README's provider notes describe
it (a test checks that they do).
"""

from __future__ import annotations

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

    def serves(self, host: str) -> bool:
        return any(host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])) for pattern in self.hosts)


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
        ),
        Profile("vllm", "vLLM"),
        Profile("tgi", "Hugging Face TGI"),
        Profile("ollama", "Ollama"),
        Profile("llamacpp", "llama.cpp server"),
        Profile("lmstudio", "LM Studio"),
        Profile("exo", "exo"),
        Profile("gemini", "Gemini's OpenAI-compatible endpoint", hosts=("generativelanguage.googleapis.com",)),
        Profile("groq", "Groq", hosts=("api.groq.com",)),
        Profile("deepseek", "DeepSeek", hosts=("api.deepseek.com",)),
        Profile("azure", "Azure OpenAI", hosts=("*.openai.azure.com",)),
        Profile("openai", "OpenAI", hosts=("api.openai.com",), thinking=thinking.OPENAI),
        GENERIC,
    )
}


def profile_for(host: str) -> Profile:
    host = host.lower().strip("[]")
    return next((p for p in PROFILES.values() if p.serves(host)), GENERIC)
