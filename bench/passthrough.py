"""The benchmark's baseline: a mitmproxy addon that streams every response through untouched.

Same streaming machinery as the normalize addon (`flow.response.stream`), no
rewrite, so the difference between the two is the cost of normalizing.
"""

from __future__ import annotations

from mitmproxy import http


class Passthrough:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            flow.response.stream = True


addons = [Passthrough()]
