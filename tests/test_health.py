"""GET /normalize/health: the addon's own health check (normalize/endpoints/health.py)."""

import json
import logging

import pytest
from mitmproxy.test import taddons, tflow, tutils

from normalize.endpoints import FALLBACK, route
from normalize.endpoints.base import Env, Shared
from normalize.endpoints.health import HEALTH
from normalize.mitm import addon
from normalize.profiles import GENERIC
from normalize.settings import Settings


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("GET", "/normalize/health", HEALTH),
        ("POST", "/normalize/health", FALLBACK),
        ("GET", "/v1/normalize/health", FALLBACK),  # the addon's own path, under no API prefix
        ("GET", "/normalize/health/more", FALLBACK),
    ],
)
def test_health_route(method, path, endpoint):
    assert route(method, tuple(p for p in path.split("/") if p)).endpoint is endpoint


def test_health_is_answered_without_the_upstream():
    exchange = HEALTH.open(None, Env(Settings(), GENERIC, Shared()))  # type: ignore[arg-type]
    assert exchange.answer is not None and exchange.forward is None
    assert (exchange.answer.status, json.loads(exchange.answer.body)) == (200, {"status": "ok"})
    assert exchange.quiet


def health_flow(a, host):
    flow = tflow.tflow(req=tutils.treq(host=host, port=443, path=b"/normalize/health", method=b"GET", content=b""))
    a.requestheaders(flow)
    a.request(flow)
    if flow.response is not None:
        a.responseheaders(flow)
        a.response(flow)
    return flow


def test_health_answers_for_targeted_hosts_only(caplog):
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_hosts=["api.example.com"])
        with caplog.at_level(logging.DEBUG, logger="normalize"):
            flow = health_flow(a, "api.example.com")
        assert flow.response.status_code == 200
        assert flow.response.headers["content-type"] == "application/json"
        assert json.loads(flow.response.content) == {"status": "ok"}
        # Polled every few seconds by a load balancer: a debug line, not an info one.
        [record] = [r for r in caplog.records if "/normalize/health" in r.getMessage()]
        assert record.levelno == logging.DEBUG

        # Another host's /normalize/health is that host's business.
        assert health_flow(a, "other.example.com").response is None
