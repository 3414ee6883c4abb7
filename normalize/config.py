"""The core's configuration: a plain value, built by the addon from its options."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def unix_now() -> int:
    return int(time.time())


@dataclass(frozen=True, slots=True)
class Options:
    """What one stream needs to know beyond its bytes."""

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
    # Names the stream in log lines (method, host and path; never headers or bodies).
    label: str = "stream"
    # Injected so tests can pin what is otherwise random or time-dependent.
    make_id: Callable[[], str] = field(default=new_completion_id)
    make_call_id: Callable[[], str] = field(default=new_call_id)
    now: Callable[[], int] = field(default=unix_now)
