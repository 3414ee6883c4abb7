"""Any other request to a targeted host: its errors reach the client in OpenAI's shape."""

from __future__ import annotations

from .base import Env, Exchange, Request


class Fallback:
    name = "other"

    def open(self, request: Request, env: Env) -> Exchange:
        return Exchange(env)


FALLBACK = Fallback()
