"""The addon's options as the pure core reads them: one frozen value, built by the glue.

`normalize.mitm.options` declares the mitmproxy options (`--set normalize_*`),
parses them and builds a `Settings`; nothing below `normalize.mitm` reads
mitmproxy options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

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
    messages: str = "bridge"  # Anthropic Messages requests: "bridge" onto chat, or "pass" untouched

    # -- profiles, reasoning, embeddings, pacing

    def targets(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return (host, None) in self.hosts or (host, port) in self.hosts
