"""Calling an endpoint, and applying what it says to the flow.

Contract: `guarded(label, what, fallback, call)` is the one guard around the
endpoint's code (`open`, `stream`, `whole`): an exception there is logged,
with the flow's label and what was being done, and `fallback` (leave the flow
as it is) is returned instead; a hook never raises because of an endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("normalize")


def guarded[T](label: str, what: str, fallback: T, call: Callable[[], T]) -> T:
    try:
        return call()
    except Exception:
        log.exception("%s: the endpoint failed %s; passing it on unchanged", label, what)
        return fallback
