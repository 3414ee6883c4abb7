"""What one chat stream or reply needs to know beyond its bytes: a plain value built per flow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...ids import new_call_id, new_completion_id, unix_now
from ...profiles import HOLD_LIMIT

# Objects and arrays one stream event may hold before it is passed through unparsed
# (a chunk has a dozen; thousands of choices in one event would multiply the output).
MAX_EVENT_CONTAINERS = 10_000


@dataclass(frozen=True, slots=True)
class Options:
    # The model sent upstream; used when chunks name none.
    model: str | None = None
    # The alias the client asked for (normalize_model_map): reported as the model.
    model_alias: str | None = None
    # The client asked for stream_options.include_usage: usage comes once, in a
    # final chunk with empty choices. When it did not, empty-choices chunks go.
    include_usage: bool = False
    # An event (or line) larger than this is not parsed: the stream goes raw.
    max_event_bytes: int = 8 * 1024 * 1024
    # Splice plain content chunks through learned templates (same bytes, less work).
    fast_path: bool = True
    # Chunks held while a tool call waits for its late name (vLLM); from the upstream's profile.
    hold_limit: int = HOLD_LIMIT
    # Reasoning (think.py): split, fold or keep; and whether the reply starts inside reasoning
    # with no <think> (the model's family says so, and the request did not switch it off).
    reasoning: str = "split"
    opens_inside: bool = False
    # Names the stream in log lines (method, host and path; never headers or bodies).
    label: str = "stream"
    # Injected so tests can pin what is otherwise random or time-dependent.
    make_id: Callable[[], str] = field(default=new_completion_id)
    make_call_id: Callable[[], str] = field(default=new_call_id)
    now: Callable[[], int] = field(default=unix_now)
