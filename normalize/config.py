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

    # The model the client asked for; used when chunks name none.
    model: str | None = None
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
