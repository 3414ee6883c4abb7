"""The addon's options as the pure core reads them: one frozen value, built by the glue.

`normalize.mitm.options` declares the mitmproxy options (`--set normalize_*`),
parses them and builds a `Settings`; nothing below `normalize.mitm` reads
mitmproxy options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .pacing import RateLimit
from .profiles import Profile, profile_for

MiB = 1024 * 1024
DEFAULT_HOSTS = ("integrate.api.nvidia.com",)


@dataclass(frozen=True, slots=True)
class Settings:
    # (host, port or None for any port) of the upstreams whose traffic is rewritten.
    hosts: frozenset[tuple[str, int | None]] = frozenset((host, None) for host in DEFAULT_HOSTS)
    model_map: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    models: tuple[str, ...] = ()
    drop_params: tuple[str, ...] = ()
    legacy_params: bool = True
    keep_bytes: int = MiB
    max_event_bytes: int = 8 * MiB
    max_body_bytes: int = 16 * MiB
    redact_keys: bool = True
    # -- the bridges
    responses: str = "bridge"  # bridge: Responses requests go upstream as chat; pass: untouched
    responses_store_bytes: int = 64 * MiB  # responses kept for previous_response_id and GET (0: none)
    messages: str = "bridge"  # Anthropic Messages requests: "bridge" onto chat, or "pass" untouched

    # -- profiles, reasoning, embeddings, pacing
    # reasoning and embeddings (README: Reasoning, Embeddings)
    reasoning: str = "split"  # split | fold | keep
    embedding_input_type: str = "query"  # added when missing (profiles that want it); "" adds none
    embedding_truncate: str = "END"  # likewise
    # normalize_profile: (host, port or None for any port) -> profile name.
    profile: Mapping[tuple[str, int | None], str] = field(default_factory=lambda: MappingProxyType({}))
    default_max_tokens: int = 0  # 0: off
    rate_limit: RateLimit | None = None  # None: off

    def profile_for(self, host: str, port: int) -> Profile:
        return profile_for(host, port, self.profile)

    def targets(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return (host, None) in self.hosts or (host, port) in self.hosts
