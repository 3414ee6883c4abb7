"""Where a request carries an API key: the headers (OpenAI, Azure, Anthropic-style, Gemini), in
the order they are looked at, and the query parameters (Gemini's `?key=`). One list for the
store's per-key scopes, pacing's per-key windows, and redaction of what mitmproxy keeps. A key
itself is never logged or stored."""

from __future__ import annotations

KEY_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")
KEY_QUERY = ("key",)
