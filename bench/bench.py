"""`make bench`: what the normalize addon costs, next to a streaming passthrough.

Starts a local upstream (bench/upstream.py, its own process) and two
mitmdumps on 127.0.0.1: one with bench/passthrough.py (`stream = True`), one
with addon.py. Drives both in alternation, round after round (ABBA order, so
drift and noise hit both alike), with a raw-socket HTTP/1.1 client, and prints
a Markdown table on stdout (progress goes to stderr):

  proxy CPU per event   utime+stime of the proxy process (/proc/<pid>/stat)
                        over an unpaced stream, divided by its events
  latency per event     upstream write -> client receipt, from a paced stream
                        whose contents carry time.monotonic_ns() at write
  time to first byte    request written -> first body chunk (the first event),
                        on a new connection each time
  resident memory       VmRSS of the addon proxy around one long stream
  core alone            ChatStream.feed (normalize.endpoints.chat) in this process, one event per call

Rows marked "bridged" send the addon a Responses API request (`POST /v1/responses`)
or an Anthropic Messages request (`POST /v1/messages`; bench/bridged.py) for the same
upstream chat stream the passthrough streams as it comes: the addon's cost of
answering a Responses or a Messages client from a chat upstream.

Every stream is checked as it is read: the text must be exactly the
upstream's, there must be one [DONE] at the end, and the addon's output must
be OpenAI-shaped (no `usage: null`, no null in a choice but finish_reason and
logprobs). A failed check aborts the run with a message saying what differed.
Runs on a fresh clone with the venv's packages only; Linux (/proc) only.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import datetime
import gc
import hashlib
import io
import json
import math
import os
import platform
import pstats
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.bridged import BRIDGES, Checker
from bench import upstream as shapes
from tests.harness.proxy import MitmdumpLauncher, MitmdumpProcess

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_ENV_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
MODEL = shapes.MODEL
# Events a stream has besides its content events: role, finish, [DONE].
FRAME_EVENTS = 3
QUANTILES = (0.5, 0.99)
# Unpaced streams measured for proxy CPU: (upstream shape, how the table names it).
CPU_SHAPES = (
    ("nim", "NIM-shaped stream"),
    ("nim_reasoning", "NIM-shaped stream, text in reasoning_content"),
    ("openai", "conforming stream"),
    ("nim_unique", "NIM-shaped stream, no text twice (worst case)"),
    # "shape:api": the addon is asked through that bridge (bench/bridged.py).
    ("nim:responses", "NIM-shaped stream, bridged to a Responses client"),
    ("nim_usage:responses", "NIM-shaped stream, usage on every chunk, bridged to a Responses client"),
    ("nim:messages", "NIM-shaped stream, bridged to a Messages client"),
    ("nim_usage:messages", "NIM-shaped stream, usage on every chunk, bridged to a Messages client"),
)
# Choice keys OpenAI itself sends as null.
CHOICE_NULLS = frozenset({"finish_reason", "logprobs"})


class BenchError(Exception):
    """A check failed or a process misbehaved: the run stops with this message."""


@dataclass(frozen=True)
class Sizes:
    rounds: int = 5
    cpu_events: int = 50_000  # per unpaced stream, per shape, per proxy, per round
    paced_events: int = 2_000  # per paced stream, per proxy, per round
    pace_us: int = 1_000
    ttfb_requests: int = 20  # per proxy, per round
    long_events: int = 1_000_000
    core_events: int = 50_000
    core_repeats: int = 3


QUICK = Sizes(rounds=2, cpu_events=5_000, paced_events=300, ttfb_requests=5, long_events=50_000, core_events=10_000)


# -- processes ---------------------------------------------------------------


def _die_with_parent() -> None:
    """Children get SIGTERM if the bench dies without cleaning up (even on SIGKILL)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_ENV_VARS}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()  # fields 3.. (comm may hold spaces)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status, e.g. VmRSS."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {key} in /proc/{pid}/status")


@dataclass
class Proxy:
    """A mitmdump the bench started (through the test harness's launcher), by name."""

    name: str
    process: MitmdumpProcess

    @property
    def proc(self) -> subprocess.Popen:
        return self.process.proc

    @property
    def port(self) -> int:
        assert self.process.port is not None
        return self.process.port

    @property
    def pid(self) -> int:
        return self.process.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.process.log_lines[-lines:]) or "(no log)"


class Processes:
    """Owns every child; `close` ends them all (terminate, then kill)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="normalize-bench-")
        self.tmp = Path(self._tmp.name)
        self.launcher = MitmdumpLauncher(self.tmp)

    def spawn(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(
            [str(a) for a in argv], cwd=REPO, env=child_env(), preexec_fn=_die_with_parent, **kwargs
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        self.launcher.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            for pipe in (proc.stdin, proc.stdout):
                if pipe:
                    pipe.close()
        self.procs.clear()
        self._tmp.cleanup()

    def upstream(self, timeout: float = 20) -> int:
        log = open(self.tmp / "upstream.log", "wb")
        proc = self.spawn(
            [sys.executable, HERE / "upstream.py"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise BenchError(f"the upstream did not start: {(self.tmp / 'upstream.log').read_text()[-2000:]}")
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                byte = os.read(proc.stdout.fileno(), 1)
                if not byte:
                    continue  # EOF: poll() says why on the next turn
                line += byte
        return int(line.split()[1])

    def mitmdump(self, name: str, script: Path, options: Sequence[str] = (), timeout: float = 60, mode: str | None = None) -> Proxy:
        """mitmdump with `script` on a free loopback port (in `mode`, default regular), ready when it returns."""
        settings = [("flow_detail", "0"), *(tuple(option.split("=", 1)) for option in options)]
        process = self.launcher.start(addon=script, options=settings, startup_timeout=timeout, mode=mode)
        return Proxy(name, process)


# -- the client --------------------------------------------------------------


@dataclass
class Received:
    """What a client saw in one stream (the checks run as it reads)."""

    events: int = 0
    content_events: int = 0
    chars: int = 0
    head: list[str] = field(default_factory=list)  # the first texts, for error messages
    head_chars: int = 0
    done: int = 0
    ttfb_ns: int | None = None
    started_ns: int = 0  # time.monotonic_ns() when the request was written
    latencies_ns: list[int] = field(default_factory=list)
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()


class EventChecker(Checker):
    """Checks each chat chunk of a (de-chunked) SSE body; fills a `Received`."""

    def __init__(self, label: str, *, openai_shape: bool, timestamps: bool) -> None:
        super().__init__(label, Received(), BenchError, timestamps=timestamps)
        self.openai_shape = openai_shape

    def _event(self, block: bytes, now_ns: int) -> None:
        got = self.got
        got.events += 1
        if block == b"data: [DONE]":
            got.done += 1
            return
        if got.done:
            raise BenchError(f"{self.label}: an event after [DONE]: {block[:200]!r}")
        if block[:6] != b"data: ":
            raise BenchError(f"{self.label}: not a `data: ` event: {block[:200]!r}")
        try:
            chunk = json.loads(block[6:])
        except ValueError:
            raise BenchError(f"{self.label}: an event is not JSON: {block[:200]!r}") from None
        if self.openai_shape and ("usage" in chunk and chunk["usage"] is None):
            raise BenchError(f"{self.label}: `usage: null` left in a chunk: {block[:300]!r}")
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if self.openai_shape and (
                None in delta.values() or any(v is None and k not in CHOICE_NULLS for k, v in choice.items())
            ):
                raise BenchError(f"{self.label}: a null left in a choice: {block[:300]!r}")
            text = delta.get("content") or delta.get("reasoning_content")
            if text:
                self._text(text, now_ns)


def stream(
    proxy: Proxy,
    upstream_port: int,
    *,
    shape: str,
    events: int,
    pace_us: int = 0,
    timeout: float = 60,
    query: str = "",
    openai_shape: bool | None = None,
    watch: Callable[[Received], None] | None = None,
    api: str = "",
    reverse: bool = False,
    headers: Mapping[str, str] | None = None,
) -> Received:
    """One streamed chat completion through `proxy` (regular mode, plain HTTP).

    `query` is appended to the upstream's query string (e.g. `&group=...`); `openai_shape`
    (default: the proxy is the one named "addon") checks the output is OpenAI-shaped; `watch`,
    if given, is called with the `Received` so far after each read of body chunks. `api`
    ("responses", "messages") asks the addon as that bridge's client (bench/bridged.py):
    the upstream still gets, and streams, chat. `reverse`: the request is in origin form,
    as to a reverse proxy (deploy/'s HAProxy); `headers` are added.
    """
    label = f"{proxy.name}, {shape} stream of {events} events" + (f" paced at {pace_us} us" if pace_us else "")
    if openai_shape is None:
        openai_shape = proxy.name == "addon"
    checker: Any = EventChecker(label, openai_shape=openai_shape, timestamps=bool(pace_us))
    body = json.dumps({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "bench"}]}).encode()
    path, extra = "/v1/chat/completions", ""
    if api:
        bridge = BRIDGES[api]
        checker = bridge.checker(f"{label} ({api} bridge)", Received(), BenchError, timestamps=bool(pace_us))
        body, path, extra = json.dumps(bridge.request).encode(), bridge.path, bridge.headers
    extra += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    authority = f"127.0.0.1:{proxy.port if reverse else upstream_port}"
    target = f"{path}?shape={shape}&events={events}&pace_us={pace_us}{query}"
    request = (
        f"POST {target if reverse else 'http://' + authority + target} HTTP/1.1\r\n"
        f"host: {authority}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\n{extra}"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(min(30.0, timeout))
        recv = sock.recv
        start = checker.got.started_ns = time.monotonic_ns()
        sock.sendall(request)

        buf = bytearray()
        now = start
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if time.monotonic() > deadline or len(buf) > 65536:
                raise BenchError(f"{label}: no response head after {len(buf)} bytes")
            data = recv(65536)
            now = time.monotonic_ns()
            if not data:
                raise BenchError(f"{label}: connection closed before the response head ({proxy.name} log:\n{proxy.log_tail()})")
            buf += data
        head = bytes(buf[:end]).decode("latin-1").lower()
        if not head.startswith("http/1.1 200"):
            raise BenchError(f"{label}: {head.splitlines()[0]!r}\n{proxy.log_tail()}")
        if "transfer-encoding: chunked" not in head:
            raise BenchError(f"{label}: the response is not chunked:\n{head}")
        del buf[: end + 4]

        pos = 0
        finished = False
        while True:
            parts = []
            while True:  # every complete chunk in buf
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                size = int(buf[pos:nl].split(b";", 1)[0], 16)
                if size == 0:
                    finished = True
                    break
                if nl + 2 + size + 2 > len(buf):
                    break
                parts.append(buf[nl + 2 : nl + 2 + size])
                pos = nl + 2 + size + 2
            if parts:
                if checker.got.ttfb_ns is None:
                    checker.got.ttfb_ns = now - start
                checker.feed(b"".join(parts), now)
                if watch is not None:
                    watch(checker.got)
            if finished:
                break
            del buf[:pos]
            pos = 0
            if time.monotonic() > deadline:
                raise BenchError(f"{label}: not finished after {timeout:.0f} s")
            data = recv(262144)
            now = time.monotonic_ns()
            if not data:
                raise BenchError(f"{label}: connection closed before the end of the body")
            buf += data
    return checker.close()


def check_text(got: Received, label: str, n: int, shape: str = "nim") -> None:
    """The client got exactly the upstream's text, and one [DONE]."""
    want = shapes.expected_text(n, shape)
    if got.digest != hashlib.sha256(want.encode()).hexdigest():
        head = "".join(got.head)
        at = next((i for i, (a, b) in enumerate(zip(head, want)) if a != b), min(len(head), len(want)))
        raise BenchError(
            f"{label}: the text received is not the upstream's: {got.chars:,} characters in "
            f"{got.content_events:,} content events, {len(want):,} characters in {n:,} sent; "
            f"first difference at or after character {at}: got {head[at:at + 40]!r}, sent {want[at:at + 40]!r}"
        )
    if got.done != 1:
        raise BenchError(f"{label}: {got.done} [DONE] events, expected exactly one")


# -- measurements ------------------------------------------------------------


@dataclass
class Results:
    cpu_us: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (proxy, shape) -> per round
    latency_us: dict[tuple[str, float], list[float]] = field(default_factory=dict)  # (proxy, q) -> per round
    ttfb_ns: dict[str, list[int]] = field(default_factory=dict)
    rss_kib: tuple[int, int, int] | None = None  # before, after, peak (VmHWM)
    long_seconds: float = 0.0
    long_cpu_us: float = 0.0
    core: list[tuple[str, float, float]] = field(default_factory=list)  # label, events/s, us/event
    load: str = ""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_run(proxy: Proxy, up: int, shape: str, n: int) -> float:
    """Proxy CPU microseconds per event of one unpaced stream; the text is checked.
    `shape:api`: the addon answers that bridge's client (the passthrough, the chat one)."""
    shape, _, api = shape.partition(":")
    before = cpu_seconds(proxy.pid)
    got = stream(proxy, up, shape=shape, events=n, timeout=max(60, n / 2000), api=api if proxy.name == "addon" else "")
    after = cpu_seconds(proxy.pid)
    check_text(got, f"{proxy.name}, {shape} stream of {n:,} events", n, shape)
    return (after - before) / (n + FRAME_EVENTS) * 1e6


def paced_run(proxy: Proxy, up: int, n: int, pace_us: int) -> list[int]:
    got = stream(proxy, up, shape="nim", events=n, pace_us=pace_us, timeout=30 + n * pace_us / 1e6 * 3)
    if got.content_events != n or got.done != 1:
        raise BenchError(f"{proxy.name}, paced stream: {got.content_events} of {n} content events, {got.done} [DONE]")
    return got.latencies_ns


def ttfb_run(proxy: Proxy, up: int) -> int:
    got = stream(proxy, up, shape="nim", events=3, timeout=30)
    check_text(got, f"{proxy.name}, short stream", 3)
    assert got.ttfb_ns is not None
    return got.ttfb_ns


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def measure_proxies(sizes: Sizes, res: Results, procs: Processes) -> None:
    up = procs.upstream()
    progress(f"upstream on 127.0.0.1:{up}; starting two mitmdumps")
    proxies = [
        procs.mitmdump("passthrough", HERE / "passthrough.py"),
        procs.mitmdump("addon", REPO / "addon.py", [f"normalize_hosts=127.0.0.1:{up}"]),
    ]
    passthrough, addon = proxies
    warm = min(2_000, sizes.cpu_events)
    for proxy in proxies:  # imports, first connections, the CA: not measured
        for shape, _ in CPU_SHAPES:
            cpu_run(proxy, up, shape, warm)
        ttfb_run(proxy, up)

    for r in range(sizes.rounds):
        order = proxies if r % 2 == 0 else proxies[::-1]  # ABBA: linear drift cancels
        line = [f"round {r + 1}/{sizes.rounds}:"]
        for shape, _ in CPU_SHAPES:
            for proxy in order:
                us = cpu_run(proxy, up, shape, sizes.cpu_events)
                res.cpu_us.setdefault((proxy.name, shape), []).append(us)
            line.append(
                f"{shape} cpu {res.cpu_us[('passthrough', shape)][-1]:.1f}/{res.cpu_us[('addon', shape)][-1]:.1f} us/event;"
            )
        for proxy in order:
            lat = paced_run(proxy, up, sizes.paced_events, sizes.pace_us)
            for q in QUANTILES:
                res.latency_us.setdefault((proxy.name, q), []).append(quantile(lat, q) / 1e3)
        for q in QUANTILES:
            line.append(
                f"latency p{q * 100:.0f} {res.latency_us[('passthrough', q)][-1]:.0f}/{res.latency_us[('addon', q)][-1]:.0f} us;"
            )
        for _ in range(sizes.ttfb_requests):
            for proxy in order:
                res.ttfb_ns.setdefault(proxy.name, []).append(ttfb_run(proxy, up))
        p, a = (statistics.median(res.ttfb_ns[name][-sizes.ttfb_requests :]) / 1e6 for name in ("passthrough", "addon"))
        line.append(f"ttfb {p:.2f}/{a:.2f} ms (passthrough/addon)")
        progress(" ".join(line))

    n = sizes.long_events
    progress(f"long stream: {n:,} NIM-shaped events through the addon")
    rss_before = status_kib(addon.pid, "VmRSS")
    cpu_before = cpu_seconds(addon.pid)
    t = time.monotonic()
    got = stream(addon, up, shape="nim", events=n, timeout=max(120, n / 1000))
    res.long_seconds = time.monotonic() - t
    res.long_cpu_us = (cpu_seconds(addon.pid) - cpu_before) / (n + FRAME_EVENTS) * 1e6
    check_text(got, f"addon, long stream of {n:,} events", n)
    res.rss_kib = (rss_before, status_kib(addon.pid, "VmRSS"), status_kib(addon.pid, "VmHWM"))
    progress(f"long stream: {res.long_seconds:.1f} s, {res.long_cpu_us:.1f} us of proxy CPU per event")

    for proxy in proxies:
        check_proxy(proxy)


def check_proxy(proxy: Proxy) -> None:
    """The proxy is still running and logged no error (anything else it logged goes to stderr)."""
    if proxy.proc.poll() is not None:
        raise BenchError(f"mitmdump ({proxy.name}) exited during the run:\n{proxy.log_tail()}")
    text = proxy.process.log
    if "Traceback" in text or "rewrite failed" in text or "passing the rest" in text:
        raise BenchError(f"mitmdump ({proxy.name}) logged an error during the run:\n{proxy.log_tail()}")


# -- the core alone ----------------------------------------------------------


def core_events(shape: str, n: int) -> list[bytes]:
    """The events of an n-content-event stream, as the upstream writes them."""
    first, content, finish, done = shapes.events(shape)
    k = len(content)
    if shape in shapes.USAGE_SHAPES:
        middle = [shapes.with_usage(content[i % k], i + 1) for i in range(n)]
        return [shapes.with_usage(first, 0), *middle, shapes.with_usage(finish, n), done]
    return [first, *(content[i % k] for i in range(n)), finish, done]


def core_run(events: list[bytes], fast: bool) -> tuple[float, list[bytes]]:
    """CPU seconds (this process) to feed every event, one per call, and the output."""
    from normalize.endpoints.chat.options import Options
    from normalize.endpoints.chat.stream import ChatStream

    chat = ChatStream(Options(model=MODEL, fast_path=fast))
    feed = chat.feed
    gc.collect()
    start = time.process_time()
    out = [feed(event) for event in events]
    out.append(chat.close())
    return time.process_time() - start, out


def measure_core(sizes: Sizes, res: Results) -> None:
    n = sizes.core_events
    outputs: dict[str, bytes] = {}
    for label, shape, fast in (
        ("NIM-shaped, fast path on", "nim", True),
        ("NIM-shaped, fast path off", "nim", False),
        ("conforming, fast path on", "openai", True),
        ("conforming, fast path off", "openai", False),
        ("NIM-shaped, text in reasoning_content, fast path on", "nim_reasoning", True),
        ("NIM-shaped, no text twice, fast path on", "nim_unique", True),
        ("NIM-shaped, bridged to Responses events, fast path on", "nim:responses", True),
        ("NIM-shaped, bridged to Responses events, fast path off", "nim:responses", False),
        ("NIM-shaped, usage on every chunk, bridged to Responses events", "nim_usage:responses", True),
        ("NIM-shaped, bridged to Messages events, fast path on", "nim:messages", True),
        ("NIM-shaped, usage on every chunk, bridged to Messages events", "nim_usage:messages", True),
    ):
        shape, _, api = shape.partition(":")
        events = core_events(shape, n)
        run = BRIDGES[api].core_run if api else core_run
        times = []
        for _ in range(sizes.core_repeats):
            seconds, out = run(events, fast)
            times.append(seconds)
        body = b"".join(out)
        checker: Any = (
            BRIDGES[api].checker(f"core, {label}", Received(), BenchError)
            if api
            else EventChecker(f"core, {label}", openai_shape=True, timestamps=False)
        )
        checker.feed(body, 0)
        check_text(checker.close(), f"core, {label}", n, shape)
        if outputs.setdefault(f"{shape}:{api}", body) != body:
            raise BenchError(f"core, {shape}: the fast path and the full rules wrote different bytes")
        seconds = statistics.median(times)
        res.core.append((label, len(events) / seconds, seconds / len(events) * 1e6))
        progress(f"core, {label}: {len(events) / seconds:,.0f} events/s")


def profile_core(n: int, fast: bool, top: int = 18) -> str:
    events = core_events("nim", n)
    profiler = cProfile.Profile()
    profiler.enable()
    core_run(events, fast)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


# -- the report --------------------------------------------------------------


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from mitmproxy.version import VERSION

    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit or 'unknown'}; "
        f"nproc {len(os.sched_getaffinity(0))} ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, mitmproxy {VERSION}"
    )


def core_table(res: Results) -> list[str]:
    return [
        "| Core alone, one event per `feed` | Events/s | CPU per event |",
        "|---|---:|---:|",
        *(f"| {label} | {eps:,.0f} | {upe:,.2f} µs |" for label, eps, upe in res.core),
    ]


def report(sizes: Sizes, res: Results, header: str, seconds: float, quick: bool) -> str:
    def us(x: float) -> str:
        return f"{x:,.1f} µs"

    def mib(kib: int) -> str:
        return f"{kib / 1024:,.1f} MiB"

    def median(xs: Sequence[float]) -> float:
        return statistics.median(xs)

    rows = []
    for shape, name in CPU_SHAPES:
        p, a = res.cpu_us[("passthrough", shape)], res.cpu_us[("addon", shape)]
        ratio = median([x / y for x, y in zip(a, p)])
        rows.append(
            (f"Proxy CPU per event, {name}", us(median(p)), us(median(a)), f"×{ratio:.2f}, {median(a) - median(p):+,.1f} µs")
        )
    for q in QUANTILES:
        p, a = res.latency_us[("passthrough", q)], res.latency_us[("addon", q)]
        rows.append((f"Latency per event, p{q * 100:.0f}", us(median(p)), us(median(a)), f"{median(a) - median(p):+,.1f} µs"))
    tp, ta = median(res.ttfb_ns["passthrough"]) / 1e6, median(res.ttfb_ns["addon"]) / 1e6
    rows.append(("Time to first byte, median", f"{tp:.2f} ms", f"{ta:.2f} ms", f"{ta - tp:+.2f} ms"))
    before, after, peak = res.rss_kib or (0, 0, 0)
    rows.append(
        (
            f"Addon VmRSS before → after {sizes.long_events:,} events",
            "",
            f"{mib(before)} → {mib(after)}",
            f"{(after - before) / 1024:+,.1f} MiB (VmHWM {mib(peak)})",
        )
    )
    out = [
        "### normalize addon vs streaming passthrough" + (" (--quick: sizes too small to quote)" if quick else ""),
        "",
        header,
        "",
        "| Measure | Passthrough | Addon | Addon vs passthrough |",
        "|---|---:|---:|---:|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        *core_table(res),
        "",
        f"mitmdump on 127.0.0.1, regular mode, plain HTTP/1.1, addon.py with its default options; "
        f"the upstream writes one event per chunk. "
        f"{sizes.rounds} rounds in ABBA order; in each, per proxy: one unpaced stream of {sizes.cpu_events:,} "
        f"events per stream shape (proxy utime+stime from /proc/<pid>/stat per event), {sizes.paced_events:,} NIM "
        f"events paced at {sizes.pace_us:,} µs (latency: upstream write to client receipt), "
        f"{sizes.ttfb_requests} three-event streams on new connections (request written to first body chunk). "
        f"CPU and latency: median over rounds; CPU ratio: median of per-round ratios; differences: between the medians shown. "
        f"TTFB: median of all requests. Long stream: {res.long_seconds:.1f} s, {res.long_cpu_us:.1f} µs of "
        f"addon proxy CPU per event. Core: median of {sizes.core_repeats} runs of {sizes.core_events:,} "
        f"events, process CPU time. Every stream's text checked against the upstream's. "
        f"Whole run {seconds:.0f} s; load average {res.load}.",
    ]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every size shrunk: a smoke run in well under a minute")
    parser.add_argument("--long-events", type=int, help="events in the long stream for VmRSS (default 1,000,000)")
    parser.add_argument("--rounds", type=int, help="ABBA rounds (default 5)")
    parser.add_argument("--cpu-events", type=int, help="events per unpaced stream (default 50,000)")
    parser.add_argument("--paced-events", type=int, help="events per paced stream (default 2,000)")
    parser.add_argument("--pace-us", type=int, help="microseconds between paced events (default 1,000)")
    parser.add_argument("--core-events", type=int, help="events per in-process core run (default 50,000)")
    parser.add_argument("--skip-proxies", action="store_true", help="only the in-process core numbers")
    parser.add_argument(
        "--profile", action="store_true", help="also print cProfile of the core's feed for NIM chunks (to stderr)"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    for name in ("long_events", "rounds", "cpu_events", "paced_events", "pace_us", "core_events"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name.replace('_', '-')} must be at least 1")
            sizes = replace(sizes, **{name: value})
    return args, sizes


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def interrupt_on_signals() -> None:
    """SIGTERM and SIGHUP end a run like Ctrl-C, so child processes are cleaned up."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    interrupt_on_signals()
    started = time.monotonic()
    header = machine()
    progress(header)
    res = Results(load=loadavg())
    procs = Processes()
    try:
        if not args.skip_proxies:
            measure_proxies(sizes, res, procs)
        procs.close()  # the core runs alone on the machine
        measure_core(sizes, res)
        if args.profile:
            for fast in (True, False):
                progress(f"\ncProfile, core feed, NIM-shaped, fast path {'on' if fast else 'off'}:")
                progress(profile_core(sizes.core_events, fast))
    except BenchError as e:
        progress(f"bench: FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        progress("bench: interrupted")
        return 130
    finally:
        procs.close()
    res.load += f" at the start, {loadavg()} at the end"
    if args.skip_proxies:
        print("\n".join([header, "", *core_table(res)]))
        return 0
    print(report(sizes, res, header, time.monotonic() - started, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
