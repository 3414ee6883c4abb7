"""The "OpenAI SSE" view: a stream one event per line, JSON compact, comments shown."""

from __future__ import annotations

from .events import stream_units
from .text import as_bytes, safe


@safe
def sse_view(data: bytes) -> str:
    """A stream, one line per event: `data: <compact JSON>`, `data: [DONE]`, comments as they came."""
    stream = stream_units(as_bytes(data))
    lines = [unit.line for unit in stream.units]
    if stream.more:
        lines.append(f"… {stream.more} more events")
    if not lines:
        return "(no events)\n"
    return "\n".join(lines) + "\n"
