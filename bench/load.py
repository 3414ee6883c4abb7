"""`make load`: the addon under load, and over one very long stream.

A test harness, not a benchmark (though it prints times). It reuses bench/bench.py's
pieces: the upstream process (bench/upstream.py), the mitmdump launcher, the
raw-socket client that checks every event as it reads, and the /proc readers.

  concurrent streams  `--streams` (200) streams of `--events` (500) NIM-shaped events,
                      all at once through ONE mitmdump with addon.py (regular mode,
                      plain HTTP, normalize_hosts = the upstream), one client thread
                      each. The upstream holds every response until all the streams'
                      requests have reached it (its `group=` barrier), so they really
                      are open at the same time; if they are not all there within 20 s,
                      each gets a 503 saying how many came. Every stream's text must be
                      exactly the upstream's, with one [DONE]; no error, no client past
                      its deadline; mitmdump must log no error.
  soak                one stream of `--soak-events` (1,000,000) events through a fresh
                      mitmdump with the addon's default options (normalize_keep_bytes
                      1 MiB), sampling mitmdump's VmRSS (/proc/<pid>/status) every 5% of
                      the events as the client counts them, and once after the end.
                      After the warm-up (the first 10% of events) the samples must
                      stay within 20 MiB (max - min).

  attacks             the hardening tests (tests/e2e/test_hardening_e2e.py) at the sizes
                      the issue measured the harm at (NORMALIZE_ATTACKS=full: 1 GiB gzip
                      bombs, 50 MiB of `{}`, 8 MiB error events, a million choices in one
                      event, 80,000 lines of one event): what each client gets, another
                      client's stream served within a second throughout, the proxy's peak
                      RSS within each test's bound. Run with pytest, in a child process;
                      each test's measures come back through NORMALIZE_ATTACK_REPORT.
  scaling             the same concurrent streams through HAProxy in front of 1 and of 2
                      replicas, as `make cluster` runs them, and through the first mitmdump
                      again, `--scale-rounds` (2) rounds each in ABC CBA order: events/s and
                      proxy CPU per event (bench/scale.py).

Prints a Markdown summary on stdout (progress on stderr); exits 1 on any failure.
`--quick` is the size `make test` runs (tests/e2e/test_load_e2e.py; the attacks
run there at their own make-test sizes, so --quick skips them).
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import bench as harness
from bench import scale
from bench.bench import REPO, BenchError, Processes, Proxy, Received

ADDON = REPO / "addon.py"
# How long the upstream holds the group's responses for the last stream to arrive.
GROUP_WAIT_S = 20
SOAK_SAMPLES = 20  # samples during the soak, evenly spaced in events
WARMUP = 0.10  # the part of the soak whose samples are not held to the limit
RSS_LIMIT_MIB = 20.0
MAX_LISTED_FAILURES = 10


@dataclass(frozen=True)
class Sizes:
    streams: int = 200
    events: int = 500  # per concurrent stream
    soak_events: int = 1_000_000
    rss_limit_mib: float = RSS_LIMIT_MIB
    attacks: bool = True  # the hardening tests at full size
    scale_rounds: int = 2  # per column of the scaling rows (bench/scale.py); 0 skips them


QUICK = Sizes(streams=40, events=200, soak_events=300_000, attacks=False, scale_rounds=0)
ATTACK_TESTS = "tests/e2e/test_hardening_e2e.py"
ATTACK_TIMEOUT_S = 1800


# -- concurrent streams ------------------------------------------------------


@dataclass
class LoadResult:
    streams: int
    events: int
    ok: int = 0
    wall_s: float = 0.0
    all_open_s: float | None = None  # start -> the first stream's first body byte (after the barrier)
    ends_s: tuple[float, float] | None = None  # start -> the first and the last stream's end
    peak_open: int = 0  # most client connections between request written and last byte, at one instant
    proxy_cpu_s: float = 0.0
    rss_kib: tuple[int, int, int] = (0, 0, 0)  # VmRSS before, after; VmHWM
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and self.ok == self.streams

    @property
    def events_per_s(self) -> float:
        return self.ok * self.events / self.wall_s if self.wall_s else 0.0


def peak_overlap(intervals: Sequence[tuple[int, int]]) -> int:
    """The most intervals [start, end] open at one instant."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], -p[1]))
    peak = open_ = 0
    for _, step in points:
        open_ += step
        peak = max(peak, open_)
    return peak


def run_load(proxy: Proxy, upstream_port: int, streams: int, events: int, *, keyed: bool = False, cpu_pids: Sequence[int] = ()) -> LoadResult:
    """`streams` concurrent streams of `events` events each through `proxy`, one thread each.
    `keyed`: `proxy` is HAProxy in front of reverse-mode replicas (bench/scale.py): requests in
    origin form, stream i with its own API key. `cpu_pids`: the processes whose CPU time counts
    as the proxy's (default: `proxy`'s own)."""
    pids = list(cpu_pids) or [proxy.pid]
    res = LoadResult(streams, events)
    group = uuid.uuid4().hex[:12]
    query = f"&group={group}&group_size={streams}&group_wait_s={GROUP_WAIT_S}"
    # Generous, but bounded: the barrier, then all the events at a (slow) 2,000 events/s.
    timeout = GROUP_WAIT_S + 30 + streams * events / 2_000
    lock = threading.Lock()
    intervals: list[tuple[int, int]] = []  # (request written, last byte read)
    first_bytes: list[int] = []

    def one(i: int) -> None:
        label = f"stream {i + 1}/{streams}"
        try:
            got: Received = harness.stream(
                proxy,
                upstream_port,
                shape="nim",
                events=events,
                timeout=timeout,
                query=query,
                openai_shape=True,
                reverse=keyed,
                headers={"authorization": f"Bearer sk-load-{i:04d}"} if keyed else None,
            )
            end = time.monotonic_ns()
            harness.check_text(got, label, events)
            with lock:
                res.ok += 1
                intervals.append((got.started_ns, end))
                if got.ttfb_ns is not None:
                    first_bytes.append(got.started_ns + got.ttfb_ns)
        except Exception as e:  # every failure is reported, none stops the others
            with lock:
                res.failures.append(f"{label}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=one, args=(i,), name=f"load-{i}", daemon=True) for i in range(streams)]
    rss_before = harness.status_kib(proxy.pid, "VmRSS")
    cpu_before = sum(harness.cpu_seconds(pid) for pid in pids)
    start = time.monotonic_ns()
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout + 15  # each stream's own deadline, plus time to connect
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = sum(t.is_alive() for t in threads)
    res.wall_s = (time.monotonic_ns() - start) / 1e9
    if hung:
        res.failures.append(f"{hung} client(s) still running {timeout + 15:.0f} s after the start")
    res.proxy_cpu_s = sum(harness.cpu_seconds(pid) for pid in pids) - cpu_before
    res.rss_kib = (rss_before, harness.status_kib(proxy.pid, "VmRSS"), harness.status_kib(proxy.pid, "VmHWM"))
    res.peak_open = peak_overlap(intervals)
    if first_bytes:
        res.all_open_s = (min(first_bytes) - start) / 1e9
    if intervals:
        res.ends_s = (min(e for _, e in intervals) - start) / 1e9, (max(e for _, e in intervals) - start) / 1e9
    try:
        harness.check_proxy(proxy)
    except BenchError as e:
        res.failures.append(str(e))
    return res


# -- the soak ----------------------------------------------------------------


@dataclass
class SoakResult:
    events: int
    limit_mib: float
    samples: list[tuple[str, int, float, int]] = field(default_factory=list)  # (when, events, s, VmRSS KiB)
    wall_s: float = 0.0
    proxy_cpu_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    def held(self) -> list[int]:
        """The VmRSS samples held to the limit: those after the warm-up."""
        return [kib for when, n, _, kib in self.samples if when != "before" and n > self.events * WARMUP]

    @property
    def spread_mib(self) -> float | None:
        held = self.held()
        return (max(held) - min(held)) / 1024 if len(held) >= 2 else None

    @property
    def passed(self) -> bool:
        return not self.failures

    def flatness(self) -> str | None:
        """None when the samples after the warm-up stay within the limit, else why not."""
        spread = self.spread_mib
        if spread is None:
            return f"only {len(self.held())} VmRSS samples after the warm-up: cannot tell whether it is flat"
        if spread > self.limit_mib:
            return (
                f"VmRSS not flat: {spread:,.1f} MiB between the lowest and highest sample after the first "
                f"{WARMUP:.0%} of events (limit {self.limit_mib:g} MiB)"
            )
        return None


def run_soak(proxy: Proxy, upstream_port: int, events: int, limit_mib: float = RSS_LIMIT_MIB) -> SoakResult:
    """One stream of `events` events through `proxy`, sampling its VmRSS as the client counts events."""
    res = SoakResult(events, limit_mib)
    step = max(1, events // SOAK_SAMPLES)
    next_mark = step
    t0 = time.monotonic()

    def sample(when: str, n: int) -> None:
        res.samples.append((when, n, time.monotonic() - t0, harness.status_kib(proxy.pid, "VmRSS")))

    def watch(got: Received) -> None:
        nonlocal next_mark
        n = got.content_events
        if n >= next_mark:
            sample("during", n)
            while next_mark <= n:
                next_mark += step

    cpu_before = harness.cpu_seconds(proxy.pid)
    try:
        sample("before", 0)
        got = harness.stream(
            proxy, upstream_port, shape="nim", events=events, timeout=max(120, events / 1_000), openai_shape=True, watch=watch
        )
        res.wall_s = time.monotonic() - t0
        harness.check_text(got, f"soak stream of {events:,} events", events)
        sample("after", got.content_events)
        res.proxy_cpu_s = harness.cpu_seconds(proxy.pid) - cpu_before
        harness.check_proxy(proxy)
    except (BenchError, OSError) as e:
        res.failures.append(f"{type(e).__name__}: {e}" if isinstance(e, OSError) else str(e))
        return res
    if (why := res.flatness()) is not None:
        res.failures.append(why)
    return res


# -- the attacks, at full size ------------------------------------------------


@dataclass
class AttackResult:
    passed: bool = False
    wall_s: float = 0.0
    measures: dict[str, dict[str, object]] = field(default_factory=dict)  # test -> what it measured
    output: str = ""  # pytest's summary lines


def run_attacks() -> AttackResult:
    """The hardening tests with NORMALIZE_ATTACKS=full, in a child pytest; their measures from the report file."""
    res = AttackResult()
    with tempfile.TemporaryDirectory(prefix="normalize-attacks-") as tmp:
        report = Path(tmp) / "report.jsonl"
        env = {**os.environ, "NORMALIZE_ATTACKS": "full", "NORMALIZE_ATTACK_REPORT": str(report)}
        started = time.monotonic()
        try:
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", ATTACK_TESTS],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=ATTACK_TIMEOUT_S, check=False,
            )
            res.passed = run.returncode == 0
            lines = (run.stdout + run.stderr).strip().splitlines()
            res.output = "\n".join(lines[-15:] if not res.passed else lines[-1:])
        except subprocess.TimeoutExpired:
            res.output = f"the attack tests did not end within {ATTACK_TIMEOUT_S} s"
        res.wall_s = time.monotonic() - started
        if report.exists():
            for line in report.read_text().splitlines():
                entry = json.loads(line)
                res.measures.setdefault(entry.pop("test"), {}).update(entry)
    return res


# -- all three, and the report --------------------------------------------------


@dataclass
class Outcome:
    sizes: Sizes
    load: LoadResult | None = None
    soak: SoakResult | None = None
    attacks: AttackResult | None = None
    scale: scale.ScaleResult | None = None
    failures: list[str] = field(default_factory=list)  # outside the parts (a process would not start)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return (
            not self.failures
            and (self.load is None or self.load.passed)
            and (self.soak is None or self.soak.passed)
            and (self.attacks is None or self.attacks.passed)
            and (self.scale is None or self.scale.passed)
        )


def run(sizes: Sizes, addon: Path = ADDON) -> Outcome:
    """The concurrent streams (unless sizes.streams is 0), then the soak (unless sizes.soak_events is 0),
    each through its own mitmdump with `addon`, against one upstream. Every child is ended before it returns."""
    out = Outcome(sizes)
    started = time.monotonic()
    procs = Processes()
    try:
        up = procs.upstream()
        upstream_pid = procs.procs[-1].pid  # the process upstream() just started
        options = [f"normalize_hosts=127.0.0.1:{up}"]
        if sizes.streams:
            proxy = procs.mitmdump("addon", addon, options)
            harness.progress(f"{sizes.streams} concurrent streams of {sizes.events:,} events through one mitmdump")
            out.load = run_load(proxy, up, sizes.streams, sizes.events)
            harness.progress(
                f"  {out.load.ok}/{sizes.streams} streams exact in {out.load.wall_s:.1f} s, "
                f"{len(out.load.failures)} failure(s)"
            )
            if sizes.scale_rounds:
                out.scale = scale.run_scaling(procs, (up, upstream_pid), proxy, sizes.streams, sizes.events, sizes.scale_rounds)
        if sizes.soak_events:
            proxy = procs.mitmdump("soak", addon, options)  # a fresh process: its memory is the soak's own
            harness.progress(f"soak: {sizes.soak_events:,} events in one stream")
            out.soak = run_soak(proxy, up, sizes.soak_events, sizes.rss_limit_mib)
            harness.progress(f"  {out.soak.wall_s:.1f} s, {len(out.soak.failures)} failure(s)")
    except BenchError as e:
        out.failures.append(str(e))
    finally:
        procs.close()
    if sizes.attacks:
        harness.progress(f"attacks: {ATTACK_TESTS} at full size")
        out.attacks = run_attacks()
        harness.progress(f"  {'passed' if out.attacks.passed else 'FAILED'} in {out.attacks.wall_s:.1f} s")
    out.seconds = time.monotonic() - started
    return out


def mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB"


def summary(out: Outcome, header: str = "", addon: Path = ADDON) -> str:
    lines = [f"### Load: `{addon.name}` {'passed' if out.passed else 'FAILED'}", ""]
    if header:
        lines += [header, ""]
    if (r := out.load) is not None:
        before, after, peak = r.rss_kib
        total = r.ok * r.events
        lines += [
            f"**{r.streams} concurrent streams × {r.events:,} NIM-shaped events**, one mitmdump, regular mode, plain HTTP/1.1",
            "",
            "| Measure | Value |",
            "|---|---:|",
            f"| Streams exact, one [DONE] each | {r.ok} of {r.streams} |",
            f"| Failures | {len(r.failures)} |",
            f"| Wall time (start to last stream checked) | {r.wall_s:,.2f} s |",
            f"| Content events/s, all streams | {r.events_per_s:,.0f} |",
            f"| All streams at the upstream, first byte after | {'–' if r.all_open_s is None else f'{r.all_open_s:,.2f} s'} |",
            f"| Streams ended between | {'–' if r.ends_s is None else f'{r.ends_s[0]:,.2f} s and {r.ends_s[1]:,.2f} s'} |",
            f"| Most client connections in flight at once | {r.peak_open} |",
            f"| Proxy CPU per content event | {r.proxy_cpu_s / total * 1e6 if total else 0:,.1f} µs |",
            f"| Proxy VmRSS before → after (VmHWM) | {mib(before)} → {mib(after)} ({mib(peak)}) |",
            "",
        ]
    if out.scale is not None:
        lines += scale.table(out.scale)
    if (s := out.soak) is not None:
        spread = s.spread_mib
        lines += [
            f"**Soak: one stream of {s.events:,} events**, fresh mitmdump, default options (normalize_keep_bytes 1 MiB): "
            f"{s.wall_s:,.1f} s, {s.events / s.wall_s if s.wall_s else 0:,.0f} events/s, "
            f"{s.proxy_cpu_s / s.events * 1e6:,.1f} µs proxy CPU per event. "
            f"VmRSS spread after the first {WARMUP:.0%}: "
            + ("–" if spread is None else f"**{spread:,.1f} MiB**")
            + f" (limit {s.limit_mib:g} MiB).",
            "",
            "| Events (client) | Time | VmRSS | |",
            "|---:|---:|---:|---|",
        ]
        held_from = s.events * WARMUP
        for when, n, t, kib in s.samples:
            note = "before the request" if when == "before" else "after the end" if when == "after" else ""
            if when != "before" and n <= held_from:
                note = "warm-up"
            lines.append(f"| {n:,} | {t:,.1f} s | {mib(kib)} | {note} |")
        lines.append("")
    if (a := out.attacks) is not None:
        lines += [
            f"**Attacks at full size** ({ATTACK_TESTS}, NORMALIZE_ATTACKS=full): "
            f"{'passed' if a.passed else 'FAILED'} in {a.wall_s:,.0f} s.",
            "",
            "| Test | Another client's longest wait | Proxy peak RSS rise (bound) |",
            "|---|---:|---:|",
        ]
        for test, m in a.measures.items():
            wait = f"{m['bystander_worst_ms']:,.0f} ms" if "bystander_worst_ms" in m else "–"
            rss = f"{m['rss_growth_mib']:,.1f} MiB ({m['rss_limit_mib']:,.0f})" if "rss_growth_mib" in m else "–"
            lines.append(f"| `{test.split('::')[-1]}` | {wait} | {rss} |")
        lines += ["", "```", a.output, "```", ""]
    failures = out.failures + (out.load.failures if out.load else []) + (out.soak.failures if out.soak else [])
    if out.attacks is not None and not out.attacks.passed:
        failures.append("the attack tests failed (pytest's output above)")
    failures += out.scale.failures if out.scale else []
    if failures:
        lines.append(f"**Failures ({len(failures)}):**")
        lines += [f"- {f}" for f in failures[:MAX_LISTED_FAILURES]]
        if len(failures) > MAX_LISTED_FAILURES:
            lines.append(f"- … and {len(failures) - MAX_LISTED_FAILURES} more")
        lines.append("")
    lines.append(f"Whole run {out.seconds:,.0f} s; load average {harness.loadavg()}.")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"the sizes make test runs: {QUICK.streams} × {QUICK.events}, a {QUICK.soak_events:,}-event soak")
    parser.add_argument("--streams", type=int, help="concurrent streams (default 200; 0 skips them)")
    parser.add_argument("--events", type=int, help="events per concurrent stream (default 500)")
    parser.add_argument("--soak-events", type=int, help="events in the soak stream (default 1,000,000; 0 skips it)")
    parser.add_argument("--rss-limit-mib", type=float, help="allowed VmRSS spread after warm-up (default 20)")
    parser.add_argument("--scale-rounds", type=int, help="rounds per column of the scaling rows (default 2; 0 skips them)")
    parser.add_argument("--addon", type=Path, default=ADDON, help="the mitmproxy script to load (default addon.py)")
    parser.add_argument("--attacks", choices=["on", "off", "only"], help="the hardening tests at full size (default on; off with --quick)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    for name, least in (("streams", 0), ("events", 1), ("soak_events", 0), ("rss_limit_mib", 0), ("scale_rounds", 0)):
        value = getattr(args, name)
        if value is not None:
            if value < least:
                parser.error(f"--{name.replace('_', '-')} must be at least {least}")
            sizes = replace(sizes, **{name: value})
    if args.attacks == "only":
        sizes = replace(sizes, streams=0, soak_events=0, attacks=True)
    elif args.attacks is not None:
        sizes = replace(sizes, attacks=args.attacks == "on")
    if sizes.soak_events and sizes.soak_events < SOAK_SAMPLES:
        parser.error(f"--soak-events must be 0 or at least {SOAK_SAMPLES}")
    if sizes.streams > 10_000:
        parser.error("--streams must be at most 10,000")
    return args, sizes


def main(argv: Sequence[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    harness.interrupt_on_signals()
    header = harness.machine()
    harness.progress(header)
    try:
        out = run(sizes, args.addon.resolve())
    except KeyboardInterrupt:
        harness.progress("load: interrupted")
        return 130
    print(summary(out, header, args.addon))
    return 0 if out.passed else 1


if __name__ == "__main__":
    sys.exit(main())
