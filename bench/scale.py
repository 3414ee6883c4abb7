"""The scaling rows of `make load`: concurrent streams through HAProxy to 1 and to 2 replicas.

Two clusters side by side, each as `make cluster` runs it (deploy/haproxy.py's
configuration with its default health checks; mitmdump replicas in reverse
mode to the upstream with deploy/cluster.py's REPLICA_OPTIONS and the addon's
default options), in front of the same upstream process (bench/upstream.py):
one HAProxy with one replica, one with two. Both are warmed up (10 streams of
100 events each), then driven in alternation, A B B A ..., so that drift and
noise hit both alike. Each round is bench/load.py's `run_load`: `streams`
concurrent streams of `events` NIM-shaped events, held by the upstream until
all are open, every text checked; stream i carries its own API key
(`Bearer sk-load-i`), so the hash spreads the streams over the replicas.

Per round: content events per second over the streaming window (from the
first stream's first body byte, after the barrier, to the last stream's end);
mitmdump CPU (utime+stime of every replica, /proc) per content event; HAProxy's
CPU per content event; how many streams each replica served (its log lines).
The client (one thread per stream) and the upstream run on the same machine.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import bench as harness
from bench import load
from bench.bench import REPO, BenchError, Processes, Proxy
from deploy.cluster import REPLICA_OPTIONS
from deploy.haproxy import Checks
from tests.harness.haproxy import HAProxyProcess, available

ADDON = REPO / "addon.py"
REPLICA_COUNTS = (1, 2)
WARMUP = (10, 100)  # streams, events
CPUS = os.cpu_count() or 1
FLOW_LINE = "/v1/chat/completions 200: normalized"  # the addon's log line for each stream


class Front:
    """HAProxy, as bench.stream and load.run_load see a proxy: a name, a port, a pid, a log."""

    def __init__(self, name: str, haproxy: HAProxyProcess) -> None:
        self.name = name
        self.haproxy = haproxy
        self.port = haproxy.port
        self.pid = haproxy.proc.pid
        self.proc = haproxy.proc
        self.process = self  # check_proxy reads `proxy.process.log`

    @property
    def log(self) -> str:
        return self.haproxy.log

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.splitlines()[-lines:]) or "(no log)"


DIRECT = 0  # the column of one mitmdump without HAProxy (regular mode, as the rest of make load)


@dataclass
class Cluster:
    """What the client talks to (`target`), and the mitmdumps behind it."""

    replicas: list[Proxy]
    target: Proxy | Front
    front: Front | None = None  # HAProxy, unless the client talks to the one replica directly

    def served(self) -> list[int]:
        return [r.process.log.count(FLOW_LINE) for r in self.replicas]


@dataclass
class Round:
    result: load.LoadResult
    haproxy_cpu_s: float
    split: list[int]  # streams per replica
    client_cpu_s: float = 0.0  # this process: the client threads
    upstream_cpu_s: float = 0.0
    busy: float = 0.0  # the machine's CPUs, 0..1, over the round

    @property
    def events(self) -> int:
        return self.result.ok * self.result.events


@dataclass
class ScaleResult:
    streams: int
    events: int
    rounds: dict[int, list[Round]] = field(default_factory=dict)  # replicas (DIRECT: no HAProxy) -> rounds
    failures: list[str] = field(default_factory=list)
    note: str = ""  # why it did not run

    @property
    def passed(self) -> bool:
        return not self.failures

    def median(self, column: int, what: str) -> float:
        def value(r: Round) -> float:
            if what == "events_per_s":
                return window_events_per_s(r.result)
            if what == "busy":
                return r.busy
            if what == "ours":  # this run's processes, as a share of the machine's CPUs over the round
                mine = r.result.proxy_cpu_s + r.haproxy_cpu_s + r.client_cpu_s + r.upstream_cpu_s
                return mine / (r.result.wall_s * CPUS) if r.result.wall_s else 0.0
            cpu = {"mitmdump_cpu": r.result.proxy_cpu_s, "haproxy_cpu": r.haproxy_cpu_s, "client_cpu": r.client_cpu_s}
            return cpu.get(what, r.upstream_cpu_s) / r.events * 1e6 if r.events else 0.0

        rounds = self.rounds.get(column, [])
        return statistics.median(value(r) for r in rounds) if rounds else 0.0


def window_events_per_s(r: load.LoadResult) -> float:
    """Content events per second from the first stream's first byte to the last stream's end."""
    if r.all_open_s is None or r.ends_s is None or r.ends_s[1] <= r.all_open_s:
        return 0.0
    return r.ok * r.events / (r.ends_s[1] - r.all_open_s)


def start_cluster(procs: Processes, upstream_port: int, replicas: int) -> Cluster:
    options = [f"normalize_hosts=127.0.0.1:{upstream_port}", *(f"{k}={v}" for k, v in REPLICA_OPTIONS)]
    mode = f"reverse:http://127.0.0.1:{upstream_port}"
    started = [procs.mitmdump(f"{replicas}x-replica{i}", ADDON, options, mode=mode) for i in range(1, replicas + 1)]
    servers = [f"127.0.0.1:{r.port}" for r in started]
    haproxy = HAProxyProcess(procs.tmp / f"haproxy-{replicas}", servers, checks=Checks())  # make cluster's checks
    front = Front(f"haproxy, {replicas} replica(s)", haproxy)
    haproxy.wait_states(lambda states: len(states) == replicas and all(s == "UP" for s in states.values()), timeout=30)
    return Cluster(started, front, front)


def machine_ticks() -> tuple[int, int]:
    """(idle, total) clock ticks of all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait


def one_round(cluster: Cluster, upstream: tuple[int, int], streams: int, events: int) -> Round:
    """One run_load through the cluster; `upstream` is (port, pid)."""
    upstream_port, upstream_pid = upstream
    before = cluster.served()
    front = cluster.front
    haproxy_before = harness.cpu_seconds(front.pid) if front else 0.0
    upstream_before, client_before, ticks_before = harness.cpu_seconds(upstream_pid), time.process_time(), machine_ticks()
    pids = [r.pid for r in cluster.replicas]
    result = load.run_load(cluster.target, upstream_port, streams, events, keyed=front is not None, cpu_pids=pids)  # type: ignore[arg-type]
    haproxy_cpu = harness.cpu_seconds(front.pid) - haproxy_before if front else 0.0
    upstream_cpu, client_cpu = harness.cpu_seconds(upstream_pid) - upstream_before, time.process_time() - client_before
    idle, total = (after - b for after, b in zip(machine_ticks(), ticks_before, strict=True))
    # Each replica logs a stream's line as it ends: wait (bounded) for the last ones.
    deadline = time.monotonic() + 10
    while sum(cluster.served()) - sum(before) < result.ok and time.monotonic() < deadline:
        time.sleep(0.05)
    for replica in cluster.replicas:
        try:
            harness.check_proxy(replica)
        except BenchError as e:
            result.failures.append(str(e))
    split = [after - b for after, b in zip(cluster.served(), before, strict=True)]
    return Round(result, haproxy_cpu, split, client_cpu, upstream_cpu, 1 - idle / total if total else 0.0)


def run_scaling(procs: Processes, upstream: tuple[int, int], direct: Proxy, streams: int, events: int, rounds: int) -> ScaleResult:
    """`rounds` rounds per column (`direct`, already warm; HAProxy to 1 replica; to 2), in ABC CBA order;
    `upstream` is the upstream's (port, pid).
    HAProxy is stopped here; the mitmdumps when `procs` closes."""
    out = ScaleResult(streams, events)
    if not available():
        out.note = "haproxy is not installed (make load installs it when run as root): no scaling rows"
        return out
    clusters: dict[int, Cluster] = {DIRECT: Cluster([direct], direct)}
    try:
        for n in REPLICA_COUNTS:
            clusters[n] = start_cluster(procs, upstream[0], n)
            warm = one_round(clusters[n], upstream, *WARMUP)
            out.failures += [f"warm-up, {n} replica(s): {f}" for f in warm.result.failures]
        columns = [DIRECT, *REPLICA_COUNTS]
        for r in range(rounds):
            for n in columns if r % 2 == 0 else columns[::-1]:
                what = "one mitmdump, no HAProxy" if n == DIRECT else f"HAProxy to {n} replica(s)"
                harness.progress(f"scaling round {r + 1}/{rounds}: {streams} streams, {what}")
                done = one_round(clusters[n], upstream, streams, events)
                out.rounds.setdefault(n, []).append(done)
                out.failures += [f"{what}, round {r + 1}: {f}" for f in done.result.failures]
                harness.progress(
                    f"  {done.result.ok}/{streams} exact, {window_events_per_s(done.result):,.0f} events/s, "
                    f"split {'+'.join(map(str, done.split))}"
                )
    except (BenchError, AssertionError) as e:
        out.failures.append(f"{type(e).__name__}: {e}")
    finally:
        for cluster in clusters.values():
            if cluster.front is not None:
                cluster.front.haproxy.stop()
    return out


def table(out: ScaleResult) -> list[str]:
    """The Markdown rows."""
    if out.note:
        return [f"Scaling: {out.note}.", ""]
    columns = [DIRECT, *REPLICA_COUNTS]
    one, two = REPLICA_COUNTS

    def ratio(what: str) -> str:
        a, b = out.median(one, what), out.median(two, what)
        return f"×{b / a:.2f}" if a else "–"

    def us(x: float) -> str:
        return f"{x:,.1f} µs"

    def split(n: int) -> str:
        rounds = out.rounds.get(n, [])
        return " + ".join(str(s) for s in rounds[-1].split) if rounds else "–"

    def exact(n: int) -> str:
        rounds = out.rounds.get(n, [])
        return f"{sum(r.result.ok for r in rounds)} of {len(rounds) * out.streams}"

    def row(label: str, cell, last: str = "") -> str:
        return f"| {label} | " + " | ".join(cell(n) for n in columns) + f" | {last} |"

    return [
        f"**Scaling: {out.streams} concurrent streams × {out.events:,} NIM-shaped events, {len(out.rounds.get(one, []))} "
        f"rounds per column in ABC CBA order, medians**",
        "",
        "| Measure | One mitmdump, no HAProxy | HAProxy, 1 replica | HAProxy, 2 replicas | 2 vs 1 replica |",
        "|---|---:|---:|---:|---:|",
        row("Content events/s (first byte to last stream's end)", lambda n: f"{out.median(n, 'events_per_s'):,.0f}", ratio("events_per_s")),
        row("mitmdump CPU per content event (all replicas)", lambda n: us(out.median(n, "mitmdump_cpu")), ratio("mitmdump_cpu")),
        row("HAProxy CPU per content event", lambda n: "–" if n == DIRECT else us(out.median(n, "haproxy_cpu")), ratio("haproxy_cpu")),
        row("Client CPU per content event (its threads, in the bench)", lambda n: us(out.median(n, "client_cpu"))),
        row("Upstream CPU per content event", lambda n: us(out.median(n, "upstream_cpu"))),
        row(
            f"Machine CPU busy ({CPUS} cores): all processes, this run's",
            lambda n: f"{out.median(n, 'busy'):.0%}, {out.median(n, 'ours'):.0%}",
        ),
        row("Streams per replica (last round)", split),
        row("Streams exact, one [DONE] each", exact),
        "",
    ]
