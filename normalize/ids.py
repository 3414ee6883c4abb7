"""Made-up ids and the clock, in one place so tests can pin them."""

from __future__ import annotations

import secrets
import time


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def unix_now() -> int:
    return int(time.time())
