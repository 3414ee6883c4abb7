"""The request headers that carry an API key (OpenAI, Azure, Anthropic-style, Gemini), in the
order they are looked at: one list for the store's per-key scopes, pacing's per-key windows,
and redaction of what mitmproxy keeps. A key itself is never logged or stored."""

from __future__ import annotations

KEY_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")
