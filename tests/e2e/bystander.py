"""Another client, and the proxy's memory, while a test attacks the proxy.

mitmproxy serves every client from one event loop: an input that makes the
addon work for seconds in one callback freezes every other stream. `Bystander`
is that other client: one chat stream through the same proxy, to the same
(targeted) upstream, played as a ping-pong. The client asks for the next event
(`turns`), the upstream's generator sends it at once, the client times how long
it took to arrive through the proxy, and asks again. No sleeps: a frozen proxy
shows as one long turn. `worst` is the longest turn seen, `turns_during` how
many turns ended while the attack ran.

`Memory` reads the proxy's peak RSS (VmHWM in /proc/<pid>/status) after
resetting it (`5` to /proc/<pid>/clear_refs, Linux 4.0+), so a test measures
the peak of its own attack, not of the whole process's life.

With NORMALIZE_ATTACK_REPORT set to a file, each check appends what it
measured there, one JSON object a line (bench/load.py prints them as a table).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import httpx

from tests.harness.upstream import RecordedRequest, Reply, ScriptedUpstream

from .nim_stream import MODEL

PATH = "/bystander/v1/chat/completions"
MAX_TURNS = 100_000  # a bound on the loop; an attack ends long before
_NEXT, _STOP = "next", "stop"
# How long another client's stream may wait while an attack runs ("about a second").
MAX_WAIT_S = 1.0


def event(n: int) -> bytes:
    delta = '{"role":"assistant","content":""}' if n == 0 else f'{{"content":"t{n} "}}'
    return (
        b'data: {"id":"chatcmpl-bystander","object":"chat.completion.chunk","created":1,"model":"%s",'
        b'"choices":[{"index":0,"delta":%s,"finish_reason":null}]}\n\n' % (MODEL.encode(), delta.encode())
    )


class Bystander:
    def __init__(self, upstream: ScriptedUpstream, proxy_url: str) -> None:
        self.upstream = upstream
        self.proxy_url = proxy_url
        self.turns: queue.Queue[str] = queue.Queue()
        self.latencies: list[tuple[float, float]] = []  # (end of the turn, its length), monotonic seconds
        self.events = 0
        self.failure: BaseException | None = None
        self.done_seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bystander", daemon=True)
        self._first = threading.Event()
        self.attack: tuple[float, float] | None = None

    # -- the upstream side: one event per turn ----------------------------------

    def _reply(self, request: RecordedRequest) -> Reply:
        return Reply(200, [("Content-Type", "text/event-stream")], self._events(), mode="chunked")

    def _events(self) -> Iterator[bytes]:
        yield event(0)
        for n in range(1, MAX_TURNS):
            try:
                turn = self.turns.get(timeout=60)
            except queue.Empty:
                return  # the test went away: end the body
            if turn == _STOP:
                break
            yield event(n)
        yield b"data: [DONE]\n\n"

    # -- the client side --------------------------------------------------------

    def _run(self) -> None:
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        try:
            with httpx.Client(proxy=self.proxy_url, timeout=60, trust_env=False) as client:
                with client.stream("POST", self.upstream.url + PATH, json=body) as response:
                    response.raise_for_status()
                    pending = b""
                    asked = time.monotonic()
                    for piece in response.iter_raw():
                        pending += piece
                        while b"\n\n" in pending:
                            block, pending = pending.split(b"\n\n", 1)
                            if block == b"data: [DONE]":
                                self.done_seen = True
                                continue
                            now = time.monotonic()
                            self.latencies.append((now, now - asked))
                            self.events += 1
                            self._first.set()
                            asked = time.monotonic()
                            self.turns.put(_STOP if self._stop.is_set() else _NEXT)
        except BaseException as e:  # reported by check()
            self.failure = e
        finally:
            self._first.set()

    def __enter__(self) -> Bystander:
        self.upstream.respond("POST", PATH, self._reply)
        self._thread.start()
        if not self._first.wait(15) or self.failure is not None:
            raise AssertionError(f"the bystander stream did not start: {self.failure!r}")
        self.attack = (time.monotonic(), float("inf"))
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        assert self.attack is not None
        self.attack = (self.attack[0], time.monotonic())
        self._stop.set()
        self.turns.put(_STOP)  # in case the client is waiting for a turn that will not come
        self._thread.join(30)
        if kind is None:
            self.check()

    @property
    def worst(self) -> float:
        return max((length for _, length in self.latencies), default=0.0)

    @property
    def turns_during(self) -> int:
        assert self.attack is not None
        start, end = self.attack
        return sum(1 for at, _ in self.latencies if start <= at <= end)

    def check(self, max_wait: float = MAX_WAIT_S) -> None:
        """The bystander's stream ended cleanly, and no turn took longer than `max_wait`."""
        assert not self._thread.is_alive(), "the bystander stream did not end"
        assert self.failure is None, f"the bystander stream failed: {self.failure!r}"
        assert self.done_seen, "the bystander stream did not end with [DONE]"
        report(bystander_worst_ms=round(self.worst * 1000, 1), bystander_turns=self.turns_during, max_wait_ms=max_wait * 1000)
        assert self.worst < max_wait, (
            f"another client's stream waited {self.worst:.2f} s for one event during the attack "
            f"({self.turns_during} turns during it, {len(self.latencies)} in all)"
        )


class Memory:
    """The proxy's peak resident memory over a stretch of a test (Linux /proc)."""

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.clear_refs = Path(f"/proc/{pid}/clear_refs")
        self.before_kib = 0

    def field_kib(self, name: str) -> int:
        for line in self.status.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {name} in {self.status}")

    def __enter__(self) -> Memory:
        self.clear_refs.write_text("5")  # VmHWM := VmRSS
        self.before_kib = self.field_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @property
    def growth_mib(self) -> float:
        """How far the peak rose above the resident size at the start."""
        return (self.field_kib("VmHWM") - self.before_kib) / 1024

    def check(self, limit_mib: float) -> None:
        report(rss_growth_mib=round(self.growth_mib, 1), rss_limit_mib=round(limit_mib, 1))
        assert self.growth_mib < limit_mib, (
            f"the proxy's peak RSS rose {self.growth_mib:.1f} MiB during the attack (limit {limit_mib} MiB; "
            f"VmRSS before {self.before_kib / 1024:.1f} MiB)"
        )


def report(**measures: object) -> None:
    """Appends the current test's measures to $NORMALIZE_ATTACK_REPORT, when set."""
    path = os.environ.get("NORMALIZE_ATTACK_REPORT")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": test, **measures}) + "\n")
