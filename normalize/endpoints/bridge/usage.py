"""The one reading of a chat `usage` object, for the bridges that report it in their own words.

Contract: `read_usage(usage, input_tokens, output_tokens)` takes whatever the
upstream sent as usage (a chat usage object, or anything else) and returns
the counts a bridge reports: prompt and completion tokens, the total, cached
prompt tokens and reasoning tokens, each a non-negative integer. Where the
upstream reported no count, `input_tokens` (the request's estimate) and
`output_tokens` (the deltas sent) stand in, so a client always finds counts;
the total is the upstream's, else the sum. Pure and total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    input: int
    output: int
    total: int
    cached: int  # of `input`, read from the upstream's cache
    reasoning: int  # of `output`, spent reasoning


def read_usage(usage: Any, input_tokens: int, output_tokens: int) -> Usage:
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))
    prompt = input_tokens if prompt is None else prompt
    completion = output_tokens if completion is None else completion
    return Usage(
        input=prompt,
        output=completion,
        total=count(usage.get("total_tokens")) or prompt + completion,
        cached=_detail(usage, "prompt_tokens_details", "cached_tokens"),
        reasoning=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
    )


def count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _detail(usage: dict[str, Any], key: str, name: str) -> int:
    details = usage.get(key)
    return (count(details.get(name)) or 0) if isinstance(details, dict) else 0
