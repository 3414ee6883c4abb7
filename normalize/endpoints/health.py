"""`GET /normalize/health`: the addon's own health check, answered locally, never upstream.

Contract: `HEALTH.open(...)` gives an exchange whose `answer` is
`200 {"status":"ok"}`. It says that this mitmdump is up, has the addon loaded,
and answers requests; it says nothing about the upstream. That is what a load
balancer in front of several replicas needs: a replica that stops answering is
taken out, while an upstream that is down for everyone fails requests through
every replica alike, and is the upstream's error to report, not a reason to
mark every replica down (deploy/ runs the replicas with
`connection_strategy=lazy` so that mitmproxy does not dial the upstream before
the addon can answer).

Like every route, it applies only to hosts in `normalize_hosts`: in reverse mode
every request's host is the upstream's, so the check works on any replica whose
upstream is targeted; in regular proxy mode the addon never answers for a host
it does not look after. The path is matched exactly (it is the addon's, not an
API path under a prefix). The exchange is `quiet`: a load balancer polls it
every few seconds, so its log line is at debug level.
"""

from __future__ import annotations

from .base import Env, Exchange, Reply, Request


class HealthExchange(Exchange):
    verb = "health check answered by the addon"
    quiet = True


class Health:
    name = "health"

    def open(self, request: Request, env: Env) -> Exchange:
        exchange = HealthExchange(env)
        exchange.answer = Reply.json(200, {"status": "ok"})
        return exchange


HEALTH = Health()
