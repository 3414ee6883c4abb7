"""Made-up ids and the clock, in one place so tests can pin them."""

from __future__ import annotations

import secrets
import time


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def new_id(prefix: str) -> str:
    """`resp_`, `msg_`, `fc_`, `ctc_`, `rs_` + 48 hex digits, as OpenAI's Responses ids read."""
    return f"{prefix}_{secrets.token_hex(24)}"


def unix_now() -> int:
    return int(time.time())
