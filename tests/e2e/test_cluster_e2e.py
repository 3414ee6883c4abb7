"""End to end: two mitmdump replicas behind HAProxy (deploy/), sticky per API key.

Each test starts a scripted upstream, two `mitmdump -s addon.py` replicas in
reverse mode with the options `make cluster` gives them, and HAProxy with
deploy/haproxy.py's configuration (faster health checks, see
tests/harness/haproxy.py). Clients are openai-python and httpx, through
HAProxy's port. Which replica served a request is read twice: from the
upstream (each replica adds an `x-test-replica` header on its way out, a
test-only mitmproxy `modify_headers`), and from that replica's own flow log,
where the request's `probe=` query must show, and not in the other's.

Beside those: the health check with the upstream down (lazy and eager
connection strategies, no HAProxy), and `python -m deploy.cluster` itself,
started, used and stopped with SIGTERM.

Nothing waits a fixed time: a replica's death is seen by asking HAProxy's
stats socket until a deadline; a stream that must still be running is held
by a gate in the upstream, opened once the client has seen what came before
it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest

from deploy.cluster import REPLICA_OPTIONS
from deploy.haproxy import HEALTH_PATH, Checks
from tests.harness import haproxy as haproxy_harness
from tests.harness.haproxy import FAST, HAProxyProcess
from tests.harness.proxy import MitmdumpLauncher, MitmdumpProcess, client_env
from tests.harness.upstream import Gate, RecordedRequest, Reply, ScriptedUpstream

from .nim_stream import CHAT_PATH, MODEL, TEXT, nim_chunks
from .test_stream_e2e import SSE_UTF8, expected_body

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not haproxy_harness.available(), reason="haproxy is not installed (make test installs it when run as root)"),
]

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "Say it."}]
MARKER = "x-test-replica"
MAX_KEYS_TRIED = 32  # two replicas: the chance that 32 keys all hash to one is 2**-31


class Cluster:
    """The upstream, the replicas, HAProxy, and who served what."""

    def __init__(self, upstream: ScriptedUpstream, launcher: MitmdumpLauncher, run_dir: Path, checks: Checks = FAST) -> None:
        self.upstream = upstream
        self.launcher = launcher
        self.gates: dict[str, Gate] = {}  # probe -> a gate after the stream's first content chunk
        upstream.respond("POST", CHAT_PATH, self.reply)
        self.replicas: list[MitmdumpProcess] = [
            launcher.start(
                mode=f"reverse:{upstream.url}",
                normalize_hosts=[upstream.host_port],
                options=[*REPLICA_OPTIONS, ("modify_headers", f"/~q/{MARKER}/{name}")],
            )
            for name in ("replica1", "replica2")
        ]
        self.haproxy = HAProxyProcess(run_dir, [r.host_port for r in self.replicas], checks)
        try:
            # "UP 1/2" is a replica not checked yet (or one failed check): up, all the same.
            self.haproxy.wait_states(lambda states: all(s.startswith("UP") for s in states.values()))
        except BaseException:
            self.close()
            raise
        self.probes = 0

    def reply(self, request: RecordedRequest) -> Reply:
        probe = parse_qs(urlsplit(request.path).query).get("probe", [""])[0]
        chunks: list = nim_chunks()
        if probe in self.gates:
            chunks.insert(2, self.gates[probe])  # after the role chunk and the first text ("Ta")
        return Reply(200, [("Content-Type", "text/event-stream")], chunks)

    def probe(self) -> str:
        self.probes += 1
        return f"p{self.probes:03d}"

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.haproxy.url + "/v1", api_key=key, max_retries=0, timeout=20)

    def stream(self, key: str, probe: str) -> openai.Stream:
        return self.client(key).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, extra_query={"probe": probe})

    def sent_by(self, probe: str) -> str:
        """The replica that sent this probe upstream (the marker it added)."""
        seen = [r for r in self.upstream.requests if f"probe={probe}" in r.path]
        assert len(seen) == 1, f"probe {probe} reached the upstream {len(seen)} times"
        name = seen[0].header(MARKER)
        assert name in ("replica1", "replica2"), seen[0].headers
        return name

    def served_by(self, probe: str) -> str:
        """The replica that served this probe, once its flow has ended: that replica's flow log shows
        it (mitmdump writes a flow's line when the response ends), the other's does not."""
        name = self.sent_by(probe)
        index = int(name[-1]) - 1
        line = rf"POST http://{re.escape(self.upstream.host_port)}{CHAT_PATH}\?probe={probe}(\s|$)"
        self.replicas[index].wait_for_log(line)
        assert not re.search(line, self.replicas[1 - index].log)
        return name

    def text(self, key: str) -> tuple[str, str]:
        """One whole stream with this key: (the text the client assembled, the replica that served it)."""
        probe = self.probe()
        text = "".join(chunk.choices[0].delta.content or "" for chunk in self.stream(key, probe))
        return text, self.served_by(probe)

    def keys_per_replica(self) -> dict[str, str]:
        """A key that lands on each replica, found by trying keys in a fixed order (the hash is fixed)."""
        found: dict[str, str] = {}
        for i in range(MAX_KEYS_TRIED):
            key = f"sk-test-{i:02d}"
            text, name = self.text(key)
            assert text == TEXT
            found.setdefault(name, key)
            if len(found) == 2:
                return found
        pytest.fail(f"{MAX_KEYS_TRIED} keys all went to {list(found)}; HAProxy log:\n{self.haproxy.log}")

    def kill(self, name: str) -> None:
        """SIGKILL, as a replica that crashes; the launcher forgets it (its exit is the test's doing)."""
        replica = self.replicas[int(name[-1]) - 1]
        replica.proc.kill()
        replica.stop()
        self.launcher.processes.remove(replica)

    def close(self) -> None:
        self.haproxy.stop()
        for gate in self.gates.values():
            gate.set()  # no upstream handler waits on a test that is over


@pytest.fixture
def cluster(upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(upstream, mitmdump, tmp_path / "haproxy")  # on failure it stops its own HAProxy
    try:
        yield c
    finally:
        c.close()


def test_each_key_sticks_to_one_replica(cluster: Cluster) -> None:
    keys = cluster.keys_per_replica()
    assert set(keys) == {"replica1", "replica2"}
    for name, key in keys.items():
        for _ in range(3):
            assert cluster.text(key) == (TEXT, name)

    # Without Authorization, x-api-key picks the replica (Anthropic's clients send that): the same key
    # reaches the same replica in either header. With both, Authorization decides.
    with httpx.Client(base_url=cluster.haproxy.url, timeout=20) as http:
        for name, key in keys.items():
            other = keys["replica2" if name == "replica1" else "replica1"]
            for headers in ({"x-api-key": key}, {"x-api-key": key}, {"authorization": f"Bearer {key}", "x-api-key": other}):
                probe = cluster.probe()
                r = http.post(
                    CHAT_PATH, params={"probe": probe}, headers=headers, json={"model": MODEL, "messages": MESSAGES, "stream": True}
                )
                assert (r.status_code, r.headers["content-type"]) == (200, SSE_UTF8)
                assert r.content == expected_body()  # HAProxy changes nothing in the stream
                assert cluster.served_by(probe) == name

        # The health check HAProxy uses, answered by a replica, is there for anyone watching.
        r = http.get(HEALTH_PATH)
        assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_a_keys_stored_responses_live_on_its_replica(cluster: Cluster) -> None:
    """The Responses store is per replica; HAProxy brings a key back to the replica that holds
    its responses, so `previous_response_id` and GET /v1/responses/{id} work through the cluster."""
    keys = cluster.keys_per_replica()
    home = "replica1"
    client = cluster.client(keys[home])
    events = list(client.responses.create(model=MODEL, input="Say it.", stream=True))
    assert events[-1].type == "response.completed"
    first = events[-1].response
    assert first.output_text == TEXT

    # Through HAProxy, the key's replica answers from its store, with nothing asked upstream.
    asked = len(cluster.upstream.requests)
    assert client.responses.retrieve(first.id).output_text == TEXT
    assert len(cluster.upstream.requests) == asked
    # The other replica (asked directly, same key) never saw it: the store is that replica's own.
    stranger = openai.OpenAI(base_url=cluster.replicas[1].url + "/v1", api_key=keys[home], max_retries=0, timeout=20)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(first.id)

    # A follow-up turn through HAProxy carries the first turn's messages upstream.
    second = list(client.responses.create(model=MODEL, input="Again.", previous_response_id=first.id, stream=True))
    assert second[-1].type == "response.completed"
    sent = json.loads(cluster.upstream.requests[-1].body)
    assert [m.get("content") for m in sent["messages"]] == ["Say it.", TEXT, "Again."]
    assert cluster.upstream.requests[-1].header(MARKER) == home


def test_a_dead_replica_hands_its_keys_to_the_other(cluster: Cluster) -> None:
    keys = cluster.keys_per_replica()
    survivor, victim = "replica1", "replica2"
    key_s, key_v = keys[survivor], keys[victim]

    # One stream running on each replica, each held by the upstream after its first text.
    live_s, live_v = cluster.probe(), cluster.probe()
    cluster.gates[live_s], cluster.gates[live_v] = Gate(), Gate()
    stream_s, stream_v = iter(cluster.stream(key_s, live_s)), iter(cluster.stream(key_v, live_v))
    assert [next(stream_s).choices[0].delta.content, next(stream_s).choices[0].delta.content] == ["", "Ta"]
    assert [next(stream_v).choices[0].delta.content, next(stream_v).choices[0].delta.content] == ["", "Ta"]
    assert cluster.sent_by(live_s) == survivor and cluster.sent_by(live_v) == victim

    cluster.kill(victim)
    # The stream on the dead replica breaks off (an error, not a hang, not a clean end).
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for _ in stream_v:
            pass
    cluster.gates[live_v].set()
    cluster.haproxy.wait_states(lambda states: states[victim].startswith("DOWN") and states[survivor] == "UP")

    # New requests with the dead replica's key land on the survivor and succeed, every time.
    for _ in range(3):
        assert cluster.text(key_v) == (TEXT, survivor)
    assert cluster.text(key_s) == (TEXT, survivor)

    # The stream that was running on the survivor all along ends as it would have.
    cluster.gates[live_s].set()
    rest = [chunk.choices[0].delta.content or "" for chunk in stream_s]
    assert "Ta" + "".join(rest) == TEXT
    assert cluster.served_by(live_s) == survivor

    # With no replica left, HAProxy's own answer is an OpenAI error, not an HTML page.
    cluster.kill(survivor)
    cluster.haproxy.wait_states(lambda states: all(s.startswith("DOWN") for s in states.values()))
    with pytest.raises(openai.APIStatusError) as failed:
        cluster.stream(key_s, cluster.probe())
    assert failed.value.status_code == 503
    assert failed.value.body == {"message": "openai-normalize: no proxy replica is up", "type": "server_error", "param": None, "code": None}


def test_a_replica_that_just_died_is_passed_over_before_any_health_check(
    upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, tmp_path: Path
) -> None:
    """Checks every 10 minutes here, so only real traffic can tell HAProxy: the first request for
    the dead replica's key finds its connection refused, is sent to the other replica (redispatch)
    and succeeds, and that refusal marks the dead one down (observe layer4)."""
    cluster = Cluster(upstream, mitmdump, tmp_path / "haproxy", Checks(inter_ms=600_000, fastinter_ms=600_000))
    try:
        keys = cluster.keys_per_replica()
        cluster.kill("replica2")
        assert cluster.haproxy.states()["replica2"].startswith("UP")  # nothing has told HAProxy yet
        assert cluster.text(keys["replica2"]) == (TEXT, "replica1")
        assert cluster.haproxy.states()["replica2"].startswith("DOWN")
        assert cluster.text(keys["replica2"]) == (TEXT, "replica1")
    finally:
        cluster.close()


# -- the health check, without HAProxy ---------------------------------------------


def test_health_is_answered_without_the_upstream(mitmdump: MitmdumpLauncher) -> None:
    """With the cluster's lazy connection strategy a replica answers its health check even when
    the upstream is down; with mitmproxy's default (eager) the upstream is dialled first and the
    check fails, which would take every replica out at once."""
    with socket.create_server(("127.0.0.1", 0)) as closed:
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
    lazy = mitmdump.start(mode=f"reverse:http://{dead}", normalize_hosts=[dead], options=REPLICA_OPTIONS)
    eager = mitmdump.start(mode=f"reverse:http://{dead}", normalize_hosts=[dead])

    conn = http.client.HTTPConnection("127.0.0.1", lazy.port, timeout=10)
    conn.request("GET", HEALTH_PATH)
    r = conn.getresponse()
    assert (r.status, r.getheader("content-type"), json.loads(r.read())) == (200, "application/json", {"status": "ok"})
    conn.close()
    assert "/normalize/health" not in lazy.log  # dumper_filter: health checks stay out of the flow log

    conn = http.client.HTTPConnection("127.0.0.1", eager.port, timeout=10)
    try:
        conn.request("GET", HEALTH_PATH)
        status = conn.getresponse().status
    except (ConnectionError, http.client.HTTPException):
        status = None  # mitmproxy hung up
    finally:
        conn.close()
    assert status != 200


# -- the launcher ------------------------------------------------------------------


def free_consecutive_ports(n: int) -> int:
    """The first of n consecutive free ports below the ephemeral range (which port-0 binds of
    other tests use), so that nothing else on this machine is likely to take one meanwhile."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for base in range(low - 2000, 20000, -97)[:50]:
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.fail(f"no {n} consecutive free ports found")


def test_make_cluster_starts_replicas_behind_haproxy_and_stops_them_all(upstream: ScriptedUpstream, tmp_path: Path) -> None:
    upstream.reply("POST", CHAT_PATH, nim_chunks(), headers={"Content-Type": "text/event-stream"})
    port = free_consecutive_ports(3)
    argv = [sys.executable, "-m", "deploy.cluster", "--replicas", "2", "--port", str(port), "--upstream", upstream.url]
    argv += ["--run-dir", str(tmp_path / "run")]
    with open(tmp_path / "cluster.out", "wb") as out:  # HAProxy's access log
        proc = subprocess.Popen(argv, cwd=REPO, env=client_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "cluster: ready" in line:
                ready.set()
        ready.set()  # exited: the wait below ends, the assertion says why

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60) and proc.poll() is None, "".join(lines)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-launcher", max_retries=0, timeout=20
            ).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        )
        assert text == TEXT
        # The request is in one replica's flow log (written as the flow ends: waited for, bounded).
        logs = [tmp_path / "run" / f"replica-{i}.log" for i in (1, 2)]
        deadline = time.monotonic() + 10
        while not any(CHAT_PATH in log.read_text() for log in logs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [CHAT_PATH in log.read_text() for log in logs] in ([True, False], [False, True])
    finally:
        proc.send_signal(15)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        reader.join(5)
    assert code == 0, "".join(lines)
    for p in (port, port + 1, port + 2):  # HAProxy and both replicas are gone
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p), timeout=5).close()
    assert os.path.exists(tmp_path / "run" / "haproxy.cfg")
