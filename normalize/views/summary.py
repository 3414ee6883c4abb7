"""The one-line summary of what was repaired: the flow's comment and its log line."""

from __future__ import annotations

from collections.abc import Mapping

from ..repairs import Repair, phrase


def describe(repairs: Mapping[Repair, int] | Mapping[str, int], events: int | None = None, verb: str = "normalized") -> str:
    """`normalized 12 events: 2 null fields dropped, [DONE] added`; most frequent first."""
    head = verb if events is None else f"{verb} {events} event{'' if events == 1 else 's'}"
    counted = sorted(((n, name) for name, n in repairs.items() if n > 0), key=lambda item: (-item[0], item[1]))
    if not counted:
        return f"{head}: nothing to repair"
    return f"{head}: " + ", ".join(phrase(name, n) for n, name in counted)
