"""normalize_rate_limit end to end: a real mitmdump, the openai SDK from many threads at once, and
an upstream that counts requests per key as NIM's hosted tier does and answers 429 over it.

Nothing here sleeps to synchronise: the clients run as fast as they can, the proxy holds
what would exceed the window, and the upstream judges every arrival by its own clock.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

import tests.upstreams as U
from tests.harness.proxy import MitmdumpProcess
from tests.harness.upstream import RecordedRequest, Reply, ScriptedUpstream

pytestmark = pytest.mark.e2e

LIMIT, WINDOW = 20, 2.0
CLIENTS, EACH = 10, 10
TOO_MANY = U.compact(U.NIM_RATE_LIMIT_PROBLEM)


class WindowedUpstream:
    """Answers each chat request with its own text echoed, or NIM's 429 when the key has had
    LIMIT requests in the last WINDOW seconds (counted at arrival, rejected ones included)."""

    def __init__(self, up: ScriptedUpstream) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[float] = []
        self.rejected = 0
        up.respond("POST", U.CHAT_PATH, self.answer)

    def answer(self, request: RecordedRequest) -> Reply:
        now = time.monotonic()
        with self.lock:
            self.arrivals.append(now)
            over = sum(1 for t in self.arrivals if t > now - WINDOW) > LIMIT
            self.rejected += over
        if over:
            return Reply(429, [("Content-Type", U.JSON)], [TOO_MANY], mode="content-length")
        text = json.loads(request.body)["messages"][0]["content"]
        completion = U.nim_ok_completion(json.loads(request.body)["model"])
        completion["choices"][0]["message"]["content"] = f"echo: {text}"
        return Reply(200, [("Content-Type", U.JSON)], [U.compact(completion)], mode="content-length")

    def most_in_a_window(self) -> int:
        times = sorted(self.arrivals)
        return max((sum(1 for u in times[i:] if u < t + WINDOW) for i, t in enumerate(times)), default=0)


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_rate_limit_held_end_to_end(upstream: ScriptedUpstream, mitmdump) -> None:
    """100 requests from 10 concurrent clients, one key, limit 20/2s: no client sees a 429, the
    upstream never counts more than 20 in any 2 s, every reply is the one for its request, and
    the proxy's CPU stays near idle while requests wait (under a fifth of the wall time)."""
    nim = WindowedUpstream(upstream)
    mitm: MitmdumpProcess = mitmdump.start(normalize_hosts=[upstream.host_port], options={"normalize_rate_limit": "20/2s"})

    def one_client(i: int) -> list[tuple[str, str]]:
        got = []
        with openai.OpenAI(base_url=upstream.url + "/v1", api_key="nvapi-shared", max_retries=0,
                           http_client=httpx.Client(proxy=mitm.url, timeout=60)) as client:
            for j in range(EACH):
                text = f"client {i} request {j}"
                reply = client.chat.completions.create(model=U.NIM_LLAMA, messages=[{"role": "user", "content": text}])
                got.append((text, reply.choices[0].message.content))
        return got

    cpu_before, start = cpu_seconds(mitm.proc.pid), time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [pair for got in pool.map(one_client, range(CLIENTS)) for pair in got]
    wall, cpu = time.monotonic() - start, cpu_seconds(mitm.proc.pid) - cpu_before

    assert len(results) == CLIENTS * EACH
    assert all(reply == f"echo: {text}" for text, reply in results)
    assert nim.rejected == 0 and len(nim.arrivals) == CLIENTS * EACH
    assert nim.most_in_a_window() <= LIMIT
    assert wall >= 4 * WINDOW  # 100 requests at 20 a window cannot all go in less than 4 windows
    assert cpu < 0.2 * wall, (cpu, wall)  # about 0.04 here; waiting by polling would be near 1
    mitm.wait_for_log(r"POST 127\.0\.0\.1/v1/chat/completions 200: normalized: .*held \d+ ms for normalize_rate_limit")
    assert "nvapi-shared" not in mitm.log


def test_upstream_429_pauses_the_key(upstream: ScriptedUpstream, mitmdump) -> None:
    """An upstream 429 with Retry-After: 1 reaches that client as it is (in OpenAI's shape), and
    the key's next request is held until the second has passed; another key is not held."""
    arrivals: list[tuple[str, float]] = []

    def answer(request: RecordedRequest) -> Reply:
        arrivals.append((request.header("authorization"), time.monotonic()))
        if len(arrivals) == 1:
            return Reply(429, [("Content-Type", U.JSON), ("Retry-After", "1")], [TOO_MANY], mode="content-length")
        return Reply(200, [("Content-Type", U.JSON)], [U.compact(U.nim_ok_completion(U.NIM_LLAMA))], mode="content-length")

    upstream.respond("POST", U.CHAT_PATH, answer)
    mitm = mitmdump.start(normalize_hosts=[upstream.host_port], options={"normalize_rate_limit": "40/60s"})

    def ask(key: str) -> str:
        with openai.OpenAI(base_url=upstream.url + "/v1", api_key=key, max_retries=0,
                           http_client=httpx.Client(proxy=mitm.url, timeout=20)) as client:
            return client.chat.completions.create(model=U.NIM_LLAMA, messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content

    with pytest.raises(openai.RateLimitError) as e:
        ask("nvapi-a")
    assert e.value.body["message"] == "Too Many Requests"
    assert ask("nvapi-b") == "Hello!"
    assert ask("nvapi-a") == "Hello!"
    (_, rejected_at), (_, other_at), (_, again_at) = arrivals
    assert again_at - rejected_at >= 1.0
    assert other_at - rejected_at < 1.0
    line = mitm.wait_for_log(r"upstream 429: key (\w+) paused for 1\.0 s")
    assert len(line.group(1)) == 12 and "nvapi-a" not in mitm.log
