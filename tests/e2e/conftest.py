"""Fixtures for end-to-end tests: a scripted upstream and a mitmdump launcher.

  upstream            a plain-HTTP ScriptedUpstream on 127.0.0.1 (function scope)
  tls_upstream        the same over TLS, self-signed for 127.0.0.1/localhost
  upstream_factory    make_upstream(tls=False) -> another ScriptedUpstream
  mitmdump            start(*args, mode=, normalize_hosts=, ssl_insecure=, options=,
                      addon=, expect_failure=) -> MitmdumpProcess
                      (.port .url .confdir .ca_path .log .wait_for_log() .stop())
  dead_port           a loopback port that refuses connections (an unreachable upstream)
  no_proxy_env        (autouse) removes HTTP(S)_PROXY/ALL_PROXY/NO_PROXY, any case,
                      from this process's environment, so clients only use a proxy
                      when a test says so

Every e2e test is marked `e2e` (select with `-m e2e`, skip with `-m "not e2e"`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.proxy import PROXY_ENV_VARS, MitmdumpLauncher
from tests.harness.upstream import ScriptedUpstream, check_no_crash


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end-to-end test (real mitmdump subprocess, local upstream, real clients)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in PROXY_ENV_VARS:
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def upstream_factory(tmp_path: Path) -> Iterator[Callable[..., ScriptedUpstream]]:
    made: list[ScriptedUpstream] = []

    def make(*, tls: bool = False, gate_timeout: float = 5.0) -> ScriptedUpstream:
        u = ScriptedUpstream(
            tls=tls, cert_dir=tmp_path / f"upstream-cert-{len(made)}", gate_timeout=gate_timeout
        ).start()
        made.append(u)
        return u

    yield make
    for u in made:
        u.close()
    for u in made:
        check_no_crash(u)


@pytest.fixture
def upstream(upstream_factory: Callable[..., ScriptedUpstream]) -> ScriptedUpstream:
    return upstream_factory()


@pytest.fixture
def tls_upstream(upstream_factory: Callable[..., ScriptedUpstream]) -> ScriptedUpstream:
    return upstream_factory(tls=True)


@pytest.fixture
def mitmdump(tmp_path: Path) -> Iterator[MitmdumpLauncher]:
    launcher = MitmdumpLauncher(tmp_path)
    yield launcher
    problems = launcher.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so no one else takes it), never listening."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    try:
        yield s.getsockname()[1]
    finally:
        s.close()
